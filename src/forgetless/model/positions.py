"""How far a model's positions reach, and what a longer sequence means for it.

A model with learned position embeddings (GPT-2, OPT, ...) has one row per position up to its
`max_position_embeddings`: a longer sequence has no embedding to look up, so it is refused. A
rotary model (Llama, Qwen, Mistral, GPT-NeoX, ...) computes positions, so a longer sequence runs,
but at positions the model never saw in training: that earns a warning that names the RoPE
scalings transformers provides to stretch them first. A stage of its own `seq_len` (a length
curriculum) is held to more: beyond the model's context it is refused, unless a RoPE transform
(`forgetless.model.rope`) set up that context first (`check_stage_length`).
"""

from __future__ import annotations

import warnings

from torch import nn

from forgetless.errors import UserError


class ContextLengthWarning(UserWarning):
    """A sequence longer than a rotary model's trained positions."""


def check_context_length(model: nn.Module, seq_len: int, key: str) -> None:
    """Refuse (`UserError` naming `key`) a `seq_len` beyond a model's learned positions; warn for one
    beyond a rotary model's `max_position_embeddings`."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or seq_len <= limit:
        return
    if has_learned_positions(model):
        raise UserError(
            f"{key}: {seq_len} tokens, but the model's learned position embeddings end at "
            f"max_position_embeddings = {limit}; use {key} {limit} or less"
        )
    if is_rotary(config):
        warnings.warn(
            f"{key}: {seq_len} tokens, beyond the {limit} positions the model was trained on "
            f"(max_position_embeddings); stretch its rotary positions first with a RoPE scaling "
            f"({', '.join(rope_scalings())}: rope_parameters in its config.json)",
            ContextLengthWarning,
            stacklevel=2,
        )


def check_stage_length(model: nn.Module, seq_len: int, key: str, *, rope_changed: bool) -> None:
    """Refuse (`UserError` naming `key`, a stage's `seq_len`) a length beyond the context the model's
    config sets up (`context_length`): without a RoPE transform, beyond `max_position_embeddings`;
    with one, beyond what it set up."""
    config = getattr(model, "config", None)
    limit = context_length(config)
    if limit is None or seq_len <= limit:
        return
    if has_learned_positions(model):
        check_context_length(model, seq_len, key)
    if rope_changed:
        raise UserError(
            f"{key}: {seq_len} tokens, beyond the {limit} the RoPE transforms of model.transforms set up; "
            "raise the rope transform's max_position_embeddings or the rope_scaling factor"
        )
    raise UserError(
        f"{key}: {seq_len} tokens, beyond the model's max_position_embeddings = {limit}; change its RoPE "
        "first: model.transforms: [{kind: rope, theta: ...}] or [{kind: rope_scaling, type: yarn, factor: ...}]"
    )


def context_length(config: object) -> int | None:
    """The longest sequence a model config is set up for: `max_position_embeddings`, times the factor
    for dynamic RoPE scaling (which stretches positions beyond it on the fly). None when unknown."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    sets = [getattr(config, "rope_scaling", None), getattr(config, "rope_parameters", None)]
    sets += [v for params in sets if isinstance(params, dict) for v in params.values() if isinstance(v, dict)]
    factors = [
        float(params.get("factor") or 1.0)
        for params in sets
        if isinstance(params, dict) and params.get("rope_type", params.get("type")) == "dynamic"
    ]
    return int(limit * max(factors)) if factors else limit


def has_learned_positions(model: nn.Module) -> bool:
    """Whether the model looks positions up in an embedding table besides its token embedding."""
    get_tokens = getattr(model, "get_input_embeddings", None)
    tokens = get_tokens() if callable(get_tokens) else None
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return any(
        isinstance(module, nn.Embedding) and module is not tokens and module.num_embeddings >= (limit or 0)
        for module in model.modules()
    )


def is_rotary(config: object) -> bool:
    names = ("rope_parameters", "rope_theta", "rope_scaling", "rotary_emb_base", "rotary_pct")
    return any(getattr(config, name, None) is not None for name in names)


def rope_scalings() -> list[str]:
    """The RoPE scaling types of the installed transformers (e.g. linear, dynamic, yarn, llama3)."""
    try:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    except ImportError:  # pragma: no cover - every supported transformers has it
        return ["linear", "dynamic", "yarn"]
    return [name for name in ROPE_INIT_FUNCTIONS if name != "default"]
