"""What every benchmark result records about where it ran: the processor and package versions."""

from __future__ import annotations

import importlib
import platform
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
