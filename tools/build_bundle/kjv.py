"""general: the King James Bible, decoded by the `bible` reader of bible-kjv."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tools.build_bundle.common import BuildError, Document, slug


def kjv_documents(root: Path) -> list[Document]:
    """One document per chapter: 'Genesis 1', then one numbered verse per line."""
    result = subprocess.run(
        [str(root / "usr/bin/bible"), "-p", str(root / "usr/lib") + "/", "-l100000", "Gen1:1-Rev22:21"],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    docs = kjv_chapters(result.stdout.decode("utf-8"))
    if len(docs) != 1189:
        raise BuildError(f"expected the 1,189 chapters of the KJV, read {len(docs)}")
    return docs


def kjv_chapters(output: str) -> list[Document]:
    """The bible reader's output ('Genesis 1', then a numbered verse per line) as chapter documents."""
    docs, title, verses = [], None, []
    for line in output.splitlines() + [""]:
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
    return docs
