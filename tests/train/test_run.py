"""The training run end to end: the run-directory contract, stages, replay, resume and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from forgetless.cli import main
from forgetless.config import load_config
from forgetless.train import checkpoint as ckpt
from forgetless.train.run import run_training
from methods.tiny_runs import save_config, tiny_config, write_corpora


def write_config(tmp: Path, tokenizer_dir: Path, **overrides) -> Path:
    """The tiny run of 24 steps on code, then 16 on general alone with the optimizer state kept;
    `overrides` set dotted keys ("train.seq_len": 64)."""
    data = tiny_config(tmp, tokenizer_dir, write_corpora(tmp / "data"), cache_dir=tmp / "cache", tokens=6144)
    data["stages"].append(
        {
            "name": "general-again",
            "tokens": 4096,
            "mix": {"general": 1.0},
            "schedule": {"kind": "constant", "peak_lr": 1e-3, "warmup": 0.0},
            "reset_optimizer": False,
        }
    )
    data["train"]["log_every_steps"] = 1
    data["eval"].update(max_tokens=1024, dense_start=[0.1, 0.2])
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return save_config(data, tmp / "config.yaml")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    config = load_config(write_config(tmp, tiny_tokenizer_dir))
    return run_training(config, quiet=True)


def read_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contract(finished_run: Path) -> None:
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "final/config.json",
        "final/model.safetensors",
    ):
        assert (finished_run / name).exists(), name
    assert ckpt.latest_checkpoint(finished_run) is not None
    assert len(ckpt.list_checkpoints(finished_run)) == 2  # keep_checkpoints
    resolved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert resolved["train"]["weight_decay"] == 0.1  # defaults filled in

    lines = read_lines(finished_run)
    start = lines[0]
    assert start["kind"] == "run_start" and start["fused_loss"] is True
    assert start["fused_loss_why"] == "train.fused_loss is auto and model type 'llama' supports it"
    assert sorted(start["data"]) == ["code", "general"]  # the hashes a resume compares
    assert all(len(h) == 64 for source in start["data"].values() for h in source.values())
    train = [r for r in lines if r["kind"] == "train"]
    evals = [r for r in lines if r["kind"] == "eval"]
    for key in ("step", "tokens", "lr", "loss", "grad_norm", "tokens_per_s"):
        assert all(key in r for r in train), key
    assert evals[0]["point"] == "base" and evals[0]["step"] == 0
    for key in ("eval/general/loss", "eval/general/bpb", "eval/code/loss", "eval/code/bpb"):
        assert all(key in r for r in evals), key
    # every eval line says how much text it scored, the same at every point
    sizes = {f: evals[0][f"eval/code/{f}"] for f in ("documents", "tokens", "bytes")}
    assert all(r[f"eval/code/{f}"] == sizes[f] for r in evals for f in sizes)
    assert sizes["documents"] >= 1 and sizes["bytes"] >= sizes["tokens"] > 0
    assert [r["point"] for r in evals].count("stage_end") == 2
    assert {r["point"] for r in evals} >= {"base", "dense", "stage_end"}
    # 6144 + 4096 tokens at 256 tokens per step
    assert train[-1]["step"] == 40 and train[-1]["tokens"] == 10240

    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["sources"]["code"]["base_loss"] == pytest.approx(evals[0]["eval/code/loss"])
    assert summary["sources"]["code"]["eval_size"] == sizes


def test_training_learns_the_target(finished_run: Path) -> None:
    evals = [r for r in read_lines(finished_run) if r["kind"] == "eval"]
    first_stage_end = next(r for r in evals if r["point"] == "stage_end")
    assert first_stage_end["eval/code/loss"] < evals[0]["eval/code/loss"] - 0.5


def test_final_loads_with_plain_transformers(finished_run: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(finished_run / "final")
    model = AutoModelForCausalLM.from_pretrained(finished_run / "final")
    ids = tokenizer("def ", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5


def test_existing_run_is_never_overwritten(finished_run: Path, capsys) -> None:
    before = (finished_run / "metrics.jsonl").read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(finished_run.parent / "config.yaml"), "--quiet"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err
    assert (finished_run / "metrics.jsonl").read_bytes() == before


def test_config_error_names_line_and_key(tmp_path: Path, tiny_tokenizer_dir: Path, capsys) -> None:
    path = write_config(tmp_path, tiny_tokenizer_dir)
    text = path.read_text().replace("micro_batch: 4", "micro_batch: four")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "micro_batch" in t)
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"config.yaml:{line}: train.micro_batch" in err


def test_unknown_key_suggests_the_right_one(tmp_path: Path, tiny_tokenizer_dir: Path, capsys) -> None:
    path = write_config(tmp_path, tiny_tokenizer_dir)
    path.write_text(path.read_text().replace("seq_len:", "seq_lenn:"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(path)])
    assert exit_.value.code == 2
    assert "did you mean 'seq_len'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Exact resume, in separate processes killed with SIGKILL


_RUNNER = """
import os, sys
from pathlib import Path
import forgetless.train.checkpoint as checkpoint
import forgetless.train.run as run_module

die_on_save = int(os.environ.get("DIE_ON_SAVE", "0"))
die_at_step = int(os.environ.get("DIE_AT_STEP", "0"))
saves = steps = 0
original = checkpoint._write_files
original_step = run_module.after_optimizer_step

def after_step(methods, step):
    global steps
    original_step(methods, step)
    steps += 1
    if steps == die_at_step:  # killed right after this optimizer step, before anything is logged
        os.kill(os.getpid(), 9)

def write_files(folder, *args):
    global saves
    saves += 1
    if saves == die_on_save:
        original(folder, *args)
        # torn mid-checkpoint: the weights are half written when the process dies
        data = (Path(folder) / "model.safetensors").read_bytes()
        (Path(folder) / "model.safetensors").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), 9)
    return original(folder, *args)

checkpoint._write_files = write_files
run_module.after_optimizer_step = after_step
from forgetless.cli import main
main(sys.argv[1:])
"""


def _train_process(config: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", _RUNNER, "train", str(config), "--quiet", *extra],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "model.safetensors")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp, tiny_tokenizer_dir)
    proc = _train_process(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return tmp / "run"


def test_resume_after_sigkill_gives_identical_weights(tmp_path, tiny_tokenizer_dir, reference_run) -> None:
    config = write_config(tmp_path, tiny_tokenizer_dir)
    run_dir = tmp_path / "run"
    # SIGKILL right after step 23: between checkpoints (every 4 steps), a step before the stage ends.
    proc = _train_process(config, env={"DIE_AT_STEP": "23"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "final").exists()
    assert ckpt.latest_checkpoint(run_dir).name == "step_20"
    resumed = _train_process(config, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    _assert_same_weights(_final_weights(run_dir), _final_weights(reference_run))


def test_kill_during_checkpoint_write_keeps_previous_checkpoint(
    tmp_path, tiny_tokenizer_dir, reference_run
) -> None:
    config = write_config(tmp_path, tiny_tokenizer_dir)
    run_dir = tmp_path / "run"
    proc = _train_process(config, env={"DIE_ON_SAVE": "3"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None and latest.name == "step_8"  # the third save (step 12) never landed
    assert any(p.name.startswith(".tmp-") for p in (run_dir / "checkpoints").iterdir())
    resumed = _train_process(config, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    _assert_same_weights(_final_weights(run_dir), _final_weights(reference_run))
