"""Token shards on disk: one split of one source as a flat, memory-mapped token file.

A split directory holds

- `tokens.bin`: every document's token ids, concatenated, each document followed by the EOS id;
  raw little-endian `uint16` when the vocabulary fits in 16 bits, else `uint32` (any tool can read
  it with `numpy.memmap`);
- `doc_offsets.npy`: int64 `[num_documents + 1]`, the token offset where each document starts (the
  last entry is `len(tokens)`), so document `i` is `tokens[doc_offsets[i]:doc_offsets[i + 1]]`,
  its EOS included;
- `doc_bytes.npy`: int64 `[num_documents]`, the UTF-8 length in bytes of each document's text, so
  that losses can be reported in bits per byte;
- `doc_subsources.npy` (only when some document names a sub-source): int32 `[num_documents]`, each
  document's index into the `subsources` list of `meta.json`, -1 for a document without one;
- `meta.json`: the dtype, the counts, the sub-source names and `sha256`, a hash of the tokens and the document
  boundaries (what a sampler reads), so that a resumed run can tell changed data from unchanged.

Splits are written to a temporary directory and renamed into place (`install_dir`), so a reader
never sees a half-written split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARD_FORMAT_VERSION = 1
SUBSOURCES_FILE = "doc_subsources.npy"


def token_dtype(vocab_size: int) -> np.dtype:
    """`uint16` when every id in `[0, vocab_size)` fits in 16 bits, else `uint32`."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


@dataclass
class TokenStore:
    """One split of one source, memory-mapped read-only.

    `tokens` is 1-D (`uint16` or `uint32`); `doc_offsets` is int64 `[num_documents + 1]`;
    `doc_bytes` is int64 `[num_documents]` (UTF-8 bytes of each document's text). When documents
    name a sub-source (the bundled corpora's `source` field, or `sources.<name>.subsource_field`),
    `doc_subsources` is int32 `[num_documents]`, an index into `subsource_names` (-1: none);
    otherwise it is None.
    """

    tokens: np.ndarray
    doc_offsets: np.ndarray
    doc_bytes: np.ndarray
    path: Path | None = None
    sha256: str | None = None  # of the tokens and document boundaries; None for in-memory stores
    doc_subsources: np.ndarray | None = None
    subsource_names: tuple[str, ...] = ()

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_documents(self) -> int:
        return int(self.doc_offsets.shape[0] - 1)

    @property
    def num_bytes(self) -> int:
        return int(self.doc_bytes.sum())

    def document(self, index: int) -> np.ndarray:
        """The tokens of document `index`, its trailing EOS included."""
        return self.tokens[self.doc_offsets[index] : self.doc_offsets[index + 1]]

    def subsource_of(self, indices: np.ndarray) -> list[str | None]:
        """The sub-source name of each document in `indices` (None where it has none)."""
        if self.doc_subsources is None:
            return [None] * len(indices)
        codes = self.doc_subsources[np.asarray(indices, dtype=np.int64)]
        return [self.subsource_names[c] if c >= 0 else None for c in codes.tolist()]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenStore:
        """Open a split directory written by `write_store` (tokens memory-mapped, read-only)."""
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        dtype = np.dtype(meta["dtype"])
        num_tokens = int(meta["num_tokens"])
        if num_tokens:
            tokens = np.memmap(path / "tokens.bin", dtype=dtype, mode="r", shape=(num_tokens,))
        else:  # numpy cannot map an empty file
            tokens = np.zeros(0, dtype=dtype)
        doc_offsets = np.load(path / "doc_offsets.npy")
        doc_bytes = np.load(path / "doc_bytes.npy")
        if doc_offsets[-1] != num_tokens or doc_bytes.shape[0] != doc_offsets.shape[0] - 1:
            raise ValueError(f"{path}: inconsistent token store (offsets do not match the token count)")
        subsources = None
        if (path / SUBSOURCES_FILE).is_file():
            subsources = np.load(path / SUBSOURCES_FILE)
            if subsources.shape[0] != doc_bytes.shape[0]:
                raise ValueError(f"{path}: inconsistent token store (sub-sources do not match the documents)")
        return cls(
            tokens=tokens,
            doc_offsets=doc_offsets,
            doc_bytes=doc_bytes,
            path=path,
            doc_subsources=subsources,
            subsource_names=tuple(meta.get("subsources") or ()),
            sha256=meta.get("sha256"),
        )

    @classmethod
    def from_arrays(
        cls,
        tokens: np.ndarray,
        doc_offsets: np.ndarray,
        doc_bytes: np.ndarray,
        subsources: list[str | None] | None = None,
    ) -> TokenStore:
        """An in-memory store (tests, small corpora); same layout as an opened one. `subsources`
        gives each document's sub-source name (or None)."""
        codes, names = encode_subsources(subsources) if subsources is not None else (None, ())
        return cls(
            tokens=np.asarray(tokens),
            doc_offsets=np.asarray(doc_offsets, dtype=np.int64),
            doc_bytes=np.asarray(doc_bytes, dtype=np.int64),
            doc_subsources=codes,
            subsource_names=names,
        )


def encode_subsources(names: list[str | None]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Per-document sub-source names -> (int32 codes, the names in order of first appearance);
    (None, ()) when no document has one."""
    table: dict[str, int] = {}
    codes = np.fromiter(
        (-1 if name is None else table.setdefault(name, len(table)) for name in names),
        dtype=np.int32,
        count=len(names),
    )
    if not table:
        return None, ()
    return codes, tuple(table)


class StoreWriter:
    """Append documents' tokens to a split directory being written (not yet visible)."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        path.mkdir(parents=True, exist_ok=True)
        self._file = open(path / "tokens.bin", "wb")  # noqa: SIM115 - closed in close()
        self._lengths: list[np.ndarray] = []
        self._bytes: list[np.ndarray] = []
        self._sha256 = hashlib.sha256()
        self._subsource_codes: list[np.ndarray] = []  # int32 per document, -1: none
        self._subsource_table: dict[str, int] = {}
        self.num_tokens = 0

    def append(
        self,
        tokens: np.ndarray,
        doc_lengths: np.ndarray,
        doc_bytes: np.ndarray,
        subsources: list[str | None] | None = None,
    ) -> None:
        """Append documents: `tokens` concatenated (EOS included), with their lengths and byte sizes
        and, optionally, their sub-source names."""
        self.write_tokens(tokens)
        self.add_documents(doc_lengths, doc_bytes, subsources)

    def write_tokens(self, tokens: np.ndarray) -> None:
        """Append raw tokens; `add_documents` must account for them before `close`."""
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
        data = memoryview(tokens).cast("B")
        self._file.write(data)
        self._sha256.update(data)
        self.num_tokens += int(tokens.shape[0])

    def add_documents(
        self, doc_lengths: np.ndarray, doc_bytes: np.ndarray, subsources: list[str | None] | None = None
    ) -> None:
        """Record documents (token lengths, UTF-8 byte sizes and optionally sub-source names) whose
        tokens were written."""
        lengths = np.asarray(doc_lengths, dtype=np.int64)
        self._lengths.append(lengths)
        self._bytes.append(np.asarray(doc_bytes, dtype=np.int64))
        if subsources is None:
            self._subsource_codes.append(np.full(len(lengths), -1, dtype=np.int32))
            return
        if len(subsources) != len(lengths):
            raise ValueError("one sub-source per document")
        table = self._subsource_table
        self._subsource_codes.append(
            np.fromiter(
                (-1 if name is None else table.setdefault(name, len(table)) for name in subsources),
                dtype=np.int32,
                count=len(subsources),
            )
        )

    def close(self, extra_meta: dict | None = None) -> dict:
        """Finish the files and write `meta.json`; returns the meta."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        doc_bytes = np.concatenate(self._bytes) if self._bytes else np.zeros(0, np.int64)
        if offsets[-1] != self.num_tokens:
            raise ValueError("document lengths do not add up to the tokens written")
        np.save(self.path / "doc_offsets.npy", offsets)
        np.save(self.path / "doc_bytes.npy", doc_bytes)
        self._sha256.update(f"|{self.dtype.name}|".encode())
        self._sha256.update(offsets.astype("<i8").tobytes())
        names = tuple(self._subsource_table)
        if names:
            np.save(self.path / SUBSOURCES_FILE, np.concatenate(self._subsource_codes))
        meta = {
            "format_version": SHARD_FORMAT_VERSION,
            "dtype": self.dtype.name,
            "num_tokens": self.num_tokens,
            "num_documents": int(lengths.shape[0]),
            "num_bytes": int(doc_bytes.sum()),
            "sha256": self._sha256.hexdigest(),
            **({"subsources": list(names)} if names else {}),
            **(extra_meta or {}),
        }
        write_json(self.path / "meta.json", meta)
        return meta

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()


def write_store(
    path: str | os.PathLike[str],
    tokens: np.ndarray,
    doc_offsets: np.ndarray,
    doc_bytes: np.ndarray,
    dtype: np.dtype | None = None,
    subsources: list[str | None] | None = None,
) -> TokenStore:
    """Write a whole split at `path` (atomically) and open it."""
    path = Path(path)
    tokens = np.asarray(tokens)
    dtype = np.dtype(dtype) if dtype is not None else token_dtype(int(tokens.max(initial=0)) + 1)
    tmp = temp_dir_beside(path)
    try:
        writer = StoreWriter(tmp, dtype)
        writer.append(tokens, np.diff(np.asarray(doc_offsets, dtype=np.int64)), doc_bytes, subsources)
        writer.close()
        install_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenStore.open(path)


def write_json(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def temp_dir_beside(path: Path) -> Path:
    """A fresh, hidden temporary directory next to `path` (same filesystem, so renames are atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    return tmp


def install_dir(tmp: Path, dest: Path) -> None:
    """Move a finished directory `tmp` to `dest`, replacing an older `dest` if there is one."""
    try:
        os.rename(tmp, dest)
        return
    except OSError:
        if not dest.exists():
            raise
    trash = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(dest, trash)
    try:
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
