"""The bundled data: record schemas, split disjointness, question validity, tokenizer round trip,
licenses, and agreement between the files, manifest.json, `forgetless data list` and docs/data.md."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from forgetless.data import bundled
from forgetless.errors import UserError

REPO = Path(__file__).resolve().parents[2]
MINIMUM_WORDS = {"general": 3_000_000, "security": 1_000_000, "code": 1_000_000}
EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return bundled.manifest()


@pytest.fixture(scope="module", params=bundled.CORPORA)
def corpus(request: pytest.FixtureRequest) -> tuple[str, dict[str, list[dict]]]:
    """(name, {split: records}) read once per corpus."""
    name = request.param
    return name, {split: list(bundled.iter_documents(name, split)) for split in bundled.SPLITS}


def test_manifest_names_every_corpus_and_question_set(manifest: dict) -> None:
    assert tuple(manifest["corpora"]) == bundled.CORPORA
    assert tuple(manifest["question_sets"]) == bundled.QUESTION_SETS


@pytest.mark.parametrize("name", bundled.CORPORA)
def test_corpus_meets_the_promised_minimums(manifest: dict, name: str) -> None:
    splits = manifest["corpora"][name]["splits"]
    train, heldout = splits["train"], splits["heldout"]
    assert train["words"] + heldout["words"] >= MINIMUM_WORDS[name]
    assert heldout["documents"] >= 50
    assert heldout["tokens"] / (train["tokens"] + heldout["tokens"]) >= 0.02


def test_corpus_records_have_the_schema_and_match_the_manifest(corpus, manifest: dict) -> None:
    name, splits = corpus
    facts = manifest["corpora"][name]
    for split, records in splits.items():
        for record in records:
            assert list(record) == ["id", "text", "source"], record.get("id")
            assert isinstance(record["id"], str) and record["id"]
            assert isinstance(record["text"], str) and record["text"].strip(), record["id"]
            assert record["source"] in facts["sources"], record["id"]
        expected = facts["splits"][split]
        assert len(records) == expected["documents"]
        assert sum(len(r["text"].split()) for r in records) == expected["words"]
        assert sum(len(r["text"].encode("utf-8")) for r in records) == expected["bytes"]
        path = bundled.corpus_path(name, split)
        assert path.name.endswith(".jsonl.gz")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected["sha256"]


def test_train_and_heldout_are_disjoint(corpus) -> None:
    _, splits = corpus
    ids = {split: [r["id"] for r in records] for split, records in splits.items()}
    hashes = {
        split: {hashlib.sha256(r["text"].encode()).hexdigest() for r in records}
        for split, records in splits.items()
    }
    for split in bundled.SPLITS:
        assert len(set(ids[split])) == len(ids[split]), f"duplicate ids in {split}"
    assert not set(ids["train"]) & set(ids["heldout"])
    assert not hashes["train"] & hashes["heldout"]


def test_general_documents_are_chapter_sized(manifest: dict) -> None:
    longest = max(len(r["text"].split()) for r in bundled.iter_documents("general", "heldout"))
    assert longest <= 5000
    assert manifest["corpora"]["general"]["splits"]["train"]["words"] <= 3_600_000  # demo time grows with it


@pytest.mark.parametrize("name", bundled.QUESTION_SETS)
def test_every_question_is_valid(manifest: dict, name: str) -> None:
    items = list(bundled.iter_questions(name))
    facts = manifest["question_sets"][name]
    assert len(items) == facts["items"] >= 1000
    assert facts["chance"] == pytest.approx(1 / facts["choices"])
    assert len({i["id"] for i in items}) == len(items)
    for item in items:
        assert list(item) == ["id", "question", "choices", "answer", "source"], item.get("id")
        choices = item["choices"]
        assert len(choices) == 4 and all(isinstance(c, str) and c for c in choices), item["id"]
        assert len({c.lower() for c in choices}) == 4, item["id"]
        assert isinstance(item["answer"], int) and 0 <= item["answer"] < 4, item["id"]
        assert choices[item["answer"]].lower() not in item["question"].lower(), item["id"]
        assert item["source"] in facts["sources"], item["id"]


def test_question_wording_stays_out_of_the_corpora() -> None:
    phrases = (
        "Which CWE weakness does this describe?",
        "Which ATT&CK technique does this describe?",
        "Which word or",
    )
    for name in ("general", "security"):
        for split in bundled.SPLITS:
            for record in bundled.iter_documents(name, split):
                assert not any(p in record["text"] for p in phrases), record["id"]


def test_answers_are_spread_over_the_positions(manifest: dict) -> None:
    for name in bundled.QUESTION_SETS:
        positions = [item["answer"] for item in bundled.iter_questions(name)]
        for k in range(4):
            assert positions.count(k) > len(positions) / 8, (name, k)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled.tokenizer_dir())


def test_tokenizer_is_the_promised_bpe(tokenizer, manifest: dict) -> None:
    assert len(tokenizer) == manifest["tokenizer"]["vocab_size"] == 8192
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == EOS
    assert tokenizer.convert_tokens_to_ids(EOS) == tokenizer.eos_token_id
    # trained on general English only: domain terms break into several pieces
    assert len(tokenizer("deserialization")["input_ids"]) > 1


@pytest.mark.parametrize(
    "text",
    [
        "In the beginning God created the heaven and the earth.",
        "  leading spaces,\ttabs,\r\nCRLF and trailing spaces  ",
        "def f(x):\n    return {'a': [x, 0x1F]}  # comment\n",
        "Unicode: café, Ærøskøbing, naïve, 東京, 😀, \u200b zero width",
        f"two documents{EOS}joined",
        "",
    ],
)
def test_tokenizer_round_trips_text_exactly(tokenizer, text: str) -> None:
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_tokenizer_round_trips_and_counts_every_heldout_document(tokenizer, manifest: dict) -> None:
    for name in bundled.CORPORA:
        texts = [r["text"] for r in bundled.iter_documents(name, "heldout")]
        encoded = tokenizer(texts)["input_ids"]
        assert [tokenizer.decode(ids) for ids in encoded] == texts
        assert sum(len(ids) for ids in encoded) == manifest["corpora"][name]["splits"]["heldout"]["tokens"]


def test_licenses_file_lists_every_source(manifest: dict) -> None:
    text = bundled.licenses_path().read_text(encoding="utf-8")
    used = set()
    for facts in list(manifest["corpora"].values()) + list(manifest["question_sets"].values()):
        used.update(facts["sources"])
    assert used == set(manifest["sources"])
    for key in manifest["sources"]:
        assert f"`{key}`" in text, key
    for required in (
        "Creative Commons Attribution-ShareAlike 3.0",  # Wikipedia
        "WordNet 3.0 Copyright 2006 by Princeton University",
        "MITRE hereby grants you a non-exclusive, royalty-free license to use\nCWE",
        "ATT&CK",
        "The MITRE Corporation",
        "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2",
        "Jane Austen",
        "King James",
    ):
        assert required in text, required
    for version in ("1.0.0-1", "4.38", "1:3.0-37", "4.4.0", "4.14", "18.1", "3.0.0", "0.1.0", "3.11.7"):
        assert version in text, version


def test_bundle_fits_the_size_limit() -> None:
    files = [p for p in bundled.bundle_dir().rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) <= 25_000_000


def test_data_list_json_reports_the_manifest_and_the_card_agrees(capsys: pytest.CaptureFixture) -> None:
    from forgetless.cli import main

    main(["data", "list", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert Path(listed.pop("bundle_dir")) == bundled.bundle_dir()
    assert listed == bundled.manifest()

    card = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    for name, facts in listed["corpora"].items():
        for split, s in facts["splits"].items():
            row = f"| {name} | {split} | {s['documents']:,} | {s['words']:,} | {s['tokens']:,} | {s['bytes']:,} |"
            assert row in card, row
    for name, q in listed["question_sets"].items():
        assert f"| {name} | {q['items']:,} | {q['choices']} | {q['chance']:.2f} |" in card, name
    assert "LICENSES.md" in card


def test_data_list_prints_tables(capsys: pytest.CaptureFixture) -> None:
    from forgetless.cli import main

    main(["data", "list"])
    out = capsys.readouterr().out
    for name in bundled.CORPORA + bundled.QUESTION_SETS:
        assert name in out
    assert "CC BY-SA" in out and "LICENSES.md" in out


def test_refs_resolve_to_names() -> None:
    assert bundled.parse_ref("bundled:security") == "security"
    assert bundled.parse_ref("bundled:security-mcq") == "security-mcq"
    assert bundled.corpus_path("bundled:code", "train") == bundled.corpus_path("code", "train")
    assert (bundled.tokenizer_dir() / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bundled.parse_ref("bundled:secruity"), "did you mean 'bundled:security'"),
        (lambda: bundled.parse_ref("security"), "not a bundled reference"),
        (lambda: bundled.corpus_path("generl", "train"), "did you mean 'general'"),
        (lambda: bundled.corpus_path("general", "test"), "unknown split 'test'"),
        (lambda: bundled.iter_documents("wiki", "train"), "unknown bundled corpus 'wiki'"),
        (lambda: bundled.mcq_path("security"), "did you mean 'security-mcq'"),
    ],
)
def test_unknown_names_raise_a_one_line_user_error(call, message: str) -> None:
    with pytest.raises(UserError) as err:
        call()
    assert message in str(err.value)
    assert "\n" not in str(err.value)
