"""Source subsets when a run starts: the base model scores the documents that `base_loss` ranks.

`forgetless.data.subset` selects and caches the subsets; this module supplies what only a run has,
the base model. The main process scores the documents with its own copy of `model` (loaded, or
initialised with the run's seed, before any transform) and frees it; the other processes of a
distributed run then find the subsets in the cache. The copy is made only when a score is missing
from the cache, which is keyed by the model's files (names, sizes, modification times) or its init
config and seed, with the dtype and precision it is scored in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from forgetless.config import RunConfig
from forgetless.data.prepare import PreparedSource
from forgetless.data.shards import TokenStore
from forgetless.data.subset import DocumentScorer, ModelScoring, apply_subsets, needs_model
from forgetless.evaluate.document_scores import document_losses
from forgetless.evaluate.forward import tokens_per_pass, windows_per_pass
from forgetless.model.load import build_model


def with_subsets(
    config: RunConfig,
    prepared: dict[str, PreparedSource],
    tokenizer: Any,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    is_main: bool = True,
    note: Callable[[str], None] | None = None,
) -> dict[str, PreparedSource]:
    """`prepared` with each source's `subset` applied (see `forgetless.data.subset`)."""
    if not any(source.subset is not None for name, source in config.sources.items() if name in prepared):
        return prepared
    scoring = None
    if any(name in prepared for name in needs_model(config)):

        def scorer() -> DocumentScorer:
            if not is_main:  # pragma: no cover - the main process wrote the scores before the barrier
                raise RuntimeError("the base-model scores of a subset are computed by the main process")
            return _model_scorer(config, tokenizer, device, autocast_dtype)

        scoring = ModelScoring(scorer, model_key(config, autocast_dtype), config.train.seq_len)
    return apply_subsets(config, prepared, scoring=scoring, note=note)


def model_key(config: RunConfig, autocast_dtype: torch.dtype | None) -> str:
    """What identifies the base model's scores: its files or its init, and how it computes."""
    model = config.model
    identity: dict[str, Any] = {"dtype": model.dtype, "autocast": str(autocast_dtype)}
    if model.init is not None:
        identity.update(init=model.init.model_dump(mode="json"), seed=config.train.seed)
    else:
        path = Path(str(model.path))
        if path.is_dir():
            identity["files"] = sorted(
                (item.name, item.stat().st_size, item.stat().st_mtime_ns) for item in path.iterdir() if item.is_file()
            )
        else:
            identity["hub"] = model.path
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def _model_scorer(
    config: RunConfig, tokenizer: Any, device: torch.device, autocast_dtype: torch.dtype | None
) -> DocumentScorer:
    with torch.random.fork_rng(devices=[]):  # a fresh model's init must not move the run's RNG
        torch.manual_seed(config.train.seed)
        model: torch.nn.Module = build_model(config.model, tokenizer)
    model.to(device)

    seq_len = config.train.seq_len
    batch_size = windows_per_pass(config.eval.batch_size) or max(
        1, tokens_per_pass(model, device, fused=False, autocast_dtype=autocast_dtype, seq_len=seq_len) // seq_len
    )

    def score(store: TokenStore) -> Any:
        return document_losses(
            model,
            store.tokens,
            store.doc_offsets,
            seq_len=seq_len,
            batch_size=batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
        )

    return score
