"""Depth up-scaling: the identity order rebuilds the base exactly; a stacked order copies the
base's blocks in that order with their own weights, renumbered, and `final/` loads as is."""

from __future__ import annotations

import pytest
import torch
from families import FAMILIES, tiny_family
from transformers import AutoModelForCausalLM

from forgetless.config import DepthUpscaleConfig
from forgetless.errors import UserError
from forgetless.model.blocks import decoder_blocks
from forgetless.model.transforms import apply_transforms

IDS = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(0))


def upscale(model, layers: str):
    return apply_transforms(model, None, [DepthUpscaleConfig(kind="depth_upscale", layers=layers)])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_identity_order_computes_what_the_base_does(family) -> None:
    model = tiny_family(family)
    with torch.no_grad():
        before = model(IDS).logits
        done = upscale(model, "0-3")
        torch.testing.assert_close(done.model(IDS).logits, before, rtol=0, atol=1e-5)
    assert done.added == frozenset()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # past_key_values, for transformers 4 and 5 alike
@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3_text"])
def test_a_stacked_order_copies_the_blocks_and_final_loads_as_is(family, tmp_path) -> None:
    base = tiny_family(family)
    originals = [{k: v.clone() for k, v in block.state_dict().items()} for block in decoder_blocks(base)]
    layer_types = list(getattr(base.config, "layer_types", None) or [])
    done = upscale(base, "0-2,1-3")  # SOLAR's recipe in small: 4 blocks -> 6
    model = done.model
    order = [0, 1, 2, 1, 2, 3]
    blocks = decoder_blocks(model)
    assert len(blocks) == 6 and model.config.num_hidden_layers == 6
    for index, (block, source) in enumerate(zip(blocks, order, strict=True)):
        for name, value in block.state_dict().items():
            assert torch.equal(value, originals[source][name]), (index, name)
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                assert module.layer_idx == index
    # The second appearances of blocks 1 and 2 are new weights; the first are the base's own.
    assert done.added == {
        n for n, _ in model.named_parameters() if n.startswith(("model.layers.3.", "model.layers.4."))
    }
    assert blocks[3].mlp.down_proj.weight is not blocks[1].mlp.down_proj.weight
    if layer_types:
        assert model.config.layer_types == [layer_types[i] for i in order]
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = model(IDS).logits
        torch.testing.assert_close(loaded(IDS).logits, logits, rtol=0, atol=1e-5)
        # The KV cache keys each block by its new index: decoding token by token gives the same.
        out = loaded(IDS[:, :6], use_cache=True)
        step = loaded(IDS[:, 6:7], past_key_values=out.past_key_values, use_cache=True)
        torch.testing.assert_close(step.logits[:, -1], logits[:, 6], rtol=0, atol=1e-5)


def test_an_order_outside_the_blocks_is_refused() -> None:
    with pytest.raises(
        UserError, match=r"^model\.transforms\.0\.layers: \[4, 5\] outside the model's 4 decoder blocks"
    ):
        upscale(tiny_family("llama"), "0-5")
