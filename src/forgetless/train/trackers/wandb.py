"""Weights & Biases: one W&B run per run directory, named after it, in `run_dir/wandb/`.

The mode is `WANDB_MODE` when set; otherwise online only when W&B has an API key (`WANDB_API_KEY`
or `wandb login`) and its server answers within two seconds, and offline otherwise, with the run
kept in `run_dir/wandb/offline-run-*` for `wandb sync` later (offline runs sample no system
metrics). The W&B run id is derived from the
run directory's path, so `--resume` continues the same W&B run. W&B prints nothing of its own
(`console="off"`, quiet): the run's output stays as forgetless writes it.
"""

from __future__ import annotations

import hashlib
import netrc
import os
import socket
from typing import Any, cast
from urllib.parse import urlparse

from forgetless.train.trackers import TrackedRun, Tracker

DEFAULT_PROJECT = "forgetless"


def wandb_mode() -> str:
    """`WANDB_MODE` when set, else `online` when W&B is logged in and reachable, else `offline`."""
    import wandb

    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    host = urlparse(os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url).hostname
    if not host:
        return "offline"
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(host)):
        return "offline"
    try:
        with socket.create_connection((host, 443), timeout=2.0):
            return "online"
    except OSError:
        return "offline"


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker(Tracker):
    def __init__(self) -> None:
        self.run: Any = None

    def start(self, run: TrackedRun) -> None:
        import wandb

        run_id = hashlib.sha256(str(run.run_dir.resolve()).encode()).hexdigest()[:16]
        mode = wandb_mode()
        # Offline: no system-metrics sampler and no machine probe, which may look for cloud hosts.
        offline = {"x_disable_stats": True, "x_disable_machine_info": True} if mode == "offline" else {}
        self.run = wandb.init(
            project=run.project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=run.name,
            id=run_id,
            resume="allow",
            dir=str(run.run_dir),
            config=run.config,
            mode=cast(Any, mode),
            settings=wandb.Settings(console="off", quiet=True, silent=True, **offline),
            reinit="create_new",
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def text(self, step: int, tag: str, text: str) -> None:
        # W&B has no text log: the latest stage boundary and event go to the run summary.
        self.run.summary[tag] = text

    def finish(self, summary: dict[str, Any], scalars: dict[str, float], tables: str, step: int) -> None:
        import wandb

        self.run.summary.update(scalars)
        rows = [
            [name, stats.get("role"), stats.get("base_loss"), stats.get("final_loss"), stats.get("delta")]
            for name, stats in (summary.get("sources") or {}).items()
        ]
        table = wandb.Table(columns=["source", "role", "base_loss", "final_loss", "delta"], data=rows)
        self.run.log({"ledger/sources": table}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def build() -> Tracker:
    return WandbTracker()
