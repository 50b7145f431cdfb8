"""Per-document losses of a token store under a model: the `base_loss` score of a source subset.

`document_losses` reads a store as training does, in windows of `seq_len + 1` tokens starting every
`seq_len` tokens (the last window padded), so each token after the first is predicted once, from
the window's earlier tokens; every predicted token's loss is charged to the document it belongs to
(its EOS included), and a document's score is the mean of its tokens' losses in nats/token. A
document's first tokens may see the previous document's end as context, as they do in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from forgetless.device import autocast

IGNORE_INDEX = -100
_FLOAT32_LOGITS_PER_CHUNK = 1 << 26  # rows of float32 logits at a time, whatever the vocabulary


def document_losses(
    model: torch.nn.Module,
    tokens: np.ndarray,
    doc_offsets: np.ndarray,
    *,
    seq_len: int,
    batch_size: int,
    device: Any,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """float64 `[num_documents]`: each document's mean token loss (nats); NaN for a document none of
    whose tokens is predicted (a one-token first document)."""
    tokens = np.asarray(tokens)
    offsets = np.asarray(doc_offsets, dtype=np.int64)
    num_docs = len(offsets) - 1
    sums = np.zeros(num_docs, dtype=np.float64)
    counts = np.zeros(num_docs, dtype=np.int64)
    n = len(tokens)
    starts = np.arange(0, max(n - 1, 0), seq_len, dtype=np.int64)  # window w predicts tokens start+1..
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device, autocast_dtype):
            for first in range(0, len(starts), batch_size):
                batch_starts = starts[first : first + batch_size]
                windows = np.full((len(batch_starts), seq_len + 1), IGNORE_INDEX, dtype=np.int64)
                for row, start in enumerate(batch_starts):
                    piece = tokens[start : start + seq_len + 1]
                    windows[row, : len(piece)] = piece
                batch = torch.from_numpy(windows).to(device)
                targets = batch[:, 1:]
                logits = model(input_ids=batch[:, :-1].clamp(min=0), use_cache=False).logits
                nll = _token_nll(logits, targets).cpu().numpy().astype(np.float64)
                positions = batch_starts[:, None] + 1 + np.arange(seq_len)[None, :]
                valid = (targets != IGNORE_INDEX).cpu().numpy()
                docs = np.searchsorted(offsets, positions[valid], side="right") - 1
                np.add.at(sums, docs, nll[valid])
                np.add.at(counts, docs, 1)
    finally:
        model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) per position, float32 (0 at ignored targets), `[batch, seq]`."""
    flat_logits = logits.flatten(0, 1)
    flat_targets = targets.flatten()
    rows = max(1, _FLOAT32_LOGITS_PER_CHUNK // flat_logits.shape[-1])
    parts = [
        F.cross_entropy(
            flat_logits[first : first + rows].float(),
            flat_targets[first : first + rows],
            ignore_index=IGNORE_INDEX,
            reduction="none",
        )
        for first in range(0, len(flat_targets), rows)
    ]
    return torch.cat(parts).view(targets.shape)
