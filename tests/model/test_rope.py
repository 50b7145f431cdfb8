"""RoPE transforms: the saved config loads in transformers with the requested theta or scaling, and
its rotary frequencies are the ones the formulas give; families without RoPE, or without the
scaling, are refused with one line naming the key."""

from __future__ import annotations

import math

import pytest
import torch
from families import tiny_family
from transformers import AutoConfig, AutoModelForCausalLM

from forgetless.config import RopeConfig, RopeScalingConfig
from forgetless.errors import UserError
from forgetless.model.positions import context_length
from forgetless.model.rope import rotary_frequencies, set_rope_scaling, set_rope_theta
from forgetless.model.transform_contract import TransformContext

CONTEXT = TransformContext(key="model.transforms.0", seq_len=256)


def default_frequencies(theta: float, dim: int) -> torch.Tensor:
    """theta^(-2i/d) for i = 0 .. d/2 - 1 (Su et al., RoFormer)."""
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def saved_and_loaded(model, tmp_path):
    model.save_pretrained(tmp_path)
    return AutoConfig.from_pretrained(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path).eval()


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3_text"])
def test_a_new_theta_loads_with_the_formula_frequencies(family, tmp_path) -> None:
    model = tiny_family(family)
    ids = torch.randint(0, 96, (2, 24), generator=torch.Generator().manual_seed(0))
    set_rope_theta(model, None, RopeConfig(kind="rope", theta=500_000), CONTEXT)
    config, loaded = saved_and_loaded(model, tmp_path)
    params = config.rope_parameters
    if family == "gemma3_text":  # the full-attention layers get it; the sliding ones keep theirs
        assert params["sliding_attention"]["rope_theta"] == 10_000
        params = params["full_attention"]
    assert params["rope_theta"] == 500_000
    assert config.max_position_embeddings == 256  # the run's longest sequence (the model had 64)
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    [(name, freqs)] = [(n, f) for n, f in rotary_frequencies(loaded).items() if "sliding" not in n]
    torch.testing.assert_close(freqs.double(), default_frequencies(500_000, dim), rtol=1e-6, atol=0)
    # The transformed model in memory computes what the saved one does.
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, loaded(ids).logits, rtol=0, atol=1e-5)


def llama3_frequencies(theta: float, dim: int, factor: float, old: int, low: float, high: float):
    """Llama 3.1's frequency rule: long wavelengths divided by the factor, short ones kept, a smooth
    mix in between (wavelength against old / low_freq_factor and old / high_freq_factor)."""
    out = []
    for freq in default_frequencies(theta, dim).tolist():
        wavelength = 2 * math.pi / freq
        if wavelength < old / high:
            out.append(freq)
        elif wavelength > old / low:
            out.append(freq / factor)
        else:
            smooth = (old / wavelength - low) / (high - low)
            out.append((1 - smooth) * freq / factor + smooth * freq)
    return torch.tensor(out, dtype=torch.float64)


def test_rope_scalings_load_with_the_formula_frequencies(tmp_path) -> None:
    dim, theta, old = 8, 10_000.0, 64  # the tiny Llama-like families: head 32 / 4, 64 positions
    cases = {
        "linear": default_frequencies(theta, dim) / 4,
        "llama3": llama3_frequencies(theta, dim, 4, old, 1.0, 4.0),
        "dynamic": default_frequencies(theta, dim),  # unchanged up to the trained length
    }
    for kind in ("linear", "llama3", "dynamic", "yarn"):
        model = tiny_family("llama")
        set_rope_scaling(model, None, RopeScalingConfig(kind="rope_scaling", type=kind, factor=4), CONTEXT)
        config, loaded = saved_and_loaded(model, tmp_path / kind)
        params = config.rope_parameters
        assert params["rope_type"] == kind and params["factor"] == 4 and params["rope_theta"] == theta
        freqs = rotary_frequencies(loaded)["model.rotary_emb.inv_freq"].double()
        if kind == "yarn":
            # YaRN (Peng et al. 2023): the fastest dimensions keep their frequency, the slowest are
            # interpolated by the factor, and attention is scaled by 0.1 ln(factor) + 1.
            base = default_frequencies(theta, dim)
            assert params["original_max_position_embeddings"] == old
            assert freqs[0].item() == pytest.approx(base[0].item(), rel=1e-6)
            assert freqs[-1].item() == pytest.approx(base[-1].item() / 4, rel=1e-6)
            assert (base / 4 <= freqs * (1 + 1e-6)).all() and (freqs <= base * (1 + 1e-6)).all()
            assert loaded.model.rotary_emb.attention_scaling == pytest.approx(0.1 * math.log(4) + 1)
        else:
            torch.testing.assert_close(freqs, cases[kind], rtol=1e-6, atol=0)
        # The context the run may train at: the trained length x factor (dynamic keeps the config's).
        assert config.max_position_embeddings == (old if kind == "dynamic" else 4 * old)
        assert context_length(config) == 4 * old


def test_a_family_without_rope_or_without_the_scaling_is_refused() -> None:
    with pytest.raises(UserError, match=r"^model\.transforms\.0: model type 'gpt2' has no rotary position"):
        set_rope_theta(tiny_family("gpt2"), None, RopeConfig(kind="rope", theta=1e6), CONTEXT)
    with pytest.raises(
        UserError,
        match=r"^model\.transforms\.0\.type: model type 'phi3' does not support the RoPE scaling yarn",
    ):
        set_rope_scaling(
            tiny_family("phi3"), None, RopeScalingConfig(kind="rope_scaling", type="yarn", factor=2), CONTEXT
        )
