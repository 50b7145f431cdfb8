"""Tiny random-init causal LMs of several families, built from configs (never downloaded).

A plain module for the model tests (`from families import FAMILIES, tiny_family`). Each family has
four decoder blocks of hidden size 32, so that transforms that pick blocks have a choice.
"""

from __future__ import annotations

from typing import Any

VOCAB = 96

_LLAMA_LIKE = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 48,
    "max_position_embeddings": 64,
}

FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {**_LLAMA_LIKE, "tie_word_embeddings": False},
    "mistral": {**_LLAMA_LIKE, "sliding_window": 8},
    "qwen2": {**_LLAMA_LIKE, "use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2},
    "qwen3": {**_LLAMA_LIKE, "head_dim": 8},
    "gemma": {**_LLAMA_LIKE, "head_dim": 8},
    "gemma2": {**_LLAMA_LIKE, "head_dim": 8, "sliding_window": 8},
    "gemma3_text": {**_LLAMA_LIKE, "head_dim": 8, "sliding_window": 8, "sliding_window_pattern": 2},
    "phi3": {**_LLAMA_LIKE, "pad_token_id": 0},
    "gpt2": {"n_embd": 32, "n_layer": 4, "n_head": 4, "n_positions": 64},
    "gpt_neox": {
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    "phi": {
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
}

# Families a transform may refuse (a mixture-of-experts MLP), outside the sweep.
OTHER_FAMILIES: dict[str, dict[str, Any]] = {
    "mixtral": {**_LLAMA_LIKE, "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen3_moe": {
        **_LLAMA_LIKE,
        "head_dim": 8,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
    },
}


def tiny_family(family: str, seed: int = 0, **overrides: Any):
    """A float32 random-init model of `family` (a transformers model_type) in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    options = {
        "vocab_size": VOCAB,
        "bos_token_id": 1,
        "eos_token_id": 2,
        **{**FAMILIES, **OTHER_FAMILIES}[family],
        **overrides,
    }
    config = AutoConfig.for_model(family, **options)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init leaves output projections near zero in some families; spread the weights so that
    # every block matters and a wrong transform shows in the logits.
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.2)
    return model.eval()
