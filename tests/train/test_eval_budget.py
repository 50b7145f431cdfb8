"""eval.budget: optional evaluation points are skipped past the share of wall time, the base and
stage ends always run, and question sets are sampled between the base and the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import TINY_LLAMA, write_corpora
from forgetless.config import load_config
from forgetless.train.eval_budget import EvalCosts, mcq_sample, mcq_sample_size, within_budget
from forgetless.train.run import run_training


def test_within_budget_by_hand() -> None:
    costs = EvalCosts(heldout_s=1.0, full_s=4.0)
    # 10 of 100 steps done in 10 s: 100 s of training projected. Evaluated so far 4 s (the base),
    # this point 1 s, one stage end left at 4 s: 9 s of 109 s = 8.3%.
    args = {"eval_s": 4.0, "train_s": 10.0, "steps_done": 10, "steps_left": 90, "stage_ends_left": 1}
    assert within_budget(0.10, costs, **args)
    assert not within_budget(0.05, costs, **args)
    assert within_budget(None, costs, **args)  # no budget: every point runs
    assert within_budget(0.05, EvalCosts(), **args)  # nothing measured yet: run it


def test_mcq_sample_is_seeded_and_ordered() -> None:
    items = [{"i": i} for i in range(1000)]
    sample = mcq_sample(items, seed=3)
    assert len(sample) == mcq_sample_size(1000) == 250
    assert sample == mcq_sample(items, seed=3) and [s["i"] for s in sample] == sorted(s["i"] for s in sample)
    assert mcq_sample(items[:80], seed=3) == items[:80]


@pytest.mark.parametrize("budget", [0.01])
def test_a_run_within_budget(tmp_path: Path, tiny_tokenizer_dir: Path, budget: float) -> None:
    corpora = write_corpora(tmp_path / "data")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question": f"{i} plus {i}?", "choices": [str(2 * i), str(i + 1)], "answer": 0})
            + "\n"
            for i in range(120)
        )
    )
    config = {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tiny_tokenizer_dir),
        "sources": {
            "general": {"files": [str(corpora["general"])], "heldout": {"documents": 4}},
            "code": {"files": [str(corpora["code"])], "heldout": {"documents": 1}},
        },
        "stages": [
            {"name": "code", "tokens": 1024, "mix": {"code": 1.0}},
            {"name": "general", "tokens": 1024, "mix": {"general": 1.0}},
        ],
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 4},
        "eval": {"max_tokens": 256, "every_tokens": 256, "mcq": [str(questions)], "budget": budget},
        "output": {"dir": str(tmp_path / "run")},
        "cache_dir": str(tmp_path / "cache"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = run_training(load_config(path), quiet=True)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if line["kind"] == "eval"]
    points = [(e["stage_index"], e["point"]) for e in evals]
    assert points[0] == (0, "base") and (0, "stage_end") in points and (1, "stage_end") in points
    # every step is a candidate point (8 steps, the dense points among them); a 1% budget leaves room for few
    summary = json.loads((run / "summary.json").read_text())
    assert summary["evals_skipped"] >= 4 and summary["eval_budget"] == budget
    assert len(evals) + summary["evals_skipped"] == 1 + 8  # the base, then one point per step
    sizes = {
        point: e["mcq/questions/n"] for e, point in zip(evals, points, strict=True) if "mcq/questions/n" in e
    }
    assert sizes == {(0, "base"): 120, (0, "stage_end"): 100, (1, "stage_end"): 120}  # a sample in between
    assert summary["mcq"]["questions"]["delta"]["paired"] is True  # base and end scored every question
