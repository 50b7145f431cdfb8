"""Models in and out: every supported family builds, trains, saves and reloads without forgetless."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from forgetless.config import InitConfig, ModelConfig
from forgetless.errors import UserError
from forgetless.model.init import init_model_config
from forgetless.model.load import (
    build_model,
    count_parameters,
    final_dtype,
    load_tokenizer,
    save_model,
    stored_dtype,
)

FAMILIES = [
    "llama",
    "qwen2",
    "qwen3",
    "mistral",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "phi",
    "phi3",
]
NO_GQA = {"gpt2", "gpt_neox"}


def tiny_init(architecture: str = "llama", **kwargs) -> InitConfig:
    sizes = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "max_position_embeddings": 64}
    if architecture not in NO_GQA:
        sizes["num_kv_heads"] = 2
    return InitConfig(architecture=architecture, **{**sizes, **kwargs})


def fresh(tokenizer, architecture: str = "llama", seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_model(ModelConfig(init=tiny_init(architecture, **kwargs)), tokenizer)


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:
    out = tmp_path_factory.mktemp("models") / "llama"
    save_model(fresh(tiny_tokenizer), tiny_tokenizer, out)
    return out


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# Every family


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_saves_and_reloads_without_forgetless(
    family: str, tiny_tokenizer, tmp_path: Path
) -> None:
    model = fresh(tiny_tokenizer, family)
    assert model.config.model_type == family
    assert model.training
    assert model.config.vocab_size == 512  # 512 tokens, already a multiple of 64
    assert model.config.eos_token_id == tiny_tokenizer.eos_token_id == 0

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, len(tiny_tokenizer), (2, 16), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]

    out = tmp_path / "final"
    save_model(model, tiny_tokenizer, out)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin"))

    model.eval()
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert type(reloaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=1e-5
        )
    generated = reloaded.generate(ids[:1, :4], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert generated.shape == (1, 7)
    assert torch.equal(generated[:, :4], ids[:1, :4])


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text"])
def test_init_is_deterministic_for_a_seed(family: str, tiny_tokenizer) -> None:
    a = fresh(tiny_tokenizer, family, seed=3).state_dict()
    b = fresh(tiny_tokenizer, family, seed=3).state_dict()
    c = fresh(tiny_tokenizer, family, seed=4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------------------------------------
# Fresh-model configs


def test_sizes_map_to_each_familys_field_names(tiny_tokenizer) -> None:
    gpt2 = init_model_config(tiny_init("gpt2", intermediate_size=96), tiny_tokenizer)
    assert (gpt2.n_embd, gpt2.n_layer, gpt2.n_head, gpt2.n_inner, gpt2.n_positions) == (32, 2, 4, 96, 64)
    assert gpt2.resid_pdrop == gpt2.embd_pdrop == gpt2.attn_pdrop == 0.0

    neox = init_model_config(tiny_init("gpt_neox"), tiny_tokenizer)
    assert (neox.hidden_size, neox.num_hidden_layers, neox.num_attention_heads) == (32, 2, 4)
    assert neox.intermediate_size == 128  # 4 x hidden for an ungated MLP
    assert neox.tie_word_embeddings is True

    gemma = init_model_config(tiny_init("gemma", tie_word_embeddings=False), tiny_tokenizer)
    assert gemma.head_dim == 8  # not the family's default of 256
    assert gemma.num_key_value_heads == 2
    assert gemma.intermediate_size == 128  # 8/3 x 32 rounded up to 64 for a gated MLP
    assert gemma.tie_word_embeddings is False
    # The tokenizer's pad is its eos: not declared as padding, so the eos embedding trains.
    assert (gemma.bos_token_id, gemma.eos_token_id, gemma.pad_token_id) == (0, 0, None)


def test_vocab_defaults_to_tokenizer_rounded_up_and_extra_applies(tiny_tokenizer) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer.name_or_path)
    tokenizer.add_tokens(["<|extra|>"])
    config = init_model_config(
        tiny_init("qwen3", extra={"rope_theta": 5.0e5, "rms_norm_eps": 1e-5}), tokenizer
    )
    assert len(tokenizer) == 513 and config.vocab_size == 576
    assert config.rope_parameters["rope_theta"] == 5.0e5
    assert config.rms_norm_eps == 1e-5


def test_bad_init_settings_are_user_errors(tiny_tokenizer) -> None:
    with pytest.raises(UserError, match="model.init.architecture"):
        init_model_config(InitConfig(architecture="no_such_family"), tiny_tokenizer)
    with pytest.raises(UserError, match="model.init.num_kv_heads: gpt2"):
        init_model_config(tiny_init("gpt2", num_kv_heads=2), tiny_tokenizer)
    with pytest.raises(UserError, match="model.init.hidden_size"):
        init_model_config(tiny_init("llama", hidden_size=30), tiny_tokenizer)


def test_count_parameters(tiny_tokenizer) -> None:
    tied = fresh(tiny_tokenizer, "gpt2")
    total = sum(p.numel() for p in tied.parameters())
    assert count_parameters(tied) == total
    embeddings = 512 * 32 + 64 * 32  # token and learned position tables
    assert count_parameters(tied, non_embedding=True) == total - embeddings

    untied = fresh(tiny_tokenizer, "llama", tie_word_embeddings=False)
    head = 512 * 32
    assert count_parameters(untied) == count_parameters(fresh(tiny_tokenizer, "llama")) + head
    assert count_parameters(untied, non_embedding=True) == count_parameters(untied) - 2 * head


# ---------------------------------------------------------------------------------------------
# Loading a model directory


def test_saved_model_loads_back_through_build_model(saved_llama: Path, tiny_tokenizer) -> None:
    model = build_model(ModelConfig(path=str(saved_llama)), tiny_tokenizer)
    reference = AutoModelForCausalLM.from_pretrained(saved_llama)
    assert model.training and next(model.parameters()).dtype == torch.float32
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    half = build_model(ModelConfig(path=str(saved_llama)), tiny_tokenizer, dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_model_dtype_is_the_dtype_of_the_loaded_weights(saved_llama: Path, tiny_tokenizer) -> None:
    assert build_model(ModelConfig(path=str(saved_llama)), tiny_tokenizer).dtype == torch.float32  # auto
    bf16 = build_model(ModelConfig(path=str(saved_llama), dtype="bfloat16"), tiny_tokenizer)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    fresh_bf16 = build_model(ModelConfig(init=tiny_init(), dtype="bfloat16"), tiny_tokenizer)
    assert {p.dtype for p in fresh_bf16.parameters()} == {torch.bfloat16}


def test_save_in_another_dtype_leaves_the_model_alone_and_keeps_tied_weights_once(
    tiny_tokenizer, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    model = fresh(tiny_tokenizer)
    assert model.config.tie_word_embeddings
    save_model(model, tiny_tokenizer, tmp_path / "bf16", dtype=torch.bfloat16)
    assert model.dtype == torch.float32
    tensors = load_file(tmp_path / "bf16" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert "lm_head.weight" not in tensors  # tied to the embedding: stored once
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    assert stored_dtype(tmp_path / "bf16") == torch.bfloat16
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert reloaded.dtype == torch.bfloat16
    torch.testing.assert_close(
        reloaded.model.embed_tokens.weight, model.model.embed_tokens.weight.to(torch.bfloat16)
    )


def test_final_dtype_follows_output_then_model_then_the_stored_weights(
    saved_llama: Path, tmp_path: Path
) -> None:
    base = ModelConfig(path=str(saved_llama))
    assert stored_dtype(saved_llama) == torch.float32
    assert final_dtype(base, "auto") == torch.float32
    assert final_dtype(base, "bfloat16") == torch.bfloat16
    assert final_dtype(ModelConfig(path=str(saved_llama), dtype="bfloat16"), "auto") == torch.bfloat16
    assert final_dtype(ModelConfig(path=str(saved_llama), dtype="bfloat16"), "float32") == torch.float32
    assert final_dtype(ModelConfig(init=tiny_init()), "auto") == torch.float32


def test_save_replaces_an_existing_dir_and_leaves_no_temporaries(
    saved_llama: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    out = tmp_path / "final"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    model = build_model(ModelConfig(path=str(saved_llama)), tiny_tokenizer)
    save_model(model, tiny_tokenizer, out)
    assert not (out / "stale.txt").exists()
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_pickle_weights_need_allow_pickle(saved_llama: Path, tiny_tokenizer, tmp_path: Path) -> None:
    reference = AutoModelForCausalLM.from_pretrained(saved_llama)
    folder = tmp_path / "pickled"
    folder.mkdir()
    reference.config.save_pretrained(folder)
    # transformers 5 saves only safetensors, so write the legacy pickle file directly.
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(UserError) as err:
        build_model(ModelConfig(path=str(folder)), tiny_tokenizer)
    assert str(err.value) == (
        f"{folder}: weights are in pickle format (pytorch_model.bin); pass --allow-pickle to load them"
    )
    model = build_model(ModelConfig(path=str(folder), allow_pickle=True), tiny_tokenizer)
    ids = torch.arange(8).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits)


def test_truncated_safetensors_is_a_user_error(saved_llama: Path, tiny_tokenizer, tmp_path: Path) -> None:
    folder = copy_dir(saved_llama, tmp_path / "truncated")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    with pytest.raises(UserError, match=r"model\.safetensors: truncated safetensors file"):
        build_model(ModelConfig(path=str(folder)), tiny_tokenizer)
    weights.write_bytes(data[:5])
    with pytest.raises(UserError, match=r"model\.safetensors: corrupt safetensors file"):
        build_model(ModelConfig(path=str(folder)), tiny_tokenizer)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: shutil.rmtree(d), "model directory not found"),
        (lambda d: (d / "config.json").unlink(), "no config.json"),
        (lambda d: (d / "model.safetensors").unlink(), "no model weights"),
        (lambda d: (d / "config.json").write_text("{not json"), "unreadable config"),
    ],
)
def test_broken_model_dirs_are_one_line_user_errors(
    damage, message: str, saved_llama: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    folder = copy_dir(saved_llama, tmp_path / "broken")
    damage(folder)
    with pytest.raises(UserError, match=message) as err:
        build_model(ModelConfig(path=str(folder)), tiny_tokenizer)
    assert str(folder) in str(err.value)
    assert "\n" not in str(err.value)


def test_custom_code_needs_trust_remote_code(saved_llama: Path, tiny_tokenizer, tmp_path: Path) -> None:
    folder = copy_dir(saved_llama, tmp_path / "custom")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "forgetless_test_custom"
    config["auto_map"] = {
        "AutoConfig": "configuration_x.XConfig",
        "AutoModelForCausalLM": "modeling_x.XForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="--trust-remote-code"):
        build_model(ModelConfig(path=str(folder)), tiny_tokenizer)
    # With the flag, transformers looks for the (missing) code files: still a one-line user error.
    with pytest.raises(UserError, match="could not load the model"):
        build_model(ModelConfig(path=str(folder), trust_remote_code=True), tiny_tokenizer)


def test_auto_map_on_a_native_family_loads_the_native_class(
    saved_llama: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    folder = copy_dir(saved_llama, tmp_path / "native")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    model = build_model(ModelConfig(path=str(folder)), tiny_tokenizer)
    assert type(model).__name__ == "LlamaForCausalLM"


def test_tokenizer_bigger_than_the_embedding_is_a_user_error(
    saved_llama: Path, tiny_tokenizer_dir: Path
) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    tokenizer.add_tokens([f"<|new{i}|>" for i in range(600)])
    with pytest.raises(UserError) as err:
        build_model(ModelConfig(path=str(saved_llama)), tokenizer)
    assert str(err.value).startswith(
        f"tokenizer {tiny_tokenizer_dir} has 1112 tokens but the model's embedding has 512 rows"
    )
    with pytest.raises(UserError, match="1112 tokens but the model's embedding has 64 rows"):
        build_model(ModelConfig(init=tiny_init(vocab_size=64)), tokenizer)


# ---------------------------------------------------------------------------------------------
# Tokenizers


def test_load_tokenizer_from_a_dir(tiny_tokenizer_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    assert len(tokenizer) == 512
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 0
    assert tokenizer.decode(tokenizer("def f(x): return x")["input_ids"]) == "def f(x): return x"


def test_tokenizer_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match=f"{missing}: tokenizer directory not found"):
        load_tokenizer(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=f"{empty}: no tokenizer files"):
        load_tokenizer(empty)
    with pytest.raises(UserError, match="needs a tokenizer"):
        load_tokenizer(None)


def test_bundled_tokenizer_resolves_through_the_data_package(
    monkeypatch: pytest.MonkeyPatch, tiny_tokenizer_dir: Path
) -> None:
    import sys
    import types

    fake = types.ModuleType("forgetless.data.bundled")
    fake.tokenizer_dir = lambda: tiny_tokenizer_dir  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "forgetless.data.bundled", fake)
    assert len(load_tokenizer("bundled")) == 512
