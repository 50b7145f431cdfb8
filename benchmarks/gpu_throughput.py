"""Training throughput on one GPU: forgetless against the Hugging Face Trainer, in one run.

For each model (random-init Llama: 134M = 12 x 768; 1.1B = 16 x 2048, 32 heads / 8 KV heads, FFN
8192; vocab 32000, sequence 2048, bf16, SDPA attention, fused AdamW) it measures:

- `hf_trainer_default`: the Trainer as configured by most users (bf16=True, no compile);
- `hf_trainer`: the Trainer tuned by a careful user (torch_compile=True) at each micro-batch in
  `--hf-micro-batches`; the best of these is the baseline;
- `forgetless`: `forgetless train` (the real command path: config, prepare, loop) at each
  micro-batch in `--fl-micro-batches`, with compiled blocks and the fused linear + cross-entropy.

Every configuration runs in its own process (clean memory and compile caches) with a time limit,
warms up, then times steps with a device synchronisation at each step end; the median step time
gives tokens/s. MFU = tokens/s x (6 x non-embedding params + 12 x layers x hidden x seq) / peak,
with the peak measured in the same run as an 8192^3 bf16 matrix product. Results go to
`benchmarks/results/gpu_throughput.json` (or --out) and a table is printed last.

    python benchmarks/gpu_throughput.py                       # both models, on the GPU
    python benchmarks/gpu_throughput.py --models llama-134m   # one model
    python benchmarks/gpu_throughput.py --toy                 # a tiny check of the script on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "llama-134m": dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12, intermediate_size=2048),
    "llama-1.1b": dict(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192),
    "toy": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128),
}
DEFAULT_MICRO_BATCHES = {
    "llama-134m": {"hf_default": 16, "hf": [16, 32], "fl": [16, 32]},
    "llama-1.1b": {"hf_default": 8, "hf": [8, 16], "fl": [8, 16]},
    "toy": {"hf_default": 2, "hf": [2], "fl": [2]},
}
VOCAB = 32000


# ---------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line


def _llama_config(sizes: dict, seq_len: int, vocab: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=sizes["hidden_size"],
        num_hidden_layers=sizes["num_layers"],
        num_attention_heads=sizes["num_heads"],
        num_key_value_heads=sizes["num_kv_heads"],
        intermediate_size=sizes["intermediate_size"],
        max_position_embeddings=seq_len,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )


def flops_per_token(model, seq_len: int) -> tuple[int, int]:
    """(non-embedding parameters, training FLOPs per token) as defined in PERFORMANCE.md."""
    embedding = model.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in model.parameters()) - embedding
    cfg = model.config
    return params, 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


def worker_peak(_: dict) -> dict:
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"peak_tflops": 2 * n**3 / statistics.median(times) / 1e12}


def worker_hf(job: dict) -> dict:
    import torch
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    seq_len, mb, device = job["seq_len"], job["micro_batch"], job["device"]
    steps = job["warmup"] + job["timed"]
    config = _llama_config(MODELS[job["model"]], seq_len, job["vocab"])
    model = LlamaForCausalLM(config)
    params, fpt = flops_per_token(model, seq_len)
    gen = torch.Generator().manual_seed(1)
    data = torch.randint(0, job["vocab"], (steps * mb, seq_len), generator=gen)

    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": data[i], "labels": data[i]}

    step_times: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=mb,
            gradient_accumulation_steps=1,
            max_steps=steps,
            learning_rate=3e-4,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, steps // 10),
            weight_decay=0.1,
            adam_beta2=0.95,
            max_grad_norm=1.0,
            optim="adamw_torch_fused" if device == "cuda" else "adamw_torch",
            bf16=device == "cuda",
            torch_compile=job["compile"],
            logging_steps=max(1, steps // 3),
            save_strategy="no",
            report_to=[],
            dataloader_num_workers=2 if device == "cuda" else 0,
            dataloader_pin_memory=device == "cuda",
            use_cpu=device != "cuda",
            seed=0,
        )
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[Clock()]).train()
    timed = step_times[job["warmup"] :]
    step_s = statistics.median(timed)
    return {
        "tokens_per_s": mb * seq_len / step_s,
        "step_s": step_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "non_embedding_params": params,
        "flops_per_token": fpt,
        "losses": losses,
    }


def _word_tokenizer(folder: Path, vocab: int) -> Path:
    """A word-level tokenizer with `vocab` entries: one token per word, so random words = random ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<|endoftext|>": 0, **{f"w{i}": i for i in range(1, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return folder


def worker_forgetless(job: dict) -> dict:
    import numpy as np
    import torch

    from forgetless.config import config_from_dict
    from forgetless.train.run import run_training

    seq_len, mb, device = job["seq_len"], job["micro_batch"], job["device"]
    steps = job["warmup"] + job["timed"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tokenizer = _word_tokenizer(tmp_path / "tokenizer", job["vocab"])
        rng = np.random.default_rng(1)
        docs = (steps * mb * (seq_len + 1)) // 4096 + 2
        with open(tmp_path / "random.txt", "w") as fh:  # one document per line: 4096 random words
            for _ in range(docs):
                fh.write(" ".join(f"w{i}" for i in rng.integers(1, job["vocab"], 4096)) + "\n")
        (tmp_path / "data").mkdir()
        lines = (tmp_path / "random.txt").read_text().splitlines()
        with open(tmp_path / "data" / "random.jsonl", "w") as fh:
            for line in lines:
                fh.write(json.dumps({"text": line}) + "\n")
        sizes = MODELS[job["model"]]
        config = config_from_dict(
            {
                "model": {
                    "init": {
                        "architecture": "llama",
                        **sizes,
                        "max_position_embeddings": seq_len,
                        "tie_word_embeddings": False,
                        "extra": {"attn_implementation": "sdpa"},
                    }
                },
                "tokenizer": str(tokenizer),
                "sources": {
                    "random": {
                        "files": [str(tmp_path / "data" / "random.jsonl")],
                        "heldout": {"documents": 1},
                    }
                },
                "stages": [
                    {
                        "name": "bench",
                        "tokens": steps * mb * seq_len,
                        "mix": {"random": 1.0},
                        "schedule": {"kind": "cosine", "peak_lr": 3e-4, "warmup": 0.1},
                    }
                ],
                "train": {
                    "seq_len": seq_len,
                    "batch_tokens": mb * seq_len,
                    "micro_batch": mb,
                    "precision": "bf16" if device == "cuda" else "fp32",
                    "compile": job["compile"],
                    "device": device,
                    "log_every_steps": 1,
                },
                "eval": {"sources": [], "dense_start": []},
                "output": {"dir": str(tmp_path / "run")},
                "cache_dir": str(tmp_path / "cache"),
            }
        )
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run_dir = run_training(config, quiet=True)
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    timed = train[job["warmup"] :]
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in timed)
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        params, fpt = flops_per_token(LlamaForCausalLM(_llama_config(sizes, seq_len, job["vocab"])), seq_len)
    return {
        "tokens_per_s": tokens_per_s,
        "step_s": mb * seq_len / tokens_per_s,
        "peak_mem_gib": max((r.get("peak_mem_gib") or 0.0) for r in train) if device == "cuda" else None,
        "non_embedding_params": params,
        "flops_per_token": fpt,
        "losses": [r["loss"] for r in train[:: max(1, len(train) // 3)]],
    }


WORKERS = {"peak": worker_peak, "hf": worker_hf, "forgetless": worker_forgetless}


# ---------------------------------------------------------------------------------------------
# Driver


def run_job(job: dict, timeout: float) -> dict:
    """Run one job in a fresh process; OOM, crash and timeout come back as results, not exceptions."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            result["wall_s"] = wall
            return result
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    oom = any("OutOfMemoryError" in x or "out of memory" in x for x in (proc.stderr or "").splitlines())
    return {"error": "out of memory" if oom else " | ".join(tail), "wall_s": wall}


def versions() -> dict:
    import torch
    import transformers

    import forgetless

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "forgetless": forgetless.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="llama-134m,llama-1.1b")
    parser.add_argument("--toy", action="store_true", help="tiny model on CPU: checks the script, not speed")
    parser.add_argument(
        "--warmup", type=int, default=4, help="steps excluded from timing (compile happens here)"
    )
    parser.add_argument("--timed", type=int, default=8, help="timed steps; the median step is reported")
    parser.add_argument("--job-timeout", type=float, default=240.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_throughput.json")
    parser.add_argument("--merge", action="store_true", help="update the models in an existing results file")
    parser.add_argument("--plan", type=json.loads, default={}, help='JSON: {"llama-134m": {"hf": [32], ...}}')
    args = parser.parse_args()

    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(WORKERS[job["kind"]](job)), flush=True)
        return

    import torch

    device = "cpu" if args.toy else "cuda"
    models = ["toy"] if args.toy else args.models.split(",")
    seq_len, vocab = (64, 512) if args.toy else (2048, VOCAB)
    results = json.loads(args.out.read_text()) if args.merge and args.out.exists() else {}
    results.update(
        {
            "device": "cpu (toy check)" if args.toy else torch.cuda.get_device_name(0),
            "versions": versions(),
            "date": time.strftime("%Y-%m-%d"),
            "settings": {
                "seq_len": seq_len,
                "vocab": vocab,
                "warmup_steps": args.warmup,
                "timed_steps": args.timed,
            },
        }
    )
    peak = 1.0 if args.toy else run_job({"kind": "peak"}, 120)["peak_tflops"]
    results["peak_tflops"] = peak
    base = {"seq_len": seq_len, "vocab": vocab, "device": device, "warmup": args.warmup, "timed": args.timed}

    for name in models:
        plan = {**DEFAULT_MICRO_BATCHES[name], **args.plan.get(name, {})}
        entry: dict = {"runs": []}

        def measure(kind: str, mb: int, compile_: bool, name: str = name, entry: dict = entry) -> dict:
            job = {
                **base,
                "kind": kind,
                "model": name,
                "micro_batch": mb,
                "compile": compile_ and not args.toy,
            }
            result = run_job(job, args.job_timeout)
            result.update({"setup": kind, "micro_batch": mb, "compile": job["compile"]})
            if "tokens_per_s" in result:
                result["mfu"] = result["tokens_per_s"] * result["flops_per_token"] / (peak * 1e12)
            entry["runs"].append(result)
            print(
                f"{name:11s} {kind:10s} mb={mb:<3d} compile={job['compile']!s:5s} {_fmt(result)}", flush=True
            )
            return result

        last = plan.get("default_last", False)  # measure the default configuration after the others
        default = measure("hf", plan["hf_default"], False) if plan["hf_default"] and not last else None
        tuned = [measure("hf", mb, True) for mb in plan["hf"]]
        ours = [measure("forgetless", mb, True) for mb in plan["fl"]]
        if plan["hf_default"] and last:
            default = measure("hf", plan["hf_default"], False)
        best_hf = _best(tuned)
        best_fl = _best(ours)
        entry["hf_trainer_default"] = _public(default)
        entry["hf_trainer"] = _public(best_hf)
        entry["forgetless"] = _public(best_fl)
        if best_hf and best_fl:
            entry["speedup"] = best_fl["tokens_per_s"] / best_hf["tokens_per_s"]
            same_mb = next(
                (r for r in ours if r["micro_batch"] == best_hf["micro_batch"] and "tokens_per_s" in r), None
            )
            if same_mb and best_hf.get("peak_mem_gib"):
                entry["mem_ratio"] = same_mb["peak_mem_gib"] / best_hf["peak_mem_gib"]
                entry["mem_ratio_micro_batch"] = best_hf["micro_batch"]
        results[name] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    print()
    print(f"device {results['device']}, peak {peak:.0f} TFLOP/s")
    print(f"{'model':11s} {'setup':20s} {'mb':>3s} {'tokens/s':>10s} {'MFU':>6s} {'peak GiB':>8s}")
    for name in models:
        entry = results[name]
        for label in ("hf_trainer_default", "hf_trainer", "forgetless"):
            r = entry.get(label) or {}
            if r:
                print(
                    f"{name:11s} {label:20s} {r['micro_batch']:>3d} {r['tokens_per_s']:>10,.0f} "
                    f"{100 * r['mfu']:>5.1f}% {r['peak_mem_gib'] or 0:>8.1f}"
                )
        if "speedup" in entry:
            mem = (
                f", memory {entry['mem_ratio']:.2f}x at mb {entry['mem_ratio_micro_batch']}"
                if "mem_ratio" in entry
                else ""
            )
            print(f"{name:11s} forgetless / best Trainer: {entry['speedup']:.2f}x tokens/s{mem}")


def _best(runs: list[dict]) -> dict | None:
    ok = [r for r in runs if "tokens_per_s" in r]
    return max(ok, key=lambda r: r["tokens_per_s"]) if ok else None


def _public(run: dict | None) -> dict | None:
    if not run:
        return None
    keys = ("tokens_per_s", "mfu", "peak_mem_gib", "micro_batch", "compile", "step_s", "losses")
    return {k: run.get(k) for k in keys}


def _fmt(result: dict) -> str:
    if "tokens_per_s" not in result:
        return f"failed: {result.get('error')}"
    mem = f"{result['peak_mem_gib']:.1f} GiB" if result.get("peak_mem_gib") else "-"
    return f"{result['tokens_per_s']:>10,.0f} tok/s  MFU {100 * result['mfu']:.1f}%  {mem}  ({result['wall_s']:.0f} s)"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
