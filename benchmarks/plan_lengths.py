"""Does a stage's forgetting at 1/8 of its length tell what it forgets at its full length?

`forgetless plan` fits its laws on proxy runs that are shorter than the stage. This benchmark
measures the premise behind that: the same stage (the full demo's base, the bundled security
corpus, compute-equivalent replay of general text, `BATCH_TOKENS` per step) run as complete,
fresh runs of doubling lengths, each with its whole cosine schedule, for a few replay ratios and
peak learning rates. Only the base model and the end of each run are evaluated.

For every length L with a run 8x longer it reports the ratio forgetting(8L) / forgetting(L), and
for the longest length it reports what the one-term law `a * t**s + b` (`forgetless.plan.fit`),
fitted on the lengths up to 1/8 of it, predicts there against the measurement.

Writes `benchmarks/results/plan_lengths.json` and `plan_lengths.md` (a table; `--render` rewrites
it from the JSON without running anything) and prints a summary.

    python benchmarks/plan_lengths.py [--steps 8,16,...] [--ratios 0,0.9] [--peak-lrs 3e-3,3e-4] [--render]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results"
BATCH_TOKENS = 1024
EVAL_TOKENS = 4096
EXTRAPOLATION = 8  # a proxy at 1/8 of the stage, as `benchmarks/plan.py` plans


def run_config(base: Path, out: Path, steps: int, ratio: float, peak_lr: float) -> dict[str, Any]:
    from forgetless.demo import FULL, strategy_config

    data = strategy_config(FULL, base, ratio, out)
    stage = data["stages"][0]
    stage["tokens"] = steps * BATCH_TOKENS
    stage["schedule"]["peak_lr"] = peak_lr
    data["train"]["batch_tokens"] = BATCH_TOKENS
    data["train"]["micro_batch"] = BATCH_TOKENS // FULL.seq_len
    data["eval"].update(mcq=[], max_tokens=EVAL_TOKENS, budget=None, dense_start=[], every_tokens=None)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="8,16,32,64,128,256,512", help="stage lengths in optimizer steps")
    parser.add_argument("--ratios", default="0,0.9", help="replay ratios")
    parser.add_argument("--peak-lrs", default="3e-3,3e-4", help="peak learning rates (the demo's is 3e-3)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--render", action="store_true", help="only rewrite plan_lengths.md from the JSON")
    args = parser.parse_args()
    if args.render:
        render(json.loads((RESULTS / "plan_lengths.json").read_text()))
        return
    steps = sorted(int(s) for s in args.steps.split(","))
    ratios = [float(r) for r in args.ratios.split(",")]
    peak_lrs = [float(r) for r in args.peak_lrs.split(",")]

    from machine import machine_record

    from forgetless.config import config_from_dict
    from forgetless.demo import FULL, build_base
    from forgetless.train.run import run_training

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(FULL, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-plan-lengths-"))
    series: list[dict[str, Any]] = []
    for peak_lr in peak_lrs:
        for ratio in ratios:
            points = []
            for n in steps:
                out = root / f"lr{peak_lr:g}-replay{ratio:g}-steps{n}"
                run_dir = run_training(config_from_dict(run_config(base, out, n, ratio, peak_lr)), quiet=True)
                summary = json.loads((run_dir / "summary.json").read_text())
                point = {
                    "steps": n,
                    "tokens": n * BATCH_TOKENS,
                    "forgetting": summary["forgetting"]["general"],
                    "learning": summary["learning"]["security"],
                }
                points.append(point)
                print(f"peak {peak_lr:g} replay {ratio:g} steps {n}: {point}", flush=True)
            series.append(
                {
                    "peak_lr": peak_lr,
                    "replay_ratio": ratio,
                    "points": points,
                    **analyse(points),
                }
            )

    result = {
        "kind": "plan_lengths_benchmark",
        "machine": machine_record("torch", "transformers", "scipy", "forgetless"),
        "load_average_at_start": load,
        "settings": {
            "base": f"full demo base ({FULL.num_layers} layers, hidden {FULL.hidden_size}, "
            f"{FULL.base_tokens:,} general tokens)",
            "batch_tokens": BATCH_TOKENS,
            "seq_len": FULL.seq_len,
            "eval_tokens": EVAL_TOKENS,
            "schedule": "cosine, warmup 2%, final LR 0.1 x peak, over each run's own length",
            "replay": "general, compute-equivalent",
        },
        "series": series,
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "plan_lengths.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    render(result)
    for s in series:
        ratios_8x = ", ".join(f"{r['from_steps']}->{r['to_steps']}: {r['ratio']:.2f}" for r in s["ratio_8x"])
        pred = s["law_at_longest"]
        told = (
            "did not converge"
            if pred["predicted"] is None
            else f"{pred['predicted']:+.3f} ({pred['relative_error']:+.0%})"
        )
        print(
            f"peak {s['peak_lr']:g} replay {s['replay_ratio']:g}: forgetting x8 {ratios_8x}; law at "
            f"{pred['steps']} steps {told} vs measured {pred['measured']:+.3f}"
        )
    print(f"wall time {result['wall_s']:.0f}s; wrote {path}")


def render(result: dict[str, Any]) -> Path:
    """`plan_lengths.md`: forgetting by stage length, one row per peak learning rate and replay ratio."""
    series = result["series"]
    steps = [p["steps"] for p in series[0]["points"]]
    lines = [
        "# Forgetting by stage length",
        "",
        f"`benchmarks/plan_lengths.py`, {result['machine']['date']}, {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores), torch {result['machine']['torch']}. {result['settings']['base']}; "
        f"the bundled security corpus, {result['settings']['batch_tokens']:,} tokens per step, "
        f"{result['settings']['schedule']}; replay {result['settings']['replay']}. Each cell is a fresh run "
        "of that many optimizer steps: the general loss rise at its end (nats/token).",
        "",
        "| peak LR | replay | "
        + " | ".join(f"{n} steps" for n in steps)
        + " | law at the longest, fitted up to 1/8 of it |",
        "| --- | ---: | " + " | ".join("---:" for _ in steps) + " | ---: |",
    ]
    for s in series:
        cells = " | ".join(f"{p['forgetting']:+.3f}" for p in s["points"])
        law = s["law_at_longest"]
        told = "no fit" if law["predicted"] is None else f"{law['predicted']:+.3f}"
        lines.append(f"| {s['peak_lr']:g} | {s['replay_ratio']:g} | {cells} | {told} |")
    lines += [
        "",
        "Forgetting 8 times further on, as a multiple of forgetting at 1/8 of the length:",
        "",
        "| peak LR | replay | "
        + " | ".join(f"{r['from_steps']} -> {r['to_steps']}" for r in series[0]["ratio_8x"])
        + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in series[0]["ratio_8x"]) + " |",
    ]
    for s in series:
        lines.append(
            f"| {s['peak_lr']:g} | {s['replay_ratio']:g} | "
            + " | ".join(f"x{r['ratio']:.2f}" for r in s["ratio_8x"])
            + " |"
        )
    path = RESULTS / "plan_lengths.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def analyse(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The 8x ratios of forgetting, and the one-term law fitted up to 1/8 of the longest length."""
    from forgetless.plan.fit import fit_power_law

    by_steps = {p["steps"]: p["forgetting"] for p in points}
    ratio_8x = [
        {"from_steps": n, "to_steps": n * EXTRAPOLATION, "ratio": by_steps[n * EXTRAPOLATION] / by_steps[n]}
        for n in sorted(by_steps)
        if n * EXTRAPOLATION in by_steps and by_steps[n] != 0
    ]
    longest = max(by_steps)
    known = [(n, f) for n, f in sorted(by_steps.items()) if n * EXTRAPOLATION <= longest]
    fit = fit_power_law([n for n, _ in known], [f for _, f in known])
    predicted = float(fit.law(longest)) if fit.converged and fit.law is not None else None
    measured = by_steps[longest]
    return {
        "ratio_8x": ratio_8x,
        "law_at_longest": {
            "steps": longest,
            "fitted_on_steps": [n for n, _ in known],
            "fit": fit.as_dict(),
            "predicted": predicted,
            "measured": measured,
            "relative_error": None
            if predicted is None or measured == 0
            else (predicted - measured) / abs(measured),
        },
    }


if __name__ == "__main__":
    main()
