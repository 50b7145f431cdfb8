"""Data sources: find the files a source names and read their documents as text.

A source (`sources.<name>` in the config) lists files, folders, globs, saved Hugging Face datasets,
hub datasets (`hf:<id>`) and bundled corpora (`bundled:<name>`). `resolve_units` expands the list
into `SourceUnit`s, one per file (the unit of caching: a changed file re-tokenizes only itself), and
`read_documents` yields each unit's documents as `str` (`read_records` also gives each one's sub-source).

Formats, chosen by suffix (after an optional `.gz`, `.zst` or `.zstd`) unless `format` is set:

- `.txt`, `.text`, `.md`: the whole file is one document;
- `.jsonl`, `.ndjson`: one JSON record per line, text in `text_field` (a record may also be a string);
- `.json`: a list of records (or JSON lines under a `.json` name);
- `.parquet`: the `text_field` column; `.csv`, `.tsv`: the `text_field` column of a header row;
- a folder holding `dataset_info.json` + `state.json` or `dataset_dict.json`: a dataset saved with
  `datasets.save_to_disk` (its `split` for a `DatasetDict`); other folders are searched recursively
  for files with the suffixes above.

Bad input raises `UserError` naming the file and line (or the config key): a missing file, a glob
that matches nothing, invalid JSON (unless `on_error: skip`, which skips and counts the line), a
record without the text field, a binary file (NUL bytes) read as text. Invalid UTF-8 is replaced
with U+FFFD and counted, never fatal.
Empty or whitespace-only documents are skipped and counted.

Sub-sources: with `subsource_field` set (the bundled corpora set it to their `source` field), a
record's value of that field names the document's sub-source (Austen, Wikipedia, ...); held-out
evaluation then samples every sub-source in proportion (`forgetless.evaluate.heldout`). A record
without the field has no sub-source; a table (parquet, CSV, dataset) without the column is an error.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from forgetless.config import SourceConfig
from forgetless.errors import UserError

TEXT_SUFFIXES = {".txt": "txt", ".text": "txt", ".md": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TEXT_SUFFIXES |= {".json": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "tsv"}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_GLOB_CHARS = set("*?[")


# ---------------------------------------------------------------------------------------------
# Units


@dataclass(frozen=True)
class SourceUnit:
    """One file (or saved dataset, or hub dataset) of a source: the unit of reading and caching.

    `fixed_split` is "train" or "heldout" for corpora that come with their own split (bundled), and
    None for units whose documents are split by the held-out rule.
    """

    kind: str  # "file", "hf_disk" or "hf_hub"
    location: str  # an absolute path, or a hub dataset id
    format: str  # txt, jsonl, json, parquet, csv, tsv, hf_disk, hf_hub
    compression: str | None = None  # None, "gzip" or "zstd"
    text_field: str = "text"
    hf_split: str = "train"
    on_error: str = "fail"
    fixed_split: str | None = None
    key: str = ""  # the config key that named it, for messages
    subsource_field: str | None = None  # the record field that names a document's sub-source

    def identity(self) -> dict[str, Any]:
        """What the unit is (not its contents): the cache key of its tokenized documents."""
        identity = {
            "kind": self.kind,
            "location": self.location,
            "format": self.format,
            "compression": self.compression,
            "text_field": self.text_field,
            "hf_split": self.hf_split if self.kind != "file" else None,
            "on_error": self.on_error,
        }
        if self.subsource_field is not None:  # absent otherwise: earlier cache entries stay valid
            identity["subsource_field"] = self.subsource_field
        return identity

    def fingerprint(self) -> list[Any]:
        """Cheap evidence of the unit's contents: size and modification time of its files."""
        if self.kind == "hf_hub":
            return [self.location, self.hf_split]  # not checkable offline; the id is the contents
        path = Path(self.location)
        try:
            if self.kind == "file":
                stat = path.stat()
                return [stat.st_size, stat.st_mtime_ns]
            return [
                [str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*"))
                if p.is_file()
            ]
        except OSError as err:
            raise UserError(f"{self.key}: {self.location}: cannot read: {err.strerror}") from None


def resolve_units(name: str, source: SourceConfig) -> list[SourceUnit]:
    """Expand a source's `files` into units, in a stable order (sorted within a folder or glob)."""
    units: list[SourceUnit] = []
    seen: set[tuple[str, str | None]] = set()
    for i, entry in enumerate(source.files):
        key = f"sources.{name}.files.{i}"
        for unit in _resolve_entry(entry, source, key):
            if (unit.location, unit.fixed_split) not in seen:
                seen.add((unit.location, unit.fixed_split))
                units.append(unit)
    return units


def _resolve_entry(entry: str, source: SourceConfig, key: str) -> list[SourceUnit]:
    common: dict[str, Any] = {
        "text_field": source.text_field,
        "on_error": source.on_error,
        "hf_split": source.split,
        "subsource_field": source.subsource_field,
    }
    if entry.startswith("bundled:"):
        return _bundled_units(entry, source, key)
    if entry.startswith("hf:") or source.format == "hf_hub":
        dataset_id = entry.removeprefix("hf:")
        return [SourceUnit(kind="hf_hub", location=dataset_id, format="hf_hub", key=key, **common)]
    expanded = os.path.expanduser(entry)
    if _GLOB_CHARS & set(expanded):
        matches = sorted(glob.glob(expanded, recursive=True))
        files: list[Path] = []
        for match in matches:
            path = Path(match)
            files.extend(_files_in(path, key) if path.is_dir() and not _is_saved_dataset(path) else [path])
        if not files:
            raise UserError(f"{key}: {entry}: the pattern matches no files")
        return [_file_unit(path, source, key, common) for path in files]
    path = Path(expanded)
    if not path.exists():
        raise UserError(f"{key}: {entry}: no such file or folder")
    if path.is_dir():
        if source.format == "hf_disk" or _is_saved_dataset(path):
            return [
                SourceUnit(kind="hf_disk", location=str(path.resolve()), format="hf_disk", key=key, **common)
            ]
        files = _files_in(path, key)
        if not files:
            raise UserError(f"{key}: {entry}: the folder holds no data files ({_suffix_list()})")
        return [_file_unit(p, source, key, common) for p in files]
    return [_file_unit(path, source, key, common)]


def _bundled_units(entry: str, source: SourceConfig, key: str) -> list[SourceUnit]:
    try:
        from forgetless.data import bundled
    except ImportError:  # pragma: no cover - the bundle ships with the package
        raise UserError(f"{key}: {entry}: the bundled corpora are not installed") from None
    try:
        corpus = bundled.parse_ref(entry)
        paths = {split: Path(bundled.corpus_path(corpus, split)) for split in ("train", "heldout")}
    except UserError as err:
        raise UserError(f"{key}: {err}") from None
    except (KeyError, ValueError, FileNotFoundError) as err:
        raise UserError(f"{key}: {entry}: unknown bundled corpus ({err})") from None
    units = []
    for split, path in paths.items():
        if not path.is_file():
            raise UserError(f"{key}: {entry}: bundled file {path} is missing")
        fmt, compression = _detect_format(path)
        units.append(
            SourceUnit(
                kind="file",
                location=str(path.resolve()),
                format=fmt or "jsonl",
                compression=compression,
                text_field="text",
                on_error="fail",
                fixed_split=split,
                key=key,
                subsource_field=bundled.SUBSOURCE_FIELD,
            )
        )
    return units


def _file_unit(path: Path, source: SourceConfig, key: str, common: dict[str, Any]) -> SourceUnit:
    if not path.is_file():
        raise UserError(f"{key}: {path}: not a file")
    fmt, compression = _detect_format(path)
    if source.format != "auto":
        fmt = source.format
    if fmt is None:
        raise UserError(
            f"{key}: {path}: unknown file type; use one of {_suffix_list()} or set "
            f"{key.rsplit('.files', 1)[0]}.format"
        )
    return SourceUnit(
        kind="file", location=str(path.resolve()), format=fmt, compression=compression, key=key, **common
    )


def _detect_format(path: Path) -> tuple[str | None, str | None]:
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSION_SUFFIXES.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = TEXT_SUFFIXES.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def _files_in(folder: Path, key: str) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fname in sorted(names):
            path = Path(root) / fname
            if not fname.startswith(".") and _detect_format(path)[0] is not None:
                found.append(path)
    return sorted(found)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
    )


def _suffix_list() -> str:
    return ", ".join(sorted(TEXT_SUFFIXES)) + " (optionally .gz or .zst)"


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class ReadStats:
    """What reading a unit found besides documents."""

    documents: int = 0
    skipped_records: int = 0  # invalid JSON or records without text, skipped under on_error: skip
    empty_documents: int = 0  # empty or whitespace-only texts, not tokenized
    invalid_utf8: int = 0  # invalid byte sequences (or lone surrogates) replaced with U+FFFD
    first_skipped: str | None = None  # where the first skipped record was, for the summary

    def add(self, other: ReadStats) -> None:
        self.documents += other.documents
        self.skipped_records += other.skipped_records
        self.empty_documents += other.empty_documents
        self.invalid_utf8 += other.invalid_utf8
        self.first_skipped = self.first_skipped or other.first_skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "skipped_records": self.skipped_records,
            "empty_documents": self.empty_documents,
            "invalid_utf8": self.invalid_utf8,
        }


_replaced = threading.local()


def _count_and_replace(err: UnicodeError) -> tuple[str, int]:
    _replaced.count = getattr(_replaced, "count", 0) + 1
    if isinstance(err, UnicodeEncodeError):
        return ("?", err.end)
    return ("\ufffd", err.end)


codecs.register_error("forgetless-count", _count_and_replace)


def decode_utf8(
    data: bytes, stats: ReadStats, unit: SourceUnit | None = None, line: int | None = None
) -> str:
    """Decode UTF-8. Invalid byte sequences are refused (`UserError` naming the file, and the line
    when `line` says where `data` starts in it) when `unit` reads under `on_error: fail`; otherwise
    they are replaced with U+FFFD and counted in `stats.invalid_utf8`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        if unit is not None and unit.on_error == "fail":
            where = None if line is None else line + data.count(b"\n", 0, err.start)
            raise _not_utf8(unit, where, data[err.start]) from None
        _replaced.count = 0
        text = data.decode("utf-8", "forgetless-count")
        stats.invalid_utf8 += _replaced.count
        return text


def _not_utf8(unit: SourceUnit, line: int | None, byte: int) -> UserError:
    where = f"{unit.location}:{line}" if line is not None else unit.location
    return UserError(
        f"{where}: not UTF-8 text (byte 0x{byte:02x}); convert the file to UTF-8, or set "
        f"{_source_key(unit)}.on_error: skip to replace such bytes"
    )


def encode_utf8(text: str, stats: ReadStats) -> tuple[str, bytes]:
    """The UTF-8 bytes of `text`; lone surrogates (possible in JSON) are replaced and counted."""
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError:
        _replaced.count = 0
        data = text.encode("utf-8", "forgetless-count")
        stats.invalid_utf8 += _replaced.count
        return data.decode("utf-8"), data


def read_documents(unit: SourceUnit, stats: ReadStats) -> Iterator[str]:
    """Yield the unit's non-empty documents, counting what was skipped or repaired in `stats`."""
    for text, _ in read_records(unit, stats):
        yield text


def read_records(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    """Yield `(text, sub-source)` for the unit's non-empty documents (sub-source None without
    `subsource_field` or where a record lacks it), counting what was skipped or repaired in `stats`."""
    readers = {
        "txt": _read_txt,
        "jsonl": _read_jsonl,
        "json": _read_json,
        "parquet": _read_parquet,
        "csv": _read_csv,
        "tsv": _read_csv,
        "hf_disk": _read_hf_disk,
        "hf_hub": _read_hf_hub,
    }
    for text, subsource in readers[unit.format](unit, stats):
        if not text or text.isspace():
            stats.empty_documents += 1
            continue
        stats.documents += 1
        yield text, subsource


def _open_binary(unit: SourceUnit) -> BinaryIO:
    path = unit.location
    try:
        if unit.compression == "gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if unit.compression == "zstd":
            try:
                import zstandard
            except ImportError:
                raise UserError(f"{path}: reading .zst files needs `pip install zstandard`") from None
            stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)  # noqa: SIM115
            return io.BufferedReader(stream)
        return open(path, "rb")  # noqa: SIM115
    except OSError as err:
        raise UserError(f"{path}: cannot open: {err.strerror or err}") from None


def _compressed_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, EOFError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _read_all(unit: SourceUnit) -> bytes:
    with _open_binary(unit) as fh:
        try:
            return fh.read()
        except _compressed_errors() as err:
            raise UserError(f"{unit.location}: cannot read ({unit.compression or 'file'}): {err}") from None


def _lines(unit: SourceUnit) -> Iterator[tuple[int, bytes]]:
    with _open_binary(unit) as fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - lineno is used after errors
                yield lineno, line
        except _compressed_errors() as err:
            raise UserError(
                f"{unit.location}:{lineno + 1}: cannot read ({unit.compression or 'file'}): {err}"
            ) from None


def _read_txt(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    data = _read_all(unit)
    if b"\x00" in data[:8192]:  # text never holds NUL bytes; images, archives and weights do
        raise UserError(
            f"{unit.location}: a binary file (NUL bytes), not text; remove it from {_source_key(unit)}.files"
        )
    yield decode_utf8(data, stats, unit, line=1), None


def _skip_or_fail(unit: SourceUnit, stats: ReadStats, where: str, message: str) -> None:
    if unit.on_error == "skip":
        stats.skipped_records += 1
        stats.first_skipped = stats.first_skipped or f"{where}: {message}"
        return
    raise UserError(f"{where}: {message}")


def _record_text(record: Any, unit: SourceUnit, stats: ReadStats, where: str) -> str | None:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        value = record.get(unit.text_field)
        if isinstance(value, str):
            return value
        if value is None and unit.text_field not in record:
            fields = ", ".join(list(record)[:8])
            _skip_or_fail(
                unit,
                stats,
                where,
                f"no field {unit.text_field!r} in the record (fields: {fields}); "
                f"set {_source_key(unit)}.text_field",
            )
            return None
        if value is None:
            return ""  # a null text is an empty document
        _skip_or_fail(unit, stats, where, f"field {unit.text_field!r} is a {type(value).__name__}, not text")
        return None
    _skip_or_fail(unit, stats, where, f"expected a JSON object with field {unit.text_field!r}")
    return None


def _record_subsource(record: Any, unit: SourceUnit) -> str | None:
    if unit.subsource_field is None or not isinstance(record, dict):
        return None
    value = record.get(unit.subsource_field)
    return None if value is None else str(value)


def _source_key(unit: SourceUnit) -> str:
    return unit.key.rsplit(".files", 1)[0] if unit.key else "the source"


def _read_jsonl(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    loads = json.loads
    for lineno, raw in _lines(unit):
        if not raw.strip():
            continue
        line = decode_utf8(raw, stats, unit, lineno)
        try:
            record = loads(line)
        except json.JSONDecodeError as err:
            _skip_or_fail(
                unit,
                stats,
                f"{unit.location}:{lineno}",
                f"invalid JSON ({err.msg} at column {err.colno}); fix the line or set "
                f"{_source_key(unit)}.on_error: skip",
            )
            continue
        text = _record_text(record, unit, stats, f"{unit.location}:{lineno}")
        if text is not None:
            yield text, _record_subsource(record, unit)


def _read_json(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    text = decode_utf8(_read_all(unit), stats, unit, line=1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines under a .json name
            yield from _read_jsonl(unit, stats)
            return
        raise UserError(
            f"{unit.location}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno})"
        ) from None
    if isinstance(data, dict) and unit.text_field not in data:
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UserError(
                f"{unit.location}: expected a list of records, a record with field "
                f"{unit.text_field!r}, or JSON lines"
            )
        data = lists[0]
    records = data if isinstance(data, list) else [data]
    for i, record in enumerate(records):
        value = _record_text(record, unit, stats, f"{unit.location}: record {i}")
        if value is not None:
            yield value, _record_subsource(record, unit)


def _missing_column(unit: SourceUnit, columns: list[str], where: str) -> UserError:
    return UserError(
        f"{where}: no column {unit.text_field!r} (columns: {', '.join(columns[:8])}); "
        f"set {_source_key(unit)}.text_field"
    )


def _missing_subsource_column(unit: SourceUnit, columns: list[str], where: str) -> UserError:
    return UserError(
        f"{where}: no column {unit.subsource_field!r} (columns: {', '.join(columns[:8])}); "
        f"set {_source_key(unit)}.subsource_field to a column that names each document's sub-source"
    )


def _read_parquet(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{unit.location}: reading parquet needs `pip install pyarrow`") from None
    source: Any = unit.location if unit.compression is None else io.BytesIO(_read_all(unit))
    try:
        pf = pq.ParquetFile(source)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserError(f"{unit.location}: not a readable parquet file: {err}") from None
    columns = pf.schema_arrow.names
    if unit.text_field not in columns:
        raise _missing_column(unit, columns, unit.location)
    wanted = [unit.text_field]
    if unit.subsource_field is not None:
        if unit.subsource_field not in columns:
            raise _missing_subsource_column(unit, columns, unit.location)
        wanted.append(unit.subsource_field)
    for batch in pf.iter_batches(batch_size=2048, columns=wanted):
        subsources = batch.column(1).to_pylist() if len(wanted) > 1 else None
        yield from _column_texts(batch.column(0).to_pylist(), unit, stats, subsources)


def _column_texts(
    values: list[Any], unit: SourceUnit, stats: ReadStats, subsources: list[Any] | None = None
) -> Iterator[tuple[str, str | None]]:
    for i, value in enumerate(values):
        subsource = subsources[i] if subsources is not None else None
        subsource = None if subsource is None else str(subsource)
        if isinstance(value, str):
            yield value, subsource
        elif isinstance(value, bytes):
            yield decode_utf8(value, stats, unit), subsource
        elif value is None:
            yield "", subsource
        else:
            raise UserError(
                f"{unit.location}: column {unit.text_field!r} holds {type(value).__name__}, not text; "
                f"set {_source_key(unit)}.text_field"
            )


def _read_csv(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents are long; the default is 128 KiB
    delimiter = "\t" if unit.format == "tsv" else ","
    with _open_binary(unit) as fh:
        _replaced.count = 0
        errors = "strict" if unit.on_error == "fail" else "forgetless-count"
        stream = io.TextIOWrapper(fh, encoding="utf-8", errors=errors, newline="")
        reader = csv.reader(stream, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                return
            if unit.text_field not in header:
                raise _missing_column(unit, header, f"{unit.location}:1")
            column = header.index(unit.text_field)
            sub_column = None
            if unit.subsource_field is not None:
                if unit.subsource_field not in header:
                    raise _missing_subsource_column(unit, header, f"{unit.location}:1")
                sub_column = header.index(unit.subsource_field)
            needed = max(column, sub_column or 0)
            for row in reader:
                if not row:
                    continue
                if len(row) <= needed:
                    _skip_or_fail(
                        unit,
                        stats,
                        f"{unit.location}:{reader.line_num}",
                        f"the row has {len(row)} fields; {unit.text_field!r} is field {column + 1}"
                        + (
                            f" and {unit.subsource_field!r} field {sub_column + 1}"
                            if sub_column is not None
                            else ""
                        ),
                    )
                    continue
                yield row[column], (row[sub_column] if sub_column is not None else None)
        except csv.Error as err:
            raise UserError(f"{unit.location}:{reader.line_num}: invalid CSV: {err}") from None
        except UnicodeDecodeError:  # the stream decodes ahead in chunks: find the line in the file
            decode_utf8(_read_all(unit), stats, unit, line=1)
            raise
        finally:
            stats.invalid_utf8 += getattr(_replaced, "count", 0)
            _replaced.count = 0


def _read_hf_disk(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    try:
        import datasets
    except ImportError:
        raise UserError(f"{unit.location}: reading a saved dataset needs `pip install datasets`") from None
    try:
        ds = datasets.load_from_disk(unit.location)
    except Exception as err:  # noqa: BLE001 - datasets raises many types for a bad folder
        raise UserError(f"{unit.location}: not a readable saved dataset: {err}") from None
    if isinstance(ds, datasets.DatasetDict):
        if unit.hf_split not in ds:
            raise UserError(
                f"{unit.location}: no split {unit.hf_split!r} (splits: {', '.join(ds)}); "
                f"set {_source_key(unit)}.split"
            )
        ds = ds[unit.hf_split]
    yield from _dataset_texts(ds, unit, stats, unit.location)


def _dataset_texts(
    ds: Any, unit: SourceUnit, stats: ReadStats, where: str
) -> Iterator[tuple[str, str | None]]:
    columns = list(ds.column_names)
    if unit.text_field not in columns:
        raise _missing_column(unit, columns, where)
    wanted = [unit.text_field]
    if unit.subsource_field is not None:
        if unit.subsource_field not in columns:
            raise _missing_subsource_column(unit, columns, where)
        wanted.append(unit.subsource_field)
    ds = ds.select_columns(wanted)
    for batch in ds.iter(batch_size=2048):
        subsources = batch[unit.subsource_field] if len(wanted) > 1 else None
        yield from _column_texts(batch[unit.text_field], unit, stats, subsources)


def _read_hf_hub(unit: SourceUnit, stats: ReadStats) -> Iterator[tuple[str, str | None]]:
    try:
        import datasets
    except ImportError:
        raise UserError(f"{unit.key}: hub datasets need `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(unit.location, split=unit.hf_split, streaming=True)
    except Exception as err:  # noqa: BLE001 - offline, unknown id, no access: all bad input here
        raise UserError(
            f"{unit.key}: cannot load hub dataset {unit.location!r} (split {unit.hf_split!r}): "
            f"{type(err).__name__}: {err}; without a network, download it elsewhere and use "
            f"save_to_disk, or point the source at local files"
        ) from None
    for i, row in enumerate(ds):
        text = _record_text(row, unit, stats, f"{unit.key}: {unit.location} row {i}")
        if text is not None:
            yield text, _record_subsource(row, unit)
