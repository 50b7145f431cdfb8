"""Transforms under torchrun (2 processes, gloo, CPU): the same run as one process.

In the default suite with FSDP2: block expansion that trains only the new blocks, LoRA with a
trainable head plus an EMA (whose `final_ema/` is merged too), and one run that chains the reshaping
transforms (new tokens, stacked blocks, a RoPE theta, experts) over a length curriculum, resumed
exactly on 2 processes from a checkpoint before the length changes; its first stage trains only
what the transforms added (`train_only: [new_rows, new]`). A vocabulary extension that
trains only the new rows (its old rows bit for bit the same on 1 and 2 processes), a RoPE change
with the first stage longer than train.seq_len, and the DDP runs are marked slow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tiny_runs import read_lines, tiny_config, weights, write_corpora

from forgetless.train import checkpoint as ckpt
from launch import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

CASES = {
    "expand": ([{"kind": "expand_blocks", "layers": [0]}], {"train_only": ["new"]}),
    "lora": ([{"kind": "lora", "r": 4, "alpha": 8, "train_lm_head": True}], {"ema": {"decay": 0.8}}),
    "vocab": (
        [{"kind": "extend_vocab", "from": "code", "new_tokens": 48, "lm_head": "zero"}],
        {"train_only": ["new_rows"]},
    ),
    # RoPE and a stage of its own length, half its steps cut to train.seq_len (stage keys, not methods)
    "rope": ([{"kind": "rope", "theta": 100000}], {"seq_len": 64, "short_share": 0.5}),
    # adapters on the fused expert weights (every expert chosen: no routing decision to flip)
    "moe-lora": (
        [
            {"kind": "upcycle_moe", "experts": 2, "top_k": 2, "noise": 0.02},
            {"kind": "lora", "r": 4, "alpha": 8},
        ],
        {},
    ),
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
        pytest.param("rope", "fsdp", marks=pytest.mark.slow),
        pytest.param("moe-lora", "fsdp", marks=pytest.mark.slow),
    ],
)
def test_two_processes_follow_one(setup, case: str, parallel: str) -> None:
    one = _run(setup, case, 1, "fsdp")
    two = _run(setup, case, 2, parallel)
    folders = ("final", "final_ema") if case == "lora" else ("final",)
    _assert_same_run(one, two, folders)
    if case in ("lora", "moe-lora"):
        assert (two / "final_adapter" / "adapter_model.safetensors").is_file()
    if case == "lora":
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


# The reshaping transforms as users chain them (docs/transforms.md, "Composing transforms"); every
# expert chosen (top_k = experts), so no routing decision for rounding to flip between the runs.
COMPOSED = [
    {"kind": "extend_vocab", "from": "code", "new_tokens": 16, "lm_head": "zero"},
    {"kind": "depth_upscale", "layers": "0,1,1"},
    {"kind": "rope", "theta": 100000},
    {"kind": "upcycle_moe", "experts": 2, "top_k": 2, "noise": 0.02},
]


@pytest.fixture(scope="module")
def composed(setup) -> dict[str, Path]:
    """The composed run on 1 and 2 processes (FSDP2), and the 2-process run again from its step-2
    checkpoint. Stage `short` (4 steps at train.seq_len 32) trains what the transforms added (the
    new rows, the stacked copy, the experts and routers); stage `long` (4 steps) the whole model at
    seq_len 64 with half its micro-batches cut to 32."""
    tmp, corpora, tokenizer_dir = setup
    data = tiny_config(tmp / "composed", tokenizer_dir, corpora)
    data["model"]["init"]["tie_word_embeddings"] = False
    data["model"]["transforms"] = COMPOSED
    stage = data["stages"][0]
    data["stages"] = [
        {**stage, "name": "short", "tokens": 1024, "methods": {"train_only": ["new_rows", "new"]}},
        {**stage, "name": "long", "tokens": 1024, "seq_len": 64, "short_share": 0.5},
    ]
    data["output"].update(checkpoint_every_tokens=512, keep_checkpoints=4)
    config = tmp / "composed.yaml"
    config.write_text(yaml.safe_dump(data))
    runs = {"one": tmp / "composed-1", "two": tmp / "composed-2", "resumed": tmp / "composed-resumed"}
    for name, ranks in (("one", 1), ("two", 2)):
        train(config, "--out", str(runs[name]), "--set", "train.parallel=fsdp", ranks=ranks)
    shutil.copytree(runs["two"], runs["resumed"])
    shutil.rmtree(runs["resumed"] / "final")
    for folder in ckpt.list_checkpoints(runs["resumed"]):
        if folder.name != "step_2":
            shutil.rmtree(folder)
    train(config, "--out", str(runs["resumed"]), "--resume", ranks=2)
    return runs


def test_composed_transforms_on_two_processes_follow_one(composed, tiny_tokenizer) -> None:
    from transformers import AutoConfig

    one, two = composed["one"], composed["two"]
    _assert_same_run(one, two, ("final",))
    trains = [[r for r in read_lines(run) if r["kind"] == "train"] for run in (one, two)]
    for a, b in zip(*trains, strict=True):  # the experts' token counts, summed over the processes
        assert b["expert_tokens"] == a["expert_tokens"] and sum(map(sum, a["expert_tokens"])) > 0
        assert b["loss/router_balance"] == pytest.approx(a["loss/router_balance"], abs=1e-5)
    start = next(r for r in read_lines(two) if r["kind"] == "run_start")
    assert [t["kind"] for t in start["transforms"]] == [t["kind"] for t in COMPOSED]
    rows = len(tiny_tokenizer)
    assert start["transforms"][0]["resolved"]["new_ids"] == [rows, rows + 16]
    saved = AutoConfig.from_pretrained(two / "final")
    assert saved.model_type == "mixtral" and saved.num_hidden_layers == 3 and saved.vocab_size == rows + 16
    assert saved.rope_parameters["rope_theta"] == 100000
    # Stage `short` trained what every transform added, followed through the upcycled replacement:
    # the embedding and head (their new rows), the stacked copy (block 2), every expert and router.
    final = weights(two / "final")
    added = {n for n in final if n.startswith("model.layers.2.") or ".block_sparse_moe." in n}
    added |= {"model.embed_tokens.weight", "lm_head.weight"}
    starts = [r for r in read_lines(two) if r["kind"] == "stage_start"]
    assert [s["trainable_parameters"] for s in starts] == [
        sum(final[n].numel() for n in added),
        sum(v.numel() for v in final.values()),
    ]


def test_the_composed_run_resumes_exactly_across_the_length_change(composed) -> None:
    whole, resumed = weights(composed["two"] / "final"), weights(composed["resumed"] / "final")
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    lines = read_lines(composed["resumed"])
    at = max(i for i, r in enumerate(lines) if r["kind"] == "resume")
    assert lines[at]["step"] == 2
    after = {r["step"]: r["loss"] for r in lines[at:] if r["kind"] == "train"}
    uninterrupted = {r["step"]: r["loss"] for r in read_lines(composed["two"]) if r["kind"] == "train"}
    assert sorted(after) == [4, 6, 8] and all(after[step] == uninterrupted[step] for step in after)
