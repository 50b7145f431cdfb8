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
one shared matrix and the tie is kept (peft's `ensure_weight_tying`).

The run trains the model itself with the adapters inside (peft's layers replace the targeted
linear layers in place), so the loop, the fused loss, compile and FSDP2/DDP see an ordinary HF model
whose trainable parameters are the adapters. At B = 0 (peft's initialisation) the model computes
what the base does. At the end `save_lora_model` writes `final/` as a standard model with the
adapters merged in, and `final_adapter/`, the PEFT adapter directory that
`PeftModel.from_pretrained(base, "final_adapter")` loads onto the base (onto the model after the
transforms before LoRA, when there are any).
"""

from __future__ import annotations

import copy
import warnings
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


def add_lora(
    model: nn.Module, tokenizer: Any, spec: LoraTransformConfig, context: TransformContext
) -> Outcome:
    """Put LoRA adapters into `model` in place (through peft) and freeze everything else (but the
    embedding and head when asked); return the transform's `Outcome` with the names of the adapters
    (and of the trainable embedding or head copies). Raises `UserError` naming `context.key` when
    peft is not installed or a target matches no linear layer."""
    peft = _import_peft(context.key)
    targets = target_modules(model, spec.target, key=f"{context.key}.target")
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
        target_modules=targets,
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
    return Outcome(added=added, resolved={"target_modules": targets}, trained_copies=_trained_copies(model))


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


def target_modules(model: nn.Module, targets: list[str], *, key: str) -> list[str]:
    """Full names of the linear layers `targets` select (presets `attention`, `mlp`, or globs over
    module names), in the model's order. Raises `UserError` naming `key.<i>` for one that selects none."""
    linear = [name for name, module in model.named_modules() if name and is_linear(module)]
    found = find_decoder_blocks(model)
    chosen: set[str] = set()
    for i, target in enumerate(targets):
        if target in TARGET_PRESETS:
            if found is None:
                raise UserError(
                    f"{key}.{i}: {type(model).__name__} has no decoder blocks for the {target} preset"
                )
            prefixes = tuple(
                f"{found[0]}.{j}.{part}."
                for j, block in enumerate(found[1])
                for part in _parts(block, target)
            )
            names = [name for name in linear if name.startswith(prefixes)]
        else:
            names = [name for name in linear if fnmatchcase(name, target)]
        if not names:
            examples = ", ".join(linear[:3]) or "(none)"
            raise UserError(
                f"{key}.{i}: {target!r} matches no linear layer; linear layers are named like {examples} "
                f"(or use a preset: {', '.join(TARGET_PRESETS)})"
            )
        chosen.update(names)
    return [name for name in linear if name in chosen]


def _parts(block: nn.Module, preset: str) -> list[str]:
    """Names of the direct children of `block` that are its attention (or MLP) part."""
    names = _ATTENTION_NAMES if preset == "attention" else _MLP_NAMES
    marks = ("Attention",) if preset == "attention" else ("MLP", "FeedForward")
    return [
        name
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
    live model's own tensors).
    """
    from transformers import AutoModelForCausalLM

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
    merged = wrapped.merge_and_unload()
    save_model(merged, tokenizer, folder)
