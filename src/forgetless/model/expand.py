"""Block expansion: new decoder blocks that start as the identity (LLaMA Pro, ADEPT).

Wu et al. 2024 (LLaMA Pro) copy chosen decoder blocks, insert each copy right after its original
and zero the copy's output projections (attention and MLP): the copy then adds nothing to the
residual stream, so the expanded model computes exactly what the base did, and training only the
copies (`methods.train_only: [new]`) adds capacity for the new domain while every original weight
stays as it was. Their placement copies block i whenever (i + 1) % every == 0 (`every: 4` turns 32
blocks into 40). ADEPT (2025) instead copies the blocks that matter least for general text: a
block's importance is the rise in loss on a general probe when the block is bypassed.

    {kind: expand_blocks, every: 4}                     # LLaMA Pro's interleaved placement
    {kind: expand_blocks, layers: [1, 3]}               # these blocks (0-based, original numbering)
    {kind: expand_blocks, select: least_important, count: 2, probe: general, probe_tokens: 16384}

After the copies are in place, layer indices are renumbered (the `layer_idx` attributes that key
the KV cache), per-layer config lists (`layer_types`: sliding or full attention) get the copy's
entry beside the original's, and `num_hidden_layers` counts the new blocks; `final/` then loads with
plain `AutoModelForCausalLM.from_pretrained`. Output projections are found by role
(`forgetless.model.layout`), and the function of the model is checked on a short random input: a
block layout that zeroing does not turn into the identity is refused as bad input.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgetless.config import ExpandBlocksConfig
from forgetless.errors import UserError
from forgetless.model.layout import BlockLayout, UnknownLayout, block_layout, zero_output_projections
from forgetless.model.transform_contract import Outcome, TransformContext

# Per-layer config lists that follow the blocks (one entry per block).
PER_LAYER_CONFIG_LISTS = ("layer_types", "no_rope_layers")


def expand_blocks(
    model: nn.Module, tokenizer: Any, spec: ExpandBlocksConfig, context: TransformContext
) -> Outcome:
    """Insert identity copies of the chosen blocks of `model` (in place); return the transform's
    `Outcome` (see `forgetless.model.transforms`): the names of the copies' parameters, and the
    chosen blocks as `resolved = {"layers": [...], "importance": [...]}`.

    `context.resolved`, when set (a resumed run), gives the blocks to copy without probing again.
    Raises `UserError` naming `context.key` for a choice that does not fit the model or a block
    layout that expansion does not understand.
    """
    key = context.key
    try:
        layout = block_layout(model)
    except UnknownLayout as err:
        raise UserError(f"{key}: cannot expand {_family(model)}: {err}") from None
    count = len(layout.blocks)
    resolved: dict[str, Any] = {}
    if context.resolved is not None:
        layers = list(context.resolved["layers"])
        resolved = dict(context.resolved)
    elif spec.every is not None:
        if count % spec.every:
            divisors = [d for d in range(1, count + 1) if count % d == 0]
            raise UserError(
                f"{key}.every: {spec.every} does not divide the model's {count} decoder blocks into equal "
                f"groups; use one of {divisors} or list the blocks with layers: [...]"
            )
        layers = [i for i in range(count) if (i + 1) % spec.every == 0]
    elif spec.layers is not None:
        bad = [i for i in spec.layers if not 0 <= i < count]
        if bad:
            raise UserError(f"{key}.layers: {bad} outside the model's {count} decoder blocks (0-{count - 1})")
        layers = sorted(spec.layers)
    else:
        assert spec.count is not None and spec.probe is not None  # the config guarantees them
        if spec.count > count:
            raise UserError(f"{key}.count: {spec.count} is more than the model's {count} decoder blocks")
        if context.probe_batches is None:
            raise UserError(f"{key}.probe: no probe data in this context")
        importance = context.agree(
            layer_importance(model, layout, context.probe_batches(spec.probe, spec.probe_tokens))
        )
        layers = sorted(sorted(range(count), key=lambda i: (importance[i], i))[: spec.count])
        resolved["importance"] = importance
    resolved["layers"] = layers

    probe = _probe_input(model)
    before = _logits(model, probe)
    added = insert_identity_copies(model, layout, layers)
    after = _logits(model, probe)
    if not torch.allclose(before, after, rtol=1e-5, atol=1e-5 * float(before.abs().max().clamp(min=1.0))):
        raise UserError(
            f"{key}: cannot expand {_family(model)}: zeroing {', '.join(layout.output_projections)} does not "
            "make a copied block the identity (a block layout this transform does not know)"
        )
    return Outcome(added=added, resolved=resolved)


def insert_identity_copies(model: nn.Module, layout: BlockLayout, layers: list[int]) -> list[str]:
    """Copy each block in `layers` (original 0-based indices) right after itself with its output
    projections zeroed; renumber layer indices and update the config. Returns the names of the
    copies' parameters in the expanded model."""
    chosen = set(layers)
    new_blocks: list[nn.Module] = []
    copies: list[int] = []
    for i, block in enumerate(layout.blocks):
        new_blocks.append(block)
        if i in chosen:
            twin = copy.deepcopy(block)
            zero_output_projections(layout, twin)
            copies.append(len(new_blocks))
            new_blocks.append(twin)
    parent_path, _, leaf = layout.path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, nn.ModuleList(new_blocks))
    for index, block in enumerate(new_blocks):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                setattr(module, "layer_idx", index)  # noqa: B010 - nn.Module attributes are typed as tensors
    _expand_config(model.config, len(layout.blocks), sorted(chosen))
    prefixes = tuple(f"{layout.path}.{i}." for i in copies)
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def _expand_config(config: Any, count: int, layers: list[int]) -> None:
    for field in PER_LAYER_CONFIG_LISTS:
        values = getattr(config, field, None)
        if isinstance(values, list) and len(values) == count:
            expanded = []
            for i, value in enumerate(values):
                expanded.extend([value, value] if i in layers else [value])
            setattr(config, field, expanded)
    config.num_hidden_layers = count + len(layers)


@torch.no_grad()
def layer_importance(model: nn.Module, layout: BlockLayout, batches: list[torch.Tensor]) -> list[float]:
    """The rise in mean loss (nats/token) on `batches` (int64 `[B, T + 1]` token windows) when each
    block is bypassed, by block index: ADEPT's general-competence importance.

    Bypassing zeroes the block's output projections for the measurement, so the block passes its
    input on unchanged; the weights are restored afterwards bit for bit.
    """
    was_training = model.training
    model.eval()
    try:
        base = _mean_loss(model, batches)
        rises = []
        for block in layout.blocks:
            params = [p for m in layout.projections(block) for p in m.parameters(recurse=False)]
            saved = [p.detach().clone() for p in params]
            for p in params:
                p.zero_()
            rises.append(_mean_loss(model, batches) - base)
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)
    finally:
        model.train(was_training)
    return rises


def _mean_loss(model: nn.Module, batches: list[torch.Tensor]) -> float:
    total, tokens = 0.0, 0
    device = next(model.parameters()).device
    for batch in batches:
        batch = batch.to(device)
        logits = model(input_ids=batch[:, :-1], use_cache=False).logits
        targets = batch[:, 1:]
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum"))
        tokens += targets.numel()
    return total / max(tokens, 1)


def _probe_input(model: Any) -> torch.Tensor:
    vocab = model.get_input_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (2, 16), generator=generator)
    return tokens.to(next(model.parameters()).device)


@torch.no_grad()
def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(input_ids=tokens, use_cache=False).logits.float()
    finally:
        model.train(was_training)


def _family(model: nn.Module) -> str:
    return f"model type {getattr(model.config, 'model_type', type(model).__name__)!r}"
