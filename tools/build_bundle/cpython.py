"""code: a pinned subset of the CPython 3.11.7 standard library, split at definitions."""

from __future__ import annotations

import re
from pathlib import Path

from tools.build_bundle.common import (
    CODE_PART_WORDS,
    BuildError,
    Document,
    sha256_bytes,
    split_paragraphs,
    words,
)
from tools.build_bundle.pins import STDLIB_SHA256

STDLIB_PACKAGES = (
    "asyncio", "collections", "concurrent", "ctypes", "curses", "dbm", "distutils", "email", "ensurepip",
    "html", "http", "idlelib", "importlib", "json", "lib2to3", "logging", "multiprocessing", "re", "sqlite3",
    "tkinter", "tomllib", "turtledemo", "unittest", "urllib", "venv", "wsgiref", "xml", "xmlrpc", "zoneinfo",
)  # fmt: skip
STDLIB_SKIP = {"this.py", "antigravity.py", "html/entities.py"}  # jokes and a data table
STDLIB_SKIP_DIRS = ("lib2to3/tests/",)  # test inputs in odd encodings and line endings


def select_stdlib_files(stdlib: Path) -> list[str]:
    """The rule behind STDLIB_SHA256: top-level modules plus the packages above with their own tests
    (the stdlib's main test suite, Lib/test/, is not included)."""
    chosen = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib).as_posix()
        parts = rel.split("/")
        if rel in STDLIB_SKIP or rel.startswith(STDLIB_SKIP_DIRS) or "__pycache__" in parts:
            continue
        if len(parts) == 1 or parts[0] in STDLIB_PACKAGES:
            chosen.append(rel)
    return chosen


def code_documents(stdlib: Path) -> list[Document]:
    """One document per file; files over CODE_PART_WORDS words are split at top-level definitions."""
    docs = []
    for rel, expected in STDLIB_SHA256.items():
        path = stdlib / rel
        if not path.is_file():
            raise BuildError(f"{path} is missing: the code corpus needs CPython 3.11.7's standard library")
        data = path.read_bytes()
        if sha256_bytes(data) != expected:
            raise BuildError(
                f"{path}: sha256 differs from the pin; build with CPython 3.11.7 or pass --stdlib"
            )
        text = data.decode("utf-8").replace("\r\n", "\n")
        doc_id = f"cpython/Lib/{rel}"
        header = f"# Lib/{rel}\n"
        pieces = split_code(text)
        for k, piece in enumerate(pieces, 1):
            part_id = doc_id if len(pieces) == 1 else f"{doc_id}#{k}"
            part_head = header if len(pieces) == 1 else f"# Lib/{rel} (part {k} of {len(pieces)})\n"
            docs.append(Document(part_id, part_head + piece.rstrip() + "\n", "cpython", group=doc_id))
    return docs


def split_code(text: str) -> list[str]:
    """Split a module at top-level `def`/`class` (with their decorators and leading comments) into parts of
    at most about CODE_PART_WORDS whitespace words; a class still too long is split between its methods.
    Small modules stay whole; joining the parts with newlines gives the module back."""
    if words(text) <= CODE_PART_WORDS:
        return [text]
    lines = text.split("\n")

    def definition_starts(indent: str, lo: int, hi: int) -> list[int]:
        starts = []
        for i in range(lo, hi):
            if re.match(indent + r"(def|class|async def) ", lines[i]):
                j = i
                while j > lo and lines[j - 1].startswith((indent + "@", indent + "#")):
                    j -= 1
                if j > lo and (not starts or j > starts[-1]):
                    starts.append(j)
        return starts

    starts = [0, *definition_starts("", 0, len(lines))]
    refined = []
    for lo, hi in zip(starts, starts[1:] + [len(lines)], strict=True):
        refined.append(lo)
        if words("\n".join(lines[lo:hi])) > CODE_PART_WORDS:
            refined += definition_starts("    ", lo, hi)
    segments = ["\n".join(lines[a:b]) for a, b in zip(refined, refined[1:] + [len(lines)], strict=True)]
    return ["\n".join(part) for part in split_paragraphs(segments, CODE_PART_WORDS)]
