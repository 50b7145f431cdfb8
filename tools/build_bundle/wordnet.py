"""general: WordNet 3.0 glosses (wordnet-base) as glossary documents."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path

from tools.build_bundle.common import Document, rank, words

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
