"""Per-unit learning rates from general importance (ADEPT's adaptive unit-wise decoupled tuning).

    methods:
      unit_lr: {probe: general, every_tokens: 65536, batches: 4}

Every parameter tensor that trains in the stage (a "unit") gets its own learning rate:

    importance(u) = mean over probe batches of mean_elements(|theta_u| * |grad_u L_probe|)
    lr(u)         = 2 * (1 - normalised importance(u)) * lr

with the importance normalised to [0, 1] by min-max over the units (norm gains against the range
over all units, every other tensor against the range over the tensors that are not norm gains, as
ADEPT's code does). Units that matter most for general text (the probe source) barely move; units
that matter least learn at up to twice the schedule's rate. The probe batches are training
sequences of the probe source (`batches` micro-batches, a seeded order of their own, the same ones
at every recomputation). Importance is measured when the stage starts and again every
`every_tokens` training tokens; each measurement writes a `unit_lr` line to metrics.jsonl with every
unit's multiplier, and the multipliers are saved with checkpoints, so a resumed run continues with
the ones it had. The multipliers scale the stage's own LR multipliers (`methods.lr_multipliers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from forgetless.config import UnitLRConfig
from forgetless.distributed import local_shard, sum_over_shards
from forgetless.methods.base import Method, MethodContext, trainable_parameters
from forgetless.methods.regularize import batch_gradients


def norm_gains(model: nn.Module) -> set[str]:
    """Names of the parameters of the normalisation modules (LayerNorm, RMSNorm, ...) of `model`."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if (
            isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm))
            or "norm" in type(module).__name__.lower()
        ):
            names.update(
                f"{prefix}.{name}" if prefix else name for name, _ in module.named_parameters(recurse=False)
            )
    return names


def unit_importance(
    model: nn.Module,
    params: list[tuple[str, nn.Parameter]],
    batches: Iterable[torch.Tensor],
    autocast: Callable[[], AbstractContextManager[Any]],
) -> dict[str, float]:
    """ADEPT's importance of each of `params`: the mean over `batches` (int64 `[B, T + 1]`) of the
    mean over its elements of |theta| * |d loss / d theta|, with the loss the batch's mean token
    loss. Leaves the gradients cleared and the train/eval mode as it was. Under several ranks every
    rank passes the same batches (see `forgetless.methods.regularize.estimate_fisher`)."""
    device = local_shard(params[0][1]).device
    sums = torch.zeros(len(params), dtype=torch.float64, device=device)
    count = 0
    for _ in batch_gradients(model, batches, autocast):
        for i, (_, p) in enumerate(params):
            if p.grad is not None:
                product = local_shard(p).detach().float().abs() * local_shard(p.grad).detach().float().abs()
                sums[i] += product.sum(dtype=torch.float64)
        count += 1
    if count == 0:
        raise ValueError("unit_importance needs at least one batch")
    sums = sum_over_shards(sums, params[0][1])
    return {
        name: float(total) / count / p.numel() for (name, p), total in zip(params, sums.tolist(), strict=True)
    }


def unit_multipliers(importance: dict[str, float], norms: set[str]) -> dict[str, float]:
    """`2 * (1 - normalised importance)` per unit: norm gains normalised by the range over all
    units, other tensors by the range over the units that are not norm gains; a range of zero
    width gives every unit of it 1.0."""
    everything = list(importance.values())
    others = [value for name, value in importance.items() if name not in norms] or everything

    def scaled(value: float, values: list[float]) -> float:
        low, high = min(values), max(values)
        if high <= low:
            return 1.0
        return 2.0 * (1.0 - min(max((value - low) / (high - low), 0.0), 1.0))

    return {
        name: scaled(value, everything if name in norms else others) for name, value in importance.items()
    }


class UnitLearningRates(Method):
    name = "unit_lr"

    def __init__(self, config: UnitLRConfig, model: nn.Module, context: MethodContext) -> None:
        self.config = config
        self.model = model
        self.context = context
        self.params = trainable_parameters(model)
        self.norms = norm_gains(model)
        tokens_per_step = context.sequences_per_step * context.seq_len
        self.every = max(1, config.every_tokens // tokens_per_step) if config.every_tokens else None
        self.multipliers: dict[str, float] = {}
        assert context.optimizer is not None
        self.groups = _groups_by_parameter(context.optimizer)
        self.base = {name: self.groups[id(p)]["lr_multiplier"] for name, p in self.params}
        shared = [name for name, p in self.params if len(self.groups[id(p)]["params"]) != 1]
        if shared:
            raise RuntimeError(f"unit_lr needs one optimizer group per parameter; {shared[0]} shares one")

    def start(self) -> None:
        self._measure(step=0)

    def after_optimizer_step(self, step: int) -> None:
        if self.every is not None and step % self.every == 0 and step < self.context.total_steps:
            self._measure(step)

    def _measure(self, step: int) -> None:
        batches = self.context.batches([self.config.probe], self.config.batches)
        importance = unit_importance(self.model, self.params, batches, self.context.autocast)
        self.multipliers = unit_multipliers(importance, self.norms)
        self._apply()
        self.context.log(
            {
                "kind": "unit_lr",
                "stage": self.context.stage.name,
                "stage_step": step,
                "multipliers": self.multipliers,
            }
        )

    def _apply(self) -> None:
        for name, p in self.params:
            self.groups[id(p)]["lr_multiplier"] = self.base[name] * self.multipliers[name]

    def state_dict(self) -> dict[str, Any]:
        return {"multipliers": dict(self.multipliers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["multipliers"]
        names = [name for name, _ in self.params]
        if sorted(saved) != sorted(names):
            from forgetless.errors import UserError

            raise UserError(
                "methods.unit_lr: the checkpoint's units differ from the stage's trainable parameters; resume "
                "with the config the run was started with"
            )
        self.multipliers = {name: float(saved[name]) for name in names}
        self._apply()


def _groups_by_parameter(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    return {id(p): group for group in optimizer.param_groups for p in group["params"]}
