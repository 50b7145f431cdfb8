"""Sequences longer than a model's positions: refused for learned positions, warned for rotary ones."""

from __future__ import annotations

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from conftest import tiny_llama
from forgetless.errors import UserError
from forgetless.model.positions import ContextLengthWarning, check_context_length, has_learned_positions


def test_learned_positions_refuse_a_longer_sequence(tiny_tokenizer) -> None:
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tiny_tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    )
    assert has_learned_positions(gpt2)
    check_context_length(gpt2, 64, "train.seq_len")  # up to the limit is fine
    with pytest.raises(
        UserError, match=r"^train\.seq_len: 65 tokens, .* end at max_position_embeddings = 64"
    ):
        check_context_length(gpt2, 65, "train.seq_len")


def test_rotary_positions_warn_and_name_the_rope_scalings(tiny_tokenizer) -> None:
    llama = tiny_llama(tiny_tokenizer, max_position_embeddings=64)
    assert not has_learned_positions(llama)
    with pytest.warns(ContextLengthWarning, match=r"--seq-len: 128 tokens, beyond the 64 positions .*yarn"):
        check_context_length(llama, 128, "--seq-len")
