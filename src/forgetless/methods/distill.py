"""Self-distillation toward the model the stage started from (LwF; the dense model as teacher in
Control LLM and CAST).

A frozen copy of the stage-start model is the teacher. On the chosen sequences of a micro-batch
(`on: all`, or `on: replay`: only the replayed ones) the loss gets

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

averaged over the predicted positions, with temperature T (the T^2 keeps the gradient's scale
independent of T, as in Hinton et al. 2015). The teacher runs without gradients, only on the
chosen rows, and only on every `every`-th micro-batch of the stage; it may be kept in bfloat16
(`teacher_dtype`, `auto`: bfloat16 on GPU, float32 on CPU). The term needs the student's logits, so
micro-batches that get it compute the unfused loss. The teacher's weights are saved with
checkpoints (one copy of the model in the teacher's dtype), so a resumed stage keeps its teacher.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forgetless.config import DistillConfig
from forgetless.methods.base import Method, MethodContext, MicroBatch, Outputs, restore


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

    def _copy_model(self) -> nn.Module:
        teacher = copy.deepcopy(self.model)
        teacher.requires_grad_(False)
        teacher.eval()
        with torch.no_grad():
            for param in teacher.parameters():  # parameters only: buffers such as rotary
                param.data = param.data.to(self.dtype)  # frequencies keep their precision
        return teacher

    def start(self) -> None:
        self.teacher = self._copy_model()

    def _rows(self, batch: MicroBatch) -> torch.Tensor | None:
        """The rows that get the term on this micro-batch (None: all of them, or nothing to do)."""
        if batch.index % self.config.every:
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
            return {}
        assert self.teacher is not None and outputs.logits is not None
        inputs, targets, student = batch.inputs, batch.targets, outputs.logits
        if rows is not None:
            rows = rows.to(inputs.device)
            inputs, targets, student = inputs[rows], targets[rows], student[rows]
        with torch.no_grad():
            teacher = self.teacher(input_ids=inputs, use_cache=False).logits
        t = self.config.temperature
        kl = distillation_kl(teacher, student, t, targets != -100)
        return {self.name: self.config.alpha * t * t * kl}

    def state_dict(self) -> dict[str, Any]:
        assert self.teacher is not None
        return {"tensors": {f"teacher/{n}": p.detach() for n, p in self.teacher.named_parameters()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        teacher = self._copy_model()
        params = list(teacher.named_parameters())
        saved = restore(params, state["tensors"], "teacher/", "methods.distill")
        with torch.no_grad():
            for name, p in params:
                p.copy_(saved[name])
        self.teacher = teacher
