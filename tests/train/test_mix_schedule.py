"""Mixtures that change along a stage, in a run: loss-driven shares and a decay-phase mixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import write_corpora
from forgetless.config import config_from_dict
from forgetless.train.run import run_training
from methods.tiny_runs import read_lines, run_interrupted, tiny_config, weights


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    return write_corpora(tmp_path_factory.mktemp("mix") / "data")


def mixed(tmp: Path, tokenizer_dir: Path, corpora: dict[str, Path], **stage) -> dict:
    """8 steps of 256 tokens mixing code and general half and half, a checkpoint every 4 steps."""
    data = tiny_config(tmp, tokenizer_dir, corpora, **stage)
    data["stages"][0]["mix"] = {"code": 1.0, "general": 1.0}
    del data["stages"][0]["replay"]
    return data


def same_weights(a: Path, b: Path) -> None:
    mine, theirs = weights(a / "final"), weights(b / "final")
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name


def test_eta_zero_is_the_static_mixture_bit_for_bit(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    static = run_training(config_from_dict(mixed(tmp_path / "static", tiny_tokenizer_dir, corpora)), quiet=True)
    schedule = {"kind": "loss_driven", "every_tokens": 512, "eta": 0.0}
    adaptive = run_training(
        config_from_dict(mixed(tmp_path / "eta0", tiny_tokenizer_dir, corpora, mix_schedule=schedule)), quiet=True
    )
    same_weights(static, adaptive)
    updates = [r for r in read_lines(adaptive) if r["kind"] == "mix"]
    assert [r["update"] for r in updates] == [0, 1, 2, 3]  # the stage start, then after steps 2, 4, 6
    assert all(r["weights"] == {"code": 0.5, "general": 0.5} and not r["changed"] for r in updates)
    assert set(updates[1]["progress"]) == {"code", "general"} and updates[1]["loss"]["code"] > 0


def test_loss_driven_shares_move_and_resume_exactly(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    schedule = {"kind": "loss_driven", "every_tokens": 512, "eta": 1.0, "window": 1, "floor": 0.1}
    whole = run_training(
        config_from_dict(mixed(tmp_path / "whole", tiny_tokenizer_dir, corpora, mix_schedule=schedule)), quiet=True
    )
    config = config_from_dict(mixed(tmp_path / "resumed", tiny_tokenizer_dir, corpora, mix_schedule=schedule))
    run_interrupted(6, lambda: run_training(config, quiet=True))  # after the update at step 6, checkpoint at 4
    resumed = run_training(config, resume=True, quiet=True)
    same_weights(whole, resumed)
    ours = [r for r in read_lines(whole) if r["kind"] == "mix"]
    assert any(r["changed"] for r in ours)
    assert len({round(r["weights"]["code"], 9) for r in ours}) > 1
    theirs = [r for r in read_lines(resumed) if r["kind"] == "mix"]
    strip = [{k: v for k, v in r.items() if k != "eval_s"} for r in theirs[-2:]]
    assert strip == [{k: v for k, v in r.items() if k != "eval_s"} for r in ours[-2:]]


def test_a_cooldown_branch_on_another_mixture_is_a_run_of_its_config(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    """`cooldown --mix`: the decay reads another mixture (here a third source, prose), and the branch
    equals, bit for bit, a run of its config (a WSD schedule with `mix_schedule: {kind: decay}`)."""
    from forgetless.config import load_config
    from forgetless.train.branch import cooldown, read_branch

    data = tiny_config(tmp_path, tiny_tokenizer_dir, corpora)
    data["sources"]["prose"] = {"files": [str(corpora["general"])], "heldout": {"documents": 8}}
    data["eval"]["sources"] = ["general", "code"]
    data["stages"][0]["schedule"] = {"kind": "constant", "peak_lr": 3e-3, "warmup": 0.25}
    data["output"]["checkpoint_every_tokens"] = 512
    data["output"]["keep_checkpoints"] = 4
    parent = run_training(config_from_dict(data), quiet=True)
    branch = cooldown(parent, tokens=768, from_step=4, mix={"code": 1.0, "prose": 1.0}, quiet=True)
    plain = cooldown(parent, tokens=768, from_step=4, quiet=True)
    config = load_config(branch / "config.yaml", [f"output.dir={tmp_path / 'reference'}"])
    assert config.stages[0].mix_schedule.kind == "decay" and config.stages[0].schedule.kind == "wsd"
    reference = run_training(config, quiet=True)
    same_weights(branch, reference)
    with pytest.raises(AssertionError):
        same_weights(branch, plain)  # the decay read other data
    assert read_branch(branch)["mix"] == {"code": 1.0, "prose": 1.0}
    start = next(r for r in read_lines(branch) if r["kind"] == "run_start")
    assert start["stages"][0]["targets"] == ["code", "prose"]
