"""A run whose transforms replace the tokenizer (`extend_vocab`): what the base was, in bits per byte.

Losses in nats per token are not comparable between two tokenizers (one token of the extended
tokenizer covers several of the old one), but bits per byte are: both count the information of the
same UTF-8 text. So before the transforms change anything, the run

1. tokenizes every source it reads with the base's own tokenizer (cached like any preparation; the
   transform learns its tokens from these training documents),
2. selects the held-out text to evaluate as *whole documents* (`sample_heldout(..., whole_only=True)`: a
   window cut at a token position would be different text under the other tokenizer) and
   evaluates the untouched base model on it (loss in nats per *old* token, bits per byte);
3. after the transforms, prepares the sources with the new tokenizer, holding out exactly the
   documents the base tokenizer's split held out (the split is chosen by token counts, which the
   new tokenizer changes: the run pins it with `heldout: {documents: N}`, see `pinned_config`),
   and evaluates every point of the run on the same documents; and
4. measures the fertility of both tokenizers (tokens per byte and per word) on each source's
   held-out text.

`run_start` carries it all under `tokenizer` (`tokenizer_record`), and the ledger then reports
learning and forgetting in bits per byte against the base as it was (`forgetless.evaluate.ledger`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from forgetless.config import HeldoutConfig, RunConfig
from forgetless.data.prepare import PreparedSource, prepare_sources
from forgetless.distributed import World, barrier
from forgetless.evaluate.fertility import fertility
from forgetless.evaluate.forward import windows_per_pass
from forgetless.evaluate.heldout import HeldoutSample, evaluate_heldout_over_ranks, sample_heldout


@dataclass
class BaseTokenizer:
    """The tokenizer before the transforms, what it made of the run's sources, the held-out
    documents the run evaluates, and the base model's results on them with its own tokenizer."""

    tokenizer: Any
    prepared: dict[str, PreparedSource]
    documents: dict[str, np.ndarray]  # evaluated source -> positions in its held-out split, evaluated whole
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)  # empty on a resume


def prepare_with(
    config: RunConfig,
    tokenizer: Any,
    sources: list[str],
    world: World,
    *,
    progress: str,
    model_rows: int | None = None,
) -> dict[str, PreparedSource]:
    """`sources` tokenized by `tokenizer` (the first process writes the cache; the others wait)."""
    if not world.is_main:
        barrier(world)
    prepared = prepare_sources(
        config, tokenizer, sources=sources, progress=progress if world.is_main else "quiet", model_rows=model_rows
    )
    if world.is_main:
        barrier(world)
    return prepared


def measure_base(
    config: RunConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    world: World,
    *,
    sources: list[str],
    evaluate: bool,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    progress: str,
) -> BaseTokenizer:
    """Tokenize `sources` with the base `tokenizer`, select the held-out documents of every
    evaluated source and, with `evaluate`, score `model` (the base, before any transform) on them."""
    prepared = prepare_with(config, tokenizer, sources, world, progress=progress)
    documents: dict[str, np.ndarray] = {}
    evaluation: dict[str, dict[str, float]] = {}
    for name in config.eval_sources:
        heldout = prepared[name].heldout
        if heldout.num_documents == 0:
            continue  # reported, as bad input, when the run's own data is set up
        sample = sample_heldout(heldout, seq_len=config.eval_seq_len, max_tokens=config.eval.max_tokens, whole_only=True)
        documents[name] = sample.document_indices
        if evaluate:
            result = evaluate_heldout_over_ranks(
                model,
                sample.windows,
                sample.num_bytes,
                world,
                batch_size=windows_per_pass(config.eval.batch_size),
                device=device,
                autocast_dtype=autocast_dtype,
            )
            evaluation[name] = {
                **{key: float(result[key]) for key in ("loss", "bpb", "tokens", "bytes")},
                "documents": sample.documents,
            }
    return BaseTokenizer(tokenizer, prepared, documents, evaluation)


def pinned_config(config: RunConfig, base: BaseTokenizer) -> RunConfig:
    """`config` with each source's held-out split pinned to the documents the base tokenizer's split
    held out (`heldout: {documents: N}`, N of the documents split by hash; the split ranks documents
    by a hash of their text, so the same N are the same documents under any tokenizer)."""
    sources = dict(config.sources)
    for name, prepared in base.prepared.items():
        meta = prepared.meta
        fixed = sum(f["documents"] for f in meta.get("files", []) if f.get("split") == "heldout")
        by_hash = int(meta["heldout"]["documents"]) - fixed
        if by_hash > 0 and any(f.get("split") == "by hash" for f in meta.get("files", [])):
            sources[name] = sources[name].model_copy(update={"heldout": HeldoutConfig(documents=by_hash)})
    return config.model_copy(update={"sources": sources})


def eval_samples(
    config: RunConfig, base: BaseTokenizer, prepared: dict[str, PreparedSource]
) -> tuple[dict[str, HeldoutSample], dict[str, dict[str, Any]]]:
    """The evaluated text of every evaluated source under the new tokenization (`prepared`): the
    base's documents, whole; and per source its documents, bytes and tokens, and `same`: whether
    it is the base's text (the same held-out documents, byte for byte). A source whose split
    differs is sampled afresh, whole documents only."""
    samples: dict[str, HeldoutSample] = {}
    same: dict[str, dict[str, Any]] = {}
    for name in config.eval_sources:
        new = prepared[name].heldout
        if new.num_documents == 0:
            continue
        old = base.prepared[name].heldout
        text = name in base.documents and np.array_equal(np.asarray(old.doc_bytes), np.asarray(new.doc_bytes))
        sample = sample_heldout(
            new,
            seq_len=config.eval_seq_len,
            max_tokens=config.eval.max_tokens,
            whole_only=True,
            documents=base.documents[name] if text else None,
        )
        samples[name] = sample
        same[name] = {**sample.sizes(), "same": bool(text)}
    return samples, same


def document_texts(tokenizer: Any, store: Any, max_bytes: int) -> list[str]:
    """The first whole documents of `store` (a token store written with `tokenizer`) as text, at
    least one and about `max_bytes` UTF-8 bytes; decoded by the Rust tokenizer, which gives back
    the text of a byte-level BPE exactly (a normalizing tokenizer gives its normalized text)."""
    sizes = np.cumsum(np.asarray(store.doc_bytes, dtype=np.int64))
    count = min(store.num_documents, max(1, int(np.searchsorted(sizes, max_bytes, side="right"))))
    backend = tokenizer.backend_tokenizer
    texts: list[str] = []
    for first in range(0, count, 256):
        batch = [
            np.asarray(store.document(i)[:-1], dtype=np.int64).tolist()  # without the closing EOS
            for i in range(first, min(first + 256, count))
        ]
        texts.extend(backend.decode_batch(batch, skip_special_tokens=False))
    return texts


def tokenizer_record(
    base: BaseTokenizer, tokenizer: Any, evaluated: dict[str, dict[str, Any]], *, max_bytes: int = 1 << 20
) -> dict[str, Any]:
    """`run_start`'s `tokenizer` entry: the vocabulary sizes, the base's held-out results with its
    own tokenizer, the text the run evaluates (`evaluated`, from `eval_samples`) and whether it is
    the base's, and each source's fertility before and after on (up to `max_bytes` of) its held-out
    text (its training text when it holds none out)."""
    fertilities = {}
    for name, prepared in base.prepared.items():
        store = prepared.heldout if prepared.heldout.num_documents else prepared.train
        texts = document_texts(base.tokenizer, store, max_bytes)
        fertilities[name] = {"before": fertility(base.tokenizer, texts), "after": fertility(tokenizer, texts)}
    return {
        "changed": True,
        "vocab_before": len(base.tokenizer),
        "vocab_after": len(tokenizer),
        "base": base.evaluation,
        "same_text": {name: bool(entry["same"]) for name, entry in evaluated.items()},
        "evaluated": {name: {k: v for k, v in entry.items() if k != "same"} for name, entry in evaluated.items()},
        "fertility": fertilities,
    }


def tokenizer_summary(record: dict[str, Any]) -> str:
    """One line for the terminal from `tokenizer_record`'s entry: the sizes, each source's tokens
    per byte before and after, and the base's bits per byte with its own tokenizer."""
    parts = [f"tokenizer: {record['vocab_before']:,} -> {record['vocab_after']:,} tokens"]
    for name, fert in record["fertility"].items():
        before, after = fert["before"]["tokens_per_byte"], fert["after"]["tokens_per_byte"]
        base = (record["base"].get(name) or {}).get("bpb")
        text = f"{name} {before:.3f} -> {after:.3f} tokens/byte"
        parts.append(text + (f", base {base:.4f} bits/byte with its own tokenizer" if base is not None else ""))
    return "; ".join(parts)
