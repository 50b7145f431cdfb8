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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # a build of torch without torch.distributed
    DTensor = None

from forgetless.errors import UserError
from forgetless.model.blocks import decoder_blocks


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    process_group: bool = False  # a torch.distributed group is up (a one-process one included)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: str, *, one_process_group: bool = False) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun; return this process's place and device.

    `one_process_group`: outside torchrun, start a process group of this process alone (what FSDP2
    needs to wrap a model on one device); `teardown` ends it.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if not one_process_group:
            return World(), dev
        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        return World(process_group=True), dev
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not use_cuda:
        raise UserError("train.device: cuda was requested but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return World(rank=rank, size=size, local_rank=local_rank, process_group=True), dev


def teardown(world: World, *, wait: bool = True) -> None:
    """Leave the process group: after every rank got here (`wait`), or at once (a failed run, whose
    other ranks may never get here). A one-process group (`setup(one_process_group=True)`) ends too."""
    if world.process_group and dist.is_initialized():
        if wait and world.distributed:
            dist.barrier()
        dist.destroy_process_group()


def shard_model(
    model: nn.Module,
    world: World,
    *,
    mode: str,
    device: torch.device,
    bf16: bool,
    freezes: bool = False,
    mixed_precision: str = "autocast",
) -> nn.Module:
    """Wrap `model` for data parallelism: FSDP2 per decoder block and at the root, or DDP.

    With FSDP2 on a GPU in bf16, parameters are gathered and computed in bf16 while gradients are
    reduced in float32 (the master weights stay float32). `mixed_precision` "fsdp" asks for that
    on one process too (a one-process group, see `setup`), on any device. Parameter names are
    unchanged. `freezes`: some stage freezes parameters after the wrapping; DDP then looks for the
    parameters each step leaves without a gradient (FSDP2 needs nothing: a frozen parameter simply
    gets none).
    """
    one_process = not world.distributed and mixed_precision == "fsdp" and world.process_group
    if not (world.distributed or one_process) or mode == "none":
        return model
    if mode == "ddp" and not one_process:
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=freezes)
    import types

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    from forgetless.model.loss import FUSED_LOSS_METHOD, fused_lm_loss

    mesh = init_device_mesh(device.type, (world.size,))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16 and (device.type == "cuda" or mixed_precision == "fsdp")
        else MixedPrecisionPolicy()
    )
    for block in decoder_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    # The fused loss reads the LM head's weight outside `forward`: as a forward method of the root,
    # it runs with the root's parameters gathered (and in the policy's dtype), and their gradients
    # are reduced like those of `forward`.
    setattr(model, FUSED_LOSS_METHOD, types.MethodType(fused_lm_loss, model))
    register_fsdp_forward_method(model, FUSED_LOSS_METHOD)
    return model


def is_sharded_model(model: nn.Module) -> bool:
    """Whether `model`'s parameters are FSDP2 shards (DTensors), on one process or several."""
    return any(is_sharded_tensor(p) for p in unwrap(model).parameters())


def reshard(model: nn.Module) -> None:
    """Drop the whole parameters that FSDP2 gathered and still holds (the root keeps its own after
    a forward with no backward, such as an evaluation), so the model's registered parameters are
    the sharded ones again and its next forward gathers their current values. Code that reads or
    changes the shards outside the training step (methods, weight swaps) calls this first."""
    if DTensor is None:
        return
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def frozen_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A frozen copy of `model` in eval mode with its parameters in `dtype` (buffers, such as rotary
    frequencies, keep theirs). Of a model sharded with FSDP2, the copy is sharded the same way over
    the same ranks, so it costs each rank a shard, and its forward is a collective like the
    model's own: every rank must run it."""
    import copy

    from forgetless.model.lora import has_lora, with_same_lora

    module = unwrap(model)
    params = list(module.parameters())
    if not any(is_sharded_tensor(p) for p in params):
        teacher: Any = copy.deepcopy(module)
        with torch.no_grad():
            for param in teacher.parameters():
                param.data = param.data.to(dtype)
    else:  # parameters take `dtype` before sharding: FSDP2 then keeps its shards in it
        reshard(module)
        params = list(module.parameters())
        from torch.distributed.fsdp import fully_shard
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            teacher = AutoModelForCausalLM.from_config(module.config)
            if has_lora(module):  # the same adapters inside, so that names and shapes match
                teacher = with_same_lora(teacher, module)
        device = local_shard(params[0]).device
        teacher.to_empty(device=device)
        teacher.tie_weights()  # to_empty gives tied parameters separate storage
        with torch.no_grad():
            buffers = dict(module.named_buffers())
            for name, buffer in teacher.named_buffers():
                buffer.copy_(buffers[name])
            for param in teacher.parameters():
                param.data = param.data.to(dtype)
        mesh = params[0].device_mesh
        for block in decoder_blocks(teacher):
            fully_shard(block, mesh=mesh)
        fully_shard(teacher, mesh=mesh)
        with torch.no_grad():
            own = dict(module.named_parameters())
            for name, param in teacher.named_parameters():
                local_shard(param).copy_(local_shard(own[name]))
    teacher.requires_grad_(False)
    teacher.eval()
    return teacher


def save_full_model(model: nn.Module, tokenizer: Any, folder: Path, world: World) -> None:
    """`folder`: one standard Hugging Face directory of `model`, gathered from every rank when it is
    sharded (every rank calls this; rank 0 writes)."""
    from forgetless.model.load import save_model
    from forgetless.model.lora import has_lora, save_lora_model

    module = unwrap(model)
    if has_lora(module):  # the adapters merged into `folder`, and the adapter in `<folder>_adapter`
        state = full_state_dict(model) if is_sharded_model(model) else module.state_dict()
        if world.is_main:
            save_lora_model(module, state, tokenizer, folder, save_model)
        barrier(world)
        return
    if not is_sharded_model(model):  # one process, or DDP: every rank holds the whole model
        if world.is_main:
            save_model(unwrap(model), tokenizer, folder)
        barrier(world)
        return
    state = full_state_dict(model)
    if world.is_main:
        from transformers import AutoModelForCausalLM

        config = unwrap(model).config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(state, assign=True, strict=False)
        plain.tie_weights()
        save_model(plain, tokenizer, folder)
    barrier(world)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def as_local(value: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a possibly distributed one (the gradient norm under FSDP2 is a DTensor)."""
    full = getattr(value, "full_tensor", None)
    return full() if callable(full) else value


# ---------------------------------------------------------------------------------------------
# Per-parameter state beside a sharded model (the methods' anchors, references, Fishers)
#
# Under FSDP2 a parameter is a DTensor whose rank-local shard is `local_shard(p)`. State kept per
# parameter is kept as plain tensors shaped like that shard, so the elementwise updates run on the
# shard alone; the few reductions over all elements go through `sum_over_shards`. State leaves a
# process whole (`gather_like`) and comes back as this process's shard (`shard_like`), so a
# checkpoint's method state is the same file on any number of ranks.


def is_sharded_tensor(tensor: torch.Tensor) -> bool:
    return DTensor is not None and isinstance(tensor, DTensor)


def local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a sharded tensor (sharing its storage), or the tensor itself."""
    return tensor.to_local() if is_sharded_tensor(tensor) else tensor


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """This rank's shard of `full` (a whole tensor, present on every rank) laid out as `like`."""
    if not is_sharded_tensor(like):
        return full
    from torch.distributed.tensor import distribute_tensor

    moved = full.to(local_shard(like).device)
    return distribute_tensor(moved, like.device_mesh, like.placements, src_data_rank=None).to_local()


def gather_like(shard: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The whole tensor on CPU from every rank's `shard` laid out as `like` (a collective when
    `like` is sharded: every rank calls it). Complete on rank 0; other ranks get an empty tensor."""
    if not is_sharded_tensor(like):
        return shard.detach().cpu()
    local = shard.detach().to(device=local_shard(like).device)
    whole = DTensor.from_local(
        local, like.device_mesh, like.placements, shape=like.shape, stride=like.stride()
    ).full_tensor()
    return whole.cpu() if dist.get_rank() == 0 else torch.empty(0, dtype=whole.dtype)


def sum_over_shards(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value`, a sum over this rank's shards of tensors laid out as `like`, summed over all ranks."""
    if is_sharded_tensor(like):
        dist.all_reduce(value, group=like.device_mesh.get_group())
    return value


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Sum a few numbers over ranks (float64); the identity on one process."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def broadcast_from_main(value: Any, world: World) -> Any:
    """Rank 0's `value` on every rank (any picklable value); `value` itself in one process."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    module = unwrap(model)
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

        state = {"model": get_model_state_dict(module)}
        dcp.load(state, checkpoint_id=str(folder))
        set_model_state_dict(module, state["model"])
        return
    # How this process steps (fused, foreach) is its own choice, not the saving processes' one.
    kernels = [{k: group.get(k) for k in ("fused", "foreach")} for group in optimizer.param_groups]
    model_state, optim_state = get_state_dict(module, optimizer)  # creates state for every parameter
    # ... but a parameter that was frozen when the checkpoint was written has none there, and must
    # have none after loading either (AdamW then starts it afresh, as the uninterrupted run does).
    saved = dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata
    optim_state["state"] = {
        fqn: fields
        for fqn, fields in optim_state["state"].items()
        if any(f"optimizer.state.{fqn}.{field}" in saved for field in fields)
    }
    state: dict[str, Any] = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(folder))
    # Not strict: for the parameters left without state above. dcp.load has already failed for any
    # weight the checkpoint lacks.
    set_state_dict(
        module,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optimizer"],
        options=StateDictOptions(strict=False),
    )
    for group, own in zip(optimizer.param_groups, kernels, strict=True):
        group.update(own)


@torch.no_grad()
def load_whole(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    weights: Mapping[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
) -> None:
    """Load a single-process checkpoint into this process's part of `model` (sharded with FSDP2,
    or wrapped in DDP) and of its optimizer: every rank reads the whole tensors (`weights`, one at a
    time) and keeps its own shard of each. The optimizer's state is keyed by the position of each
    parameter in its groups, the same on every number of processes (the groups come from the
    model's parameter names)."""
    module = unwrap(model)
    reshard(module)
    params = list(module.named_parameters(remove_duplicate=False))
    names_of: dict[int, list[str]] = {}
    for name, param in params:  # tied weights: one parameter under several names, saved under one
        names_of.setdefault(id(param), []).append(name)
    persistent = set(module.state_dict())
    targets = params + [(name, b) for name, b in module.named_buffers() if name in persistent]
    for name, target in targets:
        saved = next((n for n in names_of.get(id(target), [name]) if n in weights), None)
        if saved is None:
            raise UserError(
                f"the checkpoint has no tensor {name}; resume with the config the run was started with"
            )
        local_shard(target).copy_(shard_like(weights[saved], target))
    if optimizer is None or optimizer_state is None:
        return
    kernels = [{k: group.get(k) for k in ("fused", "foreach")} for group in optimizer.param_groups]
    order = [param for group in optimizer.param_groups for param in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for index, fields in optimizer_state["state"].items():
        param = order[int(index)]
        state[int(index)] = {
            key: _sharded_like(value, param)
            if torch.is_tensor(value) and value.shape == param.shape
            else value
            for key, value in fields.items()
        }
    optimizer.load_state_dict({"state": state, "param_groups": optimizer_state["param_groups"]})
    for group, own in zip(optimizer.param_groups, kernels, strict=True):
        group.update(own)  # how this process steps is its own choice


def _sharded_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` laid out as `like`: a DTensor of this rank's shard when `like` is sharded."""
    if not is_sharded_tensor(like):
        return full
    local = shard_like(full, like)
    return DTensor.from_local(
        local, like.device_mesh, like.placements, shape=like.shape, stride=like.stride()
    )


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state on CPU (gathered from every rank; complete on rank 0)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        unwrap(model), options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
