"""What a forgetting mitigation is: a small object with hooks, composed into the training loop.

A stage's `methods:` config becomes a list of method objects when the stage starts
(`forgetless.methods.build_methods`, with a `MethodContext` the trainer builds). The training loop
calls their hooks at fixed points; a method implements the hooks it needs, and `Method` gives the
others as no-ops:

    start()                        at the start of the stage (not on resume): snapshots, a Fisher
    wants_logits(batch)            whether `extra_loss` needs this micro-batch's logits
    extra_loss(batch, outputs)     terms added to a micro-batch's loss: {name: scalar tensor}
    before_optimizer_step()        after the micro-batches, before clipping: add the gradient of a
                                   penalty on the weights alone; returns {name: penalty} for the log
    after_optimizer_step(step)     `step` counts the optimizer steps done in the stage
    state_dict(), load_state_dict  exact resume; `state["tensors"]` goes to a safetensors file
    weights_for_eval()             (EMA) a context manager that swaps other weights into the model,
                                   evaluated beside the live weights under the suffix `@<name>`
    log_fields(world)              more fields of a train line (every rank calls it at log intervals)

A penalty on the weights alone (L2-SP, EWC) adds its gradient once per optimizer step rather than
a loss term per micro-batch: the same gradient as adding it to the loss, without a pass over the
weights for every micro-batch. Methods that change the weights after a step run in a fixed order,
MER before EMA, so the average follows the weights the run continues from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forgetless.config import StageConfig
from forgetless.data.sampler import MixtureSampler
from forgetless.device import autocast
from forgetless.distributed import World, gather_like, local_shard, shard_like
from forgetless.errors import UserError
from forgetless.model.loss import causal_lm_loss, causal_lm_loss_and_logits


@dataclass
class MicroBatch:
    """One micro-batch as the loop sees it."""

    inputs: torch.Tensor  # int64 [B, T]
    targets: torch.Tensor  # int64 [B, T]; -100 is ignored
    replay: np.ndarray | None  # bool [B]: which rows are replayed sequences (None: unknown, none)
    step: int  # optimizer steps of this stage before this micro-batch's (the same after a resume)


@dataclass
class Outputs:
    """What the loop computed for a micro-batch: the LM loss, and the logits when a method asked."""

    loss: torch.Tensor
    logits: torch.Tensor | None


@dataclass
class MethodContext:
    """What methods may use besides the model: where the run is and how it computes."""

    stage: StageConfig
    stage_index: int
    total_steps: int  # optimizer steps of the stage
    last_stage: bool
    run_dir: Path
    device: torch.device
    autocast_dtype: torch.dtype | None
    tokenizer: Any
    train_stores: dict[str, Any]
    seq_len: int
    micro_batch: int
    seed: int
    world: World = field(default_factory=World)  # this process's place among the run's processes
    sequences_per_step: int = 1  # sequences of one optimizer step, all ranks
    optimizer: torch.optim.Optimizer | None = None  # one group per parameter when a stage has unit_lr
    # rows model.transforms added to existing parameters (new tokens): name -> [(start, stop), ...]
    added_rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    log: Callable[[dict[str, Any]], None] = field(default=lambda record: None)  # a metrics.jsonl line

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device, self.autocast_dtype)

    def batches(self, sources: list[str], count: int) -> Iterator[torch.Tensor]:
        """`count` micro-batches `[micro_batch, seq_len + 1]` of training sequences of `sources`
        (equal token shares, a seeded order of their own): the data of a Fisher estimate."""
        stage = StageConfig(
            name=f"{self.stage.name}/methods",
            tokens=count * self.micro_batch * self.seq_len,
            mix=dict.fromkeys(sources, 1.0),
        )
        sampler = MixtureSampler(
            stage,
            self.train_stores,
            seq_len=self.seq_len,
            seed=self.seed + self.stage_index,
            max_epochs_warning=None,
        )
        for _ in range(count):
            yield torch.from_numpy(sampler.next_batch(self.micro_batch)).to(self.device)


class Method:
    """No-op hooks; a method overrides the ones it uses (see the module docstring). A method is
    built as `Method(config, model, context)`: its own config section, the model whose trainable
    parameters are those of the stage, and the stage's `MethodContext`."""

    name = "method"

    def __init__(self, config: Any, model: nn.Module, context: MethodContext) -> None:
        pass

    def start(self) -> None:
        pass

    def wants_logits(self, batch: MicroBatch) -> bool:
        return False

    def extra_loss(self, batch: MicroBatch, outputs: Outputs) -> dict[str, torch.Tensor]:
        return {}

    def before_optimizer_step(self) -> dict[str, torch.Tensor]:
        return {}

    def after_optimizer_step(self, step: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def weights_for_eval(self) -> contextlib.AbstractContextManager[Any] | None:
        return None

    def log_fields(self, world: World) -> dict[str, Any]:
        return {}


# ---------------------------------------------------------------------------------------------
# Starting, resuming and saving a stage's methods


def start_or_resume(
    methods: list[Method],
    states: dict[str, Any] | None,
    tensors: Mapping[str, Mapping[str, torch.Tensor]] | None,
    *,
    checkpoint: str = "the checkpoint",
) -> None:
    """Start every method (a fresh stage: `tensors` is None), or restore each from the `states` and
    `tensors` of a checkpoint (as `method_states` made them; `checkpoint` names it in errors)."""
    if tensors is None:
        for method in methods:
            method.start()
        return
    states = states or {}
    for method in methods:
        if method.name not in states:
            raise UserError(
                f"{checkpoint}: the checkpoint has no state for method {method.name!r}; resume with the "
                "methods the run was started with"
            )
        state = dict(states[method.name])
        state["tensors"] = tensors.get(method.name, {})
        method.load_state_dict(state)


def method_states(methods: list[Method]) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """The methods' states for a checkpoint: plain values (for JSON) and tensors (for safetensors)."""
    plain: dict[str, Any] = {}
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for method in methods:
        state = dict(method.state_dict())
        own = state.pop("tensors", None)
        plain[method.name] = state
        if own:
            tensors[method.name] = own
    return plain, tensors


# ---------------------------------------------------------------------------------------------
# Hooks, as the loop calls them


def training_loss(
    methods: list[Method], model: nn.Module, batch: MicroBatch, **loss_options: Any
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """`(lm_loss, objective, terms)` of a micro-batch: the LM loss, the loss to differentiate (LM
    loss plus the methods' terms) and the terms by name. With no terms, the objective is the LM loss
    itself, computed exactly as without methods (`loss_options` go to `causal_lm_loss`)."""
    logits = None
    if any(m.wants_logits(batch) for m in methods):
        loss, logits = causal_lm_loss_and_logits(model, batch.inputs, batch.targets)
    else:
        loss = causal_lm_loss(model, batch.inputs, batch.targets, **loss_options)
    terms: dict[str, torch.Tensor] = {}
    outputs = Outputs(loss, logits)
    for method in methods:
        terms.update(method.extra_loss(batch, outputs))
    if not terms:
        return loss, loss, terms
    return loss, loss + sum(terms.values()), terms


def before_optimizer_step(methods: list[Method]) -> dict[str, torch.Tensor]:
    terms: dict[str, torch.Tensor] = {}
    for method in methods:
        terms.update(method.before_optimizer_step())
    return terms


def after_optimizer_step(methods: list[Method], step: int) -> None:
    for method in methods:
        method.after_optimizer_step(step)


def eval_weights(methods: list[Method]) -> list[tuple[str, contextlib.AbstractContextManager[Any]]]:
    """`(suffix, context manager)` for every other set of weights to evaluate beside the live ones."""
    out = []
    for method in methods:
        swap = method.weights_for_eval()
        if swap is not None:
            out.append((f"@{method.name}", swap))
    return out


class LossTerms:
    """The methods' terms as they entered the objective, per optimizer step, averaged over the steps
    of a log window and over ranks: what each method added to the loss that was differentiated.

    A micro-batch's terms count `1 / accumulation` (the loop divides its objective so), a penalty on
    the weights counts once per step; a micro-batch without a term adds zero. Summed on the device
    (no host sync per step); `means` reads them with one reduction over ranks.
    """

    def __init__(self, names: list[str], device: torch.device) -> None:
        self.names = sorted(set(names))
        self._index = {name: i for i, name in enumerate(self.names)}
        # [sums of the terms, how often each was added]: the second half keeps terms that no
        # micro-batch of the window produced out of the log.
        self._totals = torch.zeros(2 * len(self.names), dtype=torch.float32, device=device)
        self._steps = 0

    def add(self, terms: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        for name, value in terms.items():
            i = self._index[name]
            self._totals[i] += value.detach().float() * weight
            self._totals[len(self.names) + i] += 1.0

    def end_step(self) -> None:
        self._steps += 1

    def means(self, world: World) -> dict[str, float]:
        """`{"loss/<name>": mean per step}` over the window and all ranks, then start a new window.
        Under several ranks every rank calls it."""
        if not self.names or self._steps == 0:
            return {}
        totals = self._totals.double()
        if world.distributed:
            torch.distributed.all_reduce(totals)
        values = (totals / (self._steps * world.size)).tolist()
        self._totals.zero_()
        self._steps = 0
        n = len(self.names)
        return {f"loss/{name}": values[i] for i, name in enumerate(self.names) if values[n + i] > 0}


# ---------------------------------------------------------------------------------------------
# Weights


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that train in this stage, by name (tied parameters once)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@torch.no_grad()
def snapshot(
    params: list[tuple[str, nn.Parameter]], device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Copies of `params` (on `device`, default their own), by name. Of a sharded parameter, the
    copy is of this rank's shard: per-parameter state lives beside the shard it follows."""
    return {
        name: local_shard(p).detach().to(device if device is not None else local_shard(p).device, copy=True)
        for name, p in params
    }


def restore(
    params: list[tuple[str, nn.Parameter]],
    saved: Mapping[str, torch.Tensor],
    prefix: str,
    what: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors saved under `prefix + name` for the `params` (whole tensors, as `gathered`
    wrote them), by name: this rank's shard of each, on `device` (default: each parameter's) in
    `dtype` (default: each parameter's). Raises `UserError` naming `what` when one is missing or has
    another shape."""
    out = {}
    for name, param in params:
        value = saved.get(prefix + name)
        if value is None or value.shape != param.shape:
            raise UserError(
                f"{what}: the checkpoint's {prefix + name} is missing or has another shape; resume with "
                "the config (and frozen parameters) the run was started with"
            )
        shard = shard_like(value, param)
        out[name] = shard.to(
            device=device if device is not None else local_shard(param).device,
            dtype=dtype or param.dtype,
            copy=True,
        )
    return out


def gathered(
    params: list[tuple[str, nn.Parameter]], state: dict[str, torch.Tensor], prefix: str
) -> dict[str, torch.Tensor]:
    """Per-parameter `state` (shards, as `snapshot` makes them) as whole CPU tensors under
    `prefix + name`, for a checkpoint. Under a sharded model every rank must call it; the tensors
    are complete on rank 0, the one that writes them."""
    return {prefix + name: gather_like(state[name], param) for name, param in params}
