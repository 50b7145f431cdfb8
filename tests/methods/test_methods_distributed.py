"""Every method under torchrun (2 processes, gloo, CPU): the same run as one process, FSDP2 or DDP,
and an exact resume of a sharded run with the methods' state.

One stage composes all of them (MER, EWC, L2-SP, self-distillation on the replayed rows, an EMA,
frozen and slowed parameter groups), so the shards of every kind of method state meet in one run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tiny_runs import read_lines, tiny_config, weights, write_corpora

from forgetless.train import checkpoint as ckpt
from launch import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

METHODS = {
    "mer": {"every": 3, "eps": 0.5, "anchor_device": "cpu"},
    "ewc": {"weight": 0.5, "from": "general", "batches": 2},
    "l2sp": {"weight": 0.5},
    "distill": {"alpha": 1.0, "temperature": 2.0, "on": "replay", "every": 2},
    "ema": {"decay": 0.8},
    "freeze": ["norms"],
    "lr_multipliers": {"embeddings": 0.25},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("methods-dist")
    data = tiny_config(tmp, tiny_tokenizer_dir, write_corpora(tmp / "corpora"), methods=METHODS)
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    out = {"config": config}
    for name, ranks, parallel in (("single", 1, "fsdp"), ("fsdp", 2, "fsdp"), ("ddp", 2, "ddp")):
        out[name] = tmp / name
        train(config, "--out", str(out[name]), "--set", f"train.parallel={parallel}", ranks=ranks)
    # The FSDP2 run again from its mid-stage checkpoint (step 4 of 8: MER's anchor, the Fisher,
    # the references, the teacher and the average all saved), on 2 processes.
    resumed = tmp / "resumed"
    shutil.copytree(out["fsdp"], resumed)
    for folder in ("final", "final_ema"):
        shutil.rmtree(resumed / folder)
    for folder in ckpt.list_checkpoints(resumed):
        if folder.name != "step_4":
            shutil.rmtree(folder)
    train(config, "--out", str(resumed), "--resume", ranks=2)
    out["resumed"] = resumed
    return out


def _train_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_lines(run_dir) if r["kind"] == "train"]


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3, msg=key)


@pytest.mark.parametrize("parallel", ["fsdp", "ddp"])
def test_methods_on_two_ranks_follow_the_single_process_run(runs, parallel) -> None:
    single, two = _train_lines(runs["single"]), _train_lines(runs[parallel])
    assert [r["step"] for r in two] == [r["step"] for r in single] == [2, 4, 6, 8]
    for a, b in zip(single, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
        # Penalties on the weights sum over every rank's shard; the distillation term is what it
        # added to the step's loss, though here only rank 1 holds replayed rows. The distillation
        # term is ~1e-4 nats, summed in another order over two ranks: float32 rounding alone moves
        # it by ~1e-3 of itself.
        for term in ("loss/l2sp", "loss/ewc", "loss/distill"):
            assert b[term] == pytest.approx(a[term], rel=5e-3, abs=1e-7), term
    evals = [r for r in read_lines(runs[parallel]) if r["kind"] == "eval"]
    evals_single = [r for r in read_lines(runs["single"]) if r["kind"] == "eval"]
    assert [r["point"] for r in evals] == [r["point"] for r in evals_single]
    assert "eval/general/loss@ema" in evals[-1]
    for a, b in zip(evals_single, evals, strict=True):
        metrics = [key for key in a if key.startswith(("eval/", "mcq/"))]
        assert sorted(metrics) == sorted(key for key in b if key.startswith(("eval/", "mcq/")))
        for key in metrics:
            assert b[key] == pytest.approx(a[key], abs=1e-4), key
    _assert_close(weights(runs["single"] / "final"), weights(runs[parallel] / "final"))
    _assert_close(weights(runs["single"] / "final_ema"), weights(runs[parallel] / "final_ema"))


def test_a_sharded_checkpoint_holds_whole_method_tensors(runs) -> None:
    single = ckpt.read_extra_tensors(runs["single"] / "checkpoints" / "step_4")
    sharded = ckpt.read_extra_tensors(runs["fsdp"] / "checkpoints" / "step_4")
    assert ckpt.is_sharded(runs["fsdp"] / "checkpoints" / "step_4")
    assert set(sharded) == set(single) == {"mer", "ewc", "l2sp", "distill", "ema"}
    for name in single:
        _assert_close(dict(single[name]), dict(sharded[name]))
    state = json.loads((runs["fsdp"] / "checkpoints" / "step_4" / "trainer.json").read_text())
    assert set(state["methods"]) == set(single)


def test_a_sharded_run_with_methods_resumes_exactly(runs) -> None:
    for folder in ("final", "final_ema"):
        whole, resumed = weights(runs["fsdp"] / folder), weights(runs["resumed"] / folder)
        assert whole.keys() == resumed.keys()
        for key in whole:
            assert torch.equal(whole[key], resumed[key]), (folder, key)
    after = {r["step"]: r["loss"] for r in _train_lines(runs["resumed"]) if r["step"] > 4}
    uninterrupted = {r["step"]: r["loss"] for r in _train_lines(runs["fsdp"]) if r["step"] > 4}
    assert after == uninterrupted
