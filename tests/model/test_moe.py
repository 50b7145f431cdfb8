"""Dense-to-MoE upcycling: the upcycled model computes what the dense one did, is saved as the
matching transformers MoE family, and its routers' balance loss is transformers' own."""

from __future__ import annotations

import json

import pytest
import torch
from families import tiny_family
from transformers import AutoModelForCausalLM

from forgetless.config import UpcycleMoeConfig
from forgetless.errors import UserError
from forgetless.model.moe import RouterStats, router_modules
from forgetless.model.transforms import apply_transforms

IDS = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(0))
MOE_CLASS = {
    "llama": "MixtralForCausalLM",
    "mistral": "MixtralForCausalLM",
    "qwen2": "Qwen2MoeForCausalLM",
    "qwen3": "Qwen3MoeForCausalLM",
}


def upcycle(model, **spec):
    return apply_transforms(model, None, [UpcycleMoeConfig(kind="upcycle_moe", **spec)])


@pytest.mark.parametrize("family", list(MOE_CLASS))
def test_the_upcycled_model_computes_what_the_dense_one_did_and_loads_as_its_moe_family(
    family, tmp_path
) -> None:
    for tied, spec in (
        (False, {"experts": 4, "top_k": 2, "noise": 0.0}),
        (True, {"experts": 3, "top_k": 1, "noise": 0.5}),
    ):
        dense = tiny_family(family, tie_word_embeddings=tied)
        with torch.no_grad():
            before = dense(IDS).logits
        done = upcycle(dense, **spec)
        moe = done.model
        assert type(moe).__name__ == MOE_CLASS[family]
        assert (moe.get_output_embeddings().weight is moe.get_input_embeddings().weight) == tied
        with torch.no_grad():
            torch.testing.assert_close(moe(IDS).logits, before, rtol=0, atol=1e-5)
        routers = router_modules(moe)
        assert len(routers) == 4 and all(r.weight.shape == (spec["experts"], 32) for r in routers)
        assert all(name in done.added for name, _ in moe.named_parameters() if ".mlp." in name)
        moe.save_pretrained(tmp_path / str(spec["experts"]))
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / str(spec["experts"])).eval()
        assert type(loaded).__name__ == MOE_CLASS[family]
        assert loaded.config.num_experts_per_tok == spec["top_k"]
        with torch.no_grad():
            torch.testing.assert_close(loaded(IDS).logits, before, rtol=0, atol=1e-5)


def test_the_balance_loss_and_expert_counts_are_those_of_the_routers() -> None:
    moe = upcycle(tiny_family("llama"), experts=4, top_k=2, noise=0.5).model.train()
    stats = RouterStats(moe)
    try:
        out = moe(IDS, labels=IDS, output_router_logits=True)  # transformers' own auxiliary loss
        torch.testing.assert_close(stats.balance_loss(), out.aux_loss, rtol=1e-6, atol=0)
        counts = stats.take_counts()
        assert [sum(row) for row in counts] == [2 * IDS.numel()] * 4  # top 2 of 4 experts, 4 layers
        expected = [
            torch.bincount(t.topk(2, dim=-1).indices.flatten(), minlength=4).tolist()
            for t in out.router_logits
        ]
        assert counts == expected
        with torch.no_grad():
            moe(IDS)  # evaluation is not counted
        assert stats.take_counts() == [[0] * 4] * 4
    finally:
        stats.close()


def test_a_model_without_a_gated_mlp_or_a_moe_family_is_refused() -> None:
    with pytest.raises(UserError, match=r"^model\.transforms\.0: model type 'gpt2' has no gated MLP"):
        upcycle(tiny_family("gpt2"))
    with pytest.raises(
        UserError, match=r"^model\.transforms\.0: no transformers MoE family matches model type 'gemma'"
    ):
        upcycle(tiny_family("gemma"))


def test_what_earlier_transforms_added_stays_added_in_the_upcycled_model(tiny_tokenizer) -> None:
    """Upcycling replaces the model; the depth copies and the new tokens' rows stay what a stage's
    `train_only: [new]` and `[new_rows]` select, by name in the replacement."""
    from pathlib import Path

    from conftest import tiny_llama
    from forgetless.config import DepthUpscaleConfig, ExtendVocabConfig

    code = [path.read_text() for path in sorted(Path(json.__file__).parent.glob("*.py"))]
    specs = [
        ExtendVocabConfig(kind="extend_vocab", **{"from": "code"}, new_tokens=8, lm_head="zero"),
        DepthUpscaleConfig(kind="depth_upscale", layers="0,1,1"),
        UpcycleMoeConfig(kind="upcycle_moe", experts=2, top_k=2),
    ]
    done = apply_transforms(
        tiny_llama(tiny_tokenizer, tie_word_embeddings=False),
        tiny_tokenizer,
        specs,
        source_texts=lambda s, n: code,
    )
    first = len(tiny_tokenizer)
    assert done.added_rows == {
        "model.embed_tokens.weight": [(first, first + 8)],
        "lm_head.weight": [(first, first + 8)],
    }
    names = [name for name, _ in done.model.named_parameters()]
    assert done.added == {n for n in names if ".mlp." in n or n.startswith("model.layers.2.")}
    assert [r["added_parameters"] for r in done.records()][1:] == [
        sum(
            p.numel()
            for n, p in done.model.named_parameters()
            if n.startswith("model.layers.2.") and ".mlp." not in n
        )
        + 3 * 64 * 32,  # the copy's MLP, as the dense block it was then
        sum(p.numel() for n, p in done.model.named_parameters() if ".mlp." in n),
    ]
