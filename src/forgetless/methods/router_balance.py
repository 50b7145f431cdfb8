"""The routers' load-balancing loss of a mixture-of-experts model, as a term of the training loss.

Not a forgetting mitigation of `methods:`: the trainer adds it to every stage of a run whose model
has routers it knows (an upcycled model, `forgetless.model.moe`; or a Mixtral, Qwen2-MoE or
Qwen3-MoE base), with the weight of the model config's `router_aux_loss_coef`, as transformers'
own training of these families does. Its term is logged as `loss/router_balance`; the train lines
also carry `expert_tokens`, the tokens each expert of each MoE layer received in the log window,
summed over ranks (`log_fields`).
"""

from __future__ import annotations

from typing import Any

import torch

from forgetless.distributed import World
from forgetless.methods.base import Method, MicroBatch, Outputs
from forgetless.model.moe import RouterStats


class RouterBalance(Method):
    name = "router_balance"

    def __init__(self, stats: RouterStats, weight: float) -> None:
        self.stats = stats
        self.weight = float(weight)

    def extra_loss(self, batch: MicroBatch, outputs: Outputs) -> dict[str, torch.Tensor]:
        loss = self.stats.balance_loss()
        if loss is None or self.weight == 0:
            return {}
        return {self.name: self.weight * loss}

    def log_fields(self, world: World) -> dict[str, Any]:
        counts = self.stats.take_counts()
        if world.distributed:
            totals = torch.tensor(counts, dtype=torch.float64, device=self.stats.counts.device)
            torch.distributed.all_reduce(totals)
            counts = [[int(v) for v in row] for row in totals.tolist()]
        return {"expert_tokens": counts}
