"""An exclusive lock on a folder: one writer at a time, released when its process ends in any way.

`FolderLock(folder).acquire()` takes `fcntl.flock` on the file `folder/.lock`. The kernel drops
the lock when the process exits, crashes or is killed, so a lock is never left behind; the file
itself stays, and holds `pid@host` of the holder while it is held (empty otherwise), which is how a
refused process can name the one it waits for. `flock` works between processes on one machine and,
on Linux, over NFS (as a POSIX lock); where the file system supports no lock at all, the lock is
not taken and `held` stays False.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path

LOCK_FILE = ".lock"

_UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its `pid@host` (empty if it has not said yet)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder or 'another process'}")
        self.path = path
        self.holder = holder

    @property
    def who(self) -> str:
        """The holder in words: `process 123 on host x`, or `another process`."""
        pid, _, host = self.holder.partition("@")
        if not pid:
            return "another process"
        return f"process {pid}" + (f" on host {host}" if host and host != socket.gethostname() else "")


class FolderLock:
    """An exclusive lock on `folder` (which must exist), through the file `folder/.lock`."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.held = False
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False, on_wait: Callable[[LockHeld], None] | None = None) -> FolderLock:
        """Take the lock. Raises `LockHeld` when another process has it, unless `wait`: then block until
        it is free, after calling `on_wait(LockHeld)` once."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = LockHeld(self.path, _read(fd))
                if not wait:
                    os.close(fd)
                    raise held from None
                if on_wait is not None:
                    on_wait(held)
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                os.close(fd)
                if err.errno in _UNSUPPORTED:
                    return self  # no locks on this file system: go on without one
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the file was removed while we waited: lock the one there now
        self._fd = fd
        self.held = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
        return self

    def release(self, *, remove: bool = False) -> None:
        """Let go of the lock; with `remove`, delete the lock file first (while still holding it)."""
        if self._fd is None:
            return
        try:
            if remove:
                self.path.unlink(missing_ok=True)
            else:
                os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
            self.held = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
