"""An exponential moving average of the weights during a stage, evaluated beside the live weights.

From the stage's start, every `every` optimizer steps:

    ema <- decay * ema + (1 - decay) * theta

over the stage's trainable parameters (frozen ones do not move). The live weights train as without
it. At every evaluation point the EMA weights are swapped into the model and evaluated too, logged
as `eval/<source>/loss@ema` (and `bpb@ema`); after the last step of the run's last stage they are
saved as `final_ema/`, a Hugging Face model directory like `final/`. The average is kept on the
model's device (or on CPU, `device: cpu`) and saved with checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from forgetless.config import EMAConfig
from forgetless.distributed import local_shard, save_full_model
from forgetless.methods.base import Method, MethodContext, gathered, restore, snapshot, trainable_parameters


@torch.no_grad()
def ema_update(averages: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """In place: `average <- decay * average + (1 - decay) * param`."""
    for average, param in zip(averages, params, strict=True):
        average.lerp_(local_shard(param).detach().to(average.device), 1.0 - decay)


@contextlib.contextmanager
def swapped(params: list[tuple[str, nn.Parameter]], weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """Within the block, `params` hold `weights`; afterwards, exactly their own values again."""
    saved = {}
    with torch.no_grad():
        for name, p in params:
            saved[name] = local_shard(p).detach().clone()
            local_shard(p).copy_(weights[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for name, p in params:
                local_shard(p).copy_(saved[name])


class WeightEMA(Method):
    name = "ema"

    def __init__(self, config: EMAConfig, model: nn.Module, context: MethodContext) -> None:
        self.config = config
        self.model = model
        self.context = context
        self.device = "cpu" if config.device == "cpu" else None
        self.params = trainable_parameters(model)
        self.average: dict[str, torch.Tensor] = {}

    def start(self) -> None:
        self.average = snapshot(self.params, self.device)

    def after_optimizer_step(self, step: int) -> None:
        if step % self.config.every == 0:
            ema_update(
                [self.average[n] for n, _ in self.params], [p for _, p in self.params], self.config.decay
            )
        if step == self.context.total_steps and self.context.last_stage:
            with swapped(self.params, self.average):
                save_full_model(
                    self.model, self.context.tokenizer, self.context.run_dir / "final_ema", self.context.world
                )

    def weights_for_eval(self) -> contextlib.AbstractContextManager[Any]:
        return swapped(self.params, self.average)

    def state_dict(self) -> dict[str, Any]:
        return {"tensors": gathered(self.params, self.average, "average/")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average = restore(self.params, state["tensors"], "average/", "methods.ema", device=self.device)
