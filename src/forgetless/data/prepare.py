"""Tokenize every source once into cached, memory-mapped token shards with a held-out split.

`prepare_sources(config, tokenizer)` returns, for each source, a `PreparedSource` with a `train` and a
`heldout` `TokenStore`. Each document is tokenized without special tokens and followed by the
tokenizer's EOS id (no BOS is added).

Cache layout (under `cache_dir`, default `config.cache_dir`, else `$FORGETLESS_CACHE`, else
`~/.cache/forgetless`):

- `documents/<key>/`: the tokenized documents of one file (or saved dataset), keyed by the file's
  path, reading options and tokenizer; `meta.json` records the file's size and modification time. A
  changed file re-tokenizes only itself.
- `sources/<name>-<key>/`: the source's `train/` and `heldout/` splits (see `forgetless.data.shards`)
  assembled from its files, and a `meta.json` with the source fingerprint (every file's size and
  modification time, the held-out setting), the tokenizer fingerprint (a hash of its serialized
  JSON and EOS id) and the counts. When the fingerprint matches, `prepare` does no work at all.

Every directory is written under a temporary name and renamed into place, so a failed or
interrupted prepare never leaves an entry that looks valid. A process writes to the cache only while
it holds the cache's lock (`cache_dir/.lock`, see `forgetless.file_lock`): a second process that
needs to write waits for the first and then finds what the first wrote. While it holds the lock, a
prepare removes the temporary folders that killed or failed prepares left behind.

Each split's `meta.json` carries `sha256`, a hash of its tokens and document boundaries: a resumed
run compares it with the one it started with (`forgetless.data.sampler`).

Held-out split: documents are ranked by a hash of their text (so exact duplicates always land on
the same side) and taken in that order, per source:

- `heldout: {documents: N}`: the first N documents;
- `heldout: {tokens: N}`: the fewest documents that hold at least N tokens;
- neither: the fewest documents holding at least `min(100_000, 10% of the source's tokens)` tokens,
  at least one document, but never the only document (a one-document source has no held-out set).

A held-out size that would leave no training document is an error naming
`sources.<name>.heldout`. Bundled corpora (`bundled:<name>`) keep their own train/held-out split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.config import HeldoutConfig, RunConfig, SourceConfig, check_folder
from forgetless.console import fit_lines, format_duration, resolve_progress, write_json_line, write_line
from forgetless.data.shards import (
    StoreWriter,
    TokenStore,
    install_dir,
    temp_dir_beside,
    token_dtype,
    write_json,
)
from forgetless.data.sources import ReadStats, SourceUnit, encode_utf8, read_records, resolve_units
from forgetless.errors import RunFailed, UserError, is_disk_full
from forgetless.file_lock import FolderLock, LockHeld

CACHE_FORMAT_VERSION = 1
DEFAULT_HELDOUT_TOKENS = 100_000
DEFAULT_HELDOUT_FRACTION = 0.1

# A batch goes to the tokenizer when it holds this many documents or bytes. Batches are encoded by
# one thread per core, each batch on one thread (the tokenizer's own threads are off meanwhile):
# small batches keep every core busy to the end and cost no coordination between threads, which on
# the reference machine made tokenizing 9% faster than handing the tokenizer large batches to split.
_BATCH_DOCUMENTS = 64
_BATCH_BYTES = 256 << 10
# A longer document is encoded in pieces of about this many characters (`_encode_in_pieces`).
_PIECE_CHARS = 1 << 20


@dataclass
class PreparedSource:
    """A tokenized source: its training and held-out splits and the `meta.json` of the cache entry."""

    name: str
    train: TokenStore
    heldout: TokenStore
    meta: dict[str, Any]
    cached: bool = False  # True when this call found the entry up to date and did no work
    path: Path | None = None


# ---------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class TokenizerInfo:
    """The Rust tokenizer used for encoding (truncation and padding off) and what identifies it."""

    backend: Any  # tokenizers.Tokenizer
    eos_id: int
    vocab_size: int
    fingerprint: str
    name: str

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)


def tokenizer_info(tokenizer: Any) -> TokenizerInfo:
    """Describe a Hugging Face fast tokenizer (or a `tokenizers.Tokenizer` with an EOS token)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and isinstance(tokenizer, Tokenizer):
        backend = tokenizer
    if backend is None:
        raise UserError(
            f"tokenizer: {type(tokenizer).__name__} is a slow tokenizer; forgetless needs a fast "
            "(Rust) tokenizer: save it with tokenizer.json"
        )
    serialized = backend.to_str()
    if isinstance(tokenizer, Tokenizer):
        eos_id = next(
            (
                tokenizer.token_to_id(t)
                for t in ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")
                if tokenizer.token_to_id(t) is not None
            ),
            None,
        )
        vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        name = "tokenizers.Tokenizer"
    else:
        eos_id = tokenizer.eos_token_id
        vocab_size = len(tokenizer)
        name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    if eos_id is None:
        raise UserError(f"tokenizer: {name} has no EOS token; documents need one to be separated")
    encoder = Tokenizer.from_str(serialized)
    encoder.no_truncation()
    encoder.no_padding()
    digest = hashlib.sha256(serialized.encode("utf-8"))
    digest.update(f"\neos={eos_id}".encode())
    return TokenizerInfo(encoder, int(eos_id), int(vocab_size), digest.hexdigest(), name)


def check_vocab_fits(config: RunConfig, vocab_size: int, model_rows: int | None = None) -> None:
    """Raise `UserError` when the tokenizer can produce ids beyond the model's embedding rows
    (`model_rows` when the caller has the model, else read from `config.model`)."""
    if model_rows is not None:
        if vocab_size > model_rows:
            raise UserError(
                f"tokenizer: the tokenizer has {vocab_size} tokens but the model's embedding has {model_rows} rows; "
                "use the model's own tokenizer"
            )
        return
    init = config.model.init
    if init is not None and init.vocab_size is not None and vocab_size > init.vocab_size:
        raise UserError(
            f"model.init.vocab_size: {init.vocab_size} is smaller than the tokenizer's {vocab_size} tokens"
        )
    if config.model.path is None:
        return
    model_config = Path(config.model.path) / "config.json"
    if not model_config.is_file():
        return
    try:
        data = json.loads(model_config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return  # the model loader reports a broken config.json
    embed = data.get("vocab_size") or (data.get("text_config") or {}).get("vocab_size")
    if isinstance(embed, int) and vocab_size > embed:
        raise UserError(
            f"{'tokenizer' if config.tokenizer else 'model.path'}: the tokenizer has {vocab_size} tokens "
            f"but the model's embedding has {embed} rows ({model_config}: vocab_size); use the model's "
            "own tokenizer"
        )


# ---------------------------------------------------------------------------------------------
# Entry points


def default_cache_dir(config: RunConfig | None = None) -> Path:
    if config is not None and config.cache_dir:
        return Path(config.cache_dir)
    if os.environ.get("FORGETLESS_CACHE"):
        return Path(os.environ["FORGETLESS_CACHE"]).expanduser()
    return Path.home() / ".cache" / "forgetless"


def prepare_sources(
    config: RunConfig,
    tokenizer: Any,
    *,
    cache_dir: Path | None = None,
    sources: list[str] | None = None,
    progress: bool | str = True,
    model_rows: int | None = None,
) -> dict[str, PreparedSource]:
    """Tokenize (or find in the cache) every source of `config`, or the named ones, in config order.
    `progress`: a display mode of `forgetless.console` (True: auto, False: quiet).

    A source whose fingerprint matches its cache entry is opened without any tokenization.
    `model_rows`: the embedding rows of the model the tokens are for (default: read from the
    config's model), which the tokenizer's ids must fit.
    """
    names = list(config.sources) if sources is None else list(sources)
    for name in names:
        if name not in config.sources:
            raise UserError(f"sources: unknown source {name!r}; sources: {sorted(config.sources)}")
    info = tokenizer_info(tokenizer)
    check_vocab_fits(config, info.vocab_size, model_rows)
    cache = check_folder(cache_dir if cache_dir is not None else default_cache_dir(config), "cache_dir")
    _clear_leftovers_if_idle(cache)
    reporter = _Reporter(progress)
    try:
        return {name: _prepare_source(name, config.sources[name], info, cache, reporter) for name in names}
    finally:
        reporter.close()


def prepare_files(
    name: str,
    source: SourceConfig,
    tokenizer: Any,
    cache_dir: Path | None = None,
    *,
    progress: bool | str = False,
) -> PreparedSource:
    """Tokenize (or find in the cache) one source described outside a run config."""
    info = tokenizer_info(tokenizer)
    cache = check_folder(cache_dir or default_cache_dir(), "cache_dir")
    _clear_leftovers_if_idle(cache)
    reporter = _Reporter(progress)
    try:
        return _prepare_source(name, source, info, cache, reporter)
    finally:
        reporter.close()


# ---------------------------------------------------------------------------------------------
# One source


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _unit_key(unit: SourceUnit, tok: TokenizerInfo | str) -> str:
    fingerprint = tok if isinstance(tok, str) else tok.fingerprint
    return _hash({"v": CACHE_FORMAT_VERSION, "unit": unit.identity(), "tokenizer": fingerprint})[:32]


def _prepare_source(
    name: str, source: SourceConfig, tok: TokenizerInfo, cache: Path, reporter: _Reporter
) -> PreparedSource:
    units = resolve_units(name, source)
    unit_keys = [_unit_key(u, tok) for u in units]
    heldout_setting = source.heldout.model_dump(exclude_none=True)
    entry_key = _hash(
        {
            "v": CACHE_FORMAT_VERSION,
            "name": name,
            "units": unit_keys,
            "splits": [u.fixed_split for u in units],
        }
    )
    entry = cache / "sources" / f"{_safe(name)}-{entry_key[:16]}"
    fingerprints = [u.fingerprint() for u in units]
    fingerprint = _hash({"entry": entry_key, "files": fingerprints, "heldout": heldout_setting})

    found = _open_entry(name, entry, fingerprint)
    if found is not None:
        reporter.note(f"{name}: up to date, nothing to do", _counts(found.meta))
        return found
    with _writing(cache, reporter):
        found = _open_entry(name, entry, fingerprint)  # written meanwhile by the process we waited for
        if found is not None:
            reporter.note(f"{name}: prepared by another process", _counts(found.meta))
            return found
        return _write_source(
            name, source, tok, cache, reporter, units, fingerprints, entry, fingerprint, heldout_setting
        )


def _write_source(
    name: str,
    source: SourceConfig,
    tok: TokenizerInfo,
    cache: Path,
    reporter: _Reporter,
    units: list[SourceUnit],
    fingerprints: list[list[Any]],
    entry: Path,
    fingerprint: str,
    heldout_setting: dict[str, Any],
) -> PreparedSource:
    unit_dirs = [cache / "documents" / _unit_key(unit, tok) for unit in units]
    todo = [
        (unit, d, fp)
        for unit, d, fp in zip(units, unit_dirs, fingerprints, strict=True)
        if not _unit_is_current(d, fp)
    ]
    if todo:
        _tokenize_units(name, todo, tok, reporter)
    tokenized = [unit.location for unit, _, _ in todo]
    meta = _assemble(name, source, units, unit_dirs, tok, entry, fingerprint, heldout_setting, tokenized)
    prepared = _open_entry(name, entry, fingerprint)
    if prepared is None:  # pragma: no cover - only if the entry was removed under us
        raise RuntimeError(f"{entry}: the cache entry vanished after it was written")
    prepared.cached = False
    done = f"tokenized {len(todo)} of {len(units)} files" if todo else "built from already tokenized files"
    reporter.note(f"{name}: {done}", _counts(meta))
    return prepared


@contextlib.contextmanager
def _writing(cache: Path, reporter: _Reporter) -> Iterator[None]:
    """Hold the cache's lock while writing to it: another process preparing into the same cache
    waits (and then finds its entries written). Clears what killed writers left, and names the
    cache when its disk fills up."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cache_dir: cannot create the token cache {cache} ({err.strerror})") from None
    lock = FolderLock(cache)

    def waiting(held: LockHeld) -> None:
        print(f"waiting for {held.who}, which is writing to the token cache {cache}", file=sys.stderr)

    lock.acquire(wait=True, on_wait=waiting)
    try:
        if lock.held:
            clear_cache_leftovers(cache)
        yield
    except Exception as err:
        if is_disk_full(err):
            raise RunFailed(
                f"no space left on device while writing the token cache {cache}; free some space there or "
                "set cache_dir (or FORGETLESS_CACHE) to a folder on a larger disk, then run again"
            ) from None
        raise
    finally:
        lock.release()


# What writers leave for a moment beside a cache entry (`temp_dir_beside`, `install_dir`), and a
# killed or failed one for good.
_LEFTOVER = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{12}$")


def clear_cache_leftovers(cache: Path) -> list[Path]:
    """Remove temporary folders that killed or failed prepares left in `cache` (call only while
    holding its lock); return what was removed."""
    removed = []
    for folder in (cache / "documents", cache / "sources", cache / "subsets"):
        if folder.is_dir():
            for path in folder.iterdir():
                if _LEFTOVER.match(path.name):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
    return removed


def _clear_leftovers_if_idle(cache: Path) -> None:
    """Clear leftovers even when nothing needs writing, unless a prepare is writing right now."""
    folders = [cache / "documents", cache / "sources"]
    if not any(_LEFTOVER.match(p.name) for folder in folders if folder.is_dir() for p in folder.iterdir()):
        return
    lock = FolderLock(cache)
    try:
        lock.acquire()
    except LockHeld:
        return  # its temporary folders are in use; a later prepare clears what is left
    try:
        if lock.held:
            clear_cache_leftovers(cache)
    finally:
        lock.release()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:64] or "source"


def _counts(meta: dict[str, Any]) -> list[str]:
    train, held = meta["train"], meta["heldout"]
    return [
        f"train {train['documents']:,} documents / {train['tokens']:,} tokens",
        f"held-out {held['documents']:,} / {held['tokens']:,}",
    ]


def _open_entry(name: str, entry: Path, fingerprint: str) -> PreparedSource | None:
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("fingerprint") != fingerprint:
            return None
        train = TokenStore.open(entry / "train")
        heldout = TokenStore.open(entry / "heldout")
    except (OSError, ValueError, KeyError):
        return None
    if train.sha256 is None or heldout.sha256 is None:
        return None  # written before splits carried their hash: assembled again (no tokenizing)
    return PreparedSource(name=name, train=train, heldout=heldout, meta=meta, cached=True, path=entry)


def _unit_is_current(unit_dir: Path, fingerprint: list[Any]) -> bool:
    try:
        meta = json.loads((unit_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("fingerprint") == fingerprint and (unit_dir / "doc_hash.npy").is_file()


# ---------------------------------------------------------------------------------------------
# Tokenizing files


@dataclass
class _Batch:
    texts: list[str] = field(default_factory=list)
    subsources: list[str | None] = field(default_factory=list)
    doc_bytes: list[int] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    segments: list[tuple[int, int]] = field(default_factory=list)  # (unit index, documents), in order
    finished: list[int] = field(default_factory=list)  # units whose last document is in this batch
    num_bytes: int = 0

    def add(self, unit_index: int, text: str, data: bytes, subsource: str | None = None) -> None:
        self.texts.append(text)
        self.subsources.append(subsource)
        self.doc_bytes.append(len(data))
        self.hashes.append(hashlib.blake2b(data, digest_size=8).digest())
        self.num_bytes += len(data)
        if self.segments and self.segments[-1][0] == unit_index:
            self.segments[-1] = (unit_index, self.segments[-1][1] + 1)
        else:
            self.segments.append((unit_index, 1))


def _batches(units: list[SourceUnit], stats: list[ReadStats], stop: threading.Event) -> Iterator[_Batch]:
    """Read the units' documents into batches that may span files (small files share a batch)."""
    batch = _Batch()
    for i, unit in enumerate(units):
        for text, subsource in read_records(unit, stats[i]):
            text, data = encode_utf8(text, stats[i])
            batch.add(i, text, data, subsource)
            if len(batch.texts) >= _BATCH_DOCUMENTS or batch.num_bytes >= _BATCH_BYTES:
                yield batch
                batch = _Batch()
                if stop.is_set():
                    return
        batch.finished.append(i)
    yield batch


def _prefetch(iterator: Iterator[_Batch], stop: threading.Event, depth: int = 3) -> Iterator[_Batch]:
    """Run `iterator` in a thread (reading and parsing overlap with encoding, which frees the GIL)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for item in iterator:
                q.put(("item", item))
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(("error", err))

    thread = threading.Thread(target=produce, name="forgetless-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _SerialTokenizer:
    """Set `TOKENIZERS_PARALLELISM=false` (the Rust tokenizer reads it at every batch call) until
    `restore()`, which puts back what the environment held before. Set and restored while no
    encoder thread runs."""

    VARIABLE = "TOKENIZERS_PARALLELISM"

    def __init__(self) -> None:
        self.before = os.environ.get(self.VARIABLE)
        os.environ[self.VARIABLE] = "false"

    def restore(self) -> None:
        if self.before is None:
            os.environ.pop(self.VARIABLE, None)
        else:
            os.environ[self.VARIABLE] = self.before


def _encode(batch: _Batch, tok: TokenizerInfo) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of the batch, each document followed by EOS, and each document's length."""
    encode = getattr(tok.backend, "encode_batch_fast", tok.backend.encode_batch)
    eos = np.array([tok.eos_id], dtype=tok.dtype)
    parts: list[np.ndarray] = []
    if any(len(text) > _PIECE_CHARS for text in batch.texts):
        for text in batch.texts:
            parts += [_encode_in_pieces(text, tok), eos]
    else:
        for enc in encode(batch.texts, add_special_tokens=False):
            parts.append(np.array(enc.ids, dtype=tok.dtype))  # one array per document: the fastest way
            parts.append(eos)  # from the encoder's lists to one flat array
    lengths = np.fromiter((len(ids) + 1 for ids in parts[::2]), dtype=np.int64, count=len(parts) // 2)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=tok.dtype)
    return tokens, lengths


def _encode_in_pieces(text: str, tok: TokenizerInfo) -> np.ndarray:
    """The ids of one document (no EOS), encoded `_PIECE_CHARS` characters at a time.

    The encoder keeps over a hundred bytes of bookkeeping per token until it returns, so a 50 MB
    document encoded at once takes gigabytes; in pieces it takes what one piece takes. Each piece
    ends at a clean cut (`_clean_cut`), where the ids of the pieces are those of the whole.
    """
    pieces, start = [], 0
    while len(text) - start > _PIECE_CHARS:
        cut = _clean_cut(text, start + _PIECE_CHARS // 2, start + _PIECE_CHARS, tok)
        pieces.append(_ids(text[start:cut], tok))
        start = cut
    pieces.append(_ids(text[start:], tok))
    return np.concatenate(pieces)


def _ids(text: str, tok: TokenizerInfo) -> np.ndarray:
    return np.array(tok.backend.encode(text, add_special_tokens=False).ids, dtype=tok.dtype)


# Where a cut may fall: before whitespace that follows a non-space, or before a letter or digit that
# follows punctuation (where pre-tokenizers split; scripts without spaces have punctuation).
_CUT_CANDIDATE = re.compile(r"(?<=\S)\s|(?<=[^\w\s])\w")
_CUT_WINDOW = 256


def _clean_cut(text: str, low: int, high: int, tok: TokenizerInfo) -> int:
    """A position in `(low, high]` where encoding the text on both sides separately gives the same ids
    as encoding it whole, checked on `_CUT_WINDOW` characters either side; the last such candidate,
    else `high` (then the ids near that one cut may differ from the whole document's)."""
    found = [m.start() for m in _CUT_CANDIDATE.finditer(text, low + 1, high + 1)]
    for cut in reversed(found[-16:]):
        left, right = text[max(0, cut - _CUT_WINDOW) : cut], text[cut : cut + _CUT_WINDOW]
        whole = tok.backend.encode(left + right, add_special_tokens=False).ids
        if whole == _ids(left, tok).tolist() + _ids(right, tok).tolist():
            return cut
    return high


def _tokenize_units(
    name: str, todo: list[tuple[SourceUnit, Path, list[Any]]], tok: TokenizerInfo, reporter: _Reporter
) -> None:
    """Tokenize the files of `todo` into their cache directories.

    Three things overlap: a thread reads and parses the files into batches, one thread per core
    encodes them (the Rust encoder frees the GIL), and this thread writes the encoded batches in
    order, with one more batch in flight than there are encoders so that none waits for work.
    """
    units = [unit for unit, _, _ in todo]
    stats = [ReadStats() for _ in units]
    writers: dict[int, StoreWriter] = {}
    hashes: dict[int, list[bytes]] = {}
    temps: dict[int, Path] = {}
    stop = threading.Event()
    task = reporter.start(name)
    serial = _SerialTokenizer()  # before any thread starts: parallel across batches instead
    batches = _prefetch(_batches(units, stats, stop), stop)
    workers = _cores()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forgetless-encode")
    in_flight: deque[tuple[_Batch, Future[tuple[np.ndarray, np.ndarray]] | None]] = deque()

    def write(batch: _Batch, encoded: Future[tuple[np.ndarray, np.ndarray]] | None) -> None:
        if encoded is not None:
            tokens, lengths = encoded.result()
            _write_batch(batch, tokens, lengths, todo, writers, hashes, temps, tok)
            reporter.advance(task, len(batch.texts), int(tokens.shape[0]))
        for i in batch.finished:
            _finish_unit(i, todo[i], stats[i], writers, hashes, temps, tok)

    try:
        for batch in batches:
            in_flight.append((batch, pool.submit(_encode, batch, tok) if batch.texts else None))
            if len(in_flight) > workers:
                write(*in_flight.popleft())
        while in_flight:
            write(*in_flight.popleft())
    finally:
        stop.set()
        batches.close()  # stops the reading thread now, not when a traceback lets go of the frame
        pool.shutdown(wait=True, cancel_futures=True)
        serial.restore()  # every encoder has stopped
        for i, writer in writers.items():
            writer.abort()
            shutil.rmtree(temps[i], ignore_errors=True)
        reporter.stop(task)


def _write_batch(
    batch: _Batch,
    tokens: np.ndarray,
    lengths: np.ndarray,
    todo: list[tuple[SourceUnit, Path, list[Any]]],
    writers: dict[int, StoreWriter],
    hashes: dict[int, list[bytes]],
    temps: dict[int, Path],
    tok: TokenizerInfo,
) -> None:
    """Append an encoded batch to the writers of the files its documents came from."""
    doc_bytes = np.asarray(batch.doc_bytes, dtype=np.int64)
    doc_start = tok_start = 0
    for i, count in batch.segments:
        if i not in writers:
            temps[i] = temp_dir_beside(todo[i][1])
            writers[i] = StoreWriter(temps[i], tok.dtype)
            hashes[i] = []
        doc_stop = doc_start + count
        tok_stop = tok_start + int(lengths[doc_start:doc_stop].sum())
        writers[i].append(
            tokens[tok_start:tok_stop],
            lengths[doc_start:doc_stop],
            doc_bytes[doc_start:doc_stop],
            batch.subsources[doc_start:doc_stop],
        )
        hashes[i].extend(batch.hashes[doc_start:doc_stop])
        doc_start, tok_start = doc_stop, tok_stop


def _finish_unit(
    i: int,
    item: tuple[SourceUnit, Path, list[Any]],
    stats: ReadStats,
    writers: dict[int, StoreWriter],
    hashes: dict[int, list[bytes]],
    temps: dict[int, Path],
    tok: TokenizerInfo,
) -> None:
    unit, unit_dir, fingerprint = item
    if i not in writers:  # a file without documents
        temps[i] = temp_dir_beside(unit_dir)
        writers[i] = StoreWriter(temps[i], tok.dtype)
        hashes[i] = []
    np.save(temps[i] / "doc_hash.npy", np.frombuffer(b"".join(hashes[i]), dtype="<u8"))
    writers[i].close(
        {
            "fingerprint": fingerprint,
            "unit": unit.identity(),
            "tokenizer": tok.fingerprint,
            "read": stats.as_dict(),
            "first_skipped": stats.first_skipped,
        }
    )
    install_dir(temps[i], unit_dir)
    del writers[i], hashes[i], temps[i]


# ---------------------------------------------------------------------------------------------
# Assembling a source from its files


def select_heldout(
    doc_hashes: np.ndarray, doc_tokens: np.ndarray, heldout: HeldoutConfig, key: str
) -> np.ndarray:
    """A boolean mask over documents: True for held-out ones (see the module docstring for the rule)."""
    n = int(doc_hashes.shape[0])
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.argsort(doc_hashes, kind="stable")
    total = int(doc_tokens.sum())
    explicit = heldout.documents is not None or heldout.tokens is not None
    if heldout.documents is not None:
        if heldout.documents >= n:
            raise UserError(
                f"{key}.documents: {heldout.documents:,} held-out documents, but the source has only "
                f"{n:,} documents; lower it so that some remain for training"
            )
        count = heldout.documents
    else:
        if heldout.tokens is not None:
            target = heldout.tokens
            if target >= total:
                raise UserError(
                    f"{key}.tokens: {target:,} held-out tokens, but the source has only {total:,} tokens; "
                    "lower it so that some remain for training"
                )
        else:
            target = min(DEFAULT_HELDOUT_TOKENS, math.ceil(DEFAULT_HELDOUT_FRACTION * total))
        cumulative = np.cumsum(doc_tokens[order])
        count = int(np.searchsorted(cumulative, target, side="left")) + 1
    sorted_hashes = doc_hashes[order]
    # Exact duplicates share a hash: keep them all on the held-out side.
    count = int(np.searchsorted(sorted_hashes, sorted_hashes[count - 1], side="right"))
    if count >= n:
        if explicit:
            raise UserError(
                f"{key}: the held-out set would take every document of the source ({n:,}); lower it"
            )
        return mask  # a single (distinct) document: keep it for training
    mask[order[:count]] = True
    return mask


def heldout_masks(
    name: str, source: SourceConfig, units: list[SourceUnit], unit_dirs: list[Path], stores: list[TokenStore]
) -> list[np.ndarray]:
    """Per file of the source, a boolean mask over its documents: True for held-out ones."""
    splittable = [i for i, u in enumerate(units) if u.fixed_split is None]
    masks: dict[int, np.ndarray] = {}
    if splittable:
        hashes = np.concatenate([np.load(unit_dirs[i] / "doc_hash.npy") for i in splittable])
        doc_tokens = np.concatenate([np.diff(stores[i].doc_offsets) for i in splittable])
        mask = select_heldout(hashes, doc_tokens, source.heldout, f"sources.{name}.heldout")
        start = 0
        for i in splittable:
            masks[i] = mask[start : start + stores[i].num_documents]
            start += stores[i].num_documents
    for i, unit in enumerate(units):
        if unit.fixed_split is not None:
            masks[i] = np.full(stores[i].num_documents, unit.fixed_split == "heldout")
    return [masks[i] for i in range(len(units))]


def unit_dirs(
    name: str, source: SourceConfig, tokenizer_fingerprint: str, cache: Path
) -> tuple[list[SourceUnit], list[Path]]:
    """The files of a source and the cache folders of their tokenized documents."""
    units = resolve_units(name, source)
    return units, [cache / "documents" / _unit_key(unit, tokenizer_fingerprint) for unit in units]


def _assemble(
    name: str,
    source: SourceConfig,
    units: list[SourceUnit],
    unit_dirs: list[Path],
    tok: TokenizerInfo,
    entry: Path,
    fingerprint: str,
    heldout_setting: dict[str, Any],
    tokenized: list[str],
) -> dict[str, Any]:
    stores = [TokenStore.open(d) for d in unit_dirs]
    unit_metas = [json.loads((d / "meta.json").read_text(encoding="utf-8")) for d in unit_dirs]
    masks = heldout_masks(name, source, units, unit_dirs, stores)

    read = ReadStats()
    for m in unit_metas:
        read.add(ReadStats(**m["read"]))
    if sum(s.num_documents for s in stores) == 0:
        where = ", ".join(source.files[:3]) + (" ..." if len(source.files) > 3 else "")
        raise UserError(f"sources.{name}.files: no documents in {where} (the source is empty)")

    tmp = temp_dir_beside(entry)
    try:
        split_meta = {}
        for split, want_heldout in (("train", False), ("heldout", True)):
            writer = StoreWriter(tmp / split, tok.dtype)
            try:
                for i, store in enumerate(stores):
                    _copy_documents(store, masks[i] == want_heldout, writer)
                split_meta[split] = writer.close({"source": name, "split": split})
            finally:
                writer.abort()
        if split_meta["train"]["num_tokens"] == 0:
            raise UserError(f"sources.{name}: every document is held out; nothing is left for training")
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "name": name,
            "fingerprint": fingerprint,
            "tokenizer": {
                "fingerprint": tok.fingerprint,
                "name": tok.name,
                "eos_id": tok.eos_id,
                "vocab_size": tok.vocab_size,
                "dtype": tok.dtype.name,
            },
            "files": [
                {
                    "location": unit.location,
                    "format": unit.format,
                    "compression": unit.compression,
                    "split": unit.fixed_split or "by hash",
                    "documents": store.num_documents,
                    "tokens": store.num_tokens,
                    **{k: v for k, v in m["read"].items() if k != "documents" and v},
                }
                for unit, store, m in zip(units, stores, unit_metas, strict=True)
            ],
            "heldout_setting": heldout_setting or "default",
            "train": _split_counts(split_meta["train"]),
            "heldout": _split_counts(split_meta["heldout"]),
            "read": read.as_dict(),
            "first_skipped": read.first_skipped,
            "tokenized_files": tokenized,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(tmp / "meta.json", meta)
        install_dir(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _split_counts(meta: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "documents": meta["num_documents"],
        "tokens": meta["num_tokens"],
        "bytes": meta["num_bytes"],
    }
    if meta.get("subsources"):
        counts["subsources"] = list(meta["subsources"])
    return counts


def _copy_documents(store: TokenStore, keep: np.ndarray, writer: StoreWriter) -> None:
    """Append the documents of `store` where `keep` is True, copying runs of documents at once."""
    if not keep.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8)))
    lengths = np.diff(store.doc_offsets)
    for first, last in zip(edges[0::2], edges[1::2], strict=True):
        start, stop = int(store.doc_offsets[first]), int(store.doc_offsets[last])
        for chunk in range(start, stop, 1 << 26):  # bounded memory for huge files
            writer.write_tokens(store.tokens[chunk : min(stop, chunk + (1 << 26))])
        subsources = store.subsource_of(np.arange(first, last)) if store.doc_subsources is not None else None
        writer.add_documents(lengths[first:last], store.doc_bytes[first:last], subsources)


# ---------------------------------------------------------------------------------------------
# Progress


class _Reporter:
    """Tokenizing progress on stderr in the mode `progress` asks for (see `forgetless.console`): a
    live bar (documents, tokens, throughput), plain lines (every `PLAIN_EVERY_S` seconds and when a
    source is done), JSON lines on stdout, or nothing. Status notes are one line each, never wrapped."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, progress: bool | str) -> None:
        self.mode = resolve_progress(progress)
        self.enabled = self.mode != "quiet"
        self._progress: Any = None
        self._names: dict[Any, str] = {}
        self._started: dict[Any, float] = {}
        self._shown: dict[Any, float] = {}
        self._tokens: dict[Any, int] = {}
        self._docs: dict[Any, int] = {}

    def _bar(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.fields[docs]:>12,} documents"),
                TextColumn("{task.fields[tokens]:>14,} tokens"),
                TextColumn("{task.fields[rate]:>8.2f} M tokens/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self._progress

    def start(self, name: str) -> Any:
        if not self.enabled:
            return None
        task: Any = (
            self._bar().add_task(f"tokenizing {name}", docs=0, tokens=0, rate=0.0)
            if (self.mode == "live")
            else len(self._names)
        )
        self._names[task] = name
        self._started[task] = self._shown[task] = time.perf_counter()
        self._tokens[task] = 0
        self._docs[task] = 0
        return task

    def advance(self, task: Any, docs: int, tokens: int) -> None:
        if task is None:
            return
        self._tokens[task] += tokens
        self._docs[task] += docs
        now = time.perf_counter()
        rate = self._tokens[task] / max(now - self._started[task], 1e-9) / 1e6
        if self.mode == "live":
            self._progress.update(task, docs=self._docs[task], tokens=self._tokens[task], rate=rate)
        elif now - self._shown[task] >= self.PLAIN_EVERY_S:
            self._shown[task] = now
            self._line(task, done=False)

    def stop(self, task: Any) -> None:
        if task is None:
            return
        if self.mode == "live":
            self._progress.stop_task(task)
        else:
            self._line(task, done=True)

    def _line(self, task: Any, *, done: bool) -> None:
        name, docs, tokens = self._names[task], self._docs[task], self._tokens[task]
        elapsed = time.perf_counter() - self._started[task]
        if self.mode == "json":
            write_json_line(
                {
                    "kind": "prepare",
                    "source": name,
                    "documents": docs,
                    "tokens": tokens,
                    "elapsed_s": elapsed,
                    "done": done,
                }
            )
            return
        rate = tokens / max(elapsed, 1e-9) / 1e6
        state = "tokenized" if done else "tokenizing"
        write_line(
            f"{state} {name}: {docs:,} documents, {tokens:,} tokens, {rate:.2f} M tokens/s, "
            f"{format_duration(elapsed)}"
        )

    def note(self, head: str, details: list[str] | None = None) -> None:
        """A status line: `head (detail, detail)`; plain lines split between details."""
        if not self.enabled:
            return
        message = f"{head} ({', '.join(details)})" if details else head
        if self.mode == "json":
            write_json_line({"kind": "message", "text": message})
        elif self.mode == "plain":
            for line in fit_lines(f"{head}: " if details else head, details or []):
                write_line(line)
        elif self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            from rich.console import Console

            Console(stderr=True).print(message, markup=False, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
