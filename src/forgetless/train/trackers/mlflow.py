"""MLflow: one MLflow run per run directory, named after it, in the experiment `output.project`
(default `MLFLOW_EXPERIMENT_NAME`, else `forgetless`).

The tracking store is `MLFLOW_TRACKING_URI` when set, else a local file store beside the run
directory, `<run dir>/../mlruns`, so that runs written under one folder share one store
(`mlflow ui --backend-store-uri runs/mlruns`). MLflow 3 keeps its file store in maintenance mode
behind `MLFLOW_ALLOW_FILE_STORE`; forgetless sets that variable for its default store only.
The config goes in as parameters (dotted keys), metrics with their optimizer step, the ledger as
`ledger/...` metrics and the artifacts `ledger.md` and `summary.json`. A resumed run continues the
MLflow run that carries its run directory in the tag `forgetless.run_dir`.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from forgetless.train.trackers import TrackedRun, Tracker, flat_config

DEFAULT_EXPERIMENT = "forgetless"
RUN_DIR_TAG = "forgetless.run_dir"
_BATCH = 100  # MLflow takes at most 100 params per log_batch call (and 1,000 metrics)


def tracking_uri(run: TrackedRun) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (run.run_dir.resolve().parent / "mlruns").as_uri()


def metric_key(key: str) -> str:
    """MLflow keys allow letters, digits and `_-. /`: other characters (`@` of `loss@ema`) become `_`."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)


class MlflowTracker(Tracker):
    def __init__(self) -> None:
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, run: TrackedRun) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri(run))
        name = run.project or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run_dir = str(run.run_dir.resolve())
        if run.resume_step is not None:
            found = self.client.search_runs(
                [experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'", max_results=1
            )
            if found:
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                return
        created = self.client.create_run(experiment_id, run_name=run.name, tags={RUN_DIR_TAG: run_dir})
        self.run_id = created.info.run_id
        params = [Param(metric_key(k), str(v)[:6000]) for k, v in flat_config(run.config).items()]
        for first in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[first : first + _BATCH])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(metric_key(k), v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def text(self, step: int, tag: str, text: str) -> None:
        self.client.set_tag(self.run_id, f"forgetless.{tag}", text)

    def finish(self, summary: dict[str, Any], scalars: dict[str, float], tables: str, step: int) -> None:
        self.log(step, scalars)
        self.client.log_text(self.run_id, tables + "\n", "ledger.md")
        self.client.log_dict(self.run_id, summary, "summary.json")

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id)
            self.run_id = None


def build() -> Tracker:
    return MlflowTracker()
