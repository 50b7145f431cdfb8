"""`forgetless data list`: the bundled corpora, tokenizer and question sets, as tables or as JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from forgetless.data.bundled import bundle_dir, licenses_path, manifest


def listing_json() -> str:
    """The manifest (the facts of docs/data.md) plus the folder the files are in, as indented JSON."""
    return json.dumps({"bundle_dir": str(bundle_dir()), **manifest()}, indent=2, ensure_ascii=False)


def print_listing(console: Console | None = None) -> None:
    """Tables of the corpora (per split), the question sets and the sources with their licenses; which
    source feeds which corpus is in the JSON form and in docs/data.md."""
    console = console or Console()
    facts = manifest()

    corpora = Table(title="Bundled corpora", title_justify="left")
    for column in ("corpus", "split", "documents", "words", "tokens", "text MB"):
        corpora.add_column(column, justify="left" if column in ("corpus", "split") else "right")
    for name, corpus in facts["corpora"].items():
        for split, s in corpus["splits"].items():
            corpora.add_row(
                name if split == "train" else "",
                split,
                f"{s['documents']:,}",
                f"{s['words']:,}",
                f"{s['tokens']:,}",
                f"{s['bytes'] / 1e6:.1f}",
            )
    console.print(corpora)

    sets = Table(title="Bundled question sets", title_justify="left")
    for column in ("set", "items", "choices", "uniform guess"):
        sets.add_column(column, justify="left" if column == "set" else "right")
    sets.add_column("sources")
    for name, q in facts["question_sets"].items():
        sets.add_row(
            name, f"{q['items']:,}", str(q["choices"]), f"{q['chance']:.2f}", ", ".join(q["sources"])
        )
    console.print(sets)

    tok = facts["tokenizer"]
    console.print(
        f"Tokenizer: {tok['kind']}, vocabulary {tok['vocab_size']:,}, trained on {tok['trained_on']}; "
        f"special token {tok['eos_token']} (eos, bos, pad).",
        markup=False,
    )

    sources = Table(title="Sources and licenses", title_justify="left")
    for column in ("source", "title", "license"):
        sources.add_column(column)
    for key, src in facts["sources"].items():
        sources.add_row(key, src["title"], src["license"])
    console.print(sources)
    console.print(f"Files: {bundle_dir()}", markup=False, soft_wrap=True)
    console.print(f"Licenses and attribution: {licenses_path()}", markup=False, soft_wrap=True)
    console.print("In a run config: bundled:<corpus> or bundled:<question set>.", markup=False)
