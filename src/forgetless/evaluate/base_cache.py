"""The base-evaluation cache: runs that start from the same model and evaluate the same text and
questions the same way share one evaluation of the base model.

The runs of a sweep, the demo's strategies, the proxy runs of `forgetless plan` and a run started
over all evaluate the same base model first. The first of them stores its base evaluation (the
held-out and question-set numbers of its `point: base` line in metrics.jsonl) under
`cache_dir/evals/<key>.json`; the others read it back instead of recomputing it, and their base line
says so (`base_cache`).

**The key** is the SHA-256 of these components (JSON), all of them stored in the entry and compared
again when it is read:

- `model`: the weights' identity. For a local model directory: every file under it but model cards
  (`*.md`): relative path, size in bytes and modification time in nanoseconds, and the SHA-256 of its `config.json`; a hub id
  is looked up in the local Hugging Face cache and identified the same way by its snapshot folder.
  So a file rewritten or copied elsewhere is a new model, a moved one is not. Also `model.dtype`,
  `model.transforms` and, when there are transforms, `train.seed` (a transform may draw new weights).
  A fresh model (`model.init`) or a hub id not in the local cache has no identity: never cached.
- `tokenizer`: the tokenizer's fingerprint (its serialized JSON and EOS id), as the token cache uses.
- `heldout`, per evaluated source: the SHA-256 of its prepared held-out tokens, `train.seq_len`,
  `eval.max_tokens`, `sources.<name>.heldout`, and the SHA-256 of the exact windows scored and
  their byte count (which the selection seed and everything else that selects text decide).
- `mcq`, per question set: the SHA-256 of the questions scored (after `eval.mcq_limit`) and how they
  are scored (template, few-shot examples, per-item outcomes).
- `eval`: the other `eval` settings, except those that decide only when and in what batches
  evaluation runs (`every_tokens`, `dense_start`, `budget`, `batch_size`).
- `precision`: the device type, `train.precision` as resolved (bf16 or fp32) and
  `train.mixed_precision`; `versions`: forgetless, torch and transformers, and `FORMAT`.

Not in the key, because they change the numbers only by float rounding (well under the ledger's
0.01-nat floor): the batch size, the number of threads or processes, and whether the head is fused.

Entries are written through a temporary file and a rename, so a reader sees a whole entry or none;
an entry that cannot be read, or whose components differ from the run's, counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.config import RunConfig

FORMAT = 1
# Keys of an eval line that describe when it was taken, not what it measured.
_BOOKKEEPING = frozenset(
    {"kind", "step", "tokens", "stage", "stage_index", "stage_tokens", "point", "eval_s", "base_cache"}
)
# `eval` settings that decide only when and in what batches evaluation runs.
_EVAL_TIMING = frozenset({"every_tokens", "dense_start", "budget", "batch_size"})


@dataclass(frozen=True)
class CachedEvaluation:
    """An entry read back: the measured keys of the base eval line, and where they came from."""

    path: Path
    record: dict[str, Any]  # `eval/...` and `mcq/...` keys of the base eval line
    eval_s: float  # seconds the evaluation took when it was computed
    heldout_s: float  # of which the held-out sources
    run_dir: str  # the run that computed it


@dataclass(frozen=True)
class BaseEvalCache:
    """Where one run's base evaluation is cached, and what identifies it (see the module docstring)."""

    path: Path
    key: str
    components: dict[str, Any]

    def read(self) -> CachedEvaluation | None:
        """The entry, or None when there is none or it does not match (unreadable, other components)."""
        try:
            entry = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(entry, dict)
            or entry.get("format") != FORMAT
            or entry.get("key") != self.key
            or entry.get("components") != _canonical(self.components)
            or not isinstance(entry.get("record"), dict)
        ):
            return None
        return CachedEvaluation(
            path=self.path,
            record=entry["record"],
            eval_s=float(entry.get("eval_s") or 0.0),
            heldout_s=float(entry.get("heldout_s") or 0.0),
            run_dir=str(entry.get("run_dir", "")),
        )

    def write(self, record: dict[str, Any], *, eval_s: float, heldout_s: float, run_dir: Path) -> bool:
        """Store the measured keys of `record` (a base eval line); False when the cache folder cannot
        be written (the run goes on: the cache only saves time)."""
        entry = {
            "format": FORMAT,
            "key": self.key,
            "components": _canonical(self.components),
            "record": measured(record),
            "eval_s": eval_s,
            "heldout_s": heldout_s,
            "run_dir": str(Path(run_dir).resolve()),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, indent=1, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        return True


def measured(record: dict[str, Any]) -> dict[str, Any]:
    """The keys of an eval line that hold what it measured (all but the bookkeeping)."""
    return {key: value for key, value in record.items() if key not in _BOOKKEEPING}


def base_eval_cache(cache_dir: Path, components: dict[str, Any] | None) -> BaseEvalCache | None:
    """The cache entry for `components` (from `key_components`) under `cache_dir/evals/`, or None
    when the model has no identity to key it by."""
    if components is None:
        return None
    canonical = json.dumps(_canonical(components), sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    return BaseEvalCache(Path(cache_dir) / "evals" / f"{key}.json", key, components)


def key_components(
    *,
    model: dict[str, Any] | None,
    tokenizer: str,
    heldout: dict[str, dict[str, Any]],
    mcq: dict[str, dict[str, Any]],
    eval_settings: dict[str, Any],
    precision: dict[str, Any],
) -> dict[str, Any] | None:
    """The key's components (see the module docstring); None when `model` has no identity."""
    if model is None:
        return None
    import torch
    import transformers

    from forgetless import __version__

    return {
        "model": model,
        "tokenizer": tokenizer,
        "heldout": heldout,
        "mcq": mcq,
        "eval": {k: v for k, v in eval_settings.items() if k not in _EVAL_TIMING},
        "precision": precision,
        "versions": {
            "format": FORMAT,
            "forgetless": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }


def model_identity(path: str | None) -> dict[str, Any] | None:
    """What identifies the weights in model directory `path` (or a hub id's snapshot in the local
    Hugging Face cache): each file's relative path, size and modification time, and the SHA-256 of
    config.json; None for no path, or one that is neither a local folder nor a cached hub id."""
    if path is None:
        return None
    local = Path(path).expanduser()
    folder = local if local.is_dir() else _hub_snapshot(str(path))
    if folder is None:
        return None
    files = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".md"):  # not model cards
        stat = file.stat()  # through a symlink (a hub snapshot's files are links to blobs)
        files.append([file.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    config = folder / "config.json"
    return {
        "files": files,
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
    }


def cache_for_run(
    config: RunConfig,
    *,
    tokenizer: Any,
    eval_sets: dict[str, tuple[np.ndarray, int]],
    heldout_hashes: dict[str, str | None],
    mcq_sets: dict[str, list[dict[str, Any]]],
    mcq_scoring: dict[str, Any],
    device_type: str,
    bf16: bool,
) -> BaseEvalCache | None:
    """The base-evaluation cache entry of a run of `config` that evaluates `eval_sets` (source ->
    windows and bytes; `heldout_hashes` the SHA-256 of each source's prepared held-out tokens) and
    `mcq_sets` (set -> questions, scored as `mcq_scoring` says), under the config's cache folder."""
    from forgetless.data.prepare import default_cache_dir, tokenizer_info

    model = model_identity(config.model.path) if config.model.init is None else None
    if model is not None:
        model["dtype"] = config.model.dtype
        model["transforms"] = [t.model_dump(mode="json") for t in config.model.transforms]
        if config.model.transforms:
            model["seed"] = config.train.seed
    heldout = {
        name: {
            "heldout_sha256": heldout_hashes.get(name),
            "seq_len": config.train.seq_len,
            "max_tokens": config.eval.max_tokens,
            "split": config.sources[name].heldout.model_dump(mode="json") if name in config.sources else None,
            "windows_sha256": windows_digest(windows, num_bytes),
        }
        for name, (windows, num_bytes) in eval_sets.items()
    }
    mcq = {
        name: {"questions_sha256": questions_digest(items), **mcq_scoring} for name, items in mcq_sets.items()
    }
    components = key_components(
        model=model,
        tokenizer=tokenizer_info(tokenizer).fingerprint,
        heldout=heldout,
        mcq=mcq,
        eval_settings=config.eval.model_dump(mode="json"),
        precision={
            "device": device_type,
            "precision": "bf16" if bf16 else "fp32",
            "mixed_precision": config.train.mixed_precision,
        },
    )
    return base_eval_cache(default_cache_dir(config), components)


def windows_digest(windows: np.ndarray, num_bytes: int) -> str:
    """SHA-256 of evaluation windows (as int64) and their byte count."""
    digest = hashlib.sha256(np.ascontiguousarray(windows, dtype=np.int64).tobytes())
    digest.update(f"|{windows.shape}|{int(num_bytes)}".encode())
    return digest.hexdigest()


def questions_digest(items: list[dict[str, Any]]) -> str:
    """SHA-256 of a list of question records (canonical JSON)."""
    text = json.dumps(items, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hub_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library refuses is simply not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def _canonical(value: Any) -> Any:
    """`value` as JSON would read it back (tuples as lists), so stored and fresh components compare."""
    return json.loads(json.dumps(value, sort_keys=True))
