"""The optimizer step inside the backward pass (`train.optimizer_in_backward`).

After a plain backward every trainable parameter holds a float32 gradient until `optimizer.step()`:
a second copy of the model. Here the parameters are split into units (each decoder block, and every
other parameter on its own); a unit takes its AdamW update as soon as the last of its gradients is
accumulated, and its gradients are freed right away, so only the units whose backward is under way
hold gradients.

The update is the run's own AdamW (same hyperparameters, same fused kernel) and its state stays in
the run's optimizer, whose `state_dict` a checkpoint saves as usual: runs with and without this
resume from each other's checkpoints. What changes, and why the run checks for it up front:

- the gradient norm is known only after the last unit has stepped, so gradients are not clipped
  (`train.grad_clip: null`);
- gradients cannot accumulate over micro-batches: one micro-batch per optimizer step and process;
- penalties on the weights that add to the gradients before the step (l2sp, ewc) do not apply;
- a non-finite gradient skips only its own unit's update (fused AdamW's `found_inf`); the step is
  still logged and counted as non-finite, from the norm of all units' gradients.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from forgetless.model.blocks import decoder_blocks

# Hyperparameters a unit's optimizer copies from the run optimizer's group before each step
# (the loop sets `lr` every step; the rest are copied in case a caller changes them).
_GROUP_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")


class OptimizerInBackward:
    """Steps each unit of `model`'s parameters from a post-accumulate-grad hook.

    Hooks act only between `begin(optimizer)` and `finish()`; other backward passes (an evaluation,
    a method's Fisher estimate) leave gradients alone.
    """

    def __init__(self, model: nn.Module) -> None:
        blocks = decoder_blocks(model)
        in_blocks = {id(p) for block in blocks for p in block.parameters()}
        self.units: list[list[nn.Parameter]] = [list(block.parameters()) for block in blocks]
        self.units += [[p] for p in model.parameters() if id(p) not in in_blocks]
        self._unit_of = {id(p): index for index, unit in enumerate(self.units) for p in unit}
        self._optimizer: torch.optim.Optimizer | None = None
        # per unit: its AdamW and, per group of it, the index of the run optimizer's group it copies
        self._unit_optimizers: list[tuple[torch.optim.Optimizer, list[tuple[dict, int]]] | None] = []
        self._waiting: list[int] = []
        self._norm_sq: torch.Tensor | None = None
        self._active = False
        for unit in self.units:
            for param in unit:
                param.register_post_accumulate_grad_hook(self._on_gradient)

    def begin(self, optimizer: torch.optim.Optimizer) -> None:
        """Arm the hooks for one backward pass whose updates go through `optimizer`."""
        if optimizer is not self._optimizer:  # a new optimizer (a stage reset, a rollback)
            self._optimizer = optimizer
            self._unit_optimizers = [None] * len(self.units)
        self._waiting = [sum(p.requires_grad for p in unit) for unit in self.units]
        self._norm_sq = None
        self._active = True

    def finish(self) -> torch.Tensor:
        """Step the units whose gradients are partly there (parameters the step did not reach); return
        the norm of all gradients of the step (a device tensor)."""
        for index, unit in enumerate(self.units):
            if self._waiting[index] > 0 and any(p.grad is not None for p in unit):
                self._step(index)
        self._active = False
        if self._norm_sq is None:
            return torch.zeros(())
        return self._norm_sq.sqrt()

    def _on_gradient(self, param: torch.Tensor) -> None:
        if not self._active:
            return
        index = self._unit_of[id(param)]
        self._waiting[index] -= 1
        if self._waiting[index] == 0:
            self._step(index)

    def _step(self, index: int) -> None:
        self._waiting[index] = 0
        params = [p for p in self.units[index] if p.grad is not None]
        if not params:
            return
        optimizer, groups = self._unit_optimizer(index)
        norms = torch._foreach_norm([p.grad for p in params if p.grad is not None])
        norm_sq = torch.stack(norms).float().square().sum()
        self._norm_sq = norm_sq if self._norm_sq is None else self._norm_sq + norm_sq
        assert self._optimizer is not None
        for own, run_index in groups:
            run_group = self._optimizer.param_groups[run_index]
            for key in _GROUP_KEYS:
                if key in run_group:
                    own[key] = run_group[key]
        optimizer.state = self._optimizer.state  # the run optimizer's (load_state_dict replaces it)
        if optimizer.defaults.get("fused"):
            optimizer.found_inf = (~torch.isfinite(norm_sq)).to(torch.float32)  # type: ignore[attr-defined]
            optimizer.step()
        elif bool(torch.isfinite(norm_sq)):
            optimizer.step()
        for p in params:
            p.grad = None

    def _unit_optimizer(self, index: int) -> tuple[torch.optim.Optimizer, list[tuple[dict, int]]]:
        """An AdamW over unit `index`'s parameters with the run optimizer's groups' settings."""
        cached = self._unit_optimizers[index]
        if cached is not None:
            return cached
        assert self._optimizer is not None
        members = {id(p) for p in self.units[index]}
        own_groups: list[dict[str, Any]] = []
        run_groups: list[int] = []
        for run_index, group in enumerate(self._optimizer.param_groups):
            params = [p for p in group["params"] if id(p) in members]
            if params:
                own_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
                run_groups.append(run_index)
        defaults = self._optimizer.defaults
        optimizer = cast(Any, type(self._optimizer))(
            own_groups, fused=defaults.get("fused"), foreach=defaults.get("foreach")
        )
        pairs = list(zip(optimizer.param_groups, run_groups, strict=True))
        self._unit_optimizers[index] = (optimizer, pairs)
        return optimizer, pairs
