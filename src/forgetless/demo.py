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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetless import __version__
from forgetless.config import RunConfig, config_from_dict
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
        },
        "output": {"dir": str(out_dir)},
    }


def run_demo(
    out: Path | None = None, *, quick: bool = False, base: Path | None = None, quiet: bool = False
) -> dict:
    """Run the whole demo; return the combined summary (also written to `out/summary.json`)."""
    from forgetless.train.progress import ProgressDisplay
    from forgetless.train.run import run_training

    size = QUICK if quick else FULL
    display = ProgressDisplay(quiet=quiet)
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: the demo's output folder is not empty; choose another with --out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    if base is None:
        base = build_base(size, quiet=quiet)
    elif not (base / "config.json").is_file():
        raise UserError(f"--base {base}: not a Hugging Face model directory (no config.json)")

    runs: dict[str, Path] = {}
    for name, ratio in STRATEGIES:
        display.message(
            f"[bold]strategy {name}[/bold]: continue on security with {ratio:.0%} replay of general"
        )
        config = _validated(strategy_config(size, base, ratio, out / name))
        runs[name] = run_training(config, quiet=quiet)

    summary = combined_summary(runs, base=base, quick=quick, wall_s=time.monotonic() - started)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from forgetless.report.html import write_report

    write_report(list(runs.values()), out / "report.html", names=list(runs), title="forgetless demo")
    print_table(summary)
    display.message(f"wrote {out / 'summary.json'} and {out / 'report.html'}")
    return summary


def build_base(size: DemoSize, *, quiet: bool = False) -> Path:
    """The demo's base model, pretrained once per size and bundle and cached under the cache dir."""
    from forgetless.data import bundled
    from forgetless.train.progress import ProgressDisplay
    from forgetless.train.run import run_training

    spec = json.dumps(
        {"config": base_config(size, Path(".")), "bundle": bundled.manifest(), "version": __version__},
        sort_keys=True,
    )
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("FORGETLESS_CACHE", Path.home() / ".cache" / "forgetless"))
    run_dir = cache / "demo" / f"base-{key}"
    final = run_dir / "final"
    if (final / "model.safetensors").is_file():
        ProgressDisplay(quiet=quiet).message(f"base model: cached at {final}")
        return final
    ProgressDisplay(quiet=quiet).message(
        f"[bold]base model[/bold]: pretraining on bundled general text ({size.base_tokens:,} tokens, once)"
    )
    run_training(_validated(base_config(size, run_dir)), resume=True, quiet=quiet)
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


def combined_summary(runs: dict[str, Path], *, base: Path, quick: bool, wall_s: float) -> dict:
    rows = []
    strategies = {}
    for name, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        strategies[name] = summary
        sources = summary["sources"]
        mcq = summary.get("mcq", {})
        rows.append(
            {
                "strategy": name,
                "security_loss_change": sources["security"]["delta"],
                "general_loss_change": sources["general"]["delta"],
                "security_mcq_acc": {k: mcq.get("security-mcq", {}).get(k) for k in ("before", "after")},
                "general_mcq_acc": {k: mcq.get("general-mcq", {}).get(k) for k in ("before", "after")},
            }
        )
    return {
        "kind": "demo",
        "quick": quick,
        "base_model": str(base),
        "wall_s": wall_s,
        "table": rows,
        "strategies": strategies,
        "runs": {name: str(path) for name, path in runs.items()},
    }


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="continued pretraining on security text: what was learned and what was forgotten")
    table.add_column("strategy")
    table.add_column("security loss change", justify="right")
    table.add_column("general loss change", justify="right")
    table.add_column("security MCQ acc", justify="right")
    table.add_column("general MCQ acc", justify="right")
    for row in summary["table"]:
        table.add_row(
            row["strategy"],
            f"{row['security_loss_change']:+.3f}",
            f"{row['general_loss_change']:+.3f}",
            _before_after(row["security_mcq_acc"]),
            _before_after(row["general_mcq_acc"]),
        )
    Console().print(table)
    Console().print(
        "Loss changes are held-out nats/token against the base model: negative = learned, positive = forgotten."
    )


def _before_after(acc: dict) -> str:
    before, after = _acc(acc.get("before")), _acc(acc.get("after"))
    return "-" if before is None or after is None else f"{before:.3f} -> {after:.3f}"


def _acc(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("acc")
    return value if isinstance(value, (int, float)) else None


def _validated(data: dict[str, Any]) -> RunConfig:
    return config_from_dict(data)
