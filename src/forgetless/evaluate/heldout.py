"""Held-out metrics of one source: mean token loss, perplexity and bits per byte.

**Which text** (`sample_heldout`). When a source's held-out split holds more tokens than the budget
(`eval.max_tokens`), a deterministic sample of it is evaluated, spread over the whole split:

- the budget is shared among the split's sub-sources (documents that name one, e.g. the bundled
  corpora's Austen, Bible, Wikipedia and WordNet parts) in proportion to their held-out tokens,
  with at least one document from each;
- within a sub-source, documents are visited in a seeded pseudo-random order, in rounds: round r
  brings each document up to r windows of `seq_len` tokens (or whole, once it is no longer than
  that) until the next document's step would not fit in the share. So a share that holds one
  window of every document reaches every document; long documents give windows spread evenly over
  their length (the first at their start) rather than stopping the selection at the first document
  that does not fit.

A run whose transforms replace the tokenizer evaluates whole documents only (`whole_only`), so that
the base model with its own tokenizer and the adapted model read the same text.

The evaluated text is laid out as fixed windows that never change between evaluations, so every
number in a run is measured on exactly the same tokens, and the same split, budget, `seq_len` and
seed always select the same text. Bits per byte divide the summed negative log-likelihood by the
UTF-8 bytes of the predicted text, which keeps the number comparable between models with different
tokenizers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from forgetless.data.sampler import permute
from forgetless.device import autocast
from forgetless.distributed import World, all_reduce_sum
from forgetless.evaluate.forward import (
    fused_head,
    no_gradient_state,
    pass_threads,
    run_in_passes,
    tokens_per_pass,
)
from forgetless.evaluate.ledger import MIN_USEFUL_DOCUMENTS, MIN_USEFUL_TOKENS, small_sample_warning
from forgetless.model.loss import causal_lm_token_nll

IGNORE_INDEX = -100


class Documents(Protocol):
    """What the evaluator needs of a token store (see `forgetless.data.shards.TokenStore`)."""

    tokens: np.ndarray
    doc_offsets: np.ndarray
    doc_bytes: np.ndarray
    doc_subsources: np.ndarray | None
    subsource_names: tuple[str, ...]


@dataclass(frozen=True)
class HeldoutSample:
    """The evaluated text of one source, laid out as windows, and how much of the split it is.

    `windows` is int64 `[n, seq_len + 1]`: each row's first token is context only, the other
    `seq_len` are predicted from what precedes them in the row; -100 marks padding (never predicted).
    Counts: `tokens` predicted tokens, `bytes` their UTF-8 bytes, `documents` documents with at least
    one predicted token (`whole_documents` of them whole, the rest as `cut_windows` windows),
    `split_documents` and `split_tokens` the whole held-out split; `subsources` the same per
    sub-source (`documents`, `tokens`, `bytes`, `split_documents`, `split_tokens`);
    `document_indices` the evaluated documents' positions in the split, ascending.
    """

    windows: np.ndarray
    num_bytes: int
    tokens: int
    documents: int
    whole_documents: int
    cut_windows: int
    split_documents: int
    split_tokens: int
    seq_len: int
    max_tokens: int
    seed: int
    subsources: dict[str, dict[str, int]] = field(default_factory=dict)
    document_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def sizes(self) -> dict[str, int]:
        """What every evaluation record carries about its text: documents, tokens and bytes."""
        return {"documents": self.documents, "tokens": self.tokens, "bytes": self.num_bytes}

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of the selection (the run_start line records it per source)."""
        return {
            **self.sizes(),
            "whole_documents": self.whole_documents,
            "cut_windows": self.cut_windows,
            "split_documents": self.split_documents,
            "split_tokens": self.split_tokens,
            "seq_len": self.seq_len,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "subsources": self.subsources,
        }

    def fingerprint(self) -> str:
        """A hash of the exact windows: equal for equal text, layout and padding."""
        digest = hashlib.sha256(np.ascontiguousarray(self.windows, dtype=np.int64).tobytes())
        digest.update(f"|{self.num_bytes}".encode())
        return digest.hexdigest()

    def too_small(self, name: str) -> str | None:
        """A one-line warning when the sample is below a useful size, else None."""
        if self.documents >= MIN_USEFUL_DOCUMENTS and self.tokens >= MIN_USEFUL_TOKENS:
            return None
        return small_sample_warning(name, self.documents, self.tokens)


def sample_heldout(
    store: Documents,
    *,
    seq_len: int,
    max_tokens: int,
    seed: int = 0,
    count_bytes: Callable[[np.ndarray], int] | None = None,
    whole_only: bool = False,
    documents: np.ndarray | None = None,
) -> HeldoutSample:
    """Select the evaluated text of `store` (see the module docstring) and lay it out as windows.

    With `whole_only`, documents are only ever evaluated whole: each is taken, in the seeded order, when
    it fits in what is left of its sub-source's share, else skipped (a share that fits none takes its
    shortest document). `documents` (positions in the split) evaluates exactly those documents,
    whole, instead of selecting. Both serve runs that compare two tokenizers on the same text
    (`forgetless.train.tokenizer_change`): a window cut at a token position is different text under
    another tokenizer, a whole document is not.

    Whole documents come first, as one token stream that starts with an EOS (the boundary that
    precedes every other document), cut into windows that start every `seq_len` tokens and overlap
    by one token, so each of their tokens (EOS included) is predicted exactly once; the tail of the
    last of these windows is padded. Then come the windows cut from long documents, one row each:
    `seq_len` of the document's tokens after the token that precedes them (an EOS at its start).

    `count_bytes(token_ids)` gives the UTF-8 bytes of a cut window's text (the tokenizer's decoding);
    without it a cut window counts its document's bytes in proportion to its tokens. Whole documents
    count their stored bytes.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    offsets = np.asarray(store.doc_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    num_documents = len(lengths)
    if num_documents < 1:
        raise ValueError("the token store has no documents to evaluate")
    codes = store.doc_subsources
    groups = np.zeros(num_documents, dtype=np.int64) if codes is None else np.asarray(codes, dtype=np.int64)

    cut = np.zeros(num_documents, dtype=np.int64)  # windows cut from each document (0: whole or unused)
    chosen = np.zeros(num_documents, dtype=bool)
    if documents is not None:
        picked = np.asarray(documents, dtype=np.int64)
        if len(picked) == 0 or picked.min() < 0 or picked.max() >= num_documents:
            raise ValueError(f"documents must be positions in the split's {num_documents} documents")
        chosen[picked] = True
    elif int(lengths.sum()) <= max_tokens:
        chosen[:] = True
    else:
        present = np.unique(groups)
        totals = np.array([int(lengths[groups == g].sum()) for g in present], dtype=np.int64)
        for g, budget in zip(present, _apportion(max_tokens, totals), strict=True):
            docs = np.flatnonzero(groups == g)
            key = _selection_key(seed, int(g))
            docs = docs[np.argsort(permute(np.arange(len(docs)), len(docs), key), kind="stable")]
            if whole_only:
                take, windows = _allocate_whole(lengths[docs], int(budget))
            else:
                take, windows = _allocate(lengths[docs], int(budget), seq_len)
            chosen[docs[take]] = True
            cut[docs[take]] = windows

    whole = np.flatnonzero(chosen & (cut == 0))
    rows, num_bytes = _whole_windows(store, offsets, whole, seq_len)
    cut_rows, cut_bytes = _cut_windows(store, offsets, np.flatnonzero(cut), cut, seq_len, count_bytes)
    windows = np.concatenate([rows, cut_rows]) if len(cut_rows) else rows
    predicted = int((windows[:, 1:] != IGNORE_INDEX).sum())

    per_doc_tokens = np.where(cut > 0, cut * seq_len, np.where(chosen, lengths, 0))
    per_doc_bytes = np.where(chosen & (cut == 0), np.asarray(store.doc_bytes, dtype=np.int64), 0)
    for doc, value in cut_bytes.items():
        per_doc_bytes[doc] = value
    subsources: dict[str, dict[str, int]] = {}
    if codes is not None:
        names = list(store.subsource_names)
        for g in np.unique(groups):
            in_group = groups == g
            subsources[names[g] if g >= 0 else "(none)"] = {
                "documents": int((chosen & in_group).sum()),
                "tokens": int(per_doc_tokens[in_group].sum()),
                "bytes": int(per_doc_bytes[in_group].sum()),
                "split_documents": int(in_group.sum()),
                "split_tokens": int(lengths[in_group].sum()),
            }
    return HeldoutSample(
        windows=windows,
        num_bytes=int(num_bytes + sum(cut_bytes.values())),
        tokens=predicted,
        documents=int(chosen.sum()),
        whole_documents=len(whole),
        cut_windows=len(cut_rows),
        split_documents=num_documents,
        split_tokens=int(lengths.sum()),
        seq_len=seq_len,
        max_tokens=max_tokens,
        seed=seed,
        subsources=subsources,
        document_indices=np.flatnonzero(chosen),
    )


def position_buckets(seq_len: int) -> list[tuple[int, int]]:
    """Ranges `[low, high)` of positions in the document for windows of `seq_len` predicted tokens:
    0-b, b-2b, 2b-4b, ... with b = min(1024, seq_len // 8) (the last range ends at `seq_len` and
    holds it too). 32k windows give 0-1k, 1k-2k, 2k-4k, ..., 16k-32k; 1024-token windows 0-128,
    128-256, 256-512, 512-1024."""
    base = max(1, min(1024, seq_len // 8))
    edges = [0, base]
    while edges[-1] * 2 < seq_len:
        edges.append(edges[-1] * 2)
    edges.append(seq_len)
    return list(zip(edges[:-1], edges[1:], strict=True))


def bucket_label(bucket: tuple[int, int]) -> str:
    return f"{bucket[0]}-{bucket[1]}"


def document_positions(windows: np.ndarray, eos: int) -> np.ndarray:
    """int64 `[n, seq_len]`: for each predicted token of `windows` (as `sample_heldout` lays them
    out), how many tokens of its own document precede it in its window, the context the model has of
    that document; -1 where the target is padding. A document starts after an EOS token."""
    windows = np.asarray(windows, dtype=np.int64)
    inputs = windows[:, :-1]
    index = np.broadcast_to(np.arange(inputs.shape[1], dtype=np.int64), inputs.shape)
    last_eos = np.maximum.accumulate(np.where(inputs == eos, index, -1), axis=1)
    positions = np.where(last_eos >= 0, index - last_eos, index + 1)
    return np.where(windows[:, 1:] == IGNORE_INDEX, -1, positions)


def position_bucket_index(windows: np.ndarray, eos: int) -> np.ndarray:
    """int64 `[n, seq_len]`: the `position_buckets(seq_len)` index of each predicted token of
    `windows` (its `document_positions`), -1 for padding."""
    seq_len = windows.shape[1] - 1
    positions = document_positions(windows, eos)
    inner = np.array([low for low, _ in position_buckets(seq_len)[1:]], dtype=np.int64)
    return np.where(positions < 0, -1, np.searchsorted(inner, positions, side="right"))


def document_end_token(store: Documents) -> int:
    """The token that ends every document of a store (EOS)."""
    return int(store.tokens[int(np.asarray(store.doc_offsets)[1]) - 1])


def heldout_windows(store: Documents, *, seq_len: int, max_tokens: int) -> tuple[np.ndarray, int]:
    """`(windows, bytes)` of `sample_heldout(store, seq_len=..., max_tokens=...)` with seed 0."""
    sample = sample_heldout(store, seq_len=seq_len, max_tokens=max_tokens)
    return sample.windows, sample.num_bytes


def _selection_key(seed: int, group: int) -> int:
    digest = hashlib.blake2b(f"forgetless-heldout|{seed}|{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to `weights` that sum to `total` (largest remainders, ties to the first)."""
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    rest = total - int(shares.sum())
    shares[np.argsort(-(exact - shares), kind="stable")[:rest]] += 1
    return shares


def _allocate(lengths: np.ndarray, budget: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of these documents (lengths in their seeded order) to evaluate within `budget` tokens.

    Rounds r = 1, 2, ...: each round brings every document up to `min(length, r * seq_len)` tokens
    (whole once it fits, else r windows), in order, until the next document's step would not fit;
    at least one document is taken. Returns (positions taken, windows cut from each: 0 = whole).
    """
    if int(lengths.sum()) <= budget:
        return np.arange(len(lengths)), np.zeros(len(lengths), dtype=np.int64)
    contribution = np.zeros(len(lengths), dtype=np.int64)
    used = 0
    for r in range(1, int(lengths.max()) // seq_len + 2):
        target = np.minimum(lengths, r * seq_len)
        step = target - contribution
        if used + int(step.sum()) <= budget:
            contribution, used = target, used + int(step.sum())
            continue
        fit = int(np.searchsorted(np.cumsum(step), budget - used, side="right"))
        if r == 1:
            fit = max(fit, 1)
        contribution[:fit] = target[:fit]
        break
    taken = np.flatnonzero(contribution)
    sizes = contribution[taken]
    return taken, np.where(sizes == lengths[taken], 0, sizes // seq_len)


def _allocate_whole(lengths: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """`_allocate` for whole documents only: in order, each document that still fits in `budget`;
    the shortest one when none fits."""
    taken: list[int] = []
    used = 0
    for position, length in enumerate(lengths.tolist()):
        if used + length <= budget:
            taken.append(position)
            used += length
    if not taken:
        taken = [int(np.argmin(lengths))]
    return np.asarray(taken, dtype=np.int64), np.zeros(len(taken), dtype=np.int64)


def _whole_windows(
    store: Documents, offsets: np.ndarray, docs: np.ndarray, seq_len: int
) -> tuple[np.ndarray, int]:
    if len(docs) == 0:
        return np.zeros((0, seq_len + 1), dtype=np.int64), 0
    eos = int(store.tokens[int(offsets[1]) - 1])  # every document in a store ends with EOS
    parts = [np.array([eos], dtype=np.int64)]
    # Runs of consecutive documents are one slice of the store.
    breaks = np.flatnonzero(np.diff(docs) != 1) + 1
    for run in np.split(docs, breaks):
        parts.append(
            np.asarray(store.tokens[int(offsets[run[0]]) : int(offsets[run[-1] + 1])], dtype=np.int64)
        )
    stream = np.concatenate(parts)
    num_targets = len(stream) - 1
    num_windows = -(-num_targets // seq_len)
    windows = np.full((num_windows, seq_len + 1), IGNORE_INDEX, dtype=np.int64)
    for i in range(num_windows):
        piece = stream[i * seq_len : i * seq_len + seq_len + 1]
        windows[i, : len(piece)] = piece
    num_bytes = int(np.asarray(store.doc_bytes, dtype=np.int64)[docs].sum())
    return windows, num_bytes


def _cut_windows(
    store: Documents,
    offsets: np.ndarray,
    docs: np.ndarray,
    counts: np.ndarray,
    seq_len: int,
    count_bytes: Callable[[np.ndarray], int] | None,
) -> tuple[np.ndarray, dict[int, int]]:
    """Rows of `seq_len + 1` tokens: `counts[doc]` evenly spread windows of each document in `docs`."""
    rows: list[np.ndarray] = []
    doc_bytes: dict[int, int] = {}
    eos = int(store.tokens[int(offsets[1]) - 1]) if len(offsets) > 1 else 0
    for doc in docs.tolist():
        start, length, k = int(offsets[doc]), int(offsets[doc + 1] - offsets[doc]), int(counts[doc])
        starts = [0] if k == 1 else [(j * (length - seq_len)) // (k - 1) for j in range(k)]
        total = 0
        for first in starts:
            before = eos if first == 0 else int(store.tokens[start + first - 1])
            text = np.asarray(store.tokens[start + first : start + first + seq_len], dtype=np.int64)
            rows.append(np.concatenate([[before], text]))
            if count_bytes is not None:
                total += int(count_bytes(text))
        if count_bytes is None:
            total = round(int(store.doc_bytes[doc]) * k * seq_len / length)
        doc_bytes[doc] = total
    if not rows:
        return np.zeros((0, seq_len + 1), dtype=np.int64), doc_bytes
    return np.stack(rows), doc_bytes


def evaluate_heldout(
    model: torch.nn.Module,
    windows: np.ndarray,
    num_bytes: int,
    *,
    batch_size: int | None = None,
    device: Any,
    autocast_dtype: torch.dtype | None = None,
    buckets: np.ndarray | None = None,
    fused: bool | None = None,
) -> dict[str, Any]:
    """Score `model` on `windows` from `sample_heldout`.

    Returns `loss` (mean negative log-likelihood per predicted token, nats), `ppl` (exp of loss),
    `bpb` (summed NLL in bits over `num_bytes` UTF-8 bytes), `tokens` (predicted tokens) and `bytes`.
    With `buckets` (int64 `[n, seq_len]`, the `position_buckets(seq_len)` index of each target, -1
    for none: `position_bucket_index`), also `bucket_nll` and `bucket_tokens`: the summed NLL and the
    count of the targets in each of those buckets, as lists.
    The model runs in eval mode with no gradient state, `batch_size` windows per forward pass (None:
    as many as `forward.tokens_per_pass` allows), under `autocast_dtype` autocast when given (bf16 on
    GPU); its train/eval mode is restored afterwards. `fused` (default: where `forward.fused_head`)
    takes the NLL from the final hidden states without storing the logits. Per-token NLLs are
    float32 (float32 softmax) and summed in float64 in window order, so the result depends only on
    the model, the windows and, to float rounding, the batch size and the path.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    windows = np.asarray(windows, dtype=np.int64)
    device = torch.device(device)
    fused = fused_head(model) if fused is None else fused
    if batch_size is None:
        seq_len = windows.shape[1] - 1
        batch_size = max(
            1,
            tokens_per_pass(model, device, fused=fused, autocast_dtype=autocast_dtype, seq_len=seq_len)
            // seq_len,
        )
    total_tokens = int((windows[:, 1:] != IGNORE_INDEX).sum())
    count = len(position_buckets(windows.shape[1] - 1)) if buckets is not None else 0

    def summed_nll(first: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        # Grad mode and autocast are per thread: set here, where the pass runs.
        with no_gradient_state(model), autocast(device, autocast_dtype):
            batch = torch.from_numpy(windows[first:stop]).to(device, non_blocking=True)
            # Padding sits only after the last real token, so a causal model's earlier predictions
            # do not see it; any valid id will do as its input.
            inputs, targets = batch[:, :-1].clamp(min=0), batch[:, 1:]
            nll = causal_lm_token_nll(model, inputs, targets, fused=fused, compute_dtype=autocast_dtype)
            nll = nll.double()
            if buckets is None or not count:
                return nll.sum(), None, None
            index = torch.from_numpy(buckets[first:stop]).to(device).flatten()
            keep = index >= 0
            per_bucket = torch.zeros(count, dtype=torch.float64, device=device)
            per_bucket.index_add_(0, index[keep], nll.flatten()[keep])
            counted = torch.zeros(count, dtype=torch.float64, device=device)
            counted.index_add_(0, index[keep], torch.ones_like(per_bucket[:1]).expand(int(keep.sum())))
            return nll.sum(), per_bucket, counted

    total_nll = torch.zeros((), dtype=torch.float64, device=device)
    bucket_nll = torch.zeros(count, dtype=torch.float64, device=device)
    bucket_tokens = torch.zeros(count, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        threads = pass_threads(model, device)
        for summed, per_bucket, counted in run_in_passes(len(windows), batch_size, summed_nll, threads=threads):
            total_nll += summed
            if per_bucket is not None and counted is not None:
                bucket_nll += per_bucket
                bucket_tokens += counted
    finally:
        model.train(was_training)
    nll = float(total_nll)
    loss = nll / total_tokens if total_tokens else float("nan")
    result: dict[str, Any] = {
        "loss": loss,
        "ppl": math.exp(loss) if loss < 700 else float("inf"),
        "bpb": nll / math.log(2) / num_bytes if num_bytes else float("nan"),
        "tokens": total_tokens,
        "bytes": int(num_bytes),
    }
    if buckets is not None:
        result["bucket_nll"] = bucket_nll.tolist()
        result["bucket_tokens"] = [int(n) for n in bucket_tokens.tolist()]
    return result


def losses_by_position(bucket_nll: list[float], bucket_tokens: list[float], seq_len: int) -> dict[str, Any]:
    """`{"loss": {"0-128": nats, ...}, "tokens": {"0-128": n, ...}}` from the bucket sums of
    `evaluate_heldout` for windows of `seq_len` (a bucket without tokens has no loss)."""
    labels = [bucket_label(b) for b in position_buckets(seq_len)]
    nll = list(bucket_nll) + [0.0] * (len(labels) - len(bucket_nll))
    tokens = list(bucket_tokens) + [0] * (len(labels) - len(bucket_tokens))
    return {
        "loss": {label: (n / t if t else None) for label, n, t in zip(labels, nll, tokens, strict=True)},
        "tokens": {label: int(t) for label, t in zip(labels, tokens, strict=True)},
    }


def evaluate_heldout_over_ranks(
    model: torch.nn.Module,
    windows: np.ndarray,
    num_bytes: int,
    world: World,
    buckets: np.ndarray | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`evaluate_heldout` with the windows split over the ranks of `world` and the sums reduced
    (`options` go to `evaluate_heldout`; with `buckets`, the sums by position bucket too); every rank
    calls it and gets the same result.

    Every rank gets the same number of windows (padding windows predict nothing), so sharded
    models run the same forward passes on every rank.
    """
    if not world.distributed:
        return evaluate_heldout(model, windows, num_bytes, buckets=buckets, **options)
    per_rank = -(-len(windows) // world.size)
    padded = np.full((per_rank * world.size, windows.shape[1]), IGNORE_INDEX, dtype=windows.dtype)
    padded[: len(windows)] = windows
    mine = None
    if buckets is not None:
        padded_buckets = np.full((per_rank * world.size, buckets.shape[1]), -1, dtype=buckets.dtype)
        padded_buckets[: len(buckets)] = buckets
        mine = padded_buckets[world.rank :: world.size]
    result = evaluate_heldout(model, padded[world.rank :: world.size], num_bytes, buckets=mine, **options)
    nll = result["loss"] * result["tokens"] if result["tokens"] else 0.0
    by_bucket = [*result.get("bucket_nll", []), *map(float, result.get("bucket_tokens", []))]
    nll, tokens, *by_bucket = all_reduce_sum([nll, float(result["tokens"]), *by_bucket], world)
    loss = nll / max(tokens, 1.0)
    reduced: dict[str, Any] = {
        "loss": loss,
        "ppl": math.exp(loss) if loss < 700 else float("inf"),
        "bpb": nll / math.log(2) / num_bytes if num_bytes else float("nan"),
        "tokens": tokens,
        "bytes": num_bytes,
    }
    if "bucket_nll" in result:
        half = len(by_bucket) // 2
        reduced["bucket_nll"], reduced["bucket_tokens"] = by_bucket[:half], by_bucket[half:]
    return reduced
