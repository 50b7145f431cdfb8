"""Host memory reuse: applied once per process on Linux with glibc, only when the program asks for it,
never over the user's settings, and with the effect it promises (freed memory stays with the process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

_PROBE = """
from forgetless.train.host_memory import freed_memory_kept, keep_freed_memory
print(freed_memory_kept(), keep_freed_memory(), keep_freed_memory(), freed_memory_kept())
"""

# RSS kept after a 16 MiB block is written and freed: with glibc's defaults the block is mapped on
# its own and unmapped when freed; with the settings it comes from the heap, which is not trimmed.
_RETAINED = """
import os, sys
from forgetless.train.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
block = b"x" * (16 << 20)
del block
print(rss() - before)
"""


def _run(code: str, *args: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_applied_when_asked_unless_the_user_set_the_allocator() -> None:
    assert _run(_PROBE) == "False True True True"
    assert _run(_PROBE, MALLOC_ARENA_MAX="2") == "False False False False"  # the user's settings win
    assert _run(_PROBE, GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == "False False False False"


def test_freed_memory_stays_with_the_process() -> None:
    kept, default = int(_run(_RETAINED, "keep")), int(_run(_RETAINED, "default"))
    assert kept > 12 << 20, kept
    assert default < 4 << 20, default
