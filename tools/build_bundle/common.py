"""Documents, the build's constants and small text helpers shared by the parsers."""

from __future__ import annotations

import dataclasses
import hashlib
import re

EOS = "<|endoftext|>"
VOCAB_SIZE = 8192
LONG_DOCUMENT_WORDS = 4000  # general-corpus documents above this are split at paragraph boundaries
CODE_PART_WORDS = 3000  # stdlib files above this are split at top-level definitions
HELDOUT_MIN_DOCUMENTS = 60  # the promise is >= 50; the margin keeps it true after tokenization
HELDOUT_BYTE_FRACTION = 0.03  # the promise is >= 2% of tokens
MCQ_GENERAL_ITEMS = 1500


class BuildError(Exception):
    """A pinned input is missing or changed, or an output misses a promise of the bundle."""


@dataclasses.dataclass
class Document:
    id: str
    text: str
    source: str
    group: str = ""  # documents of one group (parts of one file or article) share a split

    def record(self) -> dict:
        return {"id": self.id, "text": self.text, "source": self.source}


def words(text: str) -> int:
    return len(text.split())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rank(*parts: str) -> str:
    """A deterministic pseudo-random sort key: independent of Python's hash seed and version."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def tidy(text: str) -> str:
    """Strip trailing spaces, collapse runs of blank lines, trim the ends."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def split_paragraphs(paragraphs: list[str], max_words: int) -> list[list[str]]:
    """Split paragraphs into about equal consecutive parts of at most `max_words` words (when possible)."""
    total = sum(words(p) for p in paragraphs)
    if total <= max_words:
        return [paragraphs]
    n_parts = -(-total // max_words)
    target = total / n_parts
    parts: list[list[str]] = [[]]
    count = 0
    for para in paragraphs:
        if parts[-1] and count + words(para) / 2 > target * len(parts) and len(parts) < n_parts:
            parts.append([])
        parts[-1].append(para)
        count += words(para)
    return parts


def chapter_documents(
    source: str, doc_id: str, title: str, paragraphs: list[str], max_words: int = LONG_DOCUMENT_WORDS
) -> list[Document]:
    """One document per chapter; a chapter over `max_words` becomes parts titled '(part k of n)'."""
    parts = split_paragraphs(paragraphs, max_words)
    docs = []
    for k, part in enumerate(parts, 1):
        head = title if len(parts) == 1 else f"{title} (part {k} of {len(parts)})"
        part_id = doc_id if len(parts) == 1 else f"{doc_id}/part{k}"
        docs.append(Document(part_id, tidy(head + "\n\n" + "\n\n".join(part)), source, group=doc_id))
    return docs


def sentence_join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?:)\"'" else text + "."
