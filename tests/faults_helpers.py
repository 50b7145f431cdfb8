"""Small runs for the fault and bad-input tests: one source, two stages, a 2-layer model.

A run of `fault_config` takes 16 optimizer steps of 256 tokens (12 in stage `first`, 4 in stage
`second`), logs every step and checkpoints every 4 steps.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import TINY_LLAMA, sample_texts
from forgetless.cli import main

STEPS = 16
CHECKPOINT_EVERY = 4


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "general.jsonl"
    if not path.exists():
        with open(path, "w", encoding="utf-8") as fh:
            for i, text in enumerate(sample_texts()):
                fh.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


def fault_config(corpus: Path, tokenizer_dir: Path, out_dir: Path, cache_dir: Path) -> dict[str, Any]:
    return {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {"general": {"files": [str(corpus)], "heldout": {"documents": 4}}},
        "stages": [
            {
                "name": "first",
                "tokens": 12 * 256,
                "mix": {"general": 1.0},
                "schedule": {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.1},
            },
            {
                "name": "second",
                "tokens": 4 * 256,
                "mix": {"general": 1.0},
                "schedule": {"kind": "constant", "peak_lr": 1e-3, "warmup": 0.0},
                "reset_optimizer": False,
            },
        ],
        "train": {
            "seq_len": 32,
            "batch_tokens": 256,
            "micro_batch": 8,
            "log_every_steps": 1,
            "device": "cpu",
        },
        "eval": {"max_tokens": 256, "batch_size": 8, "dense_start": []},
        "output": {
            "dir": str(out_dir),
            "checkpoint_every_tokens": CHECKPOINT_EVERY * 256,
            "keep_checkpoints": 2,
        },
        "reliability": {"max_bad_steps": 2, "max_rollbacks": 1},
        "cache_dir": str(cache_dir),
    }


def with_values(config: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A copy of `config` with dotted keys (`stages.0.tokens`) set."""
    config = copy.deepcopy(config)
    for key, value in values.items():
        node: Any = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `forgetless ARGS` in this process; return the exit code, stdout and stderr."""
    capsys.readouterr()
    code = 0
    try:
        main(args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def read_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every line of metrics.jsonl as written (no resume rule applied)."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def events(run_dir: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in read_lines(run_dir) if r["kind"] == "event" and r["event"] == name]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "model.safetensors")


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to show that nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class TrainingForwards:
    """Counts the model's forward passes in training mode (one per step here: no accumulation) and
    lets a test change the output of chosen ones, from a forward hook on a submodule."""

    def __init__(
        self, module: torch.nn.Module, change: Callable[[int, torch.Tensor], torch.Tensor | None]
    ) -> None:
        self.count = 0
        self.change = change
        module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training:
            return None
        self.count += 1
        return self.change(self.count, output)


def record(record_property: Callable[[str, object], None], category: str, fault: str, observed: str) -> None:
    """What a fault test injected and what it saw, for docs/reliability.md (scripts/reliability_report.py)."""
    record_property("category", category)
    record_property("fault", fault)
    record_property("observed", observed)


def quoted(message: str) -> str:
    """A message as inline code in the report's Markdown."""
    return "`" + message.strip().replace("`", "'") + "`"


# ---------------------------------------------------------------------------------------------
# `forgetless` in a child process, slowed down so that a test can send a real signal at a known point

_SLOWED = """
import os, signal, sys, time
from pathlib import Path

# Ctrl-C as in a terminal, also when the tests run as a background job, which starts with it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

marker, delay, where = Path(os.environ["SLOW_MARKER"]), float(os.environ["SLOW_DELAY"]), os.environ["SLOW_AT"]
hold = Path(os.environ["SLOW_HOLD"]) if os.environ.get("SLOW_HOLD") else None

def slow():
    marker.touch()
    started = time.monotonic()
    while hold is not None and not hold.exists() and time.monotonic() - started < 120:
        time.sleep(0.01)  # held until released: the work cannot end before the parent's signal
    time.sleep(delay)

if where == "forward":  # every decoder layer's forward, in training and in evaluation
    import torch

    torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: slow() if type(module).__name__.endswith("DecoderLayer") else None
    )
else:  # every batch the tokenizer encodes while data is prepared
    import forgetless.data.prepare as prepare

    encode = prepare._encode
    prepare._encode = lambda batch, tok: (slow(), encode(batch, tok))[1]
from forgetless.cli import main
main()  # as the `forgetless` script runs it: with the process's own arguments
"""


def start_slowed(args: list[str], marker: Path, *, at: str, delay: float, hold: bool = False, **env: str) -> Any:
    """Start `forgetless ARGS` in a child process whose every decoder-layer forward (`at="forward"`)
    or tokenizer batch (`at="encode"`) first touches `marker`, then sleeps `delay` seconds. With
    `hold`, each also waits until `signal_held` released it: on a loaded machine a short command
    could otherwise finish between the marker and the signal."""
    import os
    import subprocess
    import sys

    variables = {"SLOW_MARKER": str(marker), "SLOW_DELAY": str(delay), "SLOW_AT": at, "OMP_NUM_THREADS": "1"}
    if hold:
        variables["SLOW_HOLD"] = str(marker) + ".go"
    return subprocess.Popen(
        [sys.executable, "-c", _SLOWED, *args],
        env={**os.environ, **variables, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_held(proc: Any, marker: Path, signum: int) -> None:
    """Send `signum` to a child started with `hold=True`, then let it go on: it handles the signal
    before it sees the release, since the signal is pending before the release file exists."""
    proc.send_signal(signum)
    Path(str(marker) + ".go").touch()


def wait_until(condition: Callable[[], bool], proc: Any, timeout: float = 180.0) -> None:
    """Poll `condition` until it holds; fail with the child's stderr if it ends or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before it got there: {err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the process")
        time.sleep(0.02)
