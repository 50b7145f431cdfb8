"""Block expansion keeps the function of every family, places and numbers its copies, and refuses
what it cannot expand; ADEPT's importance is the loss rise of a bypassed block."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from families import FAMILIES, VOCAB, tiny_family
from torch import nn

from forgetless.config import ExpandBlocksConfig
from forgetless.errors import UserError
from forgetless.model.expand import layer_importance
from forgetless.model.layout import UnknownLayout, block_layout
from forgetless.model.transforms import apply_transforms


def expand(**spec) -> ExpandBlocksConfig:
    return ExpandBlocksConfig(kind="expand_blocks", **spec)


def tokens(rows: int = 2, length: int = 20, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_expansion_keeps_the_function_and_saves_as_a_plain_model(family: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = tiny_family(family)
    ids = tokens()
    before = logits(model, ids)
    done = apply_transforms(model, None, [expand(every=2)])
    assert model.config.num_hidden_layers == 6
    for field in ("layer_types", "no_rope_layers"):
        if getattr(model.config, field, None) is not None:
            assert len(getattr(model.config, field)) == 6
    torch.testing.assert_close(logits(done.model, ids), before, rtol=0, atol=1e-5)
    layout = block_layout(model)
    copies = {name.split(".")[len(layout.path.split("."))] for name in done.added}
    assert copies == {"2", "5"}  # blocks 1 and 3 copied, each right after itself

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 6
    torch.testing.assert_close(logits(reloaded, ids), before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2"])
def test_copies_get_their_own_layer_index_in_the_kv_cache(family: str) -> None:
    model = tiny_family(family)
    ids = tokens(rows=1, length=14)
    full = logits(model, ids)[:, -4:]
    apply_transforms(model, None, [expand(layers=[0, 2])])
    with torch.no_grad():
        out = model(input_ids=ids[:, :10], use_cache=True)
        past, steps = out.past_key_values, []
        for t in range(10, 14):
            out = model(input_ids=ids[:, t : t + 1], cache=past, use_cache=True)
            past = out.past_key_values
            steps.append(out.logits)
    indices = [getattr(block.self_attn, "layer_idx", i) for i, block in enumerate(block_layout(model).blocks)]
    assert indices == list(range(6))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)


def test_a_copy_is_its_original_with_zeroed_output_projections() -> None:
    model = tiny_family("llama")
    originals = [
        {k: v.clone() for k, v in block.state_dict().items()} for block in block_layout(model).blocks
    ]
    apply_transforms(model, None, [expand(layers=[3, 0])])
    blocks = block_layout(model).blocks
    assert len(blocks) == 6
    for index, source in ((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 3)):
        for name, value in blocks[index].state_dict().items():
            copy_of_projection = index in (1, 5) and name in (
                "self_attn.o_proj.weight",
                "mlp.down_proj.weight",
            )
            expected = torch.zeros_like(value) if copy_of_projection else originals[source][name]
            assert torch.equal(value, expected), (index, name)


def test_choices_that_do_not_fit_the_model_name_the_key() -> None:
    with pytest.raises(
        UserError, match=r"model\.transforms\.0\.every: 3 does not divide .* 4 decoder blocks"
    ):
        apply_transforms(tiny_family("llama"), None, [expand(every=3)])
    with pytest.raises(UserError, match=r"model\.transforms\.1\.layers: \[5\] outside"):
        apply_transforms(tiny_family("llama"), None, [expand(every=4), expand(layers=[5])])


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(x)


class _Toy(nn.Module):
    """A causal LM whose blocks keep their linear layer outside any attention or MLP part."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Config", (), {"model_type": "toy"})()
        self.embed = nn.Embedding(VOCAB, 8)
        self.layers = nn.ModuleList([_Block(), _Block()])

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False):
        x = self.embed(input_ids)
        for block in self.layers:
            x = block(x)
        return type("Out", (), {"logits": x})()


def test_an_unknown_block_layout_is_bad_input() -> None:
    with pytest.raises(UnknownLayout, match="directly in the block"):
        block_layout(_Toy())
    with pytest.raises(UserError, match=r"model\.transforms\.0: cannot expand model type 'toy'"):
        apply_transforms(_Toy(), None, [expand(every=1)])
    # A mixture-of-experts block: its last linear layer is the router, not an output projection;
    # the function check sees that the copy is not the identity.
    moe = tiny_family("mixtral")
    with pytest.raises(UserError, match="does not make a copied block the identity"):
        apply_transforms(moe, None, [expand(every=2)])


def test_importance_is_the_loss_rise_of_the_bypassed_block() -> None:
    import torch.nn.functional as F

    model = tiny_family("qwen3")
    batches = [tokens(rows=2, length=17, seed=s) for s in (3, 4)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layout = block_layout(model)
    rises = layer_importance(model, layout, batches)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # restored exactly

    def loss() -> float:
        total = 0.0
        for batch in batches:
            out = logits(model, batch[:, :-1])
            total += float(F.cross_entropy(out.flatten(0, 1), batch[:, 1:].flatten(), reduction="sum"))
        return total / sum(b[:, 1:].numel() for b in batches)

    base = loss()
    blocks = list(layout.blocks)
    for i in range(len(blocks)):
        model.model.layers = nn.ModuleList(blocks[:i] + blocks[i + 1 :])  # the block removed
        assert rises[i] == pytest.approx(loss() - base, abs=1e-5)
    model.model.layers = nn.ModuleList(blocks)


def test_select_least_important_probes_once_and_reuses_its_choice() -> None:
    calls = []

    def probe(source: str, count: int) -> list[torch.Tensor]:
        calls.append((source, count))
        return [tokens(rows=2, length=17, seed=5)]

    spec = expand(select="least_important", count=2, probe="general", probe_tokens=64)
    model = tiny_family("llama")
    rises = layer_importance(model, block_layout(model), probe("general", 64))
    calls.clear()
    done = apply_transforms(model, None, [spec], probe_batches=probe)
    assert calls == [("general", 64)]
    chosen = sorted(sorted(range(4), key=lambda i: rises[i])[:2])
    resolved = done.records()[0]["resolved"]
    assert resolved["layers"] == chosen
    assert resolved["importance"] == pytest.approx(rises)

    again = apply_transforms(tiny_family("llama"), None, [spec], recorded=done.records(), probe_batches=probe)
    assert calls == [("general", 64)]  # not probed again
    assert again.added == done.added
    with pytest.raises(UserError, match=r"model\.transforms: the checkpoint was trained with transforms"):
        apply_transforms(tiny_family("llama"), None, [expand(every=2)], recorded=done.records())


def test_what_was_added_is_followed_through_later_transforms() -> None:
    model = tiny_family("llama")
    done = apply_transforms(model, None, [expand(layers=[0]), expand(layers=[0])])
    # The first copy (block 1) is pushed to block 2 by the second (a copy of block 0 at index 1).
    prefixes = {".".join(name.split(".")[:3]) for name in done.added}
    assert prefixes == {"model.layers.1", "model.layers.2"}
    records = done.records()
    assert [r["resolved"]["layers"] for r in records] == [[0], [0]]
    per_block = sum(p.numel() for p in block_layout(model).blocks[0].parameters())
    assert [r["added_parameters"] for r in records] == [per_block, per_block]
    assert records[1]["parameters"] - records[0]["parameters"] == per_block
