"""Throughput of `forgetless prepare` against the raw tokenizer and `datasets.map`, and of the sampler.

Three ways to tokenize the same corpus with the same tokenizer on one machine, each run in a fresh
Python process of its own (as a user would start it: no state carried from one run to the next,
such as `datasets` leaving `TOKENIZERS_PARALLELISM=false` in the process environment after a
multi-process `map`, which turns the tokenizer's own threads off):

- raw: `tokenizers.Tokenizer.encode_batch_fast` on texts already in memory, ids read back (the
  practical limit: no reading, no writing);
- prepare: `forgetless.data.prepare.prepare_sources` into an empty cache, end to end (reading the
  compressed files, parsing JSON, tokenizing, writing the shards and the held-out split);
- datasets: `datasets.load_dataset("json")` of the same files, then
  `Dataset.map(batched=True, num_proc=cores)` with the Hugging Face tokenizer, end to end (the map
  call alone is reported too).

Throughput counts content tokens (the EOS that prepare appends is not counted). Each path runs
`--repeats` times and the best run counts. Then the sampler assembles batches from the prepared
shards. Results go to `benchmarks/results/prepare_throughput.json`.

Corpus: the bundled corpora (train and held-out splits) with the bundled tokenizer. Without the
bundle (`--corpus stdlib`), documents are built from CPython's own files (the pydoc topics and the
standard library's modules) and a byte-level BPE of 8192 tokens is trained on them.

    python benchmarks/prepare_throughput.py [--corpus bundled|stdlib] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model
from machine import versions as package_versions

RESULTS = Path(__file__).resolve().parent / "results" / "prepare_throughput.json"
TARGETS = {"ratio_vs_raw": 0.8, "ratio_vs_datasets": 1.5, "sampler_tokens_per_s": 50e6}


def versions() -> dict[str, str]:
    return package_versions("numpy", "tokenizers", "transformers", "datasets", "forgetless")


# ---------------------------------------------------------------------------------------------
# Corpora


def bundled_corpus(work: Path) -> tuple[dict[str, list[Path]], Path, str]:
    from forgetless.data import bundled

    files = {}
    for name in bundled.CORPORA:
        files[name] = [bundled.corpus_path(name, "train"), bundled.corpus_path(name, "heldout")]
    return files, Path(bundled.tokenizer_dir()), "bundled corpora (" + ", ".join(bundled.CORPORA) + ")"


def stdlib_corpus(work: Path, max_bytes: int = 24 << 20) -> tuple[dict[str, list[Path]], Path, str]:
    """Documents from CPython's own files: pydoc topics, and the standard library's modules."""
    import sysconfig
    from pydoc_data.topics import topics

    docs = {"topics": [topics[k] for k in sorted(topics)], "stdlib": []}
    total = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        docs["stdlib"].append(text)
        total += len(text)
        if total > max_bytes:
            break
    files = {}
    for name, texts in docs.items():
        path = work / "corpus" / f"{name}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            for text in texts:
                fh.write(json.dumps({"text": text}) + "\n")
        files[name] = [path]
    tokenizer_dir = work / "tokenizer"
    train_tokenizer(tokenizer_dir, docs["topics"] + docs["stdlib"][:2000])
    return files, tokenizer_dir, "CPython pydoc topics + standard library modules (no bundle present)"


def train_tokenizer(out: Path, texts: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    eos = "<|endoftext|>"
    PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, bos_token=eos, pad_token=eos
    ).save_pretrained(out)


def read_texts(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh if line.strip())
    return [t for t in texts if t and not t.isspace()]


# ---------------------------------------------------------------------------------------------
# The three paths


def time_raw(backend, texts: list[str], batch: int = 4096) -> tuple[float, int]:
    encode = backend.encode_batch_fast
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(texts), batch):
        tokens += sum(len(e.ids) for e in encode(texts[i : i + batch], add_special_tokens=False))
    return time.perf_counter() - start, tokens


def time_prepare(files: dict[str, list[Path]], tokenizer, work: Path) -> tuple[float, int, dict]:
    from forgetless.config import config_from_dict
    from forgetless.data.prepare import prepare_sources

    cache = work / "prepare-cache"
    shutil.rmtree(cache, ignore_errors=True)
    first = next(iter(files))
    config = config_from_dict(
        {
            "model": {"path": "unused"},
            "sources": {name: {"files": [str(p) for p in paths]} for name, paths in files.items()},
            "stages": [{"name": "bench", "tokens": 1000, "mix": {first: 1.0}}],
            "cache_dir": str(cache),
        }
    )
    start = time.perf_counter()
    prepared = prepare_sources(config, tokenizer, progress=False)
    elapsed = time.perf_counter() - start
    content = sum(
        store.num_tokens - store.num_documents for p in prepared.values() for store in (p.train, p.heldout)
    )
    return elapsed, content, prepared


def time_datasets_map(files: list[Path], tokenizer, work: Path, cores: int) -> tuple[float, float, int]:
    """`load_dataset("json")` of the same files, then `map(batched=True, num_proc=cores)`.

    Returns the end-to-end seconds (loading included), the seconds of `map` alone, and the tokens.
    """
    import datasets

    datasets.disable_progress_bars()
    eos = tokenizer.eos_token_id

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [x + [eos] for x in ids]}

    cache = work / "datasets-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    start = time.perf_counter()
    ds = datasets.load_dataset(
        "json", data_files=[str(p) for p in files], split="train", cache_dir=str(cache)
    )
    map_start = time.perf_counter()
    out = ds.map(
        tokenize,
        batched=True,
        num_proc=cores,
        remove_columns=ds.column_names,
        cache_file_name=str(cache / "tokens.arrow"),
        load_from_cache_file=False,
    )
    end = time.perf_counter()
    lengths = out.with_format("numpy")["input_ids"]
    content = sum(len(x) - 1 for x in lengths)
    return end - start, end - map_start, content


def time_sampler(prepared: dict, seq_len: int, batch: int, seconds: float = 2.0) -> float:
    from forgetless.config import StageConfig
    from forgetless.data.sampler import MixtureSampler

    names = list(prepared)
    stores = {n: p.train for n, p in prepared.items()}
    mix = {names[0]: 1.0} if len(names) < 3 else {names[1]: 0.7, names[2]: 0.3}
    stage = StageConfig.model_validate(
        {"name": "bench", "tokens": 10**12, "mix": mix, "replay": {"from": names[0], "ratio": 0.05}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = MixtureSampler(stage, stores, seq_len, seed=0, max_epochs_warning=None)
    sampler.next_batch(batch)
    served, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.next_batch(batch)
        served += batch * seq_len
    return served / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# One timed run per process


def run_child(path: str, work: Path, out: Path) -> None:
    """Time one run of `path` (raw, prepare or datasets) on the corpus described in `work`; write
    `{"seconds", "tokens"[, "map_seconds"]}` to `out`."""
    from transformers import AutoTokenizer

    from forgetless.data.prepare import tokenizer_info

    corpus = json.loads((work / "corpus.json").read_text())
    files = {name: [Path(p) for p in paths] for name, paths in corpus["files"].items()}
    tokenizer = AutoTokenizer.from_pretrained(corpus["tokenizer_dir"])
    result: dict[str, float] = {}
    if path == "raw":
        texts = read_texts([p for paths in files.values() for p in paths])
        result["seconds"], result["tokens"] = time_raw(tokenizer_info(tokenizer).backend, texts)
    elif path == "prepare":
        result["seconds"], result["tokens"], _ = time_prepare(files, tokenizer, work)
    else:
        all_files = [p for paths in files.values() for p in paths]
        result["seconds"], result["map_seconds"], result["tokens"] = time_datasets_map(
            all_files, tokenizer, work, os.cpu_count() or 1
        )
    out.write_text(json.dumps(result), encoding="utf-8")


def time_in_child(path: str, work: Path, corpus: str) -> dict[str, float]:
    out = work / f"{path}.json"
    command = [sys.executable, __file__, "--corpus", corpus, "--child", path, "--work", str(work)]
    subprocess.run([*command, "--child-out", str(out)], check=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=["auto", "bundled", "stdlib"], default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["raw", "prepare", "datasets"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.work, args.child_out)
        return {"child": args.child}

    from transformers import AutoTokenizer

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="forgetless-bench-"))
    try:
        corpus = args.corpus
        if corpus == "auto":
            try:
                from forgetless.data import bundled

                bundled.corpus_path(bundled.CORPORA[0], "train")
                corpus = "bundled"
            except Exception:  # noqa: BLE001 - no bundle: fall back to the standard library
                corpus = "stdlib"
        files, tokenizer_dir, description = (bundled_corpus if corpus == "bundled" else stdlib_corpus)(work)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        texts = read_texts([p for paths in files.values() for p in paths])
        corpus_bytes = sum(len(t.encode("utf-8")) for t in texts)

        (work / "corpus.json").write_text(
            json.dumps(
                {
                    "files": {n: [str(p) for p in ps] for n, ps in files.items()},
                    "tokenizer_dir": str(tokenizer_dir),
                }
            )
        )
        raw, prep, dsm, dsm_only = [], [], [], []
        counts: dict[str, int] = {}
        paths = ["raw", "prepare", "datasets"]
        for repeat in range(args.repeats):  # interleaved and rotated: a busy moment hurts every path alike
            for path in paths[repeat % 3 :] + paths[: repeat % 3]:
                result = time_in_child(path, work, corpus)
                counts[path] = int(result["tokens"])
                {"raw": raw, "prepare": prep, "datasets": dsm}[path].append(result["seconds"])
                if path == "datasets":
                    dsm_only.append(result["map_seconds"])
        raw_tokens, prep_tokens, ds_tokens = counts["raw"], counts["prepare"], counts["datasets"]
        if not raw_tokens == prep_tokens == ds_tokens:
            raise SystemExit(
                f"token counts differ: raw {raw_tokens}, prepare {prep_tokens}, datasets {ds_tokens}"
            )
        _, _, prepared = time_prepare(files, tokenizer, work)  # for the sampler (not timed)

        seq_len = 1024
        sampler_rate = time_sampler(prepared, seq_len, batch=256)
        sampler_micro = time_sampler(prepared, seq_len, batch=8)
        raw_rate = raw_tokens / min(raw)
        prep_rate = prep_tokens / min(prep)
        ds_rate = ds_tokens / min(dsm)
        ds_map_rate = ds_tokens / min(dsm_only)
        results = {
            "raw_tokens_per_s": round(raw_rate),
            "prepare_tokens_per_s": round(prep_rate),
            "datasets_map_tokens_per_s": round(ds_rate),
            "ratio_vs_raw": round(prep_rate / raw_rate, 3),
            "ratio_vs_datasets": round(prep_rate / ds_rate, 3),
            "datasets_map_only_tokens_per_s": round(ds_map_rate),
            "ratio_vs_datasets_map_only": round(prep_rate / ds_map_rate, 3),
            "sampler_tokens_per_s": round(sampler_rate),
            "sampler_tokens_per_s_micro_batch_8": round(sampler_micro),
            "targets": TARGETS,
            "meets_targets": {
                "ratio_vs_raw": prep_rate / raw_rate >= TARGETS["ratio_vs_raw"],
                "ratio_vs_datasets": prep_rate / ds_rate >= TARGETS["ratio_vs_datasets"],
                "sampler_tokens_per_s": sampler_rate >= TARGETS["sampler_tokens_per_s"],
            },
            "seconds": {
                "raw": [round(s, 3) for s in raw],
                "prepare": [round(s, 3) for s in prep],
                "datasets_map": [round(s, 3) for s in dsm],
                "datasets_map_only": [round(s, 3) for s in dsm_only],
            },
            "corpus": {
                "description": description,
                "documents": len(texts),
                "bytes": corpus_bytes,
                "tokens": raw_tokens,
                "tokenizer_vocab": len(tokenizer),
            },
            "setup": {
                "raw": "tokenizers encode_batch_fast, batches of 4096 documents, texts in memory",
                "prepare": "prepare_sources into an empty cache: read .jsonl.gz, tokenize, write shards + held-out",
                "datasets_map": (
                    f'load_dataset("json") of the same files, then map(batched=True, num_proc={cores}) with '
                    "the HF tokenizer, writing Arrow; datasets_map_only times the map call alone"
                ),
                "sampler": f"MixtureSampler.next_batch of 256 x {seq_len + 1} tokens (and of 8), 5% replay",
                "repeats": args.repeats,
                "statistic": "best of the repeats",
                "processes": "every timed run in a fresh process",
                "median_seconds": {
                    "raw": statistics.median(raw),
                    "prepare": statistics.median(prep),
                    "datasets_map": statistics.median(dsm),
                    "datasets_map_only": statistics.median(dsm_only),
                },
            },
            "machine": {
                "cpu": cpu_model(),
                "cores": cores,
                "platform": platform.platform(),
                # Other work on the machine slows every path; the 1/5/15-minute load averages tell how much.
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "versions": versions(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        f"corpus: {description}: {len(texts):,} documents, {corpus_bytes / 1e6:.1f} MB, {raw_tokens:,} tokens"
    )
    print(f"{'path':<14}{'tokens/s':>14}{'ratio':>8}  target")
    print(f"{'raw':<14}{raw_rate:>14,.0f}{1.0:>8.2f}")
    print(f"{'prepare':<14}{prep_rate:>14,.0f}{prep_rate / raw_rate:>8.2f}  >= 0.8 x raw")
    print(
        f"{'datasets':<14}{ds_rate:>14,.0f}{ds_rate / raw_rate:>8.2f}  prepare >= 1.5 x this "
        f"({prep_rate / ds_rate:.2f}x; map alone {ds_map_rate:,.0f}, {prep_rate / ds_map_rate:.2f}x)"
    )
    print(
        f"{'sampler':<14}{sampler_rate:>14,.0f}          >= 50M (batch 256 x {seq_len}); "
        f"{sampler_micro:,.0f} at batch 8"
    )
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
