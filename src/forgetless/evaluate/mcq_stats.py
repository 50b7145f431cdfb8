"""How sure a multiple-choice accuracy, and a change of it, is.

An accuracy is the mean of n outcomes of 0 or 1 (one per question). Its standard error is the
sample standard deviation of the outcomes over sqrt(n), as lm-evaluation-harness reports it. A
before/after change measured on the same questions is a paired difference: its standard error is
that of the per-question differences d_i = after_i - before_i (each -1, 0 or +1), which is smaller
than the unpaired sqrt(se_before^2 + se_after^2) whenever the two models agree on many questions.
The 95% interval is the normal approximation, delta +- 1.96 * se; a change whose interval contains
0 is no significant change. docs/evaluation.md works an example through by hand.

Per-question outcomes travel in metrics.jsonl as `pack_outcomes` strings: the bits packed eight to
a byte (question i is bit i % 8 of byte i // 8), in base64, 1,000 questions in 168 characters.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def accuracy_stderr(outcomes: Sequence[float] | np.ndarray) -> float | None:
    """Standard error of the mean of 0/1 `outcomes`: sample std (ddof 1) / sqrt(n); None when n < 2."""
    values = np.asarray(outcomes, dtype=np.float64)
    if values.size < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def interval_95(delta: float, stderr: float) -> tuple[float, float]:
    """The normal-approximation 95% interval of an estimate with standard error `stderr`."""
    return delta - Z_95 * stderr, delta + Z_95 * stderr


def excludes_zero(interval: tuple[float, float]) -> bool:
    """True when the interval lies entirely on one side of 0: a significant change."""
    low, high = interval
    return low > 0 or high < 0


def paired_difference(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """The change from `before` to `after`, two 0/1 outcome lists over the same questions in order.

    Returns `delta` (after accuracy - before accuracy), `stderr` (of the per-question differences;
    None when n < 2), `ci95` ([low, high], None without a stderr), `significant` (the interval
    excludes 0; False without one), `n`, and `changed` (questions whose outcome changed).
    """
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if b.shape != a.shape:
        raise ValueError(f"paired outcomes need the same questions: {b.size} before, {a.size} after")
    differences = a - b
    delta = float(differences.mean()) if differences.size else 0.0
    stderr = accuracy_stderr(differences)
    ci95 = interval_95(delta, stderr) if stderr is not None else None
    return {
        "delta": delta,
        "stderr": stderr,
        "ci95": list(ci95) if ci95 is not None else None,
        "significant": excludes_zero(ci95) if ci95 is not None else False,
        "paired": True,
        "n": int(differences.size),
        "changed": int(np.count_nonzero(differences)),
    }


def unpaired_difference(
    before: float, before_stderr: float | None, after: float, after_stderr: float | None
) -> dict[str, Any]:
    """The change between two accuracies whose per-question outcomes are not both known: the
    standard error is sqrt(se_before^2 + se_after^2), larger than the paired one on the same data."""
    delta = after - before
    if before_stderr is None or after_stderr is None:
        return {"delta": delta, "stderr": None, "ci95": None, "significant": False, "paired": False}
    stderr = math.sqrt(before_stderr**2 + after_stderr**2)
    ci95 = interval_95(delta, stderr)
    return {
        "delta": delta,
        "stderr": stderr,
        "ci95": list(ci95),
        "significant": excludes_zero(ci95),
        "paired": False,
    }


def chance_accuracy(items: Sequence[dict[str, Any]]) -> float:
    """The expected accuracy of guessing uniformly: the mean over questions of 1 / number of choices."""
    if not items:
        raise ValueError("no questions")
    return float(np.mean([1.0 / len(item["choices"]) for item in items]))


def near_chance(acc: float, stderr: float | None, chance: float) -> bool:
    """True when `chance` lies inside the accuracy's 95% interval: no evidence of doing better (or
    worse) than guessing."""
    if stderr is None:
        return acc == chance
    low, high = interval_95(acc, stderr)
    return low <= chance <= high


def pack_outcomes(outcomes: Sequence[float | bool]) -> str:
    """0/1 outcomes as a compact string for metrics.jsonl (see the module docstring)."""
    bits = np.asarray(outcomes, dtype=bool)
    return base64.b64encode(np.packbits(bits, bitorder="little").tobytes()).decode("ascii")


def unpack_outcomes(packed: str, n: int) -> list[int]:
    """The first `n` outcomes of a `pack_outcomes` string; raises ValueError when it holds fewer."""
    try:
        raw = np.frombuffer(base64.b64decode(packed.encode("ascii"), validate=True), dtype=np.uint8)
    except (ValueError, UnicodeEncodeError) as err:
        raise ValueError(f"not a packed outcome string: {err}") from None
    bits = np.unpackbits(raw, bitorder="little")
    if bits.size < n or n < 0:
        raise ValueError(f"the packed outcomes hold {bits.size} bits, not {n}")
    return [int(b) for b in bits[:n]]
