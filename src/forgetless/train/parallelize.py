"""Speed and scale applied to an unchanged Hugging Face model: compile, activation checkpointing.

Model code stays free of these concerns (as in torchtitan): the run loads a plain HF model and then
calls the functions here, which change how its decoder blocks execute, never what they compute.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch._dynamo
import torch.utils.checkpoint
from torch import nn

from forgetless.errors import UserError
from forgetless.model.blocks import decoder_blocks
from forgetless.model.loss import PLAIN_HEAD_FAMILIES, supports_fused_loss  # noqa: F401  (callers import them from here too)


def compile_blocks(model: nn.Module) -> None:
    """torch.compile each decoder block in place.

    Blocks share one compiled graph (parameters are graph inputs), so compile time does not grow
    with depth, and the embedding, head and loss stay in eager mode where they are cheap.
    """
    for block in decoder_blocks(model):
        block.compile()


# Where HF decoder blocks keep their MLP and their attention, by family (first name found wins).
_BLOCK_PARTS = {
    "mlp": ("mlp", "feed_forward", "block_sparse_moe"),
    "attention": ("self_attn", "attn", "attention", "self_attention"),
}


def checkpoint_activations(model: nn.Module, setting: bool | str, every: int = 2, part: str = "block") -> int:
    """Recompute activations in the backward pass instead of storing them; return how many modules.

    `setting` True: every decoder block, through the model's own gradient checkpointing. "selective":
    `part` ("block", "mlp" or "attention") of every `every`-th decoder block, starting with the first,
    each running its forward under non-reentrant `torch.utils.checkpoint` (which `torch.compile`
    traces, so a compiled block recomputes inside its graph; module hooks such as FSDP2's stay
    outside). Parameter names do not change.
    """
    if setting is False:
        return 0
    blocks = decoder_blocks(model)
    if setting is True:
        model.gradient_checkpointing_enable()
        return len(blocks)
    chosen = [block for index, block in enumerate(blocks) if index % every == 0]
    for block in chosen:
        _recompute_in_backward(block if part == "block" else _block_part(block, part))
    # Hooks inside a block (HF's output capturing, hub-kernel wrappers) set a context variable: a
    # side effect that torch.compile otherwise refuses to trace into a checkpoint, running the block
    # eagerly instead. Not replaying it in the recompute changes nothing the loss depends on.
    if hasattr(torch._dynamo.config, "skip_fwd_side_effects_in_bwd_under_checkpoint"):
        torch._dynamo.config.skip_fwd_side_effects_in_bwd_under_checkpoint = True
    return len(chosen)


def _block_part(block: nn.Module, part: str) -> nn.Module:
    for name in _BLOCK_PARTS[part]:
        module = getattr(block, name, None)
        if isinstance(module, nn.Module):
            return module
    raise UserError(
        f"train.selective_checkpointing.part: {part} is not found in {type(block).__name__} (looked for "
        f"{', '.join(_BLOCK_PARTS[part])}); use part: block"
    )


def _recompute_in_backward(module: nn.Module) -> None:
    forward = module.forward

    @functools.wraps(forward)
    def recomputed(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    module.forward = recomputed


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30
