"""`forgetless average`: the mean of the weights of the last checkpoints of a stage."""

from __future__ import annotations

from pathlib import Path

import torch

from forgetless.errors import UserError
from forgetless.weights.merge import average, save_as


def stage_checkpoints(run_dir: Path, stage: str | None) -> tuple[str, list[Path]]:
    """The checkpoints of one stage of a run (default: the last stage that has any), oldest first.

    A checkpoint belongs to a stage when it was written during it, or right at its end.
    """
    from forgetless.config import load_config
    from forgetless.train import checkpoint as ckpt

    config = load_config(Path(run_dir) / "config.yaml")
    names = [s.name for s in config.stages]
    if stage is not None and stage not in names:
        raise UserError(f"--stage {stage}: the run has stages {names}")
    by_stage: dict[str, list[Path]] = {}
    for folder in ckpt.list_checkpoints(Path(run_dir)):
        position = ckpt.read_trainer_state(folder)["position"]
        index = position["stage_index"] if position["stage_step"] > 0 else position["stage_index"] - 1
        if 0 <= index < len(names):
            by_stage.setdefault(names[index], []).append(folder)
    if stage is None:
        found = [name for name in names if name in by_stage]
        if not found:
            raise UserError(f"{run_dir}: the run has no checkpoints (set output.checkpoint_every_tokens)")
        stage = found[-1]
    if stage not in by_stage:
        raise UserError(f"{run_dir}: stage {stage} has no checkpoints left (see output.keep_checkpoints)")
    return stage, by_stage[stage]


def average_checkpoints(run_dir: Path, last: int, stage: str | None, out_dir: Path) -> tuple[str, list[Path]]:
    """Average the weights of the last `last` checkpoints of a stage into an HF directory; return
    the stage and the checkpoints used."""
    from safetensors.torch import load_file

    from forgetless.config import load_config
    from forgetless.model.load import build_model, load_tokenizer

    if last < 1:
        raise UserError(f"--last {last}: average at least one checkpoint")
    stage, folders = stage_checkpoints(run_dir, stage)
    if len(folders) < last:
        raise UserError(
            f"{run_dir}: stage {stage} has {len(folders)} checkpoint(s) left, fewer than --last {last} "
            "(raise output.keep_checkpoints)"
        )
    folders = folders[-last:]
    averaged = average([load_file(folder / "model.safetensors") for folder in folders])
    config = load_config(Path(run_dir) / "config.yaml")
    tokenizer = load_tokenizer(config.tokenizer or config.model.path)
    model = build_model(config.model, tokenizer)
    missing, unexpected = model.load_state_dict(averaged, strict=False)
    stored = {t.data_ptr() for name, t in model.state_dict().items() if name in averaged}
    if unexpected or any(model.state_dict()[name].data_ptr() not in stored for name in missing):
        raise UserError(f"{folders[0]}: the checkpoint does not fit the run's model")
    save_as(model, tokenizer, out_dir, torch.float32)
    return stage, folders
