"""Host memory reuse: applied once per process on Linux with glibc, never over the user's settings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from forgetless.train.host_memory import keep_freed_memory

_PROBE = "from forgetless.train.host_memory import keep_freed_memory as k; print(k(), k())"


def _probe(**env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_applied_on_glibc_unless_the_user_set_the_allocator() -> None:
    assert _probe() == "True True"
    assert _probe(MALLOC_ARENA_MAX="2") == "False False"  # the user's own malloc settings win
    assert _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == "False False"


def test_the_answer_is_stable_within_a_process() -> None:
    assert keep_freed_memory() == keep_freed_memory()
