"""Forgetting mitigations on the demo setting: what each one learns and forgets, over seeds.

The demo setting (`forgetless.demo`): the demo's small base model, pretrained on the bundled general
corpus (`QUICK` size, cached), continues on the bundled security corpus for one stage with the
same token budget for every method (compute-equivalent replay: replayed tokens count inside the
budget), cosine schedule with re-warming to 3e-3. For each seed (the stage's data order and
`train.seed`) and method, the held-out losses of both sources are measured before and after:

    forgetting = general loss after - general loss before      (nats/token; lower is better)
    learning   = security loss before - security loss after    (nats/token; higher is better)

Methods (settings in `METHODS`; k of MER scaled to the short stage, see docs/methods.md):
no replay and 5% replay (baselines), MER without and with 5% replay, L2-SP, EWC (Fisher from 4
general micro-batches), self-distillation (all sequences), the slow learner (decoder blocks at
0.1x LR), the EMA of the no-replay run's weights, and the best point of the interpolation between
the base and the no-replay model (`forgetless merge --sweep`; best = most learning minus
forgetting, averaged over seeds); and the model transforms of docs/transforms.md (`TRANSFORMS`):
LLaMA Pro (one identity block, only it trains), ADEPT (one block chosen as the least important for
general text, with per-tensor learning rates), LoRA r=16 on attention and MLP, and the same with
the embedding (tied to the head) trainable. Every row also reports its trainable and total
parameters and its training throughput. Self-distillation's cost is reported as its training time
against the no-replay run's, with two cheaper variants on the first seed (every 4th micro-batch,
and a bfloat16 teacher).

Writes `benchmarks/results/methods.json` and `benchmarks/results/methods.md`.

    python benchmarks/methods.py [--seeds 0 1 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

STAGE_TOKENS = 32_768  # per stage: 16 optimizer steps of 2048 tokens
BATCH_TOKENS = 2048
MER_EVERY = 4
EVAL_TOKENS = 4096  # held-out tokens per source, the same windows for every method
METHODS: dict[str, tuple[float, dict[str, Any]]] = {
    "no-replay": (0.0, {"ema": {"decay": 0.8}}),  # the EMA does not change the live weights
    "replay-5%": (0.05, {}),
    "mer": (0.0, {"mer": {"every": MER_EVERY, "eps": 0.1}}),
    "mer+replay-5%": (0.05, {"mer": {"every": MER_EVERY, "eps": 0.1}}),
    "l2sp": (0.0, {"l2sp": {"weight": 0.1}}),
    "ewc": (0.0, {"ewc": {"weight": 0.1, "from": "general", "batches": 4}}),
    "distill": (0.0, {"distill": {"alpha": 1.0, "temperature": 2.0, "on": "all"}}),
    "slow-learner": (0.0, {"lr_multipliers": {"layers": 0.1}}),
    # Model transforms (docs/transforms.md), no replay. The quick base has 2 blocks, so one new block
    # is +50% (LLaMA Pro added 25%: 8 to 32); ADEPT adds the same count, chosen by a probe of 8,192
    # general tokens, with per-tensor learning rates measured 4 times per stage.
    "llama-pro": (0.0, {"train_only": ["new"]}),
    "adept": (0.0, {"train_only": ["new"], "unit_lr": {"probe": "general", "every_tokens": 8192, "batches": 2}}),
    "lora-r16": (0.0, {}),
    "lora-r16+embeddings": (0.0, {}),
}
TRANSFORMS: dict[str, list[dict[str, Any]]] = {
    "llama-pro": [{"kind": "expand_blocks", "every": 2}],
    "adept": [
        {"kind": "expand_blocks", "select": "least_important", "count": 1, "probe": "general", "probe_tokens": 8192}
    ],
    "lora-r16": [{"kind": "lora", "r": 16, "alpha": 32, "target": ["attention", "mlp"]}],
    # The demo base ties its embedding and head: training the embedding trains the head with it.
    "lora-r16+embeddings": [
        {"kind": "lora", "r": 16, "alpha": 32, "target": ["attention", "mlp"], "train_embeddings": True}
    ],
}
# Self-distillation's cost per micro-batch (forward + backward of `training_loss`), measured apart
# from the runs: the same model and micro-batches for every variant, interleaved over rounds.
OVERHEAD_VARIANTS: dict[str, dict[str, Any] | None] = {
    "no method": None,
    "distill, float32 teacher": {"alpha": 1.0, "temperature": 2.0, "teacher_dtype": "float32"},
    "distill, bfloat16 teacher": {"alpha": 1.0, "temperature": 2.0, "teacher_dtype": "bfloat16"},
    "distill, every 4th step": {
        "alpha": 1.0,
        "temperature": 2.0,
        "teacher_dtype": "float32",
        "every": 4,
    },
}
MERGE_ALPHAS = [0.25, 0.5, 0.75]


def stage_config(
    base: Path, ratio: float, methods: dict[str, Any], seed: int, out: Path, transforms: list | None = None
) -> dict[str, Any]:
    from forgetless.demo import QUICK, strategy_config

    data = strategy_config(QUICK, base, ratio, out)
    data["model"]["transforms"] = list(transforms or [])
    data["stages"][0]["tokens"] = STAGE_TOKENS
    data["stages"][0]["methods"] = methods
    data["train"]["batch_tokens"] = BATCH_TOKENS
    data["train"]["seed"] = seed
    data["eval"]["mcq"] = []  # held-out losses only: the MCQ sets are too small to separate methods here
    data["eval"]["dense_start"] = []
    data["eval"]["max_tokens"] = EVAL_TOKENS
    return data


def run_one(base: Path, name: str, ratio: float, methods: dict, seed: int, root: Path) -> dict[str, Any]:
    from forgetless.config import config_from_dict
    from forgetless.train.run import run_training

    started, cpu_started = time.perf_counter(), time.process_time()
    config = stage_config(base, ratio, methods, seed, root / f"{name}-s{seed}", TRANSFORMS.get(name))
    run_dir = run_training(config_from_dict(config), quiet=True)
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r["kind"] == "eval"]
    end = next(r for r in lines if r["kind"] == "run_end")
    stage_start = next(r for r in lines if r["kind"] == "stage_start")
    before, after = evals[0], evals[-1]
    result = {
        "forgetting": after["eval/general/loss"] - before["eval/general/loss"],
        "learning": before["eval/security/loss"] - after["eval/security/loss"],
        "trainable_parameters": stage_start["trainable_parameters"],
        "parameters": next(r for r in lines if r["kind"] == "run_start")["parameters"],
        "tokens_per_s": end["tokens_per_s"],
        "train_s": end["train_s"],
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "run_dir": str(run_dir),
    }
    if "eval/general/loss@ema" in after:
        result["ema"] = {
            "forgetting": after["eval/general/loss@ema"] - before["eval/general/loss"],
            "learning": before["eval/security/loss"] - after["eval/security/loss@ema"],
        }
    return result


def merge_sweep(base: Path, run_dir: Path, seed: int) -> list[dict[str, Any]]:
    from forgetless.config import config_from_dict
    from forgetless.weights.sweep import sweep

    config = config_from_dict(stage_config(base, 0.0, {}, seed, run_dir.parent / "unused"))
    result = sweep(base, run_dir / "final", MERGE_ALPHAS, config, progress=False)
    return [
        {"alpha": p["alpha"], "forgetting": p["forgetting"], "learning": p["learning"]}
        for p in result["points"]
    ]


def distill_overhead(
    model: Any,
    *,
    device: str,
    autocast_dtype: Any,
    micro_batch: int,
    seq_len: int,
    micro_steps: int = 8,
    rounds: int = 5,
) -> dict[str, Any]:
    """Seconds per micro-batch of `training_loss` + backward for each of `OVERHEAD_VARIANTS`
    (median over `rounds`; wall clock with a device sync, and process CPU time)."""
    import contextlib

    import torch

    from forgetless.config import DistillConfig, StageConfig
    from forgetless.methods.base import MethodContext, MicroBatch, training_loss
    from forgetless.methods.distill import SelfDistillation

    model = model.to(device)
    model.train()
    vocab = model.get_input_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(0, vocab, (micro_batch, seq_len + 1), generator=generator).to(device)
        for _ in range(micro_steps)
    ]
    context = MethodContext(
        stage=StageConfig(name="overhead", tokens=1, mix={"x": 1.0}),
        stage_index=0,
        total_steps=1,
        last_stage=False,
        run_dir=Path("."),
        device=torch.device(device),
        autocast_dtype=autocast_dtype,
        tokenizer=None,
        train_stores={},
        seq_len=seq_len,
        micro_batch=micro_batch,
        seed=0,
    )
    methods = {}
    for name, settings in OVERHEAD_VARIANTS.items():
        methods[name] = (
            [] if settings is None else [SelfDistillation(DistillConfig(**settings), model, context)]
        )
        for method in methods[name]:
            method.start()

    def autocast() -> Any:
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype)

    def one_pass(name: str) -> tuple[float, float]:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        for index, batch in enumerate(batches):
            step = MicroBatch(batch[:, :-1], batch[:, 1:], None, step=index)  # a step of one micro-batch
            with autocast():
                _, objective, _ = training_loss(
                    methods[name], model, step, fused=device.startswith("cuda"), compute_dtype=autocast_dtype
                )
            objective.backward()
        model.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - wall) / len(batches), (time.process_time() - cpu) / len(batches)

    for name in methods:  # warm-up
        one_pass(name)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name in methods:
            timings[name].append(one_pass(name))
    out = {}
    for name, values in timings.items():
        out[name] = {
            "wall_s_per_micro_batch": statistics.median(v[0] for v in values),
            "cpu_s_per_micro_batch": statistics.median(v[1] for v in values),
        }
    base = out["no method"]
    for row in out.values():
        row["wall_ratio"] = row["wall_s_per_micro_batch"] / base["wall_s_per_micro_batch"]
        row["cpu_ratio"] = row["cpu_s_per_micro_batch"] / base["cpu_s_per_micro_batch"]
    return {
        "device": device,
        "micro_batch": micro_batch,
        "seq_len": seq_len,
        "vocab": int(vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "variants": out,
    }


def stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    import forgetless

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "forgetless": forgetless.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def summarize(
    per_seed: dict[str, list[dict[str, Any]]], merges: list[list[dict]], seeds: list[int]
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, results in per_seed.items():
        keys = ("forgetting", "learning", "cpu_s", "tokens_per_s", "trainable_parameters", "parameters")
        rows[name] = {key: stats([r[key] for r in results]) for key in keys if all(key in r for r in results)}
        if name == "no-replay" and all("ema" in r for r in results):
            rows["ema (no replay)"] = {
                key: stats([r["ema"][key] for r in results]) for key in ("forgetting", "learning")
            }
    if merges:
        by_alpha: dict[float, list[dict]] = {}
        for points in merges:
            for point in points:
                by_alpha.setdefault(point["alpha"], []).append(point)
        scores = {
            a: statistics.fmean(p["learning"] - p["forgetting"] for p in pts)
            for a, pts in by_alpha.items()
            if a in MERGE_ALPHAS
        }
        best = max(scores, key=lambda a: scores[a])
        rows[f"merge alpha={best:g} (no replay)"] = {
            key: stats([p[key] for p in by_alpha[best]]) for key in ("forgetting", "learning")
        }
        merge_curve = {
            f"{a:g}": {key: stats([p[key] for p in pts]) for key in ("forgetting", "learning")}
            for a, pts in sorted(by_alpha.items())
        }
    else:
        merge_curve = {}
    return {"rows": rows, "merge_curve": merge_curve}


def merge_frontier(rows: dict[str, Any], curve: dict[str, Any]) -> dict[str, float | None]:
    """Per row: its mean learning minus the merge line's learning at its mean forgetting (the line
    runs through the base at (0, 0), the mean sweep points and the no-replay row; None outside it)."""
    if not curve or "no-replay" not in rows:
        return {}
    points = [(0.0, 0.0)] + [(p["forgetting"]["mean"], p["learning"]["mean"]) for p in curve.values()]
    points.append((rows["no-replay"]["forgetting"]["mean"], rows["no-replay"]["learning"]["mean"]))
    points.sort()
    out: dict[str, float | None] = {}
    for name, row in rows.items():
        x, y = row["forgetting"]["mean"], row["learning"]["mean"]
        out[name] = None
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
            if x0 <= x <= x1 and x1 > x0:
                out[name] = y - (y0 + (y1 - y0) * (x - x0) / (x1 - x0))
                break
    return out


def markdown(result: dict[str, Any]) -> str:
    rows = result["summary"]["rows"]
    curve = result["summary"]["merge_curve"]
    frontier = merge_frontier(rows, curve)
    m = result["machine"]
    lines = [
        "# Forgetting mitigations on the demo setting",
        "",
        f"Written by `benchmarks/methods.py` on {m['date']}: {m['cpu']}, {m['cores']} cores (shared), torch "
        f"{m['torch']}, transformers {m['transformers']}, forgetless {m['forgetless']}; "
        f"{result['wall_s'] / 60:.1f} minutes in all.",
        "",
        f"Demo base model (QUICK: {result['settings']['base']}), one stage of {STAGE_TOKENS:,} tokens on bundled "
        f"security text ({STAGE_TOKENS // BATCH_TOKENS} steps of {BATCH_TOKENS:,} tokens, cosine to 3e-3), "
        f"seeds {result['settings']['seeds']}. Mean ± standard deviation over seeds; held-out losses in "
        f"nats/token ({EVAL_TOKENS:,} tokens per source). Forgetting: general loss increase (lower is better). "
        "Learning: security loss decrease (higher is better). Above the merge line: learning minus the "
        "learning of the interpolation between the base and the no-replay model at the same forgetting "
        "(piecewise linear through the alphas below; > 0: a better trade than merging).",
        "",
        "| method | forgetting (general loss increase) | learning (security loss decrease) | above the merge line "
        "| trainable / all parameters | tokens/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        above = f"{frontier[name]:+.3f}" if frontier.get(name) is not None else "-"
        size = (
            f"{row['trainable_parameters']['mean']:,.0f} / {row['parameters']['mean']:,.0f}"
            if "trainable_parameters" in row
            else "-"
        )
        speed = f"{row['tokens_per_s']['mean']:,.0f}" if "tokens_per_s" in row else "-"
        lines.append(
            f"| {name} | {row['forgetting']['mean']:+.4f} ± {row['forgetting']['std']:.4f} | "
            f"{row['learning']['mean']:+.4f} ± {row['learning']['std']:.4f} | {above} | {size} | {speed} |"
        )
    if curve:
        lines += [
            "",
            "Interpolation `(1 - alpha) * base + alpha * no-replay model` (alpha 0 is the base, 1 the no-replay row):",
            "",
            "| alpha | forgetting | learning |",
            "|---:|---:|---:|",
        ]
        for alpha, row in curve.items():
            lines.append(
                f"| {alpha} | {row['forgetting']['mean']:+.4f} ± {row['forgetting']['std']:.4f} | "
                f"{row['learning']['mean']:+.4f} ± {row['learning']['std']:.4f} |"
            )
    for overhead in [result.get("distill_overhead"), *result.get("distill_overhead_other", [])]:
        if not overhead:
            continue
        lines += [
            "",
            f"Self-distillation cost per micro-batch ({overhead['device']}{', ' + overhead['note'] if overhead.get('note') else ''}; "
            f"{overhead['parameters'] / 1e6:.1f}M parameters, {overhead['micro_batch']} x {overhead['seq_len']} tokens, "
            f"vocabulary {overhead['vocab']:,}; forward + backward, median of rounds):",
            "",
            "| variant | ms per micro-batch | vs no method |",
            "|---|---:|---:|",
        ]
        key = "cpu" if overhead["device"] == "cpu" else "wall"
        for name, row in overhead["variants"].items():
            lines.append(
                f"| {name} | {row[key + '_s_per_micro_batch'] * 1e3:.1f} | {row[key + '_ratio']:.2f}x |"
            )
        if key == "cpu":
            lines.append("")
            lines.append("(process CPU time: the machine is shared, so wall-clock times vary several-fold.)")
    for added in result.get("added", []):
        m = added["machine"]
        lines += [
            "",
            f"Rows {', '.join(added['rows'])} measured again together by `benchmarks/methods.py --add` on "
            f"{m['date']} ({m['cpu']}, {m['cores']} cores, shared: load average {added['load_average_1m_at_end']:.0f} at "
            f"the end; torch {m['torch']}, transformers {m['transformers']}; {added['wall_s'] / 60:.1f} minutes): "
            "their tokens/s compare with each other only. Rows without trainable parameters or tokens/s "
            "come from the earlier full run.",
        ]
    lines += ["", "Settings of every method: `settings.methods` in methods.json.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="run only these methods (no files written)")
    parser.add_argument(
        "--add",
        nargs="+",
        default=None,
        help="run these methods and put their rows into the committed results (the other rows stay)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    parser.add_argument("--render", action="store_true", help="rewrite methods.md from methods.json")
    parser.add_argument(
        "--gpu-overhead",
        action="store_true",
        help="measure distillation's cost on a GPU model; add it to methods.json",
    )
    args = parser.parse_args()
    if args.render:
        result = json.loads((RESULTS / "methods.json").read_text())
        if (RESULTS / "methods_gpu_overhead.json").is_file():  # from --gpu-overhead on a GPU machine
            result["distill_overhead_other"] = [
                json.loads((RESULTS / "methods_gpu_overhead.json").read_text())
            ]
        (RESULTS / "methods.md").write_text(markdown(result), encoding="utf-8")
        print(markdown(result))
        return
    if args.gpu_overhead:
        gpu_overhead()
        return

    import torch

    from forgetless.demo import QUICK, build_base
    from forgetless.weights.merge import load_model_dir

    started = time.monotonic()
    base = build_base(QUICK, quiet=True)
    chosen = args.add or args.only
    methods = {k: v for k, v in METHODS.items() if chosen is None or k in chosen}
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-methods-"))
    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in methods}
    merges = []
    for seed in args.seeds:
        for name, (ratio, config) in methods.items():
            result = run_one(base, name, ratio, config, seed, root)
            per_seed[name].append(result)
            print(
                f"seed {seed} {name:>14}: forgetting {result['forgetting']:+.4f} learning {result['learning']:+.4f} "
                f"cpu {result['cpu_s']:.1f}s wall {result['wall_s']:.1f}s",
                flush=True,
            )
        if "no-replay" in methods and chosen is None:
            merges.append(merge_sweep(base, Path(per_seed["no-replay"][-1]["run_dir"]), seed))
    overhead = None
    if chosen is None:
        model, _ = load_model_dir(base, what="base")
        overhead = distill_overhead(
            model, device="cpu", autocast_dtype=None, micro_batch=16, seq_len=QUICK.seq_len
        )
        overhead["note"] = "the demo base model"
        torch.manual_seed(0)
    result = {
        "kind": "methods_benchmark",
        "machine": machine(),
        "settings": {
            "base": f"{QUICK.num_layers} layers, hidden {QUICK.hidden_size}, {QUICK.base_tokens:,} general tokens",
            "stage_tokens": STAGE_TOKENS,
            "batch_tokens": BATCH_TOKENS,
            "seq_len": QUICK.seq_len,
            "eval_tokens": EVAL_TOKENS,
            "seeds": args.seeds,
            "methods": {
                name: {"replay_ratio": r, "methods": m, "transforms": TRANSFORMS.get(name, [])}
                for name, (r, m) in METHODS.items()
            },
            "merge_alphas": MERGE_ALPHAS,
        },
        "per_seed": {
            name: [{k: v for k, v in r.items() if k != "run_dir"} for r in results]
            for name, results in per_seed.items()
        },
        "summary": summarize(per_seed, merges, args.seeds),
        "distill_overhead": overhead,
        "wall_s": time.monotonic() - started,
    }
    if args.only is not None:
        print(json.dumps(result["summary"], indent=1))
        return
    if args.add is not None:
        result = added_rows(json.loads((RESULTS / "methods.json").read_text()), result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "methods.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "methods.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    print(f"wall time {result['wall_s']:.0f}s; wrote {RESULTS / 'methods.json'} and {RESULTS / 'methods.md'}")


def added_rows(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The committed results `old` with the rows of `new` (a run of some methods) put in, each
    replacing the row of that name; the run's machine, date and load average are kept beside."""
    rows = dict(old["summary"]["rows"])
    rows.update(new["summary"]["rows"])
    old["summary"]["rows"] = rows
    old["per_seed"].update(new["per_seed"])
    old["settings"]["methods"] = new["settings"]["methods"]
    old.setdefault("added", []).append(
        {
            "rows": list(new["summary"]["rows"]),
            "machine": new["machine"],
            "wall_s": new["wall_s"],
            "load_average_1m_at_end": os.getloadavg()[0],
        }
    )
    return old


def gpu_overhead() -> None:
    """Distillation's cost on a GPU, with a 12-layer, 768-wide Llama (bundled tokenizer, random
    weights: the cost does not depend on them), bf16 autocast and the fused loss as the baseline."""
    import torch

    from forgetless.config import InitConfig, ModelConfig
    from forgetless.model.load import build_model, load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer("bundled")
    init = InitConfig(
        architecture="llama", hidden_size=768, num_layers=12, num_heads=12, max_position_embeddings=1024
    )
    model = build_model(ModelConfig(init=init), tokenizer)
    overhead = distill_overhead(
        model,
        device="cuda",
        autocast_dtype=torch.bfloat16,
        micro_batch=8,
        seq_len=1024,
        micro_steps=8,
        rounds=5,
    )
    overhead["note"] = torch.cuda.get_device_name()
    overhead["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    overhead["torch"] = torch.__version__
    print(json.dumps(overhead, indent=1))
    out = Path(os.environ.get("OUT", RESULTS)) / "methods_gpu_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(overhead, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
