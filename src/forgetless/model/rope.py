"""RoPE transforms: a new base frequency, or a scaling of positions, for a longer context.

Rotary position embeddings turn position p into rotations by the angles p x theta^(-2i/d), one per
pair i of a head's d dimensions. A model trained at length L has seen angles up to L x theta^(-2i/d);
longer sequences bring angles it never saw. Two ways to bring them back into range, both written
into the model config as transformers reads it, so `final/` needs no forgetless code:

    {kind: rope, theta: 500000}                      # adjusted base frequency (Xiong et al. 2023)
    {kind: rope_scaling, type: yarn, factor: 4}      # linear | dynamic | yarn | llama3

`rope` sets `rope_theta` (Llama 2 Long, Xiong et al., arXiv:2309.16039: 10,000 -> 500,000 before
continued pretraining at 32k).
`rope_scaling` sets transformers' `rope_type` and `factor` (and for yarn and llama3 the length the
model was trained at, `original_max_position_embeddings`); linear divides every frequency by the
factor (position interpolation, Chen et al., arXiv:2306.15595), dynamic raises the base only for
sequences longer than the trained length (NTK-aware), yarn (Peng et al., arXiv:2309.00071) and
llama3 interpolate the low frequencies and keep the high ones.

`max_position_embeddings` becomes the context the run trains for: for `rope`, the spec's value or
the longest sequence length of the run (`context.seq_len`) when that is longer than the model's;
for linear, yarn and llama3 scaling, the trained length x factor. Dynamic scaling keeps it (its
formula measures the stretch against it); its context is counted as trained length x factor
(`forgetless.model.positions.context_length`). The rotary embedding modules are built again from the changed config, so their
frequency buffers are the ones transformers computes when it loads the saved model.

In transformers 5 the parameters live in `config.rope_parameters`; a config with one set per
attention kind (Gemma 3: sliding and full attention) gets the change in its full-attention set only,
the layers that see far. Older transformers keep `rope_theta` and `rope_scaling` as attributes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from forgetless.config import RopeConfig, RopeScalingConfig
from forgetless.errors import UserError
from forgetless.model.positions import has_learned_positions, is_rotary, rope_scalings
from forgetless.model.transform_contract import Outcome, TransformContext

ROPE_KINDS = ("rope", "rope_scaling")


def set_rope_theta(model: nn.Module, tokenizer: Any, spec: RopeConfig, context: TransformContext) -> Outcome:
    """Set the RoPE base frequency of `model` to `spec.theta` (in place); see the module docstring."""
    config = _rotary_config(model, context.key)
    for params in _parameter_sets(config):
        params["rope_theta"] = float(spec.theta)
    if getattr(config, "rope_parameters", None) is None:  # transformers 4: an attribute of its own
        config.rope_theta = float(spec.theta)
    length = spec.max_position_embeddings
    if length is None and context.seq_len is not None and context.seq_len > config.max_position_embeddings:
        length = context.seq_len
    if length is not None:
        config.max_position_embeddings = int(length)
    _check_valid(config, f"{context.key}.theta", f"rope_theta {spec.theta:g}")
    rebuild_rotary_embeddings(model, context.key)
    return Outcome(added=[])


def set_rope_scaling(
    model: nn.Module, tokenizer: Any, spec: RopeScalingConfig, context: TransformContext
) -> Outcome:
    """Write the RoPE scaling `spec` into the config of `model` (in place); see the module docstring."""
    config = _rotary_config(model, context.key)
    available = rope_scalings()
    if spec.type not in available:
        raise UserError(
            f"{context.key}.type: {spec.type} is not a RoPE scaling of the installed transformers "
            f"(it has {', '.join(available)})"
        )
    original = spec.original_max_position_embeddings or int(config.max_position_embeddings)
    scaling: dict[str, Any] = {"rope_type": spec.type, "factor": float(spec.factor)}
    if spec.type in ("yarn", "llama3"):
        scaling["original_max_position_embeddings"] = original
    if spec.type == "llama3":
        scaling["low_freq_factor"] = float(spec.low_freq_factor)
        scaling["high_freq_factor"] = float(spec.high_freq_factor)
    sets = _parameter_sets(config)
    if sets:
        for params in sets:
            for name in ("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"):
                params.pop(name, None)
            params.update(scaling)
    else:  # transformers 4
        config.rope_scaling = {**scaling, "type": spec.type}
    if spec.type != "dynamic":
        config.max_position_embeddings = round(original * spec.factor)
    _check_valid(config, f"{context.key}.type", f"the RoPE scaling {spec.type}")
    rebuild_rotary_embeddings(model, context.key)
    kinds = [getattr(m, "rope_type", None) for m in _rotary_modules(model)]
    flat = {k for kind in kinds for k in (kind.values() if isinstance(kind, dict) else [kind])}
    if spec.type not in flat:
        raise UserError(
            f"{context.key}.type: model type {_model_type(model)!r} does not apply the RoPE scaling "
            f"{spec.type} (its rotary embedding uses {sorted(map(str, flat))})"
        )
    return Outcome(added=[])


def rotary_frequencies(model: nn.Module) -> dict[str, Any]:
    """The inverse-frequency buffers of the rotary embedding modules of `model` by name
    (`model.rotary_emb.inv_freq`; one per attention kind where the model has several)."""
    return {
        f"{name}.{buffer}": value
        for name, module in model.named_modules()
        if _is_rotary_module(module)
        for buffer, value in module.named_buffers(recurse=False)
        if buffer.endswith("inv_freq") and "original" not in buffer
    }


def rebuild_rotary_embeddings(model: nn.Module, key: str = "model.transforms") -> None:
    """Build every rotary embedding module of `model` again from its (changed) config, on the device
    of the one it replaces. Raises `UserError` naming `key` when a module cannot be rebuilt so."""
    named = [(name, module) for name, module in model.named_modules() if _is_rotary_module(module)]
    if not named:
        raise UserError(f"{key}: model type {_model_type(model)!r} has no rotary embedding module to change")
    for name, module in named:
        try:
            fresh = type(module)(config=module.config)
        except (TypeError, ValueError, KeyError, ZeroDivisionError) as err:
            raise UserError(
                f"{key}: cannot rebuild the rotary embedding of model type {_model_type(model)!r} "
                f"({type(err).__name__}: {err})"
            ) from None
        fresh.to(next(module.buffers()).device)
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, fresh)


def _check_valid(config: Any, key: str, what: str) -> None:
    """Raise `UserError` naming `key` when transformers' own validation refuses the changed config
    (Phi-3 accepts no RoPE scaling but longrope)."""
    validate = getattr(config, "validate", None) or getattr(config, "validate_rope", None)
    if validate is None:
        return
    try:
        validate()
    except Exception as err:  # transformers raises ValueError or its own validation error
        cause = err.__cause__ or err
        raise UserError(
            f"{key}: model type {getattr(config, 'model_type', '?')!r} does not support {what} "
            f"({str(cause).splitlines()[0]})"
        ) from None


def _rotary_config(model: nn.Module, key: str) -> Any:
    config = getattr(model, "config", None)
    if config is None or has_learned_positions(model) or not is_rotary(config) or not _rotary_modules(model):
        raise UserError(
            f"{key}: model type {_model_type(model)!r} has no rotary position embeddings (RoPE) to change"
        )
    return config


def _parameter_sets(config: Any) -> list[dict[str, Any]]:
    """The RoPE parameter dicts of a transformers 5 config that the transforms change: the one set,
    or the full-attention set of a config with one per attention kind (all sets if none is named so)."""
    params = getattr(config, "rope_parameters", None)
    if not isinstance(params, dict) or not params:
        return []
    nested = [k for k, v in params.items() if isinstance(v, dict)]
    if not nested:
        return [params]
    if "full_attention" in nested:
        return [params["full_attention"]]
    return [params[k] for k in nested]


def _rotary_modules(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if _is_rotary_module(module)]


def _is_rotary_module(module: nn.Module) -> bool:
    return (
        hasattr(module, "rope_type")
        and hasattr(module, "config")
        and any(name.endswith("inv_freq") for name, _ in module.named_buffers(recurse=False))
    )


def _model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))
