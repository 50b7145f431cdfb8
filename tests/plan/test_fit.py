"""The power-law fits recover known laws, and say so when they cannot fit."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.plan.fit import EXPONENT_BOUNDS, fit_power_law, fit_two_term

SHARES = np.array([0.5, 0.75, 0.9, 0.95, 1.0])  # domain shares of replay ratios 0.5 .. 0


@pytest.mark.parametrize(
    "a, s, b",
    [
        (0.8, 2.5, 3.1),  # a retained loss that rises with the domain share
        (-0.6, 0.7, 2.2),  # a target loss that falls with it
        (1.5, 6.0, 4.0),  # strong curvature near R = 1
        (0.05, 1.2, 3.0),  # a small effect on a large loss
    ],
)
def test_recovers_a_known_law_within_two_percent(a: float, s: float, b: float) -> None:
    fit = fit_power_law(SHARES, a * SHARES**s + b)
    assert fit.converged, fit.message
    assert fit.law.a == pytest.approx(a, rel=0.02)
    assert fit.law.s == pytest.approx(s, rel=0.02)
    assert fit.law.b == pytest.approx(b, rel=0.02)
    assert fit.rmse < 1e-9 and fit.r2 == pytest.approx(1.0)


def test_recovers_a_known_law_from_noisy_points_within_two_percent() -> None:
    rng = np.random.default_rng(0)
    shares = np.linspace(0.3, 1.0, 15)
    y = 0.9 * shares**2.0 + 3.0
    noisy = y + rng.normal(0, 1e-5, size=y.shape)
    fit = fit_power_law(shares, noisy)
    assert fit.converged
    assert (fit.law.a, fit.law.s, fit.law.b) == pytest.approx((0.9, 2.0, 3.0), rel=0.02)
    assert fit.rmse == pytest.approx(1e-5, rel=0.5)


def test_two_term_form_recovers_a_rise_then_fall() -> None:
    x = np.linspace(0.1, 1.0, 10)
    y = 0.5 * x**0.3 - 0.2 * x**1.5 + 0.01
    fit = fit_two_term(x, y)
    assert fit.converged, fit.message
    law = fit.law
    assert (law.a, law.s, law.a2, law.s2, law.b) == pytest.approx((0.5, 0.3, -0.2, 1.5, 0.01), rel=0.02)


def test_too_few_points_do_not_converge() -> None:
    fit = fit_power_law([0.5, 1.0], [3.0, 3.5])
    assert not fit.converged and "at least 3" in fit.message and fit.law is None
    assert not fit_two_term([0.2, 0.4, 0.6, 0.8], [1, 2, 3, 4]).converged


def test_points_off_the_form_say_so_instead_of_fitting() -> None:
    # Up, down, up: no a * x^s + b through these; the exponent runs to a bound.
    fit = fit_power_law([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [3.0, 3.4, 3.0, 3.4, 3.0, 3.4])
    assert not fit.converged
    assert fit.law is None and fit.message


def test_exponent_on_its_bound_is_not_converged() -> None:
    lo, hi = EXPONENT_BOUNDS
    shares = np.array([0.5, 0.7, 0.8, 0.9, 1.0])
    fit = fit_power_law(shares, shares ** (hi * 2) + 1.0)  # steeper than the bound allows
    assert not fit.converged and "bound" in fit.message


def test_a_flat_curve_is_a_constant_law() -> None:
    fit = fit_power_law(SHARES, np.full(5, 2.5))
    assert fit.converged and fit.law.a == 0 and fit.law(0.7) == pytest.approx(2.5)


def test_a_law_more_concave_than_any_positive_power_gets_a_negative_exponent() -> None:
    # A retained loss that rises ever more slowly as the domain share grows (the demo base's).
    fit = fit_power_law(SHARES, -0.2 * SHARES**-1.2 + 3.3)
    assert fit.converged, fit.message
    assert (fit.law.a, fit.law.s, fit.law.b) == pytest.approx((-0.2, -1.2, 3.3), rel=0.02)


def test_two_term_form_with_a_fading_spike_then_a_slow_rise() -> None:
    # A retained loss right after a re-warm: a spike that fades, then a slow rise.
    x = np.linspace(0.125, 1.0, 8)
    y = 0.05 * x**-1.5 + 0.1 * x**0.5 + 0.02
    fit = fit_two_term(x, y)
    assert fit.converged, fit.message
    law = fit.law
    assert (law.a, law.s, law.a2, law.s2, law.b) == pytest.approx((0.05, -1.5, 0.1, 0.5, 0.02), rel=0.02)
