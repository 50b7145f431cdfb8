"""Short sequences mixed into a longer stage of a length curriculum (`stages[].short_share`).

A run that lengthens its context in stages (`seq_len: 256` then `seq_len: 1024`) keeps some training
at the previous, shorter length, so that short-context skill is not traded away for long-context
skill (Qwen-style long-context recipes keep about a quarter short sequences).

Definition. In a stage with `short_share: s` and the previous stage's length `S` (train.seq_len for
the first stage), which must divide the stage's length `L`: optimizer step n of the stage (counted
from 0) is *short* when floor((n + 1) s) > floor(n s). Every micro-batch of a short step, on every
rank, holds the same tokens the sampler drew for it, `B` windows of `L` tokens, cut into `B L / S`
sequences of `S` tokens: every token is still trained on exactly once, each predicted from the
tokens before it in its own piece. So the data, replay accounting and resume of the stage are those
without `short_share`; of any N consecutive steps, floor(N s) or one more are short, and `s` is the
share of the stage's training tokens seen with a context of at most `S` tokens. Whether a step is
short depends on its number alone, not on the micro-batch size or the number of processes, so
data-parallel runs and resumed runs cut the same steps; nothing is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from forgetless.config import RunConfig
from forgetless.methods.base import MicroBatch


@dataclass(frozen=True)
class ShortSequences:
    """Which micro-batches of a stage are cut into short sequences, and how."""

    share: Fraction  # of the stage's optimizer steps
    length: int  # tokens per short sequence (0: none)

    @classmethod
    def of(cls, config: RunConfig, stage_index: int) -> ShortSequences:
        length = config.short_seq_len_of(stage_index)
        if length is None:
            return cls(Fraction(0), 0)
        return cls(Fraction(str(config.stages[stage_index].short_share)), length)

    def is_short(self, step: int) -> bool:
        """Whether optimizer step `step` (0-based, over the stage) trains on short sequences."""
        if not self.share:
            return False
        return math.floor((step + 1) * self.share) > math.floor(step * self.share)

    def cut(self, batch: MicroBatch) -> MicroBatch:
        """`batch` as short sequences when its step is short, else as it is."""
        if not self.is_short(batch.step):
            return batch
        rows, length = batch.inputs.shape
        pieces = length // self.length
        replay = None if batch.replay is None else np.repeat(np.asarray(batch.replay), pieces)
        return MicroBatch(
            batch.inputs.reshape(rows * pieces, self.length),
            batch.targets.reshape(rows * pieces, self.length),
            replay,
            step=batch.step,
        )
