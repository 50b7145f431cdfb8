"""A fresh causal LM from `InitConfig`: one set of size names, mapped to each family's config fields.

`InitConfig` speaks in one vocabulary (hidden_size, num_layers, num_heads, ...). Transformers'
families spell these differently (GPT-2: n_embd, n_layer, n_head, n_inner, n_positions), and some
have fields whose defaults only make sense at full size (a fixed head_dim of 128 or 256, an
intermediate size of 11008). This module fills every size-dependent field from `InitConfig`, takes
the special-token ids from the tokenizer (a pad id shared with eos or bos is left out, so that the
eos embedding trains), then applies `InitConfig.extra` as-is, last.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from forgetless.config import InitConfig
from forgetless.errors import UserError

VOCAB_MULTIPLE = 64
"""A default vocabulary is the tokenizer's size rounded up to this, for efficient matmuls."""

# InitConfig name -> the family's config field; None: the family has no such setting.
_STANDARD_FIELDS: dict[str, str | None] = {
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "num_kv_heads": "num_key_value_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
}
_FIELDS_BY_FAMILY: dict[str, dict[str, str | None]] = {
    "gpt2": {
        "hidden_size": "n_embd",
        "num_layers": "n_layer",
        "num_heads": "n_head",
        "num_kv_heads": None,
        "intermediate_size": "n_inner",
        "max_position_embeddings": "n_positions",
    },
    "gpt_neox": {**_STANDARD_FIELDS, "num_kv_heads": None},
}

# Families whose MLP is gated (SwiGLU / GeGLU: three matrices). Their default intermediate size is
# 8/3 x hidden, which keeps the MLP's parameter count at that of a 4 x hidden ungated MLP.
_GATED_MLP = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"}

# Dropout is off by default, as in current LM pretraining; GPT-2's config defaults it to 0.1.
_NO_DROPOUT: dict[str, dict[str, float]] = {
    "gpt2": {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
}


def default_vocab_size(tokenizer_size: int) -> int:
    """`tokenizer_size` rounded up to a multiple of `VOCAB_MULTIPLE`."""
    return VOCAB_MULTIPLE * math.ceil(tokenizer_size / VOCAB_MULTIPLE)


def init_model_config(init: InitConfig, tokenizer: Any) -> PretrainedConfig:
    """The transformers config of a fresh model described by `init`, sized for `tokenizer`."""
    family = init.architecture
    if family not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(
            f"model.init.architecture: {family!r} is not a causal LM type known to transformers; "
            f"for example: llama, qwen2, qwen3, mistral, gemma, gpt2, gpt_neox, phi"
        )
    if init.hidden_size % init.num_heads:
        raise UserError(
            f"model.init.hidden_size: {init.hidden_size} is not divisible by num_heads = {init.num_heads}"
        )
    num_kv_heads = init.num_kv_heads or init.num_heads
    if init.num_heads % num_kv_heads:
        raise UserError(
            f"model.init.num_kv_heads: num_heads = {init.num_heads} is not a multiple of {num_kv_heads}"
        )
    defaults = AutoConfig.for_model(family)
    names = _FIELDS_BY_FAMILY.get(family, _STANDARD_FIELDS)

    if init.intermediate_size is not None:
        intermediate = init.intermediate_size
    elif family in _GATED_MLP:
        intermediate = VOCAB_MULTIPLE * math.ceil(8 * init.hidden_size / 3 / VOCAB_MULTIPLE)
    else:
        intermediate = 4 * init.hidden_size
    sizes = {
        "hidden_size": init.hidden_size,
        "num_layers": init.num_layers,
        "num_heads": init.num_heads,
        "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": init.max_position_embeddings,
    }
    fields: dict[str, Any] = {}
    for ours, value in sizes.items():
        theirs = names.get(ours)
        if theirs is None or not hasattr(defaults, theirs):
            if ours == "num_kv_heads" and num_kv_heads != init.num_heads:
                raise UserError(f"model.init.num_kv_heads: {family} has no grouped-query attention")
            continue
        fields[theirs] = value
    head_dim = init.hidden_size // init.num_heads
    if hasattr(defaults, "head_dim"):
        fields["head_dim"] = head_dim
    if hasattr(defaults, "query_pre_attn_scalar"):  # gemma2 / gemma3: scale by 1/sqrt(head_dim)
        fields["query_pre_attn_scalar"] = head_dim

    tokenizer_size = len(tokenizer)
    fields["vocab_size"] = init.vocab_size or default_vocab_size(tokenizer_size)
    fields["tie_word_embeddings"] = init.tie_word_embeddings
    fields["bos_token_id"] = tokenizer.bos_token_id
    fields["eos_token_id"] = tokenizer.eos_token_id
    # Most families build the input embedding with padding_idx = pad_token_id, which zeroes that
    # row and never updates it. Tokenizers often reuse eos (or bos) as pad, and eos separates the
    # packed documents the model trains on, so a shared id is not declared as padding.
    pad = tokenizer.pad_token_id
    fields["pad_token_id"] = pad if pad not in (tokenizer.eos_token_id, tokenizer.bos_token_id) else None
    fields.update(_NO_DROPOUT.get(family, {}))

    # No check of the keys of `extra`: configs accept legacy names (rope_theta) that are not fields.
    fields.update(init.extra)
    try:
        return AutoConfig.for_model(family, **fields)
    except (TypeError, ValueError) as err:
        raise UserError(f"model.init: {family} rejects these settings: {_first_line(err)}") from None


def init_model(init: InitConfig, tokenizer: Any, *, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """A freshly initialised causal LM (each family's own initialisation), in training mode.

    Deterministic: the weights depend only on `init`, the tokenizer's size and special tokens, and
    the global torch RNG state (the caller sets `torch.manual_seed`).
    """
    config = init_model_config(init, tokenizer)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.train()
    return model


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
