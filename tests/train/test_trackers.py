"""Experiment trackers get every train and eval line, the stage boundaries, the config and the
ledger; each is read back with its own library's reader. A tracker whose extra is missing is bad
input, found before anything is written."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from conftest import TINY_LLAMA
from forgetless.config import load_config
from forgetless.errors import UserError
from forgetless.train.run import run_training
from forgetless.train.trackers import TRACKERS, flat_config, record_metrics
from methods.tiny_runs import save_config, tiny_config, write_corpora

INSTALLED = [
    name for name, (_, package, _) in TRACKERS.items() if __import__("importlib").util.find_spec(package)
]


def write_config(tmp: Path, tokenizer_dir: Path, trackers: list[str]) -> Path:
    """The tiny run with the default schedule and checkpointing, reporting to `trackers`."""
    data = tiny_config(tmp, tokenizer_dir, write_corpora(tmp / "data"), cache_dir=tmp / "cache")
    data["sources"]["general"]["heldout"] = {"documents": 4}
    del data["stages"][0]["schedule"]
    data["eval"] = {"max_tokens": 256, "every_tokens": 1024, "dense_start": []}
    data["output"] = {"dir": str(tmp / "runs" / "tracked"), "trackers": trackers}
    return save_config(data, tmp / "config.yaml")


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    if not INSTALLED:
        pytest.skip("no tracker extra installed")
    tmp = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as env:
        for name in (
            "WANDB_MODE",
            "WANDB_API_KEY",
            "WANDB_BASE_URL",
            "MLFLOW_TRACKING_URI",
            "MLFLOW_EXPERIMENT_NAME",
        ):
            env.delenv(name, raising=False)
        env.setenv("HOME", str(tmp))  # no netrc login: W&B must choose offline by itself
        env.setenv("WANDB_CONFIG_DIR", str(tmp / "wandb-config"))
        return run_training(load_config(write_config(tmp, tiny_tokenizer_dir, INSTALLED)), quiet=True)


def metrics(run_dir: Path, kind: str) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == kind]


def test_tensorboard_event_files(tracked_run: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    evals = metrics(tracked_run, "eval")
    loss = events.Scalars("eval/general/loss")
    assert [e.step for e in loss] == [r["step"] for r in evals]
    assert [e.value for e in loss] == pytest.approx([r["eval/general/loss"] for r in evals])
    assert len(events.Scalars("train/loss")) == len(metrics(tracked_run, "train"))
    assert [e.step for e in events.Scalars("stage")] == [0, 8]  # stage start and end
    assert events.Scalars("ledger/learning/code")[0].value == pytest.approx(
        json.loads((tracked_run / "summary.json").read_text())["learning"]["code"]
    )
    tags = events.Tags()["tensors"]
    assert {"config/text_summary", "ledger/text_summary", "stages/text_summary"} <= set(tags)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["train.seq_len"].number_value == 32 and hparams["stages.0.name"].string_value == "code"


def _wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (.wandb): a LevelDB-style log of W&B's own protobuf records."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        elif kind in (3, 4):  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_run_files(tracked_run: Path) -> None:
    pytest.importorskip("wandb")
    [log] = list((tracked_run / "wandb").glob("offline-run-*/run-*.wandb"))  # offline: no network here
    records = _wandb_records(log)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "tracked"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["train"]["seq_len"] == 32 and config["output"]["trackers"] == INSTALLED
    history: dict[str, list[float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                history.setdefault("/".join(item.nested_key) or item.key, []).append(
                    json.loads(item.value_json)
                )
    evals = metrics(tracked_run, "eval")
    assert history["eval/general/loss"] == pytest.approx([r["eval/general/loss"] for r in evals])
    assert len(history["train/loss"]) == len(metrics(tracked_run, "train"))
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    ledger = json.loads((tracked_run / "summary.json").read_text())
    assert summary["ledger/forgetting/general"] == pytest.approx(ledger["forgetting"]["general"])


def test_mlflow_file_store(tracked_run: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tracked_run.parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("forgetless")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.params["train.seq_len"] == "32" and run.data.params["stages.0.name"] == "code"
    evals = metrics(tracked_run, "eval")
    history = client.get_metric_history(run.info.run_id, "eval/general/loss")
    assert [(m.step, m.value) for m in history] == [
        (r["step"], pytest.approx(r["eval/general/loss"])) for r in evals
    ]
    ledger = json.loads((tracked_run / "summary.json").read_text())
    assert run.data.metrics["ledger/learning/code"] == pytest.approx(ledger["learning"]["code"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ledger.md", "summary.json"} <= artifacts


def test_a_missing_extra_is_bad_input(tmp_path: Path, tiny_tokenizer_dir: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    config = load_config(write_config(tmp_path, tiny_tokenizer_dir, ["wandb"]))
    with pytest.raises(
        UserError, match=r"output.trackers: wandb needs the wandb package.*forgetless\[wandb\]"
    ):
        run_training(config, quiet=True)
    assert not (tmp_path / "runs" / "tracked").exists()  # nothing written


def test_wandb_mode_honours_the_environment(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    from forgetless.train.trackers.wandb import wandb_mode

    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode() == "offline"  # not logged in: never tries the network


def test_records_become_metrics() -> None:
    train = {
        "kind": "train",
        "step": 4,
        "tokens": 1024,
        "stage": "s",
        "loss": 2.5,
        "lr": 1e-3,
        "loss/ewc": 0.1,
    }
    assert record_metrics(train) == {
        "train/loss": 2.5,
        "train/lr": 1e-3,
        "train/loss/ewc": 0.1,
        "tokens": 1024.0,
    }
    evaluation = {
        "kind": "eval",
        "step": 4,
        "tokens": 1024,
        "eval/a/loss": 3.0,
        "mcq/q/acc": 0.5,
        "mcq/q/n": 10,
        "mcq/q/outcomes": "AAA=",
        "eval_s": 1.5,
        "point": "periodic",
    }
    assert record_metrics(evaluation) == {
        "eval/a/loss": 3.0,
        "mcq/q/acc": 0.5,
        "eval/time_s": 1.5,
        "tokens": 1024.0,
    }
    assert flat_config({"a": {"b": 1, "c": [1, 2]}, "s": [{"n": "x"}], "z": None}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "s.0.n": "x",
        "z": "None",
    }


def test_a_failing_tracker_is_dropped_and_the_run_goes_on(monkeypatch, tmp_path: Path, capsys) -> None:
    import sys
    import types

    from forgetless.config import config_from_dict
    from forgetless.train import trackers

    calls = []

    class Broken(trackers.Tracker):
        def start(self, run):
            calls.append(("start", run.name))

        def log(self, step, metrics):
            raise OSError("disk full")

        def close(self):
            calls.append(("close",))

    module = types.ModuleType("broken_tracker")
    module.build = Broken
    monkeypatch.setitem(sys.modules, "broken_tracker", module)
    monkeypatch.setitem(trackers.TRACKERS, "tensorboard", ("broken_tracker", "json", "tensorboard"))
    config = config_from_dict(
        {
            "model": {"init": dict(TINY_LLAMA)},
            "sources": {"a": {"files": ["x"]}},
            "stages": [{"name": "s", "tokens": 10, "mix": {"a": 1.0}}],
            "output": {"trackers": ["tensorboard"]},
        }
    )
    tracker_set = trackers.TrackerSet(config, tmp_path / "my-run")
    tracker_set({"kind": "run_start", "step": 0})
    tracker_set({"kind": "train", "step": 1, "tokens": 8, "loss": 2.0})
    tracker_set({"kind": "train", "step": 2, "tokens": 16, "loss": 1.9})  # no tracker left: nothing happens
    assert calls == [("start", "my-run"), ("close",)]
    err = capsys.readouterr().err
    assert err.count("warning: the tensorboard tracker stopped (OSError: disk full)") == 1
