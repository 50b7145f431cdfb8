"""TensorBoard: event files in the run directory itself, so `tensorboard --logdir runs/` lists each
run under its directory's name. Scalars at the optimizer step; the resolved config as
hyperparameters (the HParams tab) and as YAML text; stage boundaries, events and the ledger tables
as text."""

from __future__ import annotations

from typing import Any

import yaml

from forgetless.train.trackers import TrackedRun, Tracker, flat_config


class TensorBoardTracker(Tracker):
    def __init__(self) -> None:
        self.writer: Any = None
        self.run: TrackedRun | None = None

    def start(self, run: TrackedRun) -> None:
        self.run = run
        self._open(purge_step=run.resume_step)
        if run.resume_step is None:
            from torch.utils.tensorboard.summary import hparams

            params = flat_config(run.config)
            experiment, start, end = hparams(
                params, {"ledger/learning_mean": 0.0, "ledger/forgetting_mean": 0.0}
            )
            writer = self.writer.file_writer
            for summary in (experiment, start, end):
                writer.add_summary(summary)
            text = yaml.safe_dump(run.config, sort_keys=False)
            self.writer.add_text("config", "```yaml\n" + text + "```", 0)

    def _open(self, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        assert self.run is not None
        # purge_step: a resumed run drops the events logged after its checkpoint, then logs them again.
        self.writer = SummaryWriter(log_dir=str(self.run.run_dir), purge_step=purge_step, flush_secs=30)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def text(self, step: int, tag: str, text: str) -> None:
        self.writer.add_text(tag, text, step)

    def rewind(self, step: int) -> None:
        self.writer.close()
        self._open(purge_step=step)

    def finish(self, summary: dict[str, Any], scalars: dict[str, float], tables: str, step: int) -> None:
        self.log(step, scalars)
        self.writer.add_text("ledger", tables, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def build() -> Tracker:
    return TensorBoardTracker()
