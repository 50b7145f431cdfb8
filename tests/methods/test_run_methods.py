"""Methods in the training loop: exact resume with their state, logging, EMA evaluation, freezing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import read_lines, tiny_config, weights, write_corpora

import forgetless.train.run as run_module
from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.train import checkpoint as ckpt
from forgetless.train.run import run_training

METHODS = {
    "mer": {"mer": {"every": 3, "eps": 0.5, "anchor_device": "cpu"}},
    "l2sp": {"l2sp": {"weight": 0.5}},
    "ewc": {"ewc": {"weight": 0.5, "from": "general", "batches": 2}},
    "distill": {"distill": {"alpha": 1.0, "temperature": 2.0, "on": "replay"}},
    "ema": {"ema": {"decay": 0.8}},
    "freeze": {"freeze": ["norms", "layers.0"], "lr_multipliers": {"embeddings": 0.25}},
}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    return write_corpora(tmp_path_factory.mktemp("corpora"))


def _run(tmp: Path, tokenizer_dir: Path, corpora: dict, *, resume: bool = False, **stage) -> Path:
    config = config_from_dict(tiny_config(tmp, tokenizer_dir, corpora, **stage))
    return run_training(config, resume=resume, quiet=True)


class _Interrupted(Exception):
    pass


def _interrupted_then_resumed(
    tmp: Path, tokenizer_dir: Path, corpora: dict, monkeypatch, stop_after: int, **stage
) -> Path:
    """Stop the run by an exception after `stop_after` optimizer steps, then resume it."""
    original = run_module.after_optimizer_step
    steps = {"done": 0}

    def after_step(methods, step):
        original(methods, step)
        steps["done"] += 1
        if steps["done"] == stop_after:
            raise _Interrupted

    monkeypatch.setattr(run_module, "after_optimizer_step", after_step)
    with pytest.raises(_Interrupted):
        _run(tmp, tokenizer_dir, corpora, **stage)
    monkeypatch.setattr(run_module, "after_optimizer_step", original)
    assert not (tmp / "run" / "final").exists()
    assert ckpt.latest_checkpoint(tmp / "run").name == "step_4"
    return _run(tmp, tokenizer_dir, corpora, resume=True, **stage)


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_resumes_exactly(method, tmp_path, tiny_tokenizer_dir, corpora, monkeypatch) -> None:
    methods = METHODS[method]
    reference = _run(tmp_path / "whole", tiny_tokenizer_dir, corpora, methods=methods)
    resumed = _interrupted_then_resumed(
        tmp_path / "resumed", tiny_tokenizer_dir, corpora, monkeypatch, stop_after=6, methods=methods
    )
    _assert_equal(weights(reference / "final"), weights(resumed / "final"))
    if method == "ema":
        _assert_equal(weights(reference / "final_ema"), weights(resumed / "final_ema"))
    if method in ("mer", "l2sp", "ewc", "distill", "ema"):
        saved = ckpt.read_extra_tensors(ckpt.list_checkpoints(resumed)[0])  # step_4, mid-stage
        assert list(saved) == [method] and saved[method]


def test_mer_with_eps_one_leaves_the_run_unchanged(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    plain = _run(tmp_path / "plain", tiny_tokenizer_dir, corpora)
    mer = _run(tmp_path / "mer", tiny_tokenizer_dir, corpora, methods={"mer": {"every": 2, "eps": 1.0}})
    _assert_equal(weights(plain / "final"), weights(mer / "final"))
    # ... and eps < 1 changes it.
    shrunk = _run(tmp_path / "shrunk", tiny_tokenizer_dir, corpora, methods={"mer": {"every": 2, "eps": 0.1}})
    assert not torch.equal(
        weights(plain / "final")["model.norm.weight"], weights(shrunk / "final")["model.norm.weight"]
    )


def test_terms_are_logged_and_ema_is_evaluated(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    methods = {"l2sp": {"weight": 0.5}, "distill": {"on": "all", "every": 2}, "ema": {"decay": 0.5}}
    run_dir = _run(tmp_path, tiny_tokenizer_dir, corpora, methods=methods)
    lines = read_lines(run_dir)
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8]  # log_every_steps: 2
    for record in train:
        assert record["loss/l2sp"] >= 0 and record["loss/distill"] >= 0
    assert train[-1]["loss/l2sp"] > 0 and train[-1]["loss/distill"] > 0
    evals = [r for r in lines if r["kind"] == "eval"]
    assert "eval/code/loss@ema" not in evals[0]  # the base evaluation comes before any method
    for record in evals[1:]:
        assert {"eval/code/loss@ema", "eval/general/loss@ema", "eval/code/bpb@ema"} <= record.keys()
        assert record["eval/code/loss@ema"] != record["eval/code/loss"]
    assert (run_dir / "final_ema" / "config.json").is_file()
    # The EMA does not touch the live weights: the same run without it ends with the same weights.
    without = _run(
        tmp_path / "without",
        tiny_tokenizer_dir,
        corpora,
        methods={k: methods[k] for k in ("l2sp", "distill")},
    )
    _assert_equal(weights(run_dir / "final"), weights(without / "final"))
    # The summary's sources are still only the real ones.
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(summary["sources"]) == ["code", "general"]


def test_frozen_parameters_do_not_move(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    from forgetless.model.load import build_model, load_tokenizer

    config = config_from_dict(
        tiny_config(tmp_path, tiny_tokenizer_dir, corpora, methods={"freeze": ["embeddings", "layers.1"]})
    )
    torch.manual_seed(config.train.seed)
    start = dict(build_model(config.model, load_tokenizer(str(tiny_tokenizer_dir))).named_parameters())
    final = weights(run_training(config, quiet=True) / "final")
    for name, param in start.items():
        frozen = name == "model.embed_tokens.weight" or name.startswith("model.layers.1.")
        assert torch.equal(param.detach(), final[name]) == frozen, name


def test_bad_freeze_pattern_fails_before_the_run(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    with pytest.raises(UserError, match=r"stages\.0\.methods\.freeze\.0: 'decoder\.\*' matches no"):
        _run(tmp_path, tiny_tokenizer_dir, corpora, methods={"freeze": ["decoder.*"]})
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    with pytest.raises(UserError, match=r"stages\.0\.methods\.lr_multipliers\.layers\.5"):
        _run(tmp_path, tiny_tokenizer_dir, corpora, methods={"lr_multipliers": {"layers.5": 0.1}})
