"""Reshaping the model for new text: what each reshaping transform does, measured on the demo setting.

Parts (`--part`, default: all of them); each writes its own results files:

- `vocab`: vocabulary extension (`{kind: extend_vocab}`, docs/transforms.md). The quick demo's base
  model (a 2-block Llama with tied embeddings, pretrained on the bundled general corpus with the
  bundled 8,192-token byte-level BPE) continues on the bundled `code` corpus, the new domain, for
  one stage without replay. Against that run with the base's own tokenizer, the same stage with
  `VOCAB_SIZES` tokens learned on the code corpus and added, each new row started by each of
  `VOCAB_INITS`. Every run sees the same training text in bytes, so the extended runs take fewer
  tokens (the stage's tokens are the baseline's times the ratio of tokens per byte on code training
  text, to a whole optimizer step). Measured, all in bits per byte on the same held-out documents
  (whole documents of each bundled held-out split, chosen once with the base tokenizer):
  fertility (tokens per byte and per word) on code before and after; the jump at step 0 (the
  transformed model before any training, against the base with its own tokenizer); learning on
  code (base - final) and forgetting on general (final - base). Writes
  `benchmarks/results/reshape_vocab.json` and `.md`.

    python benchmarks/reshape.py [--part vocab] [--keep DIR]
    python benchmarks/reshape.py --part vocab --sizes 1024 --inits subtoken_mean   # a subset
    python benchmarks/reshape.py --part vocab --render    # rewrite the .md from the .json

- `context`: a longer context (`{kind: rope}` and stages of their own `seq_len`, docs/transforms.md).
  The quick demo's base model (a 2-block Llama pretrained on the bundled general corpus at 128
  tokens, `max_position_embeddings` 128) follows a length curriculum on the bundled general corpus,
  its own domain, so that only the length changes: `CONTEXT_STAGES` (256 tokens, then 1024 with a
  quarter of the steps cut back to 256), once with RoPE's base frequency raised from 10,000 to
  `CONTEXT_THETA` (adjusted base frequency) and once with it kept (the same curriculum, only
  `max_position_embeddings` raised). Every evaluation scores the same held-out windows of 1024
  tokens, and reports the loss by position in the document (0-128, 128-256, 256-512 and 512-1024
  tokens of the document before the predicted token). Measured: that table for the base, the base
  with theta raised (before training), and each run after each stage. Writes
  `benchmarks/results/reshape_context.json` and `.md`.

    python benchmarks/reshape.py [--part context] [--keep DIR]
    python benchmarks/reshape.py --part context --render    # rewrite the .md from the .json

A part's functions are named after it (`vocab_*`, `context_*`); a new part adds its functions and an
entry in `PARTS`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# ---------------------------------------------------------------------------------------------
# Vocabulary extension

VOCAB_SIZES = (1024, 4096)
VOCAB_INITS = ("subtoken_mean", "mean_noise", "random", "zero")
VOCAB_BASELINE_TOKENS = 65_536  # the baseline stage: 16 optimizer steps of 4,096 tokens (the quick demo's)
VOCAB_BATCH_TOKENS = 4096
VOCAB_SEQ_LEN = 128
VOCAB_SAMPLE_BYTES = 2_000_000  # code training text the tokens are learned from
VOCAB_EVAL_TOKENS = 16_384  # held-out tokens per source (base tokenizer), whole documents
VOCAB_SCHEDULE = {"kind": "cosine", "peak_lr": 3e-3, "warmup": 0.02, "final_lr_ratio": 0.1}


def vocab_config(base: Path, out: Path, transforms: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    """The stage on code: the demo's schedule and batch, no replay, evaluated at its start and end."""
    return {
        "model": {"path": str(base), "transforms": transforms},
        "tokenizer": str(base),
        "sources": {"general": "bundled:general", "code": "bundled:code"},
        "stages": [{"name": "code", "tokens": tokens, "mix": {"code": 1.0}, "schedule": dict(VOCAB_SCHEDULE)}],
        "train": {
            "seq_len": VOCAB_SEQ_LEN,
            "batch_tokens": VOCAB_BATCH_TOKENS,
            "micro_batch": 16,
            "seed": 0,
        },
        "eval": {"sources": ["general", "code"], "max_tokens": VOCAB_EVAL_TOKENS, "dense_start": []},
        "output": {"dir": str(out)},
    }


def vocab_extension(size: int, init: str) -> list[dict[str, Any]]:
    return [{"kind": "extend_vocab", "from": "code", "new_tokens": size, "init": init, "sample_bytes": VOCAB_SAMPLE_BYTES}]


def vocab_heldout_texts(tokenizer: Any) -> dict[str, list[str]]:
    """Per source, the held-out documents every model is measured on: those the run's own selection
    takes with the base tokenizer (`sample_heldout(..., whole_only=True)` over the bundled split)."""
    import numpy as np

    from forgetless.data.bundled import iter_documents
    from forgetless.evaluate.heldout import sample_heldout

    chosen: dict[str, list[str]] = {}
    for name in ("general", "code"):
        docs = list(iter_documents(name, "heldout"))
        texts = [d["text"] for d in docs]
        store = vocab_store(tokenizer, texts, [d.get("source") for d in docs])
        sample = sample_heldout(store, seq_len=VOCAB_SEQ_LEN, max_tokens=VOCAB_EVAL_TOKENS, whole_only=True)
        chosen[name] = [texts[i] for i in np.asarray(sample.document_indices).tolist()]
    return chosen


def vocab_store(tokenizer: Any, texts: list[str], subsources: list[str | None] | None = None) -> Any:
    """`texts` as the data pipeline stores them: each document's tokens, then EOS."""
    import numpy as np

    from forgetless.data.shards import TokenStore

    tokens: list[int] = []
    offsets = [0]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for ids in encoded:
        tokens.extend(ids)
        tokens.append(tokenizer.eos_token_id)
        offsets.append(len(tokens))
    sizes = [len(t.encode("utf-8")) for t in texts]
    return TokenStore.from_arrays(np.array(tokens, dtype=np.int64), np.array(offsets), np.array(sizes), subsources)


def vocab_bits_per_byte(model_dir: Path, texts: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Bits per byte (`bpb`) and nats per token (`loss`) of the HF model in `model_dir`, with its own
    tokenizer, on each source's texts."""
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetless.evaluate.heldout import evaluate_heldout, sample_heldout

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    out = {}
    for name, docs in texts.items():
        store = vocab_store(tokenizer, docs)
        sample = sample_heldout(
            store, seq_len=VOCAB_SEQ_LEN, max_tokens=store.num_tokens, documents=np.arange(len(docs))
        )
        result = evaluate_heldout(model, sample.windows, sample.num_bytes, batch_size=16, device="cpu")
        out[name] = {"bpb": result["bpb"], "loss": result["loss"], "tokens": result["tokens"]}
    return out


def vocab_train_tokens_per_byte(base: Path, size: int | None, config: Any) -> float:
    """Tokens per byte of (up to 2 MB of) code training text under the base tokenizer, or under the
    tokenizer a run with `size` new tokens learns (the same tokens the run learns: same text)."""
    from transformers import AutoTokenizer

    from forgetless.data.prepare import prepare_sources
    from forgetless.evaluate.fertility import fertility
    from forgetless.model.vocab import extended_tokenizer_json, learn_tokens, with_backend
    from forgetless.train.tokenizer_change import document_texts

    tokenizer = AutoTokenizer.from_pretrained(base)
    train = prepare_sources(config, tokenizer, sources=["code"], progress=False)["code"].train
    if size is not None:
        texts = document_texts(tokenizer, train, VOCAB_SAMPLE_BYTES)
        learned = learn_tokens(tokenizer.backend_tokenizer, texts, size)
        tokenizer = with_backend(tokenizer, extended_tokenizer_json(tokenizer.backend_tokenizer, learned)[0])
    return float(fertility(tokenizer, document_texts(tokenizer, train, 2_000_000))["tokens_per_byte"])


def vocab_main(args: argparse.Namespace) -> None:
    import torch
    from machine import machine_record

    from forgetless.config import config_from_dict
    from forgetless.demo import QUICK, build_base
    from forgetless.train.run import run_training

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(QUICK, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-reshape-vocab-"))
    root.mkdir(parents=True, exist_ok=True)
    from transformers import AutoTokenizer

    base_tokenizer = AutoTokenizer.from_pretrained(base)
    texts = vocab_heldout_texts(base_tokenizer)
    base_eval = vocab_bits_per_byte(base, texts)
    base_bpb = {name: value["bpb"] for name, value in base_eval.items()}
    probe = config_from_dict(vocab_config(base, root / "probe", [], VOCAB_BASELINE_TOKENS))
    per_byte = {None: vocab_train_tokens_per_byte(base, None, probe)}
    train_bytes = VOCAB_BASELINE_TOKENS / per_byte[None]

    rows = []
    plans: list[tuple[str, int | None, str | None]] = [("no extension", None, None)]
    plans += [(f"+{size} {init}", size, init) for size in args.sizes for init in args.inits]
    for name, size, init in plans:
        if size not in per_byte:
            per_byte[size] = vocab_train_tokens_per_byte(base, size, probe)
        steps = max(1, round(train_bytes * per_byte[size] / VOCAB_BATCH_TOKENS))
        transforms = [] if size is None else vocab_extension(size, init or "subtoken_mean")
        out = root / name.replace(" ", "-").replace("+", "add")
        run_started = time.monotonic()
        run = run_training(config_from_dict(vocab_config(base, out, transforms, steps * VOCAB_BATCH_TOKENS)), quiet=True)
        wall = time.monotonic() - run_started
        final_eval = vocab_bits_per_byte(run / "final", texts)
        final = {name: value["bpb"] for name, value in final_eval.items()}
        summary = json.loads((run / "summary.json").read_text())
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        start = next(r for r in lines if r["kind"] == "run_start")
        change = start.get("tokenizer") or {}
        fert = (change.get("fertility") or {}).get("code") or {}
        row = {
            "name": name,
            "new_tokens": size or 0,
            "init": init,
            "stage_tokens": steps * VOCAB_BATCH_TOKENS,
            "train_bytes_estimate": round(steps * VOCAB_BATCH_TOKENS / per_byte[size]),
            "code_train_tokens_per_byte": per_byte[size],
            "fertility_code": fert or None,
            "fertility_general": ((change.get("fertility") or {}).get("general")) or None,
            "jump_bpb": {s: v.get("transform_jump_bpb") for s, v in summary["sources"].items()}
            if size is not None
            else {"general": 0.0, "code": 0.0},
            "final_bpb": final,
            "final_loss_nats_per_token": {name: value["loss"] for name, value in final_eval.items()},
            "learning_code_bpb": base_bpb["code"] - final["code"],
            "forgetting_general_bpb": final["general"] - base_bpb["general"],
            "ledger": {k: summary.get(k) for k in ("units", "learning", "forgetting")},
            "base_bpb_in_run": {s: (change.get("base") or {}).get(s, {}).get("bpb") for s in texts} if size else None,
            "wall_s": wall,
        }
        rows.append(row)
        print(
            f"{name}: {row['stage_tokens']} tokens; jump {row['jump_bpb']}; learning {row['learning_code_bpb']:+.4f}; "
            f"forgetting {row['forgetting_general_bpb']:+.4f} bits/byte ({wall:.0f}s)",
            flush=True,
        )
    result = {
        "kind": "reshape_vocab_benchmark",
        "machine": machine_record("torch", "transformers", "tokenizers", "forgetless"),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "settings": {
            "base": f"quick demo base ({QUICK.num_layers} layers, hidden {QUICK.hidden_size}, tied embeddings)",
            "baseline_tokens": VOCAB_BASELINE_TOKENS,
            "train_bytes": round(train_bytes),
            "batch_tokens": VOCAB_BATCH_TOKENS,
            "seq_len": VOCAB_SEQ_LEN,
            "schedule": VOCAB_SCHEDULE,
            "sample_bytes": VOCAB_SAMPLE_BYTES,
            "eval_tokens": VOCAB_EVAL_TOKENS,
            "eval_documents": {s: len(t) for s, t in texts.items()},
            "eval_bytes": {s: sum(len(x.encode("utf-8")) for x in t) for s, t in texts.items()},
            "sizes": list(args.sizes),
            "inits": list(args.inits),
        },
        "base_bpb": base_bpb,
        "base_loss_nats_per_token": {name: value["loss"] for name, value in base_eval.items()},
        "uniform_nats_per_token": math.log(len(base_tokenizer)),  # a guess that knows nothing
        "rows": rows,
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reshape_vocab.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "reshape_vocab.md").write_text(vocab_markdown(result), encoding="utf-8")
    print(f"wall time {result['wall_s']:.0f}s; wrote {RESULTS / 'reshape_vocab.json'} and .md")


def vocab_table(result: dict[str, Any]) -> str:
    """The results table (Markdown), as docs and the README quote it."""
    lines = [
        "| run | code tokens/byte | stage tokens | jump at step 0, code | jump, general | learning (code) | "
        "of which training (code) | forgetting (general) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        fert = row["fertility_code"]
        per_byte = fert["after"]["tokens_per_byte"] if fert else None
        if per_byte is None:  # the baseline: the base tokenizer's, measured in the first extended run
            per_byte = next((r["fertility_code"]["before"]["tokens_per_byte"] for r in result["rows"] if r["fertility_code"]), None)
        jump = row["jump_bpb"]
        lines.append(
            f"| {row['name']} | {_f(per_byte, 3)} | {row['stage_tokens']:,} | {_f(jump.get('code'), 4, True)} | "
            f"{_f(jump.get('general'), 4, True)} | {_f(row['learning_code_bpb'], 4, True)} | "
            f"{_f(row['learning_code_bpb'] + jump.get('code', 0.0), 4, True)} | "
            f"{_f(row['forgetting_general_bpb'], 4, True)} |"
        )
    return "\n".join(lines)


def vocab_markdown(result: dict[str, Any]) -> str:
    machine, settings = result["machine"], result["settings"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average_at_start"])
    first = next((r for r in result["rows"] if r["fertility_code"]), None)
    fert_text = ""
    if first:
        before = first["fertility_code"]["before"]
        fert_text = (
            f" With the base tokenizer, held-out code takes {before['tokens_per_byte']:.3f} tokens per byte "
            f"({before['tokens_per_word']:.2f} per whitespace-separated word)."
        )
    fertility_rows = []
    if first:
        fertility_rows.append(vocab_fertility_row("base tokenizer", first, "before"))
    for size in settings["sizes"]:
        row = next((r for r in result["rows"] if r["new_tokens"] == size and r["fertility_code"]), None)
        if row:
            fertility_rows.append(vocab_fertility_row(f"+{size} tokens", row, "after"))
    return "\n".join(
        [
            "# Vocabulary extension on the demo setting",
            "",
            f"Written by `benchmarks/reshape.py --part vocab` on {machine['date']}: {machine['cpu']}, "
            f"{machine['cores']} cores (shared; load average {load} at the start), torch {machine['torch']}, "
            f"transformers {machine['transformers']}, tokenizers {machine['tokenizers']}, forgetless "
            f"{machine['forgetless']}; {result['wall_s'] / 60:.1f} minutes in all.",
            "",
            f"The {settings['base']}, continued on the bundled code corpus for one stage (cosine to "
            f"{settings['schedule']['peak_lr']:g}, batches of {settings['batch_tokens']:,} tokens of "
            f"{settings['seq_len']}, no replay) over the same training text for every run: about "
            f"{settings['train_bytes']:,} bytes, {settings['baseline_tokens']:,} tokens with the base tokenizer "
            f"(an extended tokenizer needs fewer). New tokens learned on the first {settings['sample_bytes']:,} "
            "bytes of code training text. All losses in bits per byte, every model with its own tokenizer, on "
            f"the same held-out documents ({settings['eval_documents']['code']} of code, "
            f"{settings['eval_documents']['general']} of general; {settings['eval_bytes']['code']:,} and "
            f"{settings['eval_bytes']['general']:,} bytes). Base: code {result['base_bpb']['code']:.4f}, "
            f"general {result['base_bpb']['general']:.4f} bits per byte{vocab_base_tokens_text(result)}.{fert_text}",
            "",
            "Jump at step 0: the transformed model before training minus the base (positive: worse). "
            "Learning: base minus final on code; of which training: the model at step 0 minus final (learning "
            "plus the jump). Forgetting: final minus base on general. One seed.",
            "",
            vocab_table(result),
            "",
            "Fertility on held-out text (tokens per UTF-8 byte and per whitespace-separated word):",
            "",
            "| tokenizer | code tokens/byte | code tokens/word | general tokens/byte | general tokens/word |",
            "|---|---:|---:|---:|---:|",
            *fertility_rows,
            "",
        ]
    )


def vocab_base_tokens_text(result: dict[str, Any]) -> str:
    loss = result.get("base_loss_nats_per_token")
    if not loss:
        return ""
    return (
        f" ({loss['code']:.2f} and {loss['general']:.2f} nats per token of the base tokenizer, against "
        f"{result['uniform_nats_per_token']:.2f} for a uniform guess over its vocabulary)"
    )


def vocab_fertility_row(label: str, row: dict[str, Any], when: str) -> str:
    code, general = row["fertility_code"][when], (row["fertility_general"] or {}).get(when) or {}
    return (
        f"| {label} | {_f(code.get('tokens_per_byte'), 3)} | {_f(code.get('tokens_per_word'), 2)} | "
        f"{_f(general.get('tokens_per_byte'), 3)} | {_f(general.get('tokens_per_word'), 2)} |"
    )


def _f(value: Any, digits: int, signed: bool = False) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def vocab_render(args: argparse.Namespace) -> None:
    result = json.loads((RESULTS / "reshape_vocab.json").read_text())
    (RESULTS / "reshape_vocab.md").write_text(vocab_markdown(result), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Long context

CONTEXT_THETA = 500_000.0  # Xiong et al. 2023's value for Llama 2 Long (from 10,000)
CONTEXT_BATCH_TOKENS = 4096
CONTEXT_STAGES = (  # (name, seq_len, tokens, short_share)
    ("seq256", 256, 65_536, 0.0),
    ("seq1024", 1024, 131_072, 0.25),
)
CONTEXT_SCHEDULE = {"kind": "cosine", "peak_lr": 1e-3, "warmup": 0.05, "final_lr_ratio": 0.1}
CONTEXT_EVAL_TOKENS = 32_768  # held-out tokens of general, in windows of the longest stage
CONTEXT_RUNS = {  # name -> the RoPE transform
    "theta raised": {"kind": "rope", "theta": CONTEXT_THETA},
    "theta kept": {"kind": "rope", "theta": 10_000.0, "max_position_embeddings": 1024},
}


def context_config(base: Path, out: Path, rope: dict[str, Any]) -> dict[str, Any]:
    """The curriculum on general: the demo base's batch, evaluated at the base and each stage's end."""
    stages = [
        {
            "name": name,
            "tokens": tokens,
            "mix": {"general": 1.0},
            "schedule": dict(CONTEXT_SCHEDULE),
            "seq_len": seq_len,
            "short_share": short_share,
        }
        for name, seq_len, tokens, short_share in CONTEXT_STAGES
    ]
    return {
        "model": {"path": str(base), "transforms": [rope]},
        "tokenizer": str(base),
        "sources": {"general": "bundled:general"},
        "stages": stages,
        "train": {"seq_len": 128, "batch_tokens": CONTEXT_BATCH_TOKENS, "micro_batch": 16, "seed": 0},
        "eval": {"sources": ["general"], "max_tokens": CONTEXT_EVAL_TOKENS, "dense_start": []},
        "output": {"dir": str(out)},
    }


def context_points(run_dir: Path) -> list[dict[str, Any]]:
    """The run's evaluations: where (base, or a stage's end), the loss, and the loss and tokens by position."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "point": "base" if r["point"] == "base" else f"after {r['stage']}",
            "tokens": r["tokens"],
            "loss": r["eval/general/loss"],
            "loss_by_position": r["eval/general/loss_by_position"],
            "tokens_by_position": r["eval/general/tokens_by_position"],
        }
        for r in lines
        if r.get("kind") == "eval"
    ]


def context_main(args: argparse.Namespace) -> None:
    from machine import machine_record

    from forgetless.config import config_from_dict
    from forgetless.demo import QUICK, build_base
    from forgetless.train.run import run_training

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(QUICK, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-reshape-context-"))
    root.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, rope in CONTEXT_RUNS.items():
        run_started = time.monotonic()
        run = run_training(
            config_from_dict(context_config(base, root / name.replace(" ", "-"), rope)), quiet=True
        )
        runs[name] = {"rope": rope, "points": context_points(run), "wall_s": time.monotonic() - run_started}
        last = runs[name]["points"][-1]
        print(
            f"{name}: final loss {last['loss']:.4f} by position {last['loss_by_position']} "
            f"({runs[name]['wall_s']:.0f}s)",
            flush=True,
        )
    result = {
        "kind": "reshape_context_benchmark",
        "machine": machine_record("torch", "transformers", "forgetless"),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "settings": {
            "base": f"quick demo base ({QUICK.num_layers} layers, hidden {QUICK.hidden_size}, trained at "
            f"{QUICK.seq_len} tokens)",
            "stages": [
                {"name": n, "seq_len": s, "tokens": t, "short_share": sh} for n, s, t, sh in CONTEXT_STAGES
            ],
            "batch_tokens": CONTEXT_BATCH_TOKENS,
            "schedule": CONTEXT_SCHEDULE,
            "eval_tokens": CONTEXT_EVAL_TOKENS,
            "theta": CONTEXT_THETA,
        },
        "runs": runs,
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reshape_context.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "reshape_context.md").write_text(context_markdown(result), encoding="utf-8")
    print(f"wall time {result['wall_s']:.0f}s; wrote {RESULTS / 'reshape_context.json'} and .md")


def context_table(result: dict[str, Any]) -> str:
    """The results table (Markdown), as docs and the README quote it: held-out loss (nats per token)
    by position in the document, at the base and after each stage of each run."""
    raised, kept = result["runs"]["theta raised"]["points"], result["runs"]["theta kept"]["points"]
    columns = [("base", kept[0]), ("base, theta raised", raised[0])]
    for point in raised[1:]:
        columns.append((f"theta raised, {point['point']}", point))
    columns.append((f"theta kept, {kept[-1]['point']}", kept[-1]))
    buckets = list(kept[0]["loss_by_position"])
    lines = [
        "| tokens into the document | tokens | " + " | ".join(name for name, _ in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for bucket in buckets:
        cells = [_f(point["loss_by_position"][bucket], 3) for _, point in columns]
        lines.append(f"| {bucket} | {kept[0]['tokens_by_position'][bucket]:,} | " + " | ".join(cells) + " |")
    lines.append(
        "| all | "
        + f"{sum(kept[0]['tokens_by_position'].values()):,} | "
        + " | ".join(_f(point["loss"], 3) for _, point in columns)
        + " |"
    )
    return "\n".join(lines)


def context_markdown(result: dict[str, Any]) -> str:
    machine, settings = result["machine"], result["settings"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average_at_start"])
    stages = ", then ".join(
        f"{s['tokens']:,} tokens at {s['seq_len']}"
        + (f" ({s['short_share']:.0%} of the steps at the previous length)" if s["short_share"] else "")
        for s in settings["stages"]
    )
    return "\n".join(
        [
            "# A length curriculum with RoPE's base frequency raised, on the demo setting",
            "",
            f"Written by `benchmarks/reshape.py --part context` on {machine['date']}: {machine['cpu']}, "
            f"{machine['cores']} cores (shared; load average {load} at the start), torch {machine['torch']}, "
            f"transformers {machine['transformers']}, forgetless {machine['forgetless']}; "
            f"{result['wall_s'] / 60:.1f} minutes in all.",
            "",
            f"The {settings['base']} continues on the bundled general corpus, its own domain: {stages}; "
            f"batches of {settings['batch_tokens']:,} tokens, each stage a cosine schedule to "
            f'{settings["schedule"]["peak_lr"]:g}. "theta raised": RoPE\'s base frequency 10,000 -> '
            f'{settings["theta"]:,.0f} first; "theta kept": the same curriculum with 10,000. Held-out loss '
            f"(nats per token) on the same {settings['eval_tokens']:,} held-out tokens of general in windows "
            "of 1024, by the number of tokens of its document before the predicted token in its window "
            "(positions the base never saw in training lie past 128). One seed.",
            "",
            context_table(result),
            "",
        ]
    )


def context_render(args: argparse.Namespace) -> None:
    result = json.loads((RESULTS / "reshape_context.json").read_text())
    (RESULTS / "reshape_context.md").write_text(context_markdown(result), encoding="utf-8")


# ---------------------------------------------------------------------------------------------

PARTS: dict[str, tuple[Callable[[argparse.Namespace], None], Callable[[argparse.Namespace], None]]] = {
    "vocab": (vocab_main, vocab_render),
    "context": (context_main, context_render),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append", help="the parts to run (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--render", action="store_true", help="rewrite the .md files from the .json files")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(VOCAB_SIZES), help="vocab: new tokens")
    parser.add_argument("--inits", nargs="+", default=list(VOCAB_INITS), help="vocab: initialisers")
    args = parser.parse_args()
    for part in args.part or sorted(PARTS):
        run, render = PARTS[part]
        (render if args.render else run)(args)


if __name__ == "__main__":
    main()
