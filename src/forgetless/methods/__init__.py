"""Forgetting mitigations composed into the training loop, one class per key of a stage's `methods:`.

`METHODS` is the registry: each key of `forgetless.config.MethodsConfig` that names a method, and
its class, in the order the loop runs their hooks (MER before EMA, so the average follows the
weights the run continues from). `build_methods` makes a stage's method objects. The methods know
nothing of the trainer: it builds a `MethodContext` and hands it down. A new method is a module
here with a `Method` subclass, a config section in `MethodsConfig`, and an entry in `METHODS`.
"""

from __future__ import annotations

from torch import nn

from forgetless.config import StageConfig
from forgetless.methods.base import Method, MethodContext
from forgetless.methods.distill import SelfDistillation
from forgetless.methods.ema import WeightEMA
from forgetless.methods.mer import ReptileMER
from forgetless.methods.new_rows import NewRowsOnly
from forgetless.methods.regularize import EWC, L2SP
from forgetless.methods.unit_lr import UnitLearningRates

METHODS: dict[str, type[Method]] = {
    "l2sp": L2SP,
    "ewc": EWC,
    "distill": SelfDistillation,
    "unit_lr": UnitLearningRates,
    "mer": ReptileMER,
    "ema": WeightEMA,
}


def build_methods(stage: StageConfig, model: nn.Module, context: MethodContext) -> list[Method]:
    """The methods of `stage.methods`, in hook order, for `model` (whose trainable parameters are
    those of the stage: freeze first). Cheap: snapshots are taken when they start. A stage that
    trains `new_rows` gets the mask that keeps the old rows fixed (`NewRowsOnly`) first."""
    methods: list[Method] = []
    if "new_rows" in stage.methods.train_only:  # a gradient mask: before the other methods' hooks
        methods.append(NewRowsOnly(None, model, context))
    for key, method_class in METHODS.items():
        config = getattr(stage.methods, key)
        if config is not None:
            methods.append(method_class(config, model, context))
    return methods
