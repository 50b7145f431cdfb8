"""Optimizer parameter groups: which parameters get weight decay, and per-parameter LR multipliers.

Weight decay applies to every parameter with two or more dimensions: the weight matrices of
attention and MLP layers, and also the embedding tables and a separate output head (as in GPT-2,
GPT-3 and nanoGPT). Parameters with one dimension, biases and the gains of LayerNorm / RMSNorm, get
no decay: shrinking a norm's gain toward zero, or a bias, only adds noise to the optimisation.

LR multipliers come from `train.lr_multipliers`: parameter-name globs (`fnmatch`, case-sensitive;
`*` also matches dots) mapped to a factor on the schedule's LR. The first glob that matches a name
wins; names no glob matches get 1.0. Frozen parameters (`requires_grad=False`) go in no group.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import torch

from forgetless.errors import UserError


def parameter_groups(
    model: torch.nn.Module, *, weight_decay: float, lr_multipliers: dict[str, float]
) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters of `model`.

    Each group is `{"params": [...], "weight_decay": float, "lr_multiplier": float, "names": [...]}`;
    the loop sets each group's `lr` to the schedule's LR times its `lr_multiplier`. Groups come in
    the order their first parameter appears in `model.named_parameters()` (so the result is the same
    on every run); tied parameters appear once. Pass the unwrapped model (not a `torch.compile` or
    FSDP wrapper) so that names are the ones users see in the model's state dict.

    Raises `UserError` naming `train.lr_multipliers.<glob>` for a negative multiplier, or a glob
    that selects no trainable parameter (none matches, or earlier globs take all it matches).
    """
    for glob, multiplier in lr_multipliers.items():
        if multiplier < 0:
            raise UserError(f"train.lr_multipliers.{glob}: a multiplier must be >= 0 (got {multiplier})")
    globs = list(lr_multipliers)
    matched: dict[str, int] = dict.fromkeys(globs, 0)  # parameters each glob matches at all
    selected: dict[str, int] = dict.fromkeys(globs, 0)  # parameters each glob is the first match of
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        hits = [glob for glob in globs if fnmatchcase(name, glob)]
        for glob in hits:
            matched[glob] += 1
        if hits:
            selected[hits[0]] += 1
        multiplier = float(lr_multipliers[hits[0]]) if hits else 1.0
        decay = float(weight_decay) if param.ndim >= 2 else 0.0
        group = groups.setdefault(
            (multiplier, decay),
            {"params": [], "weight_decay": decay, "lr_multiplier": multiplier, "names": []},
        )
        group["params"].append(param)
        group["names"].append(name)
    for glob in globs:
        if not matched[glob]:
            raise UserError(
                f"train.lr_multipliers.{glob}: matches no trainable parameter; names look like "
                f"{_examples(model)}"
            )
        if not selected[glob]:
            raise UserError(
                f"train.lr_multipliers.{glob}: every parameter it matches is taken by an earlier "
                "glob (the first match wins); reorder or remove it"
            )
    return list(groups.values())


def _examples(model: torch.nn.Module, count: int = 3) -> str:
    names = [name for name, p in model.named_parameters() if p.requires_grad][:count]
    return ", ".join(names) if names else "(the model has no trainable parameters)"
