"""Tiny run configs for the run tests (methods, train, plan): hidden 32, 2 layers, seq_len 32, a
few steps on CPU. Other folders import it as `methods.tiny_runs`.

A plain module (not a conftest.py, which would shadow the root conftest for `from conftest import`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file

from conftest import TINY_LLAMA, write_corpora  # noqa: F401 - used by the methods' tests


def tiny_config(
    tmp: Path, tokenizer_dir: Path, corpora: dict[str, Path], *, cache_dir: Path | None = None, **stage: Any
) -> dict[str, Any]:
    """One stage of 8 steps (256 tokens each) on code with 25% replay of general; a checkpoint
    every 4 steps; the token cache in `cache_dir` (default: beside `tmp`, shared by sibling runs).
    `stage` entries (e.g. methods=...) go into the stage. The run goes to `tmp / "run"`."""
    return {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {
            "general": {"files": [str(corpora["general"])], "heldout": {"documents": 8}},
            "code": {"files": [str(corpora["code"])], "heldout": {"documents": 1}},
        },
        "stages": [
            {
                "name": "code",
                "tokens": 2048,
                "mix": {"code": 1.0},
                "replay": {"from": "general", "ratio": 0.25},
                "schedule": {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.1},
                **stage,
            }
        ],
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 4, "log_every_steps": 2},
        "eval": {"max_tokens": 512, "batch_size": 8, "dense_start": [0.25]},
        "output": {"dir": str(tmp / "run"), "checkpoint_every_tokens": 1024, "keep_checkpoints": 2},
        "cache_dir": str(cache_dir if cache_dir is not None else tmp.parent / "cache"),
    }


def save_config(data: dict[str, Any], path: Path) -> Path:
    """Write the run config `data` as the YAML file `path` (what `forgetless train` reads)."""
    path.write_text(yaml.safe_dump(data))
    return path


def weights(model_dir: Path) -> dict:
    return load_file(model_dir / "model.safetensors")


def read_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class Interrupted(Exception):
    """Raised into a run to stop it as a crash would (see `run_interrupted`)."""


def run_interrupted(steps: int, start: Callable[[], Any]) -> None:
    """Call `start()` (a training run) and stop it with `Interrupted` right after its `steps`-th
    optimizer step, leaving the checkpoints it wrote so far."""
    import forgetless.train.run as run_module

    original = run_module.after_optimizer_step
    calls = {"n": 0}

    def after_step(methods, step):
        original(methods, step)
        calls["n"] += 1
        if calls["n"] == steps:
            raise Interrupted

    run_module.after_optimizer_step = after_step
    try:
        with pytest.raises(Interrupted):
            start()
    finally:
        run_module.after_optimizer_step = original
