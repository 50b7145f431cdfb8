"""Standard errors and intervals of MCQ accuracies and their changes, against hand-computed values
(the same example as docs/evaluation.md)."""

from __future__ import annotations

import math

import pytest

from forgetless.evaluate.ledger import build_ledger
from forgetless.evaluate.mcq_stats import (
    accuracy_stderr,
    chance_accuracy,
    near_chance,
    pack_outcomes,
    paired_difference,
    unpack_outcomes,
    unpaired_difference,
)

# docs/evaluation.md: ten questions, 3 right before and 5 after; three questions went from wrong to
# right, one from right to wrong, six stayed as they were.
BEFORE = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
AFTER = [1, 1, 0, 1, 1, 1, 0, 0, 0, 0]


def test_accuracy_stderr_by_hand():
    # p = 0.3, n = 10: sample variance = n/(n-1) * p(1-p) = 10/9 * 0.21; se = sqrt(0.21 / 9)
    assert accuracy_stderr(BEFORE) == pytest.approx(math.sqrt(0.21 / 9))
    assert accuracy_stderr(AFTER) == pytest.approx(math.sqrt(0.25 / 9))
    assert accuracy_stderr([1]) is None


def test_paired_difference_by_hand():
    change = paired_difference(BEFORE, AFTER)
    # d = (0, 0, -1, +1, +1, +1, 0, 0, 0, 0): mean 0.2, sum d^2 = 4,
    # sample variance (4 - 10 * 0.2^2) / 9 = 0.4, se = sqrt(0.4 / 10) = 0.2
    assert change["delta"] == pytest.approx(0.2)
    assert change["stderr"] == pytest.approx(0.2)
    low, high = change["ci95"]
    assert low == pytest.approx(0.2 - 1.96 * 0.2, abs=1e-3)  # -0.192
    assert high == pytest.approx(0.2 + 1.96 * 0.2, abs=1e-3)  # 0.592
    assert change["significant"] is False  # the interval contains 0
    assert change["changed"] == 4 and change["n"] == 10


def test_unpaired_error_is_larger_on_the_same_data():
    unpaired = unpaired_difference(0.3, accuracy_stderr(BEFORE), 0.5, accuracy_stderr(AFTER))
    assert unpaired["stderr"] == pytest.approx(math.sqrt(0.21 / 9 + 0.25 / 9))  # 0.2261
    assert unpaired["stderr"] > paired_difference(BEFORE, AFTER)["stderr"]
    assert unpaired["paired"] is False


def test_a_consistent_change_is_significant():
    before = [0] * 40 + [1] * 60
    after = [1] * 30 + [0] * 10 + [1] * 60  # 30 questions gained, none lost
    change = paired_difference(before, after)
    assert change["delta"] == pytest.approx(0.3)
    assert change["significant"] is True
    assert change["ci95"][0] > 0


def test_no_change_at_all_is_not_significant():
    change = paired_difference([1, 0, 1, 0], [1, 0, 1, 0])
    assert change["delta"] == 0 and change["stderr"] == 0 and change["significant"] is False


def test_chance_and_near_chance():
    items = [{"choices": ["a", "b", "c", "d"]}, {"choices": ["a", "b"]}]
    assert chance_accuracy(items) == pytest.approx((0.25 + 0.5) / 2)
    assert near_chance(0.27, 0.02, 0.25)  # 0.25 is inside 0.27 +- 0.039
    assert not near_chance(0.40, 0.02, 0.25)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000])
def test_outcomes_round_trip(n):
    outcomes = [(i * 7 + i // 3) % 2 for i in range(n)]
    packed = pack_outcomes(outcomes)
    assert unpack_outcomes(packed, n) == outcomes
    if n == 1000:
        assert len(packed) == 168  # compact enough for every eval line
    with pytest.raises(ValueError):
        unpack_outcomes(packed, n + 8)


def _eval_line(step, point, outcomes, chance=0.25):
    n = len(outcomes)
    acc = sum(outcomes) / n
    return {
        "kind": "eval",
        "step": step,
        "tokens": step * 100,
        "stage": "s",
        "stage_index": 0,
        "point": point,
        "eval/a/loss": 2.0,
        "mcq/q/acc": acc,
        "mcq/q/acc_norm": acc,
        "mcq/q/acc_stderr": accuracy_stderr(outcomes),
        "mcq/q/n": n,
        "mcq/q/chance": chance,
        "mcq/q/outcomes": pack_outcomes(outcomes),
    }


def test_ledger_carries_the_paired_change():
    records = [
        {"kind": "run_start", "stages": [{"name": "s", "tokens": 100, "targets": ["a"]}], "sources": ["a"]},
        _eval_line(0, "base", BEFORE),
        _eval_line(5, "stage_end", AFTER),
    ]
    mcq = build_ledger(records)["mcq"]["q"]
    assert mcq["before"]["acc"] == pytest.approx(0.3) and mcq["after"]["acc"] == pytest.approx(0.5)
    assert mcq["before"]["acc_stderr"] == pytest.approx(math.sqrt(0.21 / 9))
    assert mcq["delta"]["acc"] == pytest.approx(0.2)
    assert mcq["delta"]["acc_stderr"] == pytest.approx(0.2)
    assert mcq["delta"]["paired"] is True
    assert mcq["delta"]["significant"] is False
    assert mcq["chance"] == 0.25
    assert mcq["at_chance"] is True  # both 0.3 +- 0.30 and 0.5 +- 0.33 contain 0.25


def test_ledger_falls_back_to_unpaired_without_outcomes():
    base, end = _eval_line(0, "base", BEFORE), _eval_line(5, "stage_end", AFTER)
    del base["mcq/q/outcomes"]
    mcq = build_ledger([base, end])["mcq"]["q"]
    assert mcq["delta"]["paired"] is False
    assert mcq["delta"]["acc_stderr"] == pytest.approx(math.sqrt(0.21 / 9 + 0.25 / 9))
