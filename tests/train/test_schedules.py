"""LR schedules against the literature formulas, computed here directly at every step."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from forgetless.config import ScheduleConfig
from forgetless.train.schedules import Phase, learning_rate, schedule_phases, schedule_points

PEAK = 3e-4
T = 1000  # steps in the stage used for the step-by-step comparisons


def sched(**kwargs) -> ScheduleConfig:
    return ScheduleConfig(peak_lr=PEAK, **kwargs)


def all_lrs(schedule: ScheduleConfig, total: int = T) -> list[float]:
    return [learning_rate(schedule, s, total) for s in range(total)]


def assert_close(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    for s, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == pytest.approx(w, rel=1e-12, abs=1e-15), f"step {s}: {g} != {w}"


# The LR of step s is the continuous schedule at t = s + 1 (see the module docstring).


def test_constant_matches_warmup_then_peak() -> None:
    got = all_lrs(sched(kind="constant", warmup=0.05))
    want = [PEAK * (s + 1) / 50 if s < 50 else PEAK for s in range(T)]
    assert_close(got, want)
    assert got[0] == pytest.approx(PEAK / 50) and got[0] > 0
    assert got[49] == pytest.approx(PEAK)


def test_constant_without_warmup_is_flat() -> None:
    assert set(all_lrs(sched(kind="constant", warmup=0.0), 10)) == {PEAK}


@pytest.mark.parametrize("warmup,final_ratio", [(0.01, 0.1), (0.02, 0.0), (0.0, 0.1), (0.5, 0.3)])
def test_cosine_matches_ibrahim_formula(warmup: float, final_ratio: float) -> None:
    got = all_lrs(sched(kind="cosine", warmup=warmup, final_lr_ratio=final_ratio))
    eta_max, eta_min = PEAK, final_ratio * PEAK
    t_ann, t_end = round(warmup * T), T
    want = []
    for s in range(T):
        t = s + 1
        if t <= t_ann:
            want.append(eta_max * t / t_ann)
        else:
            want.append(
                eta_min + (eta_max - eta_min) / 2 * (math.cos(math.pi * (t - t_ann) / (t_end - t_ann)) + 1)
            )
    assert_close(got, want)
    # Endpoints: the peak at the end of warmup, the final LR on the last step.
    if t_ann:
        assert got[t_ann - 1] == pytest.approx(PEAK)
    assert got[-1] == pytest.approx(eta_min, abs=1e-15)
    assert max(got) <= PEAK * (1 + 1e-12)
    # Rises through warmup, then never rises again.
    assert all(a < b for a, b in zip(got[:t_ann], got[1:t_ann], strict=False))
    assert all(a >= b for a, b in zip(got[t_ann:], got[t_ann + 1 :], strict=False))


def test_cosine_halfway_through_the_decay_is_the_midpoint() -> None:
    got = all_lrs(sched(kind="cosine", warmup=0.0, final_lr_ratio=0.1))
    assert got[T // 2 - 1] == pytest.approx(0.55 * PEAK)  # t = 500 of 1000: cos(π/2) = 0


def _wsd_fraction(shape: str, tau: float) -> float:
    if shape == "linear":
        return 1 - tau
    if shape == "cosine":
        return (1 + math.cos(math.pi * tau)) / 2
    return 1 - math.sqrt(tau)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("warmup,decay", [(0.01, 0.2), (0.0, 0.1), (0.1, 0.9)])
def test_wsd_matches_formula(shape: str, warmup: float, decay: float) -> None:
    final = 0.1 * PEAK
    got = all_lrs(sched(kind="wsd", warmup=warmup, decay=decay, decay_shape=shape, final_lr_ratio=0.1))
    w, d = round(warmup * T), round(decay * T)
    want = []
    for s in range(T):
        t = s + 1
        if t <= w:
            want.append(PEAK * t / w)
        elif t <= T - d:
            want.append(PEAK)
        else:
            want.append(final + (PEAK - final) * _wsd_fraction(shape, (t - (T - d)) / d))
    assert_close(got, want)
    # Phase boundaries: the last stable step is at the peak, the first decay step below it.
    assert got[T - d - 1] == pytest.approx(PEAK)
    assert got[T - d] < PEAK
    assert got[-1] == pytest.approx(final)
    assert all(a >= b for a, b in zip(got[w:], got[w + 1 :], strict=False))


def test_wsd_1_sqrt_drops_faster_than_linear_early_in_the_decay() -> None:
    linear = all_lrs(sched(kind="wsd", warmup=0.0, decay=0.5, decay_shape="linear"))
    one_sqrt = all_lrs(sched(kind="wsd", warmup=0.0, decay=0.5, decay_shape="1-sqrt"))
    assert one_sqrt[600] < linear[600]
    assert one_sqrt[-1] == pytest.approx(linear[-1])


def _h(x: float) -> float:
    return 1 / math.sqrt(1 + 10 * x) - 1


def _infinite_reference(
    warmup: float, cooldown: float, anneal: float, shape: str, eta_const: float, eta_min: float
) -> list[float]:
    """Equations (1)-(4) of the infinite schedule (Singh et al. 2025, "Beyond Cosine Decay"), at t = s + 1."""
    t_w, t_cd, t_ann, t_end = round(warmup * T), round(cooldown * T), round((1 - anneal) * T), T
    out = []
    for s in range(T):
        t = s + 1
        if t <= t_w:
            out.append(PEAK * t / t_w)
        elif t <= t_cd:
            tau = (t - t_w) / (t_cd - t_w)
            if shape == "cosine":
                out.append(eta_const + (PEAK - eta_const) / 2 * (1 + math.cos(math.pi * tau)))
            elif shape == "inv-sqrt":
                out.append(PEAK + (eta_const - PEAK) * _h(tau) / _h(1))
            else:
                out.append(PEAK - (PEAK - eta_const) * tau)
        elif t <= t_ann:
            out.append(eta_const)
        else:
            out.append(eta_const * (eta_min / eta_const) ** ((t - t_ann) / (t_end - t_ann)))
    return out


@pytest.mark.parametrize("shape", ["cosine", "inv-sqrt", "linear"])
def test_infinite_matches_reference_with_defaults(shape: str) -> None:
    s = sched(kind="infinite", warmup=0.01, cooldown=0.3, anneal=0.2, cooldown_shape=shape)
    got = all_lrs(s)
    assert_close(got, _infinite_reference(0.01, 0.3, 0.2, shape, 0.55 * PEAK, 0.1 * PEAK))
    assert got[9] == pytest.approx(PEAK)  # end of warmup
    assert got[299] == pytest.approx(0.55 * PEAK)  # end of cooldown
    assert got[799] == pytest.approx(0.55 * PEAK)  # last constant step
    assert got[-1] == pytest.approx(0.1 * PEAK)
    assert all(a >= b for a, b in zip(got[10:], got[11:], strict=False))


def test_infinite_with_explicit_const_and_min() -> None:
    s = sched(kind="infinite", warmup=0.05, cooldown=0.6, anneal=0.1, const_lr=1e-4, min_lr=3e-6)
    assert_close(all_lrs(s), _infinite_reference(0.05, 0.6, 0.1, "cosine", 1e-4, 3e-6))


def test_infinite_anneal_is_geometric_not_shifted_exponential() -> None:
    # Equation (4) multiplies by the same factor each step; the η_min + (η_const − η_min)·exp(...)
    # variants do not.
    s = sched(kind="infinite", warmup=0.0, cooldown=0.0, anneal=0.5)
    got = all_lrs(s)
    ratios = [b / a for a, b in zip(got[500:], got[501:], strict=False)]
    want = (0.1 / 0.55) ** (1 / 500)
    assert all(r == pytest.approx(want, rel=1e-12) for r in ratios)
    assert got[500] == pytest.approx(0.55 * PEAK * want)


def test_infinite_continual_mode_starts_at_const_without_rewarming() -> None:
    s = sched(kind="infinite", warmup=0.0, cooldown=0.0, anneal=0.2)
    got = all_lrs(s)
    assert got[0] == pytest.approx(0.55 * PEAK)
    assert max(got) == pytest.approx(0.55 * PEAK)
    assert set(got[:800]) == {0.55 * PEAK}
    assert [p.name for p in schedule_phases(s, T)] == ["constant", "anneal"]


def test_infinite_open_ended_when_anneal_is_zero() -> None:
    s = sched(kind="infinite", warmup=0.01, cooldown=0.3, anneal=0.0)
    got = all_lrs(s)
    assert set(got[300:]) == {0.55 * PEAK}
    assert [p.name for p in schedule_phases(s, T)] == ["warmup", "cooldown", "constant"]


def test_infinite_needs_a_positive_min_lr_to_anneal() -> None:
    # The exponential anneal cannot reach zero: the config refuses min_lr = 0 up front.
    with pytest.raises(ValidationError, match="min_lr"):
        sched(kind="infinite", warmup=0.0, cooldown=0.0, anneal=0.5, min_lr=0.0)


def test_phases_of_each_kind() -> None:
    assert schedule_phases(sched(kind="wsd", warmup=0.1, decay=0.2), 100) == [
        Phase("warmup", 0, 10),
        Phase("stable", 10, 80),
        Phase("decay", 80, 100),
    ]
    assert schedule_phases(sched(kind="infinite", warmup=0.05, cooldown=0.3, anneal=0.2), 100) == [
        Phase("warmup", 0, 5),
        Phase("cooldown", 5, 30),
        Phase("constant", 30, 80),
        Phase("anneal", 80, 100),
    ]
    assert schedule_phases(sched(kind="cosine", warmup=0.0), 7) == [Phase("decay", 0, 7)]
    # Fractions round half up to whole steps (0.35 * 10 is 3.4999... in floating point).
    assert schedule_phases(sched(kind="constant", warmup=0.35), 10)[0] == Phase("warmup", 0, 4)


@pytest.mark.parametrize("total", [1, 2, 3, 7, 100, 1001])
@pytest.mark.parametrize(
    "config",
    [
        {"kind": "constant", "warmup": 0.3},
        {"kind": "cosine", "warmup": 0.01},
        {"kind": "cosine", "warmup": 1.0},
        {"kind": "wsd", "warmup": 0.5, "decay": 0.5},
        {"kind": "wsd", "warmup": 0.0, "decay": 1.0, "decay_shape": "1-sqrt"},
        {"kind": "infinite"},
        {"kind": "infinite", "warmup": 0.4, "cooldown": 0.6, "anneal": 0.4, "cooldown_shape": "inv-sqrt"},
        {"kind": "infinite", "warmup": 0.0, "cooldown": 0.0, "anneal": 1.0},
    ],
)
def test_phases_tile_the_stage_and_lrs_stay_in_range(total: int, config: dict) -> None:
    s = sched(**config)
    phases = schedule_phases(s, total)
    assert phases[0].start == 0 and phases[-1].end == total
    assert all(a.end == b.start for a, b in zip(phases, phases[1:], strict=False))
    assert all(len(p) > 0 for p in phases)
    lrs = schedule_points(s, total)
    assert lrs == all_lrs(s, total)
    assert all(0 < lr <= PEAK * (1 + 1e-12) and math.isfinite(lr) for lr in lrs)


@pytest.mark.parametrize(
    "config,last",
    [
        ({"kind": "constant"}, PEAK),
        ({"kind": "cosine", "final_lr_ratio": 0.2}, 0.2 * PEAK),
        ({"kind": "wsd", "final_lr_ratio": 0.2}, 0.2 * PEAK),
        ({"kind": "infinite", "warmup": 0.0, "cooldown": 0.0, "anneal": 1.0}, 0.1 * PEAK),
        ({"kind": "infinite"}, 0.1 * PEAK),
        ({"kind": "infinite", "anneal": 0.0}, 0.55 * PEAK),
    ],
)
@pytest.mark.parametrize("total", [1, 2, 3])
def test_tiny_stages_end_at_the_final_lr(config: dict, last: float, total: int) -> None:
    assert learning_rate(sched(**config), total - 1, total) == pytest.approx(last)


def test_steps_outside_the_stage_are_rejected() -> None:
    s = sched(kind="cosine")
    with pytest.raises(ValueError):
        learning_rate(s, 10, 10)
    with pytest.raises(ValueError):
        learning_rate(s, -1, 10)
    with pytest.raises(ValueError):
        schedule_phases(s, 0)
