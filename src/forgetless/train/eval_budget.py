"""`eval.budget`: evaluation within a share of the run's wall time.

The base evaluation and every stage's last evaluation always run (the ledger is made of them).
A periodic or dense evaluation point runs only when the evaluation time of the whole run, projected
to its end, stays within the budget:

    eval_so_far + point + stage_ends_left <= budget * (train_projected + eval_so_far + point + stage_ends_left)

where `point` is the measured cost of the last held-out evaluation, `stage_ends_left` the stage ends
still to come at the cost of the last full evaluation, and `train_projected` the training time so
far plus the remaining optimizer steps at the mean step time so far. Points therefore run in order
while the projected total fits: the early points of a stage, where the stability gap shows, come
first. Skipping a point changes no weight. Under torchrun every process follows the first
process's decision (`forgetless.train.run`): the evaluation is collective, and each process's
clocks differ a little.

Between the base and the last evaluation, a question set is scored on a seeded sample of
`mcq_sample_size(n)` of its questions; the base and the end score all of them, so the ledger's
before/after accuracies, and their paired intervals, use every question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EvalCosts:
    """Measured seconds of the latest evaluations: held-out only, and with the question sets."""

    heldout_s: float | None = None
    full_s: float | None = None
    skipped: list[int] = field(default_factory=list)  # optimizer steps of the points skipped


def within_budget(
    budget: float | None,
    costs: EvalCosts,
    *,
    eval_s: float,
    train_s: float,
    steps_done: int,
    steps_left: int,
    stage_ends_left: int,
) -> bool:
    """True when an optional evaluation point fits the budget (see the module docstring)."""
    if budget is None or costs.heldout_s is None:
        return True
    train_projected = train_s + steps_left * train_s / max(steps_done, 1)
    mandatory = stage_ends_left * (costs.full_s if costs.full_s is not None else costs.heldout_s)
    evaluation = eval_s + costs.heldout_s + mandatory
    return evaluation <= budget * (train_projected + evaluation)


def mcq_sample_size(n: int) -> int:
    """Questions scored between the base and the end: a quarter of the set, at least 100 (all of a
    set of 100 or fewer)."""
    return min(n, max(100, n // 4))


def mcq_sample(items: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A seeded sample of `mcq_sample_size` items, in their order in the set."""
    size = mcq_sample_size(len(items))
    if size >= len(items):
        return items
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=size, replace=False))
    return [items[i] for i in chosen]
