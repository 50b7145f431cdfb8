"""Transforms under torchrun (2 processes, gloo, CPU): the same run as one process.

One representative per kind of transform runs in the default suite with FSDP2: block expansion that
trains only the new blocks, LoRA with a trainable head plus an EMA (whose `final_ema/` is merged
too). A vocabulary extension that trains only the new rows (the gradient mask on row shards), depth
up-scaling, MoE upcycling (its balance loss and expert counts reduced over ranks), a RoPE change with
a longer stage, and the DDP runs are marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tiny_runs import read_lines, tiny_config, weights, write_corpora

from launch import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

CASES = {
    "expand": ([{"kind": "expand_blocks", "layers": [0]}], {"train_only": ["new"]}),
    "lora": ([{"kind": "lora", "r": 4, "alpha": 8, "train_lm_head": True}], {"ema": {"decay": 0.8}}),
    "vocab": (
        [{"kind": "extend_vocab", "from": "code", "new_tokens": 48, "lm_head": "zero"}],
        {"train_only": ["new_rows"]},
    ),
    "depth": ([{"kind": "depth_upscale", "layers": "0,1,1"}], {"train_only": ["new"]}),
    # every expert chosen (top_k = experts): no routing decision for rounding to flip between the runs
    "moe": ([{"kind": "upcycle_moe", "experts": 2, "top_k": 2, "noise": 0.02}], {}),
    # RoPE and a stage of its own length, half its steps cut to train.seq_len (stage keys, not methods)
    "rope": ([{"kind": "rope", "theta": 100000}], {"seq_len": 64, "short_share": 0.5}),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer_dir):
    tmp = tmp_path_factory.mktemp("transforms-dist")
    return tmp, write_corpora(tmp / "corpora"), tiny_tokenizer_dir


def _run(setup, case: str, ranks: int, parallel: str) -> Path:
    tmp, corpora, tokenizer_dir = setup
    transforms, stage = CASES[case]
    if "seq_len" not in stage:
        stage = {"methods": stage}
    data = tiny_config(tmp / case, tokenizer_dir, corpora, **stage)
    data["model"]["init"]["tie_word_embeddings"] = False
    data["model"]["transforms"] = transforms
    config = tmp / f"{case}.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp / f"{case}-{parallel}-{ranks}"
    if not out.exists():
        train(config, "--out", str(out), "--set", f"train.parallel={parallel}", ranks=ranks)
    return out


def _assert_same_run(one: Path, two: Path, folders: tuple[str, ...]) -> None:
    single = [r for r in read_lines(one) if r["kind"] == "train"]
    double = [r for r in read_lines(two) if r["kind"] == "train"]
    assert [r["step"] for r in double] == [r["step"] for r in single] == [2, 4, 6, 8]
    for a, b in zip(single, double, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
    last_one = [r for r in read_lines(one) if r["kind"] == "eval"][-1]
    last_two = [r for r in read_lines(two) if r["kind"] == "eval"][-1]
    for source in ("general", "code"):  # the loss by position, its sums reduced over the processes
        key = f"eval/{source}/loss_by_position"
        assert last_two[f"eval/{source}/tokens_by_position"] == last_one[f"eval/{source}/tokens_by_position"]
        for bucket, loss in last_one[key].items():
            assert last_two[key][bucket] == pytest.approx(loss, abs=1e-4), (source, bucket)
    for folder in folders:
        wa, wb = weights(one / folder), weights(two / folder)
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], atol=1e-4, rtol=1e-3, msg=f"{folder} {key}")


@pytest.mark.parametrize(
    ("case", "parallel"),
    [
        ("expand", "fsdp"),
        ("lora", "fsdp"),
        pytest.param("vocab", "fsdp", marks=pytest.mark.slow),  # about a minute on 2 cores
        pytest.param("expand", "ddp", marks=pytest.mark.slow),
        pytest.param("lora", "ddp", marks=pytest.mark.slow),
        pytest.param("vocab", "ddp", marks=pytest.mark.slow),
        pytest.param("depth", "fsdp", marks=pytest.mark.slow),
        pytest.param("moe", "fsdp", marks=pytest.mark.slow),
        pytest.param("rope", "fsdp", marks=pytest.mark.slow),
    ],
)
def test_two_processes_follow_one(setup, case: str, parallel: str) -> None:
    one = _run(setup, case, 1, "fsdp")
    two = _run(setup, case, 2, parallel)
    folders = ("final", "final_ema") if case == "lora" else ("final",)
    _assert_same_run(one, two, folders)
    if case == "lora":
        assert (two / "final_adapter" / "adapter_model.safetensors").is_file()
        assert (two / "final_ema_adapter" / "adapter_model.safetensors").is_file()
    start = next(r for r in read_lines(two) if r["kind"] == "run_start")
    assert start["transforms"][0]["kind"] == CASES[case][0][0]["kind"]
    if case == "vocab":  # the old rows of both runs are the initial model's, bit for bit
        first = start["transforms"][0]["resolved"]["new_ids"][0]
        wa, wb = weights(one / "final"), weights(two / "final")
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert wa[name].shape[0] == first + 48
            assert torch.equal(wa[name][:first], wb[name][:first]), name
        assert start["tokenizer"]["vocab_after"] == first + 48
