"""A loss-driven mixture: the shares of a stage's mix sources from their held-out loss progress.

Skill-It (Chen et al., NeurIPS 2023, arXiv 2307.14430; literature.md §14.1) mixes k training skills
by multiplicative weights: every round, `p ∝ w_init ⊙ exp(η · A · S)`, where S sums each evaluation
skill's validation loss over the last `w` evaluations and A is the skills graph (identity without
one). A stage's `mix_schedule: {kind: loss_driven}` applies the same rule with the *progress* of
each evaluated source as the signal instead of its loss:

    g_j = 100 · (L_j(t - w) - L_j(t)) / L_j(t - w)      the fall of j's held-out loss over the last w
                                                         updates, in percent (since the stage start
                                                         while fewer than w updates were made)
    p_i ∝ m_i · exp(η · Σ_j A_ij g_j)                    m: the stage's `mix` shares (Skill-It's prior)

then every share is raised to at least `min(floor, m_i)` (water-filling: the others scale down in
proportion). Since the progress sums telescope, Skill-It's window sum of per-round changes is the
change over the window. Skill-It feeds the loss itself, so a skill with a high loss gains weight;
here a source whose loss still falls gains share and one whose loss no longer falls loses it, which
is the behaviour a continual-pretraining stage wants from its sources (a plateaued source has
little left to teach). With η = 0 the shares are the stage's `mix`, exactly.

The controller is pure arithmetic on the losses it is given; the training loop evaluates the
held-out losses (`columns`) at the stage start and every `every_tokens`, and the sampler
(`forgetless.data.sampler`) holds the controller and saves its state with its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forgetless.config import LossDrivenMixConfig
from forgetless.errors import UserError

STATE_VERSION = 1


@dataclass(frozen=True)
class MixUpdate:
    """One observation of the controller: the losses it saw and the shares it sets."""

    update: int  # 0 at the stage start, then 1, 2, ...
    weights: dict[str, float]  # share of the new tokens per mix source (sums to 1)
    losses: dict[str, float]  # held-out loss per evaluated source (nats/token)
    progress: dict[str, float]  # g_j: percent fall of the loss over the window

    def record(self) -> dict[str, Any]:
        return {"update": self.update, "weights": self.weights, "loss": self.losses, "progress": self.progress}


class LossDrivenMix:
    """Shares of the stage's mix sources (`rows`) from the held-out losses of `columns`."""

    def __init__(self, config: LossDrivenMixConfig, mix: dict[str, float]) -> None:
        self.config = config
        self.rows = [name for name, w in mix.items() if w > 0]
        total = sum(mix[name] for name in self.rows)
        self.prior = np.array([mix[name] / total for name in self.rows], dtype=np.float64)
        graph = config.graph or {name: {name: 1.0} for name in self.rows}
        self.columns = list(dict.fromkeys(c for name in self.rows for c in graph.get(name, {})))
        self.matrix = np.array(
            [[float(graph.get(name, {}).get(c, 0.0)) for c in self.columns] for name in self.rows],
            dtype=np.float64,
        ).reshape(len(self.rows), len(self.columns))
        self.floors = np.minimum(config.floor, self.prior)
        self.history: list[list[float]] = []  # losses of `columns`: the last `window + 1` observations
        self.updates = 0

    def observe(self, losses: dict[str, float]) -> MixUpdate:
        """Record the held-out losses of `columns` now and return the shares they set (the first
        observation, at the stage start, has no progress yet: the shares are the stage's mix)."""
        missing = [c for c in self.columns if c not in losses]
        if missing:
            raise ValueError(f"the loss-driven mixture needs the held-out losses of {missing}")
        first = not self.history
        self.history.append([float(losses[c]) for c in self.columns])
        self.history = self.history[-(self.config.window + 1) :]
        if not first:
            self.updates += 1
        progress = self.progress()
        weights = self.shares(progress)
        return MixUpdate(
            update=self.updates,
            weights=dict(zip(self.rows, weights.tolist(), strict=True)),
            losses=dict(zip(self.columns, self.history[-1], strict=True)),
            progress=dict(zip(self.columns, progress.tolist(), strict=True)),
        )

    def progress(self) -> np.ndarray:
        """g_j: the percent fall of each column's loss over the window (0 where it is not finite)."""
        before = np.asarray(self.history[0], dtype=np.float64)
        now = np.asarray(self.history[-1], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = 100.0 * (before - now) / before
        return np.where(np.isfinite(g) & (before > 0), g, 0.0)

    def shares(self, progress: np.ndarray) -> np.ndarray:
        """`p ∝ prior ⊙ exp(η A g)`, then each share raised to its floor."""
        if self.config.eta == 0:
            return self.prior.copy()
        logits = np.log(self.prior) + self.config.eta * (self.matrix @ progress)
        p = np.exp(logits - logits.max())
        return _with_floors(p / p.sum(), self.floors)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "rows": self.rows,
            "columns": self.columns,
            "history": self.history,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:  # a checkpoint of the stage written without the schedule
            raise UserError(
                "stages: the checkpoint's stage has no loss-driven mixture state; resume with the config the run "
                "was started with"
            )
        if state.get("version") != STATE_VERSION or state.get("rows") != self.rows or state.get("columns") != self.columns:
            raise UserError(
                "stages: the loss-driven mixture of the checkpoint's stage re-weighted other sources; resume "
                "with the config the run was started with"
            )
        history = [[float(v) for v in row] for row in state["history"]]
        if any(len(row) != len(self.columns) for row in history):
            raise UserError("sampler state: a loss-driven mixture history of the wrong width")
        self.history = history
        self.updates = int(state["updates"])


def _with_floors(p: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """`p` (a distribution) with each share at least its floor: shares below it are set to it and
    the others scaled down in proportion, until none is below (the floors sum to less than 1)."""
    fixed = np.zeros(p.shape, dtype=bool)
    while True:
        free = ~fixed
        q = np.where(fixed, floors, 0.0)
        q[free] = p[free] / p[free].sum() * (1.0 - floors[fixed].sum())
        low = free & (q < floors)
        if not low.any():
            assert math.isclose(float(q.sum()), 1.0, rel_tol=1e-9)
            return q
        fixed |= low
