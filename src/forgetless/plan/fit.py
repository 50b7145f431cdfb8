"""Power-law fits of the critical-mixture-ratio law (Gu et al.,
EMNLP 2024, arXiv:2407.17467; the fitted forms as docs/plan.md gives them).

Two forms, both fitted by least squares with `scipy.optimize` (the `plan` extra), with bounded
exponents and several starting points, keeping the start with the smallest residual:

- `fit_power_law`: `y = a * x**s + b`, the loss against the domain share R at a fixed token count
  (and the one-term increment-vs-tokens curve of the domain loss);
- `fit_two_term`: `y = a1 * x**s1 + a2 * x**s2 + b`, the increment-vs-tokens curve of a retained
  loss, which rises and then falls.

A fit either converges, or says why not (`Fit.converged`, `Fit.message`): the optimizer failed, an
exponent ended on its bound (the points do not follow the form), or there are too few points. The
caller must not use a fit that did not converge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgetless.errors import UserError

EXPONENT_BOUNDS = (0.05, 16.0)
"""Bounds of every exponent's magnitude; an exponent that ends on a bound means the form does not fit.
`fit_power_law` also tries negative exponents in the mirrored range (a law concave beyond any
positive power, such as a loss that rises ever more slowly as the domain share grows); exponents
near 0, where the form degenerates into a constant, are outside both."""

STARTS = (0.1, 0.3, 0.6, 1.0, 1.7, 3.0, 5.0, 9.0)
"""Starting exponents: a spread over the bounds, in log scale."""

MAX_EVALUATIONS = 2000
"""Function evaluations per start (the Jacobians are analytic)."""

MAX_EVALUATIONS_TWO_TERM = 500
"""Per start of the two-term form, whose many starts include ones that cannot fit: a start that
fits converges in a few hundred evaluations, and one that runs out is simply not the best."""


def scipy_optimize() -> Any:
    """`scipy.optimize`, or a one-line `UserError` saying how to install it."""
    try:
        import scipy.optimize
    except ImportError:  # pragma: no cover - the tests run with the extra installed
        raise UserError("forgetless plan needs scipy for its fits: pip install 'forgetless[plan]'") from None
    return scipy.optimize


@dataclass(frozen=True)
class PowerLaw:
    """`y = a * x**s + b`, plus `a2 * x**s2` when `a2` is set (the two-term form)."""

    a: float
    s: float
    b: float
    a2: float = 0.0
    s2: float = 1.0

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        value = self.a * x**self.s + self.a2 * x**self.s2 + self.b
        return float(value) if value.ndim == 0 else value

    def as_dict(self) -> dict[str, float]:
        out = {"a": self.a, "s": self.s, "b": self.b}
        if self.a2 != 0.0:
            out.update(a2=self.a2, s2=self.s2)
        return out


@dataclass(frozen=True)
class Fit:
    """The result of a fit: the law (None when it did not converge) and how well it fits its points."""

    form: str
    converged: bool
    message: str
    law: PowerLaw | None = None
    rmse: float | None = None  # root mean square residual, in the units of y
    r2: float | None = None  # coefficient of determination (None when y is constant)
    max_relative_error: float | None = None  # max |residual| / |y| over the points
    points: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "form": self.form,
            "converged": self.converged,
            "message": self.message,
            "params": self.law.as_dict() if self.law is not None else None,
            "rmse": self.rmse,
            "r2": self.r2,
            "max_relative_error": self.max_relative_error,
            "points": [[x, y] for x, y in self.points],
        }


def fit_power_law(
    x: Sequence[float], y: Sequence[float], *, bounds: tuple[float, float] = EXPONENT_BOUNDS
) -> Fit:
    """Fit `y = a * x**s + b` (x > 0) with `s` in `bounds` or in its mirror `-bounds` (whichever
    leaves the smaller residual); needs at least three distinct x."""
    xs, ys, problem = _points(x, y, minimum=3)
    form = "a*x^s+b"
    if problem:
        return Fit(form, False, problem, points=_pairs(xs, ys))
    if _flat(ys):
        return _scored(form, PowerLaw(0.0, 1.0, float(np.mean(ys))), xs, ys, "flat: y does not depend on x")
    opt = scipy_optimize()
    lo, hi = bounds

    logs = np.log(xs)

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] * xs ** p[1] + p[2] - ys

    def jacobian(p: np.ndarray) -> np.ndarray:
        power = xs ** p[1]
        return np.stack([power, p[0] * power * logs, np.ones_like(xs)], axis=1)

    best, best_range = None, bounds
    for sign in (1.0, -1.0):
        low, high = (lo, hi) if sign > 0 else (-hi, -lo)
        for start in STARTS:
            s0 = sign * min(max(start, lo * 1.01), hi * 0.99)
            a0, b0 = _linear(xs**s0, ys)  # a and b are linear given s: start from their best values
            result = opt.least_squares(
                residuals,
                [a0, s0, b0],
                jac=jacobian,
                bounds=([-np.inf, low, -np.inf], [np.inf, high, np.inf]),
                x_scale="jac",
                xtol=1e-12,
                ftol=1e-12,
                gtol=1e-12,
                max_nfev=MAX_EVALUATIONS,
            )
            if best is None or result.cost < best.cost * (1 - 1e-9):
                best, best_range = result, (low, high)
    assert best is not None
    a, s, b = (float(v) for v in best.x)
    law = PowerLaw(a, s, b)
    return _judge(form, best, law, xs, ys, {"s": (s, best_range)})


def fit_two_term(
    x: Sequence[float], y: Sequence[float], *, bounds: tuple[float, float] = EXPONENT_BOUNDS
) -> Fit:
    """Fit `y = a1 * x**s1 + a2 * x**s2 + b` (x > 0, s1 < s2, s2 in `bounds`, s1 in `bounds` or its
    mirror: a first term that fades, e.g. a spike right after the learning rate re-warms); needs at
    least six distinct x (more points than parameters)."""
    xs, ys, problem = _points(x, y, minimum=6)
    form = "a*x^s+a2*x^s2+b"
    if problem:
        return Fit(form, False, problem, points=_pairs(xs, ys))
    if _flat(ys):
        return _scored(form, PowerLaw(0.0, 1.0, float(np.mean(ys))), xs, ys, "flat: y does not depend on x")
    opt = scipy_optimize()
    lo, hi = bounds

    logs = np.log(xs)

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] * xs ** p[1] + p[2] * xs ** p[3] + p[4] - ys

    def jacobian(p: np.ndarray) -> np.ndarray:
        u, v = xs ** p[1], xs ** p[3]
        return np.stack([u, p[0] * u * logs, v, p[2] * v * logs, np.ones_like(xs)], axis=1)

    best, best_first = None, bounds
    starts = STARTS[::2] + STARTS[-1:]  # fewer starts: pairs of them
    pairs = [(s1, s2) for i, s1 in enumerate(starts) for s2 in starts[i + 1 :]]
    pairs += [(-s1, s2) for s1 in starts[1:3] for s2 in starts[:2]]  # a fading first term
    for s1, s2 in pairs:
        first = bounds if s1 > 0 else (-hi, -lo)
        s1c = min(max(s1, first[0] + 0.01 * abs(first[0])), first[1] - 0.01 * abs(first[1]))
        s2c = min(max(s2, lo * 1.01), hi * 0.99)
        a1, a2, b0 = _linear2(xs**s1c, xs**s2c, ys)
        result = opt.least_squares(
            residuals,
            [a1, s1c, a2, s2c, b0],
            jac=jacobian,
            bounds=([-np.inf, first[0], -np.inf, lo, -np.inf], [np.inf, first[1], np.inf, hi, np.inf]),
            x_scale="jac",
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
            max_nfev=MAX_EVALUATIONS_TWO_TERM,
        )
        if best is None or result.cost < best.cost * (1 - 1e-9):
            best, best_first = result, first
    assert best is not None
    a1, s1, a2, s2, b = (float(v) for v in best.x)
    first_range, second_range = best_first, bounds
    if s1 > s2:
        a1, s1, a2, s2 = a2, s2, a1, s1
        first_range, second_range = second_range, first_range
    law = PowerLaw(a1, s1, b, a2, s2)
    return _judge(form, best, law, xs, ys, {"s": (s1, first_range), "s2": (s2, second_range)})


# ---------------------------------------------------------------------------------------------


def _points(x: Sequence[float], y: Sequence[float], minimum: int) -> tuple[np.ndarray, np.ndarray, str]:
    xs = np.asarray(list(x), dtype=np.float64)
    ys = np.asarray(list(y), dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length: {xs.shape} vs {ys.shape}")
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if np.any(xs <= 0):
        raise ValueError("a power law needs x > 0")
    distinct = len(np.unique(xs))
    if distinct < minimum:
        return xs, ys, f"needs at least {minimum} distinct points with finite values, got {distinct}"
    return xs, ys, ""


def _pairs(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in zip(xs, ys, strict=True)]


def _flat(ys: np.ndarray) -> bool:
    return float(np.ptp(ys)) <= 1e-12 * max(1.0, float(np.max(np.abs(ys))))


def _linear(u: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    design = np.stack([u, np.ones_like(u)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, ys, rcond=None)
    return float(a), float(b)


def _linear2(u: np.ndarray, v: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    design = np.stack([u, v, np.ones_like(u)], axis=1)
    (a1, a2, b), *_ = np.linalg.lstsq(design, ys, rcond=None)
    return float(a1), float(a2), float(b)


def _judge(
    form: str,
    result: object,
    law: PowerLaw,
    xs: np.ndarray,
    ys: np.ndarray,
    exponents: dict[str, tuple[float, tuple[float, float]]],
) -> Fit:
    values = [law.a, law.s, law.b, law.a2, law.s2]
    if not getattr(result, "success", False) or not all(math.isfinite(v) for v in values):
        return Fit(
            form,
            False,
            f"the optimizer did not converge: {getattr(result, 'message', '')}",
            points=_pairs(xs, ys),
        )
    for name, (value, (lo, hi)) in exponents.items():
        if value <= lo + 1e-6 * abs(lo) or value >= hi - 1e-6 * abs(hi):
            return Fit(
                form,
                False,
                f"exponent {name} = {value:.4g} ended on its bound [{lo:g}, {hi:g}]: the points do not "
                f"follow {form}",
                points=_pairs(xs, ys),
            )
    return _scored(form, law, xs, ys, "converged")


def _scored(form: str, law: PowerLaw, xs: np.ndarray, ys: np.ndarray, message: str) -> Fit:
    predicted = np.asarray(law(xs), dtype=np.float64)
    residual = predicted - ys
    rmse = float(np.sqrt(np.mean(residual**2)))
    spread = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else None
    scale = np.maximum(np.abs(ys), 1e-12)
    return Fit(
        form,
        True,
        message,
        law=law,
        rmse=rmse,
        r2=r2,
        max_relative_error=float(np.max(np.abs(residual) / scale)),
        points=_pairs(xs, ys),
    )
