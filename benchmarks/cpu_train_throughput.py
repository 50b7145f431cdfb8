"""Training throughput on CPU: forgetless's loop against the Hugging Face `Trainer`, side by side.

The same random-init Llama (about 5M parameters, the bundled 8192-token tokenizer) trains on the
same packed windows of the bundled `general` corpus, from the same initial weights, with the same
sequence length, micro-batch, gradient accumulation, AdamW settings (fused AdamW on both sides: the
Trainer's default `adamw_torch_fused`), constant LR, gradient clipping and thread count, fp32,
each run in a fresh Python process of its own (as a user would start either tool):

- forgetless: `run_training` on a one-stage config (evaluation and checkpoints off) with
  `train.fused_loss: on` (the loss computed from the final hidden states in cache-sized chunks,
  never storing the logits; what `auto` picks for this model); in the eager configuration also with
  `train.fused_loss: off`, the same loss path as the Trainer's, to show what the fused loss brings;
  like `forgetless train`, the run keeps freed host memory for reuse (`forgetless.train.host_memory`,
  glibc's `mallopt`), which the Trainer's process does not, and with the fused loss runs a step's
  micro-batches at once, one core each (`train.micro_batch_threads: auto`);
- Trainer: `Trainer.train()` set up as a user would (`TrainingArguments` with the micro-batch,
  accumulation, `max_steps`, `logging_steps`, `save_strategy="no"`, `use_cpu=True`, the default
  optimizer), on a `datasets.Dataset` of exactly the windows forgetless's sampler serves, in the
  same order (`train_sampling_strategy="sequential"`; a `shift_labels` column carries the next-token
  targets, so both sides compute the identical loss on identical batches).

Two configurations, each side by side: `eager` (no compilation) and `compiled`
(`train.compile: true` against `TrainingArguments(torch_compile=True)`; compilation happens in the
warm-up steps and is not timed).

What is timed is the same for both: each of the optimizer steps `warmup + 1 .. warmup + steps`,
from the start of the step to the start of the next, so every step's data loading, forward,
backward, clipping, optimizer step and logging is inside, and start-up, the warm-up steps and
saving the final model are not. A step starts when forgetless's sampler hands out the step's first
micro-batch, and at the Trainer's `on_step_begin` callback (after it fetched the step's batches).
Tokens/s = tokens per step / the median step time of a run (the median is robust to other work on
a shared machine; the mean over the timed steps is reported too). Runs alternate (Trainer,
forgetless, ...) and the median over `--repeats` runs counts (`--compiled-repeats` for the compiled
configuration, whose runs each spend half a minute compiling); the load average is recorded.

Both sides train the same thing: the initial model's loss on the first micro-batch through each
side's loss path, and each side's logged mean loss per log window, are printed and saved.

    python benchmarks/cpu_train_throughput.py [--repeats 3] [--steps 16] [--configs eager,compiled]

Results go to `benchmarks/results/cpu_train_throughput.json` (or `--out`). Part of the Trainer's
extra time on CPU is glibc handing its tensors fresh, page-faulted memory every micro-batch; to
measure both sides with the same allocator settings (the Trainer then gets what forgetless sets
for itself), run the script with
`MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TOP_PAD_=268435456` in
the environment (recorded in the results; forgetless leaves set `MALLOC_*_` variables alone) and
`--out benchmarks/results/cpu_train_throughput_malloc_tuned.json`.
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import cpu_model
from machine import versions as package_versions

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_train_throughput.json"
TARGET_SPEEDUP = 1.2
CONFIGURATIONS = ("eager", "compiled")


def versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "accelerate", "datasets", "numpy", "forgetless")


# ---------------------------------------------------------------------------------------------
# The shared setup


def run_config(
    args: argparse.Namespace,
    out_dir: Path,
    cache_dir: Path,
    *,
    compile: bool = False,
    fused_loss: str = "auto",
) -> dict[str, Any]:
    """The forgetless config of the benchmark; the Trainer gets the same numbers."""
    return {
        "model": {
            "init": {
                "architecture": "llama",
                "hidden_size": args.hidden,
                "num_layers": args.layers,
                "num_heads": args.heads,
                "intermediate_size": args.ffn,
                "max_position_embeddings": args.seq_len,
            }
        },
        "tokenizer": "bundled",
        "sources": {"general": "bundled:general"},
        "stages": [
            {
                "name": "general",
                "tokens": total_steps(args) * args.batch * args.seq_len,
                "mix": {"general": 1.0},
                "schedule": {"kind": "constant", "peak_lr": args.lr, "warmup": 0.0},
            }
        ],
        "train": {
            "seq_len": args.seq_len,
            "batch_tokens": args.batch * args.seq_len,
            "micro_batch": args.micro_batch,
            "precision": "fp32",
            "device": "cpu",
            "compile": compile,
            "fused_loss": fused_loss,
            "seed": args.seed,
            "weight_decay": args.weight_decay,
            "grad_clip": 1.0,
            "betas": [0.9, 0.95],
            "eps": 1e-8,
            "log_every_steps": args.log_every,
        },
        "eval": {"sources": [], "dense_start": [], "mcq": []},
        "output": {"dir": str(out_dir)},
        "cache_dir": str(cache_dir),
    }


def total_steps(args: argparse.Namespace) -> int:
    return args.warmup + args.steps + 1  # one step more: its start ends the last timed step


def training_windows(config: Any, num_sequences: int) -> np.ndarray:
    """The first `num_sequences` windows `[n, seq_len + 1]` that forgetless's sampler serves."""
    from forgetless.data.prepare import prepare_sources
    from forgetless.data.sampler import MixtureSampler
    from forgetless.model.load import load_tokenizer

    tokenizer = load_tokenizer(config.tokenizer)
    prepared = prepare_sources(config, tokenizer, sources=["general"], progress=False)
    sampler = MixtureSampler(
        config.stages[0],
        {"general": prepared["general"].train},
        seq_len=config.train.seq_len,
        seed=config.train.seed,
    )
    return sampler.next_batch(num_sequences)


def fresh_model(config: Any) -> torch.nn.Module:
    """The initial model of the run: what `run_training` builds after `torch.manual_seed(seed)`."""
    from forgetless.model.load import build_model, load_tokenizer

    torch.manual_seed(config.train.seed)
    tokenizer = load_tokenizer(config.tokenizer)
    return build_model(config.model, tokenizer)


def initial_losses(config: Any, windows: np.ndarray) -> dict[str, float]:
    """Loss of the initial model on the first micro-batch, through each side's loss path."""
    from forgetless.model.loss import causal_lm_loss

    model = fresh_model(config)
    batch = torch.from_numpy(windows[: config.train.micro_batch])
    inputs, targets = batch[:, :-1], batch[:, 1:].contiguous()
    with torch.no_grad():
        plain = causal_lm_loss(model, inputs, targets).item()
        fused = causal_lm_loss(model, inputs, targets, fused=True).item()
        trainer = model(input_ids=inputs, labels=inputs, shift_labels=targets, use_cache=False).loss.item()
    return {"forgetless": plain, "forgetless_fused": fused, "hf_trainer": trainer}


def step_timing(starts: list[float], warmup: int, steps: int, tokens_per_step: int) -> dict[str, Any]:
    """Tokens/s of steps `warmup + 1 .. warmup + steps` from the start times of every step."""
    durations = np.diff(starts[warmup : warmup + steps + 1])
    median = float(np.median(durations))
    seconds = float(durations.sum())
    return {
        "tokens_per_s": tokens_per_step / median,
        "tokens_per_s_mean": steps * tokens_per_step / seconds,
        "s_per_step": median,
        "step_s": [round(float(d), 4) for d in durations],
    }


# ---------------------------------------------------------------------------------------------
# forgetless


def run_forgetless(
    args: argparse.Namespace, out_dir: Path, cache_dir: Path, *, compile: bool, fused_loss: str
) -> dict[str, Any]:
    from forgetless.config import config_from_dict
    from forgetless.data.sampler import MixtureSampler
    from forgetless.train.host_memory import keep_freed_memory
    from forgetless.train.run import run_training

    keep_freed_memory()  # as `forgetless train` does for its process
    config = config_from_dict(run_config(args, out_dir, cache_dir, compile=compile, fused_loss=fused_loss))
    accumulation = args.batch // args.micro_batch
    calls: list[float] = []
    original = MixtureSampler.next_batch

    def timed_next_batch(self: MixtureSampler, num_sequences: int) -> np.ndarray:
        calls.append(time.perf_counter())  # the first call of each step marks the step's start
        return original(self, num_sequences)

    MixtureSampler.next_batch = timed_next_batch  # type: ignore[method-assign]
    try:
        run_dir = run_training(config, quiet=True)
    finally:
        MixtureSampler.next_batch = original  # type: ignore[method-assign]
    if len(calls) != total_steps(args) * accumulation:
        raise RuntimeError(
            f"expected {accumulation} batches per step, the sampler served {len(calls)} in all"
        )
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["kind"] == "train"]
    timed = range(args.warmup + 1, args.warmup + args.steps + 1)
    return {
        **step_timing(calls[::accumulation], args.warmup, args.steps, args.batch * args.seq_len),
        "losses": {r["step"]: r["loss"] for r in train},
        "own_log_tokens_per_s": [round(r["tokens_per_s"], 1) for r in train if r["step"] in timed],
    }


# ---------------------------------------------------------------------------------------------
# Hugging Face Trainer


def run_trainer(
    args: argparse.Namespace, out_dir: Path, config: Any, windows: np.ndarray, *, compile: bool
) -> dict[str, Any]:
    import datasets
    from transformers import Trainer, TrainerCallback, TrainingArguments

    starts: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *unused: Any, **kwargs: Any) -> None:
            starts.append(time.perf_counter())

    dataset = datasets.Dataset.from_dict(
        {
            "input_ids": windows[:, :-1],
            "labels": windows[:, :-1],
            "shift_labels": windows[:, 1:],  # the token after every position, as forgetless has it
        }
    ).with_format("torch")
    model = fresh_model(config)
    training_args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.batch // args.micro_batch,
        max_steps=total_steps(args),
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        weight_decay=args.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        logging_steps=args.log_every,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,  # keep shift_labels
        use_cpu=True,
        seed=args.seed,
        disable_tqdm=True,
        log_level="warning",
        torch_compile=compile,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, callbacks=[StepTimer()])
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return {
        **step_timing(starts, args.warmup, args.steps, args.batch * args.seq_len),
        "losses": {r["step"]: r["loss"] for r in trainer.state.log_history if "loss" in r},
        "optim": str(
            training_args.optim.value if hasattr(training_args.optim, "value") else training_args.optim
        ),
        "optimizer_fused": bool(optimizer.defaults.get("fused")),
    }


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compiled-repeats", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS), help="eager, compiled or both")
    parser.add_argument("--warmup", type=int, default=4, help="untimed optimizer steps at the start")
    parser.add_argument("--steps", type=int, default=16, help="timed optimizer steps")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8, help="sequences per optimizer step")
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=688)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a toy size that only checks the script runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # CONFIGURATION:SIDE, one run
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.layers, args.heads, args.ffn, args.seq_len = 64, 2, 2, 172, 64
        args.batch, args.micro_batch, args.warmup, args.steps, args.log_every, args.repeats = 4, 2, 2, 3, 1, 1
        args.compiled_repeats = 1
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(args.configs) - set(CONFIGURATIONS)
    if unknown or not args.configs:
        parser.error(f"--configs: choose from {', '.join(CONFIGURATIONS)}")
    if args.batch % args.micro_batch:
        parser.error("--batch must be a multiple of --micro-batch")
    return args


def sides(configuration: str) -> list[str]:
    return ["hf_trainer", "forgetless"] + (["forgetless_unfused"] if configuration == "eager" else [])


def measure(args: argparse.Namespace, argv: list[str], work: Path) -> dict[str, Any]:
    """Every configuration's runs, alternating sides within each repeat, each run in a process of its
    own: a side starts as a user's process would, with nothing left behind by the other side
    (allocator state, compiled code, caches)."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {c: {s: [] for s in sides(c)} for c in args.configs}
    for configuration in args.configs:
        compile = configuration == "compiled"
        for index in range(args.compiled_repeats if compile else args.repeats):
            for side in sides(configuration):
                run_name = f"{configuration}-{side}-{index}"
                out = work / f"{run_name}.json"
                command = [sys.executable, __file__, *argv, "--child", f"{configuration}:{side}"]
                subprocess.run([*command, "--work", str(work), "--child-out", str(out)], check=True)
                result = json.loads(out.read_text())
                result["load_avg_1min"] = round(os.getloadavg()[0], 2)
                results[configuration][side].append(result)
                print(
                    f"{configuration:9} repeat {index}: {side:19} {result['tokens_per_s']:8.0f} tokens/s "
                    f"(load {result['load_avg_1min']})",
                    flush=True,
                )
    return results


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side, side_runs in runs.items():
        summary[f"{side}_tokens_per_s"] = round(statistics.median(r["tokens_per_s"] for r in side_runs), 1)
    summary["speedup"] = round(summary["forgetless_tokens_per_s"] / summary["hf_trainer_tokens_per_s"], 3)
    summary["per_repeat"] = {
        side: [
            {k: round(r[k], 4) for k in ("tokens_per_s", "tokens_per_s_mean", "s_per_step", "load_avg_1min")}
            | {"step_s": r["step_s"]}
            | ({"own_log_tokens_per_s": r["own_log_tokens_per_s"]} if "own_log_tokens_per_s" in r else {})
            for r in side_runs
        ]
        for side, side_runs in runs.items()
    }
    summary["logged_loss_window_means"] = {side: side_runs[0]["losses"] for side, side_runs in runs.items()}
    return summary


def run_child(args: argparse.Namespace) -> None:
    """One run of one side (`--child CONFIGURATION:SIDE`), its result written to `--child-out`."""
    from forgetless.config import config_from_dict

    configuration, side = args.child.split(":")
    compile = configuration == "compiled"
    work = args.work
    config = config_from_dict(run_config(args, work / "probe", work / "cache"))
    out_dir = Path(tempfile.mkdtemp(prefix=f"{configuration}-{side}-", dir=work))
    if side == "hf_trainer":
        windows = training_windows(config, total_steps(args) * args.batch)  # cached: no tokenizing
        result = run_trainer(args, out_dir, config, windows, compile=compile)
    else:
        fused_loss = "off" if side == "forgetless_unfused" else "on"
        result = run_forgetless(args, out_dir, work / "cache", compile=compile, fused_loss=fused_loss)
    args.child_out.write_text(json.dumps(result), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        run_child(args)
        return {}
    from forgetless.config import config_from_dict
    from forgetless.train.parallelize import supports_fused_loss

    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cpu-train-throughput-") as tmp:
        work = Path(tmp)
        config = config_from_dict(run_config(args, work / "probe", work / "cache"))
        windows = training_windows(config, total_steps(args) * args.batch)  # tokenizes once, into the cache
        model = fresh_model(config)
        params = sum(p.numel() for p in model.parameters())
        if not supports_fused_loss(model):
            raise SystemExit("the benchmark model must support forgetless's fused loss")
        initial = initial_losses(config, windows)
        print(
            f"model: {params / 1e6:.2f}M parameters; initial loss on the first micro-batch: forgetless "
            f"{initial['forgetless']:.5f} (fused {initial['forgetless_fused']:.5f}), Trainer {initial['hf_trainer']:.5f}",
            flush=True,
        )
        runs = measure(args, argv, work)
    load_after = os.getloadavg()

    configurations = {name: summarize(side_runs) for name, side_runs in runs.items()}
    first = configurations[args.configs[0]]
    trainer_optim = runs[args.configs[0]]["hf_trainer"][0]
    result: dict[str, Any] = {
        "hf_trainer_tokens_per_s": first["hf_trainer_tokens_per_s"],
        "forgetless_tokens_per_s": first["forgetless_tokens_per_s"],
        "speedup": first["speedup"],
        "headline_configuration": args.configs[0],
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": first["speedup"] >= TARGET_SPEEDUP,
    }
    if len(configurations) > 1:
        best_trainer = max(c["hf_trainer_tokens_per_s"] for c in configurations.values())
        best_ours = max(c["forgetless_tokens_per_s"] for c in configurations.values())
        result["speedup_best_vs_best"] = round(best_ours / best_trainer, 3)
    result["configurations"] = configurations
    result["losses"] = {
        "initial_first_micro_batch": initial,
        "note": "logged_loss_window_means: mean training loss over each log window, keyed by the step ending it",
    }
    result["config"] = {
        "model": "llama (random init, tied embeddings)",
        "params": params,
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "num_heads": args.heads,
        "intermediate_size": args.ffn,
        "vocab_size": model.config.vocab_size,
        "seq_len": args.seq_len,
        "sequences_per_step": args.batch,
        "micro_batch": args.micro_batch,
        "gradient_accumulation": args.batch // args.micro_batch,
        "tokens_per_step": args.batch * args.seq_len,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "log_every_steps": args.log_every,
        "repeats": args.repeats,
        "compiled_repeats": args.compiled_repeats,
        "threads": args.threads,
        "precision": "fp32",
        "optimizer": f"AdamW lr {args.lr:g} constant, betas (0.9, 0.95), eps 1e-8, weight decay {args.weight_decay:g} "
        "(not on norms), grad clip 1.0",
        "hf_trainer_optim": trainer_optim["optim"],
        "hf_trainer_optimizer_fused": trainer_optim["optimizer_fused"],
        "forgetless_settings": "train.fused_loss: on (forgetless_unfused: off, the Trainer's loss path); "
        "host memory reuse as forgetless train sets it",
        "processes": "every run in a fresh process",
        "data": "bundled general corpus, the first windows of forgetless's sampler (seed 0), same order on both sides",
        "timing": "each timed step from its start to the next step's start; tokens/s from the median step of "
        "a run; the median over repeats",
        "compiled": "forgetless train.compile: true (per-block compile, compiled fused-loss chunks); "
        "Trainer torch_compile=True",
    }
    result["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        # glibc allocator settings change how often large tensors get fresh, page-faulted memory
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
    result["versions"] = versions()
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    return result


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print()
    print(
        f"{cfg['params'] / 1e6:.2f}M-parameter Llama, seq_len {cfg['seq_len']}, {cfg['tokens_per_step']} tokens/step "
        f"({cfg['micro_batch']} x {cfg['gradient_accumulation']}), fp32, {cfg['threads']} threads, "
        f"{cfg['timed_steps']} timed steps, median of {cfg['repeats']} runs ({cfg['compiled_repeats']} compiled)"
    )
    print(f"{'configuration':14} {'side':19} {'tokens/s':>9} {'s/step':>7}  {'vs Trainer':>10}  repeats")
    for name, summary in result["configurations"].items():
        trainer = summary["hf_trainer_tokens_per_s"]
        for side, reps in summary["per_repeat"].items():
            tokens = summary[f"{side}_tokens_per_s"]
            per_step = statistics.median(r["s_per_step"] for r in reps)
            print(
                f"{name:14} {side:19} {tokens:>9.0f} {per_step:>7.3f}  {tokens / trainer:>10.3f}  "
                + ", ".join(f"{r['tokens_per_s']:.0f}" for r in reps)
            )
    line = f"speedup ({result['headline_configuration']}): {result['speedup']:.3f} (target {result['target_speedup']})"
    if "speedup_best_vs_best" in result:
        line += f"; best forgetless vs best Trainer: {result['speedup_best_vs_best']:.3f}"
    print(line)
    machine = result["machine"]
    print(f"load average before / after: {machine['load_avg_before']} / {machine['load_avg_after']}")


if __name__ == "__main__":
    main(sys.argv[1:])
