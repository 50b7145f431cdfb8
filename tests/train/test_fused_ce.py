"""The fused linear + cross-entropy equals the plain loss, in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetless.config import InitConfig
from forgetless.model.blocks import decoder_blocks
from forgetless.model.fused_ce import linear_cross_entropy
from forgetless.model.init import init_model
from forgetless.model.loss import causal_lm_loss
from forgetless.train.parallelize import supports_fused_loss


@pytest.mark.parametrize("chunk_size", [1, 64, 1000, 5000])
def test_matches_cross_entropy_in_float64(chunk_size: int) -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(1000, 48, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(300, 48, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 300, (1000,), generator=gen)
    targets[::7] = -100

    reference = F.cross_entropy(hidden @ weight.t(), targets)
    grad_h, grad_w = torch.autograd.grad(3.0 * reference, (hidden, weight))
    fused = linear_cross_entropy(hidden, weight, targets, chunk_size=chunk_size)
    fused_h, fused_w = torch.autograd.grad(3.0 * fused, (hidden, weight))

    assert fused.item() == pytest.approx(reference.item(), rel=1e-6)  # the softmax runs in float32
    torch.testing.assert_close(fused_h, grad_h, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fused_w, grad_w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("autocast", [False, True])
def test_float32_hidden_states_with_a_bf16_product(autocast: bool) -> None:
    """What a run with bf16 autocast and float32 master weights passes in: float32 hidden states and
    head, products in bf16; the gradients come back in float32 at bf16 accuracy."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(300, 32, generator=gen, requires_grad=True)
    weight = torch.randn(200, 32, generator=gen, requires_grad=True)
    targets = torch.randint(0, 200, (300,), generator=gen)
    reference = F.cross_entropy(hidden.double() @ weight.double().t(), targets)
    grad_h, grad_w = torch.autograd.grad(reference, (hidden, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        fused = linear_cross_entropy(hidden, weight, targets, chunk_size=64, compute_dtype=torch.bfloat16)
    fused_h, fused_w = torch.autograd.grad(fused, (hidden, weight))
    assert fused_h.dtype == fused_w.dtype == torch.float32
    assert fused.item() == pytest.approx(reference.item(), rel=2e-2)
    for got, want in ((fused_h, grad_h), (fused_w, grad_w)):
        assert ((got.double() - want).norm() / want.norm()).item() < 2e-2


def test_without_grad_gives_the_loss_only() -> None:
    hidden, weight = torch.randn(50, 8), torch.randn(20, 8)
    targets = torch.randint(0, 20, (50,))
    with torch.no_grad():
        value = linear_cross_entropy(hidden, weight, targets, chunk_size=16)
    assert value.item() == pytest.approx(F.cross_entropy(hidden @ weight.t(), targets).item(), rel=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_model_loss_and_gradients_match(family: str, tiny_tokenizer) -> None:
    torch.manual_seed(0)
    init = InitConfig(architecture=family, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model = init_model(init, tiny_tokenizer)
    assert supports_fused_loss(model)
    assert len(decoder_blocks(model)) == 2
    batch = torch.randint(0, len(tiny_tokenizer), (3, 17))
    inputs, targets = batch[:, :-1], batch[:, 1:]

    plain = causal_lm_loss(model, inputs, targets)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()), allow_unused=True)
    fused = causal_lm_loss(model, inputs, targets, fused=True)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()), allow_unused=True)

    assert fused.item() == pytest.approx(plain.item(), rel=1e-5)
    for a, b in zip(plain_grads, fused_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_soft_capped_heads_are_not_fused(tiny_tokenizer) -> None:
    init = InitConfig(architecture="gemma2", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    assert not supports_fused_loss(init_model(init, tiny_tokenizer))


def test_the_run_says_why_it_uses_the_fused_loss_or_not(tiny_tokenizer) -> None:
    from forgetless.distributed import World
    from forgetless.train.run import _use_fused_loss

    llama = init_model(InitConfig(hidden_size=32, num_layers=1, num_heads=2), tiny_tokenizer)
    gemma2 = init_model(
        InitConfig(architecture="gemma2", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
        tiny_tokenizer,
    )
    cpu = torch.device("cpu")

    def use(setting: str, model: torch.nn.Module) -> tuple[str | None, str]:
        return _use_fused_loss(setting, model, World(), cpu, sharded=False)

    assert use("off", llama) == (None, "train.fused_loss is off")
    assert use("on", llama) == ("forgetless", "train.fused_loss is on and model type 'llama' supports it")
    kernel, why = use("auto", gemma2)
    assert kernel is None and why.startswith("model type 'gemma2': its logits are not a plain product")
    kernel, why = use("liger", llama)  # Liger's kernel is CUDA-only: forgetless's own runs on a CPU
    assert kernel == "forgetless" and "CUDA-only" in why
