"""general: Jane Austen's novels, from the R lazy-load database in r-cran-janeaustenr."""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

from tools.build_bundle.common import BuildError, Document, chapter_documents, slug


class RSerialReader:
    """Reads the part of R's XDR serialization format that janeaustenr's data uses:
    character, integer, logical, double and generic vectors, pairlists and symbols, with names."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.symbols = data, 0, []

    def read(self):
        if self.data[:2] != b"X\n":
            raise BuildError("R data is not in XDR serialization format")
        self.pos = 2
        version = self._int()
        self.pos += 8  # writer and minimal reader R versions
        if version == 3:
            encoding_length = self._int()
            self.pos += encoding_length  # native encoding name
        return self._item()

    def _int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def _length(self) -> int:
        n = self._int()
        return n if n != -1 else (self._int() << 32) + self._int()

    def _item(self):
        flags = self._int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & 0x200), bool(flags & 0x400)
        if kind in (254, 253, 242, 241):  # NULL and the global, empty and base environments
            return None
        if kind == 255:  # reference to an earlier symbol
            index = flags >> 8 or self._int()
            return self.symbols[index - 1]
        if kind == 1:  # symbol
            name = self._item()
            self.symbols.append(name)
            return name
        if kind == 2:  # pairlist, read as a dict of tag -> value
            out = {}
            while kind == 2:
                if has_attr:
                    self._item()
                tag = self._item() if has_tag else len(out)
                out[tag] = self._item()
                flags = self._int()
                kind, has_attr, has_tag = flags & 0xFF, bool(flags & 0x200), bool(flags & 0x400)
            if kind != 254:
                raise BuildError(f"unexpected R pairlist tail of type {kind}")
            return out
        if kind == 9:  # string
            n = self._int()
            if n == -1:
                return None
            text = self.data[self.pos : self.pos + n].decode("utf-8")
            self.pos += n
            return text
        if kind in (10, 13, 14):  # logical, integer, double vectors
            n = self._length()
            fmt, size = (f">{n}d", 8) if kind == 14 else (f">{n}i", 4)
            value = list(struct.unpack_from(fmt, self.data, self.pos))
            self.pos += n * size
        elif kind in (16, 19):  # character vector, generic vector
            value = [self._item() for _ in range(self._length())]
        else:
            raise BuildError(f"unsupported R object type {kind}")
        if has_attr:
            names = self._item().get("names")
            if names is not None:
                value = dict(zip(names, value, strict=True))
        return value


AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


def austen_documents(root: Path) -> list[Document]:
    """The six novels as chapter documents ('Emma, Volume II, Chapter 3'), paragraphs reflowed."""
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    index = RSerialReader(gzip.decompress((data / "Rdata.rdx").read_bytes())).read()
    database = (data / "Rdata.rdb").read_bytes()
    docs = []
    for key, title in AUSTEN_TITLES.items():
        offset, length = index["variables"][key]
        # each object: 4-byte big-endian uncompressed length, then a zlib stream
        lines = RSerialReader(zlib.decompress(database[offset + 4 : offset + length])).read()
        volume, chapter, paragraphs, current = None, None, [], []
        chapters: list[tuple[int | None, int, list[str]]] = []
        for raw in [*lines, ""]:
            line = (raw or "").strip()
            heading = re.fullmatch(r"(?i)(volume|chapter)\s+([ivxlc\d]+)\.?", line)
            if heading or not line:
                if current and chapter is not None:
                    paragraphs.append(" ".join(current))
                current = []
            if heading:
                if chapter is not None:
                    chapters.append((volume, chapter, paragraphs))
                kind, number = heading.group(1).lower(), _arabic(heading.group(2))
                volume = number if kind == "volume" else volume
                chapter, paragraphs = (number if kind == "chapter" else None), []
            elif line:
                # Gutenberg conventions: _italics_ and two spaces after a full stop
                current.append(re.sub(r"\s{2,}", " ", re.sub(r"_([^_]+)_", r"\1", line)))
        chapters.append((volume, chapter, paragraphs))
        for vol, number, paras in chapters:
            vol_part = f", Volume {vol}" if vol else ""
            doc_id = f"austen/{slug(title)}/" + (f"v{vol}-" if vol else "") + f"ch{number:02d}"
            docs += chapter_documents("austen", doc_id, f"{title}{vol_part}, Chapter {number}", paras)
    return docs


def _arabic(numeral: str) -> int:
    if numeral.isdigit():
        return int(numeral)
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
    total = 0
    for a, b in zip(numeral.lower(), numeral.lower()[1:] + " ", strict=True):
        total += -values[a] if b != " " and values[b] > values[a] else values[a]
    return total
