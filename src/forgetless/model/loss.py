"""The language-modelling loss of a causal LM on packed sequences."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from forgetless.errors import UserError
from forgetless.model.fused_ce import linear_cross_entropy, linear_token_nll

# Families whose logits are exactly `final_hidden @ lm_head.weight.T` (no bias, scaling or
# soft-capping), so the loss can be computed from the hidden states without materialising logits.
PLAIN_HEAD_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt_neox", "phi3", "gemma", "gpt2"})

# On a CPU the fused loss walks over chunks of about this many float32 logits (8 MiB), small enough
# to stay in cache between the passes over a chunk; elsewhere it keeps its larger default chunks.
CPU_CHUNK_LOGITS = 1 << 21

# Elsewhere, forward-only scoring (`causal_lm_token_nll`) takes chunks of this many float32 logits
# (512 MiB): large enough for the device's kernels, small beside a model's activations.
DEVICE_CHUNK_LOGITS = 1 << 27

# The name under which a sharded model carries `fused_lm_loss` as one of its own forward methods
# (see `forgetless.distributed.shard_model`): FSDP2 gathers the root's parameters (embedding,
# final norm, LM head) around such a method as it does around `forward`.
FUSED_LOSS_METHOD = "fused_lm_loss"

# `train.fused_loss` values that name another project's fused linear + cross-entropy (CUDA only):
# the package that provides it, and how to install it.
EXTERNAL_KERNELS = {
    "liger": ("liger_kernel", "pip install liger-kernel"),
    "cce": ("cut_cross_entropy", "pip install cut-cross-entropy"),
}


def causal_lm_loss(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    fused: bool = False,
    compute_dtype: torch.dtype | None = None,
    compiled: bool = False,
    kernel: str = "forgetless",
) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of `model` on `inputs` [B, T] against `targets` [B, T].

    `targets[:, t]` is the token that follows `inputs[:, t]`; targets equal to -100 are ignored.
    The softmax is always float32. With `fused`, the loss is computed from the final hidden states
    chunk by chunk and the full logits are never stored (`forgetless.model.fused_ce`, or with
    `kernel` liger / cce that project's kernel on CUDA); this needs a model whose logits are a
    plain product with the head (see `supports_fused_loss`).
    """
    if fused:
        options: dict[str, Any] = {"compute_dtype": compute_dtype, "compiled": compiled, "kernel": kernel}
        own_method = getattr(model, FUSED_LOSS_METHOD, None)
        if own_method is not None:
            return own_method(inputs, targets, **options)
        return fused_lm_loss(model, inputs, targets, **options)
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def supports_fused_loss(model: torch.nn.Module) -> bool:
    """Whether `model`'s logits are a plain product of its final hidden states with its LM head, so
    that the loss can come from the hidden states (`fused_lm_loss`, `causal_lm_token_nll`)."""
    config = getattr(model, "config", None)
    head: Any = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    # A head that trains fully under LoRA is peft's wrapper of a trainable copy: `head.weight` is
    # that copy, and the copy is what the forward uses. A LoRA-adapted head is not a plain product.
    copies = getattr(head, "modules_to_save", None)
    if isinstance(copies, torch.nn.ModuleDict):
        head = copies[head.active_adapter] if isinstance(head.active_adapter, str) else None
    return (
        getattr(config, "model_type", None) in PLAIN_HEAD_FAMILIES
        and isinstance(head, torch.nn.Linear)
        and head.bias is None
        and getattr(config, "logit_scale", None) is None
        and getattr(config, "final_logit_softcapping", None) is None
    )


def causal_lm_token_nll(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    fused: bool = False,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """-log p(target) of every position, float32 `[B, T]` (0 where the target is -100): the terms
    whose mean `causal_lm_loss` is. Forward only: call it without gradients (evaluation).

    With `fused` (a model where `supports_fused_loss`), the NLL comes from the final hidden states
    chunk by chunk (`fused_ce.linear_token_nll`) and the logits `[B, T, V]` are never stored; else
    from the model's logits, upcast to float32 a chunk of rows at a time. The softmax is float32
    either way, so the two agree to the rounding of the products.
    """
    flat_targets = targets.flatten()
    if fused:
        hidden = model.base_model(input_ids=inputs, use_cache=False).last_hidden_state.flatten(0, 1)
        weight = model.get_output_embeddings().weight
        nll = linear_token_nll(
            hidden,
            weight,
            flat_targets,
            chunk_size=_chunk_rows(hidden.device, weight.shape[0]),
            compute_dtype=compute_dtype,
        )
        return nll.view(targets.shape)
    logits = model(input_ids=inputs, use_cache=False).logits.flatten(0, 1)
    rows = _chunk_rows(logits.device, logits.shape[-1])
    parts = [
        F.cross_entropy(
            logits[first : first + rows].float(),
            flat_targets[first : first + rows],
            ignore_index=-100,
            reduction="none",
        )
        for first in range(0, len(flat_targets), rows)
    ]
    return torch.cat(parts).view(targets.shape)


def _chunk_rows(device: torch.device, vocab: int) -> int:
    logits = CPU_CHUNK_LOGITS if device.type == "cpu" else DEVICE_CHUNK_LOGITS
    return max(64, logits // vocab)


def fused_lm_loss(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    compute_dtype: torch.dtype | None = None,
    compiled: bool = False,
    kernel: str = "forgetless",
) -> torch.Tensor:
    """`causal_lm_loss` with `fused`: the loss from the final hidden states and the LM head's weight."""
    hidden = model.base_model(input_ids=inputs, use_cache=False).last_hidden_state.flatten(0, 1)
    weight = model.get_output_embeddings().weight
    targets = targets.flatten()
    if kernel != "forgetless" and hidden.device.type == "cuda":
        return external_linear_cross_entropy(kernel, hidden, weight, targets, compute_dtype or hidden.dtype)
    chunk: dict[str, int] = {}
    if hidden.device.type == "cpu":
        chunk["chunk_size"] = max(64, CPU_CHUNK_LOGITS // weight.shape[0])
    return linear_cross_entropy(
        hidden, weight, targets, compute_dtype=compute_dtype, compiled=compiled, **chunk
    )


def external_linear_cross_entropy(
    kernel: str, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets` (-100 ignored) by Liger-Kernel's
    (`liger`) or cut-cross-entropy's (`cce`) fused kernel, with both operands in `dtype`."""
    hidden, weight = hidden.to(dtype), weight.to(dtype)
    if kernel == "liger":
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        return liger_fused_linear_cross_entropy(hidden, weight, targets, ignore_index=-100).float()
    if kernel == "cce":
        from cut_cross_entropy import linear_cross_entropy as cce_linear_cross_entropy

        return cce_linear_cross_entropy(hidden, weight, targets, ignore_index=-100).float()
    raise ValueError(f"unknown fused-loss kernel {kernel!r}")


def check_external_kernel(kernel: str) -> None:
    """Raise `UserError` (one line) unless the package behind `train.fused_loss: <kernel>` imports."""
    module, install = EXTERNAL_KERNELS[kernel]
    try:
        __import__(module)
    except ImportError as err:
        raise UserError(
            f"train.fused_loss: {kernel} needs the {module} package, which is not importable ({err}); "
            f"{install}, or use on (forgetless's own kernel)"
        ) from None


def causal_lm_loss_and_logits(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`causal_lm_loss` (unfused) and the logits `[B, T, vocab]` it came from, for methods that need
    them (self-distillation compares them with a teacher's)."""
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100), logits
