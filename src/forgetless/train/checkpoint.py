"""Checkpoints that make resume exact and never leave a half-written latest checkpoint.

A checkpoint is a folder `checkpoints/step_N/` holding everything needed to continue the run as if
it had never stopped:

- `model.safetensors`: the weights (safetensors, never pickle);
- `optimizer.pt`: the optimizer state, loaded with `torch.load(weights_only=True)`;
- `rng.pt`: the torch CPU (and CUDA) generator states, also tensors only;
- `trainer.json`: step and token counters, the stage position, the sampler state and the methods'
  state, as JSON (numpy arrays tagged, so they come back with their dtype);
- `methods/<name>.safetensors`: the tensors of a method's state (anchor weights, a Fisher, a
  teacher), when the stage has methods that keep tensors.

It is written into `checkpoints/.tmp-step_N/` and renamed into place only when complete, so a crash
at any point (including mid-write) leaves the previous checkpoint as the latest one. A write that
fails (a full disk, most often) removes the temporary folder and raises; a full disk is reported as
`OSError(ENOSPC)` naming the folder, whichever writer noticed it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from forgetless.distributed import World, barrier, is_sharded_model, load_sharded, load_whole, save_sharded
from forgetless.durable import fsync_dir, fsync_tree
from forgetless.errors import UserError, is_disk_full
from forgetless.model.checkpoint import (
    MODEL_WEIGHTS,
    SHARDED_STATE,
    TensorFile,
    checkpoint_weights,
    is_sharded,
)

# torch.save reports a write that failed for lack of space as a bare RuntimeError ("unexpected
# pos ..."); with less free space than this left, such a failure is taken to be a full disk.
_NEARLY_FULL_BYTES = 16 << 20

_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are never listed)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep: int,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    world: World | None = None,
) -> Path:
    """Write `checkpoints/step_<step>/` atomically, then delete all but the newest `keep`.

    `extra_tensors` maps a name to tensors written as `methods/<name>.safetensors`. Under several
    ranks (`world`), every rank writes its shards of the model and optimizer with
    torch.distributed.checkpoint into `state/`, and rank 0 writes the rest and renames the folder;
    so does a model sharded on one process (`train.mixed_precision: fsdp`).
    """
    world = world or World()
    root = checkpoint_dir(run_dir)
    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}"
    if world.distributed or is_sharded_model(model):
        return _save_sharded_checkpoint(
            root, tmp, final, model, optimizer, trainer_state, keep, world, extra_tensors
        )
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        _write_files(tmp, model, optimizer, trainer_state, extra_tensors)
        fsync_tree(tmp)  # every file complete on disk before the rename publishes them
    except BaseException as err:
        full = is_disk_full(err) or (isinstance(err, RuntimeError) and _nearly_full(root))
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from err
        raise
    replaced = None
    if final.exists():  # the same step saved again: move the old copy aside first, then drop it
        replaced = root / f".old-step_{step}"
        shutil.rmtree(replaced, ignore_errors=True)
        os.rename(final, replaced)
    os.rename(tmp, final)
    fsync_dir(root)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _save_sharded_checkpoint(
    root: Path,
    tmp: Path,
    final: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep: int,
    world: World,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None,
) -> Path:
    if world.is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier(world)
    save_sharded(tmp / SHARDED_STATE, model, optimizer)
    barrier(world)
    if world.is_main:
        _write_extra_tensors(tmp, extra_tensors)  # whole tensors, gathered on this rank
        _write_trainer_files(tmp, trainer_state)
        fsync_tree(tmp)  # the shards of every rank and the files above, before the rename
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(root)
        for old in list_checkpoints(root.parent)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(world)
    return final


def _write_files(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> None:
    save_model(model, str(folder / MODEL_WEIGHTS))
    _write_extra_tensors(folder, extra_tensors)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    _write_trainer_files(folder, trainer_state)


def _write_extra_tensors(folder: Path, extra_tensors: dict[str, dict[str, torch.Tensor]] | None) -> None:
    for name, tensors in (extra_tensors or {}).items():
        (folder / "methods").mkdir(exist_ok=True)
        plain = {key: tensor.detach().contiguous() for key, tensor in tensors.items()}
        save_file(plain, str(folder / "methods" / f"{name}.safetensors"))


def _write_trainer_files(folder: Path, trainer_state: dict[str, Any]) -> None:
    rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, folder / "rng.pt")
    with open(folder / "trainer.json", "w", encoding="utf-8") as fh:
        json.dump(to_json(trainer_state), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    world: World | None = None,
) -> dict[str, Any]:
    """Restore the model (and optimizer, when given) in place; return the trainer state.

    Any checkpoint loads on any number of processes (`world`): a sharded one (written by several)
    through torch.distributed.checkpoint, which reshards it; a single-process one as it was saved
    on one process, or as whole tensors that each of several processes cuts into its own shards.
    """
    if is_sharded(folder):
        load_sharded(folder / SHARDED_STATE, model, optimizer)
    else:
        optimizer_state = None
        if optimizer is not None:
            optimizer_state = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
        if world is not None and world.distributed:
            load_whole(model, optimizer, checkpoint_weights(folder), optimizer_state)
        else:
            load_model(model, str(folder / MODEL_WEIGHTS), strict=True)
            if optimizer is not None and optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
    rng = torch.load(folder / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    with open(folder / "trainer.json", encoding="utf-8") as fh:
        return from_json(json.load(fh))


def check_model_matches(folder: Path, model: torch.nn.Module) -> None:
    """Raise `UserError` unless the checkpoint's weights have exactly the model's names and shapes.

    Reads only the safetensors header, so a resume with another model fails before anything is written.
    (A sharded checkpoint is checked by torch.distributed.checkpoint when it loads.)
    """
    if is_sharded(folder):
        return
    state = model.state_dict()
    weights = folder / MODEL_WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as fh:
            found = {name: list(fh.get_slice(name).get_shape()) for name in fh.keys()}  # noqa: SIM118
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(
            f"{weights}: unreadable checkpoint weights ({err}); resume from an earlier checkpoint"
        ) from None
    # Tied weights (one parameter under several names) are stored once, under one of their names.
    names_of: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    aliases = {name: names for names in names_of.values() for name in names}
    problem = None
    for name, tensor in state.items():
        if name in found and found[name] != list(tensor.shape):
            problem = f"{name} has shape {found[name]}, the model {list(tensor.shape)}"
        elif name not in found and not any(n in found for n in aliases.get(name, [name])):
            problem = f"{name} is missing from the checkpoint"
        if problem:
            break
    extra = [name for name in found if name not in state]
    if problem is None and extra:
        problem = f"{extra[0]} is not in the model"
    if problem is not None:
        raise UserError(
            f"{folder}: the checkpoint does not fit the model of the config ({problem}); resume with "
            "the config the run was started with"
        )


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def read_extra_tensors(folder: Path) -> dict[str, Mapping[str, torch.Tensor]]:
    """The `extra_tensors` saved with a checkpoint, by name: each a mapping that reads a tensor (on
    CPU) from its file when it is looked up, so restoring a large state holds one tensor at a time."""
    root = folder / "methods"
    if not root.is_dir():
        return {}
    return {path.stem: TensorFile(path) for path in sorted(root.glob("*.safetensors"))}


def read_trainer_state(folder: Path) -> dict[str, Any]:
    with open(folder / "trainer.json", encoding="utf-8") as fh:
        return from_json(json.load(fh))


def to_json(value: Any) -> Any:
    """Plain JSON for nested dicts/lists holding numpy arrays and scalars (arrays keep their dtype)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
