"""Regularization toward the weights the stage started from: L2-SP and EWC.

Both add a quadratic penalty around the stage-start weights `theta_0` (the base model, for a run's
first stage):

    L2-SP (Li et al. 2018):       weight / 2 * sum_i (theta_i - theta_0,i)^2
    EWC (Kirkpatrick et al. 2017): weight / 2 * sum_i F_i * (theta_i - theta_0,i)^2

with `F` a diagonal Fisher estimated once, at the start of the stage, from `batches` micro-batches
of the `from` sources' training text: the mean over micro-batches of the squared gradient of the
micro-batch's mean token loss (an empirical Fisher of batch gradients). With `normalize` (the
default) `F` is divided by its mean over all trainable weights, so EWC with a uniform Fisher is
exactly L2-SP and the two `weight`s compare. The penalty's gradient `weight * F * (theta - theta_0)`
is added to the gradients once per optimizer step, before clipping: the same as adding the penalty
to the loss. Only the stage's trainable parameters are penalised; frozen ones cannot move. The
reference weights (and the Fisher) are kept on the model's device and saved with checkpoints, so
a resumed run does not estimate the Fisher again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from forgetless.config import EWCConfig, L2SPConfig
from forgetless.distributed import local_shard, sum_over_shards
from forgetless.methods.base import Method, MethodContext, gathered, restore, snapshot, trainable_parameters
from forgetless.model.loss import causal_lm_loss


@torch.no_grad()
def add_penalty_gradient(
    params: list[tuple[str, nn.Parameter]],
    reference: dict[str, torch.Tensor],
    weight: float,
    importance: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Add the gradient of `weight / 2 * sum importance * (theta - reference)^2` to each `.grad`
    (creating it when absent); return the penalty (float32 scalar). Of a sharded parameter,
    `reference` and `importance` hold this rank's shard, and the penalty is summed over ranks."""
    total: torch.Tensor | None = None
    for name, param in params:
        diff = local_shard(param).detach().float() - reference[name].float()
        weighted = diff * importance[name] if importance is not None else diff
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        local_shard(param.grad).add_(weighted.to(param.grad.dtype), alpha=weight)
        part = (weighted * diff).sum()
        total = part if total is None else total + part
    if total is None:
        return torch.zeros(())
    total = sum_over_shards(total, params[0][1])
    return 0.5 * weight * total


def estimate_fisher(
    model: nn.Module,
    params: list[tuple[str, nn.Parameter]],
    batches: Iterable[torch.Tensor],
    autocast: Callable[[], AbstractContextManager[Any]],
    *,
    normalize: bool = True,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of `params`: the mean over `batches` (int64 `[B, T + 1]`) of the
    squared gradient of each batch's mean token loss, float32, by name.

    With `normalize`, divided by its mean over all elements (when that is positive). Leaves the
    model's gradients cleared and its train/eval mode as it was. Under several ranks every rank
    passes the same batches: the gradients that FSDP2 averages over ranks are then each batch's own
    gradient, and each rank keeps the Fisher of its shard of every parameter.
    """
    fisher = {name: torch.zeros_like(local_shard(p), dtype=torch.float32) for name, p in params}
    count = 0
    for _ in batch_gradients(model, batches, autocast):
        for name, p in params:
            if p.grad is not None:
                fisher[name].add_(local_shard(p.grad).detach().float().square())
        count += 1
    if count == 0:
        raise ValueError("estimate_fisher needs at least one batch")
    for value in fisher.values():
        value.div_(count)
    if normalize:
        first = next(iter(fisher.values()))
        totals = torch.zeros(2, dtype=torch.float64, device=first.device)
        for value in fisher.values():
            totals[0] += value.sum(dtype=torch.float64)
            totals[1] += value.numel()
        total, elements = sum_over_shards(totals, params[0][1]).tolist()
        mean = total / max(elements, 1.0)
        if mean > 0:
            for value in fisher.values():
                value.div_(mean)
    return fisher


class L2SP(Method):
    name = "l2sp"

    def __init__(self, config: L2SPConfig, model: nn.Module, context: MethodContext) -> None:
        self.weight = config.weight
        self.params = trainable_parameters(model)
        self.reference: dict[str, torch.Tensor] = {}

    def start(self) -> None:
        self.reference = snapshot(self.params)

    def before_optimizer_step(self) -> dict[str, torch.Tensor]:
        return {self.name: add_penalty_gradient(self.params, self.reference, self.weight)}

    def state_dict(self) -> dict[str, Any]:
        return {"tensors": gathered(self.params, self.reference, "reference/")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = restore(self.params, state["tensors"], "reference/", "methods.l2sp")


class EWC(Method):
    name = "ewc"

    def __init__(self, config: EWCConfig, model: nn.Module, context: MethodContext) -> None:
        self.config = config
        self.model = model
        self.context = context
        self.params = trainable_parameters(model)
        self.reference: dict[str, torch.Tensor] = {}
        self.fisher: dict[str, torch.Tensor] = {}

    def start(self) -> None:
        self.reference = snapshot(self.params)
        self.fisher = estimate_fisher(
            self.model,
            self.params,
            self.context.batches(list(self.config.from_), self.config.batches),
            self.context.autocast,
            normalize=self.config.normalize,
        )

    def before_optimizer_step(self) -> dict[str, torch.Tensor]:
        return {self.name: add_penalty_gradient(self.params, self.reference, self.config.weight, self.fisher)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "tensors": {
                **gathered(self.params, self.reference, "reference/"),
                **gathered(self.params, self.fisher, "fisher/"),
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        tensors = state["tensors"]
        self.reference = restore(self.params, tensors, "reference/", "methods.ewc")
        self.fisher = restore(self.params, tensors, "fisher/", "methods.ewc", dtype=torch.float32)


def batch_gradients(
    model: nn.Module, batches: Iterable[torch.Tensor], autocast: Callable[[], AbstractContextManager[Any]]
) -> Iterator[None]:
    """For each of `batches` (int64 `[B, T + 1]`), leave the gradient of its mean token loss in the
    parameters' `.grad` and yield. The model runs in eval mode; afterwards (also when the caller
    stops early) its gradients are cleared and its train/eval mode is as it was. EWC's Fisher and
    ADEPT's importance (`forgetless.methods.unit_lr`) read the gradients."""
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            with autocast():
                loss = causal_lm_loss(model, batch[:, :-1], batch[:, 1:])
            loss.backward()
            yield
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
