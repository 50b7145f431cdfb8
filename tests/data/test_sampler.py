"""The mixture sampler: windows, replay share, accountings, determinism, resume and ranks."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from forgetless.config import StageConfig
from forgetless.data.sampler import MixtureSampler, RepetitionWarning, permute
from forgetless.data.shards import TokenStore
from forgetless.errors import UserError

SEQ = 16


def make_store(num_tokens: int, base: int, doc_len: int = 37) -> TokenStore:
    """Tokens in [base, base + 1000): position i holds base + i % 1000, so a window's first token
    tells the source (by base) and the offset (by value), and the content is checkable."""
    tokens = (base + np.arange(num_tokens) % 1000).astype(np.uint16)
    offsets = np.unique(np.r_[np.arange(0, num_tokens, doc_len), num_tokens])
    return TokenStore.from_arrays(tokens, offsets, np.diff(offsets))


def stage(**kwargs) -> StageConfig:
    data = {"name": "s", "tokens": 100_000, "mix": {"new": 1.0}}
    data.update(kwargs)
    return StageConfig.model_validate(data)


@pytest.fixture
def stores() -> dict[str, TokenStore]:
    return {
        "new": make_store(SEQ * 50 + 1, base=0),  # exactly 50 windows
        "other": make_store(SEQ * 30 + 5, base=20_000),  # 30 windows and a few spare tokens
        "old": make_store(SEQ * 400 + 1, base=40_000),  # 400 windows
    }


def source_of(rows: np.ndarray) -> np.ndarray:
    """Which fixture store each row came from, by its token values."""
    return rows[:, 0] // 20_000


def quiet(*args, **kwargs) -> MixtureSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepetitionWarning)
        return MixtureSampler(*args, **kwargs)


def test_permute_is_a_bijection_for_every_size() -> None:
    for size in (1, 2, 3, 5, 16, 17, 100, 1023, 4097):
        out = permute(np.arange(size), size, key=12345)
        assert sorted(out.tolist()) == list(range(size))
    a = permute(np.arange(1000), 1000, key=1)
    b = permute(np.arange(1000), 1000, key=2)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(1000))


def test_one_epoch_serves_every_window_once_then_reshuffles(stores) -> None:
    sampler = quiet(stage(), stores, SEQ, seed=0)
    first = sampler.next_batch(50)
    windows = sampler.last_plan.window
    assert sorted(windows.tolist()) == list(range(50))
    assert not np.array_equal(windows, np.arange(50))  # shuffled
    tokens = np.asarray(stores["new"].tokens)
    for row, w in zip(first, windows, strict=True):
        np.testing.assert_array_equal(row, tokens[w * SEQ : w * SEQ + SEQ + 1])
    # Every token after the first is a target exactly once per epoch.
    targets = np.sort(np.concatenate([np.arange(w * SEQ + 1, w * SEQ + SEQ + 1) for w in windows]))
    np.testing.assert_array_equal(targets, np.arange(1, 50 * SEQ + 1))
    sampler.next_batch(50)
    second = sampler.last_plan.window
    assert sorted(second.tolist()) == list(range(50))
    assert not np.array_equal(second, windows)
    assert sampler.counters()["new"]["epochs"] == 2.0
    assert sampler.counters()["new"]["repetitions"] == 50


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.25])
@pytest.mark.parametrize("accounting", ["compute_equivalent", "additive"])
def test_replay_share_is_within_one_sequence_over_any_window(stores, ratio, accounting) -> None:
    replay = {"from": "old", "ratio": ratio, "accounting": accounting}
    sampler = quiet(stage(mix={"new": 3, "other": 1}, replay=replay), stores, SEQ, seed=3)
    rows = np.concatenate([sampler.next_batch(4) for _ in range(1000)])
    replayed = source_of(rows) == 2  # read from the content, not from the sampler's plan
    np.testing.assert_array_equal(replayed, np.concatenate([sampler.plan(np.arange(4000)).replay]))
    # Over every window [a, b) of sequences: |replayed(a, b) - ratio * (b - a)| <= 1, i.e. the
    # running deviation D(k) = replayed(0, k) - ratio * k has a range of at most one.
    deviation = np.r_[0, np.cumsum(replayed)] - ratio * np.arange(len(replayed) + 1)
    assert deviation.max() - deviation.min() <= 1 + 1e-9
    # In tokens: replayed targets are ratio x all targets, to within one sequence.
    assert abs(replayed.sum() * SEQ - ratio * rows.shape[0] * SEQ) <= SEQ
    # The same over windows of whole batches.
    per_batch = replayed.reshape(1000, 4).sum(axis=1)
    batch_dev = np.r_[0, np.cumsum(per_batch)] - ratio * 4 * np.arange(1001)
    assert batch_dev.max() - batch_dev.min() <= 1 + 1e-9


def test_compute_equivalent_keeps_the_total_and_additive_keeps_the_new_tokens(stores) -> None:
    tokens = 10_000
    budget = math.ceil(tokens / SEQ)
    replay = {"from": "old", "ratio": 0.25}
    ce = quiet(stage(tokens=tokens, replay={**replay, "accounting": "compute_equivalent"}), stores, SEQ, 0)
    assert ce.total_sequences == budget
    ce.next_batch(ce.total_sequences)
    counts = ce.counters()
    assert counts["new"]["tokens"] + counts["old"]["tokens"] == budget * SEQ
    assert counts["old"]["replay_sequences"] == math.floor(budget * 0.25)
    assert counts["new"]["new_sequences"] == budget - math.floor(budget * 0.25)

    add = quiet(stage(tokens=tokens, replay={**replay, "accounting": "additive"}), stores, SEQ, 0)
    total = add.total_sequences
    assert total - math.floor(total * 0.25) >= budget  # every new token of the budget is trained
    assert (total - 1) - math.floor((total - 1) * 0.25) < budget  # and no more than needed
    assert abs(total - budget / 0.75) <= 1
    add.next_batch(total)
    counts = add.counters()
    assert counts["new"]["new_sequences"] == budget
    assert counts["old"]["replay_sequences"] == total - budget
    # The two accountings serve the same stream; only the stage length differs.
    assert np.array_equal(add.plan(np.arange(500)).source, ce.plan(np.arange(500)).source)


def test_no_replay_totals(stores) -> None:
    sampler = quiet(stage(tokens=1000), stores, SEQ, 0)
    assert sampler.total_sequences == math.ceil(1000 / SEQ)
    zero = quiet(
        stage(tokens=1000, replay={"from": "old", "ratio": 0.0, "accounting": "additive"}), stores, SEQ, 0
    )
    assert zero.total_sequences == sampler.total_sequences
    assert not zero.plan(np.arange(1000)).replay.any()


def test_mix_weights_are_shares_of_tokens(stores) -> None:
    sampler = quiet(stage(mix={"new": 0.6, "other": 0.3, "old": 0.1}), stores, SEQ, seed=1)
    rows = sampler.next_batch(3000)
    src = source_of(rows)
    for index, share in enumerate((0.6, 0.3, 0.1)):
        running = np.r_[0, np.cumsum(src == index)] - share * np.arange(len(src) + 1)
        assert running.max() - running.min() <= 2 + 1e-9, index
    counts = sampler.counters()
    assert counts["new"]["sequences"] == 1800
    assert counts["other"]["sequences"] == 900
    assert counts["old"]["sequences"] == 300
    assert counts["old"]["tokens"] == 300 * SEQ


def test_original_order_reads_replay_sequentially_and_uniform_samples(stores) -> None:
    original = quiet(stage(replay={"from": "old", "ratio": 0.5, "order": "original"}), stores, SEQ, 0)
    original.next_batch(1000)
    plan = original.last_plan
    np.testing.assert_array_equal(plan.window[plan.replay], np.arange(500) % 400)

    uniform = quiet(stage(replay={"from": "old", "ratio": 0.5, "order": "uniform"}), stores, SEQ, 0)
    uniform.next_batch(4000)
    draws = uniform.last_plan.window[uniform.last_plan.replay]
    assert draws.min() >= 0 and draws.max() < 400
    assert not np.array_equal(draws[:400], np.arange(400))
    histogram = np.bincount(draws, minlength=400)
    assert (histogram > 0).mean() > 0.9  # 2000 draws over 400 windows reach nearly all of them
    again = quiet(stage(replay={"from": "old", "ratio": 0.5, "order": "uniform"}), stores, SEQ, 0)
    again.next_batch(4000)
    np.testing.assert_array_equal(again.last_plan.window, uniform.last_plan.window)


def test_replay_reads_the_whole_source_in_a_fresh_shuffle_each_epoch_by_default(stores) -> None:
    sampler = quiet(stage(replay={"from": "old", "ratio": 0.5}), stores, SEQ, 0)
    assert sampler.stage.replay.order == "shuffled"
    sampler.next_batch(1600)
    plan = sampler.last_plan
    replayed = plan.window[plan.replay]  # 800 replayed windows: two epochs of the 400
    assert sorted(replayed[:400].tolist()) == list(range(400))
    assert sorted(replayed[400:].tolist()) == list(range(400))
    assert not np.array_equal(replayed[:400], replayed[400:])
    assert replayed[:20].max() > 200  # the first draws already reach the far end of the source


def test_five_percent_replay_over_a_stage_touches_every_bundled_sub_source() -> None:
    """The bundled general corpus is stored sub-corpus after sub-corpus (Austen first, WordNet last);
    replay must not read Austen alone. Token counts stand in as a quarter of each document's bytes:
    which windows the sampler reads depends only on the documents' lengths."""
    from forgetless.data import bundled

    lengths, subsources = [], []
    for record in bundled.iter_documents("general", "train"):
        lengths.append(len(record["text"].encode()) // 4 + 1)
        subsources.append(record["source"])
    offsets = np.r_[0, np.cumsum(lengths)]
    general = TokenStore.from_arrays(
        np.zeros(offsets[-1], dtype=np.uint16), offsets, np.array(lengths), subsources
    )
    stores = {"security": make_store(1_000_000, base=0), "general": general}
    seq_len = 1024

    def replayed_subsources(order: str) -> set[str | None]:
        spec = stage(
            tokens=2_000_000, mix={"security": 1.0}, replay={"from": "general", "ratio": 0.05, "order": order}
        )
        sampler = quiet(spec, stores, seq_len, seed=0)
        plan = sampler.plan(np.arange(sampler.total_sequences))
        windows = plan.window[plan.replay]
        assert len(windows) == math.floor(sampler.total_sequences * 0.05)  # 97 of 1954 sequences
        documents = np.searchsorted(offsets, windows * seq_len, side="right") - 1
        return set(general.subsource_of(documents))

    assert replayed_subsources("shuffled") == set(bundled.manifest()["corpora"]["general"]["sources"])
    assert replayed_subsources("original") == {"austen"}  # still available: the first documents


def test_replay_from_several_sources_splits_by_size(stores) -> None:
    sampler = quiet(stage(replay={"from": ["old", "other"], "ratio": 0.5}), stores, SEQ, 0)
    rows = sampler.next_batch(8600)
    src = source_of(rows)
    assert (src == 0).sum() == 4300
    assert (src == 2).sum() == 4000  # 400 / 430 of the replayed sequences
    assert (src == 1).sum() == 300


def test_a_source_both_mixed_and_replayed_counts_both_roles(stores) -> None:
    sampler = quiet(stage(mix={"new": 1}, replay={"from": "new", "ratio": 0.25}), stores, SEQ, 0)
    sampler.next_batch(400)
    counts = sampler.counters()["new"]
    assert counts == {
        "tokens": 400 * SEQ,
        "sequences": 400,
        "new_sequences": 300,
        "replay_sequences": 100,
        "epochs": 8.0,
        "repetitions": 350,
        "windows_per_epoch": 50,
    }


def test_same_seed_same_stream_other_seed_other_order(stores) -> None:
    spec = stage(mix={"new": 1, "other": 1}, replay={"from": "old", "ratio": 0.1, "order": "uniform"})
    a = quiet(spec, stores, SEQ, seed=7).next_batch(300)
    b = quiet(spec, stores, SEQ, seed=7).next_batch(300)
    c = quiet(spec, stores, SEQ, seed=8).next_batch(300)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(source_of(a), source_of(c))  # seeds change order, not shares


def test_batch_size_does_not_change_the_stream(stores) -> None:
    spec = stage(mix={"new": 2, "other": 1}, replay={"from": "old", "ratio": 0.05})
    whole = quiet(spec, stores, SEQ, 0).next_batch(120)
    pieces = quiet(spec, stores, SEQ, 0)
    parts = [pieces.next_batch(n) for n in (1, 7, 32, 80)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("order", ["shuffled", "original", "uniform"])
def test_resume_after_any_number_of_batches_gives_the_identical_stream(stores, order) -> None:
    spec = stage(mix={"new": 2, "other": 1}, replay={"from": "old", "ratio": 0.05, "order": order})
    reference = quiet(spec, stores, SEQ, seed=11).next_batch(6 * 200)
    rng = np.random.default_rng(0)
    for stop_after in [0, 1, *rng.integers(2, 150, size=4).tolist()]:
        first = quiet(spec, stores, SEQ, seed=11)
        for _ in range(stop_after):
            first.next_batch(6)
        state = json.loads(json.dumps(first.state_dict()))  # plain types only
        resumed = quiet(spec, stores, SEQ, seed=11)
        resumed.load_state_dict(state)
        continued = np.concatenate([resumed.next_batch(6) for _ in range(200 - stop_after)])
        np.testing.assert_array_equal(continued, reference[stop_after * 6 :])
        # Nothing repeated or skipped: the positions served before and after the stop tile the stream.
        assert resumed.position == 6 * 200


def test_counters_resume_with_the_state(stores) -> None:
    spec = stage(mix={"new": 1}, replay={"from": "old", "ratio": 0.25})
    a = quiet(spec, stores, SEQ, 0)
    a.next_batch(123)
    b = quiet(spec, stores, SEQ, 0)
    b.load_state_dict(a.state_dict())
    assert b.counters() == a.counters()


def test_two_ranks_are_disjoint_and_together_equal_one_process(stores) -> None:
    spec = stage(mix={"new": 2, "other": 1}, replay={"from": "old", "ratio": 0.05})
    single = quiet(spec, stores, SEQ, seed=5)
    ranks = [quiet(spec, stores, SEQ, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(20):
        whole = single.next_batch(8)
        parts = [s.next_batch(4) for s in ranks]
        np.testing.assert_array_equal(parts[0], whole[0::2])
        np.testing.assert_array_equal(parts[1], whole[1::2])
        positions = [set(s.last_plan.positions.tolist()) for s in ranks]
        assert not positions[0] & positions[1]
        assert positions[0] | positions[1] == set(single.last_plan.positions.tolist())
    # Within one epoch of a source no window is given to both ranks.
    first_epoch = [
        {
            (int(w), bool(r))
            for w, r, e, src in zip(p.window, p.replay, p.epoch, p.source, strict=True)
            if e == 0 and src == 0
        }
        for p in (s.plan(np.arange(s.rank, 160, 2)) for s in ranks)
    ]
    assert first_epoch[0] and not first_epoch[0] & first_epoch[1]
    assert ranks[0].state_dict() == ranks[1].state_dict() == single.state_dict()


def test_resume_with_another_world_size_keeps_the_global_stream(stores) -> None:
    spec = stage(mix={"new": 1, "other": 1})
    single = quiet(spec, stores, SEQ, seed=2)
    single.next_batch(8)
    state = single.state_dict()
    ranks = [quiet(spec, stores, SEQ, seed=2, rank=r, world_size=4) for r in range(4)]
    for s in ranks:
        s.load_state_dict(state)
    parts = [s.next_batch(2) for s in ranks]
    whole = single.next_batch(8)
    for r in range(4):
        np.testing.assert_array_equal(parts[r], whole[r::4])


def test_state_of_another_stage_is_refused(stores) -> None:
    a = quiet(stage(tokens=5000), stores, SEQ, 0)
    b = quiet(stage(tokens=5000, mix={"new": 1.0, "other": 1.0}), stores, SEQ, 0)
    with pytest.raises(UserError, match="changed since the checkpoint"):
        b.load_state_dict(a.state_dict())
    c = quiet(stage(tokens=5000), stores, SEQ, 1)
    with pytest.raises(UserError):
        c.load_state_dict(a.state_dict())


def test_a_longer_or_shorter_stage_continues_the_same_stream(stores) -> None:
    # The stream does not depend on where the stage ends: a stage cut short or lengthened (a
    # cooldown branch, forgetless.train.branch) resumes it exactly.
    a = quiet(stage(tokens=5000, replay={"from": "old", "ratio": 0.25}), stores, SEQ, 0)
    a.next_batch(7)
    b = quiet(stage(tokens=9000, replay={"from": "old", "ratio": 0.25}), stores, SEQ, 0)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.next_batch(5), a.next_batch(5))


def test_a_source_shorter_than_a_sequence_is_bad_input(stores) -> None:
    tiny = {**stores, "new": make_store(SEQ, base=0)}
    with pytest.raises(UserError, match=r"sources\.new: 16 training tokens"):
        MixtureSampler(stage(), tiny, SEQ, 0)


def test_missing_store_is_an_error(stores) -> None:
    with pytest.raises(ValueError, match="no token store"):
        quiet(stage(mix={"absent": 1}), stores, SEQ, 0)


def test_repetition_beyond_the_limit_warns(stores) -> None:
    with pytest.warns(RepetitionWarning, match="'new' .* times"):
        MixtureSampler(stage(tokens=50 * SEQ * 5), stores, SEQ, 0, max_epochs_warning=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepetitionWarning)
        MixtureSampler(stage(tokens=50 * SEQ * 3), stores, SEQ, 0, max_epochs_warning=4)
        quiet_limit = MixtureSampler(
            stage(tokens=50 * SEQ * 5), stores, SEQ, 0, max_epochs_warning={"other": 1}
        )
    # Running past the planned stage warns when the limit is actually crossed.
    short = MixtureSampler(stage(tokens=SEQ), stores, SEQ, 0, max_epochs_warning=2)
    with pytest.warns(RepetitionWarning, match="has read source 'new'"):
        short.next_batch(101)
    assert quiet_limit.counters()["new"]["epochs"] == 0


def test_cached_epoch_orders_match_orders_computed_per_position(stores, monkeypatch) -> None:
    from forgetless.data import sampler as sampler_module

    spec = stage(mix={"new": 1, "other": 1})
    cached = quiet(spec, stores, SEQ, seed=4).next_batch(500)  # several epochs of both sources
    monkeypatch.setattr(sampler_module, "_TABLE_WINDOWS", 10)  # both sources are now "large"
    computed = quiet(spec, stores, SEQ, seed=4).next_batch(500)
    np.testing.assert_array_equal(cached, computed)


def test_settings_that_do_not_change_the_stream_do_not_block_resume(stores) -> None:
    a = quiet(stage(schedule={"kind": "constant"}), stores, SEQ, 0)
    a.next_batch(5)
    b = quiet(stage(schedule={"kind": "cosine", "peak_lr": 1e-3}, reset_optimizer=False), stores, SEQ, 0)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.next_batch(5), a.next_batch(5))
