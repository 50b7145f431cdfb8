"""The recommendation of a plan: the replay ratio that keeps forgetting within a budget.

Following the critical-mixture-ratio law (Gu et al., EMNLP 2024, arXiv:2407.17467), with R the domain share
of the stage's tokens (R = 1 - replay ratio):

- each evaluated source's held-out loss at the end of the stage is fitted as `L(R) = a * R**s + b`
  over the proxy runs (`forgetless.plan.fit`);
- a ratio is *acceptable* when, for every retained source j, the predicted rise over the base model
  `L_j(R) - L_j(base)` is at most the budget `eps_j` (nats/token, or a fraction of j's base loss);
- a measured ratio is *feasible* (the paper's shortcut) when it is acceptable and each retained
  loss has passed its peak before the end of the proxy run;
- the recommendation is the largest acceptable domain share within the measured range, i.e. the
  least replay that keeps every retained source within its budget: the least cost to the domain
  (the targets' losses fall as their share grows). It is monotone in the budget: a larger budget
  never recommends more replay;
- a margin (`--margin`: nats/token, or `rmse`, each retained fit's own root mean square residual)
  is kept below the budget: a source's predicted rise must stay within budget minus margin, room
  for the fit's error and run-to-run spread.

The recommended ratio is rounded up to `RATIO_STEP`, so rounding never spends more than the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from forgetless.errors import UserError
from forgetless.plan.fit import Fit

RATIO_STEP = 0.001
GRID = 2001  # points of the dense grid over the measured range of R


@dataclass(frozen=True)
class Budget:
    """A bound on the rise of each retained source's loss: nats/token, or a fraction of its base
    loss; less a margin (nats/token, or "rmse": each fit's own) that predictions must keep free."""

    value: float
    relative: bool = False
    margin: float | str | None = None

    def nats(self, base_loss: float) -> float:
        return self.value * base_loss if self.relative else self.value

    def margin_of(self, fit: Fit) -> float:
        if self.margin == "rmse":
            return fit.rmse or 0.0
        return float(self.margin or 0.0)

    def limit(self, base_loss: float, fit: Fit) -> float:
        """The largest predicted rise allowed for a source with this base loss and fit."""
        return self.nats(base_loss) - self.margin_of(fit)

    def describe(self) -> str:
        text = f"{self.value * 100:g}% of the base loss" if self.relative else f"{self.value:g} nats/token"
        if self.margin == "rmse":
            return text + " less each fit's rmse"
        return text + (f" less a margin of {self.margin:g}" if self.margin else "")

    def as_dict(self) -> dict:
        return {"value": self.value, "relative": self.relative, "margin": self.margin, "text": self.describe()}


def parse_budget(text: str) -> Budget:
    """`0.05` (nats/token) or `2%` (of each retained source's base loss); raise `UserError` otherwise."""
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise UserError(f"--budget {text}: expected nats/token such as 0.05, or a share such as 2%") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"--budget {text}: must be a non-negative number")
    return Budget(value / 100 if relative else value, relative)


def parse_margin(text: str | None) -> float | str | None:
    """`--margin`: nats/token such as 0.01, or `rmse`; None when not given."""
    if text is None:
        return None
    raw = text.strip()
    if raw == "rmse":
        return "rmse"
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"--margin {text}: expected nats/token such as 0.01, or rmse (each fit's own)") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"--margin {text}: must be a non-negative number")
    return value


@dataclass(frozen=True)
class Recommendation:
    replay_ratio: float  # rounded up to RATIO_STEP
    domain_share: float  # 1 - replay_ratio
    boundary_ratio: float  # the exact least replay ratio on the fitted curves (before rounding)
    predicted_loss: dict[str, float]  # every fitted source at the recommended ratio
    predicted_delta: dict[str, float]  # predicted loss minus base loss (rise: forgetting; fall: learning)
    limiting: str  # the retained source whose budget decides the ratio
    at_range_end: bool  # the least replay measured already meets the budget

    def as_dict(self) -> dict:
        return {
            "replay_ratio": self.replay_ratio,
            "domain_share": self.domain_share,
            "boundary_ratio": self.boundary_ratio,
            "predicted_loss": self.predicted_loss,
            "predicted_delta": self.predicted_delta,
            "limiting_source": self.limiting,
            "at_range_end": self.at_range_end,
        }


def acceptable_mask(
    shares: np.ndarray, fits: dict[str, Fit], base: dict[str, float], budget: Budget, retained: list[str]
) -> np.ndarray:
    """Which domain shares keep every retained source within its budget (by the fitted curves)."""
    ok = np.ones(shares.shape, dtype=bool)
    for name in retained:
        law = fits[name].law
        assert law is not None
        ok &= np.asarray(law(shares)) - base[name] <= budget.limit(base[name], fits[name]) + 1e-12
    return ok


def recommend(
    fits: dict[str, Fit],
    base: dict[str, float],
    budget: Budget,
    retained: list[str],
    ratios: list[float],
    measured: dict[float, dict[str, float]] | None = None,
) -> Recommendation:
    """The least replay ratio within `[min(ratios), max(ratios)]` whose predicted rise of every
    retained source is within `budget`. Raise `UserError` (naming the closest ratio) when none is."""
    for name in retained:
        if not fits[name].converged:
            raise ValueError(f"the fit of {name} did not converge")
    lo_share, hi_share = 1 - max(ratios), 1 - min(ratios)
    shares = np.linspace(lo_share, hi_share, GRID)

    def excess(share: float) -> float:  # > 0: over budget
        return max(
            float(fits[j].law(share)) - base[j] - budget.limit(base[j], fits[j])  # type: ignore[misc]
            for j in retained
        )

    ok = acceptable_mask(shares, fits, base, budget, retained)
    if not ok.any():
        raise UserError(_unmeetable(fits, base, budget, retained, ratios, measured))
    best = int(np.flatnonzero(ok)[-1])
    share = float(shares[best])
    if best < GRID - 1:  # refine the boundary between the last acceptable and the next grid point
        lo, hi = share, float(shares[best + 1])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if excess(mid) <= 1e-12 else (lo, mid)
        share = lo
    boundary = 1 - share
    replay = min(max(ratios), math.ceil(round(boundary / RATIO_STEP, 9)) * RATIO_STEP)
    replay = round(max(replay, min(ratios)), 6)
    predicted = {name: float(fit.law(1 - replay)) for name, fit in fits.items() if fit.law is not None}
    limiting = max(retained, key=lambda j: float(fits[j].law(share)) - base[j] - budget.limit(base[j], fits[j]))  # type: ignore[misc]
    return Recommendation(
        replay_ratio=replay,
        domain_share=round(1 - replay, 6),
        boundary_ratio=boundary,
        predicted_loss=predicted,
        predicted_delta={name: value - base[name] for name, value in predicted.items() if name in base},
        limiting=limiting,
        at_range_end=best == GRID - 1,
    )


def closest_ratio(
    fits: dict[str, Fit], base: dict[str, float], budget: Budget, retained: list[str], ratios: list[float]
) -> dict:
    """The measured ratio whose predicted rise comes closest to the budget: `replay_ratio`, the
    retained `source` most over it, its predicted `rise`, its `budget` and the `limit` the rise had
    to stay within (the budget less the margin; nats/token)."""

    def worst(ratio: float) -> tuple[float, str]:
        rises = {j: float(fits[j].law(1 - ratio)) - base[j] for j in retained}  # type: ignore[misc]
        name = max(rises, key=lambda j: rises[j] - budget.limit(base[j], fits[j]))
        return rises[name] - budget.limit(base[name], fits[name]), name

    closest = min(ratios, key=lambda r: worst(r)[0])
    over, name = worst(closest)
    limit = budget.limit(base[name], fits[name])
    return {
        "replay_ratio": closest,
        "source": name,
        "rise": over + limit,
        "budget": budget.nats(base[name]),
        "limit": limit,
    }


def _unmeetable(
    fits: dict[str, Fit],
    base: dict[str, float],
    budget: Budget,
    retained: list[str],
    ratios: list[float],
    measured: dict[float, dict[str, float]] | None,
) -> str:
    found = closest_ratio(fits, base, budget, retained, ratios)
    closest, name, rise, limit = found["replay_ratio"], found["source"], found["rise"], found["limit"]
    seen = ""
    if measured and closest in measured and name in measured[closest]:
        seen = f", measured {measured[closest][name] - base[name]:+.4f}"
    return (
        f"--budget {budget.describe()}: no replay ratio in {min(ratios):g}..{max(ratios):g} keeps every retained "
        f"source within it; closest: replay {closest:g}, where {name} rises {rise:+.4f} nats/token (predicted"
        f"{seen}) against a budget of {budget.nats(base[name]):.4f}"
        + (f" less a margin of {budget.nats(base[name]) - limit:.4f}" if limit != budget.nats(base[name]) else "")
        + "; raise --budget or plan higher --ratios"
    )
