"""Folders that survive a crash: their files reach the disk before a rename publishes them.

Checkpoints and model directories are written under a temporary name and renamed into place. A
rename is atomic, but on its own it says nothing of the data: after a power loss the new name can
point at files whose blocks never left the page cache. `fsync_tree` flushes every file and folder
under a temporary folder, so the rename that follows publishes complete files only; `fsync_dir`
then makes the rename itself durable.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_tree(folder: Path) -> None:
    """fsync every file under `folder`, then every folder (deepest first), `folder` included."""
    folders = []
    for root, _, files in os.walk(folder):
        folders.append(Path(root))
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for path in reversed(folders):
        fsync_dir(path)


def fsync_dir(path: Path) -> None:
    """fsync a folder's entries (where the system allows it; some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
