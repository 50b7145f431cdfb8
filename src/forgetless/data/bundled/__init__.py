"""The data that ships with forgetless: three corpora, a tokenizer and two multiple-choice question sets.

Everything sits beside this module and is written by `tools/build_bundle/` (`python -m tools.build_bundle`):

    corpora/<corpus>.<split>.jsonl.gz   one document per line: {"id", "text", "source"}
    tokenizer/                          a Hugging Face tokenizer directory (byte-level BPE, vocab 8192)
    mcq/<set>.jsonl                     {"id", "question", "choices": [4 strings], "answer": int, "source"}
    manifest.json                       documents, words, tokens and bytes per split; items per set
    LICENSES.md                         every source with its version, license and attribution

In a run config, `bundled:<name>` names a corpus (`bundled:security`) or a question set
(`bundled:security-mcq`); `parse_ref` turns it into the name. Unknown names raise `UserError`.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from forgetless.errors import UserError

CORPORA: tuple[str, ...] = ("general", "security", "code")
QUESTION_SETS: tuple[str, ...] = ("security-mcq", "general-mcq")
SPLITS: tuple[str, ...] = ("train", "heldout")
REF_PREFIX = "bundled:"
SUBSOURCE_FIELD = "source"  # every bundled document names its sub-corpus (manifest `by_source`)


def bundle_dir() -> Path:
    """The folder that holds the bundled files."""
    return Path(__file__).resolve().parent


def is_ref(ref: object) -> bool:
    """True for strings of the form `bundled:<anything>` (valid or not)."""
    return isinstance(ref, str) and ref.startswith(REF_PREFIX)


def parse_ref(ref: str) -> str:
    """`bundled:security` -> `security`; `bundled:security-mcq` -> `security-mcq`."""
    if not is_ref(ref):
        raise UserError(f"{ref!r} is not a bundled reference; write bundled:<name>, e.g. bundled:general")
    return _known(ref[len(REF_PREFIX) :], CORPORA + QUESTION_SETS, "bundled data", ref, prefix=REF_PREFIX)


def corpus_path(name: str, split: str) -> Path:
    """The `.jsonl.gz` file of one split ("train" or "heldout") of a bundled corpus."""
    name = _known(_strip(name), CORPORA, "bundled corpus", name)
    split = _known(split, SPLITS, "split", split)
    return _existing(bundle_dir() / "corpora" / f"{name}.{split}.jsonl.gz")


def iter_documents(name: str, split: str) -> Iterator[dict]:
    """The documents of one split, in file order, as dicts with "id", "text" and "source".

    Names are checked now, not at the first `next()`."""
    path = corpus_path(name, split)
    return _read_jsonl(path, lambda: gzip.open(path, "rt", encoding="utf-8"))


def tokenizer_dir() -> Path:
    """The bundled tokenizer, loadable with `AutoTokenizer.from_pretrained(tokenizer_dir())`."""
    return _existing(bundle_dir() / "tokenizer" / "tokenizer.json").parent


def mcq_path(name: str) -> Path:
    """The `.jsonl` file of a bundled question set."""
    name = _known(_strip(name), QUESTION_SETS, "bundled question set", name)
    return _existing(bundle_dir() / "mcq" / f"{name}.jsonl")


def iter_questions(name: str) -> Iterator[dict]:
    """The items of a question set: "id", "question", "choices" (4 strings), "answer" (index), "source"."""
    path = mcq_path(name)
    return _read_jsonl(path, lambda: path.open(encoding="utf-8"))


def manifest() -> dict:
    """The facts of the data card: per corpus and split documents, words, tokens (bundled tokenizer) and
    bytes (UTF-8 text); per question set items and chance (the accuracy of a uniform guess); the sources
    with their licenses. A fresh copy on every call."""
    return json.loads(_manifest_text())


def licenses_path() -> Path:
    """LICENSES.md: every source of the bundle with its version, license and attribution."""
    return _existing(bundle_dir() / "LICENSES.md")


@functools.lru_cache(maxsize=1)
def _manifest_text() -> str:
    return _existing(bundle_dir() / "manifest.json").read_text(encoding="utf-8")


def _read_jsonl(path: Path, open_text: Callable[[], TextIO]) -> Iterator[dict]:
    with open_text() as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(
                    f"{path}:{number}: not valid JSON ({err.msg}); reinstall forgetless"
                ) from None


def _strip(name: str) -> str:
    return name[len(REF_PREFIX) :] if is_ref(name) else name


def _known(name: str, known: tuple[str, ...], what: str, given: str, prefix: str = "") -> str:
    if name in known:
        return name
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    raise UserError(f"unknown {what} {given!r}{hint} (known: {', '.join(prefix + k for k in known)})")


def _existing(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"{path} is missing from the installed package; reinstall forgetless")
    return path
