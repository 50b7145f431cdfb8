"""Forward-only per-token NLL: the fused path (from hidden states, chunk by chunk) equals the plain
path (from the model's logits), and both equal a direct float64 computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from families import VOCAB, tiny_family

from forgetless.model.fused_ce import linear_token_nll
from forgetless.model.loss import causal_lm_token_nll, supports_fused_loss


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 5000])
def test_linear_token_nll_matches_cross_entropy_per_token(chunk_size: int) -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 24, generator=gen)
    weight = torch.randn(500, 24, generator=gen)
    targets = torch.randint(0, 500, (300,), generator=gen)
    targets[::5] = -100
    expected = F.cross_entropy(
        hidden.double() @ weight.double().t(), targets, ignore_index=-100, reduction="none"
    )
    with torch.inference_mode():
        got = linear_token_nll(hidden, weight, targets, chunk_size=chunk_size)
    assert got.dtype == torch.float32 and got.shape == (300,)
    assert torch.all(got[::5] == 0)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt2", "gpt_neox", "gemma"])
def test_fused_and_plain_token_nll_agree_in_float32(family: str) -> None:
    model = tiny_family(family)
    assert supports_fused_loss(model)
    batch = torch.randint(0, VOCAB, (3, 33), generator=torch.Generator().manual_seed(1))
    inputs, targets = batch[:, :-1], batch[:, 1:].clone()
    targets[2, 20:] = -100  # padding at the end of a row
    with torch.inference_mode():
        plain = causal_lm_token_nll(model, inputs, targets)
        fused = causal_lm_token_nll(model, inputs, targets, fused=True)
        logits = model(input_ids=inputs).logits.double()
    direct = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)
    assert fused.shape == plain.shape == targets.shape
    assert torch.all(fused[2, 20:] == 0) and torch.all(plain[2, 20:] == 0)
    assert fused.double().sum().item() == pytest.approx(plain.double().sum().item(), rel=1e-5)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused.double(), direct, rtol=1e-5, atol=1e-5)


def test_fused_token_nll_under_bf16_autocast_is_close_to_float32() -> None:
    model = tiny_family("llama")
    batch = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        fp32 = causal_lm_token_nll(model, batch[:, :-1], batch[:, 1:], fused=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = causal_lm_token_nll(
                model, batch[:, :-1], batch[:, 1:], fused=True, compute_dtype=torch.bfloat16
            )
    assert bf16.dtype == torch.float32  # the softmax stays float32
    assert bf16.sum().item() == pytest.approx(fp32.sum().item(), rel=2e-2)
