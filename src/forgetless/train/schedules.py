"""Learning-rate schedules: pure functions of the optimizer step within one stage.

A stage of `total_steps` optimizer steps is cut into phases at whole steps, each phase a half-open
range `[start, end)` of 0-based step indices. Phase boundaries are fractions of the stage
(`ScheduleConfig.warmup`, `decay`, `cooldown`, `anneal`) rounded to the nearest step.

One convention covers every kind: the LR used by step `s` is the continuous schedule of the
literature evaluated at `t = s + 1`, the number of steps done once that update is applied. So

- warmup step `s` uses `peak_lr * (s + 1) / warmup_steps`: step 0 is not a wasted zero-LR step and
  the last warmup step is exactly at the peak;
- every decay (cosine, wsd, cooldown, anneal) reaches its end value exactly on its last step, and
  the last step of a stage uses the stage's final LR;
- a phase of one step is valid (it jumps to its end value), so stages of 1 or 2 steps never divide
  by zero; a final decay or anneal with a non-zero fraction gets at least one step and earlier
  phases give way to it, so a tiny stage still ends at its final LR;
- with `warmup = 0`, a decay that starts the stage begins one step into its curve, just below its
  start value (for a 1000-step cosine, about 2e-6 of the peak below it).

The formulas (Ibrahim et al. 2024, "Simple and Scalable Strategies to Continually Pre-train Large
Language Models", TMLR, arXiv 2403.08763; and for the infinite schedule Singh et al. 2025, "Beyond
Cosine Decay", CoLLAs 2025), with τ ∈ (0, 1] the progress through the phase:

- cosine:   η = η_min + (η_max − η_min)/2 · (cos(π·τ) + 1),  η_min = final_lr_ratio · η_max
- wsd:      η_max through the stable phase, then over the final `decay` fraction to η_min with
            linear (η_min + (η_max − η_min)(1 − τ)), cosine (as above) or
            1-sqrt (η_min + (η_max − η_min)(1 − √τ))
- infinite: cooldown from η_max to η_const ending at fraction `cooldown`: cosine
            (η_const + (η_max − η_const)/2 · (1 + cos(π·τ))), inv-sqrt
            (η_max + (η_const − η_max)·h(τ)/h(1), h(x) = 1/√(1 + αx) − 1, α = 10) or linear
            (η_max − (η_max − η_const)·τ); then constant η_const; then over the final `anneal`
            fraction the exponential anneal η_const · (η_min/η_const)^τ (the authors' equation (4),
            not the `η_min + (η_const − η_min)·exp(−t/τ)` variants found elsewhere).
            η_const defaults to 0.55 · η_max and η_min to 0.1 · η_max. With `warmup = cooldown = 0`
            the stage starts at η_const with no re-warming (continuing from a previous stage's
            constant phase); with `anneal = 0` it stays at η_const to the end (open-ended).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forgetless.config import ScheduleConfig
from forgetless.errors import UserError

INV_SQRT_ALPHA = 10.0
"""Timescale α of the inverse-square-root cooldown, as in the infinite schedule's reference code."""

DEFAULT_CONST_LR_RATIO = 0.55
DEFAULT_MIN_LR_RATIO = 0.1


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule: optimizer steps `start <= step < end` of the stage."""

    name: str  # warmup | stable | decay | cooldown | constant | anneal
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def const_lr(schedule: ScheduleConfig) -> float:
    """The infinite schedule's constant-phase LR (default 0.55 x peak_lr)."""
    if schedule.const_lr is not None:
        return schedule.const_lr
    return DEFAULT_CONST_LR_RATIO * schedule.peak_lr


def min_lr(schedule: ScheduleConfig) -> float:
    """The LR a schedule ends at: η_min of cosine, wsd and infinite (η_const if `anneal = 0`); constant: the peak."""
    if schedule.kind in ("cosine", "wsd"):
        return schedule.final_lr_ratio * schedule.peak_lr
    if schedule.kind == "infinite":
        if schedule.anneal == 0:
            return const_lr(schedule)
        return schedule.min_lr if schedule.min_lr is not None else DEFAULT_MIN_LR_RATIO * schedule.peak_lr
    return schedule.peak_lr


def schedule_phases(schedule: ScheduleConfig, total_steps: int) -> list[Phase]:
    """The non-empty phases of a stage of `total_steps` optimizer steps, in order, covering it all.

    Names: constant -> warmup, stable; cosine -> warmup, decay; wsd -> warmup, stable, decay;
    infinite -> warmup, cooldown, constant, anneal. The loop can use this to find, for example,
    where the infinite schedule's anneal starts (the checkpoint to continue from is the one before).
    """
    if total_steps < 1:
        raise ValueError(f"a stage needs at least one optimizer step, got total_steps={total_steps}")
    kind = schedule.kind
    # Boundaries are placed from the end of the stage backwards: a final decay or anneal with a
    # non-zero fraction keeps at least one step, so even a tiny stage ends at its final LR.
    if kind == "constant":
        warmup_end = _at(schedule.warmup, total_steps)
        bounds = [("warmup", warmup_end), ("stable", total_steps)]
    elif kind == "cosine":
        warmup_end = _at(schedule.warmup, total_steps)
        bounds = [("warmup", warmup_end), ("decay", total_steps)]
    elif kind == "wsd":
        decay_start = total_steps - _final_steps(schedule.decay, total_steps)
        warmup_end = min(_at(schedule.warmup, total_steps), decay_start)
        bounds = [("warmup", warmup_end), ("stable", decay_start), ("decay", total_steps)]
    elif kind == "infinite":
        anneal_start = total_steps - _final_steps(schedule.anneal, total_steps)
        cooldown_end = min(_at(schedule.cooldown, total_steps), anneal_start)
        warmup_end = min(_at(schedule.warmup, total_steps), cooldown_end)
        bounds = [
            ("warmup", warmup_end),
            ("cooldown", cooldown_end),
            ("constant", anneal_start),
            ("anneal", total_steps),
        ]
    else:  # pragma: no cover - the config's Literal rules this out
        raise ValueError(f"unknown schedule kind {kind!r}")
    phases = []
    start = 0
    for name, end in bounds:
        if end > start:
            phases.append(Phase(name, start, end))
            start = end
    return phases


def learning_rate(schedule: ScheduleConfig, step: int, total_steps: int) -> float:
    """The LR for optimizer step `step` (0-based) of a stage of `total_steps` optimizer steps.

    Pure: depends only on its arguments, so resuming a stage at any step gives the same LR.
    """
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside a stage of {total_steps} steps")
    for phase in schedule_phases(schedule, total_steps):
        if phase.start <= step < phase.end:
            return _lr_in_phase(schedule, phase, step)
    raise AssertionError("phases cover the stage")  # pragma: no cover


def schedule_points(schedule: ScheduleConfig, total_steps: int) -> list[float]:
    """The LR of every optimizer step of a stage, in order (for plots and reports)."""
    phases = schedule_phases(schedule, total_steps)
    return [_lr_in_phase(schedule, phase, s) for phase in phases for s in range(phase.start, phase.end)]


def _at(fraction: float, total_steps: int) -> int:
    """A fraction of the stage as a whole step index, rounded half up, within [0, total_steps]."""
    # The 1e-9 absorbs float noise such as 0.35 * 10 = 3.4999999999999996.
    return min(total_steps, max(0, math.floor(fraction * total_steps + 0.5 + 1e-9)))


def _final_steps(fraction: float, total_steps: int) -> int:
    """Steps in a final phase of `fraction` of the stage: at least one when the fraction is > 0."""
    return max(1, _at(fraction, total_steps)) if fraction > 0 else 0


def _lr_in_phase(schedule: ScheduleConfig, phase: Phase, step: int) -> float:
    peak = schedule.peak_lr
    # Progress through the phase at t = step + 1: 1/len on its first step, exactly 1 on its last.
    tau = (step + 1 - phase.start) / len(phase)
    if phase.name == "warmup":
        return peak * tau
    if phase.name == "stable":
        return peak
    if phase.name == "decay":
        shape = "cosine" if schedule.kind == "cosine" else schedule.decay_shape
        return _decay(shape, peak, min_lr(schedule), tau)
    if phase.name == "cooldown":
        return _cooldown(schedule.cooldown_shape, peak, const_lr(schedule), tau)
    if phase.name == "constant":
        return const_lr(schedule)
    if phase.name == "anneal":
        start_lr, end_lr = const_lr(schedule), min_lr(schedule)
        if end_lr <= 0:
            raise UserError(
                "schedule.min_lr: the infinite schedule's exponential anneal needs min_lr > 0 "
                f"(got {end_lr}); set min_lr to a small positive LR or anneal: 0"
            )
        return start_lr * (end_lr / start_lr) ** tau
    raise AssertionError(f"unknown phase {phase.name!r}")  # pragma: no cover


def _decay(shape: str, start_lr: float, end_lr: float, tau: float) -> float:
    """From `start_lr` at τ = 0 to `end_lr` at τ = 1."""
    if shape == "linear":
        fraction = 1.0 - tau
    elif shape == "cosine":
        fraction = 0.5 * (1.0 + math.cos(math.pi * tau))
    elif shape == "1-sqrt":
        fraction = 1.0 - math.sqrt(tau)
    else:  # pragma: no cover - the config's Literal rules this out
        raise ValueError(f"unknown decay shape {shape!r}")
    return end_lr + (start_lr - end_lr) * fraction


def _cooldown(shape: str, peak: float, constant: float, tau: float) -> float:
    """The infinite schedule's cooldown from `peak` (τ = 0) to `constant` (τ = 1)."""
    if shape == "inv-sqrt":

        def h(x: float) -> float:
            return 1.0 / math.sqrt(1.0 + INV_SQRT_ALPHA * x) - 1.0

        return peak + (constant - peak) * h(tau) / h(1.0)
    if shape == "linear":
        return peak - (peak - constant) * tau
    return _decay(shape, peak, constant, tau)
