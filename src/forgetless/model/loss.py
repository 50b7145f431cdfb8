"""The language-modelling loss of a causal LM on packed sequences."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from forgetless.model.fused_ce import linear_cross_entropy

# On a CPU the fused loss walks over chunks of about this many float32 logits (8 MiB), small enough
# to stay in cache between the passes over a chunk; elsewhere it keeps its larger default chunks.
CPU_CHUNK_LOGITS = 1 << 21


def causal_lm_loss(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    fused: bool = False,
    compute_dtype: torch.dtype | None = None,
    compiled: bool = False,
) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of `model` on `inputs` [B, T] against `targets` [B, T].

    `targets[:, t]` is the token that follows `inputs[:, t]`; targets equal to -100 are ignored.
    The softmax is always float32. With `fused`, the loss is computed from the final hidden states
    chunk by chunk and the full logits are never stored (`forgetless.model.fused_ce`); this needs
    a model whose logits are a plain product with the head (see `parallelize.supports_fused_loss`).
    """
    if fused:
        hidden = model.base_model(input_ids=inputs, use_cache=False).last_hidden_state
        head = model.get_output_embeddings()
        chunk: dict[str, int] = {}
        if hidden.device.type == "cpu":
            chunk["chunk_size"] = max(64, CPU_CHUNK_LOGITS // head.weight.shape[0])
        return linear_cross_entropy(
            hidden.flatten(0, 1),
            head.weight,
            targets.flatten(),
            compute_dtype=compute_dtype,
            compiled=compiled,
            **chunk,
        )
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def causal_lm_loss_and_logits(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`causal_lm_loss` (unfused) and the logits `[B, T, vocab]` it came from, for methods that need
    them (self-distillation compares them with a teacher's)."""
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100), logits
