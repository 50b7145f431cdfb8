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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from forgetless.distributed import World, barrier, load_sharded, save_sharded
from forgetless.errors import UserError, is_disk_full

# torch.save reports a write that failed for lack of space as a bare RuntimeError ("unexpected
# pos ..."); with less free space than this left, such a failure is taken to be a full disk.
_NEARLY_FULL_BYTES = 16 << 20

_STEP_DIR = re.compile(r"^step_(\d+)$")


SHARDED_STATE = "state"  # the torch.distributed.checkpoint folder of a checkpoint written by several ranks


def is_sharded(folder: Path) -> bool:
    return (folder / SHARDED_STATE / ".metadata").is_file()


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
    torch.distributed.checkpoint into `state/`, and rank 0 writes the rest and renames the folder.
    """
    world = world or World()
    root = checkpoint_dir(run_dir)
    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}"
    if world.distributed:
        return _save_sharded_checkpoint(
            root, tmp, final, model, optimizer, trainer_state, keep, world, extra_tensors
        )
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        _write_files(tmp, model, optimizer, trainer_state, extra_tensors)
        _fsync_dir(tmp)
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
    _fsync_dir(root)
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
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
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
    save_model(model, str(folder / "model.safetensors"))
    _write_extra_tensors(folder, extra_tensors)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    _write_trainer_files(folder, trainer_state)


def _write_extra_tensors(folder: Path, extra_tensors: dict[str, dict[str, torch.Tensor]] | None) -> None:
    for name, tensors in (extra_tensors or {}).items():
        (folder / "methods").mkdir(exist_ok=True)
        plain = {key: tensor.detach().contiguous() for key, tensor in tensors.items()}
        save_file(plain, str(folder / "methods" / f"{name}.safetensors"))


def _write_trainer_files(folder: Path, trainer_state: dict[str, Any]) -> None:
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, folder / "rng.pt")
    with open(folder / "trainer.json", "w", encoding="utf-8") as fh:
        json.dump(to_json(trainer_state), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(
    folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None
) -> dict[str, Any]:
    """Restore the model (and optimizer, when given) in place; return the trainer state.

    A sharded checkpoint (written by several ranks) loads on any number of ranks, one included.
    """
    if is_sharded(folder):
        load_sharded(folder / SHARDED_STATE, model, optimizer)
    else:
        load_model(model, str(folder / "model.safetensors"), strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(
                torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
            )
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
    weights = folder / "model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as fh:
            found = {name: list(fh.get_slice(name).get_shape()) for name in fh.keys()}  # noqa: SIM118
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(
            f"{weights}: unreadable checkpoint weights ({err}); resume from an earlier checkpoint"
        ) from None
    # Tied weights (one storage under several names) are stored once, under one of their names.
    names_of_storage: dict[int, list[str]] = {}
    for name, tensor in state.items():
        names_of_storage.setdefault(tensor.data_ptr(), []).append(name)
    problem = None
    for name, tensor in state.items():
        if name in found and found[name] != list(tensor.shape):
            problem = f"{name} has shape {found[name]}, the model {list(tensor.shape)}"
        elif name not in found and not any(n in found for n in names_of_storage[tensor.data_ptr()]):
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
    return {path.stem: _TensorFile(path) for path in sorted(root.glob("*.safetensors"))}


class _TensorFile(Mapping[str, torch.Tensor]):
    """The tensors of a safetensors file, read on access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with safe_open(str(path), framework="pt") as fh:
            self._keys = dict.fromkeys(fh.keys())  # noqa: SIM118 - a safe_open handle is not a mapping

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        with safe_open(str(self.path), framework="pt") as fh:
            return fh.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def checkpoint_weights(folder: Path) -> Mapping[str, torch.Tensor]:
    """The model weights of a checkpoint by parameter name, whichever number of processes wrote it:
    a mapping that reads one whole tensor (on CPU) from disk when it is looked up, so a reader
    holds one tensor of the checkpoint at a time. Tied weights appear under the one name that was
    saved (`model.safetensors`) or under each of their names (a sharded checkpoint)."""
    if is_sharded(folder):
        return _ShardedWeights(folder / SHARDED_STATE)
    return _TensorFile(folder / "model.safetensors")


class _ShardedWeights(Mapping[str, torch.Tensor]):
    """The model tensors of a torch.distributed.checkpoint folder, each read whole on access."""

    _PREFIX = "model."

    def __init__(self, folder: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        self.folder = folder
        metadata = dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata
        self._entries = {
            key[len(self._PREFIX) :]: entry
            for key, entry in metadata.items()
            if key.startswith(self._PREFIX) and isinstance(entry, TensorStorageMetadata)
        }

    def __getitem__(self, key: str) -> torch.Tensor:
        import torch.distributed.checkpoint as dcp

        entry = self._entries[key]
        tensor = torch.empty(entry.size, dtype=entry.properties.dtype)
        dcp.load({"model": {key: tensor}}, checkpoint_id=str(self.folder), no_dist=True)
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
