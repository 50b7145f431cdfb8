"""Evaluation's forward passes: the fused head, passes split on running out of memory, several
passes at once on a CPU, the automatic batch size, and a model that trains after an evaluation."""

from __future__ import annotations

import copy

import pytest
import torch
from test_heldout import TEXTS, make_store

from forgetless.evaluate import forward
from forgetless.evaluate.heldout import evaluate_heldout, heldout_windows
from forgetless.model.loss import causal_lm_loss
from model.families import FAMILIES, VOCAB, tiny_family


def test_fused_head_matches_the_logits_path_to_float_rounding(tiny_model, tiny_tokenizer):
    store = make_store(tiny_tokenizer, TEXTS * 4)
    windows, num_bytes = heldout_windows(store, seq_len=16, max_tokens=10_000)
    assert forward.fused_head(tiny_model)
    plain = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=3, device="cpu", fused=False)
    fused = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=3, device="cpu", fused=True)
    auto = evaluate_heldout(tiny_model, windows, num_bytes, device="cpu")  # fused, automatic batch
    assert fused["tokens"] == plain["tokens"] == auto["tokens"] == store.num_tokens
    assert fused["bytes"] == plain["bytes"]
    for key in ("loss", "bpb"):
        assert fused[key] == pytest.approx(plain[key], rel=1e-5)
        assert auto[key] == pytest.approx(plain[key], rel=1e-5)


def test_passes_that_run_out_of_memory_are_split_in_order():
    sizes, splits = [], []

    def run(first: int, stop: int) -> list[int]:
        if stop - first > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        sizes.append(stop - first)
        return list(range(first, stop))

    parts = list(forward.run_in_passes(20, 8, run, on_split=splits.append))
    assert [i for part in parts for i in part] == list(range(20))
    assert splits == [4, 2] and max(sizes) == 2

    def always(first: int, stop: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        list(forward.run_in_passes(5, 4, always))


def test_passes_at_once_come_back_in_order_on_one_core_each():
    threads_seen = set()

    def run(first: int, stop: int) -> tuple[int, int]:
        threads_seen.add(torch.get_num_threads())
        return first, stop

    before = torch.get_num_threads()
    parts = list(forward.run_in_passes(23, 4, run, threads=3))
    assert parts == [(f, min(23, f + 4)) for f in range(0, 23, 4)]
    assert threads_seen == {1} and torch.get_num_threads() == before


def test_several_passes_at_once_give_the_serial_numbers(tiny_model, tiny_tokenizer, monkeypatch):
    store = make_store(tiny_tokenizer, TEXTS * 4)
    windows, num_bytes = heldout_windows(store, seq_len=8, max_tokens=10_000)
    monkeypatch.setattr("forgetless.evaluate.heldout.pass_threads", lambda model, device: 1)
    serial = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=2, device="cpu")
    monkeypatch.setattr("forgetless.evaluate.heldout.pass_threads", lambda model, device: 3)
    threaded = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=2, device="cpu")
    assert threaded["tokens"] == serial["tokens"]
    assert threaded["loss"] == pytest.approx(serial["loss"], rel=1e-6)


def test_automatic_batch_sizes(tiny_model, monkeypatch):
    assert forward.windows_per_pass("auto") is None and forward.windows_per_pass(4) == 4
    cpu = forward.tokens_per_pass(tiny_model, "cpu", fused=True)
    assert cpu == forward.CPU_TOKENS_PER_PASS
    assert (
        forward.tokens_per_pass(tiny_model, "cpu", fused=True, seq_len=10**6) == 10**6
    )  # one window at least

    fused = forward.activation_bytes_per_token(tiny_model, fused=True)
    plain = forward.activation_bytes_per_token(tiny_model, fused=False)
    cached = forward.activation_bytes_per_token(tiny_model, fused=True, with_cache=True)
    assert plain - fused == 4 * tiny_model.config.vocab_size  # the float32 logits
    assert cached > fused

    # On a GPU: the share of free memory (PyTorch's own free cache included) over the estimate.
    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: gib)
    tokens = forward.tokens_per_pass(tiny_model, "cuda", fused=False, seq_len=16)
    assert tokens == min(forward.GPU_MAX_TOKENS_PER_PASS, int(forward.GPU_MEMORY_SHARE * 4 * gib) // plain)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    assert forward.tokens_per_pass(tiny_model, "cuda", fused=False, seq_len=16) == 16


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_model_trains_the_same_after_an_evaluation(family: str):
    """Evaluation leaves nothing behind (no inference tensors in buffers, no cached state) that
    changes the next training step's loss or gradients."""
    model = tiny_family(family).train()
    fresh = copy.deepcopy(model)
    batch = torch.randint(0, VOCAB, (2, 13), generator=torch.Generator().manual_seed(3))
    windows = batch.numpy()
    evaluate_heldout(model, windows, 100, device="cpu")  # as the loop does, between two steps
    assert model.training
    losses, grads = [], []
    for m in (model, fresh):
        torch.manual_seed(0)  # the same dropout masks
        loss = causal_lm_loss(m, batch[:, :-1], batch[:, 1:])
        losses.append(loss.item())
        grads.append(torch.autograd.grad(loss, [p for p in m.parameters() if p.requires_grad]))
    assert losses[0] == losses[1]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_passes_at_once_on_a_cpu_fit_the_available_memory(tiny_model, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    per_pass = forward.CPU_TOKENS_PER_PASS * forward.activation_bytes_per_token(tiny_model, fused=True)
    monkeypatch.setattr(forward, "_available_memory", lambda: None)
    assert forward.pass_threads(tiny_model, "cpu") == 8
    monkeypatch.setattr(forward, "_available_memory", lambda: 4 * 3 * per_pass)
    assert forward.pass_threads(tiny_model, "cpu") == 3  # a quarter of the memory, three passes
    monkeypatch.setattr(forward, "_available_memory", lambda: 0)
    assert forward.pass_threads(tiny_model, "cpu") == 1
    assert forward.pass_threads(tiny_model, "cuda") == 1
    monkeypatch.setattr(forward, "_available_memory", lambda: None)
    monkeypatch.setattr(forward, "_several_processes", lambda: True)  # under torchrun: in order
    assert forward.pass_threads(tiny_model, "cpu") == 1
