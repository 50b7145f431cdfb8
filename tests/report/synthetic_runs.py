"""Synthetic run directories for the report tests: metrics.jsonl files shaped like real runs.

A plain module (not a conftest.py, which would shadow the root conftest for `from conftest import`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def write_run(
    run_dir: Path,
    *,
    forgetting: float,
    learning: float,
    gap: float,
    stages: tuple[tuple[str, str], ...] = (("security", "security"),),
    sources: tuple[str, ...] = ("general", "security"),
    stage_tokens: int = 1_000_000,
    steps_per_stage: int = 100,
    mcq: bool = True,
    finished: bool = True,
) -> Path:
    """Write `run_dir/metrics.jsonl` for a run over `stages` ((name, target source), ...).

    Target losses fall by `learning` per stage; other sources rise by `forgetting` per stage, after
    a stability gap that peaks `gap` nats above the stage start at 3% of the stage.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {s: 3.0 + 0.5 * i for i, s in enumerate(sources)}
    lines: list[dict] = [
        {
            "kind": "run_start",
            "time": 1.7e9,
            "stages": [
                {
                    "name": n,
                    "tokens": stage_tokens,
                    "targets": [t],
                    "replay": ["general"],
                    "replay_ratio": 0.05,
                }
                for n, t in stages
            ],
            "sources": list(sources),
            "mcq": ["security-mcq", "general-mcq"] if mcq else [],
        }
    ]
    fractions = [0.005, 0.01, 0.02, 0.03, 0.04, 0.05] + [k / 10 for k in range(1, 10)] + [1.0]
    per_step = stage_tokens // steps_per_stage

    def losses(stage_index: int, fraction: float, start: dict[str, float]) -> dict[str, float]:
        target = stages[stage_index][1]
        out = {}
        for s in sources:
            if s == target:
                out[s] = start[s] - learning * (1 - math.exp(-4 * fraction)) / (1 - math.exp(-4))
            else:
                bump = gap * (fraction / 0.03) * math.exp(1 - fraction / 0.03)
                out[s] = start[s] + forgetting * fraction + bump
        return out

    def mcq_keys(stage_index: int | None) -> dict[str, float]:
        if not mcq:
            return {}
        done = 0 if stage_index is None else stage_index + 1
        sec = 0.40 + 0.05 * done * learning
        gen = 0.60 - 0.04 * done * forgetting
        return {
            "mcq/security-mcq/acc": sec,
            "mcq/security-mcq/acc_norm": sec + 0.02,
            "mcq/general-mcq/acc": gen,
            "mcq/general-mcq/acc_norm": gen + 0.01,
        }

    def eval_line(step, tokens, stage_name, index, stage_tokens_in, point, values, with_mcq=None):
        line = {
            "kind": "eval",
            "step": step,
            "tokens": tokens,
            "stage": stage_name,
            "stage_index": index,
            "stage_tokens": stage_tokens_in,
            "point": point,
        }
        for s, v in values.items():
            line[f"eval/{s}/loss"] = v
            line[f"eval/{s}/bpb"] = v / math.log(2) / 4
            line[f"eval/{s}/ppl"] = math.exp(v)
        if with_mcq is not None:
            line.update(with_mcq)
        line["eval_s"] = 0.5
        return line

    lines.append(eval_line(0, 0, stages[0][0], 0, 0, "base", base, mcq_keys(None)))
    start = dict(base)
    step = tokens = 0
    for index, (name, _) in enumerate(stages):
        lines.append(
            {"kind": "stage_start", "stage": name, "stage_index": index, "step": step, "tokens": tokens}
        )
        stage_start_tokens = tokens
        evals = iter(fractions)
        next_eval = next(evals)
        for k in range(1, steps_per_stage + 1):
            step += 1
            tokens += per_step
            fraction = k / steps_per_stage
            warm = min(1.0, fraction / 0.05)
            lr = 3e-4 * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction)))
            lines.append(
                {
                    "kind": "train",
                    "step": step,
                    "tokens": tokens,
                    "stage": name,
                    "stage_index": index,
                    "lr": lr,
                    "loss": 3.0 - fraction,
                    "grad_norm": 1.0,
                    "tokens_per_s": 50_000.0,
                    "elapsed_s": step * 0.2,
                }
            )
            while next_eval is not None and fraction >= next_eval - 1e-12:
                point = "stage_end" if next_eval == 1.0 else ("dense" if next_eval <= 0.05 else "periodic")
                values = losses(index, next_eval, start)
                lines.append(
                    eval_line(
                        step,
                        tokens,
                        name,
                        index,
                        tokens - stage_start_tokens,
                        point,
                        values,
                        mcq_keys(index) if point == "stage_end" else None,
                    )
                )
                next_eval = next(evals, None)
            if not finished and index == len(stages) - 1 and fraction >= 0.5:
                (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
                return run_dir
        lines.append(
            {"kind": "stage_end", "stage": name, "stage_index": index, "step": step, "tokens": tokens}
        )
        start = losses(index, 1.0, start)
    lines.append(
        {
            "kind": "run_end",
            "step": step,
            "tokens": tokens,
            "wall_s": 100.0,
            "train_s": 80.0,
            "eval_s": 20.0,
            "tokens_per_s": 50_000.0,
        }
    )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir


def three_strategies(root: Path) -> list[Path]:
    """Naive CPT (forgets most), 5% replay, 25% replay (forgets least, learns least)."""
    return [
        write_run(root / "naive", forgetting=0.40, learning=1.2, gap=0.30),
        write_run(root / "replay-5", forgetting=0.08, learning=1.15, gap=0.10),
        write_run(root / "replay-25", forgetting=0.03, learning=1.0, gap=0.05),
    ]
