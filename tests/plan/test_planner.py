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
