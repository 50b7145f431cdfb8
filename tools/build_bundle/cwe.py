"""security: MITRE CWE 4.14 (the XML catalog in the cwe2 wheel), each weakness as prose."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from tools.build_bundle.common import Document, sentence, sentence_join, tidy
from tools.build_bundle.pins import INPUT_KEYS

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
        terms.append(f'- "{term.findtext(CWE_NS + "Term")}"' + (f": {sentence(desc)}" if desc else ""))
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
    return f"Related weaknesses: it is {sentence_join(phrases)}." if phrases else ""


def _cwe_introduction(w: ET.Element) -> str:
    lines = []
    for intro in w.iterfind(f"{CWE_NS}Modes_Of_Introduction/{CWE_NS}Introduction"):
        note = " ".join(structured_text(intro.find(CWE_NS + "Note")).split())
        lines.append(
            f"- During {intro.findtext(CWE_NS + 'Phase').lower()}" + (f": {sentence(note)}" if note else ".")
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
        scopes = sentence_join([s.text for s in c.iterfind(CWE_NS + "Scope")])
        impacts = "; ".join(i.text for i in c.iterfind(CWE_NS + "Impact"))
        note = " ".join(structured_text(c.find(CWE_NS + "Note")).split())
        lines.append(f"- Affecting {scopes.lower()}: {impacts}." + (f" {sentence(note)}" if note else ""))
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
        phases = sentence_join([p.text.lower() for p in m.iterfind(CWE_NS + "Phase")])
        strategy = m.findtext(CWE_NS + "Strategy")
        head = "- " + (f"During {phases}" if phases else "In general")
        head += f" (strategy: {strategy.lower()})" if strategy else ""
        line = head + ": " + structured_text(m.find(CWE_NS + "Description"))
        effect = m.findtext(CWE_NS + "Effectiveness")
        if effect:
            notes = " ".join(structured_text(m.find(CWE_NS + "Effectiveness_Notes")).split())
            line += f"\n  Effectiveness: {effect.lower()}." + (f" {sentence(notes)}" if notes else "")
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
        lines.append(f"- {ex.findtext(CWE_NS + 'Reference')}: {sentence(desc)}")
    return ("Observed examples:\n" + "\n".join(lines)) if lines else ""


def _cwe_notes(w: ET.Element) -> str:
    lines = []
    for note in w.iterfind(f"{CWE_NS}Notes/{CWE_NS}Note"):
        lines.append(f"{note.get('Type', 'Other')} note: {structured_text(note)}")
    return "\n\n".join(lines)
