"""Meta-experience replay in its Reptile form (Abbes et al. 2025, "Revisiting Replay and Gradient
Alignment for Continual Pre-Training of LLMs", arXiv 2508.01908, section on efficient MER).

Keep an anchor copy of the trainable weights. Every `every` optimizer steps of the stage:

    theta  <- anchor + eps * (theta - anchor)
    anchor <- theta

so the net movement of each `every`-step window is shrunk by `eps`: a trust region around the
weights of the window's start, which favours directions that the window's batches agree on. The
paper uses every = 500, eps = 0.1; its cost is one copy of the weights (optionally on CPU) and
three weight-sized operations per meta-update. A last window shorter than `every` steps, at the end
of a stage, is left as it is. The optimizer's moments are kept across meta-updates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from forgetless.config import MerConfig
from forgetless.distributed import local_shard
from forgetless.methods.base import Method, MethodContext, gathered, restore, snapshot, trainable_parameters


@torch.no_grad()
def reptile_update(params: list[torch.Tensor], anchors: list[torch.Tensor], eps: float) -> None:
    """In place: `anchor <- anchor + eps * (param - anchor)`, then `param <- anchor` (of a sharded
    parameter, on this rank's shard: the update is elementwise).

    `torch.lerp` computes `anchor + eps * (param - anchor)` for eps < 0.5, and returns `param`
    exactly for eps = 1 (so eps = 1 leaves the run unchanged, bit for bit)."""
    for param, anchor in zip(params, anchors, strict=True):
        own = local_shard(param)
        anchor.lerp_(own.detach().to(anchor.device), eps)
        own.copy_(anchor)


class ReptileMER(Method):
    name = "mer"

    def __init__(self, config: MerConfig, model: nn.Module, context: MethodContext) -> None:
        self.every = config.every
        self.eps = config.eps
        self.device = "cpu" if config.anchor_device == "cpu" else None
        self.params = trainable_parameters(model)
        self.anchor: dict[str, torch.Tensor] = {}

    def start(self) -> None:
        self.anchor = snapshot(self.params, self.device)

    def after_optimizer_step(self, step: int) -> None:
        if step % self.every == 0:
            reptile_update([p for _, p in self.params], [self.anchor[n] for n, _ in self.params], self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "eps": self.eps,
            "tensors": gathered(self.params, self.anchor, "anchor/"),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchor = restore(self.params, state["tensors"], "anchor/", "methods.mer", device=self.device)
