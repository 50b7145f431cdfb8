"""The base-evaluation cache: a second run from the same base reads the first's base evaluation,
and a change of any component of the key computes it afresh."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import tiny_llama, write_corpora
from forgetless.config import config_from_dict, load_config
from forgetless.evaluate.base_cache import BaseEvalCache, cache_for_run, model_identity
from forgetless.model.load import load_tokenizer
from forgetless.train import run as run_module
from forgetless.train.run import run_training

QUESTIONS = [
    {"question": "Which number is even?", "choices": ["three", "four"], "answer": 1},
    {"question": "Which animal barks?", "choices": ["dog", "cat"], "answer": 0},
    {"question": "Which colour is the sky?", "choices": ["red", "blue"], "answer": 1},
]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("base")
    tiny_llama(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def config_dict(tmp: Path, base: Path) -> dict:
    corpora = write_corpora(tmp / "data")
    questions = tmp / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return {
        "model": {"path": str(base)},
        "sources": {
            "general": {"files": [str(corpora["general"])], "heldout": {"documents": 4}},
            "code": {"files": [str(corpora["code"])], "heldout": {"documents": 1}},
        },
        "stages": [
            {
                "name": "code",
                "tokens": 512,
                "mix": {"code": 1.0},
                "schedule": {"kind": "constant", "peak_lr": 1e-3},
            }
        ],
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 4},
        "eval": {"max_tokens": 512, "dense_start": [], "mcq": [str(questions)]},
        "output": {"dir": str(tmp / "run")},
        "cache_dir": str(tmp / "cache"),
    }


def run_counting(data: dict, out: Path, monkeypatch) -> tuple[list[dict], dict[str, int]]:
    """Run `data` into `out`; its eval lines and how many held-out and MCQ scorings it ran."""
    calls = {"heldout": 0, "mcq": 0}
    heldout, mcq = run_module.evaluate_heldout_over_ranks, run_module.score_mcq

    def count_heldout(*args, **kwargs):
        calls["heldout"] += 1
        return heldout(*args, **kwargs)

    def count_mcq(*args, **kwargs):
        calls["mcq"] += 1
        return mcq(*args, **kwargs)

    monkeypatch.setattr(run_module, "evaluate_heldout_over_ranks", count_heldout)
    monkeypatch.setattr(run_module, "score_mcq", count_mcq)
    config_path = out.parent / f"{out.name}.yaml"
    config_path.write_text(yaml.safe_dump({**data, "output": {"dir": str(out)}}))
    run_dir = run_training(load_config(config_path), quiet=True)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["kind"] == "eval"], calls


def measured(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.startswith(("eval/", "mcq/"))}


def test_a_second_run_from_the_same_base_reuses_its_evaluation(tmp_path, base_dir, monkeypatch):
    data = config_dict(tmp_path, base_dir)
    first, first_calls = run_counting(data, tmp_path / "first", monkeypatch)
    assert first_calls == {"heldout": 4, "mcq": 2}  # two sources and one question set, at the base and the end
    assert "base_cache" not in first[0]
    entries = list((tmp_path / "cache" / "evals").glob("*.json"))
    assert len(entries) == 1

    second, second_calls = run_counting(data, tmp_path / "second", monkeypatch)
    assert second_calls == {"heldout": 2, "mcq": 1}  # only the end of the stage
    assert second[0]["point"] == "base"
    assert measured(second[0]) == measured(first[0]) and measured(first[0])
    assert second[0]["base_cache"]["entry"] == str(entries[0])
    assert second[0]["base_cache"]["computed_by"] == str((tmp_path / "first").resolve())
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert summary["sources"]["code"]["base_loss"] == first[0]["eval/code/loss"]

    data["eval"]["max_tokens"] = 256  # another selection of held-out text: a new base evaluation
    third, third_calls = run_counting(data, tmp_path / "third", monkeypatch)
    assert third_calls == {"heldout": 4, "mcq": 2} and "base_cache" not in third[0]
    assert len(list((tmp_path / "cache" / "evals").glob("*.json"))) == 2


def key_of(data: dict, tokenizer, **changes) -> str | None:
    eval_sets = changes.pop("eval_sets", {"general": (np.arange(66).reshape(2, 33), 120)})
    mcq_sets = changes.pop("mcq_sets", {"q": QUESTIONS})
    bf16 = changes.pop("bf16", False)
    device = changes.pop("device", "cpu")
    hashes = changes.pop("hashes", {"general": "a" * 64})
    cache = cache_for_run(
        config_from_dict(data),
        tokenizer=tokenizer,
        eval_sets=eval_sets,
        heldout_hashes=hashes,
        mcq_sets=mcq_sets,
        mcq_scoring={"template": "{question}\nAnswer:", "few_shot": 0, "outcomes": True},
        device_type=device,
        bf16=bf16,
    )
    return None if cache is None else cache.key


def test_every_component_of_the_key_changes_it(tmp_path, base_dir, tiny_tokenizer):
    data = config_dict(tmp_path, base_dir)
    reference = key_of(data, tiny_tokenizer)
    assert reference == key_of(data, tiny_tokenizer)  # stable

    def changed(path: str, value) -> dict:
        copy = json.loads(json.dumps(data))
        node = copy
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
        return copy

    different = {
        "eval.max_tokens": key_of(changed("eval.max_tokens", 256), tiny_tokenizer),
        "eval.mcq_limit": key_of(changed("eval.mcq_limit", 2), tiny_tokenizer),
        "train.seq_len": key_of(changed("train.seq_len", 16), tiny_tokenizer),
        "train.mixed_precision": key_of(changed("train.mixed_precision", "fsdp"), tiny_tokenizer),
        "model.dtype": key_of(changed("model.dtype", "bfloat16"), tiny_tokenizer),
        "sources.general.heldout": key_of(
            changed("sources.general.heldout", {"documents": 5}), tiny_tokenizer
        ),
        "tokenizer": key_of(data, load_tokenizer("bundled")),
        "windows": key_of(
            data, tiny_tokenizer, eval_sets={"general": (np.arange(66).reshape(2, 33) + 1, 120)}
        ),
        "bytes": key_of(data, tiny_tokenizer, eval_sets={"general": (np.arange(66).reshape(2, 33), 121)}),
        "prepared tokens": key_of(data, tiny_tokenizer, hashes={"general": "b" * 64}),
        "questions": key_of(data, tiny_tokenizer, mcq_sets={"q": QUESTIONS[:2]}),
        "precision": key_of(data, tiny_tokenizer, bf16=True),
        "device": key_of(data, tiny_tokenizer, device="cuda"),
    }
    assert all(key is not None and key != reference for key in different.values()), different
    assert len(set(different.values())) == len(different)

    # What decides only when and in what batches evaluation runs is not part of the key.
    for path, value in [("eval.batch_size", 3), ("eval.every_tokens", 128), ("eval.budget", 0.2)]:
        assert key_of(changed(path, value), tiny_tokenizer) == reference, path
    # A fresh model has no identity to key by: never cached.
    fresh = changed("model", {"init": {"hidden_size": 32, "num_layers": 1, "num_heads": 2}})
    fresh["tokenizer"] = str(base_dir)
    assert key_of(fresh, tiny_tokenizer) is None

    # The weights' file rewritten (a new modification time) is another model.
    weights = base_dir / "model.safetensors"
    stat = weights.stat()
    try:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert key_of(data, tiny_tokenizer) != reference
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert key_of(data, tiny_tokenizer) == reference


def test_model_identity_reads_files_and_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    (tmp_path / "README.md").write_text("a model card, rewritten by forgetless card")
    identity = model_identity(str(tmp_path))
    assert identity is not None
    assert [name for name, _, _ in identity["files"]] == ["config.json", "model.safetensors"]
    assert identity["files"][1][1] == 5 and len(identity["config_sha256"]) == 64
    assert model_identity(str(tmp_path / "missing")) is None and model_identity(None) is None


def test_an_entry_that_does_not_match_is_absent(tmp_path):
    cache = BaseEvalCache(tmp_path / "evals" / "k.json", "k", {"model": {"files": []}})
    assert cache.read() is None
    assert cache.write(
        {"kind": "eval", "step": 0, "eval/a/loss": 1.5}, eval_s=2.0, heldout_s=1.0, run_dir=tmp_path
    )
    hit = cache.read()
    assert hit is not None and hit.record == {"eval/a/loss": 1.5} and hit.eval_s == 2.0
    assert [p.name for p in (tmp_path / "evals").iterdir()] == ["k.json"]  # no temporary file left
    other = BaseEvalCache(cache.path, "k", {"model": {"files": [["x", 1, 2]]}})
    assert other.read() is None  # the same file name, other components
    cache.path.write_text("{ truncated")
    assert cache.read() is None
