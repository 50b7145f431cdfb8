"""Mixtures that change along a stage: sampler segments and the loss-driven controller."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from forgetless.config import LossDrivenMixConfig, StageConfig
from forgetless.data.adaptive_mix import LossDrivenMix
from forgetless.data.sampler import MixtureSampler, RepetitionWarning
from forgetless.data.shards import TokenStore
from forgetless.errors import UserError

SEQ = 16


def make_store(num_tokens: int, base: int) -> TokenStore:
    """Tokens base + i % 1000: a window's first token tells its source."""
    tokens = (base + np.arange(num_tokens) % 1000).astype(np.uint16)
    offsets = np.unique(np.r_[np.arange(0, num_tokens, 37), num_tokens])
    return TokenStore.from_arrays(tokens, offsets, np.diff(offsets))


def quiet(*args, **kwargs) -> MixtureSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepetitionWarning)
        return MixtureSampler(*args, **kwargs)


@pytest.fixture
def stores():
    return {
        "a": make_store(SEQ * 300 + 1, base=0),
        "b": make_store(SEQ * 200 + 1, base=20_000),
        "old": make_store(SEQ * 400 + 1, base=40_000),
        "hq": make_store(SEQ * 40 + 1, base=60_000),
    }


def stage(**kwargs) -> StageConfig:
    data = {"name": "s", "tokens": 100_000, "mix": {"a": 1.0, "b": 1.0}}
    data.update(kwargs)
    return StageConfig.model_validate(data)


def source_of(rows: np.ndarray) -> np.ndarray:
    return rows[:, 0] // 20_000  # 0: a, 1: b, 2: old, 3: hq


def test_weights_equal_to_the_current_ones_leave_the_stream_as_it_is(stores) -> None:
    static = quiet(stage(), stores, SEQ, seed=3)
    changing = quiet(stage(), stores, SEQ, seed=3)
    first = static.next_batch(37)
    np.testing.assert_array_equal(changing.next_batch(37), first)
    assert changing.set_mix({"a": 0.5, "b": 0.5}) is False
    assert changing.set_mix({"a": 2.0, "b": 2.0}) is False  # any scale
    np.testing.assert_array_equal(changing.next_batch(100), static.next_batch(100))
    assert "segments" not in changing.state_dict()


def test_new_weights_take_their_share_and_each_source_continues_its_epoch(stores) -> None:
    spec = stage(replay={"from": "old", "ratio": 0.25})
    sampler = quiet(spec, stores, SEQ, seed=0)
    sampler.next_batch(40)
    before = sampler.counters()
    assert sampler.set_mix({"a": 0.8, "b": 0.2}) is True
    assert sampler.mix_weights() == pytest.approx({"a": 0.8, "b": 0.2})
    assert sampler.mix_weights(0) == pytest.approx({"a": 0.5, "b": 0.5})
    sampler.next_batch(200)
    after = sampler.counters()
    new_a = after["a"]["sequences"] - before["a"]["sequences"]
    new_b = after["b"]["sequences"] - before["b"]["sequences"]
    assert abs(new_a - 0.8 * 150) <= 2 and abs(new_b - 0.2 * 150) <= 2  # 200 positions, 150 new
    assert after["old"]["replay_sequences"] == 60  # the replay share does not move: 240 / 4
    # Source a's windows over both segments are one shuffled epoch: none repeated, none skipped.
    replay = MixtureSampler(spec, stores, SEQ, seed=0, max_epochs_warning=None)
    plan = replay.plan(np.arange(240))
    sampler_plan = sampler.plan(np.arange(240))
    windows_a = sampler_plan.window[(sampler_plan.source == 0) & ~sampler_plan.replay]
    assert len(set(windows_a.tolist())) == len(windows_a) == after["a"]["sequences"]
    np.testing.assert_array_equal(sampler_plan.replay, plan.replay)


def test_a_changed_stream_resumes_identically_on_any_number_of_ranks(stores) -> None:
    spec = stage(replay={"from": "old", "ratio": 0.1})
    one = quiet(spec, stores, SEQ, seed=1)
    one.next_batch(24)
    one.set_mix({"a": 0.3, "b": 0.7})
    one.next_batch(24)
    one.set_mix({"a": 0.9, "b": 0.1})
    state = one.state_dict()
    rest = one.next_batch(64)
    again = quiet(spec, stores, SEQ, seed=1)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.next_batch(64), rest)
    assert again.counters() == one.counters()
    ranks = [quiet(spec, stores, SEQ, seed=1, rank=r, world_size=2) for r in range(2)]
    for sampler in ranks:
        sampler.load_state_dict(state)
    halves = [sampler.next_batch(32) for sampler in ranks]
    interleaved = np.empty_like(rest)
    interleaved[0::2], interleaved[1::2] = halves
    np.testing.assert_array_equal(interleaved, rest)


def test_a_planned_change_applies_at_its_position_and_may_bring_a_new_source(stores) -> None:
    sampler = quiet(stage(), stores, SEQ, seed=0)
    assert sampler.set_mix({"a": 0.5, "hq": 0.5}, start=64) is True
    rows = sampler.next_batch(128)
    sources = source_of(rows)
    assert set(sources[:64].tolist()) == {0, 1}
    assert set(sources[64:].tolist()) == {0, 3}
    assert sampler.counters()["hq"]["sequences"] == 32
    state = sampler.state_dict()
    resumed = quiet(stage(), stores, SEQ, seed=0)
    resumed.load_state_dict(state)
    assert resumed.set_mix({"a": 0.5, "hq": 0.5}, start=64) is False  # applied again on resume: no change
    with pytest.raises(UserError, match="mixture schedule .* changed"):
        resumed.set_mix({"a": 0.6, "hq": 0.4}, start=64)
    fresh = quiet(stage(), stores, SEQ, seed=0)
    fresh.next_batch(100)
    with pytest.raises(UserError, match="changed since the checkpoint"):
        fresh.set_mix({"a": 0.5, "hq": 0.5}, start=64)  # the stream passed 64 without it


def loss_driven(**kwargs) -> LossDrivenMixConfig:
    return LossDrivenMixConfig.model_validate({"kind": "loss_driven", "every_tokens": 100, **kwargs})


def test_eta_zero_keeps_the_mix_whatever_the_losses() -> None:
    controller = LossDrivenMix(loss_driven(eta=0.0), {"a": 3.0, "b": 1.0})
    for losses in ({"a": 5.0, "b": 5.0}, {"a": 4.0, "b": 5.0}, {"a": 1.0, "b": 7.0}):
        update = controller.observe(losses)
        assert update.weights == {"a": 0.75, "b": 0.25}


def test_a_source_whose_loss_stops_falling_loses_share() -> None:
    """Synthetic losses: a keeps falling by 2% per update, b falls at first and then stays flat."""
    controller = LossDrivenMix(loss_driven(eta=0.2, window=2, floor=0.05), {"a": 1.0, "b": 1.0})
    a, b = 5.0, 5.0
    shares = [controller.observe({"a": a, "b": b}).weights["b"]]
    for t in range(1, 9):
        a *= 0.98
        b = b * 0.98 if t <= 2 else b
        update = controller.observe({"a": a, "b": b})
        shares.append(update.weights["b"])
    assert shares[0] == pytest.approx(0.5) and shares[1] == pytest.approx(0.5) and shares[2] == pytest.approx(0.5)
    assert shares[3] < 0.5 and shares[4] < shares[3]  # b's progress leaves the window
    assert shares[4] == pytest.approx(shares[-1])  # then a steady share: a's 4% per window against b's 0
    expected = 1 / (1 + np.exp(0.2 * 100 * (1 - 0.98**2)))
    assert shares[-1] == pytest.approx(max(expected, 0.05))
    assert update.progress["b"] == 0.0 and update.progress["a"] == pytest.approx(100 * (1 - 0.98**2))


def test_floor_and_graph() -> None:
    floor = LossDrivenMix(loss_driven(eta=5.0, floor=0.1), {"a": 1.0, "b": 1.0, "c": 2.0})
    floor.observe({"a": 5.0, "b": 5.0, "c": 5.0})
    weights = floor.observe({"a": 4.0, "b": 5.0, "c": 5.0}).weights
    assert weights["b"] == pytest.approx(0.1) and weights["c"] == pytest.approx(0.1)
    assert sum(weights.values()) == pytest.approx(1.0)
    # A graph: b's share follows the progress of an evaluated source it does not measure itself.
    graph = LossDrivenMix(loss_driven(eta=1.0, floor=0.0, graph={"a": {"a": 1.0}, "b": {"g": 1.0}}), {"a": 1, "b": 1})
    assert graph.columns == ["a", "g"]
    graph.observe({"a": 5.0, "g": 5.0})
    weights = graph.observe({"a": 5.0, "g": 4.9}).weights
    assert weights["b"] > weights["a"]


def test_controller_state_round_trips() -> None:
    controller = LossDrivenMix(loss_driven(window=2), {"a": 1.0, "b": 1.0})
    for losses in ({"a": 5.0, "b": 5.0}, {"a": 4.5, "b": 4.9}, {"a": 4.2, "b": 4.85}):
        controller.observe(losses)
    copy = LossDrivenMix(loss_driven(window=2), {"a": 1.0, "b": 1.0})
    copy.load_state_dict(controller.state_dict())
    nxt = {"a": 4.1, "b": 4.84}
    assert copy.observe(nxt) == controller.observe(nxt)
    other = LossDrivenMix(loss_driven(window=2), {"a": 1.0, "c": 1.0})
    with pytest.raises(UserError, match="other sources"):
        other.load_state_dict(controller.state_dict())
