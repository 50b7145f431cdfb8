"""Held-out metrics of one source: mean token loss, perplexity and bits per byte.

The evaluated text is a prefix of the source's held-out documents, cut at a document boundary, laid
out as fixed windows that never change between evaluations, so every number in a run is measured on
exactly the same tokens. Bits per byte divide the summed negative log-likelihood by the UTF-8 bytes
of those documents, which keeps the number comparable between models with different tokenizers.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from forgetless.device import autocast

IGNORE_INDEX = -100

# Rows of logits upcast to float32 at a time: bounds the softmax memory whatever the vocabulary.
_FLOAT32_LOGITS_PER_CHUNK = 1 << 26


class Documents(Protocol):
    """What the evaluator needs of a token store (see `forgetless.data.shards.TokenStore`)."""

    tokens: np.ndarray
    doc_offsets: np.ndarray
    doc_bytes: np.ndarray


def heldout_windows(store: Documents, *, seq_len: int, max_tokens: int) -> tuple[np.ndarray, int]:
    """Lay out the first held-out documents as evaluation windows.

    Whole documents are taken in order while their tokens (each closing EOS included) fit in
    `max_tokens`; when the first document alone is longer, it is evaluated whole. The token stream
    starts with an EOS, the boundary that precedes every other document in the store, so every
    token of the chosen documents, their EOS tokens included, is predicted exactly once.

    Returns `(windows, num_bytes)`: `windows` is int64 `[n, seq_len + 1]`; window `i` holds stream
    tokens `i * seq_len ... i * seq_len + seq_len`, so consecutive windows overlap by one token
    (the last input of one window is the first of the next). The tail of the last window is padded
    with -100. `num_bytes` is the UTF-8 byte count of the chosen documents' text.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    offsets = np.asarray(store.doc_offsets, dtype=np.int64)
    num_documents = len(offsets) - 1
    if num_documents < 1:
        raise ValueError("the token store has no documents to evaluate")
    start = int(offsets[0])
    # Number of leading documents whose tokens fit in max_tokens; at least the first one.
    num_docs = int(np.searchsorted(offsets[1:] - start, max_tokens, side="right"))
    num_docs = max(1, num_docs)
    end = int(offsets[num_docs])
    doc_tokens = np.asarray(store.tokens[start:end], dtype=np.int64)
    eos = doc_tokens[int(offsets[1]) - start - 1]  # every document in a store ends with EOS
    stream = np.concatenate([[eos], doc_tokens])

    num_targets = len(stream) - 1
    num_windows = -(-num_targets // seq_len)
    windows = np.full((num_windows, seq_len + 1), IGNORE_INDEX, dtype=np.int64)
    for i in range(num_windows):
        piece = stream[i * seq_len : i * seq_len + seq_len + 1]
        windows[i, : len(piece)] = piece
    num_bytes = int(np.asarray(store.doc_bytes[:num_docs], dtype=np.int64).sum())
    return windows, num_bytes


def evaluate_heldout(
    model: torch.nn.Module,
    windows: np.ndarray,
    num_bytes: int,
    *,
    batch_size: int,
    device: Any,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Score `model` on `windows` from `heldout_windows`.

    Returns `loss` (mean negative log-likelihood per predicted token, nats), `ppl` (exp of loss),
    `bpb` (summed NLL in bits over `num_bytes` UTF-8 bytes), `tokens` (predicted tokens) and `bytes`.
    The model runs in eval mode without gradients, `batch_size` windows per forward pass, under
    `autocast_dtype` autocast when given (bf16 on GPU); its train/eval mode is restored afterwards.
    Per-token NLLs are computed from float32 logits and summed in float64, in a fixed order, so the
    result depends only on the model, the windows and the batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    windows = np.asarray(windows, dtype=np.int64)
    device = torch.device(device)
    total_nll = torch.zeros((), dtype=torch.float64, device=device)
    total_tokens = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device, autocast_dtype):
            for first in range(0, len(windows), batch_size):
                batch = torch.from_numpy(windows[first : first + batch_size]).to(device)
                targets = batch[:, 1:]
                # Padding sits only after the last real token, so a causal model's earlier
                # predictions do not see it; any valid id will do as its input.
                inputs = batch[:, :-1].clamp(min=0)
                logits = model(input_ids=inputs, use_cache=False).logits
                total_nll += _summed_nll(logits, targets)
                total_tokens += int((targets != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    nll = float(total_nll)
    loss = nll / total_tokens if total_tokens else float("nan")
    return {
        "loss": loss,
        "ppl": math.exp(loss) if loss < 700 else float("inf"),
        "bpb": nll / math.log(2) / num_bytes if num_bytes else float("nan"),
        "tokens": total_tokens,
        "bytes": int(num_bytes),
    }


def _summed_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over non-ignored targets of -log p(target), float32 per token, float64 in the sum."""
    logits = logits.flatten(0, 1)
    targets = targets.flatten()
    rows = max(1, _FLOAT32_LOGITS_PER_CHUNK // logits.shape[-1])
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    for first in range(0, len(targets), rows):
        nll = F.cross_entropy(
            logits[first : first + rows].float(),
            targets[first : first + rows],
            ignore_index=IGNORE_INDEX,
            reduction="none",
        )
        total += nll.double().sum()
    return total
