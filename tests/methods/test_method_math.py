"""The math of each method: the Reptile identity, L2-SP and EWC gradients, the Fisher, the KL term, the EMA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from forgetless.config import (
    DistillConfig,
    EMAConfig,
    InitConfig,
    L2SPConfig,
    MerConfig,
    ModelConfig,
    StageConfig,
)
from forgetless.methods.base import MethodContext, MicroBatch, Outputs, trainable_parameters
from forgetless.methods.distill import SelfDistillation, distillation_kl
from forgetless.methods.ema import WeightEMA, ema_update, swapped
from forgetless.methods.mer import ReptileMER, reptile_update
from forgetless.methods.regularize import L2SP, add_penalty_gradient, estimate_fisher
from forgetless.model.load import build_model


@pytest.fixture
def tiny_model(tiny_tokenizer) -> nn.Module:
    torch.manual_seed(0)
    init = InitConfig(architecture="llama", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    return build_model(ModelConfig(init=init), tiny_tokenizer)


def _context(tmp_path: Path | None = None, total_steps: int = 10, replay: float = 0.0) -> MethodContext:
    stage = StageConfig(
        name="s", tokens=1, mix={"a": 1.0}, replay={"from": "b", "ratio": replay} if replay else None
    )
    return MethodContext(
        stage=stage,
        stage_index=0,
        total_steps=total_steps,
        last_stage=False,
        run_dir=tmp_path or Path("."),
        device=torch.device("cpu"),
        autocast_dtype=None,
        tokenizer=None,
        train_stores={},
        seq_len=16,
        micro_batch=2,
        seed=0,
    )


def _perturb(model: nn.Module, scale: float = 0.01) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)


# ---------------------------------------------------------------------------------------------
# MER (Reptile)


def test_reptile_update_is_the_identity_of_the_paper() -> None:
    torch.manual_seed(0)
    theta = [torch.randn(5, 3), torch.randn(7)]
    anchor = [torch.randn(5, 3), torch.randn(7)]
    expected = [a + 0.1 * (t - a) for t, a in zip(theta, anchor, strict=True)]
    reptile_update(theta, anchor, 0.1)
    for t, a, e in zip(theta, anchor, expected, strict=True):
        torch.testing.assert_close(t, e, rtol=0, atol=1e-6)
        assert torch.equal(t, a)  # the anchor moves to the new weights


def test_reptile_with_eps_one_changes_nothing_and_eps_zero_returns_to_the_anchor() -> None:
    torch.manual_seed(0)
    theta, anchor = torch.randn(100), torch.randn(100)
    kept = theta.clone()
    reptile_update([theta], [anchor.clone()], 1.0)
    assert torch.equal(theta, kept)
    reptile_update([theta], [anchor], 0.0)  # not allowed by the config, but the math holds
    assert torch.equal(theta, anchor)


def test_mer_fires_every_k_steps(tiny_model) -> None:
    mer = ReptileMER(MerConfig(every=3, eps=0.5), tiny_model, _context())
    mer.start()
    name, param = trainable_parameters(tiny_model)[0]
    start = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    mer.after_optimizer_step(1)
    mer.after_optimizer_step(2)
    assert torch.equal(param, start + 1.0)  # no meta-update before step 3
    mer.after_optimizer_step(3)
    torch.testing.assert_close(param.detach(), start + 0.5, rtol=0, atol=1e-6)
    assert torch.equal(mer.anchor[name], param.detach())


# ---------------------------------------------------------------------------------------------
# L2-SP and EWC


def test_l2sp_gradient_matches_autograd_of_the_penalty(tiny_model) -> None:
    params = trainable_parameters(tiny_model)
    l2sp = L2SP(L2SPConfig(weight=0.3), tiny_model, _context())
    l2sp.start()
    _perturb(tiny_model)
    penalty = 0.5 * 0.3 * sum(((p - l2sp.reference[n]) ** 2).sum() for n, p in params)
    expected = torch.autograd.grad(penalty, [p for _, p in params])
    tiny_model.zero_grad(set_to_none=True)
    value = l2sp.before_optimizer_step()["l2sp"]
    torch.testing.assert_close(value, penalty.detach(), rtol=1e-5, atol=1e-8)
    for (_, p), grad in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-6, atol=1e-9)


def test_penalty_gradient_adds_to_the_loss_gradient_and_weights_by_importance() -> None:
    torch.manual_seed(0)
    param = nn.Parameter(torch.randn(4, 3))
    reference = {"w": torch.randn(4, 3)}
    importance = {"w": torch.rand(4, 3)}
    param.grad = torch.ones(4, 3)
    value = add_penalty_gradient([("w", param)], reference, 2.0, importance)
    torch.testing.assert_close(param.grad, 1 + 2.0 * importance["w"] * (param.detach() - reference["w"]))
    torch.testing.assert_close(value, (importance["w"] * (param.detach() - reference["w"]) ** 2).sum())


def test_fisher_has_the_shapes_of_the_parameters_and_is_positive(tiny_model, tiny_tokenizer) -> None:
    params = trainable_parameters(tiny_model)
    torch.manual_seed(1)
    batches = [torch.randint(0, len(tiny_tokenizer), (2, 17)) for _ in range(3)]
    raw = estimate_fisher(
        tiny_model, params, batches, lambda: torch.autocast("cpu", enabled=False), normalize=False
    )
    assert list(raw) == [n for n, _ in params]
    for name, p in params:
        assert raw[name].shape == p.shape and raw[name].dtype == torch.float32
        assert bool((raw[name] >= 0).all())
    assert all(float(v.sum()) > 0 for v in raw.values())
    assert all(p.grad is None for _, p in params)  # gradients cleared afterwards
    # It is the mean over batches of the squared gradient of each batch's mean loss ...
    from forgetless.model.loss import causal_lm_loss

    manual = {n: torch.zeros_like(p) for n, p in params}
    for batch in batches:
        tiny_model.zero_grad()
        causal_lm_loss(tiny_model, batch[:, :-1], batch[:, 1:]).backward()
        for n, p in params:
            manual[n] += p.grad.square() / len(batches)
    tiny_model.zero_grad(set_to_none=True)
    for n, _ in params:
        torch.testing.assert_close(raw[n], manual[n], rtol=1e-4, atol=1e-12)
    # ... and normalized, the same divided by its mean over all weights.
    normalized = estimate_fisher(tiny_model, params, batches, lambda: torch.autocast("cpu", enabled=False))
    mean = sum(float(v.sum()) for v in raw.values()) / sum(v.numel() for v in raw.values())
    for n, _ in params:
        torch.testing.assert_close(normalized[n], raw[n] / mean, rtol=1e-4, atol=1e-12)


def test_ewc_with_a_uniform_fisher_is_l2sp() -> None:
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(6)), nn.Parameter(torch.randn(6))
    with torch.no_grad():
        b.copy_(a)
    reference = {"w": torch.randn(6)}
    l2 = add_penalty_gradient([("w", a)], reference, 0.7)
    ewc = add_penalty_gradient([("w", b)], reference, 0.7, {"w": torch.ones(6)})
    assert torch.equal(l2, ewc) and torch.equal(a.grad, b.grad)


# ---------------------------------------------------------------------------------------------
# Self-distillation


def test_kl_term_is_zero_when_the_teacher_is_the_student(tiny_model, tiny_tokenizer) -> None:
    distill = SelfDistillation(DistillConfig(alpha=1.0, temperature=2.0), tiny_model, _context())
    distill.start()
    ids = torch.randint(0, len(tiny_tokenizer), (3, 9))
    batch = MicroBatch(ids[:, :-1], ids[:, 1:], None, step=0)
    logits = tiny_model(input_ids=batch.inputs).logits
    term = distill.extra_loss(batch, Outputs(torch.zeros(()), logits))["distill"]
    assert float(term.detach()) == 0.0
    _perturb(tiny_model, 0.05)  # the student moves; the teacher stays
    logits = tiny_model(input_ids=batch.inputs).logits
    assert float(distill.extra_loss(batch, Outputs(torch.zeros(()), logits))["distill"].detach()) > 0


def test_kl_term_matches_its_formula() -> None:
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    t = 3.0
    p = torch.softmax(teacher / t, -1)
    expected = (p * (p.log() - torch.log_softmax(student / t, -1))).sum(-1).mean()
    torch.testing.assert_close(distillation_kl(teacher, student, t), expected)
    mask = torch.tensor([[True] * 5, [False] * 5])
    expected_first = (p[0] * (p[0].log() - torch.log_softmax(student[0] / t, -1))).sum(-1).mean()
    torch.testing.assert_close(distillation_kl(teacher, student, t, mask), expected_first)


def test_distillation_on_replay_rows_and_every_nth_step(tiny_model, tiny_tokenizer) -> None:
    distill = SelfDistillation(
        DistillConfig(on="replay", every=2, alpha=0.5, temperature=1.5), tiny_model, _context(replay=0.25)
    )
    distill.start()
    _perturb(tiny_model, 0.05)
    ids = torch.randint(0, len(tiny_tokenizer), (4, 9))
    replay = np.array([False, True, False, True])
    logits = tiny_model(input_ids=ids[:, :-1]).logits
    outputs = Outputs(torch.zeros(()), logits)
    assert not distill.wants_logits(MicroBatch(ids[:, :-1], ids[:, 1:], replay, step=1))  # odd: skipped
    assert distill.extra_loss(MicroBatch(ids[:, :-1], ids[:, 1:], replay, step=1), outputs) == {}
    assert not distill.wants_logits(MicroBatch(ids[:, :-1], ids[:, 1:], np.zeros(4, bool), step=2))
    batch = MicroBatch(ids[:, :-1], ids[:, 1:], replay, step=2)
    assert distill.wants_logits(batch)
    term = distill.extra_loss(batch, outputs)["distill"]
    with torch.no_grad():
        teacher = distill.teacher(input_ids=ids[[1, 3], :-1]).logits
    # The mean over the replayed positions, taken over the share the stage replays on average (a
    # quarter of the rows, one): this micro-batch holds twice that, so its term counts twice.
    kl = distillation_kl(teacher, logits[[1, 3]], 1.5)
    torch.testing.assert_close(term, 2 * 0.5 * 1.5**2 * kl)


def test_bfloat16_teacher_keeps_float32_buffers(tiny_model) -> None:
    distill = SelfDistillation(DistillConfig(teacher_dtype="bfloat16"), tiny_model, _context())
    distill.start()
    assert {p.dtype for p in distill.teacher.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in tiny_model.parameters()} == {torch.float32}
    assert not any(p.requires_grad for p in distill.teacher.parameters())


# ---------------------------------------------------------------------------------------------
# EMA


def test_ema_update_and_swap_are_exact(tiny_model) -> None:
    torch.manual_seed(0)
    average, param = torch.randn(10), torch.randn(10)
    expected = 0.9 * average + 0.1 * param
    ema_update([average], [param], 0.9)
    torch.testing.assert_close(average, expected)

    ema = WeightEMA(EMAConfig(decay=0.5), tiny_model, _context())
    ema.start()
    _perturb(tiny_model)
    live = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    ema.after_optimizer_step(1)
    for name, p in trainable_parameters(tiny_model):
        assert not torch.equal(ema.average[name], p.detach())
    with ema.weights_for_eval():
        for name, p in trainable_parameters(tiny_model):
            assert torch.equal(p.detach(), ema.average[name])
    for name, p in tiny_model.named_parameters():
        assert torch.equal(p.detach(), live[name])  # restored bit for bit


def test_swap_restores_the_weights_after_an_error() -> None:
    param = nn.Parameter(torch.ones(3))
    with pytest.raises(RuntimeError), swapped([("w", param)], {"w": torch.zeros(3)}):
        assert float(param.detach().sum()) == 0
        raise RuntimeError("evaluation failed")
    assert torch.equal(param.detach(), torch.ones(3))


def test_loss_terms_are_what_each_step_added_to_the_loss() -> None:
    from forgetless.distributed import World
    from forgetless.methods.base import LossTerms

    terms = LossTerms(["distill", "l2sp", "mer"], torch.device("cpu"))
    for step in range(2):  # two steps of two micro-batches; only the first micro-batch distils
        terms.add({"distill": torch.tensor(4.0 + step)}, 0.5)
        terms.add({}, 0.5)
        terms.add({"l2sp": torch.tensor(1.0)})
        terms.end_step()
    assert terms.means(World()) == {"loss/distill": pytest.approx(2.25), "loss/l2sp": 1.0}
    assert terms.means(World()) == {}  # a new window
