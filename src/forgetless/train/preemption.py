"""SIGTERM and SIGINT ask a run to stop at the next step boundary, after a checkpoint.

A scheduler preempting a job sends SIGTERM and, after a grace period, SIGKILL; Ctrl-C sends SIGINT.
`StopRequest.installed()` replaces both handlers for the duration of the training loop (and puts
the previous ones back after): a signal only sets `signum`, and the loop checks it once per step.
A second SIGINT while the first is pending stops at once (KeyboardInterrupt), losing at most the
work since the last checkpoint, as SIGKILL would.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Catch SIGTERM and SIGINT inside the block (main thread only; elsewhere a no-op)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
