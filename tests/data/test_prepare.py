"""`prepare`: token shards, the held-out split, the cache, and bad input through the CLI."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from forgetless.config import SourceConfig, config_from_dict
from forgetless.data import prepare as prepare_module
from forgetless.data.prepare import prepare_files, prepare_sources, select_heldout
from forgetless.data.sampler import MixtureSampler
from forgetless.data.shards import TokenStore, token_dtype, write_store
from forgetless.errors import UserError
from forgetless.file_lock import LOCK_FILE


def marked_docs(prefix: str, count: int) -> list[str]:
    """Distinct documents, each carrying a unique marker word."""
    return [
        f"{prefix}{i:03d}qz is the marker. " + "Some ordinary words follow here. " * (1 + i % 4)
        for i in range(count)
    ]


def write_jsonl(path: Path, texts: list[str], subsources: list[str | None] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            record = {"text": text}
            if subsources is not None and subsources[i] is not None:
                record["source"] = subsources[i]
            fh.write(json.dumps(record) + "\n")
    return path


def make_config(tmp_path: Path, tokenizer_dir: Path, sources: dict, **extra):
    data = {
        "model": {"path": str(tokenizer_dir)},
        "sources": sources,
        "stages": [{"name": "s", "tokens": 1000, "mix": {next(iter(sources)): 1.0}}],
        "cache_dir": str(tmp_path / "cache"),
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 8},
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


def documents(store: TokenStore, tokenizer) -> list[str]:
    return [tokenizer.decode(store.document(i)[:-1].tolist()) for i in range(store.num_documents)]


@pytest.fixture
def no_tokenizing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(prepare_module, "_tokenize_units", fail)


def test_shards_hold_every_document_followed_by_eos(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    texts = marked_docs("doc", 40)
    write_jsonl(tmp_path / "data" / "a.jsonl.gz", texts[:30])
    for i, text in enumerate(texts[30:]):
        (tmp_path / "data" / f"t{i}.txt").write_text(text, encoding="utf-8")
    config = make_config(tmp_path, tiny_tokenizer_dir, {"web": {"files": ["data/"]}})
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["web"]
    train, heldout = prepared.train, prepared.heldout
    assert train.tokens.dtype == np.uint16 and isinstance(train.tokens, np.memmap)
    assert sorted(documents(train, tiny_tokenizer) + documents(heldout, tiny_tokenizer)) == sorted(texts)
    eos = tiny_tokenizer.eos_token_id
    for store in (train, heldout):
        assert store.doc_offsets[0] == 0 and store.doc_offsets[-1] == store.num_tokens
        assert (store.tokens[store.doc_offsets[1:] - 1] == eos).all()
        assert int((np.asarray(store.tokens) == eos).sum()) == store.num_documents
        for i, text in enumerate(documents(store, tiny_tokenizer)):
            assert store.doc_bytes[i] == len(text.encode("utf-8"))
    # Training documents keep their original order (the order `replay: original` reads).
    order = [texts.index(t) for t in documents(train, tiny_tokenizer)]
    assert order == sorted(order)
    meta = prepared.meta
    assert (
        meta["train"]["tokens"] == train.num_tokens and meta["heldout"]["documents"] == heldout.num_documents
    )
    assert meta["tokenizer"]["eos_id"] == eos and len(meta["tokenizer"]["fingerprint"]) == 64
    assert [f["format"] for f in meta["files"]] == ["jsonl"] + ["txt"] * 10
    reopened = TokenStore.open(prepared.path / "train")
    np.testing.assert_array_equal(reopened.tokens, train.tokens)


def test_batches_that_span_many_files(tmp_path, tiny_tokenizer, tiny_tokenizer_dir, monkeypatch) -> None:
    monkeypatch.setattr(prepare_module, "_BATCH_DOCUMENTS", 3)
    texts = marked_docs("spread", 20)
    for i in range(0, 20, 4):  # five files of four documents, and an empty file in between
        write_jsonl(tmp_path / "data" / f"f{i:02d}.jsonl", texts[i : i + 4])
    (tmp_path / "data" / "f05_empty.jsonl").write_text("", encoding="utf-8")
    config = make_config(tmp_path, tiny_tokenizer_dir, {"web": {"files": ["data/*.jsonl"]}})
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["web"]
    got = documents(prepared.train, tiny_tokenizer) + documents(prepared.heldout, tiny_tokenizer)
    assert sorted(got) == sorted(texts)
    assert [f["documents"] for f in prepared.meta["files"]] == [
        4,
        4,
        0,
        4,
        4,
        4,
    ]  # f00, f04, f05_empty, f08, ...


@pytest.mark.parametrize("before", [None, "true"])
def test_the_tokenizer_threads_setting_is_restored(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir, monkeypatch, before
) -> None:
    # Encoding runs one batch per thread with the tokenizer's own threads off, only meanwhile.
    if before is None:
        monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    else:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", before)
    seen = []
    encode = prepare_module._encode
    monkeypatch.setattr(
        prepare_module,
        "_encode",
        lambda *a: seen.append(os.environ.get("TOKENIZERS_PARALLELISM")) or encode(*a),
    )
    write_jsonl(tmp_path / "data" / "a.jsonl", marked_docs("env", 10))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"web": {"files": ["data/a.jsonl"]}})
    prepare_sources(config, tiny_tokenizer, progress=False)
    assert seen and set(seen) == {"false"}
    assert os.environ.get("TOKENIZERS_PARALLELISM") == before


def test_mixed_formats_in_one_source(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = marked_docs("fmt", 8)
    write_jsonl(tmp_path / "a.jsonl", texts[:2])
    pq.write_table(pa.table({"text": texts[2:4]}), tmp_path / "b.parquet")
    (tmp_path / "c.csv").write_text(
        "text\n" + "\n".join(f'"{t}"' for t in texts[4:6]) + "\n", encoding="utf-8"
    )
    (tmp_path / "d.json").write_text(json.dumps([{"text": t} for t in texts[6:]]), encoding="utf-8")
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"mixed": {"files": ["a.jsonl", "b.parquet", "c.csv", "d.json"]}}
    )
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["mixed"]
    got = documents(prepared.train, tiny_tokenizer) + documents(prepared.heldout, tiny_tokenizer)
    assert sorted(got) == sorted(texts)


def test_second_prepare_does_nothing(tmp_path, tiny_tokenizer, tiny_tokenizer_dir, monkeypatch) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("hit", 10))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"]}})
    first = prepare_sources(config, tiny_tokenizer, progress=False)["a"]
    assert not first.cached
    monkeypatch.setattr(prepare_module, "_tokenize_units", lambda *a, **k: pytest.fail("tokenized again"))
    monkeypatch.setattr(prepare_module, "_assemble", lambda *a, **k: pytest.fail("assembled again"))
    second = prepare_sources(config, tiny_tokenizer, progress=False)["a"]
    assert second.cached
    np.testing.assert_array_equal(second.train.tokens, first.train.tokens)


def test_a_changed_file_retokenizes_only_itself(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    for name in ("a", "b", "c"):
        write_jsonl(tmp_path / "d" / f"{name}.jsonl", marked_docs(name, 6))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"src": {"files": ["d/"]}})
    first = prepare_sources(config, tiny_tokenizer, progress=False)["src"]
    assert len(first.meta["tokenized_files"]) == 3
    changed = write_jsonl(tmp_path / "d" / "b.jsonl", marked_docs("b", 6) + ["A brand new document."])
    os.utime(changed, ns=(1, 10**18))  # a distinct modification time even on coarse clocks
    second = prepare_sources(config, tiny_tokenizer, progress=False)["src"]
    assert not second.cached
    assert second.meta["tokenized_files"] == [str(changed.resolve())]
    texts = documents(second.train, tiny_tokenizer) + documents(second.heldout, tiny_tokenizer)
    assert "A brand new document." in texts and len(texts) == 19


def test_a_changed_tokenizer_retokenizes_everything(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    from transformers import AutoTokenizer

    from conftest import build_tokenizer

    write_jsonl(tmp_path / "a.jsonl", marked_docs("tok", 10))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"]}})
    prepare_sources(config, tiny_tokenizer, progress=False)
    other = AutoTokenizer.from_pretrained(build_tokenizer(tmp_path / "tok300", vocab_size=300))
    again = prepare_sources(config, other, progress=False)["a"]
    assert not again.cached and again.meta["tokenized_files"] == [str((tmp_path / "a.jsonl").resolve())]
    assert again.meta["tokenizer"]["vocab_size"] == len(other)
    assert again.train.num_tokens > 0


def test_changing_the_heldout_size_reuses_the_tokens(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("ho", 20))
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"], "heldout": {"documents": 2}}}
    )
    prepare_sources(config, tiny_tokenizer, progress=False)
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"], "heldout": {"documents": 5}}}
    )
    again = prepare_sources(config, tiny_tokenizer, progress=False)["a"]
    assert not again.cached and again.meta["tokenized_files"] == []
    assert again.heldout.num_documents == 5 and again.train.num_documents == 15


def hash_order(texts: list[str]) -> list[str]:
    """The documents in the order the held-out rule takes them: by a 64-bit hash of their text."""
    import hashlib

    return sorted(
        texts, key=lambda t: int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
    )


def test_heldout_sizes(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    texts = marked_docs("size", 50)
    write_jsonl(tmp_path / "a.jsonl", texts)
    ranked = hash_order(texts)
    sizes = np.cumsum([len(tiny_tokenizer.encode(t, add_special_tokens=False)) + 1 for t in ranked])

    def heldout(setting) -> list[str]:
        config = make_config(tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"], "heldout": setting}})
        return sorted(
            documents(prepare_sources(config, tiny_tokenizer, progress=False)["a"].heldout, tiny_tokenizer)
        )

    assert heldout({"documents": 7}) == sorted(ranked[:7])
    # The fewest documents (in hash order) that hold at least the asked tokens.
    count = int(np.searchsorted(sizes, 300)) + 1
    assert sizes[count - 1] >= 300 > sizes[count - 2]
    assert heldout({"tokens": 300}) == sorted(ranked[:count])
    target = min(100_000, int(np.ceil(0.1 * sizes[-1])))  # the default
    count = int(np.searchsorted(sizes, target)) + 1
    assert heldout({}) == sorted(ranked[:count])


def test_heldout_choice_depends_on_the_documents_not_their_files(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir
) -> None:
    texts = marked_docs("stable", 30)
    write_jsonl(tmp_path / "one" / "a.jsonl", texts)
    write_jsonl(tmp_path / "two" / "z.jsonl", texts[::2])
    write_jsonl(tmp_path / "two" / "y.jsonl", texts[1::2])
    held = []
    for folder in ("one", "two"):
        config = make_config(
            tmp_path, tiny_tokenizer_dir, {folder: {"files": [f"{folder}/"], "heldout": {"documents": 4}}}
        )
        held.append(
            sorted(
                documents(
                    prepare_sources(config, tiny_tokenizer, progress=False)[folder].heldout, tiny_tokenizer
                )
            )
        )
    assert held[0] == held[1]


def test_select_heldout_keeps_duplicates_together() -> None:
    hashes = np.array([5, 1, 9, 1, 1, 7], dtype=np.uint64)
    tokens = np.full(6, 10)
    from forgetless.config import HeldoutConfig

    mask = select_heldout(hashes, tokens, HeldoutConfig(documents=1), "k")
    assert mask.tolist() == [False, True, False, True, True, False]
    mask = select_heldout(hashes, tokens, HeldoutConfig(), "k")  # default: ~10% of 60 tokens
    assert mask.tolist() == [False, True, False, True, True, False]
    assert not select_heldout(np.array([3], dtype=np.uint64), np.array([10]), HeldoutConfig(), "k").any()


def test_heldout_text_never_reaches_training_batches(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    texts = marked_docs("leak", 60)
    write_jsonl(tmp_path / "a.jsonl", texts)
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"], "heldout": {"documents": 10}}}
    )
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["a"]
    held_markers = {t.split()[0] for t in documents(prepared.heldout, tiny_tokenizer)}
    train_markers = {t.split()[0] for t in documents(prepared.train, tiny_tokenizer)}
    assert len(held_markers) == 10 and len(train_markers) == 50 and not held_markers & train_markers
    sampler = MixtureSampler(config.stages[0], {"a": prepared.train}, seq_len=32, seed=0)
    windows = (prepared.train.num_tokens - 1) // 32
    rows = sampler.next_batch(2 * windows)  # two full epochs
    decoded_rows = [tiny_tokenizer.decode(row.tolist()) for row in rows]
    assert not any(marker in row for row in decoded_rows for marker in held_markers)
    # The rows are the training tokens themselves: one epoch, in window order, rebuilds them.
    plan = sampler.last_plan
    first = rows[plan.epoch == 0][np.argsort(plan.window[plan.epoch == 0])]
    rebuilt = np.concatenate([first[0, :1], first[:, 1:].ravel()])
    np.testing.assert_array_equal(rebuilt, prepared.train.tokens[: windows * 32 + 1])


def test_bundled_corpora_keep_their_split(tmp_path, tiny_tokenizer, tiny_tokenizer_dir, monkeypatch) -> None:
    from forgetless.data import bundled

    counts = {"train": 20, "heldout": 5}
    parts = {
        split: ["north" if i < count // 2 else "south" for i in range(count)]
        for split, count in counts.items()
    }
    paths = {
        split: write_jsonl(
            tmp_path / f"toy.{split}.jsonl.gz", marked_docs(split, counts[split]), parts[split]
        )
        for split in ("train", "heldout")
    }
    monkeypatch.setattr(bundled, "parse_ref", lambda ref: ref.removeprefix("bundled:"))
    monkeypatch.setattr(bundled, "corpus_path", lambda name, split: paths[split])
    config = make_config(tmp_path, tiny_tokenizer_dir, {"toy": "bundled:toy"})
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["toy"]
    assert documents(prepared.heldout, tiny_tokenizer) == marked_docs("heldout", 5)
    assert documents(prepared.train, tiny_tokenizer) == marked_docs("train", 20)
    # Each document keeps the sub-corpus its record names (the bundled `source` field).
    for split in ("train", "heldout"):
        store = getattr(prepared, split)
        assert store.subsource_of(np.arange(store.num_documents)) == parts[split]
        assert TokenStore.open(store.path).subsource_names == ("north", "south")


def test_a_subsource_field_labels_documents_through_the_held_out_split(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir
) -> None:
    texts = marked_docs("doc", 40)
    labels = [None if i % 10 == 9 else ("wiki" if i % 2 else "books") for i in range(40)]
    write_jsonl(tmp_path / "a.jsonl", texts, labels)
    source = {"files": ["a.jsonl"], "subsource_field": "source", "heldout": {"documents": 12}}
    prepared = prepare_sources(make_config(tmp_path, tiny_tokenizer_dir, {"a": source}), tiny_tokenizer)["a"]
    label_of = dict(zip(texts, labels, strict=True))
    for store in (prepared.train, prepared.heldout):
        got = store.subsource_of(np.arange(store.num_documents))
        assert got == [label_of[text] for text in documents(store, tiny_tokenizer)]
    assert prepared.meta["heldout"]["subsources"] and prepared.heldout.num_documents == 12
    # Without the setting the same file has no sub-sources (and the earlier cache entries stand).
    plain = prepare_sources(make_config(tmp_path, tiny_tokenizer_dir, {"a": "a.jsonl"}), tiny_tokenizer)["a"]
    assert plain.train.doc_subsources is None and "subsources" not in plain.meta["train"]


def test_a_table_without_the_subsource_column_is_refused(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir
) -> None:
    (tmp_path / "t.csv").write_text("text,kind\nfirst document,a\nsecond document,b\n", encoding="utf-8")
    source = {"files": ["t.csv"], "subsource_field": "origin"}
    config = make_config(tmp_path, tiny_tokenizer_dir, {"t": source})
    with pytest.raises(UserError, match=r"t.csv:1: no column 'origin'.*sources.t.subsource_field"):
        prepare_sources(config, tiny_tokenizer)
    config = make_config(tmp_path, tiny_tokenizer_dir, {"t": {**source, "subsource_field": "kind"}})
    prepared = prepare_sources(config, tiny_tokenizer)["t"]
    every = [
        *prepared.train.subsource_of(np.arange(prepared.train.num_documents)),
        *prepared.heldout.subsource_of(np.arange(prepared.heldout.num_documents)),
    ]
    assert sorted(every) == ["a", "b"]


def test_a_failed_prepare_leaves_no_valid_looking_entry(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    write_jsonl(tmp_path / "d" / "a.jsonl", marked_docs("ok", 5))
    bad = tmp_path / "d" / "b.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken}\n', encoding="utf-8")
    config = make_config(tmp_path, tiny_tokenizer_dir, {"src": {"files": ["d/"]}})
    with pytest.raises(UserError, match=rf"{bad}:2: invalid JSON"):
        prepare_sources(config, tiny_tokenizer, progress=False)
    cache = tmp_path / "cache"
    assert not (cache / "sources").exists() or not any((cache / "sources").iterdir())
    leftovers = [p for p in cache.rglob("*") if p.name.startswith(".") and p.name != LOCK_FILE]
    assert leftovers == []
    # Only complete files' caches exist, each with its meta.json written last.
    for entry in (cache / "documents").glob("*"):
        assert (entry / "meta.json").is_file()
    write_jsonl(bad, ["fine", "fixed now"])
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["src"]
    assert prepared.train.num_documents + prepared.heldout.num_documents == 7


def test_prepare_files_and_the_default_cache(tmp_path, tiny_tokenizer, monkeypatch) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("files", 12))
    monkeypatch.setenv("FORGETLESS_CACHE", str(tmp_path / "env-cache"))
    prepared = prepare_files("extra", SourceConfig(files=[str(tmp_path / "a.jsonl")]), tiny_tokenizer)
    assert prepared.name == "extra" and prepared.train.num_documents + prepared.heldout.num_documents == 12
    assert str(prepared.path).startswith(str(tmp_path / "env-cache"))
    assert prepare_files(
        "extra", SourceConfig(files=[str(tmp_path / "a.jsonl")]), tiny_tokenizer, None
    ).cached


def test_only_the_named_sources_are_prepared(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("a", 5))
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"]}, "b": {"files": ["missing.jsonl"]}}
    )
    assert list(prepare_sources(config, tiny_tokenizer, sources=["a"], progress=False)) == ["a"]
    with pytest.raises(UserError, match="unknown source 'c'"):
        prepare_sources(config, tiny_tokenizer, sources=["c"], progress=False)


def test_token_dtype_and_uint32_shards(tmp_path) -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    tokens = np.array([70000, 1, 2, 70001], dtype=np.uint32)
    store = write_store(tmp_path / "s", tokens, [0, 2, 4], [5, 6])
    assert store.tokens.dtype == np.uint32 and store.num_documents == 2 and store.num_bytes == 11
    np.testing.assert_array_equal(store.document(1), [2, 70001])
    empty = write_store(tmp_path / "e", np.zeros(0, np.uint16), [0], [], dtype=np.uint16)
    assert empty.num_tokens == 0 and empty.num_documents == 0


# ---------------------------------------------------------------------------------------------
# The CLI: summaries and bad input (one line, exit code 2)


def write_config(tmp_path: Path, tokenizer_dir: Path, sources: str, model: str | None = None) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"model: {{path: {model or tokenizer_dir}}}\n"
        f"tokenizer: {tokenizer_dir}\n"
        f"sources:\n{sources}"
        "stages:\n  - {name: s, tokens: 1000, mix: {src: 1.0}}\n"
        f"cache_dir: {tmp_path / 'cache'}\n",
        encoding="utf-8",
    )
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from forgetless.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prepare_twice(tmp_path, tiny_tokenizer_dir, capsys) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("cli", 10))
    (tmp_path / "b.txt").write_bytes(b"bad bytes \xff here")
    config = write_config(tmp_path, tiny_tokenizer_dir, "  src: {files: [a.jsonl, b.txt], on_error: skip}\n")
    code, out, _ = run_cli(["prepare", str(config), "--quiet"], capsys)
    assert code == 0 and "prepared" in out and "1 invalid utf8" in out
    code, out, _ = run_cli(["prepare", str(config), "--quiet"], capsys)
    assert code == 0 and "up to date" in out and "nothing to do" in out


BAD_INPUTS = {
    "missing file": (
        "  src: {files: [nope.jsonl]}\n",
        r"sources\.src\.files\.0: .*nope\.jsonl: no such file or folder",
    ),
    "glob without match": (
        "  src: {files: ['data/*.jsonl']}\n",
        r"sources\.src\.files\.0: .*the pattern matches no files",
    ),
    "empty source": (
        "  src: {files: [empty.jsonl]}\n",
        r"sources\.src\.files: no documents in .*empty\.jsonl",
    ),
    "invalid JSON": ("  src: {files: [broken.jsonl]}\n", r"broken\.jsonl:2: invalid JSON .*on_error: skip"),
    "missing text field": (
        "  src: {files: [fields.jsonl]}\n",
        r"fields\.jsonl:1: no field 'text' in the record",
    ),
    "held-out too large": (
        "  src: {files: [good.jsonl], heldout: {tokens: 100000000}}\n",
        r"sources\.src\.heldout\.tokens: 100,000,000 held-out tokens, but the source has only",
    ),
    "held-out documents": (
        "  src: {files: [good.jsonl], heldout: {documents: 3}}\n",
        r"sources\.src\.heldout\.documents: 3 held-out documents, but the source has only 3",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_bad_input_exits_2_with_one_line(tmp_path, tiny_tokenizer_dir, capsys, case) -> None:
    import re

    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    write_jsonl(tmp_path / "good.jsonl", marked_docs("good", 3))
    (tmp_path / "fields.jsonl").write_text('{"body": "a"}\n', encoding="utf-8")
    sources, pattern = BAD_INPUTS[case]
    config = write_config(tmp_path, tiny_tokenizer_dir, sources)
    code, _, err = run_cli(["prepare", str(config), "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    leftovers = (
        [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".") and p.name != LOCK_FILE]
        if (tmp_path / "cache").exists()
        else []
    )
    assert leftovers == []
    assert not (tmp_path / "cache" / "sources").exists()


def test_cli_tokenizer_larger_than_the_model_embedding(tmp_path, tiny_tokenizer_dir, capsys) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "llama", "vocab_size": 100}), encoding="utf-8"
    )
    write_jsonl(tmp_path / "good.jsonl", marked_docs("good", 3))
    config = write_config(tmp_path, tiny_tokenizer_dir, "  src: {files: [good.jsonl]}\n", model=str(model))
    code, _, err = run_cli(["prepare", str(config), "--quiet"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: tokenizer: the tokenizer has 512 tokens but the model's embedding has 100 rows "
        f"({model / 'config.json'}: vocab_size); use the model's own tokenizer"
    ]


def test_vocab_check_for_a_fresh_model(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    write_jsonl(tmp_path / "a.jsonl", marked_docs("init", 3))
    config = config_from_dict(
        {
            "model": {"init": {"vocab_size": 256}},
            "tokenizer": str(tiny_tokenizer_dir),
            "sources": {"a": {"files": ["a.jsonl"]}},
            "stages": [{"name": "s", "tokens": 100, "mix": {"a": 1}}],
            "cache_dir": str(tmp_path / "cache"),
        },
        base_dir=tmp_path,
    )
    with pytest.raises(
        UserError, match=r"model\.init\.vocab_size: 256 is smaller than the tokenizer's 512 tokens"
    ):
        prepare_sources(config, tiny_tokenizer, progress=False)


# ---------------------------------------------------------------------------------------------
# Integrity: one writer at a time, leftovers, a full disk, long documents, content hashes


def test_a_second_writer_waits_for_the_cache_lock_then_finds_the_work_done(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir, capfd
) -> None:
    import threading

    from forgetless.file_lock import FolderLock

    write_jsonl(tmp_path / "a.jsonl", marked_docs("a", 10))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"]}})
    (tmp_path / "cache").mkdir()
    held = FolderLock(tmp_path / "cache").acquire()  # as another process writing the cache would
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(prepare_sources(config, tiny_tokenizer, progress=False))
    )
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and not (tmp_path / "cache" / "sources").exists()  # waiting, writing nothing
    assert f"waiting for process {os.getpid()}, which is writing to the token cache" in capfd.readouterr().err
    held.release()
    thread.join(60)
    assert result["a"].train.num_documents + result["a"].heldout.num_documents == 10


def test_leftovers_of_killed_prepares_are_cleared_by_the_next(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir
) -> None:
    from forgetless.data.shards import temp_dir_beside

    write_jsonl(tmp_path / "a.jsonl", marked_docs("a", 10))
    config = make_config(tmp_path, tiny_tokenizer_dir, {"a": {"files": ["a.jsonl"]}})
    prepare_sources(config, tiny_tokenizer, progress=False)
    cache = tmp_path / "cache"
    # What a killed writer leaves: temporary folders named as the writers name them.
    leftovers = [temp_dir_beside(cache / "documents" / "k1"), temp_dir_beside(cache / "sources" / "a-k2")]
    (leftovers[0] / "tokens.bin").write_bytes(b"\0" * 64)
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["a"]  # up to date: no writing
    assert prepared.cached and not any(p.exists() for p in leftovers)
    assert [p.name for p in cache.rglob(".*") if p.name != LOCK_FILE] == []


def test_a_full_disk_while_preparing_names_the_cache(
    tmp_path, tiny_tokenizer_dir, capsys, monkeypatch, record_property
) -> None:
    import errno

    from faults_helpers import quoted, record
    from forgetless.data import shards

    def full(self, tokens):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shards.StoreWriter, "write_tokens", full)
    write_jsonl(tmp_path / "good.jsonl", marked_docs("good", 10))
    config = write_config(tmp_path, tiny_tokenizer_dir, "  src: {files: [good.jsonl]}\n")
    code, _, err = run_cli(["prepare", str(config), "--quiet"], capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert line == (
        f"error: no space left on device while writing the token cache {tmp_path / 'cache'}; free some space "
        "there or set cache_dir (or FORGETLESS_CACHE) to a folder on a larger disk, then run again"
    )
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.name != LOCK_FILE] == ["documents"]
    record(
        record_property,
        "Disk",
        "no space left on device while `prepare` writes the token cache",
        f"exit {code}: {quoted(line)}; no temporary folder left",
    )


def test_a_long_document_is_tokenized_in_pieces_with_the_same_tokens(
    tmp_path, tiny_tokenizer, tiny_tokenizer_dir, monkeypatch, record_property
) -> None:
    from conftest import sample_texts
    from faults_helpers import record

    text = " ".join(sample_texts())[:200_000].replace("\n", " ")  # one line, as one JSON record
    write_jsonl(tmp_path / "long.jsonl", [text, "a short one", "and another"])
    monkeypatch.setattr(prepare_module, "_PIECE_CHARS", 10_000)
    pieces = []
    encode_in_pieces = prepare_module._encode_in_pieces
    monkeypatch.setattr(
        prepare_module, "_encode_in_pieces", lambda t, tok: pieces.append(len(t)) or encode_in_pieces(t, tok)
    )
    config = make_config(
        tmp_path, tiny_tokenizer_dir, {"a": {"files": ["long.jsonl"], "heldout": {"documents": 1}}}
    )
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)["a"]
    assert len(text) in pieces  # the long document went through the pieces
    whole = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    stored = [prepared.train.document(i)[:-1].tolist() for i in range(prepared.train.num_documents)]
    stored += [prepared.heldout.document(i)[:-1].tolist() for i in range(prepared.heldout.num_documents)]
    assert whole in stored
    record(
        record_property,
        "Files",
        f"a one-line document of {len(text):,} characters, encoded in pieces of 10,000",
        f"{len(whole):,} tokens, identical to encoding it whole; memory bounded by one piece",
    )


def test_shard_hashes_tell_reordered_documents_apart(tmp_path, tiny_tokenizer, tiny_tokenizer_dir) -> None:
    texts = marked_docs("doc", 20)
    write_jsonl(tmp_path / "a.jsonl", texts)
    write_jsonl(tmp_path / "b.jsonl", [texts[1], texts[0], *texts[2:]])  # two lines swapped
    write_jsonl(tmp_path / "c.jsonl", texts)  # the same contents in another file
    config = make_config(
        tmp_path,
        tiny_tokenizer_dir,
        {name: {"files": [f"{name}.jsonl"], "heldout": {"documents": 2}} for name in "abc"},
    )
    prepared = prepare_sources(config, tiny_tokenizer, progress=False)
    a, b, c = (prepared[name].train for name in "abc")
    assert a.num_tokens == b.num_tokens and a.sha256 != b.sha256
    assert a.sha256 == c.sha256 and len(a.sha256) == 64
