"""Methods in the training loop: exact resume with their state, logging, EMA evaluation, freezing.

Runs are tiny (8 steps) and shared between tests through module fixtures: a run without methods,
and two groups of methods, each run whole and interrupted-then-resumed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora

from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.model.load import build_model, load_tokenizer
from forgetless.train import checkpoint as ckpt
from forgetless.train.run import run_training

GROUPS = {
    # Every method keeps state that changes the weights (or, for the EMA, final_ema/) after the
    # interruption at step 6: MER's anchor (updates at steps 3 and 6), EWC's Fisher and reference,
    # L2-SP's reference, the teacher, the stage's frozen parameters and multipliers.
    "mer+ewc+ema": {
        "mer": {"every": 3, "eps": 0.5, "anchor_device": "cpu"},
        "ewc": {"weight": 0.5, "from": "general", "batches": 2},
        "ema": {"decay": 0.8},
    },
    "distill+l2sp+freeze": {
        "distill": {"alpha": 1.0, "temperature": 2.0, "on": "replay", "every": 2},
        "l2sp": {"weight": 0.5},
        "freeze": ["norms", "layers.0"],
        "lr_multipliers": {"embeddings": 0.25},
    },
}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    return write_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def runner(tmp_path_factory, tiny_tokenizer_dir, corpora):
    def run(name: str, methods: dict | None = None, *, resume: bool = False, **train) -> Path:
        tmp = tmp_path_factory.getbasetemp() / "method-runs" / name
        data = tiny_config(tmp, tiny_tokenizer_dir, corpora, **({"methods": methods} if methods else {}))
        data["train"].update(train)
        return run_training(config_from_dict(data), resume=resume, quiet=True)

    return run


@pytest.fixture(scope="module")
def plain_run(runner) -> Path:
    return runner("plain")


@pytest.fixture(scope="module")
def group_runs(runner):
    """name -> (the whole run, the run interrupted after 6 steps and resumed from step_4, the
    method tensors of the checkpoint it resumed from); each group runs once per module."""
    done: dict[str, tuple[Path, Path, dict]] = {}

    def get(name: str) -> tuple[Path, Path, dict]:
        if name not in done:
            done[name] = _whole_and_resumed(runner, name)
        return done[name]

    return get


def _whole_and_resumed(runner, name: str) -> tuple[Path, Path, dict]:
    whole = runner(f"{name}-whole", GROUPS[name])
    run_interrupted(6, lambda: runner(f"{name}-resumed", GROUPS[name]))
    resumed_dir = whole.parent.parent / f"{name}-resumed" / "run"
    assert not (resumed_dir / "final").exists()
    assert ckpt.latest_checkpoint(resumed_dir).name == "step_4"
    saved = ckpt.read_extra_tensors(ckpt.latest_checkpoint(resumed_dir))
    return whole, runner(f"{name}-resumed", GROUPS[name], resume=True), saved


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_methods_resume_exactly(name, group_runs, plain_run) -> None:
    whole, resumed, saved = group_runs(name)
    _assert_equal(weights(whole / "final"), weights(resumed / "final"))
    if "ema" in GROUPS[name]:
        _assert_equal(weights(whole / "final_ema"), weights(resumed / "final_ema"))
    # Each method with tensors saved them in the mid-stage checkpoint ...
    with_tensors = {"mer", "l2sp", "ewc", "distill", "ema"} & set(GROUPS[name])
    assert set(saved) == with_tensors and all(saved[m] for m in with_tensors)
    # ... and the methods did change the run.
    plain = weights(plain_run / "final")
    assert not torch.equal(
        plain["model.layers.1.mlp.up_proj.weight"],
        weights(whole / "final")["model.layers.1.mlp.up_proj.weight"],
    )


def test_mer_with_eps_one_leaves_the_run_unchanged(runner, plain_run) -> None:
    mer = runner("mer-eps-1", {"mer": {"every": 2, "eps": 1.0}})
    _assert_equal(weights(plain_run / "final"), weights(mer / "final"))


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_terms_are_logged_and_ema_is_evaluated(name, group_runs) -> None:
    whole = group_runs(name)[0]
    lines = read_lines(whole)
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8]  # log_every_steps: 2
    terms = {"mer+ewc+ema": ["loss/ewc"], "distill+l2sp+freeze": ["loss/l2sp", "loss/distill"]}[name]
    for key in terms:
        assert all(math.isfinite(r[key]) and r[key] >= 0 for r in train), key
        assert train[-1][key] > 0, key
    evals = [r for r in lines if r["kind"] == "eval"]
    assert [r["point"] for r in evals] == ["base", "dense", "stage_end"]
    assert not any("@ema" in key for key in evals[0])  # the base evaluation comes before any method
    if "ema" in GROUPS[name]:
        for record in evals[1:]:
            assert {"eval/code/loss@ema", "eval/general/loss@ema", "eval/code/bpb@ema"} <= record.keys()
            assert record["eval/code/loss@ema"] != record["eval/code/loss"]
        assert (whole / "final_ema" / "config.json").is_file()
    else:
        assert not (whole / "final_ema").exists()
    summary = json.loads((whole / "summary.json").read_text())
    assert sorted(summary["sources"]) == ["code", "general"]  # @ema keys are not sources


def test_frozen_parameters_do_not_move(group_runs, tiny_tokenizer_dir, corpora, tmp_path) -> None:
    whole = group_runs("distill+l2sp+freeze")[0]  # freezes norms and layers.0
    config = config_from_dict(tiny_config(tmp_path, tiny_tokenizer_dir, corpora))
    torch.manual_seed(config.train.seed)  # the run's initialisation
    start = dict(build_model(config.model, load_tokenizer(str(tiny_tokenizer_dir))).named_parameters())
    final = weights(whole / "final")
    for param_name, param in start.items():
        frozen = param_name.endswith("norm.weight") or param_name.startswith("model.layers.0.")
        assert torch.equal(param.detach(), final[param_name]) == frozen, param_name


def test_bad_freeze_pattern_fails_before_the_run(tmp_path, tiny_tokenizer_dir, corpora) -> None:
    def run(methods: dict) -> None:
        run_training(
            config_from_dict(tiny_config(tmp_path, tiny_tokenizer_dir, corpora, methods=methods)), quiet=True
        )

    with pytest.raises(UserError, match=r"stages\.0\.methods\.freeze\.0: 'decoder\.\*' matches no"):
        run({"freeze": ["decoder.*"]})
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    with pytest.raises(UserError, match=r"stages\.0\.methods\.lr_multipliers\.layers\.5"):
        run({"lr_multipliers": {"layers.5": 0.1}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_method_on_cuda_in_bf16(runner) -> None:
    """All methods at once on a GPU (bf16 autocast, the fused loss where no logits are needed, a
    bf16 teacher, the MER anchor and the EMA on the CPU): the run finishes, its terms are finite,
    and an interrupted run resumes to the same weights up to the GPU's nondeterministic sums."""
    methods = {**GROUPS["mer+ewc+ema"], **GROUPS["distill+l2sp+freeze"]}
    methods["ema"] = {"decay": 0.8, "device": "cpu"}
    gpu = {"device": "cuda", "precision": "bf16"}
    whole = runner("cuda-whole", methods, **gpu)
    train = [r for r in read_lines(whole) if r["kind"] == "train"]
    for key in ("loss/l2sp", "loss/ewc", "loss/distill"):
        assert all(math.isfinite(r[key]) for r in train), key
    assert (whole / "final_ema" / "model.safetensors").is_file()
    run_interrupted(6, lambda: runner("cuda-resumed", methods, **gpu))
    resumed = runner("cuda-resumed", methods, resume=True, **gpu)
    a, b = weights(whole / "final"), weights(resumed / "final")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"largest difference between the whole and the resumed run on CUDA: {worst:.3g}")
    assert worst < 1e-3
