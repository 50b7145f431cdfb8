"""general: a Wikipedia sample (the test dump in the gensim wheel), markup stripped."""

from __future__ import annotations

import bz2
import dataclasses
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tools.build_bundle.common import Document, chapter_documents, slug, words
from tools.build_bundle.pins import INPUT_KEYS

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
