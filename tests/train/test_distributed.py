"""Two processes under torchrun (gloo, CPU) train exactly like one process with the same global batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from forgetless.train import checkpoint as ckpt
from launch import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def _config(tmp: Path, tokenizer_dir: Path) -> Path:
    data = tmp / "data"
    data.mkdir(parents=True)
    from conftest import TINY_LLAMA, sample_texts

    with open(data / "general.jsonl", "w") as fh:
        for i, text in enumerate(sample_texts()):
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    config = {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {"general": {"files": [str(data / "general.jsonl")], "heldout": {"documents": 8}}},
        "stages": [
            {
                "name": "one",
                "tokens": 5120,
                "mix": {"general": 1.0},
                "schedule": {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.1},
            }
        ],
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 2, "log_every_steps": 1},
        "eval": {"max_tokens": 2048, "batch_size": 4, "dense_start": [0.25]},
        "output": {"dir": str(tmp / "run"), "checkpoint_every_tokens": 2560, "keep_checkpoints": 3},
        "cache_dir": str(tmp / "cache"),
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _lines(run_dir: Path, kind: str) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["kind"] == kind]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("dist")
    config = _config(tmp, tiny_tokenizer_dir)
    train(config, "--out", str(tmp / "single"), ranks=1)
    train(config, "--out", str(tmp / "two"), ranks=2)
    return {"config": config, "single": tmp / "single", "two": tmp / "two", "tmp": tmp}


def test_two_ranks_follow_the_single_process_loss_trajectory(runs) -> None:
    single, two = _lines(runs["single"], "train"), _lines(runs["two"], "train")
    assert len(single) == len(two) == 20
    for a, b in zip(single, two, strict=True):
        assert a["step"] == b["step"] and a["tokens"] == b["tokens"]
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
    evals_single, evals_two = _lines(runs["single"], "eval"), _lines(runs["two"], "eval")
    assert [e["point"] for e in evals_two] == [e["point"] for e in evals_single]
    for a, b in zip(evals_single, evals_two, strict=True):
        assert b["eval/general/loss"] == pytest.approx(a["eval/general/loss"], abs=1e-4)
        assert b["eval/general/bpb"] == pytest.approx(a["eval/general/bpb"], abs=1e-4)


def test_the_distributed_run_writes_one_standard_model_and_sharded_checkpoints(runs) -> None:
    two = runs["two"]
    assert (two / "summary.json").is_file()
    latest = ckpt.latest_checkpoint(two)
    assert latest is not None and ckpt.is_sharded(latest)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(two / "final")
    assert model.config.num_hidden_layers == 2
    single, sharded = (
        load_file(runs["single"] / "final" / "model.safetensors"),
        load_file(two / "final" / "model.safetensors"),
    )
    assert single.keys() == sharded.keys()
    for key in single:
        torch.testing.assert_close(sharded[key], single[key], atol=1e-4, rtol=1e-3)


def test_a_checkpoint_of_two_ranks_resumes_on_one(runs) -> None:
    resumed = runs["tmp"] / "resumed"
    shutil.copytree(runs["two"], resumed)
    shutil.rmtree(resumed / "final")
    for folder in ckpt.list_checkpoints(resumed):
        if folder.name != "step_10":
            shutil.rmtree(folder)
    train(runs["config"], "--out", str(resumed), "--resume", ranks=1)
    after = {r["step"]: r["loss"] for r in _lines(resumed, "train") if r["step"] > 10}
    uninterrupted = {r["step"]: r["loss"] for r in _lines(runs["two"], "train") if r["step"] > 10}
    assert after.keys() == uninterrupted.keys()
    for step in after:
        assert after[step] == pytest.approx(uninterrupted[step], abs=1e-4)
    a, b = (
        load_file(resumed / "final" / "model.safetensors"),
        load_file(runs["two"] / "final" / "model.safetensors"),
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)


def test_average_reads_sharded_checkpoints_like_single_process_ones(runs, tmp_path) -> None:
    from forgetless.cli import main

    for name in ("single", "two"):
        main(["average", str(runs[name]), "--last", "2", "--out", str(tmp_path / name)])
    single = load_file(tmp_path / "single" / "model.safetensors")
    sharded = load_file(tmp_path / "two" / "model.safetensors")
    assert single.keys() == sharded.keys()
    for key in single:
        torch.testing.assert_close(sharded[key], single[key], atol=1e-4, rtol=1e-3)
