"""`forgetless init`: a commented starter config sized from the user's model and data.

The sizes are measured, not guessed: the data is tokenized with the model's own tokenizer (into
the cache that `forgetless train` then reuses), the parameters are counted from the safetensors
headers, and the context length is read from the model's config. From those:

- one stage of one epoch over the new data (`tokens` = its training tokens), cosine schedule with a
  peak learning rate by model size, replay of the given general text at 5% (compute-equivalent);
- a batch by model size, lowered so that the stage has at least `MIN_STEPS` optimizer steps;
- an evaluation cadence and held-out size chosen so that evaluation costs at most `EVAL_SHARE` of
  the run's compute, counting an evaluated token as a third of a trained one (a forward pass
  against forward and backward); `eval.budget` then keeps the measured share there at run time;
- with `--recipe NAME`, the methods of that recipe's stage (`forgetless recipes`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forgetless.errors import UserError

EVAL_SHARE = 0.05
MIN_STEPS = 100
CHECKPOINT_MIN_STEPS = 50
DEFAULT_REPLAY_RATIO = 0.05
DENSE_START = [0.005, 0.01, 0.02, 0.04]  # the config's default: early points for the stability gap


@dataclass(frozen=True)
class ModelFacts:
    path: Path
    parameters: int
    max_positions: int | None
    model_type: str


@dataclass(frozen=True)
class SourceFacts:
    name: str
    ref: str  # as it goes into the config: an absolute path or bundled:<name>
    train_tokens: int
    heldout_tokens: int
    documents: int


def starter_config(
    model_dir: Path,
    data: str,
    *,
    replay: str | None = None,
    recipe: str | None = None,
    progress: bool | str = True,
) -> str:
    """The text of a commented run config for `model_dir` continued on `data` (see the module
    docstring). Raises `UserError` for a model dir, data path or recipe that does not work."""
    from forgetless.config import config_from_dict

    model = model_facts(Path(model_dir))
    recipe_stage = _recipe_stage(recipe) if recipe else None
    domain_name = source_name(data)
    replay_name = None
    if replay is not None:
        replay_name = source_name(replay)
        if replay_name == domain_name:
            replay_name += "-replay"
    if recipe_stage is not None and replay is None and _needs_replay(recipe_stage):
        raise UserError(f"--recipe {recipe}: the recipe trains with replay or general text; give --replay")
    refs = {domain_name: _ref(data)} | ({replay_name: _ref(replay)} if replay_name and replay else {})
    sources = measure_sources(model.path, refs, progress=progress)
    domain = sources[domain_name]
    if domain.train_tokens <= 0:
        raise UserError(f"--data {data}: no training tokens after the held-out split; add documents")

    plan = size_run(model, domain, [sources[name] for name in refs])
    config = _config(model, sources, domain_name, replay_name, plan, recipe_stage, recipe)
    text = _commented(config, model, sources, domain_name, replay_name, plan, recipe)
    config_from_dict(yaml.safe_load(text))  # what `forgetless train` will accept, checked here
    return text


# ---------------------------------------------------------------------------------------------
# Measuring


def model_facts(model_dir: Path) -> ModelFacts:
    """Parameters (from the safetensors headers), context length and type of a HF model dir."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"--model {model_dir}: not a Hugging Face model directory (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{config_file}: unreadable ({err})") from None
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"--model {model_dir}: no .safetensors weights")
    from safetensors import safe_open

    parameters = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                parameters += math.prod(handle.get_slice(key).get_shape())
    max_positions = config.get("max_position_embeddings")
    return ModelFacts(
        path=model_dir.resolve(),
        parameters=parameters,
        max_positions=max_positions if isinstance(max_positions, int) and max_positions > 1 else None,
        model_type=str(config.get("model_type", "?")),
    )


def source_name(ref: str) -> str:
    """A source name from a data reference: `bundled:general` -> general, `data/law/` -> law."""
    if ref.startswith("bundled:"):
        stem = ref.removeprefix("bundled:")
    else:
        path = Path(ref.rstrip("/"))
        stem = path.name
        for suffix in (".gz", ".zst", ".jsonl", ".json", ".txt", ".parquet", ".csv"):
            stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-").lower()
    return name or "data"


def _ref(ref: str) -> str:
    if ref.startswith(("bundled:", "hf:")):
        return ref
    path = Path(ref).expanduser()
    if not any(ch in ref for ch in "*?[") and not path.exists():
        raise UserError(f"{ref}: no such file or folder")
    return str(path.resolve()) if path.exists() else str(Path.cwd() / ref)


def measure_sources(model_dir: Path, refs: dict[str, str], *, progress: bool | str) -> dict[str, SourceFacts]:
    """Tokenize every source with the model's tokenizer (into the cache) and count its tokens."""
    from forgetless.config import config_from_dict
    from forgetless.data.prepare import prepare_sources
    from forgetless.model.load import load_tokenizer

    name = next(iter(refs))
    probe = config_from_dict(
        {
            "model": {"path": str(model_dir)},
            "sources": {n: {"files": [ref]} for n, ref in refs.items()},
            "stages": [{"name": "probe", "tokens": 1, "mix": {name: 1.0}}],
        }
    )
    tokenizer = load_tokenizer(str(model_dir))
    prepared = prepare_sources(probe, tokenizer, progress=progress)
    return {
        n: SourceFacts(
            name=n,
            ref=ref,
            train_tokens=int(prepared[n].meta["train"]["tokens"]),
            heldout_tokens=int(prepared[n].meta["heldout"]["tokens"]),
            documents=int(prepared[n].meta["train"]["documents"]),
        )
        for n, ref in refs.items()
    }


# ---------------------------------------------------------------------------------------------
# Sizing


@dataclass(frozen=True)
class RunPlan:
    seq_len: int
    batch_tokens: int
    micro_batch: int
    stage_tokens: int
    steps: int
    peak_lr: float
    warmup: float
    eval_max_tokens: int
    eval_every_tokens: int | None
    dense_start: list[float]
    eval_points: int
    eval_share: float  # estimated evaluation compute / training compute
    checkpoint_every_tokens: int


def size_run(model: ModelFacts, domain: SourceFacts, evaluated: list[SourceFacts]) -> RunPlan:
    """The sizes of a one-stage run of one epoch over `domain` (see the module docstring)."""
    seq_len = min(model.max_positions or 2048, 2048)
    seq_len = max(2, min(seq_len, _power_of_two_at_most(max(2, domain.train_tokens // MIN_STEPS))))
    n = model.parameters
    if n >= 30e9:
        target, micro, peak_lr = 1 << 20, 1, 5e-5
    elif n >= 3e9:
        target, micro, peak_lr = 1 << 19, 2, 1e-4
    elif n >= 100e6:
        target, micro, peak_lr = 1 << 18, 4, 3e-4
    else:
        target, micro, peak_lr = 1 << 15, 8, 1e-3
    sequences = max(1, min(target // seq_len, domain.train_tokens // (MIN_STEPS * seq_len)))
    sequences = _power_of_two_at_most(sequences)
    batch_tokens = sequences * seq_len
    micro_batch = min(micro, sequences)
    steps = max(1, domain.train_tokens // batch_tokens)
    stage_tokens = steps * batch_tokens
    warmup = 0.01 if steps >= 1000 else 0.05

    # Evaluation: a forward pass over the held-out windows costs about a third of training on the
    # same tokens (forward and backward); allow EVAL_SHARE of the training compute.
    allowed_tokens = EVAL_SHARE * 3 * stage_tokens
    heldout = [s.heldout_tokens for s in evaluated]
    max_tokens = min(65536, max(heldout))
    per_point = sum(min(max_tokens, h) for h in heldout)
    points = int(allowed_tokens // max(per_point, 1))
    dense = list(DENSE_START)
    if points < 2 + len(dense) + 1:  # base, stage end, the dense start and at least one periodic
        dense = []
    if points < 2:  # shrink the held-out sample until base and end fit
        max_tokens = max(seq_len, int(allowed_tokens // (2 * len(heldout))))
        per_point = sum(min(max_tokens, h) for h in heldout)
        points = 2
    periodic = max(0, min(points - 2 - len(dense), 20))
    every = None
    if periodic:
        every = max(batch_tokens, stage_tokens // (periodic + 1) // batch_tokens * batch_tokens)
        periodic = (stage_tokens - 1) // every
    eval_points = 2 + len(dense) + periodic
    return RunPlan(
        seq_len=seq_len,
        batch_tokens=batch_tokens,
        micro_batch=micro_batch,
        stage_tokens=stage_tokens,
        steps=steps,
        peak_lr=peak_lr,
        warmup=warmup,
        eval_max_tokens=max_tokens,
        eval_every_tokens=every,
        dense_start=dense,
        eval_points=eval_points,
        eval_share=eval_points * per_point / (3 * stage_tokens),
        # every tenth of the stage, and at least CHECKPOINT_MIN_STEPS apart: a checkpoint holds the
        # optimizer state too, and a short run should not spend its time writing them
        checkpoint_every_tokens=max(CHECKPOINT_MIN_STEPS, steps // 10) * batch_tokens,
    )


def _power_of_two_at_most(value: int) -> int:
    return 1 << max(0, int(value).bit_length() - 1)


# ---------------------------------------------------------------------------------------------
# Recipes


def _recipe_stage(name: str) -> dict[str, Any]:
    from forgetless.recipes import recipe_path

    data = yaml.safe_load(recipe_path(name).read_text(encoding="utf-8")) or {}
    stages = data.get("stages") or []
    if not stages:
        raise UserError(f"recipe {name}: no stages")
    return stages[0]


def _needs_replay(stage: dict[str, Any]) -> bool:
    methods = stage.get("methods") or {}
    return bool(stage.get("replay")) or any(
        isinstance(v, dict) and ("from" in v or v.get("on") == "replay") for v in methods.values()
    )


def _renamed(value: Any, new: str) -> Any:
    """Source names in a recipe's methods (`ewc.from: [general]`) replaced by the replay source."""
    if isinstance(value, dict):
        return {k: (_renamed(v, new) if k != "from" else [new]) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# The config and its comments


def _config(
    model: ModelFacts,
    sources: dict[str, SourceFacts],
    domain: str,
    replay: str | None,
    plan: RunPlan,
    recipe_stage: dict[str, Any] | None,
    recipe: str | None,
) -> dict[str, Any]:
    stage: dict[str, Any] = {"name": domain, "tokens": plan.stage_tokens, "mix": {domain: 1.0}}
    if replay is not None:
        ratio = DEFAULT_REPLAY_RATIO
        if recipe_stage and recipe_stage.get("replay"):
            ratio = float(recipe_stage["replay"].get("ratio", ratio))
        stage["replay"] = {"from": replay, "ratio": ratio, "accounting": "compute_equivalent"}
    stage["schedule"] = {
        "kind": "cosine",
        "peak_lr": plan.peak_lr,
        "warmup": plan.warmup,
        "final_lr_ratio": 0.1,
    }
    if recipe_stage and recipe_stage.get("methods"):
        stage["methods"] = {k: _renamed(v, replay or domain) for k, v in recipe_stage["methods"].items()}
    eval_config: dict[str, Any] = {
        "sources": list(sources),
        "max_tokens": plan.eval_max_tokens,
        "dense_start": plan.dense_start,
    }
    if plan.eval_every_tokens:
        eval_config["every_tokens"] = plan.eval_every_tokens
    return {
        "model": {"path": str(model.path)},
        "sources": {name: {"files": [facts.ref]} for name, facts in sources.items()},
        "stages": [stage],
        "train": {
            "seq_len": plan.seq_len,
            "batch_tokens": plan.batch_tokens,
            "micro_batch": plan.micro_batch,
        },
        "eval": eval_config,
        "output": {
            "dir": f"runs/{domain}" + (f"-{recipe}" if recipe else ""),
            "checkpoint_every_tokens": plan.checkpoint_every_tokens,
            "keep_checkpoints": 2,
        },
    }


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def _commented(
    config: dict[str, Any],
    model: ModelFacts,
    sources: dict[str, SourceFacts],
    domain: str,
    replay: str | None,
    plan: RunPlan,
    recipe: str | None,
) -> str:
    stage = config["stages"][0]
    lines = [
        "# A starter config written by `forgetless init`: check it, then run",
        "#   forgetless train THIS_FILE.yaml",
        "# Every key, its type and default: docs/config.md. Paths are absolute so the file works from anywhere.",
        "",
        f"# {model.model_type}, {model.parameters:,} parameters"
        + (f", context {model.max_positions:,} tokens" if model.max_positions else ""),
        f"model: {_flow(config['model'])}",
        "",
        "# Token counts measured with the model's tokenizer (already in the cache for `train`):",
    ]
    for name, facts in sources.items():
        lines.append(
            f"#   {name}: {facts.train_tokens:,} training tokens in {facts.documents:,} documents, "
            f"{facts.heldout_tokens:,} held out for evaluation"
        )
    lines.append("sources:")
    for name, body in config["sources"].items():
        lines.append(f"  {name}: {_flow(body)}")
    lines += [
        "",
        f"# One epoch over {domain}: {plan.steps:,} optimizer steps of {plan.batch_tokens:,} tokens.",
    ]
    if replay is not None:
        lines.append(
            f"# {stage['replay']['ratio']:.0%} of each batch replays {replay} (compute-equivalent: the batch size stays)."
        )
    lines.append(
        f"# Peak LR {plan.peak_lr:g} for a model of this size; continued pretraining re-warms, then decays (cosine)."
    )
    if recipe:
        lines.append(f"# Methods from the recipe {recipe} (`forgetless recipes`; docs/methods.md).")
    lines += [
        "stages:",
        f"  - name: {stage['name']}",
        f"    tokens: {stage['tokens']}",
        f"    mix: {_flow(stage['mix'])}",
    ]
    if "replay" in stage:
        lines.append(f"    replay: {_flow(stage['replay'])}")
    lines.append(f"    schedule: {_flow(stage['schedule'])}")
    if "methods" in stage:
        lines.append(f"    methods: {_flow(stage['methods'])}")
    lines += [
        "",
        "# micro_batch: sequences per forward pass; lower it if memory runs out (batch_tokens stays).",
        f"train: {_flow(config['train'])}",
        "",
        f"# {plan.eval_points} evaluations of {plan.eval_max_tokens:,} held-out tokens per source: about "
        f"{plan.eval_share:.1%} of the training compute.",
        "# Add question sets with mcq: [bundled:security-mcq, path/to/questions.jsonl] (scored at the start and end).",
        f"eval: {_flow(config['eval'])}",
        "",
        f"output: {_flow(config['output'])}",
        "",
    ]
    return "\n".join(lines)
