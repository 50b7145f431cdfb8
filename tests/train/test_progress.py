"""What a run prints: plain one-line records when its output goes to a pipe or a log file, JSON
lines with --json-progress, nothing with --quiet."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_LLAMA, write_corpora
from forgetless.console import LINE_WIDTH, fit_lines, format_duration, resolve_progress
from forgetless.train.progress import ProgressDisplay


def write_config(tmp: Path, tokenizer_dir: Path) -> Path:
    corpora = write_corpora(tmp / "data")
    questions = tmp / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question": f"What is {i} plus {i}?", "choices": [str(2 * i), str(i)], "answer": 0})
            + "\n"
            for i in range(12)
        )
    )
    config = {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {
            "general-english-prose": {"files": [str(corpora["general"])], "heldout": {"documents": 4}},
            "python-standard-library": {"files": [str(corpora["code"])], "heldout": {"documents": 1}},
        },
        "stages": [
            {
                "name": "continue-on-python-code",
                "tokens": 3072,
                "mix": {"python-standard-library": 1.0},
                "replay": {"from": "general-english-prose", "ratio": 0.25},
            }
        ],
        "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 4, "log_every_steps": 2},
        "eval": {"max_tokens": 512, "every_tokens": 1024, "dense_start": [], "mcq": [str(questions)]},
        "output": {"dir": str(tmp / "run")},
        "cache_dir": str(tmp / "cache"),
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_output_to_a_pipe_is_plain_whole_lines(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    config = write_config(tmp_path, tiny_tokenizer_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "60"}  # a narrow terminal size must not matter
    proc = subprocess.run(
        [sys.executable, "-m", "forgetless", "train", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    too_long = [line for line in lines if len(line) > LINE_WIDTH]
    assert not too_long
    text = proc.stdout + proc.stderr
    assert "…" not in text and "\r" not in text and "\x1b[" not in text  # nothing cut, redrawn or coloured
    progress = [line for line in lines if "ETA" in line]
    trains = [
        r
        for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "train"
    ]
    assert len(progress) == len(trains)  # one record per log interval
    assert all(line.startswith("[1/1 continue-on-python-code] ") for line in progress)
    assert progress[-1].split("ETA ")[1] == "0:00"
    assert "3,072/3,072 tok 100%  loss " in progress[-1]
    evals = [line for line in lines if "] eval at " in line]
    assert len(evals) >= 3  # periodic and stage end
    assert any(line.startswith("base model eval: ") for line in lines)
    eval_text = " ".join(lines)
    for name in ("general-english-prose", "python-standard-library", "questions acc"):
        assert name in eval_text  # every item whole, on one of the lines
    assert any(line.startswith("tokenized python-standard-library: ") for line in lines)
    from huggingface_hub import ModelCard  # training leaves a model card beside the weights

    card = ModelCard.load(tmp_path / "run" / "final" / "README.md")
    assert card.data.to_dict()["tags"] == ["continual-pretraining", "forgetless"]
    assert "| python-standard-library | target |" in card.text and "| questions | 12 |" in card.text


def test_json_progress_is_one_object_per_line(capsys) -> None:

    display = ProgressDisplay(progress="json")
    display.message("[bold]strategy[/bold] one")
    display.set_eval(
        {"kind": "eval", "point": "base", "eval/a/loss": 3.2, "mcq/q/acc": 0.25, "mcq/q/outcomes": "AA=="}
    )
    display.start_stage("s", 0, 1, 1024)
    display.update(512, loss=3.0, tokens_per_s=100.0, lr=1e-3, step=2)
    display.update(1024, loss=2.9, tokens_per_s=100.0, lr=1e-3, step=4)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in records] == ["message", "eval", "stage", "progress", "progress"]
    assert records[0]["text"] == "strategy one"
    assert "mcq/q/outcomes" not in records[1] and records[1]["eval/a/loss"] == 3.2
    assert records[-1] | {"eta_s": 0} == {
        "kind": "progress",
        "stage": "s",
        "stage_index": 0,
        "stages": 1,
        "step": 4,
        "stage_tokens": 1024,
        "stage_total_tokens": 1024,
        "loss": 2.9,
        "lr": 1e-3,
        "tokens_per_s": 100.0,
        "eta_s": 0,
    }
    assert records[-1]["eta_s"] == 0


def test_json_result_line(tmp_path: Path, capsys) -> None:
    from forgetless.cli import _print_run_result

    (tmp_path / "summary.json").write_text(json.dumps({"learning": {"a": 0.5}, "forgetting": {"b": 0.1}}))
    _print_run_result(tmp_path, as_json=True)
    assert json.loads(capsys.readouterr().out) == {
        "kind": "result",
        "run_dir": str(tmp_path),
        "learning": {"a": 0.5},
        "forgetting": {"b": 0.1},
    }


def test_quiet_prints_nothing_but_the_result(tmp_path: Path, capsys) -> None:
    display = ProgressDisplay(quiet=True)
    display.message("hello")
    display.start_stage("s", 0, 1, 100)
    display.update(50, loss=1.0, tokens_per_s=10.0, lr=1e-3)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_lines_splits_between_items_and_never_cuts() -> None:
    items = [f"source-number-{i} 3.141" for i in range(10)]
    lines = fit_lines("stage 1/1 s: eval at 1,024 tok: ", items, width=60)
    assert all(len(line) <= 60 for line in lines)
    assert ", ".join(line.strip() for line in lines).replace(": , ", ": ").count("source-number-") == 10
    long = "x" * 80
    assert fit_lines("head: ", ["a", long, "b"], width=40) == ["head: a", "  " + long, "  b"]


def test_modes_and_durations() -> None:
    assert resolve_progress("auto", io.StringIO()) == "plain"  # not a terminal
    assert resolve_progress(False) == "quiet" and resolve_progress("json") == "json"
    with pytest.raises(ValueError):
        resolve_progress("fancy")
    assert (
        format_duration(5) == "0:05" and format_duration(3725) == "1:02:05" and format_duration(None) == "-"
    )
