"""Source subsets when a run starts: the base model scores the documents that `base_loss` ranks.

`forgetless.data.subset` selects and caches the subsets; this module supplies what only a run has,
the base model. The main process applies the subsets first, scoring the documents with its own copy
of `model` (loaded, or initialised with the run's seed, before any transform) and freeing it. The
other processes of a distributed run then find the subsets in their cache, or, where their cache is
not the main process's (each node of a multi-node run may have a disk of its own), receive the main
process's scores and write the same files into their own cache: the documents are scored once per
run. The copy is made only when a score is missing from the main process's cache, which is keyed by
the model's files (names, sizes, modification times) or its init config and seed, with the dtype
and precision it is scored in. Every process then checks that it selected the same documents as
the main process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.config import RunConfig
from forgetless.data.prepare import PreparedSource
from forgetless.data.shards import TokenStore
from forgetless.data.subset import (
    DocumentScorer,
    ModelScoring,
    apply_subsets,
    missing_scores,
    needs_model,
    source_scores,
)
from forgetless.distributed import World, all_reduce_sum, barrier, broadcast_from_main
from forgetless.errors import UserError
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
    world: World | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, PreparedSource]:
    """`prepared` with each source's `subset` applied (see `forgetless.data.subset`). On several
    processes (`world`) every process calls this, and every process gets the same subsets."""
    world = world or World()
    subsets = [name for name, source in config.sources.items() if name in prepared and source.subset is not None]
    if not subsets:
        return prepared
    scored = [name for name in needs_model(config) if name in prepared]
    key = model_key(config, autocast_dtype)
    scoring = None
    if scored:
        scoring = ModelScoring(
            lambda: _model_scorer(config, tokenizer, device, autocast_dtype), key, config.train.seq_len
        )
    if not world.distributed:
        return apply_subsets(config, prepared, scoring=scoring, note=note)

    if world.is_main:
        out = apply_subsets(config, prepared, scoring=scoring, note=note)
        barrier(world)
    else:
        barrier(world)  # the main process applies them first, into its cache
    if scored:  # the main process's scores to the processes whose own cache lacks them
        assert scoring is not None
        lacking = [] if world.is_main else missing_scores(config, prepared, scoring)
        wanted = all_reduce_sum([float(name in lacking) for name in scored], world)
        received: dict[str, np.ndarray] = {}
        for name, count in zip(scored, wanted, strict=True):
            if count == 0:
                continue
            sent = (
                (prepared[name].train.sha256, source_scores(name, config, prepared[name], scoring, note))
                if world.is_main
                else None
            )
            sha256, scores = broadcast_from_main(sent, world)
            if not world.is_main:
                if sha256 != prepared[name].train.sha256:
                    raise UserError(
                        f"sources.{name}: this process's training tokens differ from the first process's "
                        "(each process prepares them in its own token cache); give every node the same "
                        "files, tokenizer and settings"
                    )
                received[name] = scores
        if not world.is_main:
            scoring = ModelScoring(lambda: _received_scorer(received, prepared, scored), key, config.train.seq_len)
    if not world.is_main:
        out = apply_subsets(config, prepared, scoring=scoring)
    first = broadcast_from_main({name: out[name].train.sha256 for name in subsets}, world)
    for name in subsets:
        if out[name].train.sha256 != first[name]:
            cache = Path(str(prepared[name].path)).parent.parent
            raise UserError(
                f"sources.{name}.subset: this process selected other documents than the first process "
                f"(its token cache {cache} holds other scores or tokens); remove that cache's scores/ and "
                "subsets/ folders and run again"
            )
    return out


def _received_scorer(
    received: dict[str, np.ndarray], prepared: dict[str, PreparedSource], scored: list[str]
) -> DocumentScorer:
    """A scorer that hands over the scores the main process sent, by the training tokens scored."""
    by_tokens = {prepared[name].train.sha256: scores for name, scores in received.items()}

    def score(store: TokenStore) -> np.ndarray:
        if store.sha256 not in by_tokens:
            names = ", ".join(f"sources.{name}" for name in scored if name not in received)
            raise UserError(
                f"{names}: this process's token cache lost the base-model scores of a subset while the run "
                "started; run again"
            )
        return by_tokens[store.sha256]

    return score


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
