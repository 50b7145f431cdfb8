"""LoRA through peft: the function at init, what trains, the merged and adapter outputs, bad input."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch
from families import VOCAB, tiny_family
from torch import nn

from forgetless.config import LoraTransformConfig
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


def test_bad_lora_input_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match=r"model\.transforms\.0\.target\.1: '\*\.wq' matches no linear layer"):
        apply_transforms(tiny_family("llama"), None, [lora(target=["attention", "*.wq"])])

    real_import = builtins.__import__

    def no_peft(name, *args, **kwargs):
        if name == "peft" or name.startswith("peft."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    with pytest.raises(UserError, match=r"model\.transforms\.0: kind lora needs the peft package"):
        apply_transforms(tiny_family("llama"), None, [lora()])
