"""`forgetless eval`: evaluate any Hugging Face model directory on held-out text and question sets.

With a run config, the sources named in `eval.sources` are evaluated on their held-out splits with
the run's sequence length (its longest stage's, as the run evaluated), `eval.max_tokens`, `eval.batch_size`, device and precision, through the
same windows and scoring as training, so the final model of a run gives back the run's final
held-out losses. A file given with `--source NAME=PATH` is evaluated on all of its documents: the
split the data pipeline holds out first, then the rest, up to `--max-tokens` (default: all).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.config import ModelConfig, RunConfig, SourceConfig
from forgetless.data.shards import TokenStore
from forgetless.device import resolve_device
from forgetless.errors import UserError
from forgetless.evaluate.forward import windows_per_pass
from forgetless.evaluate.heldout import (
    document_end_token,
    evaluate_heldout,
    heldout_windows,
    losses_by_position,
    position_bucket_index,
)
from forgetless.evaluate.mcq import load_questions, mcq_batch_size, question_set_name, score_mcq
from forgetless.model.load import embedding_rows
from forgetless.model.positions import check_context_length

DEFAULT_SEQ_LEN = 1024
# lm-evaluation-harness's batch size when evaluation batches are sized automatically.
LM_EVAL_BATCH_SIZE = 8
DEFAULT_MCQ_TEMPLATE = "{question}\nAnswer:"


def parse_source_args(values: list[str]) -> dict[str, str]:
    """`NAME=PATH` (or a bare `PATH`, named after the file) -> {name: path}; names must be unique."""
    sources: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            path = value
            name = Path(value.rstrip("/")).name.split(".")[0]
        if not name or not path:
            raise UserError(f"--source {value!r}: expected NAME=PATH")
        if name in sources:
            raise UserError(f"--source {value!r}: the name {name!r} is given twice")
        sources[name] = path
    return sources


@dataclass
class EvalOptions:
    """What `forgetless eval` evaluates, and how: one field per option of the command. Settings
    left as None come from the run config when one is given, else from the defaults above."""

    sources: dict[str, str] = field(default_factory=dict)  # name -> file or folder: all its documents
    mcq: list[str] = field(default_factory=list)  # question sets beside the config's eval.mcq
    seq_len: int | None = None  # tokens per evaluation window
    max_tokens: int | None = None  # tokens per source
    batch_size: int | None = None  # windows per forward pass (None: eval.batch_size, else automatic)
    mcq_limit: int | None = None  # the first N questions of each set
    mcq_template: str = DEFAULT_MCQ_TEMPLATE
    mcq_few_shot: int = 0
    mcq_per_item: bool = False  # also each question's 0/1 outcome, for paired comparisons
    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_include: str | None = None  # a folder of local lm-eval task YAML files
    lm_eval_limit: int | None = None
    tokenizer: str | None = None  # default: the model directory's own
    device: str | None = None  # auto, cpu or cuda
    precision: str | None = None  # auto, bf16 or fp32
    allow_pickle: bool = False
    trust_remote_code: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.device not in (None, "auto", "cpu", "cuda"):
            raise UserError(f"--device {self.device}: expected auto, cpu or cuda")
        if self.precision not in (None, "auto", "bf16", "fp32"):
            raise UserError(f"--precision {self.precision}: expected auto, bf16 or fp32")


def evaluate_model(
    model_dir: str | os.PathLike[str], options: EvalOptions | None = None, *, config: RunConfig | None = None
) -> dict[str, Any]:
    """Evaluate the model in `model_dir` as `options` say; return the results as a JSON-ready dict.

    The dict holds the settings used and `heldout` ({source: loss, ppl, bpb, tokens, bytes}),
    `mcq` ({set: acc, acc_norm, their stderr, n; with `mcq_per_item`, 0/1 per item as `correct`
    and `correct_norm`}) and `lm_eval` ({task: {metric: value}}). With `config`, its
    `eval.sources` and `eval.mcq` are evaluated too, with its settings.
    """
    from forgetless.data.prepare import default_cache_dir, prepare_files, prepare_sources
    from forgetless.model.checkpoint import is_checkpoint, load_checkpoint_model
    from forgetless.model.load import build_model

    options = options or EvalOptions()
    mcq_limit, seq_len, batch_size = options.mcq_limit, options.seq_len, options.batch_size
    max_tokens = options.max_tokens
    if not Path(model_dir).is_dir():
        raise UserError(f"{model_dir}: model directory not found (give a Hugging Face model directory)")
    sources = dict(options.sources)
    config_sources = config.eval_sources if config is not None else []
    for name in sources:
        if name in config_sources:
            raise UserError(f"--source {name}: the config already evaluates a source of that name")
    mcq_refs = list(config.eval.mcq if config is not None else []) + list(options.mcq)
    if not (config_sources or sources or mcq_refs or options.lm_eval_tasks):
        raise UserError(
            "nothing to evaluate: give --config, --source NAME=PATH, --mcq REF or --lm-eval TASKS"
        )
    if mcq_limit is None and config is not None:
        mcq_limit = config.eval.mcq_limit
    # Read the question sets first: a bad file fails before the model is loaded.
    question_sets = {question_set_name(ref): load_questions(ref)[:mcq_limit] for ref in mcq_refs}

    train = config.train if config is not None else None
    dev, autocast_dtype = resolve_device(
        options.device or (train.device if train else "auto"),
        options.precision or (train.precision if train else "auto"),
    )
    if batch_size is None and config is not None:
        batch_size = windows_per_pass(config.eval.batch_size)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {batch_size}")

    if is_checkpoint(Path(model_dir)):  # a run's checkpoint folder, of either layout
        model, tokenizer = load_checkpoint_model(Path(model_dir))
        tokenizer_ref = tokenizer.name_or_path
        if options.tokenizer is not None:
            tokenizer, tokenizer_ref = _tokenizer(
                model_dir, options.tokenizer, config, options.trust_remote_code
            )
        model.to(dev)
    else:
        tokenizer, tokenizer_ref = _tokenizer(model_dir, options.tokenizer, config, options.trust_remote_code)
        model_config = ModelConfig(
            path=str(model_dir),
            allow_pickle=options.allow_pickle,
            trust_remote_code=options.trust_remote_code,
        )
        model = build_model(model_config, tokenizer).to(dev)
    model.eval()
    if seq_len is None:
        seq_len = config.eval_seq_len if config is not None else _default_seq_len(model)
    if seq_len < 2:
        raise UserError(f"--seq-len must be at least 2, got {seq_len}")
    check_context_length(model, seq_len, "--seq-len" if options.seq_len is not None else "train.seq_len")

    stores: dict[str, tuple[TokenStore, int | None]] = {}
    if config_sources:
        assert config is not None
        prepared = prepare_sources(
            config, tokenizer, sources=config_sources, progress=options.progress, model_rows=embedding_rows(model)
        )
        limit = max_tokens if max_tokens is not None else config.eval.max_tokens
        stores.update({name: (prepared[name].heldout, limit) for name in config_sources})
    for name, path in sources.items():
        one = prepare_files(
            name, SourceConfig(files=[path]), tokenizer, default_cache_dir(config), progress=options.progress
        )
        stores[name] = (_all_documents(one.heldout, one.train, max_tokens), max_tokens)

    heldout = {}
    for name, (store, limit) in stores.items():
        if store.num_documents == 0:
            raise UserError(f"source {name}: no documents to evaluate")
        windows, num_bytes = heldout_windows(store, seq_len=seq_len, max_tokens=limit or store.num_tokens)
        buckets = position_bucket_index(windows, document_end_token(store))
        result = evaluate_heldout(
            model, windows, num_bytes, batch_size=batch_size, device=dev, autocast_dtype=autocast_dtype, buckets=buckets
        )
        by_position = losses_by_position(result.pop("bucket_nll"), result.pop("bucket_tokens"), seq_len)
        heldout[name] = {**result, "loss_by_position": by_position["loss"], "tokens_by_position": by_position["tokens"]}

    mcq_results = {
        name: score_mcq(
            model,
            tokenizer,
            items,
            batch_size=mcq_batch_size(batch_size),
            template=options.mcq_template,
            few_shot=options.mcq_few_shot,
            device=dev,
            autocast_dtype=autocast_dtype,
            with_outcomes=options.mcq_per_item,
        )
        for name, items in question_sets.items()
    }

    lm_eval_results: dict[str, dict[str, float]] = {}
    if options.lm_eval_tasks:
        from forgetless.evaluate.lm_eval_bridge import run_lm_eval

        lm_eval_results = run_lm_eval(
            model,
            tokenizer,
            options.lm_eval_tasks,
            options.lm_eval_include,
            batch_size=batch_size or LM_EVAL_BATCH_SIZE,
            device=dev,
            limit=options.lm_eval_limit,
        )

    return {
        "model": str(Path(model_dir).resolve()),
        "tokenizer": tokenizer_ref,
        "device": str(dev),
        "precision": "bf16" if autocast_dtype == torch.bfloat16 else "fp32",
        "seq_len": seq_len,
        "max_tokens": max_tokens if max_tokens is not None else (config.eval.max_tokens if config else None),
        "batch_size": batch_size if batch_size is not None else "auto",
        "heldout": heldout,
        "mcq": mcq_results,
        "lm_eval": lm_eval_results,
    }


def _tokenizer(
    model_dir: str | os.PathLike[str], override: str | None, config: RunConfig | None, trust_remote_code: bool
) -> tuple[Any, str]:
    """The model directory's own tokenizer, unless one is named; else the config's."""
    from forgetless.model.load import TOKENIZER_FILES, load_tokenizer

    ref: str | None = override
    if ref is None:
        if any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES):
            ref = str(model_dir)
        elif config is not None and (config.tokenizer or config.model.path):
            ref = config.tokenizer or config.model.path
        else:
            raise UserError(f"{model_dir}: the model directory has no tokenizer; name one with --tokenizer")
    return load_tokenizer(ref, trust_remote_code=trust_remote_code), str(ref)


def _default_seq_len(model: torch.nn.Module) -> int:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return min(DEFAULT_SEQ_LEN, limit) if isinstance(limit, int) and limit > 1 else DEFAULT_SEQ_LEN


def _all_documents(first: TokenStore, second: TokenStore, max_tokens: int | None) -> TokenStore:
    """The documents of `first` then those of `second`, only as many of `second` as `max_tokens` needs."""
    if second.num_documents == 0 or (max_tokens is not None and first.num_tokens >= max_tokens):
        return first
    take = second.num_documents
    if max_tokens is not None:
        needed = max_tokens - first.num_tokens
        take = min(take, int(np.searchsorted(second.doc_offsets[1:], needed, side="right")) + 1)
    end = int(second.doc_offsets[take])
    dtype = np.promote_types(first.tokens.dtype, second.tokens.dtype)
    return TokenStore.from_arrays(
        np.concatenate([np.asarray(first.tokens, dtype=dtype), np.asarray(second.tokens[:end], dtype=dtype)]),
        np.concatenate([first.doc_offsets, second.doc_offsets[1 : take + 1] + first.num_tokens]),
        np.concatenate([first.doc_bytes, second.doc_bytes[:take]]),
    )


# ---------------------------------------------------------------------------------------------
# Output


def write_results(results: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the results as JSON (non-finite numbers as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(results), indent=2) + "\n", encoding="utf-8")


def print_results(results: dict[str, Any]) -> None:
    """Print the results as tables: held-out metrics, question sets, lm-eval tasks."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"model {results['model']} on {results['device']} ({results['precision']}), "
        f"seq_len {results['seq_len']}, batch {results['batch_size']}"
    )
    if results["heldout"]:
        table = Table(title="held-out text")
        for column in ("source", "loss (nats/token)", "ppl", "bits/byte", "tokens", "bytes"):
            table.add_column(column, justify="left" if column == "source" else "right")
        for name, r in results["heldout"].items():
            table.add_row(
                name,
                f"{r['loss']:.4f}",
                f"{r['ppl']:.2f}",
                f"{r['bpb']:.4f}",
                f"{r['tokens']:,}",
                f"{r['bytes']:,}",
            )
        console.print(table)
    if results["mcq"]:
        table = Table(title="multiple choice")
        for column in ("question set", "acc", "acc_norm", "n"):
            table.add_column(column, justify="left" if column == "question set" else "right")
        for name, r in results["mcq"].items():
            table.add_row(
                name,
                f"{r['acc']:.3f} ± {r['acc_stderr']:.3f}",
                f"{r['acc_norm']:.3f} ± {r['acc_norm_stderr']:.3f}",
                f"{r['n']:,}",
            )
        console.print(table)
    if results["lm_eval"]:
        table = Table(title="lm-evaluation-harness")
        for column in ("task", "metric", "value"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for task, metrics in results["lm_eval"].items():
            for metric, value in metrics.items():
                table.add_row(task, metric, f"{value:.4f}")
        console.print(table)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
