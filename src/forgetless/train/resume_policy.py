"""What may change when a run resumes, key by key, and the data it must find unchanged.

`--resume` continues a run; the result should be the run that never stopped, or a run that differs
only in what the user meant to change. `check_config(old, new)` compares the config the run last
ran with (its `config.yaml`) with the one it resumes with, leaf key by leaf key, against `RULES`:
the first rule whose pattern matches a changed key decides, and a key that no rule names must stay
as it was. A refused change raises `UserError` naming the key, before anything is written.

`check_data(old, new)` compares the hashes of every source's prepared tokens (`data_record`, kept in
the run's `run_start` line) with those the resumed run prepared: moving or renaming a file is fine,
a changed document, order or tokenizer is not.

`check_resumed_config(run_dir, config)` and `check_resumed_data(run_dir, record)` read what they
compare with from the run directory. A run directory without a readable `config.yaml` (or one
written by a version whose keys no longer validate) skips the key check; one whose `run_start`
holds no hashes skips the data check. The checkpoint's own checks (its weights fit the model, its
sampler the stage) still apply.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from forgetless.config import RunConfig, config_from_dict
from forgetless.errors import UserError


@dataclass(frozen=True)
class Rule:
    pattern: str  # over dotted key paths, list items by index: `stages.*.schedule.*`
    may_change: bool
    why: str


RULES: list[Rule] = [
    Rule("stages", False, "the number of stages"),
    Rule("stages.*.schedule.*", True, "the learning-rate schedule, read afresh at every step"),
    Rule(
        "stages.*",
        False,
        "a stage's name, budget, mix, replay, optimizer reset and methods decide its data and its state",
    ),
    Rule("train.seq_len", False, "the sequence length decides which tokens each step reads"),
    Rule("train.batch_tokens", False, "the batch size decides which tokens each step reads"),
    Rule("train.seed", False, "the seed decides the order of the data"),
    Rule("train.weight_decay", False, "the optimizer's parameter groups and state are built with it"),
    Rule("train.betas", False, "the optimizer's state was accumulated with it"),
    Rule("train.eps", False, "the optimizer's state was accumulated with it"),
    Rule("train.lr_multipliers", False, "the optimizer's parameter groups are built from it"),
    Rule(
        "train.*",
        True,
        "how a step runs: micro-batches, precision, compilation, fused loss, threads, device, clipping, logging",
    ),
    Rule("eval.sources", False, "the ledger compares the same sources before and after"),
    Rule("eval.mcq", False, "the ledger compares the same question sets before and after"),
    Rule("eval.mcq_limit", False, "the ledger compares the same questions before and after"),
    Rule("eval.max_tokens", False, "the ledger compares the same held-out tokens before and after"),
    Rule("eval.*", True, "when evaluations run and in what batches"),
    Rule("sources.*.heldout.*", False, "it decides the held-out split the ledger measures"),
    Rule("sources.*", True, "where and how a source is read (its prepared tokens are compared instead)"),
    Rule("model.path", True, "the weights come from the checkpoint (and must fit it)"),
    Rule("model.allow_pickle", True, "a permission, not a setting of the run"),
    Rule("model.trust_remote_code", True, "a permission, not a setting of the run"),
    Rule("model.*", False, "the model's architecture and parameter type"),
    Rule("tokenizer", True, "the prepared tokens are compared instead"),
    Rule("output.*", True, "where and how often checkpoints are written"),
    Rule("reliability.*", True, "what the loop does about numerical faults from now on"),
    Rule("cache_dir", True, "the prepared tokens are compared instead"),
]


def rule_for(key: str) -> Rule:
    """The rule that decides `key` (the first whose pattern matches); keys no rule names are fixed."""
    for rule in RULES:
        if fnmatch.fnmatchcase(key, rule.pattern):
            return rule
    return Rule(key, False, "a key without a rule stays as it was")


def check_config(old: RunConfig, new: RunConfig) -> list[str]:
    """Raise `UserError` for the first key that changed and may not; return the keys that changed
    and may (for the run's log)."""
    allowed = []
    for key, before, after in changed_keys(old, new):
        rule = rule_for(key)
        if not rule.may_change:
            raise UserError(
                f"{key}: {_show(before)} when the run started, {_show(after)} now; it must stay as it was "
                f"on --resume ({rule.why}); put it back, or start a new run with --out"
            )
        allowed.append(key)
    return allowed


def changed_keys(old: RunConfig, new: RunConfig) -> Iterator[tuple[str, Any, Any]]:
    """(key, old value, new value) for every leaf that differs, in the config's order. Nested config
    models are walked; lists of them item by item (another length is a change of the list's key,
    `stages` for another number of stages); sources by name (one only in the new config is no
    change by itself); `eval.sources` as the sources evaluated (left out means every source)."""
    for key, before, after in _differences(old, new, ""):
        if key != "eval.sources":
            yield key, before, after
    if old.eval_sources != new.eval_sources:
        yield "eval.sources", old.eval_sources, new.eval_sources


def _differences(old: Any, new: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(old, BaseModel) and type(old) is type(new):
        for name, field in type(old).model_fields.items():
            yield from _differences(
                getattr(old, name), getattr(new, name), _join(prefix, field.alias or name)
            )
    elif _models(old, list) and _models(new, list):
        if len(old) != len(new):
            yield prefix, f"{len(old)} entries", f"{len(new)} entries"
            return
        for i, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from _differences(before, after, _join(prefix, str(i)))
    elif _models(old, dict) and _models(new, dict):
        for name in [name for name in new if name in old]:
            yield from _differences(old[name], new[name], _join(prefix, str(name)))
    elif _plain(old) != _plain(new):
        yield prefix, _plain(old), _plain(new)


def _models(value: Any, kind: type) -> bool:
    """A non-empty list (or dict) of config models."""
    items = value.values() if isinstance(value, dict) else value
    return isinstance(value, kind) and bool(value) and all(isinstance(v, BaseModel) for v in items)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Data


def data_record(stores: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, str | None]]:
    """{source: {"train": sha256, "heldout": sha256}} of prepared `(train, heldout)` token stores."""
    return {
        name: {"train": train.sha256, "heldout": heldout.sha256} for name, (train, heldout) in stores.items()
    }


def check_data(old: dict[str, dict[str, str | None]] | None, new: dict[str, dict[str, str | None]]) -> None:
    """Raise `UserError` naming the first source whose prepared tokens differ from the run's."""
    for name, splits in new.items():
        for split, digest in splits.items():
            before = ((old or {}).get(name) or {}).get(split)
            if before is not None and digest is not None and before != digest:
                part = "training" if split == "train" else "held-out"
                raise UserError(
                    f"sources.{name}: its prepared {part} tokens changed since the run started (a file's "
                    "contents or order, or the tokenizer); resume needs the data unchanged: restore it, "
                    "or start a new run with --out"
                )


def check_resumed_config(run_dir: Path, config: RunConfig) -> list[str]:
    """`check_config` against the run's `config.yaml`; the changed keys that may change."""
    try:
        old = config_from_dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, UserError, TypeError, AttributeError):
        return []
    return check_config(old, config)


def check_resumed_data(run_dir: Path, record: dict[str, dict[str, str | None]]) -> None:
    """`check_data` against the hashes in the run's latest `run_start` line."""
    start: dict[str, Any] = {}
    try:
        with open(Path(run_dir) / "metrics.jsonl", encoding="utf-8") as lines:
            for line in lines:
                if '"run_start"' in line:
                    with contextlib.suppress(ValueError):
                        record_ = json.loads(line)
                        start = record_ if record_.get("kind") == "run_start" else start
    except OSError:
        return
    check_data(start.get("data"), record)


def rules_markdown() -> str:
    """The rules as a Markdown table (docs/reliability.md shows it; a test keeps the two equal)."""
    lines = ["| key | on `--resume` | why |", "| --- | --- | --- |"]
    for rule in RULES:
        verdict = "may change" if rule.may_change else "must stay"
        lines.append(f"| `{rule.pattern}` | {verdict} | {rule.why} |")
    lines.append("| any other key | must stay | |")
    return "\n".join(lines)
