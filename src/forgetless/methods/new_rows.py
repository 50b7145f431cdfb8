"""`methods.train_only: [new_rows]`: train only the embedding and head rows of new tokens.

Chinese-LLaMA's first stage trains only the embeddings of the tokens it added (the transformer
frozen), so that the new rows catch up before anything else moves. `train_only: [new_rows]`
selects the tensors `extend_vocab` grew (the input embedding, and an untied output head) and
freezes everything else; this method keeps the *old* rows of those tensors fixed by zeroing their
gradient before every optimizer step (after the micro-batches, before clipping, so the gradient
norm is that of the new rows). With a zero gradient and zero moments AdamW's update is exactly zero:
when the stage starts, the moments of the old rows are zeroed (an earlier stage that trained the
whole tensor leaves them non-zero, and AdamW would keep moving the rows on them), and the stage
gives these tensors no weight decay (`forgetless.train.param_groups`), so the old rows stay bit for
bit what they were. Under FSDP2 the mask is cut like the parameter (rows split over ranks), so each
rank masks its own shard.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from forgetless.distributed import local_shard, shard_like
from forgetless.errors import UserError
from forgetless.methods.base import Method, MethodContext


class NewRowsOnly(Method):
    name = "new_rows"

    def __init__(self, config: Any, model: nn.Module, context: MethodContext) -> None:
        self.masks: list[tuple[nn.Parameter, torch.Tensor]] = []  # (tensor, True on its old rows)
        params = dict(model.named_parameters())
        for name, ranges in context.added_rows.items():
            param = params.get(name)
            if param is None or not param.requires_grad:
                continue
            old = torch.ones(param.shape[0], 1, dtype=torch.bool)
            for start, stop in ranges:
                old[start:stop] = False
            self.masks.append((param, shard_like(old, param).to(local_shard(param).device)))
        if not self.masks:
            raise UserError(
                f"stages.{context.stage_index}.methods.train_only: new_rows, but no trainable tensor has rows "
                "for new tokens"
            )
        self.optimizer = context.optimizer

    @torch.no_grad()
    def start(self) -> None:
        """Zero the AdamW moments of the old rows (left by an earlier stage that trained them)."""
        if self.optimizer is None:
            return
        for param, old in self.masks:
            for value in self.optimizer.state.get(param, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                    local_shard(value).masked_fill_(old, 0.0)

    @torch.no_grad()
    def before_optimizer_step(self) -> dict[str, torch.Tensor]:
        for param, old in self.masks:
            if param.grad is not None:
                local_shard(param.grad).masked_fill_(old, 0.0)
        return {}
