"""LoRA through peft: the function at init, what trains, the merged and adapter outputs, bad input."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch
from families import VOCAB, tiny_family
from torch import nn

from forgetless.config import LoraTransformConfig, UpcycleMoeConfig
from forgetless.errors import UserError
from forgetless.model.load import save_model
from forgetless.model.lora import has_lora, save_lora_model
from forgetless.model.transforms import apply_transforms


def lora(**spec) -> LoraTransformConfig:
    return LoraTransformConfig(kind="lora", r=4, alpha=8, **spec)


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


@torch.no_grad()
def perturb_trainable(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(7)
    for param in model.parameters():
        if param.requires_grad:
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


@pytest.mark.parametrize(
    "family", ["llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "gpt2", "gpt_neox"]
)
def test_lora_at_init_keeps_the_function_and_trains_only_the_adapters(family: str) -> None:
    model = tiny_family(family)
    ids = tokens()
    before = logits(model, ids)
    done = apply_transforms(model, None, [lora()])
    torch.testing.assert_close(logits(model, ids), before, rtol=0, atol=1e-5)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(done.added)
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    targeted = {name.split(".lora_")[0] for name in trainable}
    assert any("attn" in name or "attention" in name for name in targeted)
    assert any("mlp" in name for name in targeted)
    assert has_lora(model)


@pytest.mark.parametrize(
    ("tied", "flags", "trained"),
    [
        (False, {"train_embeddings": True}, {"embed"}),
        (False, {"train_lm_head": True}, {"head"}),
        (False, {"train_embeddings": True, "train_lm_head": True}, {"embed", "head"}),
        (True, {"train_lm_head": True}, {"embed"}),  # tied: the one shared matrix, still tied
    ],
)
def test_embeddings_and_head_train_fully_when_asked(tied: bool, flags: dict, trained: set) -> None:
    model = tiny_family("llama", tie_word_embeddings=tied)
    apply_transforms(model, None, [lora(**flags)])
    full = {
        name
        for name, p in model.named_parameters()
        if p.requires_grad and ".lora_" not in name and "modules_to_save" in name
    }
    kinds = {"embed" if "embed_tokens" in name else "head" for name in full}
    assert kinds == trained
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    assert (head.weight is embed.weight) == tied
    assert head.weight.requires_grad == ("head" in trained or tied)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_final_is_merged_and_the_adapter_loads_onto_the_base(family: str, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = tiny_family(family)
    apply_transforms(model, None, [lora(train_embeddings=True)])
    perturb_trainable(model)
    ids = tokens()
    live = logits(model, ids)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    save_lora_model(model, state, None, tmp_path / "final", save_model)

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "final").eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, ids), live, rtol=0, atol=1e-4)
    adapted = PeftModel.from_pretrained(tiny_family(family), tmp_path / "final_adapter").eval()
    torch.testing.assert_close(logits(adapted, ids), logits(merged, ids), rtol=0, atol=1e-4)


def moe_model(kind: str) -> nn.Module:
    """A tiny MoE model with fused experts: an upcycled Llama (Mixtral), an upcycled Qwen2 (Qwen2-MoE,
    with a shared expert), or a Qwen3-MoE built from its config."""
    if kind == "qwen3_moe":
        return tiny_family("qwen3_moe")
    dense = "llama" if kind == "mixtral" else "qwen2"
    upcycle = UpcycleMoeConfig(kind="upcycle_moe", experts=4, top_k=2, noise=0.5)
    return apply_transforms(tiny_family(dense), None, [upcycle]).model


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe", "qwen3_moe"])
def test_the_mlp_preset_adapts_fused_experts_not_the_router(kind: str, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = moe_model(kind)
    model.save_pretrained(tmp_path / "base")
    ids = tokens()
    before = logits(model, ids)
    done = apply_transforms(model, None, [lora(target=["mlp"])])
    [record] = done.records()
    experts = [f"model.layers.{i}.mlp.experts.{w}" for i in range(4) for w in ("gate_up_proj", "down_proj")]
    assert record["resolved"]["target_parameters"] == experts
    assert all(".shared_expert." in name for name in record["resolved"]["target_modules"])
    assert bool(record["resolved"]["target_modules"]) == (kind == "qwen2_moe")
    torch.testing.assert_close(logits(model, ids), before, rtol=0, atol=1e-5)  # B = 0
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(done.added)
    assert all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert not any(".mlp.gate." in name or "shared_expert_gate" in name for name in trainable)
    on_experts = [name for name in trainable if ".experts." in name]
    assert len(on_experts) == 4 * 2 * 2  # A and B for both fused weights of every block

    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(
        grads[name] is not None and grads[name].abs().sum() > 0 for name in on_experts if ".lora_B." in name
    )
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        optimizer.step()
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
    model.eval()
    live = logits(model, ids)
    assert not torch.allclose(live, before, rtol=0, atol=1e-3)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    save_lora_model(model, state, None, tmp_path / "final", save_model)

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "final").eval()
    assert type(merged) is type(AutoModelForCausalLM.from_pretrained(tmp_path / "base"))
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, ids), live, rtol=0, atol=1e-4)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    for i in range(4):
        mlp, base_mlp = merged.model.layers[i].mlp, base.model.layers[i].mlp
        assert not torch.equal(mlp.experts.gate_up_proj, base_mlp.experts.gate_up_proj)
        assert not torch.equal(mlp.experts.down_proj, base_mlp.experts.down_proj)
        assert torch.equal(mlp.gate.weight, base_mlp.gate.weight)  # the router as it was
    adapted = PeftModel.from_pretrained(base, tmp_path / "final_adapter").eval()
    torch.testing.assert_close(logits(adapted, ids), logits(merged, ids), rtol=0, atol=1e-4)


@pytest.mark.parametrize("flags", [{}, {"train_embeddings": True}])
def test_final_of_a_tied_model_keeps_the_tie(flags: dict, tmp_path: Path) -> None:
    import json

    from transformers import AutoModelForCausalLM

    model = tiny_family("llama", tie_word_embeddings=True)
    original = model.get_input_embeddings().weight.detach().clone()
    apply_transforms(model, None, [lora(target=["attention"], **flags)])
    perturb_trainable(model)
    ids = tokens()
    live = logits(model, ids)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    save_lora_model(model, state, None, tmp_path / "final", save_model)

    assert json.loads((tmp_path / "final" / "config.json").read_text())["tie_word_embeddings"] is True
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "final").eval()
    assert merged.get_output_embeddings().weight is merged.get_input_embeddings().weight
    torch.testing.assert_close(logits(merged, ids), live, rtol=0, atol=1e-4)
    assert torch.equal(merged.get_input_embeddings().weight, original) != bool(flags)  # trained when asked


def test_bad_lora_input_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match=r"model\.transforms\.0\.target\.1: '\*\.wq' matches no linear layer"):
        apply_transforms(tiny_family("llama"), None, [lora(target=["attention", "*.wq"])])
    for spec in ({"dropout": 0.1}, {"dora": True}):  # peft adapts a fused weight with neither
        with pytest.raises(
            UserError, match=rf"model\.transforms\.0\.{next(iter(spec))}: peft adapts model\.layers"
        ):
            apply_transforms(tiny_family("qwen3_moe"), None, [lora(target=["attention", "mlp"], **spec)])

    real_import = builtins.__import__

    def no_peft(name, *args, **kwargs):
        if name == "peft" or name.startswith("peft."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    with pytest.raises(UserError, match=r"model\.transforms\.0: kind lora needs the peft package"):
        apply_transforms(tiny_family("llama"), None, [lora()])
