"""Weight-space merging: interpolation endpoints, averaging, instruction residuals, and their commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from forgetless.cli import main
from forgetless.config import InitConfig, ModelConfig
from forgetless.errors import UserError
from forgetless.model.load import build_model, save_model
from forgetless.weights.merge import average, instruction_residual, interpolate, model_tensors


def _tensors(seed: int, rows: int = 6) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {
        "embed.weight": torch.randn(rows, 4),
        "layer.weight": torch.randn(4, 4),
        "steps": torch.tensor([3]),
    }


def test_interpolation_endpoints_are_the_inputs_exactly() -> None:
    base, adapted = _tensors(0), _tensors(1)
    zero, one = interpolate(base, adapted, 0.0), interpolate(base, adapted, 1.0)
    for name in base:
        assert torch.equal(zero[name], base[name] if base[name].is_floating_point() else adapted[name])
        assert torch.equal(one[name], adapted[name])
    half = interpolate(base, adapted, 0.5)
    torch.testing.assert_close(half["layer.weight"], (base["layer.weight"] + adapted["layer.weight"]) / 2)


def test_interpolation_refuses_other_architectures() -> None:
    with pytest.raises(UserError, match="not the same architecture"):
        interpolate(_tensors(0), _tensors(1, rows=7), 0.5)


def test_average_of_checkpoints() -> None:
    a, b, c = _tensors(0), _tensors(1), _tensors(2)
    assert all(torch.equal(average([a])[n], a[n]) for n in a)
    mean = average([a, b, c])
    torch.testing.assert_close(
        mean["layer.weight"], (a["layer.weight"] + b["layer.weight"] + c["layer.weight"]) / 3
    )
    assert mean["layer.weight"].dtype == torch.float32


def test_residual_round_trip_is_exact() -> None:
    base, instruct = _tensors(0), _tensors(1)
    with torch.no_grad():  # weights of very different sizes, the hard case for float32 arithmetic
        instruct["layer.weight"][0] *= 1e6
        instruct["layer.weight"][1] *= 1e-6
    back = instruction_residual(base, instruct, base)
    for name in base:
        assert torch.equal(back[name], instruct[name]), name
    bf16 = {n: t.to(torch.bfloat16) if t.is_floating_point() else t for n, t in (base | instruct).items()}
    assert torch.equal(instruction_residual(bf16, bf16, bf16)["layer.weight"], bf16["layer.weight"])


def test_residual_carries_added_tokens_as_instruct_rows() -> None:
    base, instruct, onto = _tensors(0, rows=6), _tensors(1, rows=8), _tensors(2, rows=6)
    out = instruction_residual(base, instruct, onto, {"embed.weight"})
    assert out["embed.weight"].shape == (8, 4)
    torch.testing.assert_close(
        out["embed.weight"][:6], onto["embed.weight"] + instruct["embed.weight"][:6] - base["embed.weight"]
    )
    assert torch.equal(out["embed.weight"][6:], instruct["embed.weight"][6:])  # 0 + (instruct - 0)
    # A new base with more tokens keeps its new rows (the residual's rows there are zero).
    grown = _tensors(3, rows=9)
    out = instruction_residual(base, _tensors(1, rows=6), grown, {"embed.weight"})
    assert torch.equal(out["embed.weight"][6:], grown["embed.weight"][6:])
    with pytest.raises(UserError, match="collide"):
        instruction_residual(base, instruct, grown, {"embed.weight"})
    with pytest.raises(UserError, match="share an architecture"):
        instruction_residual(base, instruct, onto)  # embed.weight not declared a vocabulary tensor


# ---------------------------------------------------------------------------------------------
# Commands on model directories


def _model_dir(root: Path, tokenizer, seed: int, name: str) -> Path:
    torch.manual_seed(seed)
    init = InitConfig(architecture="llama", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model = build_model(ModelConfig(init=init), tokenizer)
    save_model(model, tokenizer, root / name)
    return root / name


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        name: _model_dir(root, tiny_tokenizer, seed, name)
        for seed, name in enumerate(("base", "cpt", "instruct"))
    }


def test_merge_command_endpoints(model_dirs, tmp_path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    for alpha, expected in (("0", "base"), ("1", "cpt")):
        out = tmp_path / f"merged-{alpha}"
        main(["merge", str(model_dirs["base"]), str(model_dirs["cpt"]), "--alpha", alpha, "--out", str(out)])
        merged = load_file(out / "model.safetensors")
        original = load_file(model_dirs[expected] / "model.safetensors")
        assert merged.keys() == original.keys()
        assert all(torch.equal(merged[k], original[k]) for k in merged)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged-1")  # a plain HF directory
    assert model.config.hidden_size == 32
    assert "merged model" in capsys.readouterr().out


def test_merge_needs_alpha_or_sweep(model_dirs, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["merge", str(model_dirs["base"]), str(model_dirs["cpt"]), "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "exactly one of --alpha" in capsys.readouterr().err


def test_residual_command_round_trip(model_dirs, tmp_path, tiny_tokenizer) -> None:
    out = tmp_path / "new-instruct"
    base, instruct = model_dirs["base"], model_dirs["instruct"]
    main(
        ["residual", "--base", str(base), "--instruct", str(instruct), "--onto", str(base), "--out", str(out)]
    )
    result, original = load_file(out / "model.safetensors"), load_file(instruct / "model.safetensors")
    assert all(torch.equal(result[k], original[k]) for k in original)
    # Onto another base: new base + (instruct - base), tensor by tensor.
    out2 = tmp_path / "onto-cpt"
    main(
        [
            "residual",
            "--base",
            str(base),
            "--instruct",
            str(instruct),
            "--onto",
            str(model_dirs["cpt"]),
            "--out",
            str(out2),
        ]
    )
    b, c = load_file(base / "model.safetensors"), load_file(model_dirs["cpt"] / "model.safetensors")
    got = load_file(out2 / "model.safetensors")
    for k in got:
        torch.testing.assert_close(got[k], c[k] + (original[k] - b[k]), rtol=1e-6, atol=1e-6)


def test_residual_command_with_an_added_token(model_dirs, tmp_path, tiny_tokenizer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    instruct_dir = tmp_path / "instruct-added"
    tokenizer = AutoTokenizer.from_pretrained(model_dirs["instruct"])
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    model = AutoModelForCausalLM.from_pretrained(model_dirs["instruct"])
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    save_model(model, tokenizer, instruct_dir)
    out = tmp_path / "out"
    main(
        [
            "residual",
            "--base",
            str(model_dirs["base"]),
            "--instruct",
            str(instruct_dir),
            "--onto",
            str(model_dirs["cpt"]),
            "--out",
            str(out),
        ]
    )
    result = AutoModelForCausalLM.from_pretrained(out)
    rows = len(tokenizer)
    assert result.get_input_embeddings().weight.shape[0] == rows
    assert len(AutoTokenizer.from_pretrained(out)) == rows  # the instruct model's tokenizer
    added = model_tensors(model)["model.embed_tokens.weight"][rows - 1]
    assert torch.equal(result.get_input_embeddings().weight[rows - 1].detach(), added.detach())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_tokenizer_dir) -> tuple[Path, Path]:
    """A tiny run with checkpoints at steps 4 and 8, and its base (the same init, saved)."""
    from forgetless.config import config_from_dict
    from forgetless.model.load import load_tokenizer
    from forgetless.train.run import run_training
    from methods.tiny_runs import tiny_config, write_corpora

    tmp = tmp_path_factory.mktemp("tiny-run")
    data = tiny_config(tmp, tiny_tokenizer_dir, write_corpora(tmp / "data"))
    data["eval"]["dense_start"] = []
    config = config_from_dict(data)
    run_dir = run_training(config, quiet=True)
    torch.manual_seed(config.train.seed)
    tokenizer = load_tokenizer(str(tiny_tokenizer_dir))
    save_model(build_model(config.model, tokenizer), tokenizer, tmp / "base")
    return run_dir, tmp / "base"


def test_average_of_a_stage_checkpoints(tiny_run, tmp_path, capsys) -> None:
    run_dir, _ = tiny_run
    # Checkpoints store the tied embedding under one of its two names; HF directories under the other.
    tied = ("model.embed_tokens.weight", "lm_head.weight")

    def checkpoint(step: int) -> dict:
        tensors = load_file(run_dir / "checkpoints" / f"step_{step}" / "model.safetensors")
        for a, b in (tied, tied[::-1]):
            if a in tensors:
                tensors[b] = tensors[a]
        return tensors

    step4, step8 = checkpoint(4), checkpoint(8)
    main(["average", str(run_dir), "--last", "2", "--out", str(tmp_path / "avg")])
    assert "step_4, step_8 of stage code" in capsys.readouterr().out
    averaged = load_file(tmp_path / "avg" / "model.safetensors")
    for name, tensor in averaged.items():
        torch.testing.assert_close(tensor, (step4[name] + step8[name]) / 2)
    main(["average", str(run_dir), "--last", "1", "--out", str(tmp_path / "last")])
    final = load_file(run_dir / "final" / "model.safetensors")
    last = load_file(tmp_path / "last" / "model.safetensors")
    assert all(torch.equal(last[name], final[name]) for name in final)  # step_8 is the end of the stage
    with pytest.raises(SystemExit) as exit_:
        main(["average", str(run_dir), "--last", "3", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2 and "fewer than --last 3" in capsys.readouterr().err


def test_merge_sweep_marks_pareto_points(tiny_run, tmp_path) -> None:
    """The sweep between a tiny run's base (an untrained init) and its final model."""
    run_dir, base = tiny_run
    out = tmp_path / "sweep"
    main(
        [
            "merge",
            str(base),
            str(run_dir / "final"),
            "--sweep",
            "0,0.5,1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    result = json.loads((out / "sweep.json").read_text())
    alphas = [p["alpha"] for p in result["points"]]
    assert alphas == [0.0, 0.5, 1.0]
    assert result["targets"] == ["code"] and result["retained"] == ["general"]
    first, last = result["points"][0], result["points"][-1]
    assert first["learning"] == 0.0 and first["forgetting"] == 0.0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert last["loss"]["code"] == pytest.approx(summary["sources"]["code"]["final_loss"], rel=1e-4)
    assert last["learning"] > 0
    for p in result["points"]:  # Pareto: no other point forgets no more and learns no less
        dominated = any(
            q["forgetting"] <= p["forgetting"]
            and q["learning"] >= p["learning"]
            and (q["forgetting"], q["learning"]) != (p["forgetting"], p["learning"])
            for q in result["points"]
        )
        assert p["pareto"] == (not dominated)
    assert last["pareto"]  # from an untrained base, training lowers every loss: alpha = 1 wins
    html = (out / "sweep.html").read_text()
    assert "<svg" in html and "alpha=0.5" in html
