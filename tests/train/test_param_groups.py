"""Optimizer groups: decay for matrices only, first-match LR multipliers, frozen parameters left out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from forgetless.config import InitConfig, ModelConfig
from forgetless.errors import UserError
from forgetless.model.load import build_model
from forgetless.train.param_groups import parameter_groups


class TinyLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 4)
        self.block = nn.ModuleDict({"attn": nn.Linear(4, 4), "norm": nn.LayerNorm(4), "mlp": nn.Linear(4, 4)})
        self.head = nn.Linear(4, 16, bias=False)
        self.head.weight = self.embed.weight  # tied


def by_name(groups: list[dict]) -> dict[str, dict]:
    return {name: group for group in groups for name in group["names"]}


def test_decay_only_for_matrices_and_tied_weights_once() -> None:
    groups = parameter_groups(TinyLM(), weight_decay=0.1, lr_multipliers={})
    names = by_name(groups)
    assert sorted(names) == sorted(
        [
            "embed.weight",
            "block.attn.weight",
            "block.attn.bias",
            "block.norm.weight",
            "block.norm.bias",
            "block.mlp.weight",
            "block.mlp.bias",
        ]
    )
    for name, group in names.items():
        assert group["weight_decay"] == (0.1 if name.endswith("weight") and "norm" not in name else 0.0)
        assert group["lr_multiplier"] == 1.0
    assert len(groups) == 2
    for group in groups:
        assert len(group["params"]) == len(group["names"])
        assert all(isinstance(p, nn.Parameter) for p in group["params"])


def test_first_matching_glob_wins() -> None:
    model = TinyLM()
    groups = parameter_groups(
        model, weight_decay=0.1, lr_multipliers={"block.attn.*": 0.5, "block.*": 2.0, "embed.*": 0.0}
    )
    names = by_name(groups)
    assert names["block.attn.weight"]["lr_multiplier"] == 0.5
    assert names["block.attn.bias"]["lr_multiplier"] == 0.5
    assert names["block.mlp.weight"]["lr_multiplier"] == 2.0
    assert names["block.norm.bias"]["lr_multiplier"] == 2.0
    assert names["embed.weight"]["lr_multiplier"] == 0.0
    # One group per (multiplier, decay) pair: attn x2, block x2, embed x1.
    assert sorted((g["lr_multiplier"], g["weight_decay"]) for g in groups) == [
        (0.0, 0.1),
        (0.5, 0.0),
        (0.5, 0.1),
        (2.0, 0.0),
        (2.0, 0.1),
    ]


def test_frozen_parameters_are_left_out() -> None:
    model = TinyLM()
    model.embed.weight.requires_grad_(False)
    names = by_name(parameter_groups(model, weight_decay=0.1, lr_multipliers={}))
    assert "embed.weight" not in names
    assert "block.mlp.weight" in names


def test_glob_matching_nothing_is_named_in_the_error() -> None:
    with pytest.raises(
        UserError, match=r"train\.lr_multipliers\.layers\.\*: 'layers\.\*' matches no trainable parameter"
    ):
        parameter_groups(TinyLM(), weight_decay=0.1, lr_multipliers={"layers.*": 2.0})


def test_glob_matching_only_frozen_parameters_is_an_error() -> None:
    model = TinyLM()
    model.embed.weight.requires_grad_(False)
    with pytest.raises(UserError, match=r"train\.lr_multipliers\.embed\.\*"):
        parameter_groups(model, weight_decay=0.1, lr_multipliers={"embed.*": 2.0})


def test_shadowed_glob_is_an_error() -> None:
    with pytest.raises(UserError, match=r"train\.lr_multipliers\.block\.mlp\.\*: .*earlier"):
        parameter_groups(TinyLM(), weight_decay=0.1, lr_multipliers={"block.*": 2.0, "block.mlp.*": 3.0})


def test_negative_multiplier_is_an_error() -> None:
    with pytest.raises(UserError, match=r"train\.lr_multipliers\.block\.\*"):
        parameter_groups(TinyLM(), weight_decay=0.1, lr_multipliers={"block.*": -1.0})


def test_groups_drive_adamw_with_per_group_lr(tiny_tokenizer) -> None:
    torch.manual_seed(0)
    init = InitConfig(
        architecture="llama", hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=32
    )
    model = build_model(ModelConfig(init=init), tiny_tokenizer)
    groups = parameter_groups(model, weight_decay=0.1, lr_multipliers={"model.layers.1.*": 0.0})
    names = by_name(groups)
    # Real names: RMSNorm gains are 1-D and undecayed; the tied embedding is decayed once.
    assert names["model.layers.0.input_layernorm.weight"]["weight_decay"] == 0.0
    assert names["model.norm.weight"]["weight_decay"] == 0.0
    assert names["model.embed_tokens.weight"]["weight_decay"] == 0.1
    assert "lm_head.weight" not in names
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    for group in optimizer.param_groups:
        group["lr"] = 1e-2 * group["lr_multiplier"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(0, len(tiny_tokenizer), (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = dict(model.named_parameters())
    assert torch.equal(
        before["model.layers.1.mlp.up_proj.weight"], after["model.layers.1.mlp.up_proj.weight"]
    )
    assert not torch.equal(
        before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"]
    )
