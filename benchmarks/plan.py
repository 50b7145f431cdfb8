"""Does `forgetless plan` predict what the full stage then does? Predicted vs measured forgetting.

The demo setting (`forgetless.demo`): the quick demo's base model (pretrained on the bundled general
corpus, cached), one stage on the bundled security corpus of `STAGE_TOKENS` tokens with the demo's
cosine schedule (re-warm to 3e-3), replay of general (compute-equivalent), `BATCH_TOKENS` per step.

1. `forgetless plan` runs proxy runs at 1/8 of the stage's tokens for the replay ratios `RATIOS`,
   fits L(R) = a R^s + b per source, and recommends the least replay that keeps the general loss
   rise within a budget of 10% of the no-replay proxy's rise (`BUDGET_SHARE`).
2. A fresh run of the full-length stage at the recommended ratio measures what the stage forgets
   (general loss rise) and learns (security loss fall); so does a fresh proxy-length run at that
   ratio, which separates the fit's error from what changes with the stage's length.

Writes `benchmarks/results/plan.json` (with `predicted_forgetting` and `measured_forgetting`) and
prints a summary. The target: measured forgetting within 20% of the prediction and within budget.

    python benchmarks/plan.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGE_TOKENS = 65_536  # the quick demo's stage: 64 steps of 1,024 tokens
PROXY_SHARE = 8  # proxy runs at 1/8 of the stage
BATCH_TOKENS = 1024
EVAL_TOKENS = 4096  # held-out tokens per source
RATIOS = [0.0, 0.05, 0.1, 0.25, 0.5]
EVALS = 4  # evaluations along each proxy run
BUDGET_SHARE = 0.10  # of the no-replay proxy's forgetting


def stage_config(base: Path, out: Path) -> dict[str, Any]:
    from forgetless.demo import QUICK, strategy_config

    data = strategy_config(QUICK, base, 0.0, out)
    data["stages"][0]["tokens"] = STAGE_TOKENS
    data["train"]["batch_tokens"] = BATCH_TOKENS
    data["train"]["micro_batch"] = 8
    data["eval"]["mcq"] = []
    data["eval"]["max_tokens"] = EVAL_TOKENS
    data["eval"]["every_tokens"] = STAGE_TOKENS // 8
    return data


def run_at(base: Path, ratio: float, tokens: int, out: Path) -> dict[str, float]:
    """A fresh run of the stage at `ratio` for `tokens`: general rise and security fall (nats/token)."""
    from forgetless.config import config_from_dict
    from forgetless.train.run import run_training

    data = stage_config(base, out)
    data["stages"][0]["tokens"] = tokens
    if ratio > 0:
        data["stages"][0]["replay"] = {"from": "general", "ratio": ratio, "accounting": "compute_equivalent"}
    run_dir = run_training(config_from_dict(data), quiet=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "forgetting": summary["forgetting"]["general"],
        "learning": summary["learning"]["security"],
        "general_final_loss": summary["sources"]["general"]["final_loss"],
        "security_final_loss": summary["sources"]["security"]["final_loss"],
        "train_s": summary["train_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here (and reuse its proxies)")
    args = parser.parse_args()

    import yaml
    from machine import cpu_model, versions

    from forgetless.config import load_config
    from forgetless.demo import QUICK, build_base
    from forgetless.plan.planner import make_plan
    from forgetless.plan.proxy import plan_setup, read_proxy, run_proxies
    from forgetless.plan.recommend import Budget

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(QUICK, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-plan-"))
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "stage.yaml"
    config_path.write_text(yaml.safe_dump(stage_config(base, root / "full")))
    config = load_config(config_path)
    proxy_tokens = STAGE_TOKENS // PROXY_SHARE
    setup = plan_setup(config, "security", RATIOS, proxy_tokens, evals=EVALS)

    # The budget is a share of what no replay forgets at the proxy's length.
    proxies = run_proxies(config, setup, root / "plan", quiet=True)
    no_replay = read_proxy(proxies[0].run_dir, 0.0)
    no_replay_forgetting = no_replay.final["general"] - no_replay.base["general"]
    budget = Budget(BUDGET_SHARE * no_replay_forgetting)
    plan = make_plan(config, setup, budget, root / "plan", quiet=True)
    rec = plan["recommendation"]
    ratio = rec["replay_ratio"]
    print(f"budget {budget.value:.4f} nats (10% of {no_replay_forgetting:.4f}); recommended replay {ratio:g}")

    full = run_at(base, ratio, STAGE_TOKENS, root / f"full-replay-{ratio:g}")
    short = run_at(base, ratio, proxy_tokens, root / f"proxy-length-replay-{ratio:g}")
    predicted_forgetting = rec["predicted_delta"]["general"]
    predicted_learning = -rec["predicted_delta"]["security"]
    error = (full["forgetting"] - predicted_forgetting) / abs(predicted_forgetting)
    result = {
        "kind": "plan_benchmark",
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
            **versions("torch", "transformers", "scipy", "forgetless"),
        },
        "load_average_at_start": load,
        "settings": {
            "base": f"quick demo base ({QUICK.num_layers} layers, hidden {QUICK.hidden_size}, "
            f"{QUICK.base_tokens:,} general tokens)",
            "stage_tokens": STAGE_TOKENS,
            "proxy_tokens": proxy_tokens,
            "batch_tokens": BATCH_TOKENS,
            "seq_len": QUICK.seq_len,
            "eval_tokens": EVAL_TOKENS,
            "ratios": RATIOS,
            "evals_per_proxy": EVALS,
            "schedule": config.stages[0].schedule.model_dump(),
            "budget_rule": f"{BUDGET_SHARE:.0%} of the no-replay proxy's general loss rise",
        },
        "no_replay_proxy_forgetting": no_replay_forgetting,
        "budget_nats": budget.value,
        "recommended_replay_ratio": ratio,
        "predicted_forgetting": predicted_forgetting,
        "predicted_learning": predicted_learning,
        "measured_forgetting": full["forgetting"],
        "measured_learning": full["learning"],
        "forgetting_relative_error": error,
        "within_20_percent": abs(error) <= 0.2,
        "within_budget": full["forgetting"] <= budget.value,
        "measured_at_proxy_length": short,
        "full_run": full,
        "plan": {k: plan[k] for k in ("fits", "acceptable_measured", "feasible_measured", "recommendation")},
        "proxies": {
            f"{p['ratio']:g}": {"forgetting": p["delta"]["general"], "learning": -p["delta"]["security"]}
            for p in plan["proxies"]
        },
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "plan.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"forgetting: predicted {predicted_forgetting:+.4f}, measured {full['forgetting']:+.4f} "
        f"({error:+.1%}; at the proxy's length {short['forgetting']:+.4f}); budget {budget.value:.4f}\n"
        f"learning: predicted {predicted_learning:+.4f}, measured {full['learning']:+.4f} "
        f"(at the proxy's length {short['learning']:+.4f})\n"
        f"wall time {result['wall_s']:.0f}s; wrote {RESULTS / 'plan.json'}"
    )


if __name__ == "__main__":
    main()
