"""The language-modelling loss of a causal LM on packed sequences."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_lm_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of `model` on `inputs` [B, T] against `targets` [B, T].

    `targets[:, t]` is the token that follows `inputs[:, t]`; targets equal to -100 are ignored.
    The logits are upcast to float32 for the softmax, whatever the compute dtype.
    """
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
