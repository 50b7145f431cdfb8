"""Where a Hugging Face causal LM keeps its decoder blocks.

Sharding (one FSDP2 unit per block), compiling (one graph per block) and the `layers` parameter
presets all need the repeated blocks of a model, whatever its family calls them (`model.layers`,
`transformer.h`, `gpt_neox.layers`, ...): found from the module structure, here, once.
"""

from __future__ import annotations

from torch import nn


def find_decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The module path and the list of the decoder blocks of `model`: its longest `ModuleList` of
    modules of one class (the first such list when several are as long), or None when it has none."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and len({type(m) for m in module}) == 1:
            if best is None or len(module) > len(best[1]):
                best = (name, module)
    return best


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of `model` (see `find_decoder_blocks`); raises ValueError when it has none."""
    found = find_decoder_blocks(model)
    if found is None:
        raise ValueError(f"{type(model).__name__}: found no list of decoder blocks")
    return found[1]
