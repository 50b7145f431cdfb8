"""`metrics.jsonl`: one JSON object per line, appended and flushed as the run goes.

Line kinds (the ledger reads them): `run_start`, `stage_start`, `train`, `eval`, `stage_end`,
`event`, `resume`, `run_end`. A resumed run first writes `{"kind": "resume", "step": S}`; readers
drop earlier lines with a step greater than S, so the file always describes one consistent history.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._fh = open(path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115 - long-lived

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(_finite(record), separators=(",", ":")) + "\n")
        self._fh.flush()

    def sync(self) -> None:
        """Make everything written so far durable (called with each checkpoint)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/inf; write them as null so every line stays valid JSON.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
