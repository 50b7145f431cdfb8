"""Loading run directories for the report and the comparison: metrics lines plus their ledger."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forgetless.errors import UserError
from forgetless.evaluate.ledger import METRICS_FILE, build_ledger, read_metrics


@dataclass
class Run:
    """One run: its display name, folder, metrics lines (after resumes) and ledger (summary.json content)."""

    name: str
    path: Path
    records: list[dict]
    ledger: dict


def run_names(run_dirs: list[Path]) -> list[str]:
    """Display names: the folder names, with parent folders added where two would be the same."""
    paths = [Path(p).resolve() for p in run_dirs]
    depth = 1
    names = [p.name or str(p) for p in paths]
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        names = ["/".join(p.parts[-depth:]) for p in paths]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # the same folder given twice
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def load_runs(run_dirs: list[Path], names: list[str] | None = None) -> list[Run]:
    """Read each run's metrics.jsonl and build its ledger; `UserError` names a folder that is not a run."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    if names is not None and len(names) != len(run_dirs):
        raise UserError(f"got {len(names)} names for {len(run_dirs)} run directories; give one name per run")
    runs = []
    for name, run_dir in zip(names or run_names(run_dirs), run_dirs, strict=True):
        run_dir = Path(run_dir)
        if not (run_dir / METRICS_FILE).is_file():
            raise UserError(f"{run_dir}: not a run directory (no {METRICS_FILE} in it)")
        records = read_metrics(run_dir / METRICS_FILE)
        runs.append(Run(name=name, path=run_dir, records=records, ledger=build_ledger(records)))
    return runs
