"""Per-document losses of a token store under a model: the `base_loss` score of a source subset.

`document_losses` reads a store as training does, in windows of `seq_len + 1` tokens starting every
`seq_len` tokens (the last window padded), so each token after the first is predicted once, from
the window's earlier tokens; every predicted token's loss is charged to the document it belongs to
(its EOS included), and a document's score is the mean of its tokens' losses in nats/token. A
document's first tokens may see the previous document's end as context, as they do in training.
The passes run as evaluation's do (`forgetless.evaluate.forward`: no gradient state, the fused head
where the model has one, several passes at once on a CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from forgetless.device import autocast
from forgetless.evaluate.forward import fused_head, no_gradient_state, pass_threads, run_in_passes
from forgetless.model.loss import causal_lm_token_nll

IGNORE_INDEX = -100


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
    starts = np.arange(0, max(len(tokens) - 1, 0), seq_len, dtype=np.int64)  # window w predicts start+1..
    device = torch.device(device)
    fused = fused_head(model)

    def window_nll(first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        batch_starts = starts[first:stop]
        windows = np.full((len(batch_starts), seq_len + 1), IGNORE_INDEX, dtype=np.int64)
        for row, start in enumerate(batch_starts):
            piece = tokens[start : start + seq_len + 1]
            windows[row, : len(piece)] = piece
        # Grad mode and autocast are per thread: set here, where the pass runs.
        with no_gradient_state(model), autocast(device, autocast_dtype):
            batch = torch.from_numpy(windows).to(device)
            inputs, targets = batch[:, :-1].clamp(min=0), batch[:, 1:]
            token_nll = causal_lm_token_nll(model, inputs, targets, fused=fused, compute_dtype=autocast_dtype)
            nll = token_nll.double().cpu().numpy()
        positions = batch_starts[:, None] + 1 + np.arange(seq_len)[None, :]
        valid = windows[:, 1:] != IGNORE_INDEX
        return np.searchsorted(offsets, positions[valid], side="right") - 1, nll[valid]

    sums = np.zeros(len(offsets) - 1, dtype=np.float64)
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        passes = run_in_passes(len(starts), batch_size, window_nll, threads=pass_threads(model, device))
        for docs, nll in passes:  # in pass order: the sums do not depend on the threads
            sums += np.bincount(docs, weights=nll, minlength=len(sums))
            counts += np.bincount(docs, minlength=len(counts))
    finally:
        model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
