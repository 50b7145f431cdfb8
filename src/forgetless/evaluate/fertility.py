"""Fertility: how many tokens a tokenizer spends on a text, per UTF-8 byte and per word.

A tokenizer trained on other text splits a new domain or language into many short pieces; adding
tokens learned on the new text (`extend_vocab`) lowers its fertility there. Words are runs of
characters between whitespace (`str.split()`), so tokens per word means little for languages
written without spaces; tokens per byte is meaningful for every text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fertility(tokenizer: Any, texts: Sequence[str]) -> dict[str, float | int]:
    """`tokens`, `bytes`, `words`, `tokens_per_byte` and `tokens_per_word` of `texts` under
    `tokenizer` (a HF tokenizer; no special tokens are added)."""
    tokens = 0
    for first in range(0, len(texts), 64):
        encoded = tokenizer(list(texts[first : first + 64]), add_special_tokens=False)["input_ids"]
        tokens += sum(len(ids) for ids in encoded)
    num_bytes = sum(len(text.encode("utf-8")) for text in texts)
    words = sum(len(text.split()) for text in texts)
    return {
        "tokens": tokens,
        "bytes": num_bytes,
        "words": words,
        "tokens_per_byte": tokens / num_bytes if num_bytes else float("nan"),
        "tokens_per_word": tokens / words if words else float("nan"),
    }
