"""How the micro-batches of an optimizer step run: one after another, or several at once on a CPU.

On a GPU, and for large models anywhere, one micro-batch at a time keeps the device busy. On a CPU
with a small model it does not: most operations of a micro-batch are too small to share well over
several cores, and every one of them pays for starting and joining its parallel region. There,
`ThreadedMicroBatches` runs `threads` micro-batches at once, each on one core (PyTorch's intra-op
threads set to 1 while they run; PyTorch releases the GIL inside its operations).

Invariant: the gradients are the same sums in the same order as one micro-batch after another.
Each micro-batch's gradients come back as tensors (`torch.autograd.grad`) and are added to the
parameters' `.grad` on the calling thread in micro-batch order, so the result never depends on
which thread finished first (a resumed run repeats it exactly). Operations that run on one thread
instead of several may round differently inside, so the two runners agree to float rounding, not
bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

# One micro-batch's work: its LM loss, the objective to differentiate and the methods' terms.
Work = Callable[[Any], tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]
Result = tuple[torch.Tensor, dict[str, torch.Tensor]]  # the detached loss and terms


class SerialMicroBatches:
    """One micro-batch after another; autograd accumulates into `.grad`."""

    threads = 1

    def run(self, work: Work, batches: list[Any], scale: float) -> Iterator[Result]:
        for batch in batches:
            loss, objective, terms = work(batch)
            (objective * scale).backward()
            yield loss.detach(), terms

    def close(self) -> None:
        pass


class ThreadedMicroBatches:
    """`threads` micro-batches at once, each on one core; gradients summed in micro-batch order."""

    def __init__(self, model: torch.nn.Module, threads: int) -> None:
        self.model = model
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="forgetless-micro")

    def run(self, work: Work, batches: list[Any], scale: float) -> Iterator[Result]:
        # Read at every step: a stage may freeze or unfreeze parameters.
        params = [p for p in self.model.parameters() if p.requires_grad]

        def one(batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[torch.Tensor | None, ...]]:
            loss, objective, terms = work(batch)
            grads = torch.autograd.grad(objective * scale, params, allow_unused=True)
            return loss.detach(), {k: v.detach() for k, v in terms.items()}, grads

        with _intra_op_threads(1):
            for loss, terms, grads in self._pool.map(one, batches):  # in order, as they finish
                _accumulate(params, grads)
                yield loss, terms

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _accumulate(params: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]) -> None:
    """What autograd's accumulation does: the first gradient becomes `.grad`, later ones add to it."""
    with torch.no_grad():
        for param, grad in zip(params, grads, strict=True):
            if grad is None:
                continue
            if param.grad is None:
                param.grad = grad
            else:
                param.grad.add_(grad)


@contextlib.contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def micro_batch_runner(
    setting: str | int,
    model: torch.nn.Module,
    *,
    device: torch.device,
    distributed: bool,
    compiled: bool,
    fused_loss: bool,
    accumulation: int,
) -> SerialMicroBatches | ThreadedMicroBatches:
    """The runner for `train.micro_batch_threads`: `auto` runs micro-batches at once on a CPU, in
    one process, without torch.compile, with the fused loss, when a step has several and PyTorch
    has several threads; a number asks for that many threads (1: one after another).

    With the unfused loss, a micro-batch's logits-sized tensors (micro-batch x sequence x
    vocabulary) are large enough to share well over cores, and one thread each was slower on the
    reference benchmark (`benchmarks/README.md`), so `auto` leaves that case serial."""
    cores = torch.get_num_threads()
    if setting == "auto":
        if device.type != "cpu" or distributed or compiled or not fused_loss:
            return SerialMicroBatches()
        threads = min(cores, accumulation)
    else:
        threads = min(int(setting), accumulation)
    return ThreadedMicroBatches(model, threads) if threads > 1 else SerialMicroBatches()
