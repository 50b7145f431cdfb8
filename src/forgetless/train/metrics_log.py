"""`metrics.jsonl`: one JSON object per line, appended and flushed as the run goes.

Line kinds (the ledger reads them): `run_start`, `stage_start`, `train`, `eval`, `stage_end`,
`event`, `resume`, `run_end`; and `mix`, an update of a loss-driven mixture (the report draws them). A resumed run first writes `{"kind": "resume", "step": S}`; readers
drop earlier lines with a step greater than S, so the file always describes one consistent history.

Each line goes to the file in one `write` on an append-only descriptor. A write that fails (a full
disk) cuts the file back to its last complete line and raises `OSError` naming the file, so a
resumed run appends to a clean file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class MetricsLog:
    """The metrics file of a run; `sinks` (experiment trackers) get each line after it is written."""

    def __init__(
        self, path: Path, *, enabled: bool = True, sinks: Sequence[Callable[[dict[str, Any]], None]] = ()
    ) -> None:
        self.path = path
        self.enabled = enabled
        self.sinks = list(sinks)
        self._fd: int | None = None
        if enabled:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(_finite(record), separators=(",", ":")) + "\n").encode("utf-8")
        end = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as err:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)  # no torn line for the next writer to append to
            raise OSError(err.errno, err.strerror, str(self.path)) from err
        for sink in self.sinks:
            sink(record)

    def sync(self) -> None:
        """Make everything written so far durable (called with each checkpoint)."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as err:
                raise OSError(err.errno, err.strerror, str(self.path)) from err

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/inf; write them as null so every line stays valid JSON.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
