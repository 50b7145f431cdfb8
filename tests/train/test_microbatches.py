"""Micro-batches at once on a CPU: the same gradient sums, in micro-batch order, as one after another."""

from __future__ import annotations

import pytest
import torch

from forgetless.config import config_from_dict
from forgetless.distributed import World
from forgetless.errors import UserError
from forgetless.model.loss import causal_lm_loss
from forgetless.train.microbatches import (
    SerialMicroBatches,
    ThreadedMicroBatches,
    _intra_op_threads,
    micro_batch_runner,
)
from forgetless.train.run import _micro_batch_runner


def _batches(tokenizer, count: int) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randint(0, len(tokenizer), (2, 17)) for _ in range(count)]


def _work(model):
    def work(batch):
        loss = causal_lm_loss(model, batch[:, :-1], batch[:, 1:])
        return loss, loss, {"twice": 2 * loss}

    return work


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def test_threaded_gradients_are_the_in_order_sums(tiny_model, tiny_tokenizer) -> None:
    batches = _batches(tiny_tokenizer, 5)
    work = _work(tiny_model)
    # Expected: each micro-batch's gradient on one thread, added in micro-batch order.
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    expected: list[torch.Tensor | None] = [None] * len(params)
    with _intra_op_threads(1):
        for batch in batches:
            _, objective, _ = work(batch)
            for i, g in enumerate(torch.autograd.grad(objective / 5, params, allow_unused=True)):
                if g is not None:
                    expected[i] = g if expected[i] is None else expected[i] + g
    runner = ThreadedMicroBatches(tiny_model, threads=2)
    try:
        results = list(runner.run(work, batches, 1 / 5))
        first = _grads(tiny_model)
        list(runner.run(work, batches, 1 / 5))
        second = _grads(tiny_model)
    finally:
        runner.close()
    assert len(results) == 5 and all(not loss.requires_grad for loss, _ in results)
    assert all(set(terms) == {"twice"} for _, terms in results)
    names = [n for n, p in tiny_model.named_parameters() if p.requires_grad]
    for name, want in zip(names, expected, strict=True):
        assert torch.equal(first[name], want), name  # bit for bit: same sums, same order
        assert torch.equal(second[name], first[name]), name  # whichever thread finished first
    # ... and one micro-batch after another agrees to float rounding.
    list(SerialMicroBatches().run(work, batches, 1 / 5))
    serial = _grads(tiny_model)
    for name in names:
        torch.testing.assert_close(serial[name], first[name], rtol=1e-4, atol=1e-6)


def test_frozen_parameters_get_no_gradient(tiny_model, tiny_tokenizer) -> None:
    tiny_model.model.embed_tokens.weight.requires_grad_(False)
    runner = ThreadedMicroBatches(tiny_model, threads=2)
    try:
        list(runner.run(_work(tiny_model), _batches(tiny_tokenizer, 2), 0.5))
    finally:
        runner.close()
        tiny_model.model.embed_tokens.weight.requires_grad_(True)
    assert tiny_model.model.embed_tokens.weight.grad is None
    assert tiny_model.model.layers[0].mlp.up_proj.weight.grad is not None


def test_auto_runs_micro_batches_at_once_only_on_one_cpu_process(tiny_model) -> None:
    cpu = torch.device("cpu")
    with _intra_op_threads(2):
        runner = micro_batch_runner(
            "auto", tiny_model, device=cpu, distributed=False, compiled=False, fused_loss=True, accumulation=4
        )
        assert isinstance(runner, ThreadedMicroBatches) and runner.threads == 2
        runner.close()
        for options in (
            {"device": torch.device("cuda"), "distributed": False, "compiled": False, "accumulation": 4},
            {"device": cpu, "distributed": True, "compiled": False, "accumulation": 4},
            {"device": cpu, "distributed": False, "compiled": True, "accumulation": 4},
            {"device": cpu, "distributed": False, "compiled": False, "accumulation": 1},
        ):
            assert isinstance(
                micro_batch_runner("auto", tiny_model, fused_loss=True, **options), SerialMicroBatches
            )
        for options in (
            {"device": cpu, "distributed": False, "compiled": False, "accumulation": 4, "fused_loss": False},
        ):
            assert isinstance(micro_batch_runner("auto", tiny_model, **options), SerialMicroBatches)
        explicit = micro_batch_runner(
            2, tiny_model, device=cpu, distributed=False, compiled=False, fused_loss=False, accumulation=4
        )
        assert isinstance(explicit, ThreadedMicroBatches)
        explicit.close()
        assert isinstance(
            micro_batch_runner(
                1, tiny_model, device=cpu, distributed=False, compiled=False, fused_loss=True, accumulation=4
            ),
            SerialMicroBatches,
        )


def test_several_threads_on_a_gpu_are_refused(tiny_model, tiny_tokenizer_dir) -> None:
    from conftest import TINY_LLAMA

    config = config_from_dict(
        {
            "model": {"init": dict(TINY_LLAMA)},
            "tokenizer": str(tiny_tokenizer_dir),
            "sources": {"a": {"files": ["a.txt"]}},
            "stages": [{"name": "s", "tokens": 100, "mix": {"a": 1.0}}],
            "train": {"micro_batch_threads": 2},
        }
    )
    with pytest.raises(UserError, match="train.micro_batch_threads"):
        _micro_batch_runner(config, tiny_model, torch.device("cuda"), World(), True)


def test_a_threaded_run_resumes_exactly_and_follows_the_serial_one(tmp_path, tiny_tokenizer_dir) -> None:
    from forgetless.train.run import run_training
    from methods.tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora

    corpora = write_corpora(tmp_path / "corpora")

    def run(name: str, threads: int | str, *, resume: bool = False):
        data = tiny_config(tmp_path / name, tiny_tokenizer_dir, corpora)
        data["train"].update(micro_batch=2, fused_loss="on", micro_batch_threads=threads)
        return run_training(config_from_dict(data), resume=resume, quiet=True)

    whole = run("whole", 2)
    serial = run("serial", 1)
    run_interrupted(6, lambda: run("resumed", 2))
    resumed = run("resumed", 2, resume=True)
    a, b, c = weights(whole / "final"), weights(resumed / "final"), weights(serial / "final")
    for key in a:
        assert torch.equal(a[key], b[key]), key
        torch.testing.assert_close(c[key], a[key], rtol=1e-3, atol=1e-5)
    losses = {r["step"]: r["loss"] for r in read_lines(whole) if r["kind"] == "train"}
    serial_losses = {r["step"]: r["loss"] for r in read_lines(serial) if r["kind"] == "train"}
    assert losses.keys() == serial_losses.keys()
    for step, loss in losses.items():
        assert loss == pytest.approx(serial_losses[step], abs=1e-4)
