"""The stage sampler: fixed-length training sequences from weighted sources, with replay.

A stage draws sequences of `seq_len + 1` tokens (inputs `[:-1]`, labels `[1:]`) from its sources.
Each source's training tokens are cut into windows that start every `seq_len` tokens, so
consecutive windows overlap by one token and every token is a target once per epoch; windows run
across document boundaries (documents are packed, separated by EOS). A source with `N` tokens has
`(N - 1) // seq_len` windows per epoch (the last `< seq_len` tokens are not used).

**The global stream.** Sequences are numbered by a global position `p = 0, 1, 2, ...`. Which source
and which window position `p` holds is a pure function of `p`, the stage config, the seed and the
stores' sizes, so:

- the sampler's whole state is `p` (`state_dict`), and resuming gives the identical continuation;
  the state also carries each source's hash of its prepared tokens, and a resume refuses other
  data, even of the same size;
- rank `r` of `W` takes the positions `p` with `p % W == r`; `next_batch(n)` on every rank advances
  the global position by `n * W`, so the ranks' batches are disjoint and together equal the
  single-process stream for the same global batch (and a run may resume with another `W` as long
  as the global batch is unchanged).

**Replay and its accounting.** With `replay: {from, ratio}`, position `p` is a replay sequence when
`floor((p + 1) * ratio) > floor(p * ratio)`, so exactly `floor(n * ratio)` of the first `n`
sequences replay, and over *any* window of sequences the replayed count differs from
`ratio x length` by less than one sequence (a fractional accumulator, not a coin flip; `ratio` is
taken as the nearest fraction with a denominator of at most 10^6). Replayed tokens are therefore
exactly `ratio` of all tokens served. The stage's length in sequences, `total_sequences`:

- `compute_equivalent` (Ibrahim et al. 2024): the stage trains on `ceil(stage.tokens / seq_len)`
  sequences in all; replay takes its share inside that budget, so new tokens shrink to
  `(1 - ratio)` of it and compute stays fixed;
- `additive` (Abbes et al. 2025): the new-token budget `ceil(stage.tokens / seq_len)` sequences is
  kept and replay comes on top: `total_sequences` is the smallest `T` with
  `T - floor(T * ratio) >= ceil(stage.tokens / seq_len)`, about `tokens / (1 - ratio)`.

**Sources and their order.** The non-replay positions are split among the `mix` sources in
proportion to their weights (shares of tokens) by nested accumulators of the same kind: the first
source takes its share of the new positions, the second its share of the rest, and so on, so each
source's count stays within a sequence or two of its share over any window. A `mix` source is read
in a seeded shuffled order of its windows, a fresh shuffle every epoch (a keyed pseudo-random
permutation, so no permutation is stored). Replay positions are split among the `from` sources in
proportion to their sizes (as one buffer of all of them); by default (`order: shuffled`) each one is
read the same way, in its own seeded shuffle, so even a small replay share draws from the whole
source rather than from the documents it happens to store first (a corpus stored part by part would
otherwise replay its first part only); `order: original` reads each one's windows in order from its
start (wrapping around after an epoch), `order: uniform` draws windows uniformly at random with
replacement (seeded). A source both mixed and replayed is read by both roles independently, with
different shuffles; its counters add up.

**Mixtures that change along the stage** (`stages[].mix_schedule`). The new positions are cut into
*segments* at global positions where the mix weights change (`set_mix`); a segment splits its new
positions among its sources by nested accumulators that start afresh at its first position, and
each source's windows continue where they stopped (its lane-local index carries over), so a source
keeps reading its shuffled epochs without repeating or skipping a window. The replay positions do
not depend on the segments: replay keeps its exact share. The segments after the first are part of
the state (`state_dict`), so a resumed stream is the identical continuation; weights equal to the
current ones add no segment, so a schedule that never changes the weights gives the static stream
bit for bit. A `loss_driven` schedule's controller (`forgetless.data.adaptive_mix`) is held here
and saved with the state too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from forgetless.config import LossDrivenMixConfig, StageConfig
from forgetless.data.adaptive_mix import LossDrivenMix
from forgetless.data.shards import TokenStore
from forgetless.errors import UserError

if TYPE_CHECKING:
    from forgetless.config import RunConfig

STATE_VERSION = 1
_MAX_DENOMINATOR = 10**6
_TABLE_WINDOWS = 1 << 22  # keep a shuffled epoch order as a table up to this many windows (16 MiB)
_U64 = np.uint64


class RepetitionWarning(UserWarning):
    """A source is read for more epochs than its `max_epochs_warning`."""


# ---------------------------------------------------------------------------------------------
# Exact fractional splits


@dataclass(frozen=True)
class _Share:
    """A fraction num/den in [0, 1]: position j of a stream is chosen when floor((j+1)f) > floor(jf)."""

    num: int
    den: int

    @classmethod
    def of(cls, value: float | Fraction) -> _Share:
        frac = Fraction(value).limit_denominator(_MAX_DENOMINATOR)
        return cls(frac.numerator, frac.denominator)

    def count(self, j: np.ndarray) -> np.ndarray:
        """How many of the positions `[0, j)` are chosen: floor(j * num / den), without overflow."""
        q, s = np.divmod(j, self.den)
        return q * self.num + (s * self.num) // self.den

    def count_int(self, j: int) -> int:
        return (j * self.num) // self.den


@dataclass
class _Lane:
    """One way a source is read: as a mix source (`shuffled`) or a replay source (`original`/`uniform`)."""

    source: str
    source_index: int
    replay: bool
    order: str  # "shuffled", "original" or "uniform" (mix lanes are always shuffled)
    windows: int  # windows per epoch
    key: int  # 64-bit key for the shuffles and draws
    view: np.ndarray  # [windows, seq_len + 1] strided view of the store's tokens
    orders: dict[int, np.ndarray] = field(default_factory=dict)  # epoch -> window order, when cached

    def epoch_order(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """The windows at `positions` of the shuffled order of `epoch`.

        The order of a whole epoch is computed once and kept (the two latest epochs) when the source
        has at most `_TABLE_WINDOWS` windows; larger sources compute only the positions asked for.
        """
        key = _derive_key(self.key, epoch)
        if self.windows > _TABLE_WINDOWS:
            return permute(positions, self.windows, key)
        order = self.orders.get(epoch)
        if order is None:
            dtype = np.int32 if self.windows < 2**31 else np.int64
            order = permute(np.arange(self.windows), self.windows, key).astype(dtype)
            self.orders = {e: o for e, o in self.orders.items() if e == epoch - 1}
            self.orders[epoch] = order
        return order[positions]


@dataclass(frozen=True)
class _Segment:
    """The mix weights from global position `start` on (until the next segment)."""

    start: int  # global position of its first sequence
    new_start: int  # how many new (not replayed) positions come before `start`
    weights: tuple[Fraction, ...]  # per mix lane (`_new_lanes` order); 0: not drawn in this segment
    lanes: tuple[int, ...]  # the mix lanes with a positive weight, in order
    splits: tuple[_Share, ...]  # nested shares over `lanes`
    offsets: tuple[int, ...]  # per mix lane: sequences it served before `start`

    def shares(self) -> list[float]:
        total = sum(self.weights, Fraction(0))
        return [float(w / total) for w in self.weights]


@dataclass
class SequencePlan:
    """What a set of global positions hold: per position, the source, role, window and epoch."""

    positions: np.ndarray  # int64 global positions
    source: np.ndarray  # int64 index into `MixtureSampler.source_names`
    replay: np.ndarray  # bool: a replayed sequence
    window: np.ndarray  # int64 window index in its source: tokens [w * seq_len, w * seq_len + seq_len + 1)
    epoch: np.ndarray  # int64 epoch of its lane (how many times the lane went through the source)


# ---------------------------------------------------------------------------------------------
# Keyed hashing and permutations (stable across numpy versions and platforms)


def _mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, elementwise on a uint64 array (array arithmetic wraps silently)."""
    z = np.asarray(x, dtype=np.uint64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


@functools.lru_cache(maxsize=4096)
def _derive_key(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def permute(index: np.ndarray, size: int, key: int) -> np.ndarray:
    """A keyed pseudo-random permutation of `[0, size)` applied to `index` (a Feistel network with
    cycle walking): a bijection, so a whole epoch visits every window once, with nothing stored."""
    index = np.asarray(index, dtype=np.uint64)
    if size <= 1:
        return np.zeros(index.shape, dtype=np.int64)
    bits = max(2, (size - 1).bit_length())
    bits += bits % 2
    half = _U64(bits // 2)
    mask = _U64((1 << (bits // 2)) - 1)
    round_keys = [_U64(_derive_key(key, r)) for r in range(4)]

    def rounds(x: np.ndarray) -> np.ndarray:
        left, right = x >> half, x & mask
        for rk in round_keys:
            left, right = right, left ^ (_mix64(right ^ rk) & mask)
        return (left << half) | right

    out = rounds(index)
    todo = np.flatnonzero(out >= _U64(size))
    while todo.size:  # cycle walking: the domain is at most 4x size, so this ends fast
        out[todo] = rounds(out[todo])
        todo = todo[out[todo] >= _U64(size)]
    return out.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The sampler


class MixtureSampler:
    """Deterministic, resumable, rank-sharded sequences of one stage (see the module docstring).

    `stores` maps source names to their *train* `TokenStore`s. `next_batch(n)` returns int64
    `[n, seq_len + 1]`: this rank's next `n` sequences.
    """

    def __init__(
        self,
        stage: StageConfig,
        stores: dict[str, TokenStore],
        seq_len: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        *,
        max_epochs_warning: float | dict[str, float] | None = 4.0,
    ) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.stage = stage
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.position = 0  # global position of the next sequence (all ranks)

        replay = stage.replay if stage.replay is not None and stage.replay.ratio > 0 else None
        mix = [(name, w) for name, w in stage.mix.items() if w > 0]
        used = [name for name, _ in mix] + list(replay.from_ if replay else [])
        self.source_names: list[str] = list(dict.fromkeys(used))  # mix sources first, then replayed ones
        self._all_stores = stores  # a mix schedule may draw on more of them later
        self._stores = {name: self._store(stores, name) for name in self.source_names}
        self._windows = {name: self._window_count(name) for name in self.source_names}

        self._replay_share = _Share.of(replay.ratio) if replay else _Share(0, 1)
        self.replay_ratio = self._replay_share.num / self._replay_share.den
        self._new_lanes = [self._lane(name, False, "shuffled") for name, _ in mix]
        weights = tuple(Fraction(w) for _, w in mix)
        lanes = tuple(range(len(mix)))
        self._segments = [
            _Segment(0, 0, weights, lanes, tuple(_nested_shares(list(weights))), (0,) * len(mix))
        ]
        schedule = stage.mix_schedule
        self.adaptive = LossDrivenMix(schedule, dict(mix)) if isinstance(schedule, LossDrivenMixConfig) else None
        if replay:
            self._replay_lanes = [
                self._lane(name, True, replay.order) for name in dict.fromkeys(replay.from_)
            ]
            sizes = [Fraction(lane.windows) for lane in self._replay_lanes]
            self._replay_splits = _nested_shares(sizes)
        else:
            self._replay_lanes, self._replay_splits = [], []
        self._lanes = self._new_lanes + self._replay_lanes

        budget = math.ceil(stage.tokens / self.seq_len)
        accounting = replay.accounting if replay else "compute_equivalent"
        self.accounting = accounting
        if accounting == "compute_equivalent":
            self.total_sequences = budget
        else:
            self.total_sequences = self._additive_total(budget)

        self._fingerprint = self._make_fingerprint()
        self._warn_limits = self._limits(max_epochs_warning)
        self._warned: set[str] = set()
        self._warn_repetition(self.total_sequences, planned=True)
        self.last_plan: SequencePlan | None = None

    @classmethod
    def for_stage(
        cls,
        config: RunConfig,
        stage_index: int,
        stores: dict[str, TokenStore],
        rank: int = 0,
        world_size: int = 1,
        *,
        warn: bool = True,
    ) -> MixtureSampler:
        """The sampler of `config.stages[stage_index]` as a run trains it: the stage's seq_len, the
        seed `train.seed + stage_index`, and a `RepetitionWarning` for each source read more times
        than its `sources.<name>.max_epochs_warning` (none with `warn=False`)."""
        limits = None
        if warn:
            limits = {
                name: source.max_epochs_warning
                for name, source in config.sources.items()
                if source.max_epochs_warning is not None
            }
        return cls(
            config.stages[stage_index],
            stores,
            config.seq_len_of(stage_index),
            config.train.seed + stage_index,
            rank,
            world_size,
            max_epochs_warning=limits,
        )

    # -- construction helpers ----------------------------------------------------------------

    def _store(self, stores: dict[str, TokenStore], name: str) -> TokenStore:
        if name not in stores:
            raise ValueError(f"stage {self.stage.name!r} uses source {name!r}, but no token store was given")
        return stores[name]

    def _window_count(self, name: str) -> int:
        count = (self._stores[name].num_tokens - 1) // self.seq_len
        if count < 1:
            raise UserError(
                f"sources.{name}: {self._stores[name].num_tokens:,} training tokens, fewer than one "
                f"sequence of seq_len + 1 = {self.seq_len + 1}; add data or lower train.seq_len"
            )
        return count

    def _mix_lane(self, name: str) -> int:
        """The index in `_new_lanes` of `name`'s mix lane, added (with its store) when it has none."""
        for k, lane in enumerate(self._new_lanes):
            if lane.source == name:
                return k
        if name not in self.source_names:
            self._stores[name] = self._store(self._all_stores, name)
            self._windows[name] = self._window_count(name)
            self.source_names.append(name)
        self._new_lanes.append(self._lane(name, False, "shuffled"))
        self._lanes = self._new_lanes + self._replay_lanes
        return len(self._new_lanes) - 1

    def _lane(self, name: str, replay: bool, order: str) -> _Lane:
        tokens = self._stores[name].tokens
        windows = self._windows[name]
        view = np.lib.stride_tricks.sliding_window_view(tokens, self.seq_len + 1)[:: self.seq_len][:windows]
        key = _derive_key(
            "forgetless-sampler", self.seed, self.stage.name, "replay" if replay else "mix", name
        )
        return _Lane(name, self.source_names.index(name), replay, order, windows, key, view)

    def _additive_total(self, new_sequences: int) -> int:
        share = self._replay_share
        if share.num == 0:
            return new_sequences
        total = -(-new_sequences * share.den // (share.den - share.num))  # ceil(new / (1 - ratio))
        while total > 0 and (total - 1) - share.count_int(total - 1) >= new_sequences:
            total -= 1
        return total

    def _make_fingerprint(self) -> str:
        data = {
            # Only what decides the stream: other stage settings may change across a resume, the
            # stage's length too (the stream does not depend on where it ends: cooldown branches).
            # Where the mix changes later is in the state (its segments), checked by `set_mix`.
            "stage": self.stage.model_dump(mode="json", by_alias=True, include={"name", "mix", "replay"}),
            "seq_len": self.seq_len,
            "seed": self.seed,
            "tokens": {name: self._stores[name].num_tokens for name in self.source_names},
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:32]

    def _contents(self) -> dict[str, str | None]:
        """Each source's hash of its prepared tokens (`TokenStore.sha256`; None when not known)."""
        return {name: self._stores[name].sha256 for name in self.source_names}

    def _limits(self, value: float | dict[str, float] | None) -> dict[str, float]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items()}
        return {name: float(value) for name in self.source_names}

    # -- the stream ----------------------------------------------------------------------------

    def plan(self, positions: np.ndarray) -> SequencePlan:
        """Which source, role and window each global position holds (a pure function of the position)."""
        p = np.asarray(positions, dtype=np.int64)
        lane = np.empty(p.shape, dtype=np.int64)
        local = np.empty(p.shape, dtype=np.int64)
        replay_before = self._replay_share.count(p)
        is_replay = self._replay_share.count(p + 1) > replay_before
        new = np.flatnonzero(~is_replay)
        j = p[new] - replay_before[new]
        if len(self._segments) == 1:
            self._descend_segment(self._segments[0], j, new, lane, local)
        else:
            starts = np.array([seg.new_start for seg in self._segments], dtype=np.int64)
            which = np.searchsorted(starts, j, side="right") - 1
            for k in np.unique(which).tolist():
                sel = which == k
                self._descend_segment(self._segments[k], j[sel], new[sel], lane, local)
        if self._replay_lanes:
            first = len(self._new_lanes)
            self._descend(
                replay_before[is_replay],
                self._replay_splits,
                list(range(first, first + len(self._replay_lanes))),
                [0] * len(self._replay_lanes),
                lane,
                local,
                np.flatnonzero(is_replay),
            )
        window = np.empty(p.shape, dtype=np.int64)
        epoch = np.empty(p.shape, dtype=np.int64)
        source = np.empty(p.shape, dtype=np.int64)
        for i, spec in enumerate(self._lanes):
            sel = lane == i
            if not sel.any():
                continue
            n = local[sel]
            epoch[sel] = n // spec.windows
            window[sel] = self._windows_of(spec, n)
            source[sel] = spec.source_index
        return SequencePlan(p, source, is_replay, window, epoch)

    def _descend_segment(
        self, segment: _Segment, j: np.ndarray, idx: np.ndarray, lane: np.ndarray, local: np.ndarray
    ) -> None:
        """Assign the new-stream indices `j` (of output rows `idx`) inside `segment` to its lanes."""
        offsets = [segment.offsets[k] if k < len(segment.offsets) else 0 for k in segment.lanes]
        self._descend(j - segment.new_start, segment.splits, segment.lanes, offsets, lane, local, idx)

    @staticmethod
    def _descend(
        j: np.ndarray,
        splits: Sequence[_Share],
        lane_ids: Sequence[int],
        offsets: Sequence[int],
        lane: np.ndarray,
        local: np.ndarray,
        idx: np.ndarray,
    ) -> None:
        """Assign stream indices `j` (of output rows `idx`) to lanes through nested shares; write the
        lane and the lane-local index (what the lane served before, `offsets`, plus its count here)."""
        for k, share in enumerate(splits):
            before = share.count(j)
            chosen = share.count(j + 1) > before
            lane[idx[chosen]] = lane_ids[k]
            local[idx[chosen]] = before[chosen] + offsets[k]
            rest = ~chosen
            idx, j = idx[rest], (j - before)[rest]
        assert idx.size == 0, "the last share is 1, so every index finds a lane"

    def _windows_of(self, lane: _Lane, n: np.ndarray) -> np.ndarray:
        if lane.order == "original":
            return n % lane.windows
        if lane.order == "uniform":
            draws = _mix64(n.astype(np.uint64) ^ _U64(lane.key))
            return (_mix64(draws) % _U64(lane.windows)).astype(np.int64)
        epochs = n // lane.windows
        first, last = int(epochs[0]), int(epochs[-1])  # n increases along the batch
        if first == last:
            return lane.epoch_order(first, n - first * lane.windows).astype(np.int64, copy=False)
        out = np.empty(n.shape, dtype=np.int64)
        for e in range(first, last + 1):
            sel = epochs == e
            out[sel] = lane.epoch_order(e, n[sel] - e * lane.windows)
        return out

    def next_batch(self, num_sequences: int) -> np.ndarray:
        """This rank's next `num_sequences` sequences: int64 `[num_sequences, seq_len + 1]`.

        The global position advances by `num_sequences * world_size`; this rank takes the positions
        `p` with `p % world_size == rank`.
        """
        positions = self.position + self.rank + self.world_size * np.arange(num_sequences, dtype=np.int64)
        plan = self.plan(positions)
        out = np.empty((num_sequences, self.seq_len + 1), dtype=np.int64)
        for spec in self._lanes:
            sel = (plan.source == spec.source_index) & (plan.replay == spec.replay)
            if sel.any():
                out[sel] = spec.view[plan.window[sel]]
        self.position += num_sequences * self.world_size
        self.last_plan = plan
        if self._warn_limits and len(self._warned) < len(self._warn_limits):
            self._warn_repetition(self.position, planned=False)
        return out

    # -- mixtures that change along the stage ----------------------------------------------------

    def mix_weights(self, position: int | None = None) -> dict[str, float]:
        """The shares of the new tokens per mix source in effect at `position` (default: now)."""
        segment = self._segment_at(self.position if position is None else int(position))
        return {
            self._new_lanes[k].source: share
            for k, share in enumerate(segment.shares())
            if share > 0
        }

    def set_mix(self, weights: dict[str, float], start: int | None = None) -> bool:
        """Draw the new positions from global position `start` (default: now) with `weights` (shares
        of the new tokens per source, any positive scale); return whether the stream changed.

        Weights equal to those in effect there (to 1e-9 of a share) change nothing. A `start` before
        the current position is accepted only when the stream already changed there to the same
        weights (a resumed run applying its schedule again); otherwise `UserError`.
        """
        start = self.position if start is None else int(start)
        if start < 0:
            raise ValueError(f"a mix segment cannot start at {start}")
        named = {name: Fraction(w) for name, w in weights.items() if w > 0}
        if not named or any(w < 0 for w in weights.values()):
            raise ValueError(f"mix weights must be non-negative with a positive sum, got {weights}")
        total = sum(named.values(), Fraction(0))
        wanted = {name: float(w / total) for name, w in named.items()}
        if start < self.position:
            segment = next((seg for seg in self._segments if seg.start == start), None)
            if segment is None or not self._same_shares(segment, wanted):
                raise UserError(
                    f"stages: the mixture schedule of stage {self.stage.name!r} changed since the checkpoint "
                    "(its mix would change at a point the run has passed); resume with the config the run "
                    "was started with"
                )
            return False
        if self._same_shares(self._segment_at(start), wanted):
            return False
        self._add_segment(start, named)
        if self._warn_limits:
            self._warn_repetition(self.total_sequences, planned=True)
        return True

    def _same_shares(self, segment: _Segment, wanted: dict[str, float]) -> bool:
        have = {self._new_lanes[k].source: share for k, share in enumerate(segment.shares()) if share > 0}
        return set(have) == set(wanted) and all(abs(have[n] - wanted[n]) <= 1e-9 for n in wanted)

    def _segment_at(self, position: int) -> _Segment:
        return next(seg for seg in reversed(self._segments) if seg.start <= position)

    def _add_segment(self, start: int, weights: dict[str, Fraction]) -> None:
        """A segment from `start` on (replacing one that starts there); later ones are dropped."""
        keep = [seg for seg in self._segments if seg.start < start]
        self._segments = keep or self._segments[:1]
        for name in weights:
            self._mix_lane(name)
        offsets = tuple(self.lane_counts(start)[: len(self._new_lanes)])
        per_lane = tuple(weights.get(lane.source, Fraction(0)) for lane in self._new_lanes)
        lanes = tuple(k for k, w in enumerate(per_lane) if w > 0)
        segment = _Segment(
            start,
            start - self._replay_share.count_int(start),
            per_lane,
            lanes,
            tuple(_nested_shares([per_lane[k] for k in lanes])),
            offsets,
        )
        self._segments = [*keep, segment] if keep else [segment]

    # -- state and counters ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state: the global position, and where the mix changed (plain JSON data)."""
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "position": int(self.position),
            "fingerprint": self._fingerprint,
            "contents": self._contents(),
        }
        if len(self._segments) > 1 or self._segments[0].start > 0:
            state["segments"] = [
                {
                    "start": seg.start,
                    "weights": {
                        self._new_lanes[k].source: float(w) for k, w in enumerate(seg.weights) if w > 0
                    },
                }
                for seg in self._segments
            ]
        if self.adaptive is not None:
            state["adaptive"] = self.adaptive.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict`; the continuation is identical to the uninterrupted stream."""
        if int(state.get("version", -1)) != STATE_VERSION:
            raise UserError(f"sampler state: version {state.get('version')!r} is not {STATE_VERSION}")
        saved = state.get("contents") or {}  # absent in states written before it was recorded
        for name, content in self._contents().items():
            if saved.get(name) is not None and content is not None and saved[name] != content:
                raise UserError(
                    f"sources.{name}: its prepared tokens changed since the checkpoint (a file's contents or "
                    "order, or the tokenizer); resume needs the stage's data unchanged: restore the data, "
                    "or start a new run with --out"
                )
        if state.get("fingerprint") != self._fingerprint:
            raise UserError(
                f"stages: the data of stage {self.stage.name!r} changed since the checkpoint (its mix, "
                "replay, tokens, seq_len, seed or the sources' contents); resume needs them unchanged"
            )
        position = int(state["position"])
        if position < 0:
            raise UserError(f"sampler state: negative position {position}")
        segments = state.get("segments") or []
        for segment in segments:
            unknown = [name for name in segment["weights"] if name not in self._all_stores]
            if unknown:
                raise UserError(
                    f"stages: the checkpoint's stage {self.stage.name!r} drew on {unknown}, which this run "
                    "does not prepare; resume with the config the run was started with"
                )
        self._segments = self._segments[:1]
        for segment in segments:
            self._add_segment(int(segment["start"]), {k: Fraction(v) for k, v in segment["weights"].items()})
        if self.adaptive is not None:
            self.adaptive.load_state_dict(state.get("adaptive"))
        self.position = position

    def lane_counts(self, position: int | None = None) -> list[int]:
        """Sequences each lane served in the global stream before `position` (default: now)."""
        p = self.position if position is None else int(position)
        replayed = self._replay_share.count_int(p)
        segment = self._segment_at(p)
        counts = [segment.offsets[k] if k < len(segment.offsets) else 0 for k in range(len(self._new_lanes))]
        for k, count in zip(
            segment.lanes, _nested_counts(p - replayed - segment.new_start, segment.splits), strict=True
        ):
            counts[k] += count
        if self._replay_lanes:
            counts += _nested_counts(replayed, self._replay_splits)
        return counts

    def counters(self) -> dict[str, dict[str, Any]]:
        """Per source, over the global stream so far (all ranks): `tokens` (target tokens, i.e.
        sequences x seq_len), `sequences`, `new_sequences`, `replay_sequences`, `epochs` (sequences /
        windows per epoch), `repetitions` (sequences beyond one pass over the source)."""
        out: dict[str, dict[str, Any]] = {
            name: {"tokens": 0, "sequences": 0, "new_sequences": 0, "replay_sequences": 0}
            for name in self.source_names
        }
        for lane, count in zip(self._lanes, self.lane_counts(), strict=True):
            entry = out[lane.source]
            entry["sequences"] += count
            entry["replay_sequences" if lane.replay else "new_sequences"] += count
        for name, entry in out.items():
            windows = self._windows[name]
            entry["tokens"] = entry["sequences"] * self.seq_len
            entry["epochs"] = entry["sequences"] / windows
            entry["repetitions"] = max(0, entry["sequences"] - windows)
            entry["windows_per_epoch"] = windows
        return out

    def _warn_repetition(self, position: int, planned: bool) -> None:
        per_source: dict[str, int] = {}
        for lane, count in zip(self._lanes, self.lane_counts(position), strict=True):
            per_source[lane.source] = per_source.get(lane.source, 0) + count
        for name, sequences in per_source.items():
            limit = self._warn_limits.get(name)
            epochs = sequences / self._windows[name]
            if limit is None or name in self._warned or epochs <= limit:
                continue
            self._warned.add(name)
            verb = "will read" if planned else "has read"
            warnings.warn(
                f"stage {self.stage.name!r} {verb} source {name!r} {epochs:.1f} times (more than "
                f"sources.{name}.max_epochs_warning = {limit:g}); add data or lower its share",
                RepetitionWarning,
                stacklevel=3,
            )


def _nested_shares(weights: list[Fraction]) -> list[_Share]:
    """Shares for nested splits: lane k takes w_k / (w_k + ... + w_last) of what the lanes before left."""
    shares = []
    for k, w in enumerate(weights):
        rest = sum(weights[k:], Fraction(0))
        shares.append(_Share(1, 1) if k == len(weights) - 1 else _Share.of(w / rest))
    return shares


def _nested_counts(j: int, shares: Sequence[_Share]) -> list[int]:
    counts = []
    for share in shares:
        taken = share.count_int(j)
        counts.append(taken)
        j -= taken
    return counts
