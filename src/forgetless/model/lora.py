"""LoRA for continued pretraining, through the peft library (`pip install 'forgetless[lora]'`).

    {kind: lora, r: 16, alpha: 32, dropout: 0, target: [attention, mlp], dora: false,
     train_embeddings: false, train_lm_head: false}

Low-rank adapters (Hu et al. 2021; DoRA with `dora: true`) are added by `peft.get_peft_model` to
the linear layers that `target` selects: `attention` and `mlp` are the linear layers of those parts
of every decoder block, found from the module structure as the parameter presets are; any other
entry is a glob over module names (`*.q_proj`). Only the adapters train; `train_embeddings` and
`train_lm_head` make the input embedding and the output head fully trainable as well (peft's
`modules_to_save`), which continued pretraining on a new domain or language usually needs (the
Unsloth and LLaMA-Factory CPT recipes do the same). When the two are tied, either flag trains the
one shared matrix and the tie is kept (peft's `ensure_weight_tying`, which recognises an embedding
named `embed_tokens`; GPT-2's `wte` trains alone, its head stays the base's).

Mixture-of-experts blocks (Mixtral, Qwen2-MoE, Qwen3-MoE in transformers 5, and what `upcycle_moe`
makes) hold their experts' weights as fused 3-D parameters (`experts.gate_up_proj`,
`experts.down_proj`: `[experts, out, in]`), not linear layers. The `mlp` preset adapts those
through peft's `target_parameters` (one rank-r adapter per expert, added to the weight during the
forward pass) together with the linear layers of a shared expert, and leaves the router and the
shared expert's gate (the MoE block's own linear layers, `hidden x experts` and `hidden x 1`)
alone: the adapted model routes as the base does. A glob may name fused weights
(`*.experts.down_proj`) or a router (`*.mlp.gate`) as well. peft adapts a parameter only without
dropout and without DoRA; such a target with either is refused, naming the key.

The run trains the model itself with the adapters inside (peft's layers replace the targeted
linear layers in place), so the loop, the fused loss, compile and FSDP2/DDP see an ordinary HF model
whose trainable parameters are the adapters. At B = 0 (peft's initialisation) the model computes
what the base does. At the end `save_lora_model` writes `final/` as a standard model with the
adapters merged in, and `final_adapter/`, the PEFT adapter directory that
`PeftModel.from_pretrained(base, "final_adapter")` loads onto the base (onto the model after the
transforms before LoRA, when there are any). `final/` ties the output head to the input embedding
(one matrix, `tie_word_embeddings: true`) exactly when the trained model did.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetless.config import LoraTransformConfig
from forgetless.errors import UserError
from forgetless.model.blocks import find_decoder_blocks
from forgetless.model.layout import is_linear
from forgetless.model.transform_contract import Outcome, TransformContext

TARGET_PRESETS = ("attention", "mlp")
_ATTENTION_NAMES = frozenset({"self_attn", "attn", "attention", "self_attention"})
_MLP_NAMES = frozenset({"mlp", "feed_forward", "ffn"})


@dataclass(frozen=True)
class LoraTargets:
    """What a `target` list selects, by full name in the model's order: linear layers (peft's
    `target_modules`) and fused expert weights (3-D parameters, peft's `target_parameters`)."""

    modules: list[str]
    parameters: list[str]


def add_lora(
    model: nn.Module, tokenizer: Any, spec: LoraTransformConfig, context: TransformContext
) -> Outcome:
    """Put LoRA adapters into `model` in place (through peft) and freeze everything else (but the
    embedding and head when asked); return the transform's `Outcome` with the names of the adapters
    (and of the trainable embedding or head copies). A resumed run adapts what the first
    application recorded. Raises `UserError` naming `context.key` when peft is not installed, a
    target matches no linear layer or fused expert weight, or a weight peft adapts as a parameter
    meets dropout or DoRA."""
    peft = _import_peft(context.key)
    if context.resolved is not None:
        targets = LoraTargets(
            list(context.resolved["target_modules"]), list(context.resolved.get("target_parameters", []))
        )
    else:
        targets = lora_targets(model, spec.target, key=f"{context.key}.target")
    _check_parameter_targets(model, targets, spec, context.key)
    embed_name, head_name, tied = _embedding_names(model)
    to_save: list[str] = []
    if spec.train_embeddings or (spec.train_lm_head and tied):
        to_save.append(embed_name)
    if spec.train_lm_head and not tied and head_name is not None:
        to_save.append(head_name)
    config = peft.LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets.modules,
        target_parameters=targets.parameters or None,
        use_dora=spec.dora,
        modules_to_save=to_save or None,
        ensure_weight_tying=bool(to_save) and tied,
        bias="none",
    )
    peft_model = _peft_model(model, config)
    inner = peft_model.base_model.model
    if inner is not model:
        raise RuntimeError("peft did not put the adapters into the model itself")
    added = [name for name, param in model.named_parameters() if param.requires_grad]
    resolved: dict[str, Any] = {"target_modules": targets.modules}
    if targets.parameters:
        resolved["target_parameters"] = targets.parameters
    return Outcome(added=added, resolved=resolved, trained_copies=_trained_copies(model))


def _check_parameter_targets(
    model: nn.Module, targets: LoraTargets, spec: LoraTransformConfig, key: str
) -> None:
    """peft adapts a fused expert weight, or a layer that is not `nn.Linear` (a router), as a
    parameter (`lora.ParamWrapper`), which takes neither dropout nor DoRA: refuse those, naming the key."""
    as_parameter = list(targets.parameters) + [
        name
        for name in targets.modules
        if not isinstance(model.get_submodule(name), nn.Linear)
        and type(model.get_submodule(name)).__name__ != "Conv1D"  # GPT-2's, which peft adapts as a layer
    ]
    if not as_parameter:
        return
    for field, value in (("dropout", spec.dropout), ("dora", spec.dora)):
        if value:
            raise UserError(
                f"{key}.{field}: peft adapts {as_parameter[0]} (a fused expert weight or a router) as a "
                f"parameter, which takes no {field}; set {field}: {0 if field == 'dropout' else 'false'} or "
                "leave such weights out of target"
            )


def _trained_copies(model: nn.Module) -> dict[str, str]:
    """Each parameter peft froze in a `modules_to_save` wrapper -> its trainable copy (the one the
    forward pass uses and `final/` saves), by their names in `model.named_parameters()`."""
    names = {id(param): name for name, param in model.named_parameters()}
    copies: dict[str, str] = {}
    for module in model.modules():
        original, saved = getattr(module, "original_module", None), getattr(module, "modules_to_save", None)
        if (
            not isinstance(original, nn.Module)
            or not isinstance(saved, nn.ModuleDict)
            or "default" not in saved
        ):
            continue
        for local, param in original.named_parameters():
            copy_ = saved["default"].get_parameter(local)
            if id(param) in names and id(copy_) in names and copy_ is not param:
                copies[names[id(param)]] = names[id(copy_)]
    return copies


def lora_targets(model: nn.Module, targets: list[str], *, key: str) -> LoraTargets:
    """The linear layers and fused expert weights `targets` select (presets `attention`, `mlp`, or
    globs over their names). The `mlp` preset of a mixture-of-experts block takes its experts (fused
    weights or linear layers) and shared expert, not the block's own linear layers (the router, a
    shared expert's gate). Raises `UserError` naming `key.<i>` for an entry that selects nothing."""
    linear = [name for name, module in model.named_modules() if name and is_linear(module)]
    fused = fused_expert_weights(model)
    found = find_decoder_blocks(model)
    modules: set[str] = set()
    parameters: set[str] = set()
    for i, target in enumerate(targets):
        if target in TARGET_PRESETS:
            if found is None:
                raise UserError(
                    f"{key}.{i}: {type(model).__name__} has no decoder blocks for the {target} preset"
                )
            parts = [
                (f"{found[0]}.{j}.{name}", part)
                for j, block in enumerate(found[1])
                for name, part in _parts(block, target)
            ]
            prefixes = tuple(f"{path}." for path, _ in parts)
            gates = {
                f"{path}.{name}"
                for path, part in parts
                if hasattr(part, "experts")
                for name, child in part.named_children()
                if is_linear(child)
            }
            names = [name for name in linear if name.startswith(prefixes) and name not in gates]
            weights = [name for name in fused if name.startswith(prefixes)]
        else:
            names = [name for name in linear if fnmatchcase(name, target)]
            weights = [name for name in fused if fnmatchcase(name, target)]
        if not names and not weights:
            examples = ", ".join((linear + fused)[:3]) or "(none)"
            raise UserError(
                f"{key}.{i}: {target!r} matches no linear layer or fused expert weight; they are named like "
                f"{examples} "
                f"(or use a preset: {', '.join(TARGET_PRESETS)})"
            )
        modules.update(names)
        parameters.update(weights)
    return LoraTargets(
        modules=[name for name in linear if name in modules],
        parameters=[name for name in fused if name in parameters],
    )


def fused_expert_weights(model: nn.Module) -> list[str]:
    """Names of the experts' fused weights: the 3-D parameters (`[experts, out, in]`) that a module
    named `experts` holds itself (transformers 5's Mixtral, Qwen2-MoE, Qwen3-MoE, ...)."""
    return [
        f"{name}.{local}"
        for name, module in model.named_modules()
        if name.rpartition(".")[2] == "experts"
        for local, param in module.named_parameters(recurse=False)
        if param.ndim == 3
    ]


def _parts(block: nn.Module, preset: str) -> list[tuple[str, nn.Module]]:
    """The direct children of `block` (name, module) that are its attention (or MLP) part."""
    names = _ATTENTION_NAMES if preset == "attention" else _MLP_NAMES
    marks = ("Attention",) if preset == "attention" else ("MLP", "FeedForward")
    return [
        (name, child)
        for name, child in block.named_children()
        if name in names or any(mark in type(child).__name__ for mark in marks)
    ]


def _embedding_names(model: Any) -> tuple[str, str | None, bool]:
    """Module names of the input embedding and the output head, and whether their weights are tied."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {id(module): name for name, module in model.named_modules()}
    tied = head is not None and head.weight is embed.weight
    return names[id(embed)], (names[id(head)] if head is not None else None), tied


def _peft_model(model: nn.Module, config: Any) -> Any:
    """`peft.get_peft_model(model, config)`, without the deprecation warning peft triggers in
    transformers (an attribute peft reads; nothing a user can change)."""
    import peft

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return peft.get_peft_model(model, config)


def _import_peft(key: str) -> Any:
    try:
        import peft
    except ImportError:
        raise UserError(
            f"{key}: kind lora needs the peft package; install it with pip install 'forgetless[lora]'"
        ) from None
    return peft


# ---------------------------------------------------------------------------------------------
# Saving


def has_lora(model: nn.Module) -> bool:
    """Whether `model` carries peft adapters (put in by `add_lora`)."""
    return isinstance(getattr(model, "peft_config", None), dict)


def with_same_lora(plain: nn.Module, like: Any) -> nn.Module:
    """`plain` (a model of the same config as `like`, e.g. on the meta device) with the adapters
    `like` carries, put in the same way: the same parameter names and shapes."""

    return _peft_model(plain, copy.deepcopy(like.peft_config["default"])).base_model.model


def save_lora_model(
    model: Any, state: dict[str, torch.Tensor], tokenizer: Any, folder: Path, save_model: Any
) -> None:
    """Write `folder` (the model with the adapters merged: a standard HF directory, through
    `save_model(model, tokenizer, folder)`) and `<folder>_adapter` (the PEFT adapter directory).

    `model` gives the structure (its config and peft config), `state` the weights (a whole state
    dict on CPU, as `model.state_dict()` names them): the model may be sharded over processes.
    The weights are copied first (merging changes the weights in place, and `state` may hold the
    live model's own tensors). The merged head is tied to the merged input embedding (config and
    one shared matrix) when `model`'s are tied.
    """
    from transformers import AutoModelForCausalLM

    tied = _embedding_names(model)[2]
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(copy.deepcopy(model.config))
        wrapped = _peft_model(base, copy.deepcopy(model.peft_config["default"]))
    inner = wrapped.base_model.model
    inner.to_empty(device="cpu")
    with torch.no_grad():
        inner.load_state_dict(state, strict=True)
    adapter = folder.with_name(folder.name + "_adapter")
    tmp = folder.with_name(f".{adapter.name}.tmp")
    wrapped.save_pretrained(str(tmp))
    if adapter.exists():
        import shutil

        shutil.rmtree(adapter)
    tmp.rename(adapter)
    with warnings.catch_warnings():  # peft's note that the (separately loaded) copies are untied: tied below
        warnings.filterwarnings("ignore", message=".*no longer tied after merging.*", category=UserWarning)
        merged = wrapped.merge_and_unload()
    if tied:
        _tie_embeddings(merged)
    save_model(merged, tokenizer, folder)


def _tie_embeddings(model: Any) -> None:
    """Tie `model`'s output head to its input embedding again (config and one shared matrix):
    loading a state dict gives the two their own tensors, and peft's merge then unties the config."""
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if not torch.equal(head.weight, embed.weight):
        raise RuntimeError("the merged head differs from the merged input embedding of a tied model")
    model.config.tie_word_embeddings = True
    head.weight = embed.weight
