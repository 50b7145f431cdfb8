"""One process per run directory, and what a killed process left in it.

`hold_run_dir(run_dir)` creates the run directory if needed and takes an exclusive lock on it
(`forgetless.file_lock`) before anything looks inside; the run keeps it until it ends, fails or is
killed (the kernel releases it with the process). A second `train` into the same directory, or a
`--resume` while the first still runs, stops with one line that names the holder's pid. Under
torchrun rank 0 holds it for the whole job.

Holding the lock means no live process is writing the folder, so what a killed one left can go:
temporary checkpoint and `final/` folders and half-written summaries are removed, and a checkpoint
or `final/` that was moved aside to be replaced (the process died between the two renames) is put
back (`clear_leftovers`).

A run directory that this call created, and that holds nothing but the lock file when the run
stops (bad input found before anything was written), is removed again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from forgetless.errors import UserError
from forgetless.file_lock import LOCK_FILE, FolderLock, LockHeld

# Names of what writers leave for a moment (and a killed process for good): see
# forgetless.model.load.save_model, forgetless.train.checkpoint and forgetless.evaluate.ledger.
_TEMPORARY = re.compile(r"^\.(final\.tmp-.+|summary\.json\..+\.tmp)$")
_MOVED_ASIDE = re.compile(r"^\.final\.old-.+$")
_CHECKPOINT_TEMPORARY = re.compile(r"^\.tmp-step_\d+$")
_CHECKPOINT_MOVED_ASIDE = re.compile(r"^\.old-(step_\d+)$")


@contextlib.contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold the lock on `run_dir` for the block; raise `UserError` if another process holds it."""
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 holds it for every rank
        yield
        return
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"output.dir: cannot create {run_dir} ({err.strerror})") from None
    lock = FolderLock(run_dir)
    try:
        lock.acquire()
    except LockHeld as held:
        raise UserError(
            f"{run_dir}: in use by {held.who}, a forgetless run writing this folder; wait for it to end "
            "or write elsewhere with --out"
        ) from None
    try:
        if lock.held:
            clear_leftovers(run_dir)
        yield
    finally:
        unused = created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]
        lock.release(remove=unused)
        if unused:
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def clear_leftovers(run_dir: Path) -> list[str]:
    """Remove what a killed writer left in `run_dir` (call only while holding its lock); return the
    names removed or put back, relative to `run_dir`."""
    done: list[str] = []
    done += _clear(run_dir, _TEMPORARY, _MOVED_ASIDE, restore_as=lambda match: "final")
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        cleared = _clear(
            checkpoints,
            _CHECKPOINT_TEMPORARY,
            _CHECKPOINT_MOVED_ASIDE,
            restore_as=lambda match: match.group(1),
        )
        done += [f"checkpoints/{name}" for name in cleared]
    return done


def _clear(
    folder: Path,
    temporary: re.Pattern[str],
    moved_aside: re.Pattern[str],
    restore_as: Callable[[re.Match[str]], str],
) -> list[str]:
    done = []
    for path in sorted(folder.iterdir()):
        if temporary.match(path.name):
            _remove(path)
            done.append(path.name)
        elif match := moved_aside.match(path.name):
            original = folder / restore_as(match)
            if original.exists():
                _remove(path)
            else:  # the replacement never landed: the moved copy is the only one
                os.rename(path, original)
            done.append(path.name)
    return done


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
