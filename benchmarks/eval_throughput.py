"""Evaluation throughput against training throughput, on the same machine and model, side by side.

The model is the demo's base (`forgetless demo`: a Llama of hidden size 128, 4 layers, the bundled
8192-token tokenizer, pretrained on the bundled general corpus; built once and cached as the demo
builds it), on the CPU in fp32, with PyTorch's default threads (one per core). Each measurement runs
in a fresh Python process of its own, and the kinds alternate, `--repeats` rounds of them:

- `train`: `run_training` of one stage that continues the base on the bundled `security` corpus as
  the demo's strategies do (sequence 256, 8,192 tokens a step in micro-batches of 16, fp32, fused
  loss and micro-batch threads as `auto` picks them), evaluation off. Each optimizer step is timed
  from its start (the sampler handing out its first micro-batch) to the next step's start, after
  `--warmup` steps; tokens/s = tokens per step / the median step time.
- `eval`: held-out evaluation as `forgetless train` and `forgetless eval` run it by default
  (`evaluate_heldout`, `eval.batch_size: auto`) on the demo's held-out selection: `general` and
  `security`, 16,384 tokens each (`eval.max_tokens`), windows of 256; tokens/s = predicted tokens /
  the median wall time over `--eval-repeats` passes over both sources, after one warm-up pass.
- `eval_one_pass_at_a_time` and `eval_logits`: the default with one of its choices undone: passes
  of the same size one at a time over all threads (instead of one pass per core), or the logits
  materialised (instead of the fused head).
- `eval_reference`: the same windows the way evaluation ran before these changes: 8 windows a
  forward pass (the former `eval.batch_size` default), the logits materialised and upcast in
  chunks, one pass at a time over all threads. All give the same loss to float rounding (recorded).
- `mcq` and `mcq_reference`: the demo's question sets (`security-mcq`, `general-mcq`, their first
  `--mcq-limit` questions), scored as the run scores them by default and the way it did before
  (32 (prompt, choice) pairs a batch, logits of every position, one batch at a time); questions/s.

The target this measures: held-out evaluation at least twice as many tokens/s as training.

    python benchmarks/eval_throughput.py [--repeats 3] [--demo]

`--demo` also runs `forgetless demo --quick` once (into a temporary folder, its cache seeded with the
cached quick base, without base evaluations) and reports how much of its wall time the base
evaluations of its three strategies took: the first computes it, the other two reuse it from the
base-evaluation cache. Results go to `benchmarks/results/eval_throughput.json` and `.md`, with the
machine, versions, date and load averages. Check that the machine is idle first (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from machine import cpu_model
from machine import versions as package_versions

RESULTS = Path(__file__).resolve().parent / "results" / "eval_throughput.json"
TARGET_RATIO = 2.0
KINDS = ("train", "eval", "eval_one_pass_at_a_time", "eval_logits", "eval_reference", "mcq", "mcq_reference")
MCQ_SETS = ("security-mcq", "general-mcq")


def versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "numpy", "forgetless")


def demo_setting() -> tuple[Any, Path]:
    """The full demo's size and its base model folder (built and cached on first use)."""
    from forgetless.demo import FULL, build_base

    return FULL, build_base(FULL, quiet=True)


def strategy(out_dir: Path, tokens: int) -> Any:
    """The demo's security stage with no replay, `tokens` long, evaluation off."""
    from forgetless.config import config_from_dict
    from forgetless.demo import strategy_config

    size, base = demo_setting()
    data = strategy_config(size, base, 0.0, out_dir)
    data["stages"][0]["tokens"] = tokens
    data["stages"][0]["schedule"] = {"kind": "constant", "peak_lr": 3e-4, "warmup": 0.0}
    data["train"].update({"precision": "fp32", "device": "cpu", "log_every_steps": 1})
    data["eval"] = {"sources": [], "mcq": [], "dense_start": []}
    return config_from_dict(data)


# ---------------------------------------------------------------------------------------------
# Workers (one fresh process each)


def worker_train(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from forgetless.data.sampler import MixtureSampler
    from forgetless.train.host_memory import keep_freed_memory
    from forgetless.train.run import run_training

    keep_freed_memory()  # as `forgetless train` does for its process
    size, _ = demo_setting()
    steps = args.warmup + args.steps + 1  # one more: its start ends the last timed step
    with tempfile.TemporaryDirectory() as tmp:
        config = strategy(Path(tmp) / "run", steps * size.batch_tokens)
        accumulation = config.train.sequences_per_step // config.train.micro_batch
        calls: list[float] = []
        original = MixtureSampler.next_batch

        def timed_next_batch(self: MixtureSampler, num_sequences: int) -> Any:
            calls.append(time.perf_counter())  # the first call of each step marks the step's start
            return original(self, num_sequences)

        MixtureSampler.next_batch = timed_next_batch  # type: ignore[method-assign]
        try:
            run_dir = run_training(config, quiet=True)
        finally:
            MixtureSampler.next_batch = original  # type: ignore[method-assign]
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in lines if r["kind"] == "run_start")
    durations = np.diff(calls[::accumulation][args.warmup : args.warmup + args.steps + 1])
    median = float(np.median(durations))
    return {
        "tokens_per_s": size.batch_tokens / median,
        "s_per_step": median,
        "step_s": [round(float(d), 4) for d in durations],
        "tokens_per_step": size.batch_tokens,
        "micro_batch": config.train.micro_batch,
        "fused_loss": start["fused_loss"],
    }


def heldout_windows_of_demo() -> tuple[Any, Any, dict[str, tuple[Any, int]]]:
    """The demo base model (eval mode), its tokenizer and the demo's held-out windows per source."""
    from forgetless.config import ModelConfig
    from forgetless.data.prepare import prepare_sources
    from forgetless.evaluate.heldout import heldout_windows
    from forgetless.model.load import build_model, load_tokenizer

    size, base = demo_setting()
    with tempfile.TemporaryDirectory() as tmp:
        config = strategy(Path(tmp) / "run", size.stage_tokens)
    tokenizer = load_tokenizer(str(base))
    prepared = prepare_sources(config, tokenizer, sources=["general", "security"], progress="quiet")
    windows = {
        name: heldout_windows(prepared[name].heldout, seq_len=size.seq_len, max_tokens=size.eval_tokens)
        for name in ("general", "security")
    }
    model = build_model(ModelConfig(path=str(base)), tokenizer).eval()
    return model, tokenizer, windows


def worker_eval(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    import forgetless.evaluate.heldout as heldout

    model, _, windows = heldout_windows_of_demo()
    options: dict[str, Any] = {}
    if kind in ("eval_reference", "eval_one_pass_at_a_time"):
        heldout.pass_threads = lambda model, device: 1  # type: ignore[assignment]
    if kind in ("eval_reference", "eval_logits"):
        options["fused"] = False
    if kind == "eval_reference":
        options["batch_size"] = 8

    def everything() -> dict[str, dict[str, float]]:
        return {
            name: heldout.evaluate_heldout(model, w, n, device="cpu", **options)
            for name, (w, n) in windows.items()
        }

    for w, n in windows.values():
        heldout.evaluate_heldout(model, w[:4], n, device="cpu", **options)  # warm-up
    seconds, results = [], {}
    for _ in range(args.eval_repeats):
        start = time.perf_counter()
        results = everything()
        seconds.append(time.perf_counter() - start)
    tokens = sum(r["tokens"] for r in results.values())
    median = statistics.median(seconds)
    return {
        "tokens_per_s": tokens / median,
        "seconds": [round(s, 3) for s in seconds],
        "tokens": tokens,
        "loss": {name: r["loss"] for name, r in results.items()},
    }


def worker_mcq(args: argparse.Namespace, *, reference: bool) -> dict[str, Any]:
    import forgetless.evaluate.mcq as mcq

    model, tokenizer, _ = heldout_windows_of_demo()
    options: dict[str, Any] = {}
    if reference:
        mcq.pass_threads = lambda model, device: 1  # type: ignore[assignment]
        mcq.fused_head = lambda model: False  # type: ignore[assignment]
        options = {"batch_size": 32}
    sets = {name: mcq.load_questions(f"bundled:{name}")[: args.mcq_limit] for name in MCQ_SETS}
    mcq.score_mcq(model, tokenizer, sets[MCQ_SETS[1]][:8], device="cpu", **options)  # warm-up
    start = time.perf_counter()
    results = {
        name: mcq.score_mcq(model, tokenizer, items, device="cpu", **options) for name, items in sets.items()
    }
    seconds = time.perf_counter() - start
    questions = sum(r["n"] for r in results.values())
    return {
        "questions_per_s": questions / seconds,
        "seconds": round(seconds, 3),
        "questions": questions,
        "acc": {name: r["acc"] for name, r in results.items()},
    }


# ---------------------------------------------------------------------------------------------
# The quick demo and its base-evaluation cache


def demo_cache_effect() -> dict[str, Any]:
    """Run `forgetless demo --quick` with a fresh cache folder (the cached quick base copied in) and
    read each strategy's base evaluation: computed once, reused twice."""
    from forgetless.demo import QUICK, STRATEGIES, _base_run_dir, build_base

    build_base(QUICK, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        base_run = _base_run_dir(QUICK)
        shutil.copytree(
            base_run, cache / "demo" / base_run.name, ignore=shutil.ignore_patterns("checkpoints")
        )
        out = Path(tmp) / "demo"
        env = {**os.environ, "FORGETLESS_CACHE": str(cache)}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "forgetless", "demo", "--quick", "--out", str(out), "--quiet"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        strategies = {}
        for run_dir in (out / name for name, _ in STRATEGIES):  # in the order they ran
            lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
            base = next(r for r in lines if r["kind"] == "eval" and r["point"] == "base")
            end = next(r for r in lines if r["kind"] == "run_end")
            strategies[run_dir.name] = {
                "base_eval_s": round(base["eval_s"], 3),
                "base_eval_cached": "base_cache" in base,
                "cached_eval_s": base.get("base_cache", {}).get("eval_s"),
                "run_wall_s": round(end["wall_s"], 2),
                "run_eval_s": round(end["eval_s"], 2),
            }
    saved = sum(s["cached_eval_s"] or 0.0 for s in strategies.values()) - sum(
        s["base_eval_s"] for s in strategies.values() if s["base_eval_cached"]
    )
    return {"demo_wall_s": round(wall, 2), "strategies": strategies, "base_eval_s_saved": round(saved, 2)}


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all kinds, alternating")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="training steps before timing")
    parser.add_argument("--eval-repeats", type=int, default=3, help="timed passes per evaluation run")
    parser.add_argument("--mcq-limit", type=int, default=200, help="questions of each set")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--demo", action="store_true", help="also measure the quick demo's base-evaluation cache"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--markdown", action="store_true", help="only write the .md of the --out results again"
    )
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_worker(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--eval-repeats",
        str(args.eval_repeats),
        "--mcq-limit",
        str(args.mcq_limit),
    ]
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_avg_1min_before"] = round(load, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        if args.worker == "train":
            result = worker_train(args)
        elif args.worker.startswith("eval"):
            result = worker_eval(args, args.worker)
        else:
            result = worker_mcq(args, reference=args.worker == "mcq_reference")
        print(json.dumps(result))
        return 0

    if args.markdown:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.read_text())), encoding="utf-8")
        return 0

    import torch

    kinds = [k for k in args.kinds.split(",") if k]
    demo_setting()  # build the base once, before anything is timed
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_index in range(args.repeats):
        for kind in kinds:
            result = run_worker(kind, args)
            runs[kind].append(result)
            rate = result.get("tokens_per_s") or result.get("questions_per_s")
            print(f"round {round_index + 1}/{args.repeats} {kind}: {rate:,.1f}/s", flush=True)
    load_after = os.getloadavg()

    summary: dict[str, Any] = {}
    for kind, results in runs.items():
        key = "questions_per_s" if kind.startswith("mcq") else "tokens_per_s"
        summary[kind] = {key: statistics.median(r[key] for r in results)}
    if "train" in summary and "eval" in summary:
        summary["eval_vs_train"] = summary["eval"]["tokens_per_s"] / summary["train"]["tokens_per_s"]
        summary["target_met"] = summary["eval_vs_train"] >= TARGET_RATIO
    if "eval" in summary and "eval_reference" in summary:
        summary["eval_vs_reference"] = (
            summary["eval"]["tokens_per_s"] / summary["eval_reference"]["tokens_per_s"]
        )
    if "mcq" in summary and "mcq_reference" in summary:
        summary["mcq_vs_reference"] = (
            summary["mcq"]["questions_per_s"] / summary["mcq_reference"]["questions_per_s"]
        )

    size, base = demo_setting()
    result: dict[str, Any] = {
        "benchmark": "eval_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": versions(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "setting": {
            "model": "the demo base (Llama, hidden 128, 4 layers, 4 heads, FFN 512, vocabulary 8192), fp32, CPU",
            "seq_len": size.seq_len,
            "train_tokens_per_step": size.batch_tokens,
            "eval_tokens_per_source": size.eval_tokens,
            "mcq_limit": args.mcq_limit,
            "repeats": args.repeats,
            "steps": args.steps,
            "warmup": args.warmup,
            "eval_repeats": args.eval_repeats,
        },
        "target_ratio": TARGET_RATIO,
        "summary": summary,
        "runs": runs,
    }
    if args.demo:
        result["demo_cache"] = demo_cache_effect()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        "# Evaluation vs training throughput",
        "",
        f"{result['date']}, {result['machine']['cpu']} ({result['machine']['cores']} cores, "
        f"{result['machine']['torch_threads']} PyTorch threads), torch {result['versions']['torch']}, "
        f"transformers {result['versions']['transformers']}; load average "
        f"{result['load_average_before'][0]} before, {result['load_average_after'][0]} after; "
        f"median of {result['setting']['repeats']} runs each, alternating. Model: {result['setting']['model']}.",
        "",
        "| what | rate | vs training |",
        "| --- | ---: | ---: |",
    ]
    train = s.get("train", {}).get("tokens_per_s")
    labels = {
        "train": "training (demo stage, fused loss)",
        "eval": "held-out evaluation, default",
        "eval_one_pass_at_a_time": "held-out, one pass at a time over all cores",
        "eval_logits": "held-out, logits materialised (no fused head)",
        "eval_reference": "held-out evaluation, former path",
    }
    for kind, label in labels.items():
        if kind in s:
            rate = s[kind]["tokens_per_s"]
            ratio = f"{rate / train:.2f}x" if train else ""
            lines.append(f"| {label} | {rate:,.0f} tokens/s | {ratio} |")
    for kind, label in (("mcq", "question sets, default"), ("mcq_reference", "question sets, former path")):
        if kind in s:
            lines.append(f"| {label} | {s[kind]['questions_per_s']:,.1f} questions/s | |")
    lines.append("")
    if "eval_vs_train" in s:
        verdict = "met" if s["target_met"] else "not met"
        rounds = [
            e["tokens_per_s"] / t["tokens_per_s"]
            for e, t in zip(result["runs"]["eval"], result["runs"]["train"], strict=True)
        ]
        lines.append(
            f"Evaluation runs at {s['eval_vs_train']:.2f}x training's tokens/s (target {result['target_ratio']:g}x: "
            f"{verdict}); round by round {', '.join(f'{r:.2f}x' for r in rounds)}."
        )
    if "eval_vs_reference" in s:
        lines.append(f"Held-out evaluation is {s['eval_vs_reference']:.2f}x the former path's tokens/s.")
    if "mcq_vs_reference" in s:
        lines.append(f"Question sets are scored {s['mcq_vs_reference']:.2f}x as fast as by the former path.")
    demo = result.get("demo_cache")
    if demo:
        lines += [
            "",
            f"`forgetless demo --quick` took {demo['demo_wall_s']:.1f} s; its strategies' base evaluations:",
            "",
            "| strategy | base evaluation | seconds |",
            "| --- | --- | ---: |",
        ]
        from forgetless.demo import STRATEGIES

        for name in [n for n, _ in STRATEGIES if n in demo["strategies"]]:
            st = demo["strategies"][name]
            how = (
                f"reused (computed in {st['cached_eval_s']:.2f} s)" if st["base_eval_cached"] else "computed"
            )
            lines.append(f"| {name} | {how} | {st['base_eval_s']:.2f} |")
        lines += ["", f"The cache saved {demo['base_eval_s_saved']:.1f} s of base evaluation."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
