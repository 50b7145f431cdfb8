"""The ledger (summary.json) as Markdown tables and flat scalars, for model cards and trackers."""

from __future__ import annotations

import math
from typing import Any


def source_table(summary: dict[str, Any]) -> str:
    """Per evaluated source: its role, base and final held-out loss (nats/token), and what was
    learned (targets: base - final) or forgotten (retained sources: final - base). After a tokenizer
    change (`units: bpb`) every column is in bits per byte, the base with its own tokenizer, and the
    fertility of both tokenizers is added."""
    bpb = summary.get("units") == "bpb"
    fertility = (summary.get("tokenizer") or {}).get("fertility") or {}
    if bpb:
        rows = [
            "| source | role | base bits/byte (its own tokenizer) | final bits/byte | learned (base − final) | "
            "forgotten (final − base) | tokens/byte before → after |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
    else:
        rows = [
            "| source | role | base loss | final loss | learned (base − final) | forgotten (final − base) |",
            "|---|---|---:|---:|---:|---:|",
        ]
    for name, stats in (summary.get("sources") or {}).items():
        role = stats.get("role", "")
        learned = summary.get("learning", {}).get(name) if role == "target" else None
        forgotten = summary.get("forgetting", {}).get(name) if role != "target" else None
        if bpb:
            per_byte = {k: (fertility.get(name) or {}).get(k, {}).get("tokens_per_byte") for k in ("before", "after")}
            rows.append(
                f"| {name} | {role} | {_num(stats.get('tokenizer_base_bpb'))} | {_num(stats.get('final_bpb'))} | "
                f"{_num(learned, signed=True)} | {_num(forgotten, signed=True)} | "
                f"{_num(per_byte['before'])} → {_num(per_byte['after'])} |"
            )
            continue
        rows.append(
            f"| {name} | {role} | {_num(stats.get('base_loss'))} | {_num(stats.get('final_loss'))} | "
            f"{_num(learned, signed=True)} | {_num(forgotten, signed=True)} |"
        )
    return "\n".join(rows)


def mcq_table(summary: dict[str, Any]) -> str:
    """Per question set: accuracy before and after ± its standard error, the change with its 95%
    interval, and what that interval says. Empty when the run scored no question set."""
    sets = summary.get("mcq") or {}
    if not sets:
        return ""
    rows = [
        "| question set | questions | before | after | change | 95% interval | reading |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, stats in sets.items():
        before, after, delta = stats.get("before", {}), stats.get("after", {}), stats.get("delta", {})
        ci = delta.get("acc_ci95")
        interval = "–" if not ci else f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}] pt"
        change = "–" if delta.get("acc") is None else f"{delta['acc'] * 100:+.1f} pt"
        rows.append(
            f"| {name} | {before.get('n') or '–'} | {_pct(before.get('acc'), before.get('acc_stderr'))} | "
            f"{_pct(after.get('acc'), after.get('acc_stderr'))} | {change} | {interval} | {mcq_reading(stats)} |"
        )
    return "\n".join(rows)


def mcq_reading(stats: dict[str, Any]) -> str:
    """`gain`, `loss`, `no significant change`, or `unknown` (no interval), with `at chance` added
    when both accuracies are within noise of guessing."""
    delta = stats.get("delta", {})
    if delta.get("significant") is None:
        reading = "unknown (no standard error)"
    elif delta["significant"]:
        reading = "gain" if delta["acc"] > 0 else "loss"
    else:
        reading = "no significant change"
    if stats.get("at_chance"):
        reading += f"; at chance ({stats['chance']:.1%}) before and after"
    return reading


def ledger_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """The ledger's headline numbers as flat `ledger/...` scalars (finite numbers only)."""
    out: dict[str, Any] = {}
    for name, value in (summary.get("learning") or {}).items():
        out[f"ledger/learning/{name}"] = value
    for name, value in (summary.get("forgetting") or {}).items():
        out[f"ledger/forgetting/{name}"] = value
    for key in ("learning_mean", "forgetting_mean", "tokens", "wall_s", "eval_fraction", "tokens_per_s"):
        out[f"ledger/{key}"] = summary.get(key)
    gap = summary.get("worst_stability_gap") or {}
    out["ledger/worst_stability_gap"] = gap.get("depth")
    for name, stats in (summary.get("mcq") or {}).items():
        delta = stats.get("delta", {})
        out[f"ledger/mcq/{name}/before"] = stats.get("before", {}).get("acc")
        out[f"ledger/mcq/{name}/after"] = stats.get("after", {}).get("acc")
        out[f"ledger/mcq/{name}/delta"] = delta.get("acc")
        out[f"ledger/mcq/{name}/delta_stderr"] = delta.get("acc_stderr")
    return {
        k: float(v)
        for k, v in out.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _num(value: Any, *, signed: bool = False) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _pct(value: Any, stderr: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.1%}" if not isinstance(stderr, (int, float)) else f"{value:.1%} ± {stderr * 100:.1f}"
