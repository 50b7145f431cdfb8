"""Many processes through PyTorch's own stack: torchrun, FSDP2 or DDP, and sharded checkpoints.

`forgetless train` is the same command on one process or many: under `torchrun` (which sets
RANK / WORLD_SIZE / LOCAL_RANK) `setup()` joins the process group and every rank runs the same loop
on its share of each global batch. Nothing here is home-made machinery: sharding is
`torch.distributed.fsdp.fully_shard` per decoder block and at the root, checkpoints are
`torch.distributed.checkpoint` (resumable on a different number of ranks), and reductions are
plain collectives.

Invariants:
- rank r of W trains on the global sequence positions p with p % W == r, so the union over ranks is
  exactly the single-process stream of the same global batch;
- only rank 0 writes run files (metrics, summary, config, final model);
- a sharded checkpoint holds the same state as a single-process one, keyed by parameter names, so
  either resumes on any number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from forgetless.errors import UserError
from forgetless.train.parallelize import decoder_blocks


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: str) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun; return this process's place and device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        world = World()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return world, torch.device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not use_cuda:
        raise UserError("train.device: cuda was requested but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return World(rank=rank, size=size, local_rank=local_rank), dev


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard_model(model: nn.Module, world: World, *, mode: str, device: torch.device, bf16: bool) -> nn.Module:
    """Wrap `model` for data parallelism: FSDP2 per decoder block and at the root, or DDP.

    With FSDP2 on a GPU in bf16, parameters are gathered and computed in bf16 while gradients are
    reduced in float32 (the master weights stay float32). Parameter names are unchanged.
    """
    if not world.distributed or mode == "none":
        return model
    if mode == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world.size,))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16 and device.type == "cuda"
        else MixedPrecisionPolicy()
    )
    for block in decoder_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def as_local(value: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a possibly distributed one (the gradient norm under FSDP2 is a DTensor)."""
    full = getattr(value, "full_tensor", None)
    return full() if callable(full) else value


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Sum a few numbers over ranks (float64); the identity on one process."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# Sharded checkpoints (torch.distributed.checkpoint)


def save_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of the model and optimizer state into `folder` (DCP format)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(unwrap(model), optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(folder))


def load_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Load a DCP checkpoint written by any number of ranks into this process's (sharded) model."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    module = unwrap(model)
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

        state = {"model": get_model_state_dict(module)}
        dcp.load(state, checkpoint_id=str(folder))
        set_model_state_dict(module, state["model"])
        return
    # How this process steps (fused, foreach) is its own choice, not the saving processes' one.
    kernels = [{k: group.get(k) for k in ("fused", "foreach")} for group in optimizer.param_groups]
    model_state, optim_state = get_state_dict(module, optimizer)
    state: dict[str, Any] = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    for group, own in zip(optimizer.param_groups, kernels, strict=True):
        group.update(own)


def is_sharded_checkpoint(folder: Path) -> bool:
    return (folder / ".metadata").is_file()


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state on CPU (gathered from every rank; complete on rank 0)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        unwrap(model), options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
