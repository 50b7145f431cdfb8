"""The roles of the modules inside a decoder block, found by watching one forward pass.

A pre-norm decoder block adds to its input (the residual stream) what its attention and its MLP
compute, each ending in an output projection (Llama's `o_proj` and `down_proj`, GPT-2's two
`c_proj`, GPT-NeoX's `dense` and `dense_4h_to_h`, Phi's `dense` and `fc2`). Block expansion zeroes
those projections in a copy so that the copy starts as the identity (LLaMA Pro), and ADEPT bypasses
a block by doing the same for a moment. Rather than keep a table of every family's names, the
projections are found by their role: in one forward pass of the model, the linear layers of the
first block are recorded in the order they run, and in each part of the block (each direct child
that holds linear layers: its attention, its MLP) the last one to run is that part's output
projection. `forgetless.model.expand` then checks that zeroing them really gives the identity, so a
layout this reading gets wrong fails loudly instead of training a different model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from forgetless.model.blocks import find_decoder_blocks


@dataclass(frozen=True)
class BlockLayout:
    """Where the decoder blocks of a model are and which of their modules write to the residual stream."""

    path: str  # module path of the blocks' ModuleList, e.g. "model.layers"
    blocks: nn.ModuleList
    output_projections: tuple[str, ...]  # paths inside a block, e.g. ("self_attn.o_proj", "mlp.down_proj")

    def projections(self, block: nn.Module) -> list[nn.Module]:
        """The output projections of `block` (one of `blocks`, or a copy of one)."""
        return [block.get_submodule(name) for name in self.output_projections]


class UnknownLayout(ValueError):
    """The blocks of a model do not have the layout block expansion understands."""


def is_linear(module: nn.Module) -> bool:
    """A linear map with a 2-D weight and no sub-modules: nn.Linear, or GPT-2's Conv1D."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, torch.Tensor)
        and weight.ndim == 2
        and not isinstance(module, nn.Embedding)
        and next(module.children(), None) is None
    )


@torch.no_grad()
def block_layout(model: nn.Module) -> BlockLayout:
    """The decoder blocks of `model` (an HF causal LM) and the output projections of each of their parts.

    Runs the model once on four tokens. Raises `UnknownLayout` when the model has no list of blocks,
    when a block has a linear layer outside any part, or when fewer than two parts write to the
    residual stream (an attention and an MLP).
    """
    found = find_decoder_blocks(model)
    if found is None:
        raise UnknownLayout(f"{type(model).__name__} has no list of decoder blocks")
    path, blocks = found
    first = blocks[0]
    order: list[str] = []
    hooks = []
    for name, module in first.named_modules():
        if name and is_linear(module):
            hooks.append(module.register_forward_hook(lambda mod, args, out, name=name: order.append(name)))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        model(input_ids=torch.zeros(1, 4, dtype=torch.long, device=device), use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    last_in_part: dict[str, str] = {}
    for name in order:
        part, dot, _ = name.partition(".")
        if not dot:
            raise UnknownLayout(
                f"{type(first).__name__} has the linear layer {name!r} directly in the block, outside an "
                "attention or MLP part"
            )
        last_in_part[part] = name
    if len(last_in_part) < 2:
        raise UnknownLayout(
            f"{type(first).__name__}: expected an attention and an MLP part with linear layers, found "
            f"{sorted(last_in_part) or 'none'}"
        )
    return BlockLayout(path=path, blocks=blocks, output_projections=tuple(last_in_part.values()))


@torch.no_grad()
def zero_output_projections(layout: BlockLayout, block: nn.Module) -> None:
    """Zero the weight (and bias) of every output projection of `block`, in place."""
    for module in layout.projections(block):
        for param in module.parameters(recurse=False):
            param.zero_()
