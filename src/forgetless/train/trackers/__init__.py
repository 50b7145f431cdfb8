"""Experiment trackers (`output.trackers: [tensorboard, wandb, mlflow]`), each an optional extra.

metrics.jsonl stays the source of truth: a tracker gets a copy of every line the run's
`MetricsLog` writes, turned into numbers at an optimizer step, plus the resolved config as
hyperparameters when it starts and the ledger (summary.json) at the end. Only the main process
has trackers. Every tracker names its run after the run directory.

- train lines: `train/loss`, `train/lr`, `train/grad_norm`, `train/tokens_per_s`, ... and `tokens`;
- eval lines: `eval/<source>/loss|bpb|ppl` and `mcq/<set>/acc|acc_norm|acc_stderr`;
- stage boundaries: `stage` (the stage index) and a text line; events (rollbacks, preemption) as text;
- the end: `ledger/...` scalars (`evaluate.ledger_tables.ledger_scalars`) and the ledger tables.

A tracker that fails while the run goes on is dropped with one warning line; the run and
metrics.jsonl do not depend on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetless.config import RunConfig
from forgetless.errors import UserError
from forgetless.evaluate.ledger_tables import ledger_scalars, mcq_table, source_table

# tracker name -> (module, the package its extra installs, the extra)
TRACKERS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("forgetless.train.trackers.tensorboard", "tensorboard", "tensorboard"),
    "wandb": ("forgetless.train.trackers.wandb", "wandb", "wandb"),
    "mlflow": ("forgetless.train.trackers.mlflow", "mlflow", "mlflow"),
}

# Keys of a train line that are positions or labels, not metrics.
_NOT_METRICS = frozenset({"kind", "step", "tokens", "stage", "stage_index", "point", "stage_tokens"})


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker knows of the run when it starts."""

    run_dir: Path
    name: str  # the run directory's name
    config: dict[str, Any]  # the resolved config, as plain data
    project: str | None  # output.project
    resume_step: int | None  # the step a resumed run continues from; None for a fresh run


class Tracker:
    """The interface every tracker implements; `start` is called once, before anything else."""

    def start(self, run: TrackedRun) -> None:
        raise NotImplementedError

    def log(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def text(self, step: int, tag: str, text: str) -> None:
        raise NotImplementedError

    def rewind(self, step: int) -> None:
        """The run goes back to `step` (a rollback): later steps will be logged again."""

    def finish(self, summary: dict[str, Any], scalars: dict[str, float], tables: str, step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def check_trackers(config: RunConfig) -> None:
    """Raise `UserError` naming `output.trackers` when a tracker's extra is not installed."""
    for name in config.output.trackers:
        package, extra = TRACKERS[name][1], TRACKERS[name][2]
        if importlib.util.find_spec(package) is None:
            raise UserError(
                f"output.trackers: {name} needs the {package} package; install it with "
                f"pip install 'forgetless[{extra}]'"
            )


class TrackerSet:
    """The run's trackers, started with the first metrics line (so that a resumed run is known)."""

    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        check_trackers(config)
        self.config = config
        self.run_dir = Path(run_dir)
        self.names = list(dict.fromkeys(config.output.trackers))
        self.trackers: dict[str, Tracker] = {}
        self.started = False
        self.last_step = 0

    def __call__(self, record: dict[str, Any]) -> None:
        """Take one metrics.jsonl line (a `MetricsLog` sink)."""
        if not self.names:
            return
        if not self.started:
            self._start(record)
        kind = record.get("kind")
        step = record.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) else self.last_step
        self.last_step = step
        if kind == "resume" and self.trackers and record is not self._first:
            self._each("rewind", step)
        elif kind in ("train", "eval", "run_end"):
            metrics = record_metrics(record)
            if metrics:
                self._each("log", step, metrics)
        elif kind in ("stage_start", "stage_end"):
            self._each("log", step, {"stage": float(record.get("stage_index", 0))})
            where = f"at step {step:,}, {record.get('tokens', 0):,} tokens"
            self._each("text", step, "stages", f"{kind} {record.get('stage')} {where}")
        elif kind == "event":
            details = ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("kind", "event"))
            self._each("text", step, "events", f"{record.get('event')}: {details}")

    def finish(self, summary: dict[str, Any]) -> None:
        """Send the ledger: its scalars and its tables."""
        if not self.trackers:
            return
        tables = source_table(summary)
        if mcq := mcq_table(summary):
            tables += "\n\n" + mcq
        self._each("finish", summary, ledger_scalars(summary), tables, self.last_step)

    def close(self) -> None:
        self._each("close")
        self.trackers = {}

    # -----------------------------------------------------------------------------------------

    _first: dict[str, Any] | None = None

    def _start(self, first: dict[str, Any]) -> None:
        self.started = True
        self._first = first
        resume_step = first.get("step") if first.get("kind") == "resume" else None
        run = TrackedRun(
            run_dir=self.run_dir,
            name=self.run_dir.name,
            config=self.config.model_dump(mode="json", by_alias=True),
            project=self.config.output.project,
            resume_step=resume_step if isinstance(resume_step, int) else None,
        )
        for name in self.names:
            module = importlib.import_module(TRACKERS[name][0])
            tracker: Tracker = module.build()
            try:
                tracker.start(run)
            except Exception as err:  # noqa: BLE001 - a tracker never stops the run
                _warn(name, "could not start", err)
                continue
            self.trackers[name] = tracker

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # noqa: BLE001 - a tracker never stops the run
                _warn(name, "stopped", err)
                del self.trackers[name]
                try:
                    tracker.close()
                except Exception:  # noqa: BLE001
                    pass


def record_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics line under tracker names (see the module docstring)."""
    kind = record.get("kind")
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        if kind == "train":
            out[f"train/{key}"] = float(value)
        elif kind == "eval":
            if key.startswith(("eval/", "mcq/")) and not key.endswith(("/n", "/chance")):
                out[key] = float(value)
            elif key == "eval_s":
                out["eval/time_s"] = float(value)
        elif kind == "run_end":
            out[f"run/{key}"] = float(value)
    if out and isinstance(record.get("tokens"), int):
        out["tokens"] = float(record["tokens"])
    return out


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"seq_len": 1024}}` -> `{"train.seq_len": 1024}`, `stages.0.name`, ...; lists of
    plain values and None become text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            flat.update(flat_config({str(i): v for i, v in enumerate(value)}, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def _warn(name: str, what: str, err: BaseException) -> None:
    sys.stderr.write(
        f"warning: the {name} tracker {what} ({type(err).__name__}: {err}); metrics.jsonl has every number\n"
    )
    sys.stderr.flush()
