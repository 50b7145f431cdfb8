"""`forgetless demo`: the embedded default, using only what ships with the package.

1. Build a small Llama-architecture base model by pretraining on the bundled `general` corpus with
   the bundled tokenizer (cached: a second demo skips this).
2. Continue it on the bundled `security` corpus with three strategies: no replay, 5% replay and 25%
   replay of `general` (compute-equivalent, cosine re-warm).
3. Evaluate `general` and `security` held-out loss and both bundled question sets, before and after.
4. Print a table, and write each strategy's run directory, a combined `summary.json` and
   `report.html`.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetless import __version__
from forgetless.config import RunConfig, config_from_dict
from forgetless.console import LINE_WIDTH
from forgetless.errors import UserError


@dataclass(frozen=True)
class DemoSize:
    """Budgets of one demo flavour (tokens are training tokens)."""

    base_tokens: int
    stage_tokens: int
    hidden_size: int
    num_layers: int
    num_heads: int
    seq_len: int
    batch_tokens: int
    eval_tokens: int
    mcq_limit: int | None


FULL = DemoSize(
    base_tokens=1_228_800,
    stage_tokens=245_760,
    hidden_size=128,
    num_layers=4,
    num_heads=4,
    seq_len=256,
    batch_tokens=8192,
    eval_tokens=16384,
    mcq_limit=500,
)
QUICK = DemoSize(
    base_tokens=196_608,
    stage_tokens=65_536,
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    seq_len=128,
    batch_tokens=4096,
    eval_tokens=8192,
    mcq_limit=200,
)

# The question sets of the demo table: (row key prefix, set name).
MCQ_SETS: tuple[tuple[str, str], ...] = (("security", "security-mcq"), ("general", "general-mcq"))

# Each strategy's evaluation points between its base and its end run only within this share of
# its wall time (eval.budget); the base and the end are always evaluated in full.
EVAL_BUDGET = 0.2

STRATEGIES: tuple[tuple[str, float], ...] = (("no-replay", 0.0), ("replay-5%", 0.05), ("replay-25%", 0.25))


def base_config(size: DemoSize, out_dir: Path) -> dict[str, Any]:
    """Pretraining of the demo's base model on the bundled general corpus."""
    return {
        "model": {
            "init": {
                "architecture": "llama",
                "hidden_size": size.hidden_size,
                "num_layers": size.num_layers,
                "num_heads": size.num_heads,
                "intermediate_size": 4 * size.hidden_size,
                "max_position_embeddings": size.seq_len,
            }
        },
        "tokenizer": "bundled",
        "sources": {"general": "bundled:general"},
        "stages": [
            {
                "name": "pretrain",
                "tokens": size.base_tokens,
                "mix": {"general": 1.0},
                "schedule": {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.02, "final_lr_ratio": 0.1},
            }
        ],
        "train": {"seq_len": size.seq_len, "batch_tokens": size.batch_tokens, "micro_batch": 16, "seed": 0},
        "eval": {"sources": ["general"], "max_tokens": size.eval_tokens, "dense_start": []},
        "output": {"dir": str(out_dir)},
    }


def strategy_config(size: DemoSize, base_dir: Path, replay_ratio: float, out_dir: Path) -> dict[str, Any]:
    """Continued pretraining of the base on the bundled security corpus with a share of replay."""
    stage: dict[str, Any] = {
        "name": "security",
        "tokens": size.stage_tokens,
        "mix": {"security": 1.0},
        "schedule": {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.02, "final_lr_ratio": 0.1},
    }
    if replay_ratio > 0:
        stage["replay"] = {"from": "general", "ratio": replay_ratio, "accounting": "compute_equivalent"}
    return {
        "model": {"path": str(base_dir)},
        "tokenizer": str(base_dir),
        "sources": {"general": "bundled:general", "security": "bundled:security"},
        "stages": [stage],
        "train": {"seq_len": size.seq_len, "batch_tokens": size.batch_tokens, "micro_batch": 16, "seed": 0},
        "eval": {
            "sources": ["general", "security"],
            "max_tokens": size.eval_tokens,
            "mcq": ["bundled:security-mcq", "bundled:general-mcq"],
            "mcq_limit": size.mcq_limit,
            "budget": EVAL_BUDGET,
        },
        "output": {"dir": str(out_dir)},
    }


def run_demo(
    out: Path | None = None,
    *,
    quick: bool = False,
    base: Path | None = None,
    quiet: bool = False,
    progress: str = "auto",
) -> dict:
    """Run the whole demo; return the combined summary (also written to `out/summary.json`).
    `progress` is a display mode of `forgetless.console`; with `json` the table is a JSON line."""
    from forgetless.train.progress import ProgressDisplay
    from forgetless.train.run import run_training

    size = QUICK if quick else FULL
    progress = "quiet" if quiet else progress
    display = ProgressDisplay(progress=progress)
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: the demo's output folder is not empty; choose another with --out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    base_eval_s = 0.0
    if base is None:
        cached = base_is_cached(size)
        base = build_base(size, progress=progress)
        if not cached:  # built now: its evaluations are part of this demo's time
            base_eval_s = json.loads((base.parent / "summary.json").read_text()).get("eval_s") or 0.0
    elif not (base / "config.json").is_file():
        raise UserError(f"--base {base}: not a Hugging Face model directory (no config.json)")

    runs: dict[str, Path] = {}
    for name, ratio in STRATEGIES:
        display.message(
            f"[bold]strategy {name}[/bold]: continue on security with {ratio:.0%} replay of general"
        )
        config = _validated(strategy_config(size, base, ratio, out / name))
        runs[name] = run_training(config, progress=progress)

    summary = combined_summary(
        runs, base=base, quick=quick, wall_s=time.monotonic() - started, base_eval_s=base_eval_s
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from forgetless.report.html import write_report

    write_report(list(runs.values()), out / "report.html", names=list(runs), title="forgetless demo")
    if progress == "json":
        from forgetless.console import write_json_line

        write_json_line({"kind": "result", "summary": str(out / "summary.json"), "table": summary["table"]})
    else:
        print_table(summary)
    display.message(f"wrote {out / 'summary.json'} and {out / 'report.html'}")
    return summary


def _base_run_dir(size: DemoSize) -> Path:
    from forgetless.data import bundled

    spec = json.dumps(
        {"config": base_config(size, Path(".")), "bundle": bundled.manifest(), "version": __version__},
        sort_keys=True,
    )
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("FORGETLESS_CACHE", Path.home() / ".cache" / "forgetless"))
    return cache / "demo" / f"base-{key}"


def base_is_cached(size: DemoSize) -> bool:
    return (_base_run_dir(size) / "final" / "model.safetensors").is_file()


def build_base(size: DemoSize, *, quiet: bool = False, progress: str = "auto") -> Path:
    """The demo's base model, pretrained once per size and bundle and cached under the cache dir."""
    from forgetless.train.progress import ProgressDisplay
    from forgetless.train.run import run_training

    run_dir = _base_run_dir(size)
    final = run_dir / "final"
    progress = "quiet" if quiet else progress
    if (final / "model.safetensors").is_file():
        ProgressDisplay(progress=progress).message(f"base model: cached at {final}")
        return final
    ProgressDisplay(progress=progress).message(
        f"[bold]base model[/bold]: pretraining on bundled general text ({size.base_tokens:,} tokens, once)"
    )
    run_training(_validated(base_config(size, run_dir)), resume=True, progress=progress)
    return final


DEMO_BASE = "demo:base"
"""A model path (and tokenizer) that names the quick demo's base model: built once and cached."""


def resolve_demo_base(config: RunConfig, *, quiet: bool = False) -> RunConfig:
    """`config` with `model.path: demo:base` (and `tokenizer: demo:base`) replaced by the folder of
    the quick demo's base model, pretrained on the bundled general corpus first if not cached. The
    recipes use it, so that they run from a fresh clone with nothing but the package."""
    if config.model.path != DEMO_BASE and config.tokenizer != DEMO_BASE:
        return config
    path = str(build_base(QUICK, quiet=quiet))
    if config.model.path == DEMO_BASE:
        config.model.path = path
    if config.tokenizer == DEMO_BASE:
        config.tokenizer = path
    return config


def combined_summary(
    runs: dict[str, Path], *, base: Path, quick: bool, wall_s: float, base_eval_s: float = 0.0
) -> dict:
    rows = []
    strategies = {}
    for name, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        strategies[name] = summary
        sources = summary["sources"]
        mcq = summary.get("mcq", {})
        row = {
            "strategy": name,
            "security_loss_change": sources["security"]["delta"],
            "general_loss_change": sources["general"]["delta"],
        }
        for prefix, set_name in MCQ_SETS:
            stats = mcq.get(set_name, {})
            row[f"{prefix}_mcq_acc"] = {k: stats.get(k) for k in ("before", "after")}
            row[f"{prefix}_mcq_change"] = stats.get("delta")
            row[f"{prefix}_mcq_at_chance"] = stats.get("at_chance")
        rows.append(row)
    eval_s = base_eval_s + sum(s.get("eval_s") or 0.0 for s in strategies.values())
    return {
        "kind": "demo",
        "quick": quick,
        "base_model": str(base),
        "wall_s": wall_s,
        "eval_s": eval_s,
        "eval_fraction": eval_s / wall_s if wall_s else None,
        "table": rows,
        "strategies": strategies,
        "runs": {name: str(path) for name, path in runs.items()},
    }


def print_table(summary: dict) -> None:
    """The demo's table on stdout: loss changes, and each question set's accuracy after training with
    its change ± the 95% interval (coloured only when significant); then what the numbers mean."""
    from rich.table import Table
    from rich.text import Text

    from forgetless.report.compare import cell_tone, mcq_change_text

    rows = summary["table"]
    table = Table(title="continued pretraining on security text: what was learned and what was forgotten")
    table.add_column("strategy")
    table.add_column("security loss", justify="right")
    table.add_column("general loss", justify="right")
    for prefix, _ in MCQ_SETS:
        before = _acc(rows[0][f"{prefix}_mcq_acc"].get("before")) if rows else None
        base = "" if before is None else f" (base {before:.1%})"
        table.add_column(f"{prefix} MCQ{base}", justify="right")
    for row in rows:
        cells = [row["strategy"], f"{row['security_loss_change']:+.3f}", f"{row['general_loss_change']:+.3f}"]
        texts = [Text(cell) for cell in cells]
        for prefix, _ in MCQ_SETS:
            after = _acc(row[f"{prefix}_mcq_acc"].get("after"))
            change = row.get(f"{prefix}_mcq_change")
            text = "-" if after is None else f"{after:.1%} {mcq_change_text(change, short=True)}"
            tone = cell_tone("mcq", change)
            texts.append(Text(text, style={"good": "green", "bad": "red"}.get(tone, "")))
        table.add_row(*texts)
    console = _stdout_console()
    console.print(table)
    for note in table_notes(summary):
        for line in textwrap.wrap(note, width=LINE_WIDTH, subsequent_indent="  "):
            console.print(line, highlight=False, soft_wrap=True)


def table_notes(summary: dict) -> list[str]:
    """What the demo table means, in plain sentences, including which question sets stayed at chance."""
    lines = [
        "Loss: the change of held-out loss against the base model, in nats/token: negative = learned, "
        "positive = forgotten.",
        "MCQ: accuracy after training, then its change in points ± the 95% interval (paired over the "
        "same questions); n.s. = no significant change (the interval contains 0).",
    ]
    for prefix, set_name in MCQ_SETS:
        flags = [row.get(f"{prefix}_mcq_at_chance") for row in summary["table"]]
        if flags and all(flags):
            lines.append(
                f"{set_name} stays at chance for a model of this size, before and after every strategy: "
                "its changes are noise, not learning or forgetting."
            )
    if summary.get("eval_fraction") is not None:
        lines.append(
            f"Evaluation took {summary['eval_fraction']:.0%} of the demo's wall time "
            f"({summary['eval_s']:.0f} s of {summary['wall_s']:.0f} s)."
        )
    return lines


def _stdout_console() -> Any:
    """A console for stdout: the terminal's width on a terminal, wide enough never to wrap a table
    row when the output goes to a file or a pipe."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _acc(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("acc")
    return value if isinstance(value, (int, float)) else None


def _validated(data: dict[str, Any]) -> RunConfig:
    return config_from_dict(data)
