"""`forgetless train` in a child process: one plain process, or several under torchrun (gloo, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def train(config: Path, *args: str, ranks: int = 1, timeout: float = 300, script: Path | None = None) -> None:
    """Run `forgetless train CONFIG --quiet ARGS` on `ranks` processes; fail with its stderr. A
    `script` that runs forgetless's command line in its own way stands in for `-m forgetless`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [
        *(launcher if ranks > 1 else [sys.executable]),
        *([str(script)] if script is not None else ["-m", "forgetless"]),
        "train",
        str(config),
        "--quiet",
        *args,
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # A run that hangs (processes waiting on each other): torchrun, asked to stop, ends the
            # processes it started (SIGTERM, then SIGKILL after 30 s), which killing it would leave.
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    # The processes' own messages come first; torchrun's summary of the failure follows them.
    assert proc.returncode == 0, stderr[:3000]
