"""A source's training subset: its documents ranked by a score, the first share of its tokens kept.

`sources.<name>.subset: {score, keep, order, field}` trains on part of a source, e.g. its
highest-quality documents, small enough to be read for several epochs in one stage: Guo et al.
(2024, arXiv 2406.14833; literature.md §6.4) close the stability gap of domain continual
pretraining by training several epochs on a high-quality subset instead of one pass over the whole
corpus. The scores:

- `base_loss`: the base model's mean token loss on the document (nats/token), as training reads
  it: the source's training tokens cut into windows of `train.seq_len + 1` tokens, each predicted
  token charged to its document. `order: lowest` keeps what the base model finds most familiar
  (Guo et al. rank by perplexity under a model of high-quality domain text); `highest` what is
  most novel to it. It needs the model, so it is computed when a run starts
  (`forgetless.evaluate.document_scores`), and a command that reads no model refuses it;
- `length`: the document's length in tokens (its EOS included);
- `field`: a number in each record's `field` (a quality score computed elsewhere).

Documents are ranked by score (ties and documents without a score keep the source's order; those
without one come last either way), and the first ones are kept until they hold `keep` of the
source's training tokens (at least one document). The held-out split is the source's own: only
training reads the subset.

Scores are computed once per source contents, tokenizer and score (for `base_loss` also the model
and `seq_len`) and kept in the token cache under `scores/`; each subset is written once as a token
store under `subsets/` (see `forgetless.data.shards`), so a second run, or another `keep`, reads
the cache. Both are written under the cache's lock, to temporary names renamed into place. A cache
that lacks a source's `base_loss` scores (`missing_scores`) can be given them (a `ModelScoring` whose
scorer hands over scores computed elsewhere, `source_scores` of another cache): the subset written
from the same scores is the same, file for file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.config import RunConfig, SourceConfig, SubsetConfig
from forgetless.data.prepare import PreparedSource, heldout_masks, unit_dirs
from forgetless.data.shards import StoreWriter, TokenStore, install_dir, temp_dir_beside, write_json
from forgetless.data.sources import ReadStats, read_records
from forgetless.errors import UserError
from forgetless.file_lock import FolderLock

SUBSET_FORMAT_VERSION = 1
MODEL_SCORES = ("base_loss",)

# Per-document scores of a token store under the base model (`forgetless.evaluate.document_scores`).
DocumentScorer = Callable[[TokenStore], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ModelScoring:
    """What `base_loss` scores need: a scorer (built lazily: it loads the model) and what identifies
    the model and the windows it reads (part of the cache key)."""

    scorer: Callable[[], DocumentScorer]
    model_key: str
    seq_len: int


def needs_model(config: RunConfig) -> list[str]:
    """The sources whose subset is scored with the base model."""
    return [name for name, source in config.sources.items() if source.subset and source.subset.score in MODEL_SCORES]


def refuse_model_scores(config: RunConfig, command: str) -> None:
    """Raise `UserError` when a source's subset needs the model, which `command` does not load."""
    for name in needs_model(config):
        raise UserError(
            f"sources.{name}.subset.score: base_loss scores documents with the base model, which `{command}` "
            "does not load; forgetless train scores them when it starts (or use score: length or field)"
        )


def apply_subsets(
    config: RunConfig,
    prepared: dict[str, PreparedSource],
    *,
    scoring: ModelScoring | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, PreparedSource]:
    """`prepared` with the training store of every source that has a `subset` replaced by its subset
    (written to the cache, or found there). `scoring` is needed for `base_loss` scores that are not
    in the cache yet; without it they raise `UserError`."""
    out = dict(prepared)
    for name, entry in prepared.items():
        spec = config.sources[name].subset if name in config.sources else None
        if spec is None:
            continue
        out[name] = dataclasses.replace(
            entry, train=subset_store(name, config.sources[name], entry, spec, scoring=scoring, note=note)
        )
    return out


def subset_store(
    name: str,
    source: SourceConfig,
    prepared: PreparedSource,
    spec: SubsetConfig,
    *,
    scoring: ModelScoring | None = None,
    note: Callable[[str], None] | None = None,
) -> TokenStore:
    """The subset of `prepared`'s training documents that `spec` keeps, as a token store in the cache."""
    cache, score_key, folder = _places(name, prepared, spec, scoring)
    found = _open(folder)
    if found is not None:
        return found
    with _locked(cache):
        found = _open(folder)  # written meanwhile by the process we waited for
        if found is not None:
            return found
        scores = _scores(name, source, prepared, spec, scoring, cache, score_key, note)
        lengths = np.diff(prepared.train.doc_offsets)
        keep = select_documents(scores, lengths, spec.keep, spec.order)
        _write(folder, prepared.train, keep, scores, name, spec)
    store = _open(folder)
    assert store is not None
    if note is not None:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        note(
            f"{name}: subset of {meta['documents']:,} documents, {meta['tokens']:,} tokens "
            f"({spec.order} {spec.score}, {meta['share_of_tokens']:.1%} of the training tokens)"
        )
    return store


def missing_scores(
    config: RunConfig, prepared: dict[str, PreparedSource], scoring: ModelScoring
) -> list[str]:
    """The sources scored by the base model (`needs_model`) whose subset is not in their token
    cache, nor are their scores: those that `apply_subsets` would score."""
    missing = []
    for name in needs_model(config):
        if name not in prepared:
            continue
        spec = config.sources[name].subset
        assert spec is not None
        cache, score_key, folder = _places(name, prepared[name], spec, scoring)
        if _open(folder) is None and _cached_scores(cache, name, score_key, prepared[name]) is None:
            missing.append(name)
    return missing


def source_scores(
    name: str,
    config: RunConfig,
    prepared: PreparedSource,
    scoring: ModelScoring | None = None,
    note: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The score of each of `name`'s training documents (float64, NaN for none), from the token
    cache, or computed now (for `base_loss`, with `scoring`) and cached."""
    spec = config.sources[name].subset
    if spec is None:
        raise ValueError(f"{name}: the source has no subset")
    cache, score_key, _ = _places(name, prepared, spec, scoring)
    found = _cached_scores(cache, name, score_key, prepared)
    if found is not None:
        return found
    with _locked(cache):
        return _scores(name, config.sources[name], prepared, spec, scoring, cache, score_key, note)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Hold the token cache's lock (created if missing), waiting for another process that holds it."""
    cache.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(cache)
    lock.acquire(wait=True)
    try:
        yield
    finally:
        lock.release()


def select_documents(scores: np.ndarray, lengths: np.ndarray, keep: float, order: str) -> np.ndarray:
    """A boolean mask over documents: those ranked first by `scores` (`lowest` or `highest` first;
    NaN last, ties in document order) until they hold `keep` of the tokens (at least one)."""
    scores = np.asarray(scores, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if scores.shape != lengths.shape or scores.ndim != 1 or scores.size == 0:
        raise ValueError("one score per document, and at least one document")
    ranked = np.where(np.isnan(scores), np.inf, scores if order == "lowest" else -scores)
    ranking = np.argsort(ranked, kind="stable")
    target = keep * float(lengths.sum())
    count = int(np.searchsorted(np.cumsum(lengths[ranking]), target - 1e-9 * target, side="left")) + 1
    mask = np.zeros(scores.shape, dtype=bool)
    mask[ranking[: min(count, len(ranking))]] = True
    return mask


# ---------------------------------------------------------------------------------------------


def _places(
    name: str, prepared: PreparedSource, spec: SubsetConfig, scoring: ModelScoring | None
) -> tuple[Path, str, Path]:
    """The token cache of `prepared`, the key of its scores and the folder of its subset."""
    if prepared.path is None or prepared.train.sha256 is None:
        raise ValueError(f"{name}: a subset needs a source prepared in the token cache")
    cache = prepared.path.parent.parent
    score_key = _score_key(prepared, spec, scoring)
    key = _hash({"v": SUBSET_FORMAT_VERSION, "scores": score_key, "keep": spec.keep, "order": spec.order})
    return cache, score_key, cache / "subsets" / f"{_safe(name)}-{key[:16]}"


def _cached_scores(cache: Path, name: str, key: str, prepared: PreparedSource) -> np.ndarray | None:
    path = _scores_path(cache, name, key)
    try:
        scores = np.load(path)
    except (OSError, ValueError, EOFError):
        return None
    return scores if scores.shape == (prepared.train.num_documents,) else None


def _scores_path(cache: Path, name: str, key: str) -> Path:
    return cache / "scores" / f"{_safe(name)}-{key[:16]}.npy"


def _score_key(prepared: PreparedSource, spec: SubsetConfig, scoring: ModelScoring | None) -> str:
    parts: dict[str, Any] = {"v": SUBSET_FORMAT_VERSION, "train": prepared.train.sha256, "score": spec.score}
    if spec.score == "field":
        parts["field"] = spec.field
        parts["files"] = prepared.meta.get("fingerprint")  # the records are read again
    if spec.score in MODEL_SCORES:
        if scoring is None:
            return ""  # looked up by `_scores`, which says what is missing
        parts.update(model=scoring.model_key, seq_len=scoring.seq_len)
    return _hash(parts)


def _scores(
    name: str,
    source: SourceConfig,
    prepared: PreparedSource,
    spec: SubsetConfig,
    scoring: ModelScoring | None,
    cache: Path,
    key: str,
    note: Callable[[str], None] | None,
) -> np.ndarray:
    """Each training document's score, from the cache or computed now (and cached)."""
    if spec.score in MODEL_SCORES and scoring is None:
        raise UserError(
            f"sources.{name}.subset.score: {spec.score} needs the base model to score the documents; "
            "run forgetless train, which scores them when it starts"
        )
    found = _cached_scores(cache, name, key, prepared)
    if found is not None:
        return found
    path = _scores_path(cache, name, key)
    if spec.score == "length":
        scores = np.diff(prepared.train.doc_offsets).astype(np.float64)
    elif spec.score == "field":
        assert spec.field is not None
        scores = _field_scores(name, source, prepared, spec.field)
    else:
        assert scoring is not None
        if note is not None:
            note(f"{name}: scoring {prepared.train.num_documents:,} documents with the base model ({spec.score})")
        scores = np.asarray(scoring.scorer()(prepared.train), dtype=np.float64)
    if scores.shape != (prepared.train.num_documents,):
        raise ValueError(f"{name}: {scores.shape} scores for {prepared.train.num_documents} documents")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, scores)
    os.replace(tmp, path)
    return scores


def _field_scores(name: str, source: SourceConfig, prepared: PreparedSource, field: str) -> np.ndarray:
    """The number in `field` of each training document, read again from the source's records in the
    order they were tokenized, with the same held-out split."""
    key = f"sources.{name}.subset.field"
    fingerprint = prepared.meta["tokenizer"]["fingerprint"]
    cache = Path(prepared.path).parent.parent  # type: ignore[arg-type]
    units, folders = unit_dirs(name, source, fingerprint, cache)
    stores = [TokenStore.open(folder) for folder in folders]
    masks = heldout_masks(name, source, units, folders, stores)
    values: list[np.ndarray] = []
    for unit, store, heldout in zip(units, stores, masks, strict=True):
        if unit.format == "txt":
            raise UserError(f"{key}: {unit.location} is a text file, whose documents have no fields")
        raw = [value for _, value in read_records(dataclasses.replace(unit, subsource_field=field), ReadStats())]
        if len(raw) != store.num_documents:
            raise UserError(
                f"{key}: {unit.location} changed since it was tokenized ({len(raw):,} records, "
                f"{store.num_documents:,} documents); run the command again to prepare it anew"
            )
        numbers = np.array([_number(v) for v in raw], dtype=np.float64)
        missing = int(np.isnan(numbers).sum())
        if missing == len(numbers) and numbers.size:
            raise UserError(f"{key}: no record of {unit.location} has a number in its field {field!r}")
        values.append(numbers[~heldout])
    return np.concatenate(values) if values else np.zeros(0)


def _number(value: str | None) -> float:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _write(
    folder: Path, train: TokenStore, keep: np.ndarray, scores: np.ndarray, name: str, spec: SubsetConfig
) -> None:
    tmp = temp_dir_beside(folder)
    try:
        writer = StoreWriter(tmp / "train", train.tokens.dtype)
        try:
            lengths = np.diff(train.doc_offsets)
            for index in np.flatnonzero(keep):
                writer.append(
                    np.asarray(train.document(int(index))),
                    lengths[index : index + 1],
                    train.doc_bytes[index : index + 1],
                    train.subsource_of(np.array([index])) if train.doc_subsources is not None else None,
                )
            split = writer.close({"source": name, "split": "train", "subset": spec.model_dump()})
        finally:
            writer.abort()
        kept = scores[keep]
        finite = kept[np.isfinite(kept)]
        write_json(
            tmp / "meta.json",
            {
                "format_version": SUBSET_FORMAT_VERSION,
                "source": name,
                "subset": spec.model_dump(),
                "from_train_sha256": train.sha256,
                "documents": split["num_documents"],
                "tokens": split["num_tokens"],
                "source_documents": train.num_documents,
                "source_tokens": train.num_tokens,
                "share_of_tokens": split["num_tokens"] / max(1, train.num_tokens),
                "kept_scores": [float(finite.min()), float(finite.max())] if finite.size else None,
            },
        )
        install_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open(folder: Path) -> TokenStore | None:
    try:
        json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return TokenStore.open(folder / "train")
    except (OSError, ValueError, KeyError):
        return None


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:64] or "source"
