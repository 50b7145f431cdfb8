"""The recommendation: the least replay within budget, monotone in the budget, and bad budgets."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.errors import UserError
from forgetless.plan.fit import fit_power_law
from forgetless.plan.recommend import Budget, parse_budget, parse_margin, recommend

RATIOS = [0.0, 0.05, 0.1, 0.25, 0.5]
BASE = {"general": 3.0, "code": 4.0, "security": 5.0}


def laws(general=(0.6, 3.0, 2.95), code=(0.3, 1.5, 3.9), security=(-1.0, 0.8, 4.5)):
    shares = np.array([1 - r for r in RATIOS])
    return {
        name: fit_power_law(shares, a * shares**s + b)
        for name, (a, s, b) in {"general": general, "code": code, "security": security}.items()
    }


def test_recommends_the_least_replay_that_keeps_the_rise_within_budget() -> None:
    fits = laws()
    rec = recommend(fits, BASE, Budget(0.2), ["general"], RATIOS)
    # general rises 0.6 R^3 - 0.05: within 0.2 when R^3 <= 0.25/0.6.
    boundary = 1 - (0.25 / 0.6) ** (1 / 3)
    assert rec.boundary_ratio == pytest.approx(boundary, abs=1e-6)
    assert rec.replay_ratio == pytest.approx(np.ceil(boundary * 1000) / 1000)
    assert rec.predicted_delta["general"] <= 0.2
    assert rec.predicted_delta["security"] < 0  # the target learned
    assert rec.limiting == "general" and not rec.at_range_end


def test_the_budget_holds_for_every_retained_source() -> None:
    fits = laws()
    alone = recommend(fits, BASE, Budget(0.2), ["general"], RATIOS)
    both = recommend(fits, BASE, Budget(0.05), ["general", "code"], RATIOS)
    assert both.limiting in ("general", "code")
    assert both.predicted_delta["general"] <= 0.05 + 1e-9 and both.predicted_delta["code"] <= 0.05 + 1e-9
    assert both.replay_ratio >= alone.replay_ratio


def test_recommendation_is_monotone_in_the_budget() -> None:
    fits = laws()
    budgets = np.linspace(0.026, 0.6, 60)
    ratios = [
        recommend(fits, BASE, Budget(float(b)), ["general", "code"], RATIOS).replay_ratio for b in budgets
    ]
    assert all(later <= earlier for earlier, later in zip(ratios[:-1], ratios[1:], strict=True))
    assert ratios[0] > ratios[-1] == 0.0  # a generous budget needs no replay


def test_relative_budget_is_a_share_of_each_base_loss() -> None:
    fits = laws()
    absolute = recommend(fits, BASE, Budget(0.06), ["general"], RATIOS)
    relative = recommend(fits, BASE, parse_budget("2%"), ["general"], RATIOS)
    assert relative.replay_ratio == absolute.replay_ratio  # 2% of a base loss of 3.0


def test_an_unmeetable_budget_names_the_closest_ratio() -> None:
    fits = laws()
    with pytest.raises(UserError, match=r"closest: replay 0.5, where general rises"):
        recommend(fits, BASE, Budget(0.0), ["general"], RATIOS[:3] + [0.5])
    # The fitted general loss at replay 0.5 is 0.6 * 0.125 + 2.95 - 3.0 = +0.025 over the base.
    with pytest.raises(UserError, match=r"\+0.0250"):
        recommend(fits, BASE, Budget(0.01), ["general"], RATIOS)


@pytest.mark.parametrize("text", ["x", "-1", "nan", "%"])
def test_bad_budgets_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="--budget"):
        parse_budget(text)


def test_budget_forms() -> None:
    assert parse_budget("0.05") == Budget(0.05, False)
    assert parse_budget("2%") == Budget(0.02, True)
    assert parse_budget("2%").nats(3.0) == pytest.approx(0.06)


def test_a_margin_keeps_the_prediction_that_far_below_the_budget() -> None:
    fits = laws()
    plain = recommend(fits, BASE, Budget(0.2), ["general"], RATIOS)
    kept = recommend(fits, BASE, Budget(0.2, margin=0.05), ["general"], RATIOS)
    # general rises 0.6 R^3 - 0.05: within 0.2 - 0.05 when R^3 <= 0.2/0.6.
    assert kept.boundary_ratio == pytest.approx(1 - (0.2 / 0.6) ** (1 / 3), abs=1e-6)
    assert kept.replay_ratio > plain.replay_ratio and kept.predicted_delta["general"] <= 0.15
    # With `rmse`, each retained source's own fit error is the margin.
    noisy = np.array([1 - r for r in RATIOS])
    wobble = np.array([0.01, -0.01, 0.01, -0.01, 0.01])
    fits["general"] = fit_power_law(noisy, 0.6 * noisy**3 + 2.95 + wobble)
    rmse = fits["general"].rmse
    assert rmse is not None and rmse > 0.004
    by_rmse = recommend(fits, BASE, Budget(0.2, margin="rmse"), ["general"], RATIOS)
    by_value = recommend(fits, BASE, Budget(0.2, margin=rmse), ["general"], RATIOS)
    assert by_rmse.replay_ratio == by_value.replay_ratio
    assert by_rmse.predicted_delta["general"] <= 0.2 - rmse + 1e-9
    with pytest.raises(UserError, match="less a margin of 0.2000"):
        recommend(fits, BASE, Budget(0.2, margin=0.2), ["general"], RATIOS)


@pytest.mark.parametrize("text", ["-0.1", "big", "nan"])
def test_bad_margins_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="--margin"):
        parse_margin(text)
    assert parse_margin("rmse") == "rmse" and parse_margin("0.01") == 0.01 and parse_margin(None) is None
