"""Self-distillation toward the model the stage started from (LwF; the dense model as teacher in
Control LLM and CAST).

A frozen copy of the stage-start model is the teacher. On the chosen sequences of a micro-batch
(`on: all`, or `on: replay`: only the replayed ones) the loss gets

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

averaged over the chosen positions, with temperature T (the T^2 keeps the gradient's scale
independent of T, as in Hinton et al. 2015). The average is taken over the positions the stage
chooses on average, not over those a micro-batch happens to hold: a micro-batch's sum is divided by
`share x positions`, with `share` the stage's replay ratio for `on: replay` (1 for `all`). The
sampler serves replay at that exact share over every optimizer step, so a step's term is the mean
over its chosen positions however the step is cut into micro-batches and ranks. The teacher runs without gradients, only on the
chosen rows, and only in every `every`-th optimizer step of the stage; it may be kept in bfloat16
(`teacher_dtype`, `auto`: bfloat16 on GPU, float32 on CPU). The term needs the student's logits, so
micro-batches that get it compute the unfused loss. The teacher's weights are saved with
checkpoints (one copy of the model in the teacher's dtype), so a resumed stage keeps its teacher.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forgetless.config import DistillConfig
from forgetless.distributed import frozen_copy, is_sharded_tensor, local_shard
from forgetless.methods.base import Method, MethodContext, MicroBatch, Outputs, gathered, restore


def distillation_kl(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over positions (those where `mask` is true) of KL(p_teacher || p_student), where
    p = softmax(logits / temperature) over the last dimension; computed in float32, in nats."""
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_position = (teacher.exp() * (teacher - student)).sum(-1)
    if mask is not None:
        per_position = per_position[mask]
    return per_position.mean()


class SelfDistillation(Method):
    name = "distill"

    def __init__(self, config: DistillConfig, model: nn.Module, context: MethodContext) -> None:
        self.config = config
        self.model = model
        if config.teacher_dtype == "auto":
            self.dtype = torch.bfloat16 if context.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, config.teacher_dtype)
        self.teacher: nn.Module | None = None
        replay = context.stage.replay
        self.share = 1.0 if config.on == "all" or replay is None else replay.ratio
        # A sharded teacher's forward is a collective: every rank runs it on the same micro-batches.
        self.sharded = any(is_sharded_tensor(p) for p in model.parameters())

    def _copy_model(self) -> nn.Module:
        return frozen_copy(self.model, self.dtype)

    def start(self) -> None:
        self.teacher = self._copy_model()

    def _rows(self, batch: MicroBatch) -> torch.Tensor | None:
        """The rows that get the term on this micro-batch (None: all of them, or nothing to do)."""
        if batch.step % self.config.every:
            return torch.zeros(0, dtype=torch.long)
        if self.config.on == "all":
            return None
        replay = (
            np.zeros(len(batch.inputs), dtype=bool)
            if batch.replay is None
            else np.asarray(batch.replay, bool)
        )
        return torch.from_numpy(np.flatnonzero(replay))  # from the host's plan: no device sync

    def wants_logits(self, batch: MicroBatch) -> bool:
        rows = self._rows(batch)
        return rows is None or len(rows) > 0

    def extra_loss(self, batch: MicroBatch, outputs: Outputs) -> dict[str, torch.Tensor]:
        rows = self._rows(batch)
        if rows is not None and len(rows) == 0:
            if self.sharded and batch.step % self.config.every == 0:
                self._teacher_logits(batch.inputs[:1])  # no replayed rows here, but other ranks may have some
            return {}
        assert outputs.logits is not None
        inputs, targets, student = batch.inputs, batch.targets, outputs.logits
        if rows is not None:
            rows = rows.to(inputs.device)
            inputs, targets, student = inputs[rows], targets[rows], student[rows]
        t = self.config.temperature
        chosen = targets != -100
        kl = distillation_kl(self._teacher_logits(inputs), student, t, chosen)
        # mean over the chosen positions -> sum over them / the positions chosen on average
        scale = chosen.sum() / ((batch.targets != -100).sum() * self.share).clamp_min(1.0)
        return {self.name: self.config.alpha * t * t * kl * scale}

    @torch.no_grad()
    def _teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.teacher is not None
        return self.teacher(input_ids=inputs, use_cache=False).logits

    def state_dict(self) -> dict[str, Any]:
        assert self.teacher is not None
        params = list(self.teacher.named_parameters())
        return {"tensors": gathered(params, {n: local_shard(p) for n, p in params}, "teacher/")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        teacher = self._copy_model()
        params = list(teacher.named_parameters())
        saved = restore(params, state["tensors"], "teacher/", "methods.distill")
        with torch.no_grad():
            for name, p in params:
                local_shard(p).copy_(saved[name])
        self.teacher = teacher
