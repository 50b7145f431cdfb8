"""The model weights of a run's checkpoint, read the same way whichever number of processes wrote it.

A checkpoint folder (`RUN_DIR/checkpoints/step_N/`, written by `forgetless.train.checkpoint`)
holds the weights in one of two layouts:

- one process: `model.safetensors`, the model's state dict (tied weights stored once);
- several processes: `state/`, a torch.distributed.checkpoint folder whose `model.<name>` entries
  are the same tensors, sharded over the files of the processes that wrote them.

`checkpoint_weights` reads either as one mapping of whole tensors by parameter name, one tensor at
a time, and `load_checkpoint_model` builds the run's model with them, so `forgetless average`,
`merge` and `eval` take a checkpoint folder as they take a model directory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from forgetless.errors import UserError

MODEL_WEIGHTS = "model.safetensors"  # the single-process layout
SHARDED_STATE = "state"  # the torch.distributed.checkpoint folder of the several-process layout
TRAINER_STATE = "trainer.json"


def is_sharded(folder: Path) -> bool:
    """Whether a checkpoint was written by several processes (its weights are under `state/`)."""
    return (Path(folder) / SHARDED_STATE / ".metadata").is_file()


def is_checkpoint(folder: Path) -> bool:
    """Whether `folder` is a checkpoint of a run (of either layout), rather than a model directory."""
    folder = Path(folder)
    return (folder / TRAINER_STATE).is_file() and ((folder / MODEL_WEIGHTS).is_file() or is_sharded(folder))


def checkpoint_weights(folder: Path) -> Mapping[str, torch.Tensor]:
    """The model weights of a checkpoint by parameter name, whichever number of processes wrote it:
    a mapping that reads one whole tensor (on CPU) from disk when it is looked up, so a reader
    holds one tensor of the checkpoint at a time. Tied weights appear under the one name that was
    saved (`model.safetensors`) or under each of their names (a sharded checkpoint)."""
    folder = Path(folder)
    if is_sharded(folder):
        return ShardedTensors(folder / SHARDED_STATE, prefix="model.")
    return TensorFile(folder / MODEL_WEIGHTS)


class TensorFile(Mapping[str, torch.Tensor]):
    """The tensors of a safetensors file, each read on access."""

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


class ShardedTensors(Mapping[str, torch.Tensor]):
    """The tensors under `prefix` of a torch.distributed.checkpoint folder, each read whole on
    access (in this process alone, whatever process group it may belong to)."""

    def __init__(self, folder: Path, prefix: str) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        self.folder = folder
        self.prefix = prefix
        metadata = dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata
        self._entries = {
            key[len(prefix) :]: entry
            for key, entry in metadata.items()
            if key.startswith(prefix) and isinstance(entry, TensorStorageMetadata)
        }

    def __getitem__(self, key: str) -> torch.Tensor:
        import torch.distributed.checkpoint as dcp

        entry = self._entries[key]
        tensor = torch.empty(entry.size, dtype=entry.properties.dtype)
        dcp.load({self.prefix + key: tensor}, checkpoint_id=str(self.folder), no_dist=True)
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@torch.no_grad()
def load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], where: Path) -> None:
    """Copy `weights` (by name, as `checkpoint_weights` gives them) into `model`, one tensor at a
    time; raise `UserError` naming `where` unless they cover exactly the model's state."""
    own = model.state_dict()  # tied weights: one storage under several names
    written: set[int] = set()
    for name in weights:
        if name not in own:
            raise UserError(f"{where}: the checkpoint does not fit the run's model ({name} is not in it)")
        value = weights[name]
        if own[name].shape != value.shape:
            raise UserError(
                f"{where}: the checkpoint does not fit the run's model ({name} has shape "
                f"{list(value.shape)}, the model {list(own[name].shape)})"
            )
        own[name].copy_(value)
        written.add(own[name].data_ptr())
    missing = [name for name, tensor in own.items() if tensor.data_ptr() not in written]
    if missing:
        raise UserError(f"{where}: the checkpoint does not fit the run's model ({missing[0]} is missing)")


def load_checkpoint_model(folder: Path, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """The model of a run's checkpoint folder (the run's config.yaml describes it, two folders up)
    with the checkpoint's weights, and the run's tokenizer."""
    from forgetless.config import load_config
    from forgetless.model.load import build_model, load_tokenizer

    folder = Path(folder)
    config_file = folder.parent.parent / "config.yaml"
    if not config_file.is_file():
        raise UserError(
            f"{folder}: a checkpoint outside its run directory (no {config_file}); copy the run whole"
        )
    config = load_config(config_file)
    tokenizer = load_tokenizer(
        config.tokenizer or config.model.path, trust_remote_code=config.model.trust_remote_code
    )
    model = build_model(config.model, tokenizer, dtype=dtype)
    load_weights(model, checkpoint_weights(folder), folder)
    model.eval()
    return model, tokenizer
