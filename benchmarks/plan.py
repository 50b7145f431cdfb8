"""Does `forgetless plan` predict what the full stage then does? Predicted vs measured forgetting.

The demo setting (`forgetless.demo`): the quick demo's base model (pretrained on the bundled general
corpus, cached), one stage on the bundled security corpus of `STAGE_TOKENS` tokens with the demo's
cosine schedule (re-warm to 3e-3), replay of general (compute-equivalent), `BATCH_TOKENS` per step,
every evaluation point run (no `eval.budget`).

1. `forgetless plan` runs proxy runs at 1/8 of the stage's tokens for the replay ratios `RATIOS`,
   evaluated after every step (`EVALS`), fits L(R) = a R^s + b per source, and recommends the least
   replay that keeps the general loss rise within a budget of 10% of the no-replay proxy's rise
   (`BUDGET_SHARE`) at the proxy's length. It also extends each proxy's increment-vs-tokens curve to
   the stage's length and recommends from those predictions (`at_stage`).
2. A fresh run of the full-length stage at the recommended ratio (the one for the stage's length
   when the curves give it, else the one for the proxy's length) measures what the stage forgets
   (general loss rise) and learns (security loss fall); so does a fresh proxy-length run at that
   ratio, which separates the fit's error from what changes with the stage's length.
3. A fresh full-length run at every planned ratio measures the extension itself: each proxy's curve
   extended to the stage's length against what the stage then did at that ratio.

Options: `--size full` continues the full demo's base (results `plan_full.json`); `--proxy-share N`
runs the proxies at 1/N of the stage (1: at the stage's own length, where the law is fitted without
extending it in tokens), `--ratios` and `--peak-lr` change the plan's ratios and the stage's peak
learning rate, `--name NAME` writes `plan_NAME.json`.

Writes `benchmarks/results/plan.json` (with `predicted_forgetting` and `measured_forgetting`, at the
stage's length) and prints a summary. The target: measured forgetting within 20% of the prediction
and within budget.

    python benchmarks/plan.py [--keep DIR] [--size quick|full] [--proxy-share N] [--ratios R,...]
                              [--peak-lr LR] [--seeds 0,1,2] [--margin M|rmse] [--name NAME]
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
SIZE = "quick"  # the demo base the stage continues (--size)


def demo_size():  # noqa: ANN201 - a forgetless.demo.DemoSize
    from forgetless.demo import FULL, QUICK

    return FULL if SIZE == "full" else QUICK


def results_name() -> str:
    if NAME:
        return f"plan_{NAME}.json"
    return "plan.json" if SIZE == "quick" else f"plan_{SIZE}.json"


sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGE_TOKENS = 65_536  # the quick demo's stage: 64 steps of 1,024 tokens
PROXY_SHARE = 8  # proxy runs at 1/8 of the stage
BATCH_TOKENS = 1024
EVAL_TOKENS = 4096  # held-out tokens per source
RATIOS = [0.0, 0.05, 0.1, 0.25, 0.5]
EVALS = 8  # evaluations along each proxy run: after every one of its 8 steps
BUDGET_SHARE = 0.10  # of the no-replay proxy's forgetting
PEAK_LR: float | None = None  # the stage's peak learning rate; None: the demo's (--peak-lr)
NAME = ""  # results/plan_<NAME>.json (--name)


def stage_config(base: Path, out: Path) -> dict[str, Any]:
    from forgetless.demo import strategy_config

    data = strategy_config(demo_size(), base, 0.0, out)
    data["stages"][0]["tokens"] = STAGE_TOKENS
    if PEAK_LR is not None:
        data["stages"][0]["schedule"]["peak_lr"] = PEAK_LR
    data["train"]["batch_tokens"] = BATCH_TOKENS
    data["train"]["micro_batch"] = min(8, BATCH_TOKENS // demo_size().seq_len)
    data["eval"]["mcq"] = []
    data["eval"]["max_tokens"] = EVAL_TOKENS
    data["eval"]["every_tokens"] = STAGE_TOKENS // 8
    data["eval"]["budget"] = None  # every evaluation point: the curves along the runs need them
    return data


def run_at(base: Path, ratio: float, tokens: int, out: Path, seed: int = 0) -> dict[str, float]:
    """A fresh run of the stage at `ratio` for `tokens`: general rise and security fall (nats/token)."""
    from forgetless.config import config_from_dict
    from forgetless.train.run import run_training

    data = stage_config(base, out)
    data["stages"][0]["tokens"] = tokens
    data["train"]["seed"] = seed
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
    global SIZE, PROXY_SHARE, RATIOS, PEAK_LR, NAME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here (and reuse its proxies)")
    parser.add_argument(
        "--size", choices=["quick", "full"], default="quick", help="the demo base: quick, or the full demo's"
    )
    parser.add_argument(
        "--proxy-share",
        type=int,
        default=PROXY_SHARE,
        help="proxy runs at 1/N of the stage (1: the stage's length)",
    )
    parser.add_argument(
        "--ratios",
        default=None,
        help=f"replay ratios of the proxy runs (default: {','.join(f'{r:g}' for r in RATIOS)})",
    )
    parser.add_argument(
        "--peak-lr", type=float, default=None, help="the stage's peak learning rate (default: the demo's)"
    )
    parser.add_argument(
        "--seeds",
        default="0",
        help="seeds of the fresh full-length runs at the recommended ratio (their mean is measured)",
    )
    parser.add_argument("--margin", default=None, help="forgetless plan's --margin: nats/token, or rmse")
    parser.add_argument("--name", default="", help="write results/plan_NAME.json")
    args = parser.parse_args()
    SIZE, PROXY_SHARE, PEAK_LR, NAME = args.size, args.proxy_share, args.peak_lr, args.name
    if args.ratios:
        RATIOS = [float(r) for r in args.ratios.split(",")]

    import yaml
    from machine import machine_record

    from forgetless.config import load_config
    from forgetless.demo import build_base
    from forgetless.plan.planner import analyse, write_plan
    from forgetless.plan.proxy import plan_setup, read_proxy, run_proxies
    from forgetless.plan.recommend import Budget, parse_margin

    started = time.monotonic()
    load = os.getloadavg()
    size = demo_size()
    base = build_base(size, quiet=True)
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
    budget = Budget(BUDGET_SHARE * no_replay_forgetting, margin=parse_margin(args.margin))
    # As `forgetless plan` does, but a budget no ratio meets is reported (with the closest ratio)
    # rather than refused, so that the full stage is still run and measured.
    plan = analyse(proxies, setup, budget, unmeetable="report")
    write_plan(plan, root / "plan")
    rec = plan["recommendation"]
    at = plan["at_stage"]
    base_loss = plan["base_loss"]
    # The ratio to run: the least replay within budget at the stage's length when the curves give it,
    # else at the proxy's length, else the closest ratio.
    if at["recommendation"]:
        ratio, chosen_by = at["recommendation"]["replay_ratio"], "the curves extended to the stage's length"
    elif rec:
        ratio, chosen_by = (
            rec["replay_ratio"],
            "the law at the proxy's length (no recommendation at the stage's)",
        )
    else:
        ratio = (plan.get("closest") or {}).get("replay_ratio", max(RATIOS))
        chosen_by = "the closest ratio (no ratio within budget)"
    print(
        f"budget {budget.value:.4f} nats (10% of {no_replay_forgetting:.4f}); replay {ratio:g} from {chosen_by}; "
        f"proxy length: {plan['message']}; stage length: {at['message']}",
        flush=True,
    )

    seeds = [int(x) for x in args.seeds.split(",")]
    by_seed = [
        run_at(
            base,
            ratio,
            STAGE_TOKENS,
            root / (f"full-replay-{ratio:g}" + ("" if s == 0 else f"-seed{s}")),
            seed=s,
        )
        for s in seeds
    ]
    full = {key: sum(run[key] for run in by_seed) / len(by_seed) for key in by_seed[0]}
    short = (
        full
        if proxy_tokens == STAGE_TOKENS
        else run_at(base, ratio, proxy_tokens, root / f"proxy-length-replay-{ratio:g}")
    )
    # The extension itself, ratio by ratio: each proxy curve's prediction at the stage's length
    # against a full-length run at that ratio.
    per_ratio = {}
    for r in RATIOS:
        if r == ratio:
            measured = full
        elif proxy_tokens == STAGE_TOKENS:  # the proxy run is the stage: the same run, deterministic
            measured = {
                "forgetting": plan_delta(plan, r, "general"),
                "learning": -plan_delta(plan, r, "security"),
            }
        else:
            measured = run_at(base, r, STAGE_TOKENS, root / f"full-replay-{r:g}")
        key = f"{r:g}"
        curve = {n: at["predicted_loss"][key][n] for n in ("general", "security")}
        per_ratio[key] = {
            "proxy_measured": {
                "forgetting": plan_delta(plan, r, "general"),
                "learning": -plan_delta(plan, r, "security"),
            },
            "stage_predicted_by_curve": {
                "forgetting": None if curve["general"] is None else curve["general"] - base_loss["general"],
                "learning": None if curve["security"] is None else base_loss["security"] - curve["security"],
            },
            "stage_measured": {"forgetting": measured["forgetting"], "learning": measured["learning"]},
            "curve_fits": {n: plan["curve_fits"][key][n]["message"] for n in ("general", "security")},
        }
        print(f"replay {key}: {per_ratio[key]}", flush=True)

    stage_pred = predicted_change(at["fits"], base_loss, ratio)
    proxy_pred = predicted_change(plan["fits"], base_loss, ratio)
    if stage_pred["general"] is not None:
        predicted, predicted_by = stage_pred, "the curves extended to the stage's length"
    else:
        predicted, predicted_by = proxy_pred, "the law at the proxy's length (none at the stage's)"
    predicted_forgetting = predicted["general"]
    predicted_learning = None if predicted["security"] is None else -predicted["security"]
    error = None
    if predicted_forgetting is not None:
        error = (full["forgetting"] - predicted_forgetting) / abs(predicted_forgetting)
    checks = [
        check["error"]
        for by_source in at["extrapolation_checks"].values()
        for name, check in by_source.items()
        if name == "general" and check and check.get("converged")
    ]
    result = {
        "kind": "plan_benchmark",
        "machine": machine_record("torch", "transformers", "scipy", "forgetless"),
        "load_average_at_start": load,
        "settings": {
            "base": f"{SIZE} demo base ({size.num_layers} layers, hidden {size.hidden_size}, "
            f"{size.base_tokens:,} general tokens)",
            "stage_tokens": STAGE_TOKENS,
            "proxy_tokens": proxy_tokens,
            "batch_tokens": BATCH_TOKENS,
            "seq_len": size.seq_len,
            "eval_tokens": EVAL_TOKENS,
            "ratios": RATIOS,
            "proxy_share": f"1/{PROXY_SHARE}",
            "evals_per_proxy": EVALS,
            "schedule": config.stages[0].schedule.model_dump(),
            "budget_rule": f"{BUDGET_SHARE:.0%} of the no-replay proxy's general loss rise",
        },
        "no_replay_proxy_forgetting": no_replay_forgetting,
        "budget_nats": budget.value,
        "recommended_replay_ratio": ratio,
        "ratio_chosen_by": chosen_by,
        "predicted_by": predicted_by,
        "predicted_forgetting": predicted_forgetting,
        "predicted_learning": predicted_learning,
        "measured_forgetting": full["forgetting"],
        "measured_learning": full["learning"],
        "forgetting_relative_error": error,
        "within_20_percent": error is not None and abs(error) <= 0.2,
        "within_budget": full["forgetting"] <= budget.value,
        "margin": budget.margin,
        "full_run": full,
        "full_runs_by_seed": {str(s): run for s, run in zip(seeds, by_seed, strict=True)},
        "proxy_length": {
            "predicted_forgetting": proxy_pred["general"],
            "predicted_learning": None if proxy_pred["security"] is None else -proxy_pred["security"],
            "measured": short,
            "message": plan["message"],
        },
        "at_stage": {
            "message": at["message"],
            "extrapolation_factor": at["extrapolation_factor"],
            "general_check_errors": checks,
            "predicted_at_recommended_ratio": stage_pred,
        },
        "per_ratio": per_ratio,
        "plan": {
            k: plan.get(k)
            for k in (
                "fits",
                "acceptable_measured",
                "feasible_measured",
                "recommendation",
                "closest",
                "at_stage",
            )
        },
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / results_name()).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"replay {ratio:g}: forgetting predicted {_f(predicted_forgetting)} ({predicted_by}), measured "
        f"{full['forgetting']:+.4f} at the stage's length, {short['forgetting']:+.4f} at the proxy's "
        f"(predicted there {_f(proxy_pred['general'])}); learning predicted {_f(predicted_learning)}, measured "
        f"{full['learning']:+.4f}\n"
        f"budget {budget.value:.4f}; wall time {result['wall_s']:.0f}s; wrote {RESULTS / results_name()}"
    )


def plan_delta(plan: dict[str, Any], ratio: float, name: str) -> float:
    proxy = next(p for p in plan["proxies"] if p["ratio"] == ratio)
    return proxy["delta"][name]


def predicted_change(fits: dict[str, Any], base: dict[str, float], ratio: float) -> dict[str, float | None]:
    """The change of each source that the fitted laws L(R) (`fits` of plan.json, or of its
    `at_stage`) predict at `ratio`; None where the fit did not converge."""
    from forgetless.plan.fit import PowerLaw

    out: dict[str, float | None] = {}
    for name in ("general", "security"):
        fit = fits.get(name)
        if not fit or not fit["converged"]:
            out[name] = None
            continue
        out[name] = float(PowerLaw(**fit["params"])(1 - ratio)) - base[name]
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


if __name__ == "__main__":
    main()
