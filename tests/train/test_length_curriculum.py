"""A length curriculum: stages of their own `seq_len` after a RoPE change, with short sequences mixed
back in (`short_share`), resuming exactly across the stage where the length changes, and held-out
loss by position in the document in every evaluation."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.methods.base import MicroBatch
from forgetless.train.run import run_training
from forgetless.train.short_sequences import ShortSequences
from methods.tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory, tiny_tokenizer, tiny_tokenizer_dir):
    """`config(name)`: a 32-token stage (4 steps), then a 64-token stage (8 steps) with half its
    steps cut back to 32 tokens, on a base trained for 32 positions, theta raised."""
    from conftest import tiny_llama

    root = tmp_path_factory.mktemp("curriculum")
    base = root / "base"
    tiny_llama(tiny_tokenizer, max_position_embeddings=32).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    corpora = write_corpora(root / "corpora")

    def config(name: str, transforms: list | None = None, **long_stage) -> dict:
        data = tiny_config(root / name, tiny_tokenizer_dir, corpora)
        data["model"] = {
            "path": str(base),
            "transforms": [{"kind": "rope", "theta": 100_000}] if transforms is None else transforms,
        }
        data["tokenizer"] = str(base)
        first = data["stages"][0]
        data["stages"] = [
            {**first, "name": "short", "tokens": 1024},
            {**first, "name": "long", "tokens": 2048, "seq_len": 64, "short_share": 0.5, **long_stage},
        ]
        data["output"]["checkpoint_every_tokens"] = 512  # every 2 steps
        return data

    return config


def run(config: dict, resume: bool = False) -> Path:
    return run_training(config_from_dict(config), resume=resume, quiet=True)


@pytest.fixture(scope="module")
def runs(curriculum) -> dict[str, Path]:
    out = {"whole": run(curriculum("whole"))}
    for name, steps in (("boundary", 5), ("inside", 7)):  # resumed from step 4 (the stage end), step 6
        run_interrupted(steps, lambda name=name: run(curriculum(name)))
        out[name] = run(curriculum(name), resume=True)
    return out


def test_the_curriculum_trains_each_stage_at_its_length_and_saves_the_new_rope(runs) -> None:
    run_dir = runs["whole"]
    lines = read_lines(run_dir)
    start = next(r for r in lines if r["kind"] == "run_start")
    assert [s["seq_len"] for s in start["stages"]] == [32, 64]
    ends = [r for r in lines if r["kind"] == "stage_end"]
    assert [(r["step"], r["tokens"]) for r in ends] == [(4, 1024), (12, 3072)]  # 4 steps, then 8 of 4 x 64
    final = json.loads((run_dir / "final" / "config.json").read_text())
    assert final["rope_parameters"]["rope_theta"] == 100_000
    assert final["max_position_embeddings"] == 64  # the longest stage
    assert "- sequence length: 32 -> 64" in (run_dir / "final" / "README.md").read_text()  # the model card


def test_a_curriculum_resumes_exactly_across_the_length_change(runs) -> None:
    whole = weights(runs["whole"] / "final")
    for name in ("boundary", "inside"):
        resumed = weights(runs[name] / "final")
        assert whole.keys() == resumed.keys()
        for key in whole:
            assert torch.equal(whole[key], resumed[key]), (name, key)


def test_every_evaluation_reports_the_loss_by_position_in_the_document(runs) -> None:
    lines = read_lines(runs["whole"])
    evals = [r for r in lines if r["kind"] == "eval"]
    for record in evals:
        for source in ("general", "code"):
            losses = record[f"eval/{source}/loss_by_position"]
            tokens = record[f"eval/{source}/tokens_by_position"]
            assert list(losses) == ["0-8", "8-16", "16-32", "32-64"]  # windows of the longest stage
            assert tokens == evals[0][f"eval/{source}/tokens_by_position"]  # the same windows every time
            mean = sum(losses[k] * tokens[k] for k in losses if tokens[k]) / sum(tokens.values())
            assert mean == pytest.approx(record[f"eval/{source}/loss"], rel=1e-9)
    summary = json.loads((runs["whole"] / "summary.json").read_text())
    table = summary["sources"]["general"]["loss_by_position"]
    assert table["32-64"]["base"] == evals[0]["eval/general/loss_by_position"]["32-64"]
    assert table["32-64"]["final"] == evals[-1]["eval/general/loss_by_position"]["32-64"]

    from forgetless.report.html import render_report
    from forgetless.report.runs import load_runs

    page = render_report(load_runs([runs["whole"]]))
    assert 'data-table="positions"' in page and "32-64" in page


def test_forgetless_eval_of_final_gives_back_the_run_s_last_losses_by_position(runs, curriculum) -> None:
    from forgetless.evaluate.model_eval import EvalOptions, evaluate_model

    last = [r for r in read_lines(runs["whole"]) if r["kind"] == "eval"][-1]
    config = config_from_dict(curriculum("whole"))
    result = evaluate_model(runs["whole"] / "final", EvalOptions(progress=False), config=config)
    assert result["seq_len"] == 64  # the run's longest stage, as it evaluated
    for source in ("general", "code"):
        got = result["heldout"][source]
        assert got["loss"] == pytest.approx(last[f"eval/{source}/loss"], abs=1e-4)
        assert got["tokens_by_position"] == last[f"eval/{source}/tokens_by_position"]
        for bucket, loss in last[f"eval/{source}/loss_by_position"].items():
            assert got["loss_by_position"][bucket] == pytest.approx(loss, abs=1e-4)


def test_short_sequences_are_a_share_of_the_steps_holding_the_same_tokens() -> None:
    short = ShortSequences(Fraction(1, 4), 8)
    pattern = [short.is_short(n) for n in range(40)]
    assert sum(pattern) == 10 and all(sum(pattern[i : i + 4]) == 1 for i in range(0, 40, 4))
    tokens = torch.arange(2 * 33).reshape(2, 33)
    step = pattern.index(True)
    batch = MicroBatch(tokens[:, :-1], tokens[:, 1:], np.array([True, False]), step=step)
    cut = short.cut(batch)
    assert cut.inputs.shape == (8, 8) and cut.targets.shape == (8, 8) and cut.step == step
    assert torch.equal(cut.inputs.reshape(2, 32), batch.inputs) and torch.equal(
        cut.targets.reshape(2, 32), batch.targets
    )
    assert cut.replay.tolist() == [True] * 4 + [False] * 4
    long = MicroBatch(batch.inputs, batch.targets, batch.replay, step=pattern.index(False))
    assert short.cut(long) is long


def test_a_stage_longer_than_the_model_without_a_rope_change_is_refused(curriculum) -> None:
    with pytest.raises(
        UserError, match=r"^stages\.1\.seq_len: 64 tokens, beyond the model's max_position_embeddings = 32"
    ):
        run(curriculum("no-rope", transforms=[]))
    bad = curriculum("short-share", short_share=0.5, seq_len=32)  # no longer than the stage before
    with pytest.raises(UserError, match=r"stages\.1\.short_share: short sequences have the previous length"):
        config_from_dict(bad)


def test_a_cooldown_branch_of_the_longer_stage_keeps_its_length(curriculum) -> None:
    from forgetless.train.branch import cooldown, read_branch

    constant = {"kind": "constant", "peak_lr": 1e-3, "warmup": 0.0}
    parent = run(curriculum("constant", schedule=constant))
    branch = cooldown(parent, tokens=512, from_step=10, quiet=True)  # 2 steps of 4 x 64 tokens
    info = read_branch(branch)
    assert info["stage"] == "long" and info["decay_steps"] == 2 and info["decay_tokens"] == 512
    end = next(r for r in read_lines(branch) if r["kind"] == "stage_end" and r["stage"] == "long")
    assert (end["step"], end["tokens"]) == (12, 3072)
    assert (branch / "final" / "config.json").is_file()
