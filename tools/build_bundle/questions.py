"""The two question sets: security (CWE and ATT&CK) and general (WordNet)."""

from __future__ import annotations

import re
from collections import defaultdict

from tools.build_bundle.attack import AttackTechnique
from tools.build_bundle.common import MCQ_GENERAL_ITEMS, rank, words
from tools.build_bundle.cwe import CweEntry
from tools.build_bundle.wordnet import Synset


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
