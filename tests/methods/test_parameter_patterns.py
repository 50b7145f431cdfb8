"""Parameter presets, per-stage LR multipliers and freezing (forgetless.train.param_groups)."""

from __future__ import annotations

import pytest
import torch

from forgetless.config import InitConfig, ModelConfig, config_from_dict
from forgetless.errors import UserError
from forgetless.model.load import build_model
from forgetless.train.param_groups import (
    apply_stage,
    run_parameter_groups,
    select_parameters,
    stage_parameter_groups,
    trainable_names,
)


def _model(tokenizer, architecture: str = "llama", tied: bool = True):
    torch.manual_seed(0)
    init = InitConfig(
        architecture=architecture,
        hidden_size=32,
        num_layers=4,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
    )
    return build_model(ModelConfig(init=init), tokenizer)


def test_presets_on_llama(tiny_tokenizer) -> None:
    model = _model(tiny_tokenizer, tied=False)
    assert select_parameters(model, "embeddings") == ["model.embed_tokens.weight"]
    assert select_parameters(model, "lm_head") == ["lm_head.weight"]
    norms = select_parameters(model, "norms")
    assert "model.norm.weight" in norms and "model.layers.0.input_layernorm.weight" in norms
    assert len(norms) == 2 * 4 + 1
    attention = select_parameters(model, "attention")
    assert len(attention) == 4 * 4 and all(".self_attn." in n for n in attention)
    mlp = select_parameters(model, "mlp")
    assert len(mlp) == 4 * 3 and all(".mlp." in n for n in mlp)
    assert all(
        n.startswith(("model.layers.1.", "model.layers.2.")) for n in select_parameters(model, "layers.1-2")
    )
    assert len(select_parameters(model, "layers.1-2")) == 2 * 9
    assert select_parameters(model, "layers.3") == [
        n for n, _ in model.named_parameters() if n.startswith("model.layers.3.")
    ]
    assert len(select_parameters(model, "layers")) == 4 * 9
    assert select_parameters(model, "*.q_proj.weight") == [
        f"model.layers.{i}.self_attn.q_proj.weight" for i in range(4)
    ]
    with pytest.raises(UserError, match=r"key: layers\.2-7 is outside the model's 4 decoder blocks"):
        select_parameters(model, "layers.2-7", key="key")


def test_presets_on_gpt2_and_tied_head(tiny_tokenizer) -> None:
    model = _model(tiny_tokenizer, architecture="gpt2")
    assert select_parameters(model, "embeddings") == ["transformer.wte.weight", "transformer.wpe.weight"]
    assert select_parameters(model, "lm_head") == ["transformer.wte.weight"]  # tied to the embedding
    assert all(".attn." in n for n in select_parameters(model, "attention"))
    assert all(".mlp." in n for n in select_parameters(model, "mlp"))
    assert {n.rsplit(".", 2)[-2] for n in select_parameters(model, "norms")} == {"ln_1", "ln_2", "ln_f"}
    assert select_parameters(model, "layers.0")[0].startswith("transformer.h.0.")


def test_stage_groups_keep_one_structure_for_every_stage(tiny_tokenizer) -> None:
    model = _model(tiny_tokenizer)
    groups = stage_parameter_groups(
        model,
        weight_decay=0.1,
        stage_multipliers=[
            ({}, "train.lr_multipliers"),
            ({"layers": 0.1, "embeddings": 0.5}, "stages.1.methods.lr_multipliers"),
        ],
    )
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["model.layers.0.mlp.up_proj.weight"]["stage_lr_multipliers"] == [1.0, 0.1]
    assert by_name["model.embed_tokens.weight"]["stage_lr_multipliers"] == [1.0, 0.5]
    assert by_name["model.norm.weight"]["stage_lr_multipliers"] == [1.0, 1.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = torch.optim.AdamW(groups)
    trainable = trainable_names(model)
    frozen = apply_stage(model, optimizer, stage_index=1, freeze=["norms"], trainable=trainable)
    assert len(frozen) == 9 and not model.model.norm.weight.requires_grad
    assert by_name["model.layers.0.mlp.up_proj.weight"]["lr_multiplier"] == 0.1
    apply_stage(model, optimizer, stage_index=0, freeze=[], trainable=trainable)
    assert (
        model.model.norm.weight.requires_grad and by_name["model.embed_tokens.weight"]["lr_multiplier"] == 1.0
    )


def test_frozen_parameters_keep_their_adam_state_untouched(tiny_tokenizer) -> None:
    model = _model(tiny_tokenizer)
    optimizer = torch.optim.AdamW(
        stage_parameter_groups(model, weight_decay=0.1, stage_multipliers=[({}, "k")]), lr=1e-2
    )
    apply_stage(model, optimizer, stage_index=0, freeze=["embeddings"], trainable=trainable_names(model))
    before = model.model.embed_tokens.weight.detach().clone()
    ids = torch.randint(0, len(tiny_tokenizer), (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert torch.equal(model.model.embed_tokens.weight.detach(), before)
    assert model.model.embed_tokens.weight not in optimizer.state


def test_a_run_config_checks_every_stage(tiny_tokenizer) -> None:
    model = _model(tiny_tokenizer)
    stage = {"name": "a", "tokens": 10, "mix": {"s": 1.0}}
    config = config_from_dict(
        {
            "model": {"init": {"hidden_size": 32}},
            "sources": {"s": "x.txt"},
            "stages": [stage, {**stage, "name": "b", "methods": {"freeze": ["mlp", "nothing.*"]}}],
        }
    )
    with pytest.raises(UserError, match=r"stages\.1\.methods\.freeze\.1: 'nothing\.\*' matches no trainable"):
        run_parameter_groups(model, config)
    with pytest.raises(UserError, match="freezes every trainable parameter"):
        apply_stage(
            model,
            torch.optim.AdamW(model.parameters()),
            stage_index=0,
            freeze=["*"],
            trainable=trainable_names(model),
        )
