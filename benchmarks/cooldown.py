"""Cooldown branches of a constant-LR run against a cosine run of the same tokens (the demo setting).

The quick demo's base model continues on the bundled security corpus (no replay) for `STEPS`
optimizer steps of `BATCH_TOKENS` tokens at a constant learning rate (the demo's peak, 3e-3, after
a short warmup), with a checkpoint every `EVERY` steps. `forgetless cooldown` then branches it at
`BRANCH_STEPS`, each branch decaying the LR linearly to 0.1 x peak over `DECAY_STEPS` steps; the
last branch ends where the run does. Beside them, one cosine run (the demo's schedule) of the same
total tokens as the last branch. For each: the held-out losses (general: retained, security:
target) at the branch point and after the decay.

Writes `benchmarks/results/cooldown.json`.

    python benchmarks/cooldown.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

BATCH_TOKENS = 1024
STEPS = 32
EVERY = 8
DECAY_STEPS = 8
BRANCH_STEPS = [8, 16, 24]  # the last branch ends at STEPS
EVAL_TOKENS = 4096


def stage_config(base: Path, out: Path, schedule: dict[str, Any], steps: int) -> dict[str, Any]:
    from forgetless.demo import QUICK, strategy_config

    data = strategy_config(QUICK, base, 0.0, out)
    data["stages"][0]["tokens"] = steps * BATCH_TOKENS
    data["stages"][0]["schedule"] = schedule
    data["train"]["batch_tokens"] = BATCH_TOKENS
    data["train"]["micro_batch"] = 8
    data["eval"].update(mcq=[], max_tokens=EVAL_TOKENS, every_tokens=EVERY * BATCH_TOKENS, dense_start=[])
    data["output"].update(
        checkpoint_every_tokens=EVERY * BATCH_TOKENS, keep_checkpoints=len(BRANCH_STEPS) + 1
    )
    return data


def final_losses(run_dir: Path) -> dict[str, float]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {name: source["final_loss"] for name, source in summary["sources"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()

    from machine import machine_record

    from forgetless.config import config_from_dict
    from forgetless.demo import QUICK, build_base
    from forgetless.train.branch import cooldown, read_branch
    from forgetless.train.run import run_training

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(QUICK, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-cooldown-"))
    root.mkdir(parents=True, exist_ok=True)
    constant = {"kind": "constant", "peak_lr": 3e-3, "warmup": 0.02, "final_lr_ratio": 0.1}
    cosine = {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.02, "final_lr_ratio": 0.1}
    run = run_training(config_from_dict(stage_config(base, root / "constant", constant, STEPS)), quiet=True)
    branches = []
    for step in BRANCH_STEPS:
        branch = cooldown(run, tokens=DECAY_STEPS * BATCH_TOKENS, from_step=step, shape="linear", quiet=True)
        info = read_branch(branch)
        branches.append(
            {
                "from_step": step,
                "end_tokens": (step + DECAY_STEPS) * BATCH_TOKENS,
                "loss_at_branch": info["loss_at_branch"]["loss"],
                "loss_after_decay": final_losses(branch),
            }
        )
        print(f"branch at step {step}: {branches[-1]}", flush=True)
    reference = run_training(config_from_dict(stage_config(base, root / "cosine", cosine, STEPS)), quiet=True)
    result = {
        "kind": "cooldown_benchmark",
        "machine": machine_record("torch", "transformers", "forgetless"),
        "load_average_at_start": load,
        "settings": {
            "base": f"quick demo base ({QUICK.num_layers} layers, hidden {QUICK.hidden_size})",
            "steps": STEPS,
            "batch_tokens": BATCH_TOKENS,
            "decay_steps": DECAY_STEPS,
            "branch_steps": BRANCH_STEPS,
            "constant": constant,
            "cosine": cosine,
            "eval_tokens": EVAL_TOKENS,
        },
        "constant_run_final": final_losses(run),
        "branches": branches,
        "cosine_run": {"end_tokens": STEPS * BATCH_TOKENS, "loss": final_losses(reference)},
        "base_loss": json.loads((run / "summary.json").read_text())["sources"],
        "wall_s": time.monotonic() - started,
    }
    result["base_loss"] = {name: s["base_loss"] for name, s in result["base_loss"].items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cooldown.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("branches", "cosine_run", "constant_run_final")}, indent=1))


if __name__ == "__main__":
    main()
