"""Model transforms: the step between loading a model and training it (`model.transforms`).

A run applies `config.model.transforms` in order to the loaded Hugging Face model (and its
tokenizer), before compiling, sharding or loading a checkpoint:

    model:
      path: ./base
      transforms:
        - {kind: expand_blocks, every: 4}     # forgetless.model.expand
        - {kind: lora, r: 16}                 # forgetless.model.lora
        - {kind: extend_vocab, from: code, new_tokens: 4096}   # forgetless.model.vocab

Each transform is a plain function `fn(model, tokenizer, spec, context) -> Outcome` in a module of
its own (`TransformContext` and `Outcome`: `forgetless.model.transform_contract`). It changes the model in place (or returns a replacement model and tokenizer) and returns
the names of the parameters it added, so that a stage can train only those
(`methods.train_only: [new]`), and `resolved`: the choices it made that the spec alone does not
fix (the blocks a probe selected). A transform that grows existing tensors (new tokens' embedding
and head rows) returns them as `Outcome.added_rows`, which `methods.train_only: [new_rows]` trains
alone; one that replaces the tokenizer is listed in `TOKENIZER_TRANSFORMS`, and the run then measures
the base with its own tokenizer first (`forgetless.train.tokenizer_change`). `Transformed.records()` lists every transform as applied; the run
writes them in `run_start` and in every checkpoint. On `--resume` the run applies the same specs
again with each record's `resolved` as `context.resolved` (nothing is probed twice, and a transform
whose spec changed since the checkpoint is refused) and only then loads the checkpoint's weights.

**Adding a transform** (RoPE scaling, depth up-scaling, MoE upcycling, ...):
1. a config class in `forgetless.config` with `kind: Literal["<kind>"]`, added to the
   `TransformConfig` union there (then regenerate docs/config.md: scripts/config_reference.py);
2. a module `forgetless/model/<kind>.py` with the function; it may change the config (say
   `num_hidden_layers`, `vocab_size`, `rope_scaling`) and the parameter count; a function that must
   make choices from data takes them from `context.resolved` when given, and returns them in
   `Outcome.resolved` (plain JSON values) otherwise, after `context.agree` (rank 0's choice, so
   that every process of a distributed run builds the same model);
3. an entry in `TRANSFORMS` below;
4. tests in tests/model/: the function is preserved where the transform promises it (logits
   before and after on every family of `tests/model/families.py`), and a run with the transform
   resumes exactly.
Parameter names a later transform renames (LoRA wraps a linear layer as `<name>.base_layer`) stay
"new": what was added is followed by parameter identity, not by name. A transform that returns a
replacement model (MoE upcycling) carries it over by name: a parameter of the replacement with the
name and shape of an added one (or of one with new rows) is added (has those rows) in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from forgetless.errors import UserError
from forgetless.model.depth import depth_upscale
from forgetless.model.expand import expand_blocks
from forgetless.model.lora import add_lora
from forgetless.model.moe import upcycle_moe
from forgetless.model.rope import set_rope_scaling, set_rope_theta
from forgetless.model.transform_contract import Outcome, TransformContext
from forgetless.model.vocab import extend_vocab

TRANSFORMS: dict[str, Callable[[nn.Module, Any, Any, TransformContext], Outcome]] = {
    "expand_blocks": expand_blocks,
    "lora": add_lora,  # imports peft only when applied
    "extend_vocab": extend_vocab,
    "rope": set_rope_theta,
    "rope_scaling": set_rope_scaling,
    "depth_upscale": depth_upscale,
    "upcycle_moe": upcycle_moe,
}

# Transforms that replace the tokenizer: the run measures the model before them in bits per byte.
TOKENIZER_TRANSFORMS = frozenset({"extend_vocab"})


@dataclass
class Applied:
    """One transform as applied: its spec, its choices, and the model's size after it."""

    kind: str
    spec: dict[str, Any]
    resolved: dict[str, Any]
    added_parameters: int  # elements of the parameters it added
    parameters: int  # elements of the model's distinct parameters after it

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "spec": self.spec,
            "resolved": self.resolved,
            "added_parameters": self.added_parameters,
            "parameters": self.parameters,
        }


@dataclass
class Transformed:
    """The model and tokenizer after every transform, and what the transforms did."""

    model: nn.Module
    tokenizer: Any
    applied: list[Applied]
    added: frozenset[str]  # names of every parameter the transforms added, in the final model
    # rows the transforms added to existing parameters (new tokens): name -> [(start, stop), ...]
    added_rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        return [a.record() for a in self.applied]


def apply_transforms(
    model: nn.Module,
    tokenizer: Any,
    specs: list[Any],
    *,
    recorded: list[dict[str, Any]] | None = None,
    probe_batches: Callable[[str, int], list[torch.Tensor]] | None = None,
    source_texts: Callable[[str, int], list[str]] | None = None,
    agree: Callable[[Any], Any] | None = None,
    where: str = "model.transforms",
    seq_len: int | None = None,
) -> Transformed:
    """Apply `specs` (config models of `model.transforms`) in order.

    `recorded`: the records of the first application (from a checkpoint): their specs must equal
    `specs`, and their `resolved` choices are reused. `seq_len`: the longest sequence length the
    run trains at (a RoPE transform sizes the context by it). Raises `UserError` naming `where.<i>` for a
    transform that does not fit the model, or for specs that differ from `recorded`.
    """
    if recorded is not None:
        check_recorded(specs, recorded, where)
    # What was added, by parameter identity; the parameters are held so that no id is reused.
    added_params: dict[int, torch.Tensor] = {}
    rows_by_id: dict[int, tuple[torch.Tensor, list[tuple[int, int]]]] = {}
    applied: list[Applied] = []
    for i, spec in enumerate(specs):
        fn = TRANSFORMS[spec.kind]
        context = TransformContext(
            key=f"{where}.{i}",
            resolved=recorded[i]["resolved"] if recorded is not None else None,
            probe_batches=probe_batches,
            source_texts=source_texts,
            seq_len=seq_len,
        )
        if agree is not None:
            context.agree = agree
        outcome = fn(model, tokenizer, spec, context)
        if outcome.model is not None and outcome.model is not model:
            added_params, rows_by_id = carried_over(model, outcome.model, added_params, rows_by_id)
            model = outcome.model
        tokenizer = outcome.tokenizer if outcome.tokenizer is not None else tokenizer
        params = dict(model.named_parameters())
        missing = [name for name in outcome.added if name not in params]
        if missing:
            raise RuntimeError(f"transform {spec.kind} reported parameters the model lacks: {missing[:3]}")
        new = {id(params[name]) for name in outcome.added}
        added_params.update({id(params[name]): params[name] for name in outcome.added})
        for name, (start, stop) in outcome.added_rows.items():
            rows_by_id.setdefault(id(params[name]), (params[name], []))[1].append((start, stop))
        for original, copy_name in outcome.trained_copies.items():
            before, after = params[original], params[copy_name]
            if id(before) in added_params:
                added_params[id(after)] = after
            if id(before) in rows_by_id:
                rows_by_id[id(after)] = (after, rows_by_id.pop(id(before))[1])
        frozen = sorted(name for name, p in params.items() if id(p) in rows_by_id and not p.requires_grad)
        if frozen:
            raise UserError(
                f"{where}.{i}: {spec.kind} freezes {', '.join(frozen)}, which holds new tokens' rows that would "
                "then never train; train it too (lora: train_embeddings: true, and train_lm_head: true for an "
                "untied head)"
            )
        applied.append(
            Applied(
                kind=spec.kind,
                spec=spec.model_dump(mode="json", by_alias=True),
                resolved=outcome.resolved,
                added_parameters=sum(
                    p.numel() for p in {id(p): p for p in params.values() if id(p) in new}.values()
                ),
                parameters=count_distinct(model),
            )
        )
    named = list(model.named_parameters())
    added = frozenset(name for name, p in named if id(p) in added_params)
    added_rows = {name: rows_by_id[id(p)][1] for name, p in named if id(p) in rows_by_id}
    return Transformed(model=model, tokenizer=tokenizer, applied=applied, added=added, added_rows=added_rows)


def carried_over(
    old: nn.Module,
    new: nn.Module,
    added: dict[int, torch.Tensor],
    rows: dict[int, tuple[torch.Tensor, list[tuple[int, int]]]],
) -> tuple[dict[int, torch.Tensor], dict[int, tuple[torch.Tensor, list[tuple[int, int]]]]]:
    """`added` and `rows` (of parameters of `old`, by identity) for `new`, a replacement model: a
    parameter of `new` stands for the parameter of `old` with its name and shape."""
    by_name = dict(old.named_parameters(remove_duplicate=False))
    added_now: dict[int, torch.Tensor] = {}
    rows_now: dict[int, tuple[torch.Tensor, list[tuple[int, int]]]] = {}
    for name, param in new.named_parameters(remove_duplicate=False):
        before = by_name.get(name)
        if before is None or before.shape != param.shape:
            continue
        if id(before) in added:
            added_now[id(param)] = param
        if id(before) in rows:
            rows_now[id(param)] = (param, list(rows[id(before)][1]))
    return added_now, rows_now


def check_recorded(specs: list[Any], recorded: list[dict[str, Any]], where: str) -> None:
    """Raise `UserError` unless `specs` are the ones `recorded` (a checkpoint's) was applied with."""
    given = [spec.model_dump(mode="json", by_alias=True) for spec in specs]
    saved = [record["spec"] for record in recorded]
    if given != saved:
        raise UserError(
            f"{where}: the checkpoint was trained with transforms {saved}, the config gives {given}; "
            "resume with the config the run was started with"
        )


def count_distinct(model: nn.Module) -> int:
    """Elements of the distinct parameters of `model` (tied ones counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
