"""Loading run directories for the report and the comparison: metrics lines plus their ledger."""

from __future__ import annotations

import json
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


def with_branches(run_dirs: list[Path], names: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """The run directories with each one's cooldown branches (`RUN/branches/*/branch.json`, written by
    `forgetless cooldown`) right after it, ordered by branch step, and a display name for each:
    a branch is named `<run> > step N, <shape> over <d> steps`."""
    names = list(names) if names is not None else run_names(run_dirs)
    if len(names) != len(run_dirs):
        raise UserError(f"got {len(names)} names for {len(run_dirs)} run directories; give one name per run")
    dirs: list[Path] = []
    shown: list[str] = []
    for name, run_dir in zip(names, run_dirs, strict=True):
        dirs.append(Path(run_dir))
        shown.append(name)
        folder = Path(run_dir) / "branches"
        found = []
        for branch in sorted(folder.iterdir()) if folder.is_dir() else []:
            info_file = branch / "branch.json"
            if info_file.is_file() and (branch / METRICS_FILE).is_file():
                info = json.loads(info_file.read_text(encoding="utf-8"))
                found.append((info.get("from_step", 0), branch, info))
        for step, branch, info in sorted(found, key=lambda item: (item[0], str(item[1]))):
            dirs.append(branch)
            shown.append(f"{name} > step {step}, {info.get('shape')} over {info.get('decay_steps')} steps")
    return dirs, shown


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
