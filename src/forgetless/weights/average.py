"""`forgetless average`: the mean of the weights of the last checkpoints of a stage."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from forgetless.errors import UserError
from forgetless.model.checkpoint import checkpoint_weights, load_weights
from forgetless.weights.merge import mean_tensor, save_as


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
    the stage and the checkpoints used.

    Checkpoints of either layout (one process, or sharded by several) are read one tensor at a
    time: the memory needed is the model's, plus one tensor of each checkpoint."""
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
    readers = [checkpoint_weights(folder) for folder in folders]
    for folder, reader in zip(folders[1:], readers[1:], strict=True):
        if set(reader) != set(readers[0]):
            name = sorted(set(reader) ^ set(readers[0]))[0]
            raise UserError(f"{folder}: {name} is in this checkpoint or in {folders[0].name}, not in both")
    config = load_config(Path(run_dir) / "config.yaml")
    tokenizer = load_tokenizer(config.tokenizer or config.model.path)
    model = build_model(config.model, tokenizer)
    load_weights(model, _Mean(readers), folders[0])
    save_as(model, tokenizer, out_dir, torch.float32)
    return stage, folders


class _Mean(Mapping[str, torch.Tensor]):
    """The element-wise mean of several checkpoints' weights, computed for one name at a time."""

    def __init__(self, readers: list[Mapping[str, torch.Tensor]]) -> None:
        self.readers = readers

    def __getitem__(self, key: str) -> torch.Tensor:
        return mean_tensor([reader[key] for reader in self.readers])

    def __iter__(self) -> Iterator[str]:
        return iter(self.readers[0])

    def __len__(self) -> int:
        return len(self.readers[0])
