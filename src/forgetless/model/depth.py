"""Depth up-scaling: a deeper model from copies of the base's decoder blocks in a given order.

Kim et al. 2023 (SOLAR 10.7B, arXiv:2312.15166) take a 32-block base, stack two copies of it, drop the last 8 blocks
of the first copy and the first 8 of the second, and continue pretraining the 48-block result:

    {kind: depth_upscale, layers: "0-23,8-31"}

`layers` lists the base's blocks (0-based, ranges inclusive) in their new order. The first time a
block appears it is the base's block itself; every later appearance is a copy with weights of its
own, and those copies are what the transform adds (`methods.train_only: [new]` trains them alone).
A block the order leaves out is dropped. As in block expansion (`forgetless.model.expand`), layer
indices are renumbered (the `layer_idx` that keys the KV cache), per-layer config lists
(`layer_types`) follow the blocks, and `num_hidden_layers` counts them, so `final/` loads with
plain `AutoModelForCausalLM.from_pretrained`.

Unlike block expansion, stacking copies changes the function of the model (SOLAR's continued
pretraining recovers it); the order "0-(n-1)" rebuilds the base itself.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from forgetless.config import DepthUpscaleConfig, parse_block_ranges
from forgetless.errors import UserError
from forgetless.model.blocks import find_decoder_blocks
from forgetless.model.expand import PER_LAYER_CONFIG_LISTS
from forgetless.model.transform_contract import Outcome, TransformContext


def depth_upscale(
    model: nn.Module, tokenizer: Any, spec: DepthUpscaleConfig, context: TransformContext
) -> Outcome:
    """Rebuild the decoder blocks of `model` (in place) in the order `spec.layers`; return the names
    of the copies' parameters. Raises `UserError` naming `context.key` for an order that does not fit."""
    key = context.key
    found = find_decoder_blocks(model)
    if found is None:
        raise UserError(f"{key}: model type {_model_type(model)!r} has no list of decoder blocks to stack")
    path, blocks = found
    count = len(blocks)
    order = parse_block_ranges(spec.layers)
    outside = sorted({i for i in order if not 0 <= i < count})
    if outside:
        raise UserError(f"{key}.layers: {outside} outside the model's {count} decoder blocks (0-{count - 1})")
    new_blocks: list[nn.Module] = []
    copies: list[int] = []
    used: set[int] = set()
    for i in order:
        if i in used:
            copies.append(len(new_blocks))
            new_blocks.append(copy.deepcopy(blocks[i]))
        else:
            used.add(i)
            new_blocks.append(blocks[i])
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, nn.ModuleList(new_blocks))
    for index, block in enumerate(new_blocks):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                setattr(module, "layer_idx", index)  # noqa: B010 - an attribute of HF attention modules
    config: Any = model.config
    for field in PER_LAYER_CONFIG_LISTS:
        values = getattr(config, field, None)
        if isinstance(values, list) and len(values) == count:
            setattr(config, field, [values[i] for i in order])
    config.num_hidden_layers = len(new_blocks)
    prefixes = tuple(f"{path}.{i}." for i in copies)
    added = [name for name, _ in model.named_parameters() if name.startswith(prefixes)]
    return Outcome(added=added, resolved={"layers": order})


def _model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))
