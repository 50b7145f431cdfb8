"""Errors that reach the user.

`UserError` is bad input: a config key, a data file, a model path. The CLI prints its message on one
line and exits with code 2. `RunStopped` is a run that cannot go on for a reason outside its input
(`RunFailed`: it diverged, the disk is full, the GPU ran out of memory; `Preempted`: a signal asked
it to stop): one line, no traceback, and the exit code of the class. Anything else is an internal
error (exit code 1).
"""

from __future__ import annotations

import errno

BAD_INPUT_EXIT_CODE = 2
RUN_FAILED_EXIT_CODE = 1


class UserError(Exception):
    """Bad input from the user. The message is one line that names the file, line or key."""

    exit_code = BAD_INPUT_EXIT_CODE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class RunStopped(Exception):
    """A run stopped before its end; the message is one line that says what to do next."""

    exit_code = RUN_FAILED_EXIT_CODE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class RunFailed(RunStopped):
    """The run cannot go on: it diverged, the disk is full, or the GPU ran out of memory (exit code 1)."""


class Preempted(RunStopped):
    """SIGTERM or SIGINT stopped the run after a checkpoint; exit code 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How the writers that do not raise OSError word it (safetensors: "... (os error 28)").
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "os error 28", "os error 122")


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` (or an error it was raised from) says the disk or the user's quota is full."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _DISK_FULL_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False
