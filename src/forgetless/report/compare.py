"""`forgetless compare`: one row per run with what it learned, what it forgot, and what it cost.

The same rows feed the terminal table (`compare_table`) and the overview table of the HTML report,
so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from forgetless.evaluate.ledger import CHANGE_FLOOR_NATS, change_label
from forgetless.report.runs import Run, load_runs
from forgetless.report.svg import format_count


@dataclass(frozen=True)
class Column:
    """One column of the comparison. `kind` decides formatting and colour:
    name, learning, forgetting, gap, mcq, tokens, rate."""

    header: str
    kind: str
    help: str


def comparison(runs: list[Run]) -> tuple[list[Column], list[list[Any]]]:
    """Columns and one row of raw values per run (floats, ints, strings or None for "not measured").

    Columns: run; learning per target source (base - final loss, nats/token); forgetting per
    retained source (final - base loss); the worst stability gap (depth in nats, with source and
    stage); MCQ accuracy change per set; training tokens; tokens per second; and, when some run
    transformed its model (`model.transforms`), the transforms and the parameters that trained in
    the first stage. When some run changed its tokenizer (`in_bits_per_byte`), learning and
    forgetting are in bits per byte for every run.
    """
    targets = _union(run.ledger["targets"] for run in runs)
    retained = _union(run.ledger["retained"] for run in runs)
    mcq_sets = _union(list(run.ledger["mcq"]) for run in runs)
    bpb = in_bits_per_byte(runs)
    unit = "bits/byte" if bpb else "nats/token"
    columns = [Column("run", "name", "run name (* = did not finish)")]
    columns += [Column(f"learn {s}", "learning", f"base - final loss on {s} ({unit})") for s in targets]
    columns += [Column(f"forget {s}", "forgetting", f"final - base loss on {s} ({unit})") for s in retained]
    columns.append(
        Column("worst gap", "gap", "deepest stability gap: max rise of a retained loss in a stage")
    )
    columns += [
        Column(f"Δacc {m}", "mcq", f"MCQ accuracy after - before on {m}, ± its 95% interval")
        for m in mcq_sets
    ]
    columns.append(Column("tokens", "tokens", "training tokens"))
    columns.append(Column("tok/s", "rate", "training tokens per second"))
    transformed = any(_transforms(run) for run in runs)
    if transformed:
        columns.append(Column("transforms", "name", "model.transforms applied before training"))
        columns.append(Column("trainable", "tokens", "parameters that trained in the first stage"))
    rows = []
    for run in runs:
        ledger = run.ledger
        row: list[Any] = [run.name if ledger["complete"] else f"{run.name} *"]
        learning = ledger.get("learning_bpb") or {} if bpb else ledger["learning"]
        forgetting = ledger.get("forgetting_bpb") or {} if bpb else ledger["forgetting"]
        row += [learning.get(s) for s in targets]
        row += [forgetting.get(s) for s in retained]
        row.append(ledger["worst_stability_gap"])
        row += [_mcq_delta(ledger["mcq"].get(m)) for m in mcq_sets]
        row += [ledger["tokens"], ledger["tokens_per_s"]]
        if transformed:
            row += ["+".join(_transforms(run)) or "none", _first(run, "stage_start", "trainable_parameters")]
        rows.append(row)
    return columns, rows


def in_bits_per_byte(runs: list[Run]) -> bool:
    """Whether to compare `runs` in bits per byte: when some run changed its tokenizer, nats per
    token of its base and adapted models are not comparable (its ledger's `units` is `bpb`)."""
    return any(run.ledger.get("units") == "bpb" for run in runs)


def format_cell(kind: str, value: Any, digits: int = 4) -> str:
    """The text of one comparison cell; "–" when the value was not measured."""
    if value is None:
        return "–"
    if kind == "name":
        return str(value)
    if kind in ("learning", "forgetting"):
        # learning is base - final, forgetting final - base: both as the final - base change they label
        label = change_label(
            -value if kind == "learning" else value, "target" if kind == "learning" else "retained"
        )
        expected = "learned" if kind == "learning" else "forgotten"
        return f"{value:+.{digits}f}" + ("" if label == expected else f" ({label})")
    if kind == "gap":
        mark = "" if value["recovered"] is not False else " ✗"
        return f"{value['depth']:.{digits}f}{mark} {value['source']}@{value['stage']}"
    if kind == "mcq":
        return mcq_change_text(value, short=True)
    if kind in ("tokens", "rate"):
        return format_count(value)
    return str(value)


def cell_tone(kind: str, value: Any) -> str:
    """'good', 'bad' or '' for colouring a cell: learning up and forgetting down are good; a loss
    change within the ledger's noise floor is neither."""
    if kind == "mcq":  # coloured only when its 95% interval excludes 0
        if not isinstance(value, dict) or not value.get("significant"):
            return ""
        value = value["acc"]
    if value is None or not isinstance(value, (int, float)):
        return ""
    if kind in ("learning", "forgetting") and abs(value) < CHANGE_FLOOR_NATS:
        return ""
    if kind in ("learning", "mcq"):
        return "good" if value > 0 else "bad" if value < 0 else ""
    if kind == "forgetting":
        return "bad" if value > 0 else "good" if value < 0 else ""
    return ""


def compare_table(run_dirs: list[Path], names: list[str] | None = None) -> Table:
    """The comparison of the given runs as a rich table (one row per run)."""
    runs = load_runs(run_dirs, names)
    columns, rows = comparison(runs)
    unit = (
        "bits/byte: a run changed its tokenizer, nats/token are not comparable"
        if in_bits_per_byte(runs)
        else "losses in nats/token"
    )
    table = Table(title=f"learning and forgetting ({unit})", title_justify="left")
    widths = {"name": min(max((len(str(row[0])) for row in rows), default=3), 20), "gap": 12}
    for column in columns:
        text = column.kind in widths
        table.add_column(
            column.header, justify="left" if text else "right", min_width=widths.get(column.kind, 6)
        )
    styles = {"good": "green", "bad": "red", "": ""}
    for row in rows:
        table.add_row(
            *(
                Text(format_cell(c.kind, v, digits=3), style=styles[cell_tone(c.kind, v)])
                for c, v in zip(columns, row, strict=True)
            )
        )
    table.caption = (
        f"learn = base − final; forget = final − base (below zero: improved); changes under "
        f"{CHANGE_FLOOR_NATS:g} nats are unchanged; ✗ = the gap did not recover; * = unfinished; "
        "Δacc ± its 95% interval, n.s. = no significant change (the interval contains 0)"
    )
    return table


def _first(run: Run, kind: str, key: str) -> Any:
    return next((r.get(key) for r in run.records if r.get("kind") == kind and key in r), None)


def _transforms(run: Run) -> list[str]:
    """The kinds of the model transforms a run applied, in order (from its run_start line)."""
    return [t.get("kind", "?") for t in _first(run, "run_start", "transforms") or []]


def mcq_change_text(delta: dict | None, *, short: bool = False) -> str:
    """An accuracy change in points with the half-width of its 95% interval: "+6.0 ± 2.1 pt", and
    "no significant change" (short: "n.s.") when the interval contains 0; "–" when not measured."""
    if not delta or delta.get("acc") is None:
        return "–"
    text = f"{delta['acc'] * 100:+.1f} pt"
    low_high = delta.get("acc_ci95")
    if low_high is not None:
        half = (low_high[1] - low_high[0]) / 2
        text = f"{delta['acc'] * 100:+.1f} ± {half * 100:.1f} pt"
        if not delta.get("significant"):
            text += ", n.s." if short else ", no significant change"
    return text


def _mcq_delta(stats: dict | None) -> dict | None:
    delta = (stats or {}).get("delta") or {}
    return delta if delta.get("acc") is not None else None


def _union(lists) -> list[str]:
    out: list[str] = []
    for names in lists:
        out += [n for n in names if n not in out]
    return out
