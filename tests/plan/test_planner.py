"""The plan from proxy measurements: what a fit that does not converge does to the recommendation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgetless.plan.planner import analyse
from forgetless.plan.proxy import PlanSetup, ProxyResult
from forgetless.plan.recommend import Budget

RATIOS = (0.0, 0.05, 0.1, 0.25, 0.5)
BASE = {"general": 3.0, "code": 4.0}
ZIGZAG = [3.4, 3.0, 3.4, 3.0, 3.4]  # no a R^s + b through these


def proxies(general: list[float], code: list[float]) -> list[ProxyResult]:
    out = []
    for ratio, g, c in zip(RATIOS, general, code, strict=True):
        final = {"general": g, "code": c}
        curve = [(t, {n: BASE[n] + (v - BASE[n]) * t / 4 for n, v in final.items()}) for t in (1, 2, 3, 4)]
        out.append(ProxyResult(ratio, Path(f"replay-{ratio:g}"), dict(BASE), final, curve))
    return out


SETUP = PlanSetup("code", RATIOS, 4, 32, ("general",), ("code",), ("general",), evals=4)
ON_LAW_GENERAL = [0.6 * (1 - r) ** 3 + 2.95 for r in RATIOS]


def test_a_retained_fit_that_does_not_converge_gives_no_recommendation() -> None:
    plan = analyse(proxies(ZIGZAG, [3.6] * 5), SETUP, Budget(0.2))
    assert plan["recommendation"] is None
    assert "the fit of general's loss did not converge" in plan["message"]


def test_a_target_fit_that_does_not_converge_is_interpolated_and_said() -> None:
    code = [3.5, 3.6, 3.5, 3.6, 3.5]
    plan = analyse(proxies(ON_LAW_GENERAL, code), SETUP, Budget(0.2))
    rec = plan["recommendation"]
    assert rec is not None and "the fit of code's loss did not converge" in plan["message"]
    assert rec["predicted_by"] == {
        "general": "fit",
        "code": "linear interpolation between the measured ratios (the fit did not converge)",
    }
    assert rec["predicted_loss"]["code"] == pytest.approx(np.interp(rec["replay_ratio"], RATIOS, code))
    assert rec["predicted_delta"]["general"] <= 0.2


CURVE_RATIOS = (0.0, 0.25, 0.5)


def curved_proxies(points: int) -> list[ProxyResult]:
    """Proxies of 8 units of tokens whose increments follow known laws in x = tokens / 8: general
    rises, then falls (two terms), code falls (one term), each the more as the replay ratio is low."""
    out = []
    for ratio in CURVE_RATIOS:
        share = 1 - ratio

        def delta(name: str, x: float, share: float = share) -> float:
            if name == "general":
                return share**2 * (0.40 * x**0.5 - 0.15 * x**1.2) + 0.01
            return -0.4 * share * x**0.4

        ts = np.linspace(8 / points, 8, points)
        curve = [(float(t), {n: BASE[n] + delta(n, t / 8) for n in BASE}) for t in ts]
        out.append(ProxyResult(ratio, Path(f"replay-{ratio:g}"), dict(BASE), curve[-1][1], curve))
    return out


def test_the_prediction_at_the_stage_extends_the_curves_along_the_runs() -> None:
    setup = PlanSetup("code", CURVE_RATIOS, 8, 32, ("general",), ("code",), ("general",), evals=8)
    plan = analyse(curved_proxies(8), setup, Budget(0.2))
    at = plan["at_stage"]
    assert at["predicted_at_tokens"] == 32 and at["extrapolation_factor"] == pytest.approx(4.0)
    for ratio in CURVE_RATIOS:
        share = 1 - ratio
        general = BASE["general"] + share**2 * (0.40 * 4**0.5 - 0.15 * 4**1.2) + 0.01
        code = BASE["code"] - 0.4 * share * 4**0.4
        assert at["predicted_loss"][f"{ratio:g}"]["general"] == pytest.approx(general, abs=2e-3)
        assert at["predicted_loss"][f"{ratio:g}"]["code"] == pytest.approx(code, rel=1e-4)
        check = at["extrapolation_checks"][f"{ratio:g}"]["code"]
        assert check["evaluations"] == 6 and abs(check["error"]) < 1e-4
    # At 4x the proxy, general has turned down: even no replay stays within the budget there.
    assert at["message"] == "converged" and at["recommendation"]["replay_ratio"] == 0.0
    assert at["recommendation"]["predicted_delta"]["general"] == pytest.approx(0.018, abs=2e-3)
    assert plan["recommendation"]["replay_ratio"] > 0  # while at the proxy's length it needs replay


def test_too_few_evaluations_for_the_curves_give_no_prediction_at_the_stage() -> None:
    setup = PlanSetup("code", CURVE_RATIOS, 8, 32, ("general",), ("code",), ("general",), evals=4)
    at = analyse(curved_proxies(4), setup, Budget(0.2))["at_stage"]
    assert at["recommendation"] is None and "needs at least 6 distinct points" in at["message"]


def test_a_curve_that_extends_to_an_impossible_loss_gives_no_prediction_at_the_stage() -> None:
    """A steep curve fits its points, but 4x further out its power law predicts a negative loss."""
    out = []
    for ratio in CURVE_RATIOS:
        share = 1 - ratio
        ts = np.linspace(1, 8, 8)
        curve = [
            (
                float(t),
                {
                    "general": BASE["general"] + 0.01 + share * 0.05 * (t / 8) ** 0.5,
                    "code": BASE["code"] - 1.5 * share * (t / 8) ** 3,
                },
            )
            for t in ts
        ]
        out.append(ProxyResult(ratio, Path(f"replay-{ratio:g}"), dict(BASE), curve[-1][1], curve))
    setup = PlanSetup("code", CURVE_RATIOS, 8, 32, ("general",), ("code",), ("general",), evals=8)
    at = analyse(out, setup, Budget(0.2))["at_stage"]
    # The code curve reaches 4 - 1.5 * 64 < 0 at 4x: no prediction there, and no law fitted on it.
    assert at["predicted_loss"]["0"]["code"] is None
    assert at["predicted_loss"]["0"]["general"] == pytest.approx(BASE["general"] + 0.01 + 0.05 * 2, abs=1e-3)
    assert "code" not in at["fits"]
