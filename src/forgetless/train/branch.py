"""Anytime cooldown branches: a decayed model from any checkpoint of a constant-LR phase.

With a constant, WSD or infinite schedule, the learning rate stays flat for most of a stage, so any
checkpoint in the flat phase can be decayed into a deployable model, while the run itself goes on
(Singh et al., "Beyond Cosine Decay", CoLLAs 2025; the WSD "branches" of OLMo-core). A branch
is a schedule, not a new mechanism: it is the same run with the stage cut to `N + d` optimizer steps
and a schedule whose LR equals the parent's for the first `N` steps and decays to the stage's floor
over the last `d`. The branch resumes from the parent's checkpoint at step `N` (model, optimizer,
data position, RNG), so it equals, bit for bit on a CPU, a run of that schedule from the start.

    branch_schedule(schedule, total_steps, from_step, decay_steps, shape)  # the pure part
    cooldown(parent_run_dir, tokens=T, from_step=N, shape="linear")        # writes and runs the branch

With `mix`, the decay runs on another mixture (e.g. more high-quality data): the branch's stage gets
`mix_schedule: {kind: decay, mix: ...}`, whose mixture starts with the decay, at step N, so the
branch is still a run of its config from the start, bit for bit.

The branch directory (default `PARENT/branches/step_N-<shape>-<d>steps`) is an ordinary run
directory: its metrics start with the parent's lines up to step N (the base evaluation included),
so its ledger is against the same base; `branch.json` names the parent and the branch point.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from forgetless.config import RunConfig, ScheduleConfig, validate_config
from forgetless.errors import UserError
from forgetless.train import checkpoint as ckpt
from forgetless.train.schedules import const_lr, schedule_phases

BRANCH_FILE = "branch.json"
SHAPES = ("linear", "cosine", "1-sqrt", "exponential")


def branch_schedule(
    schedule: ScheduleConfig, total_steps: int, from_step: int, decay_steps: int, shape: str
) -> ScheduleConfig:
    """The schedule of a stage of `from_step + decay_steps` steps whose LR equals `schedule`'s (over
    `total_steps`) on steps `< from_step` and then decays over `decay_steps` steps to the floor.

    Constant and WSD stages decay from the peak to `final_lr_ratio * peak_lr` with a linear, cosine
    or 1-sqrt shape (a WSD schedule); infinite stages anneal exponentially from `const_lr` to
    `min_lr` (their own anneal). Raise `UserError` for a cosine stage (its LR never stays flat:
    nothing to branch), or a `from_step` outside the flat phase.
    """
    if shape not in SHAPES:
        raise UserError(f"--shape {shape}: expected one of {', '.join(SHAPES)}")
    if decay_steps < 1:
        raise UserError("--tokens: the cooldown needs at least one optimizer step")
    kind = schedule.kind
    if kind == "cosine":
        raise UserError(
            "cooldown: the stage has a cosine schedule, whose learning rate decays all along: there is no "
            "constant phase to branch from (use schedule kind constant, wsd or infinite)"
        )
    phases = {p.name: p for p in schedule_phases(schedule, total_steps)}
    flat = phases.get("constant" if kind == "infinite" else "stable")
    if flat is None or not flat.start <= from_step <= flat.end:
        where = f"steps {flat.start}..{flat.end}" if flat is not None else "none in this stage"
        raise UserError(
            f"cooldown: step {from_step} of the stage is not in its constant-LR phase ({where}); branch from "
            "a checkpoint inside it"
        )
    total = from_step + decay_steps
    fields: dict[str, Any] = schedule.model_dump()
    warmup_steps = phases["warmup"].end if "warmup" in phases else 0
    fields["warmup"] = warmup_steps / total  # the same whole steps in the longer or shorter stage
    if kind == "infinite":
        if shape != "exponential":
            raise UserError(
                f"--shape {shape}: an infinite schedule anneals exponentially; use --shape exponential"
            )
        cooldown_steps = phases["cooldown"].end if "cooldown" in phases else warmup_steps
        fields.update(
            cooldown=cooldown_steps / total, anneal=decay_steps / total, const_lr=const_lr(schedule)
        )
        if fields["min_lr"] is None:
            fields["min_lr"] = 0.1 * schedule.peak_lr
        return ScheduleConfig.model_validate(fields)
    if shape == "exponential":
        raise UserError(
            "--shape exponential: only infinite schedules anneal exponentially; use linear, cosine or 1-sqrt"
        )
    fields.update(kind="wsd", decay=decay_steps / total, decay_shape=shape)
    return ScheduleConfig.model_validate(fields)


def cooldown(
    parent: Path,
    *,
    tokens: int,
    from_step: int | None = None,
    before_end: bool = False,
    shape: str = "linear",
    mix: dict[str, float] | None = None,
    out: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Branch the run in `parent` at a checkpoint and decay over `tokens` training tokens; return the
    branch's run directory. `from_step` (a global step with a checkpoint; default the latest) or
    `before_end` (the checkpoint `tokens` before the end of its stage, so the branch ends where the
    stage does); `mix` (source -> weight) a mixture for the decay, replay keeping its share. Raise
    `UserError` before writing anything for bad input."""
    from forgetless.evaluate.ledger import read_metrics
    from forgetless.train.run import run_training

    parent = Path(parent)
    config = _parent_config(parent)
    checkpoint, state = _branch_point(parent, config, from_step, before_end, tokens)
    position = state["position"]
    index, stage_step = position["stage_index"], position["stage_step"]
    per_step = config.tokens_per_step_of(index)  # a stage of its own seq_len has its own
    decay_steps = _decay_steps(tokens, per_step)
    stage = config.stages[index]
    if stage.replay is not None and stage.replay.ratio > 0 and stage.replay.accounting == "additive":
        raise UserError(
            "cooldown: branches of a stage with additive replay are not supported; use compute_equivalent"
        )
    if mix is not None:
        _check_mix(config, stage, mix)
    total_steps = _stage_steps(config, index)
    schedule = branch_schedule(stage.schedule, total_steps, stage_step, decay_steps, shape)
    name = f"step_{position['step']}-{shape}-{decay_steps}steps"
    if mix is not None:
        name += "-mix-" + "+".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", source) for source in mix)
    out = Path(out) if out is not None else parent / "branches" / name
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: already exists; choose another --out")

    data = config.model_dump(mode="json", by_alias=True)
    data["stages"] = data["stages"][: index + 1]
    data["stages"][index]["tokens"] = (stage_step + decay_steps) * per_step
    data["stages"][index]["schedule"] = schedule.model_dump(mode="json")
    if mix is not None:
        data["stages"][index]["mix_schedule"] = {"kind": "decay", "mix": dict(mix)}
    data["output"]["dir"] = str(out.resolve())
    branch_config = validate_config(data, source=str(parent / "config.yaml"), lines={})

    records = [r for r in read_metrics(parent / "metrics.jsonl") if (r.get("step") or 0) <= position["step"]]
    for record in records:
        if record.get("kind") == "run_start":
            record["stages"] = record.get("stages", [])[: index + 1]
            if record["stages"]:
                record["stages"][index]["tokens"] = data["stages"][index]["tokens"]
                if mix is not None:  # a source the decay trains on is a target of the branch
                    targets = record["stages"][index].get("targets", [])
                    record["stages"][index]["targets"] = sorted({*targets, *mix})
    branch = {
        "kind": "cooldown_branch",
        "parent": str(parent.resolve()),
        "checkpoint": checkpoint.name,
        "from_step": position["step"],
        "from_tokens": position["tokens"],
        "stage": stage.name,
        "stage_step": stage_step,
        "decay_steps": decay_steps,
        "decay_tokens": decay_steps * per_step,
        "shape": shape,
        "mix": dict(mix) if mix is not None else None,
        "loss_at_branch": _losses_at(records, position["step"]),
    }
    records.append(
        {
            "kind": "event",
            "event": "branch",
            "step": position["step"],
            "tokens": position["tokens"],
            **{k: branch[k] for k in ("parent", "shape", "decay_steps")},
        }
    )

    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(checkpoint, ckpt.checkpoint_dir(out) / checkpoint.name)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (out / BRANCH_FILE).write_text(json.dumps(branch, indent=2) + "\n", encoding="utf-8")
    return run_training(branch_config, resume=True, quiet=quiet)


def read_branch(run_dir: Path) -> dict[str, Any] | None:
    """The `branch.json` of a branch run directory, or None for a run that is not a branch."""
    path = Path(run_dir) / BRANCH_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def branches_of(run_dir: Path) -> list[Path]:
    """The branch run directories under `run_dir/branches/`, by branch step."""
    folder = Path(run_dir) / "branches"
    found = [p for p in folder.iterdir() if (p / BRANCH_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: (read_branch(p) or {}).get("from_step", 0))


# ---------------------------------------------------------------------------------------------


def _parent_config(parent: Path) -> RunConfig:
    path = parent / "config.yaml"
    if not path.is_file():
        raise UserError(f"{parent}: not a run directory (no config.yaml)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return validate_config(data, source=str(path), lines={})


def parse_mix(text: str) -> dict[str, float]:
    """`hq=0.5,security=0.5` (a bare name weighs 1) -> {source: weight}; `UserError` naming the bad item."""
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.strip().partition("=")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            value = -1.0
        if not name or not math.isfinite(value) or value < 0 or name in mix:
            raise UserError(f"--mix {text}: expected source=weight,... with distinct sources, got {item.strip()!r}")
        mix[name] = value
    if sum(mix.values()) <= 0:
        raise UserError(f"--mix {text}: the weights must sum to a positive number")
    return mix


def _check_mix(config: RunConfig, stage: Any, mix: dict[str, float]) -> None:
    for name in mix:
        if name not in config.sources:
            raise UserError(f"--mix {name}: no such source in the run's config; sources: {sorted(config.sources)}")
        if stage.replay is not None and name in stage.replay.from_:
            raise UserError(f"--mix {name}: stage {stage.name} replays it; decay on other sources")
    if stage.mix_schedule is not None and stage.mix_schedule.kind == "loss_driven":
        raise UserError(
            f"--mix: stage {stage.name}'s mixture is loss-driven (mix_schedule); branch it on its own mixture"
        )


def _stage_steps(config: RunConfig, index: int) -> int:
    stage = config.stages[index]
    sequences = math.ceil(stage.tokens / config.seq_len_of(index))
    return max(1, math.ceil(sequences / config.sequences_per_step_of(index)))


def _decay_steps(tokens: int, per_step: int) -> int:
    return math.ceil(tokens / per_step) if tokens > 0 else 0


def _branch_point(
    parent: Path, config: RunConfig, from_step: int | None, before_end: bool, tokens: int
) -> tuple[Path, dict[str, Any]]:
    checkpoints = ckpt.list_checkpoints(parent)
    if not checkpoints:
        raise UserError(f"{parent}: no checkpoints to branch from (set output.checkpoint_every_tokens)")
    states = {folder: ckpt.read_trainer_state(folder) for folder in checkpoints}
    steps = {folder: state["position"]["step"] for folder, state in states.items()}
    if before_end:
        wanted = []
        for folder, state in states.items():
            position = state["position"]
            index = position["stage_index"]
            if (
                index < len(config.stages)
                and position["stage_step"]
                == _stage_steps(config, index) - _decay_steps(tokens, config.tokens_per_step_of(index))
            ):
                wanted.append(folder)
        if not wanted:
            raise UserError(
                f"{parent}: no checkpoint {tokens:,} tokens before the end of its stage; kept: "
                f"{', '.join(f.name for f in checkpoints)}"
            )
        folder = wanted[-1]
    elif from_step is None:
        folder = checkpoints[-1]
    else:
        matches = [f for f, s in steps.items() if s == from_step]
        if not matches:
            raise UserError(
                f"--from step_{from_step}: no such checkpoint in {parent}; kept: {', '.join(f.name for f in checkpoints)}"
            )
        folder = matches[0]
    state = states[folder]
    if state["position"]["stage_index"] >= len(config.stages):
        raise UserError(f"{folder}: written after the last stage; branch from a checkpoint inside a stage")
    return folder, state


def _losses_at(records: list[dict], step: int) -> dict[str, Any]:
    """The latest evaluation at or before `step`: its step and loss per source."""
    evals = [r for r in records if r.get("kind") == "eval" and (r.get("step") or 0) <= step]
    if not evals:
        return {}
    last = evals[-1]
    losses = {k.split("/")[1]: v for k, v in last.items() if k.startswith("eval/") and k.endswith("/loss")}
    return {"step": last.get("step"), "tokens": last.get("tokens"), "loss": losses}
