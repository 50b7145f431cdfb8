"""The memory levers: bf16 compute copies of float32 master weights through FSDP2 on one process,
selective activation checkpointing, the optimizer step inside the backward, the fused-loss kernels.
Each changes how a step runs, never what it computes beyond rounding, and each resumes exactly."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_llama
from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.model.blocks import decoder_blocks
from forgetless.model.loss import causal_lm_loss, check_external_kernel
from forgetless.train.parallelize import checkpoint_activations
from methods.tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def _train_losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_lines(run_dir) if r["kind"] == "train"}


def _runner(tmp_path, tiny_tokenizer_dir, **train):
    """Runs of 4 optimizer steps with a checkpoint every 2 steps; `train` as given."""
    from forgetless.train.run import run_training

    corpora = write_corpora(tmp_path / "corpora")
    step_tokens = train.get("batch_tokens", 256)

    def run(name: str, *, resume: bool = False, **more):
        data = tiny_config(tmp_path / name, tiny_tokenizer_dir, corpora)
        data["stages"][0]["tokens"] = 4 * step_tokens
        data["output"]["checkpoint_every_tokens"] = 2 * step_tokens
        data["eval"].update(dense_start=[], max_tokens=256)
        data["train"].update(log_every_steps=1, **train, **more)
        return run_training(config_from_dict(data), resume=resume, quiet=True)

    return run


def test_bf16_compute_with_float32_masters_on_one_process_resumes_exactly(
    tmp_path, tiny_tokenizer_dir
) -> None:
    run = _runner(tmp_path, tiny_tokenizer_dir, precision="bf16")
    autocast = run("autocast")
    whole = run("fsdp", mixed_precision="fsdp")
    assert not torch.distributed.is_initialized()  # the one-process group ends with the run
    run_interrupted(3, lambda: run("resumed", mixed_precision="fsdp"))
    resumed = run("resumed", resume=True, mixed_precision="fsdp")

    from forgetless.train import checkpoint as ckpt

    assert ckpt.is_sharded(ckpt.latest_checkpoint(whole))
    final = weights(whole / "final")
    assert {t.dtype for t in final.values()} == {torch.float32}  # the master weights
    for key, value in weights(resumed / "final").items():
        assert torch.equal(value, final[key]), key
    # bf16 residual stream instead of float32: the same training to bf16 rounding
    reference = _train_losses(autocast)
    for step, loss in _train_losses(whole).items():
        assert loss == pytest.approx(reference[step], abs=2e-2)


def test_optimizer_in_backward_equals_the_step_after_backward_and_resumes_exactly(
    tmp_path, tiny_tokenizer_dir
) -> None:
    run = _runner(tmp_path, tiny_tokenizer_dir, batch_tokens=128, micro_batch=4, grad_clip=None)
    after = run("after")
    run_interrupted(3, lambda: run("inside", optimizer_in_backward=True))
    inside = run("inside", resume=True, optimizer_in_backward=True)
    reference = weights(after / "final")
    for key, value in weights(inside / "final").items():  # the same fused AdamW arithmetic per parameter
        assert torch.equal(value, reference[key]), key
    norms = {r["step"]: r["grad_norm"] for r in read_lines(inside) if r["kind"] == "train"}
    for step, norm in {r["step"]: r["grad_norm"] for r in read_lines(after) if r["kind"] == "train"}.items():
        assert norms[step] == pytest.approx(norm, rel=1e-5)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"optimizer_in_backward": True}, "train.grad_clip: null"),
        ({"optimizer_in_backward": True, "grad_clip": None}, "one micro-batch"),
        (
            {
                "optimizer_in_backward": True,
                "grad_clip": None,
                "batch_tokens": 128,
                "mixed_precision": "fsdp",
            },
            "autocast",
        ),
        ({"mixed_precision": "fsdp", "precision": "fp32"}, "train.precision: bf16"),
    ],
)
def test_settings_that_do_not_fit_stop_before_anything_is_written(
    tmp_path, tiny_tokenizer_dir, train: dict, message: str
) -> None:
    from forgetless.train.run import run_training

    data = tiny_config(tmp_path, tiny_tokenizer_dir, write_corpora(tmp_path / "corpora"))
    data["train"].update({"micro_batch": 4, "precision": "bf16", **train})
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        run_training(config_from_dict(data), quiet=True)
    assert not (tmp_path / "run").exists()
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    ("every", "part", "recomputed"), [(2, "block", [0]), (1, "mlp", [0, 1]), (1, "attention", [0, 1])]
)
def test_selective_checkpointing_recomputes_the_chosen_parts_with_the_same_gradients(
    tiny_tokenizer, every: int, part: str, recomputed: list[int]
) -> None:
    ids = torch.randint(0, len(tiny_tokenizer), (2, 17), generator=torch.Generator().manual_seed(0))

    def gradients(model):
        model.zero_grad()
        causal_lm_loss(model, ids[:, :-1], ids[:, 1:]).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = tiny_llama(tiny_tokenizer)
    model = tiny_llama(tiny_tokenizer)
    calls = [0] * len(decoder_blocks(model))
    for index, block in enumerate(decoder_blocks(model)):  # count runs of the forward to be recomputed
        target = block if part == "block" else (block.mlp if part == "mlp" else block.self_attn)
        forward = target.forward

        def counted(*args, _forward=forward, _index=index, **kwargs):
            calls[_index] += 1
            return _forward(*args, **kwargs)

        target.forward = counted
    assert checkpoint_activations(model, "selective", every, part) == len(recomputed)
    expected = gradients(plain)
    got = gradients(model)
    assert [i for i, n in enumerate(calls) if n == 2] == recomputed  # forward again in the backward
    assert [i for i, n in enumerate(calls) if n == 1] == [i for i in range(len(calls)) if i not in recomputed]
    assert got.keys() == expected.keys()
    for name in got:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_an_external_fused_loss_that_is_not_installed_is_one_line() -> None:
    for kernel, module in (("liger", "liger_kernel"), ("cce", "cut_cross_entropy")):
        try:
            __import__(module)
        except ImportError:
            with pytest.raises(
                UserError, match=f"train.fused_loss: {kernel} needs the {module} package"
            ) as err:
                check_external_kernel(kernel)
            assert "\n" not in str(err.value)
