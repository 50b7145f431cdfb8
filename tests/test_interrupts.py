"""Ctrl-C during `train`, `prepare` and `eval` exits 130 with one line, never 0.

Each command runs in a child process slowed down at a known point (tests/faults_helpers.py), and
gets a real SIGINT from this process, as a terminal's Ctrl-C would send it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import tiny_llama
from faults_helpers import (
    cli,
    fault_config,
    quoted,
    record,
    signal_held,
    start_slowed,
    wait_until,
    with_values,
    write_config,
    write_corpus,
)
from forgetless.train import checkpoint as ckpt

SIGINT_EXIT = 128 + signal.SIGINT


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("interrupts") / "data")


def _one_line(err: str) -> str:
    """The message: the one line of stderr besides progress bars (transformers' weight loading)."""
    lines = [line for line in err.strip().splitlines() if "it/s]" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_ctrl_c_twice_during_training_exits_130_with_one_line(
    corpus, tiny_tokenizer_dir, tmp_path, record_property
) -> None:
    config = fault_config(corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path / "cache")
    config = write_config(tmp_path / "config.yaml", with_values(config, **{"stages.0.tokens": 2000 * 256}))
    run_dir = tmp_path / "run"
    marker = tmp_path / "marker"
    proc = start_slowed(["train", str(config), "--quiet"], marker, at="forward", delay=0.1)
    wait_until(lambda: ckpt.latest_checkpoint(run_dir) is not None, proc)
    marker.unlink()
    wait_until(marker.exists, proc)  # inside the forward pass of a step after that checkpoint
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)  # within the same step (each takes over 0.2 s here): the second stops at once
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == SIGINT_EXIT, err
    line = _one_line(err)
    assert line.startswith("stopped by SIGINT (Ctrl-C) at once, without a checkpoint; the latest checkpoint")
    assert line.endswith(f"resume with: forgetless train {config} --resume")
    assert not (run_dir / "final").exists()
    record(
        record_property,
        "Process",
        "two SIGINTs (Ctrl-C twice) within one training step, from another process",
        f"exit {proc.returncode}, one line: {quoted(line)}",
    )


def test_ctrl_c_during_prepare_exits_130_and_leaves_no_partial_entry(
    corpus, tiny_tokenizer_dir, tmp_path, record_property
) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        fault_config(corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path / "cache"),
    )
    marker = tmp_path / "marker"
    proc = start_slowed(["prepare", str(config), "--quiet"], marker, at="encode", delay=0.5, hold=True)
    wait_until(marker.exists, proc)
    signal_held(proc, marker, signal.SIGINT)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == SIGINT_EXIT, err
    line = _one_line(err)
    assert line.startswith("stopped by SIGINT (Ctrl-C) while preparing data")
    left = [p.name for p in (tmp_path / "cache").rglob("*") if ".tmp-" in p.name]
    assert left == []  # the interrupted file's temporary folder was removed on the way out
    assert not (tmp_path / "cache" / "sources").exists()
    record(
        record_property,
        "Process",
        "SIGINT (Ctrl-C) while `prepare` tokenizes",
        f"exit {proc.returncode}, one line: {quoted(line)}; no temporary or partial cache entry left",
    )


def test_ctrl_c_during_eval_exits_130_and_writes_no_results(
    corpus, tiny_tokenizer, tmp_path, record_property
) -> None:
    from forgetless.model.load import save_model

    save_model(tiny_llama(tiny_tokenizer), tiny_tokenizer, tmp_path / "model")
    marker, results = tmp_path / "marker", tmp_path / "eval.json"
    args = ["eval", str(tmp_path / "model"), "--source", f"general={corpus}", "--seq-len", "32"]
    proc = start_slowed(
        [*args, "--json", str(results), "--quiet"],
        marker,
        at="forward",
        delay=0.1,
        hold=True,
        FORGETLESS_CACHE=str(tmp_path / "cache"),
    )
    wait_until(marker.exists, proc)
    signal_held(proc, marker, signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == SIGINT_EXIT, err
    line = _one_line(err)
    assert line == "stopped by SIGINT (Ctrl-C) before the evaluation finished; no results were written"
    assert not results.exists() and out == ""
    record(
        record_property,
        "Process",
        "SIGINT (Ctrl-C) while `eval` runs the model",
        f"exit {proc.returncode}, one line: {quoted(line)}",
    )


def test_ctrl_c_in_any_other_command_exits_130(monkeypatch, tmp_path, capsys) -> None:
    import forgetless.report.html as html

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(html, "write_report", interrupted)
    code, out, err = cli(["report", str(tmp_path), "--out", str(tmp_path / "r.html")], capsys)
    assert code == SIGINT_EXIT
    assert err.strip() == "stopped by SIGINT (Ctrl-C) before the command finished"
