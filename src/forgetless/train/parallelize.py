"""Speed and scale applied to an unchanged Hugging Face model: compile, activation checkpointing.

Model code stays free of these concerns (as in torchtitan): the run loads a plain HF model and then
calls the functions here, which change how its decoder blocks execute, never what they compute.
"""

from __future__ import annotations

import torch
from torch import nn

from forgetless.model.blocks import decoder_blocks

# Families whose logits are exactly `final_hidden @ lm_head.weight.T` (no bias, scaling or
# soft-capping), so the loss can be computed from the hidden states without materialising logits.
PLAIN_HEAD_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt_neox", "phi3", "gemma", "gpt2"})


def compile_blocks(model: nn.Module) -> None:
    """torch.compile each decoder block in place.

    Blocks share one compiled graph (parameters are graph inputs), so compile time does not grow
    with depth, and the embedding, head and loss stay in eager mode where they are cheap.
    """
    for block in decoder_blocks(model):
        block.compile()


def supports_fused_loss(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    # A head that trains fully under LoRA is peft's wrapper of a trainable copy: `head.weight` is
    # that copy, and the copy is what the forward uses. A LoRA-adapted head is not a plain product.
    copies = getattr(head, "modules_to_save", None)
    if isinstance(copies, nn.ModuleDict):
        head = copies[head.active_adapter] if isinstance(head.active_adapter, str) else None
    return (
        getattr(config, "model_type", None) in PLAIN_HEAD_FAMILIES
        and isinstance(head, nn.Linear)
        and head.bias is None
        and getattr(config, "logit_scale", None) is None
        and getattr(config, "final_logit_softcapping", None) is None
    )


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30
