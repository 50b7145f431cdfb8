"""Optimizer parameter groups: weight decay, per-parameter LR multipliers per stage, and freezing.

Weight decay applies to every parameter with two or more dimensions: the weight matrices of
attention and MLP layers, and also the embedding tables and a separate output head (as in GPT-2,
GPT-3 and nanoGPT). Parameters with one dimension, biases and the gains of LayerNorm / RMSNorm, get
no decay: shrinking a norm's gain toward zero, or a bias, only adds noise to the optimisation.

**Name patterns.** LR multipliers (`train.lr_multipliers`, or a stage's `methods.lr_multipliers`)
and freezing (a stage's `methods.freeze`) select parameters by pattern. A pattern is one of the
presets below or a parameter-name glob (`fnmatch`, case-sensitive; `*` also matches dots):

    embeddings   every embedding table (token and learned position embeddings)
    lm_head      the output head (the token embedding itself when the two are tied)
    norms        the gains and biases of LayerNorm / RMSNorm modules
    attention    everything inside the attention modules (self_attn, attn, attention, ...)
    mlp          everything inside the feed-forward modules (mlp, feed_forward, fc1/fc2, ...)
    layers       every parameter of the decoder blocks
    layers.A-B   decoder blocks A to B, 0-based and inclusive; `layers.N` is one block

Presets are found from the module structure (module classes and names), so they work across
families (Llama, Qwen, Mistral, GPT-2, GPT-NeoX, ...) without knowing their parameter names.

For multipliers, the first pattern that matches a name wins; names no pattern matches get 1.0.
Frozen parameters (`requires_grad=False`) go in no group.

**Training only some parameters.** A stage's `methods.train_only` lists presets, globs, `new`
(the parameters that `model.transforms` added: new blocks, adapters) and `new_rows` (the embedding
and head tensors that grew rows for new tokens; `forgetless.methods.new_rows` then keeps their old
rows fixed with a gradient mask); everything it does not select is frozen for the stage, before
`methods.freeze` freezes more. AdamW's decoupled weight decay would shrink rows whose gradient is
masked, so tensors trained as `new_rows` have no weight decay in that stage (their group's
`stage_weight_decay`).

**Stages.** The optimizer of a run has the same groups in every stage, so its state carries across
stages and checkpoints: parameters are grouped by their decay and by their *vector* of multipliers
over all stages, each group keeps that vector as `stage_lr_multipliers`, and `apply_stage` sets
each group's `lr_multiplier` and the `requires_grad` flags for the stage that starts. A frozen
parameter stays in its group; it has no gradient, so AdamW leaves it (and its moments) untouched.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from forgetless.errors import UserError
from forgetless.model.blocks import find_decoder_blocks

if TYPE_CHECKING:
    from forgetless.config import RunConfig

PRESETS = ("embeddings", "lm_head", "norms", "attention", "mlp", "layers", "layers.A-B")
_ATTENTION_MODULES = frozenset({"self_attn", "attn", "attention", "self_attention", "cross_attn"})
_MLP_MODULES = frozenset({"mlp", "feed_forward", "ffn", "block_sparse_moe", "moe", "fc1", "fc2"})
_LAYER_RANGE = re.compile(r"^layers\.(\d+)(?:-(\d+))?$")


# ---------------------------------------------------------------------------------------------
# Name patterns


def select_parameters(model: nn.Module, pattern: str, *, key: str = "pattern") -> list[str]:
    """Names of the parameters of `model` that `pattern` (a preset or a glob) selects.

    Names are those of `model.named_parameters()` (tied parameters appear once), in that order.
    Raises `UserError` naming `key` for a layer range outside the model's blocks.
    """
    named = list(model.named_parameters())
    if pattern in ("embeddings", "lm_head", "norms"):
        ids = {id(p) for p in _preset_parameters(model, pattern)}
        return [name for name, p in named if id(p) in ids]
    if pattern in ("attention", "mlp"):
        wanted = _ATTENTION_MODULES if pattern == "attention" else _MLP_MODULES
        prefixes = tuple(f"{name}." for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in wanted)
        return [name for name, _ in named if name.startswith(prefixes)]
    if pattern == "layers" or _LAYER_RANGE.match(pattern):
        prefix, count = _blocks(model, key)
        first, last = 0, count - 1
        if (match := _LAYER_RANGE.match(pattern)) is not None:
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            if not first <= last < count:
                raise UserError(
                    f"{key}: {pattern} is outside the model's {count} decoder blocks (0-{count - 1})"
                )
        prefixes = tuple(f"{prefix}.{i}." for i in range(first, last + 1))
        return [name for name, _ in named if name.startswith(prefixes)]
    return [name for name, _ in named if fnmatchcase(name, pattern)]


def _preset_parameters(model: nn.Module, preset: str) -> list[nn.Parameter]:
    if preset == "embeddings":
        return [
            p for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)
        ]
    if preset == "lm_head":
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        return list(head.parameters()) if head is not None else []
    return [
        p
        for m in model.modules()
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) or "norm" in type(m).__name__.lower()
        for p in m.parameters(recurse=False)
    ]


def _blocks(model: nn.Module, key: str) -> tuple[str, int]:
    """The module path and length of the decoder blocks."""
    found = find_decoder_blocks(model)
    if found is None:
        raise UserError(f"{key}: {type(model).__name__} has no list of decoder blocks for a layers pattern")
    return found[0], len(found[1])


def trainable_names(model: nn.Module) -> frozenset[str]:
    """Names of the parameters that train (`requires_grad`), as `named_parameters` gives them."""
    return frozenset(name for name, p in model.named_parameters() if p.requires_grad)


def select_trainable(model: nn.Module, pattern: str, trainable: Collection[str], *, key: str) -> list[str]:
    """The names in `trainable` that `pattern` selects (see `select_parameters`). Raises `UserError`
    naming `key` when it selects none, with examples of the names there are."""
    names = [n for n in select_parameters(model, pattern, key=key) if n in trainable]
    if not names:
        raise UserError(
            f"{key}: {pattern!r} matches no trainable parameter; names look like "
            f"{_examples(model, trainable)} (or use a preset: {', '.join(PRESETS)})"
        )
    return names


# ---------------------------------------------------------------------------------------------
# Groups


def parameter_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    lr_multipliers: dict[str, float],
    key: str = "train.lr_multipliers",
) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters of `model`.

    Each group is `{"params": [...], "weight_decay": float, "lr_multiplier": float, "names": [...]}`;
    the loop sets each group's `lr` to the schedule's LR times its `lr_multiplier`. Groups come in
    the order their first parameter appears in `model.named_parameters()` (so the result is the same
    on every run); tied parameters appear once. Pass the unwrapped model (not a `torch.compile` or
    FSDP wrapper) so that names are the ones users see in the model's state dict.

    Raises `UserError` naming `<key>.<pattern>` for a negative multiplier, or a pattern that
    selects no trainable parameter (none matches, or earlier patterns take all it matches).
    """
    groups = stage_parameter_groups(
        model, weight_decay=weight_decay, stage_multipliers=[(lr_multipliers, key)], trainable=None
    )
    for group in groups:
        del group["stage_lr_multipliers"]
    return groups


def stage_parameter_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    stage_multipliers: Sequence[tuple[dict[str, float], str]],
    trainable: Collection[str] | None = None,
    per_tensor: bool = False,
    stage_no_decay: Sequence[Collection[str]] = (),
) -> list[dict[str, Any]]:
    """Parameter groups for a run of stages: one group per (decay, multipliers of every stage).

    `stage_multipliers[i]` is stage i's `(pattern -> multiplier, config key for errors)`. The
    parameters are those named in `trainable` (default: those with `requires_grad`), so groups do
    not depend on which parameters a stage freezes. Each group is like `parameter_groups`'s, with
    `stage_lr_multipliers` (one per stage) and `lr_multiplier` set to the first stage's. With
    `per_tensor`, every parameter has a group of its own (for learning rates set per tensor).
    `stage_no_decay[i]` names parameters without weight decay in stage i; their groups also carry
    `stage_weight_decay` (one per stage), which `apply_stage` sets.
    """
    if not stage_multipliers:
        raise ValueError("stage_multipliers needs at least one stage")
    named = list(model.named_parameters())
    train_set = set(trainable) if trainable is not None else {n for n, p in named if p.requires_grad}
    per_stage: list[dict[str, float]] = []  # name -> multiplier, one dict per stage
    checked: set[tuple[str, str]] = set()
    for multipliers, key in stage_multipliers:
        per_stage.append(
            _multipliers(model, multipliers, key, train_set, check=(key, repr(multipliers)) not in checked)
        )
        checked.add((key, repr(multipliers)))
    groups: dict[tuple[float, tuple[float, ...], str, tuple[bool, ...]], dict[str, Any]] = {}
    for name, param in named:
        if name not in train_set:
            continue
        vector = tuple(stage.get(name, 1.0) for stage in per_stage)
        decay = float(weight_decay) if param.ndim >= 2 else 0.0
        undecayed = tuple(name in names for names in stage_no_decay) if decay else ()
        group = groups.setdefault(
            (decay, vector, name if per_tensor else "", undecayed if any(undecayed) else ()),
            {
                "params": [],
                "weight_decay": decay,
                "lr_multiplier": vector[0],
                "stage_lr_multipliers": list(vector),
                "names": [],
            },
        )
        if any(undecayed):
            group["stage_weight_decay"] = [0.0 if off else decay for off in undecayed]
            group["weight_decay"] = group["stage_weight_decay"][0]
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def _multipliers(
    model: nn.Module, lr_multipliers: dict[str, float], key: str, trainable: set[str], *, check: bool
) -> dict[str, float]:
    """name -> multiplier for the trainable names some pattern matches (the first match wins)."""
    for pattern, multiplier in lr_multipliers.items():
        if multiplier < 0:
            raise UserError(f"{key}.{pattern}: a multiplier must be >= 0 (got {multiplier})")
    out: dict[str, float] = {}
    for pattern, multiplier in lr_multipliers.items():
        if check:
            matched = select_trainable(model, pattern, trainable, key=f"{key}.{pattern}")
        else:
            matched = [n for n in select_parameters(model, pattern, key=f"{key}.{pattern}") if n in trainable]
        taken = [n for n in matched if n not in out]
        if check and not taken:
            raise UserError(
                f"{key}.{pattern}: every parameter it matches is taken by an earlier "
                "pattern (the first match wins); reorder or remove it"
            )
        for name in taken:
            out[name] = float(multiplier)
    return out


def _examples(model: nn.Module, trainable: Collection[str], count: int = 3) -> str:
    names = [name for name, _ in model.named_parameters() if name in trainable][:count]
    return ", ".join(names) if names else "(the model has no trainable parameters)"


# ---------------------------------------------------------------------------------------------
# Stages


def select_new_or_pattern(
    model: nn.Module, pattern: str, added: Collection[str], *, key: str, added_rows: Collection[str] = ()
) -> list[str]:
    """`select_parameters`, with `new` selecting the parameters `model.transforms` added (`added`)
    and `new_rows` those it grew rows in for new tokens (`added_rows`)."""
    if pattern == "new":
        return [name for name, _ in model.named_parameters() if name in added]
    if pattern == "new_rows":
        return [name for name, _ in model.named_parameters() if name in added_rows]
    return select_parameters(model, pattern, key=key)


def apply_stage(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    stage_index: int,
    freeze: Sequence[str],
    trainable: Collection[str],
    key: str = "methods.freeze",
    train_only: Sequence[str] = (),
    added: Collection[str] = frozenset(),
    added_rows: Collection[str] = frozenset(),
) -> list[str]:
    """Set up stage `stage_index`: its LR multipliers on the optimizer's groups, and its freezing.

    Parameters named in `trainable` (the run's trainable set) train unless `train_only` (when
    given: presets, globs, `new` for the names in `added`, `new_rows` for those in `added_rows`)
    leaves them out or a pattern of
    `freeze` selects them; all others stay frozen. Returns the names frozen by either. Raises
    `UserError` naming `<key>.<i>` (or `train_only.<i>` beside `key`) for a pattern that selects no
    trainable parameter, or when nothing would train.
    """
    frozen: list[str] = []
    if train_only:
        only_key = key.rsplit(".", 1)[0] + ".train_only"
        kept: set[str] = set()
        for i, pattern in enumerate(train_only):
            names = [
                n
                for n in select_new_or_pattern(model, pattern, added, key=f"{only_key}.{i}", added_rows=added_rows)
                if n in trainable
            ]
            if not names:
                raise UserError(
                    f"{only_key}.{i}: {pattern!r} matches no trainable parameter; names look like "
                    f"{_examples(model, trainable)} (or use new or a preset: {', '.join(PRESETS)})"
                )
            kept.update(names)
        frozen.extend(name for name, _ in model.named_parameters() if name in trainable and name not in kept)
    for i, pattern in enumerate(freeze):
        names = select_trainable(model, pattern, trainable, key=f"{key}.{i}")
        frozen.extend(n for n in names if n not in frozen)
    frozen_set = set(frozen)
    named = list(model.named_parameters())
    if not any(name in trainable and name not in frozen_set for name, _ in named):
        raise UserError(f"{key}: freezes every trainable parameter; leave something to train")
    for name, param in named:
        param.requires_grad_(name in trainable and name not in frozen_set)
    for group in optimizer.param_groups:
        vector = group.get("stage_lr_multipliers")
        if vector is not None:
            group["lr_multiplier"] = float(vector[min(stage_index, len(vector) - 1)])
        decays = group.get("stage_weight_decay")
        if decays is not None:
            group["weight_decay"] = float(decays[min(stage_index, len(decays) - 1)])
    return frozen


def run_parameter_groups(
    model: nn.Module,
    config: RunConfig,
    trainable: Collection[str] | None = None,
    added: Collection[str] = frozenset(),
    added_rows: Collection[str] = frozenset(),
) -> list[dict[str, Any]]:
    """`stage_parameter_groups` for the stages of a run config (a stage's own multipliers, if it has
    them, replace `train.lr_multipliers` for that stage; a stage with `methods.unit_lr` makes every
    tensor a group of its own). Also checks every stage's `methods.freeze` and `methods.train_only`
    patterns (`new`: the names in `added`; `new_rows`: those in `added_rows`, which get no weight
    decay in the stages that train them so), so that a bad one fails before the run starts rather
    than when its stage does."""
    train_set = set(trainable) if trainable is not None else set(trainable_names(model))
    stages = []
    for i, stage in enumerate(config.stages):
        for j, pattern in enumerate(stage.methods.train_only):
            key = f"stages.{i}.methods.train_only.{j}"
            selected = select_new_or_pattern(model, pattern, added, key=key, added_rows=added_rows)
            if not any(n in train_set for n in selected):
                raise UserError(
                    f"{key}: {pattern!r} matches no trainable parameter; names look like "
                    f"{_examples(model, train_set)} (or use new or a preset: {', '.join(PRESETS)})"
                )
        for j, pattern in enumerate(stage.methods.freeze):
            select_trainable(model, pattern, train_set, key=f"stages.{i}.methods.freeze.{j}")
        own = stage.methods.lr_multipliers
        if own is not None:
            stages.append((own, f"stages.{i}.methods.lr_multipliers"))
        else:
            stages.append((config.train.lr_multipliers, "train.lr_multipliers"))
    return stage_parameter_groups(
        model,
        weight_decay=config.train.weight_decay,
        stage_multipliers=stages,
        trainable=train_set,
        per_tensor=any(stage.methods.unit_lr is not None for stage in config.stages),
        stage_no_decay=[
            set(added_rows) if "new_rows" in stage.methods.train_only else set() for stage in config.stages
        ],
    )
