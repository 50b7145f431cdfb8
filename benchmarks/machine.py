"""What every benchmark result records about where it ran: the processor and package versions."""

from __future__ import annotations

import importlib
import os
import platform
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*packages: str) -> dict[str, str]:
    """Python's version and each named package's `__version__`."""
    found = {"python": platform.python_version()}
    for name in packages:
        found[name] = getattr(importlib.import_module(name), "__version__", "unknown")
    return found


def machine_record(*packages: str) -> dict[str, object]:
    """What a result records about where and when it ran: processor, cores, date, and the versions
    of Python and of each named package."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        **versions(*packages),
    }
