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
    resumed = _resume_from(runs["two"], 10, runs["tmp"] / "two-then-one")
    train(runs["config"], "--out", str(resumed), "--resume", ranks=1)
    _assert_same_trajectory(resumed, runs["two"], after=10)


def test_average_reads_sharded_checkpoints_like_single_process_ones(runs, tmp_path) -> None:
    from forgetless.cli import main

    for name in ("single", "two"):
        main(["average", str(runs[name]), "--last", "2", "--out", str(tmp_path / name)])
    single = load_file(tmp_path / "single" / "model.safetensors")
    sharded = load_file(tmp_path / "two" / "model.safetensors")
    assert single.keys() == sharded.keys()
    for key in single:
        torch.testing.assert_close(sharded[key], single[key], atol=1e-4, rtol=1e-3)


def _resume_from(run_dir: Path, step: int, out: Path) -> Path:
    """A copy of `run_dir` as if it had stopped after the checkpoint of `step`."""
    resumed = Path(shutil.copytree(run_dir, out))
    shutil.rmtree(resumed / "final")
    for folder in ckpt.list_checkpoints(resumed):
        if folder.name != f"step_{step}":
            shutil.rmtree(folder)
    return resumed


def _assert_same_trajectory(resumed: Path, reference: Path, after: int) -> None:
    got = {r["step"]: r["loss"] for r in _lines(resumed, "train") if r["step"] > after}
    expected = {r["step"]: r["loss"] for r in _lines(reference, "train") if r["step"] > after}
    assert got.keys() == expected.keys()
    for step in got:
        assert got[step] == pytest.approx(expected[step], abs=1e-4)
    a, b = (
        load_file(resumed / "final" / "model.safetensors"),
        load_file(reference / "final" / "model.safetensors"),
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)


def test_a_single_process_checkpoint_resumes_on_two(runs) -> None:
    assert not ckpt.is_sharded(runs["single"] / "checkpoints" / "step_10")
    resumed = _resume_from(runs["single"], 10, runs["tmp"] / "one-then-two")
    train(runs["config"], "--out", str(resumed), "--resume", ranks=2)
    _assert_same_trajectory(resumed, runs["single"], after=10)


def test_eval_and_merge_read_a_sharded_checkpoint(runs, tmp_path) -> None:
    from forgetless.cli import main

    last = runs["two"] / "checkpoints" / "step_20"  # the end of the run: the weights of final/
    assert ckpt.is_sharded(last)
    for name, model in (("checkpoint", last), ("final", runs["two"] / "final")):
        main(
            [
                "eval",
                str(model),
                "--config",
                str(runs["config"]),
                "--json",
                str(tmp_path / f"{name}.json"),
                "--quiet",
            ]
        )
    checkpoint, final = (
        json.loads((tmp_path / f"{n}.json").read_text())["heldout"] for n in ("checkpoint", "final")
    )
    assert checkpoint["general"]["loss"] == pytest.approx(final["general"]["loss"], abs=1e-6)
    main(
        [
            "merge",
            str(last),
            str(runs["single"] / "checkpoints" / "step_20"),
            "--alpha",
            "0",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    merged, sharded = (
        load_file(tmp_path / "m" / "model.safetensors"),
        load_file(runs["two"] / "final" / "model.safetensors"),
    )
    for key in merged:
        torch.testing.assert_close(merged[key], sharded[key], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_a_checkpoint_of_two_ranks_resumes_on_three(tmp_path, tiny_tokenizer_dir) -> None:
    """Six sequences per step split into micro-batches of one on 1, 2 or 3 processes."""
    config_path = _config(tmp_path, tiny_tokenizer_dir)
    config = yaml.safe_load(config_path.read_text())
    config["train"].update(batch_tokens=6 * 32, micro_batch=1)
    config["stages"][0]["tokens"] = 20 * 6 * 32
    config["output"]["checkpoint_every_tokens"] = 10 * 6 * 32
    config_path.write_text(yaml.safe_dump(config))
    train(config_path, "--out", str(tmp_path / "two"), ranks=2)
    resumed = _resume_from(tmp_path / "two", 10, tmp_path / "two-then-three")
    train(config_path, "--out", str(resumed), "--resume", ranks=3)
    _assert_same_trajectory(resumed, tmp_path / "two", after=10)
