"""Reading sources: every input format, folders and globs, compression, and bad input."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from forgetless.config import SourceConfig
from forgetless.data import sources as sources_module
from forgetless.data.sources import ReadStats, read_documents, resolve_units
from forgetless.errors import UserError

DOCS = ["First document.\nWith two lines.", "Second: ünïcödé ✓", 'Third, with a "quote", and a comma']


def read(files: list[str] | str, **options) -> tuple[list[str], ReadStats]:
    source = SourceConfig(files=files if isinstance(files, list) else [files], **options)
    stats = ReadStats()
    texts = [text for unit in resolve_units("src", source) for text in read_documents(unit, stats)]
    return texts, stats


def write_jsonl(path: Path, records: list[object], opener=open) -> Path:
    with opener(path, "wt", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return path


def test_txt_file_is_one_document(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(DOCS[0], encoding="utf-8")
    assert read(str(tmp_path / "a.txt"))[0] == [DOCS[0]]


def test_jsonl_with_a_text_field(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"id": i, "body": t} for i, t in enumerate(DOCS)])
    texts, stats = read(str(tmp_path / "a.jsonl"), text_field="body")
    assert texts == DOCS and stats.documents == 3


def test_jsonl_records_may_be_plain_strings(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.ndjson", DOCS)
    assert read(str(tmp_path / "a.ndjson"))[0] == DOCS


def test_json_list_and_json_lines_under_a_json_name(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps([{"text": t} for t in DOCS]), encoding="utf-8")
    assert read(str(tmp_path / "list.json"))[0] == DOCS
    (tmp_path / "wrapped.json").write_text(
        json.dumps({"data": [{"text": t} for t in DOCS]}), encoding="utf-8"
    )
    assert read(str(tmp_path / "wrapped.json"))[0] == DOCS
    write_jsonl(tmp_path / "lines.json", [{"text": t} for t in DOCS])
    assert read(str(tmp_path / "lines.json"))[0] == DOCS


def test_gzip_and_zstd_compressed_files(tmp_path: Path) -> None:
    import zstandard

    write_jsonl(tmp_path / "a.jsonl.gz", [{"text": t} for t in DOCS], opener=gzip.open)
    assert read(str(tmp_path / "a.jsonl.gz"))[0] == DOCS
    raw = "".join(json.dumps({"text": t}) + "\n" for t in DOCS).encode()
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert read(str(tmp_path / "b.jsonl.zst"))[0] == DOCS
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(DOCS[1].encode()))
    assert read(str(tmp_path / "c.txt.gz"))[0] == [DOCS[1]]


def test_parquet_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": DOCS, "n": [1, 2, 3]}), tmp_path / "a.parquet")
    assert read(str(tmp_path / "a.parquet"), text_field="content")[0] == DOCS
    with pytest.raises(
        UserError, match=r"a\.parquet: no column 'text' \(columns: content, n\); set sources\.src\.text_field"
    ):
        read(str(tmp_path / "a.parquet"))


def test_csv_and_tsv_columns(tmp_path: Path) -> None:
    with open(tmp_path / "a.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([[i, t] for i, t in enumerate(DOCS)])
    assert read(str(tmp_path / "a.csv"))[0] == DOCS
    with open(tmp_path / "b.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["text"])
        writer.writerows([[t] for t in DOCS])
    assert read(str(tmp_path / "b.tsv"))[0] == DOCS
    with pytest.raises(UserError, match=r"a\.csv:1: no column 'body'"):
        read(str(tmp_path / "a.csv"), text_field="body")


def test_saved_hf_datasets_and_dataset_dicts(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"text": DOCS}).save_to_disk(str(tmp_path / "ds"))
    assert read(str(tmp_path / "ds"))[0] == DOCS
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": DOCS}),
            "validation": datasets.Dataset.from_dict({"text": ["v"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert read(str(tmp_path / "dd"), split="validation")[0] == ["v"]
    with pytest.raises(
        UserError, match=r"no split 'test' \(splits: train, validation\); set sources\.src\.split"
    ):
        read(str(tmp_path / "dd"), split="test")


def test_hub_dataset_by_name_fails_clearly_without_network(monkeypatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("couldn't reach the hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        UserError, match=r"sources\.src\.files\.0: cannot load hub dataset 'org/name'.*without a network"
    ):
        read("hf:org/name")


def test_hub_dataset_rows_are_read(monkeypatch) -> None:
    import datasets

    seen = {}

    def fake(name, split, streaming):
        seen.update(name=name, split=split, streaming=streaming)
        return iter([{"text": t} for t in DOCS])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert read("hf:org/name", split="validation")[0] == DOCS
    assert seen == {"name": "org/name", "split": "validation", "streaming": True}


def test_folders_are_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("b", encoding="utf-8")
    (tmp_path / "d" / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "d" / "sub" / "c.jsonl").write_text('{"text": "c"}\n', encoding="utf-8")
    (tmp_path / "d" / "notes.bin").write_bytes(b"\x00\x01")  # not a data file: ignored
    (tmp_path / "d" / ".hidden.txt").write_text("hidden", encoding="utf-8")
    assert read(str(tmp_path / "d"))[0] == ["a", "b", "c"]


def test_globs_and_duplicates(tmp_path: Path) -> None:
    for name in ("x1.txt", "x2.txt", "y.txt"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    assert read(str(tmp_path / "x*.txt"))[0] == ["x1.txt", "x2.txt"]
    # A file named twice (by a glob and by name) is read once.
    assert read([str(tmp_path / "*.txt"), str(tmp_path / "y.txt")])[0] == ["x1.txt", "x2.txt", "y.txt"]


def test_bundled_sources_use_their_own_split(tmp_path: Path, monkeypatch) -> None:
    from forgetless.data import bundled

    paths = {}
    for split in ("train", "heldout"):
        paths[split] = write_jsonl(
            tmp_path / f"toy.{split}.jsonl.gz",
            [{"id": f"{split}-{i}", "text": f"{split} {i}", "source": "toy"} for i in range(3)],
            opener=gzip.open,
        )
    monkeypatch.setattr(bundled, "parse_ref", lambda ref: ref.removeprefix("bundled:"))
    monkeypatch.setattr(bundled, "corpus_path", lambda name, split: paths[split])
    units = resolve_units("toy", SourceConfig(files=["bundled:toy"], text_field="ignored"))
    assert [u.fixed_split for u in units] == ["train", "heldout"]
    assert [u.text_field for u in units] == ["text", "text"]
    stats = ReadStats()
    assert list(read_documents(units[1], stats)) == ["heldout 0", "heldout 1", "heldout 2"]


def test_invalid_utf8_is_refused_unless_on_error_skip_replaces_and_counts_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"good\nstill good \xff\xfe bad \xc3")
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "ok \xff"}\n{"text": "fine"}\n')
    (tmp_path / "c.csv").write_bytes(b'text\nfine\n"not \xff"\n')
    for name, line in (("a.txt", 2), ("b.jsonl", 1), ("c.csv", 3)):
        with pytest.raises(
            UserError, match=rf"{name}:{line}: not UTF-8 text \(byte 0xff\); .*src\.on_error: skip"
        ):
            read([str(tmp_path / name)])
    texts, stats = read([str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")], on_error="skip")
    assert texts == ["good\nstill good \ufffd\ufffd bad \ufffd", "ok \ufffd", "fine"]
    assert stats.invalid_utf8 == 4


def test_lone_surrogates_from_json_are_replaced_and_counted(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x\\ud800y"}\n', encoding="utf-8")
    stats = ReadStats()
    (unit,) = resolve_units("src", SourceConfig(files=[str(tmp_path / "a.jsonl")]))
    (text,) = list(read_documents(unit, stats))
    clean, data = sources_module.encode_utf8(text, stats)
    assert data == b"x?y" and clean == "x?y" and stats.invalid_utf8 == 1


def test_empty_documents_are_skipped_and_counted(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"text": ""}, {"text": "  \n"}, {"text": None}, {"text": "real"}])
    texts, stats = read(str(tmp_path / "a.jsonl"))
    assert texts == ["real"] and stats.empty_documents == 3 and stats.documents == 1


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    with pytest.raises(UserError, match=r"^sources\.src\.files\.1: .*nope\.jsonl: no such file or folder$"):
        read([str(tmp_path / "a.txt"), str(tmp_path / "nope.jsonl")])


def test_glob_without_match(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"^sources\.src\.files\.0: .*\*\.jsonl: the pattern matches no files$"
    ):
        read(str(tmp_path / "*.jsonl"))


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(UserError, match=r"the folder holds no data files"):
        read(str(tmp_path))


def test_unknown_suffix_asks_for_a_format(tmp_path: Path) -> None:
    (tmp_path / "data.dat").write_text("hello", encoding="utf-8")
    with pytest.raises(UserError, match=r"unknown file type.*set sources\.src\.format"):
        read(str(tmp_path / "data.dat"))
    assert read(str(tmp_path / "data.dat"), format="txt")[0] == ["hello"]


def test_invalid_json_line_fails_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"\n{"text": "three"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}:2: invalid JSON .*on_error: skip$"):
        read(str(path))


def test_invalid_json_lines_can_be_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\nnot json\n{"text": "three"}\n{"body": "x"}\n', encoding="utf-8")
    texts, stats = read(str(path), on_error="skip")
    assert texts == ["one", "three"]
    assert stats.skipped_records == 2
    assert stats.first_skipped.startswith(f"{path}:2: invalid JSON")


def test_missing_text_field_names_file_line_and_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "ok"}, {"content": "no text here"}])
    with pytest.raises(
        UserError,
        match=rf"^{path}:2: no field 'text' in the record \(fields: content\); set sources\.src\.text_field$",
    ):
        read(str(path))


def test_non_text_field_is_bad_input(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": 5}])
    with pytest.raises(UserError, match=rf"^{path}:1: field 'text' is a int, not text$"):
        read(str(path))


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "x"}\n' * 100)[:40])
    with pytest.raises(UserError, match=rf"^{path}:\d+: cannot read \(gzip\)"):
        read(str(path))


def test_fingerprint_changes_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one", encoding="utf-8")
    (unit,) = resolve_units("src", SourceConfig(files=[str(path)]))
    before = unit.fingerprint()
    path.write_text("one more", encoding="utf-8")
    assert unit.fingerprint() != before
