"""`forgetless merge --sweep`: learning against forgetting along the line from a base to its CPT.

Each point `alpha` of the sweep is the model `(1 - alpha) * base + alpha * adapted`, evaluated on
the held-out text of a run config's `eval.sources` (the same windows as the run's evaluations)
and on its `eval.mcq` question sets. With the run's *target* sources (those a stage mixes) and the
*retained* ones (the other evaluated sources):

    learning   = mean over targets of (base loss - loss)      (nats/token; > 0: learned)
    forgetting = mean over retained of (loss - base loss)     (nats/token; > 0: forgotten)

where the base loss is the loss at alpha = 0 (always evaluated). Points that no other point beats on
both (less forgetting and more learning) are the Pareto points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from forgetless.config import RunConfig
from forgetless.device import resolve_device
from forgetless.errors import UserError
from forgetless.weights.merge import interpolate, load_model_dir, load_tensors, model_tensors


def parse_alphas(text: str) -> list[float]:
    """`"0,0.25,0.5"` -> [0.0, 0.25, 0.5]; each in [0, 1]; raises `UserError` naming `--sweep`."""
    alphas = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--sweep {text}: {part.strip()!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise UserError(f"--sweep {text}: {value:g} is outside [0, 1]")
        alphas.append(value)
    if not alphas:
        raise UserError("--sweep: give at least one alpha, e.g. 0,0.25,0.5,0.75,1")
    return sorted(set(alphas))


def sweep(
    base_dir: Path, adapted_dir: Path, alphas: list[float], config: RunConfig, *, progress: bool = True
) -> dict[str, Any]:
    """Evaluate each interpolation point; return the sweep as a JSON-ready dict (see the module doc)."""
    import torch

    from forgetless.data.prepare import prepare_sources
    from forgetless.evaluate.forward import windows_per_pass
    from forgetless.evaluate.heldout import evaluate_heldout, heldout_windows
    from forgetless.evaluate.mcq import load_questions, mcq_batch_size, question_set_name, score_mcq
    from forgetless.report.svg import pareto_front

    device, autocast_dtype = resolve_device(config.train.device, config.train.precision)
    base, _ = load_model_dir(base_dir, what="BASE")
    model, tokenizer = load_model_dir(adapted_dir, what="CPT")
    base_tensors = model_tensors(base)
    adapted_tensors = {name: t.clone() for name, t in model_tensors(model).items()}
    del base
    model.to(device)
    sources = config.eval_sources
    prepared = prepare_sources(config, tokenizer, sources=sources, progress=progress)
    windows = {
        name: heldout_windows(
            prepared[name].heldout, seq_len=config.train.seq_len, max_tokens=config.eval.max_tokens
        )
        for name in sources
    }
    question_sets = {
        question_set_name(ref): load_questions(ref)[: config.eval.mcq_limit] for ref in config.eval.mcq
    }
    targets = [s for s in sources if any(s in stage.mix for stage in config.stages)]
    retained = [s for s in sources if s not in targets]

    points: list[dict[str, Any]] = []
    for alpha in sorted({0.0, *alphas}):
        with torch.no_grad():
            load_tensors(model, interpolate(base_tensors, adapted_tensors, alpha))
        losses = {
            name: evaluate_heldout(
                model,
                w,
                n,
                batch_size=windows_per_pass(config.eval.batch_size),
                device=device,
                autocast_dtype=autocast_dtype,
            )["loss"]
            for name, (w, n) in windows.items()
        }
        mcq = {
            name: score_mcq(
                model,
                tokenizer,
                items,
                batch_size=mcq_batch_size(config.eval.batch_size),
                device=device,
                autocast_dtype=autocast_dtype,
            )["acc"]
            for name, items in question_sets.items()
        }
        points.append({"alpha": alpha, "loss": losses, "mcq_acc": mcq})
    reference = points[0]["loss"]
    for point in points:
        point["learning"] = _mean([reference[s] - point["loss"][s] for s in targets])
        point["forgetting"] = _mean([point["loss"][s] - reference[s] for s in retained])
    kept = [p for p in points if p["alpha"] in alphas]
    front = pareto_front([(_finite(p["forgetting"]), _finite(p["learning"])) for p in kept])
    for i, point in enumerate(kept):
        point["pareto"] = i in front
    return {
        "kind": "merge_sweep",
        "base": str(Path(base_dir).resolve()),
        "adapted": str(Path(adapted_dir).resolve()),
        "targets": targets,
        "retained": retained,
        "points": kept,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _finite(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else value


def print_sweep(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    points = result["points"]
    table = Table(
        title="interpolation (1 - alpha) * base + alpha * CPT: learning vs forgetting", title_justify="left"
    )
    table.add_column("alpha", justify="right")
    losses = list(points[0]["loss"]) if points else []
    sets = list(points[0]["mcq_acc"]) if points else []
    for name in losses:
        role = "target" if name in result["targets"] else "retained"
        table.add_column(f"{name} loss ({role})", justify="right")
    for name in sets:
        table.add_column(f"{name} acc", justify="right")
    table.add_column("learning", justify="right")
    table.add_column("forgetting", justify="right")
    table.add_column("Pareto")
    for p in points:
        table.add_row(
            f"{p['alpha']:g}",
            *[f"{p['loss'][n]:.4f}" for n in losses],
            *[f"{p['mcq_acc'][n]:.3f}" for n in sets],
            _signed(p["learning"]),
            _signed(p["forgetting"]),
            "*" if p["pareto"] else "",
        )
    console = Console() if Console().is_terminal else Console(width=200)
    console.print(table)
    console.print("Losses are held-out nats/token; learning and forgetting are against alpha = 0 (the base).")


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def write_sweep(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write `sweep.json` and `sweep.html` (the learning-vs-forgetting plot) into `out_dir`."""
    from html import escape

    from forgetless.report.svg import PALETTE, Point, scatter_plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "sweep.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    points = [
        Point(
            x=_finite(p["forgetting"]),
            y=_finite(p["learning"]),
            label=f"alpha={p['alpha']:g}",
            color=PALETTE[0],
            highlight=p["pareto"],
        )
        for p in result["points"]
    ]
    front = [(pt.x, pt.y) for pt in points if pt.highlight]
    svg = scatter_plot(
        points,
        title="Interpolating base and CPT: learning vs forgetting",
        kind="merge-sweep",
        x_label="forgetting (retained loss increase, nats/token)",
        y_label="learning (target loss decrease, nats/token)",
        front=front,
    )
    html_path = out_dir / "sweep.html"
    html_path.write_text(
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>merge sweep</title></head><body>\n"
        f"<p>base: {escape(result['base'])}<br>CPT: {escape(result['adapted'])}</p>\n{svg}\n</body></html>\n",
        encoding="utf-8",
    )
    return json_path, html_path
