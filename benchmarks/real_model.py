"""Continued pretraining of real pretrained models on security text: what they learn and forget.

Each model given (a Hugging Face directory, or a GGUF file imported with `forgetless import-gguf`'s
code) continues on the bundled `security` corpus with its own tokenizer, once per strategy, in
priority order:

    no-replay        security text only (the reference every other row is compared with)
    replay-5%        5% of the tokens replayed from bundled `general` (compute-equivalent)
    mer+replay-5%    MER (Reptile form) with 5% replay, the method that forgot least in
                     benchmarks/results/methods.md
    replay-25%       25% replay
    lora+embeddings  LoRA r=16 on attention and MLP with the embedding trained fully, the best
                     trade of the model transforms in benchmarks/results/methods.md
    adept            a quarter more decoder blocks, those least important for general text,
                     trained alone with per-unit learning rates (ADEPT)

Every strategy trains on the same number of tokens with the same schedule, through forgetless's
own path (a config dict -> `run_training`), and its final model is evaluated with
`evaluate_model`: held-out loss and bits per byte on `general`, `security` and `code`, and every
item of both bundled question sets. The base model is evaluated once, with the same settings, and
shared by all strategies; MCQ changes are paired (the same items before and after), so their
standard error is that of the per-item difference. Runs evaluate nothing themselves.

Goal checks (from the numbers, per strategy; the best strategy is the one passing most, ties to
the smaller general-loss rise):
    forgetting: its general-loss rise is at most 10% of no-replay's
    learning:   its security-loss fall is at least 95% of no-replay's
    security MCQ: accuracy rises by more than its 95% interval (the lower end of the paired
                  interval of the change is above 0)
    general MCQ: no significant drop (the upper end of the paired interval is not below 0)

Sizing (one GPU, default plan): bf16 autocast, sequence 1024, 32 sequences a step, 120 steps
(3,932,160 tokens, about two passes over the 2.05M tokens of SmolLM2-tokenized security text:
every security question's fact is in that text, and facts need more than one exposure to be
learned), cosine re-warmed to 3e-4. Eager, not compiled: torch.compile costs about 30 s per process and again for each freshly
loaded model, more than it saves on runs of this length (`--compile` turns it on). `--budget-s`
sets a deadline: a strategy starts only if its estimated time fits what is left (estimated from
the plan at first, then from the strategies already run), and the JSON and Markdown files are
rewritten after every strategy, so a run cut short still leaves valid results.

    python benchmarks/real_model.py --model SmolLM2-135M-Instruct=PATH [--model NAME=PATH ...]
        [--budget-s 210] [--out benchmarks/results]
    python benchmarks/real_model.py --tiny [--out DIR]   # CPU: a tiny Llama through a GGUF file

`--tiny` builds a tiny random Llama and tokenizer, writes them as a Q8_0 GGUF file, imports it,
and runs the same plan on a few thousand tokens of small slices of the bundled corpora; its numbers
only show the format and are not results. Writes `real_model.json` and `real_model.md` to `--out`
(default: benchmarks/results; a fresh temporary folder with --tiny).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from machine import cpu_model, versions  # benchmarks/machine.py, beside this script

RESULTS = Path(__file__).resolve().parent / "results"

SOURCES = {"general": "bundled:general", "security": "bundled:security", "code": "bundled:code"}
QUESTION_SETS = ["bundled:security-mcq", "bundled:general-mcq"]
Z95 = 1.959963984540054  # two-sided 95% normal quantile
FORGETTING_SHARE_GOAL = 0.10
LEARNING_SHARE_GOAL = 0.95
# Assumed training throughput for the printed plan: a fraction of the device's bf16 peak.
ASSUMED_MFU = {"eager": 0.2, "compiled": 0.35}
ASSUMED_CPU_FLOPS = 1.5e11  # SmolLM2-135M trained at about 200 tokens/s on 2 cores


@dataclass(frozen=True)
class Plan:
    """The settings every strategy of one benchmark run shares."""

    seq_len: int
    batch_tokens: int
    micro_batch: int
    micro_batch_large_vocab: int  # for vocabularies over 65,536, whose logits are materialised
    stage_tokens: int
    peak_lr: float
    warmup: float
    final_lr_ratio: float
    eval_tokens: int  # held-out tokens per source
    eval_batch: int
    mcq_limit: int | None
    mer_every: int
    compile: bool
    device: str
    log_every_steps: int

    @property
    def steps(self) -> int:
        return math.ceil(self.stage_tokens / self.batch_tokens)


GPU_PLAN = Plan(
    seq_len=1024,
    batch_tokens=32768,
    micro_batch=32,
    micro_batch_large_vocab=8,
    stage_tokens=3_932_160,
    peak_lr=3e-4,
    warmup=0.05,
    final_lr_ratio=0.1,
    eval_tokens=131072,
    eval_batch=32,
    mcq_limit=None,
    mer_every=30,  # 4 meta-updates in 120 steps, as methods.md's every 4 in 16 steps
    compile=False,
    device="auto",
    log_every_steps=5,
)
TINY_PLAN = Plan(
    seq_len=64,
    batch_tokens=512,
    micro_batch=4,
    micro_batch_large_vocab=4,
    stage_tokens=3072,
    peak_lr=1e-3,
    warmup=0.1,
    final_lr_ratio=0.1,
    eval_tokens=512,
    eval_batch=8,
    mcq_limit=8,
    mer_every=2,
    compile=False,
    device="cpu",
    log_every_steps=2,
)


@dataclass(frozen=True)
class Strategy:
    name: str
    replay_ratio: float
    methods: dict[str, Any] = field(default_factory=dict)
    cost: float = 1.0  # time relative to no-replay, for the first estimate
    # model.transforms; an expand_blocks `count: "quarter"` becomes a quarter of the model's blocks
    transforms: tuple[dict[str, Any], ...] = ()


def strategies(plan: Plan) -> list[Strategy]:
    """The strategies in priority order (what a deadline drops first comes last)."""
    return [
        Strategy("no-replay", 0.0),
        Strategy("replay-5%", 0.05),
        Strategy("mer+replay-5%", 0.05, {"mer": {"every": plan.mer_every, "eps": 0.1}}, cost=1.05),
        Strategy("replay-25%", 0.25),
        Strategy(
            "lora+embeddings",
            0.0,
            transforms=(
                {"kind": "lora", "r": 16, "alpha": 32, "target": ["attention", "mlp"], "train_embeddings": True},
            ),
        ),
        Strategy(
            "adept",
            0.0,
            {"train_only": ["new"], "unit_lr": {"probe": "general", "every_tokens": plan.stage_tokens // 4}},
            transforms=(
                {"kind": "expand_blocks", "select": "least_important", "count": "quarter", "probe": "general"},
            ),
            cost=1.1,
        ),
    ]


def model_transforms(model_dir: Path, strategy: Strategy) -> list[dict[str, Any]]:
    """The strategy's `model.transforms` for this model (a quarter of its blocks where it says so)."""
    blocks = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("num_hidden_layers", 4)
    return [
        {**spec, "count": max(1, blocks // 4)} if spec.get("count") == "quarter" else dict(spec)
        for spec in strategy.transforms
    ]


# ---------------------------------------------------------------------------------------------
# Configs: the same dicts a user would write as YAML


def run_config(
    model_dir: Path, plan: Plan, strategy: Strategy, sources: dict, out_dir: Path, cache: Path
) -> dict:
    """One strategy's continued pretraining; the run evaluates nothing itself (see `eval_config`)."""
    stage: dict[str, Any] = {
        "name": "security",
        "tokens": plan.stage_tokens,
        "mix": {"security": 1.0},
        "schedule": {
            "kind": "cosine",
            "peak_lr": plan.peak_lr,
            "warmup": plan.warmup,
            "final_lr_ratio": plan.final_lr_ratio,
        },
    }
    if strategy.replay_ratio > 0:
        stage["replay"] = {
            "from": "general",
            "ratio": strategy.replay_ratio,
            "accounting": "compute_equivalent",
        }
    if strategy.methods:
        stage["methods"] = strategy.methods
    model: dict[str, Any] = {"path": str(model_dir)}
    if strategy.transforms:
        model["transforms"] = model_transforms(model_dir, strategy)
    return {
        "model": model,
        "tokenizer": str(model_dir),
        "sources": sources,
        "stages": [stage],
        "train": {
            "seq_len": plan.seq_len,
            "batch_tokens": plan.batch_tokens,
            "micro_batch": micro_batch(model_dir, plan),
            "precision": "auto",
            "compile": plan.compile,
            "device": plan.device,
            "seed": 0,
            "log_every_steps": plan.log_every_steps,
        },
        "eval": {"sources": [], "mcq": [], "dense_start": []},
        "output": {"dir": str(out_dir)},
        "cache_dir": str(cache),
    }


def eval_config(model_dir: Path, plan: Plan, sources: dict, cache: Path) -> dict:
    """What `evaluate_model` measures before and after: held-out text of every source, both question sets."""
    config = run_config(model_dir, plan, strategies(plan)[0], sources, cache.parent / "unused", cache)
    config["eval"] = {
        "sources": list(sources),
        "mcq": QUESTION_SETS,
        "mcq_limit": plan.mcq_limit,
        "max_tokens": plan.eval_tokens,
        "batch_size": plan.eval_batch,
    }
    return config


def micro_batch(model_dir: Path, plan: Plan) -> int:
    vocab = model_facts(model_dir)["vocab_size"]
    return plan.micro_batch_large_vocab if vocab > 65536 else plan.micro_batch


# ---------------------------------------------------------------------------------------------
# One model: base evaluation, then every strategy that fits the deadline


class Deadline:
    """Seconds left of a budget (None: no budget)."""

    def __init__(self, budget_s: float | None) -> None:
        self.budget_s = budget_s
        self.start = time.monotonic()

    def left(self) -> float:
        return math.inf if self.budget_s is None else self.budget_s - (time.monotonic() - self.start)

    def fits(self, seconds: float) -> bool:
        return seconds <= self.left()


def evaluate(model_dir: Path, config: dict) -> dict[str, Any]:
    """Held-out loss and bpb per source and MCQ accuracy per set, with each set's 0/1 answers."""
    from forgetless.config import config_from_dict
    from forgetless.evaluate.model_eval import EvalOptions, evaluate_model

    started = time.perf_counter()
    options = EvalOptions(mcq_per_item=True, progress=False)
    result = evaluate_model(model_dir, options, config=config_from_dict(config))
    mcq = {}
    for name, scores in result["mcq"].items():
        mcq[name] = {
            "acc": scores["acc"],
            "acc_stderr": scores["acc_stderr"],
            "acc_ci95": _interval(scores["acc"], scores["acc_stderr"]),
            "acc_norm": scores["acc_norm"],
            "n": scores["n"],
            "correct": "".join(str(c) for c in scores["outcomes"]),  # item i's outcome is character i
        }
    heldout = {
        name: {k: r[k] for k in ("loss", "bpb", "tokens", "bytes")} for name, r in result["heldout"].items()
    }
    return {"heldout": heldout, "mcq": mcq, "eval_s": time.perf_counter() - started}


def run_strategy(
    model_dir: Path, plan: Plan, strategy: Strategy, sources: dict, work: Path, base: dict, keep_models: bool
) -> dict[str, Any]:
    import shutil

    import torch

    from forgetless.config import config_from_dict
    from forgetless.train.run import run_training

    started = time.perf_counter()
    cache = work / "cache"
    run_dir = run_training(
        config_from_dict(run_config(model_dir, plan, strategy, sources, work / strategy.name, cache)),
        quiet=True,
    )
    train_s = time.perf_counter() - started
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    after = evaluate(run_dir / "final", eval_config(model_dir, plan, sources, cache))
    if not keep_models:
        shutil.rmtree(run_dir / "final", ignore_errors=True)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    end = next(r for r in lines if r["kind"] == "run_end")
    return {
        "replay_ratio": strategy.replay_ratio,
        "methods": strategy.methods,
        "transforms": model_transforms(model_dir, strategy),
        "tokens": end["tokens"],
        "steps": end["step"],
        "train_s": end["train_s"],
        "tokens_per_s": end["tokens_per_s"],
        "run_s": train_s,  # load, train, save: the whole run_training call
        "wall_s": time.perf_counter() - started,
        "train_loss": [[r["tokens"], r["loss"]] for r in lines if r["kind"] == "train"],
        "after": after,
        "change": changes(base, after),
    }


def changes(before: dict, after: dict) -> dict[str, Any]:
    """After minus before: held-out loss and bpb per source; MCQ accuracy per set with the paired
    standard error of the per-item difference and its 95% interval."""
    out: dict[str, Any] = {"heldout": {}, "mcq": {}}
    for name, b in before["heldout"].items():
        a = after["heldout"][name]
        out["heldout"][name] = {"loss": a["loss"] - b["loss"], "bpb": a["bpb"] - b["bpb"]}
    for name, b in before["mcq"].items():
        a = after["mcq"][name]
        diffs = [int(y) - int(x) for x, y in zip(b["correct"], a["correct"], strict=True)]
        mean = sum(diffs) / len(diffs)
        se = 0.0
        if len(diffs) > 1:
            se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
        out["mcq"][name] = {"acc": mean, "stderr": se, "ci95": _interval(mean, se)}
    return out


def goal_checks(model: dict[str, Any]) -> dict[str, Any]:
    """The goal checks of every strategy run, and the best strategy (see the module docstring)."""
    runs = model.get("strategies", {})
    if "no-replay" not in runs:
        return {"note": "no-replay did not run: nothing to compare with"}
    reference = runs["no-replay"]["change"]["heldout"]
    rise_ref, fall_ref = reference["general"]["loss"], -reference["security"]["loss"]
    rows = {}
    for name, run in runs.items():
        change = run["change"]
        rise, fall = change["heldout"]["general"]["loss"], -change["heldout"]["security"]["loss"]
        forgetting_share = rise / rise_ref if rise_ref > 0 else None
        learning_share = fall / fall_ref if fall_ref > 0 else None
        checks = {
            # When no-replay forgot nothing there is no rise to keep a share of: pass only without a rise.
            "forgetting": (forgetting_share <= FORGETTING_SHARE_GOAL)
            if forgetting_share is not None
            else rise <= 0,
            "learning": learning_share is not None and learning_share >= LEARNING_SHARE_GOAL,
            "security_mcq": change["mcq"].get("security-mcq", {}).get("ci95", [0, 0])[0] > 0,
            "general_mcq": change["mcq"].get("general-mcq", {}).get("ci95", [0, 0])[1] >= 0,
        }
        rows[name] = {
            "general_loss_rise": rise,
            "security_loss_fall": fall,
            "forgetting_share": forgetting_share,
            "learning_share": learning_share,
            "checks": checks,
            "passed": sum(checks.values()),
        }
    best = min(rows, key=lambda n: (-rows[n]["passed"], rows[n]["general_loss_rise"]))
    return {
        "strategies": rows,
        "best": best,
        "goal_met": rows[best]["passed"] == 4,
        "thresholds": {
            "forgetting_share": FORGETTING_SHARE_GOAL,
            "learning_share": LEARNING_SHARE_GOAL,
            "z": Z95,
        },
    }


def run_model(
    name: str,
    model_dir: Path,
    plan: Plan,
    sources: dict,
    work: Path,
    deadline: Deadline,
    result: dict,
    save: Any,
    only: list[str] | None,
    keep_models: bool,
) -> None:
    facts = model_facts(model_dir)
    entry = result["models"].setdefault(name, {})
    entry.update({"path": str(model_dir), **facts, "strategies": {}, "skipped": {}})
    chosen = [s for s in strategies(plan) if only is None or s.name in only]
    estimate = plan_estimate(facts, plan, result["device_kind"], chosen)
    entry["estimate_s"] = estimate
    save()
    print(
        f"[{name}] {facts['model_class']}, {facts['parameters']:,} parameters, vocabulary {facts['vocab_size']:,}: "
        f"assumed {estimate['assumed_tokens_per_s']:,.0f} tokens/s, ~{estimate['per_strategy_s']:.0f}s per strategy, "
        f"~{estimate['total_s']:.0f}s in all ({deadline.left():.0f}s left)",
        flush=True,
    )
    if not deadline.fits(estimate["base_eval_s"] + estimate["per_strategy_s"]):
        entry["skipped"]["all"] = (
            f"the budget left ({deadline.left():.0f}s) does not fit the base evaluation and one run"
        )
        save()
        return
    cache = work / "cache"
    base = evaluate(model_dir, eval_config(model_dir, plan, sources, cache))
    entry["base"] = base
    save()
    print(f"[{name}] base evaluated in {base['eval_s']:.1f}s: {_losses(base)}", flush=True)

    measured: list[float] = []
    for strategy in chosen:
        expected = (
            max(measured) * strategy.cost
            if measured
            else estimate["per_strategy_s"] * strategy.cost + base["eval_s"] - estimate["base_eval_s"]
        )
        if not deadline.fits(expected):
            entry["skipped"][strategy.name] = f"expected {expected:.0f}s, {deadline.left():.0f}s left"
            print(f"[{name}] {strategy.name}: skipped ({entry['skipped'][strategy.name]})", flush=True)
            save()
            continue
        run = run_strategy(model_dir, plan, strategy, sources, work / name, base, keep_models)
        measured.append(run["wall_s"] / strategy.cost)
        entry["strategies"][strategy.name] = run
        entry["checks"] = goal_checks(entry)
        save()
        heldout = run["change"]["heldout"]
        print(
            f"[{name}] {strategy.name}: {run['wall_s']:.0f}s ({run['tokens_per_s']:,.0f} tokens/s), "
            f"general {heldout['general']['loss']:+.4f}, security {heldout['security']['loss']:+.4f}, "
            f"code {heldout['code']['loss']:+.4f}",
            flush=True,
        )


def plan_estimate(facts: dict, plan: Plan, device_kind: str, chosen: list[Strategy]) -> dict[str, float]:
    """Expected seconds, from an assumed share of the device's peak (printed with the plan)."""
    flops_per_token = 6 * facts["parameters"] + 12 * facts["num_layers"] * facts["hidden_size"] * plan.seq_len
    if device_kind == "cuda":
        mfu = ASSUMED_MFU["compiled" if plan.compile else "eager"]
        flops = mfu * peak_bf16_flops()
        fixed = 8.0 + (30.0 if plan.compile else 0.0)  # load, save, reload; compile
    else:
        flops, fixed = ASSUMED_CPU_FLOPS, 2.0
    tokens_per_s = flops / flops_per_token
    mcq_tokens = 2814 * 4 * 48 if plan.mcq_limit is None else plan.mcq_limit * 2 * 4 * 48
    eval_tokens = 3 * plan.eval_tokens + mcq_tokens
    base_eval_s = fixed / 2 + eval_tokens / (3 * tokens_per_s)  # a forward pass: a third of a step
    per_strategy_s = fixed + plan.stage_tokens / tokens_per_s + base_eval_s
    return {
        "assumed_tokens_per_s": tokens_per_s,
        "base_eval_s": base_eval_s,
        "per_strategy_s": per_strategy_s,
        "total_s": base_eval_s + sum(per_strategy_s * s.cost for s in chosen),
    }


def peak_bf16_flops() -> float:
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    for key, flops in (("H200", 790e12), ("H100", 790e12), ("A100", 312e12)):
        if key in name:
            return flops
    return 200e12


def model_facts(model_dir: Path) -> dict[str, Any]:
    """Class, sizes and parameter count of an HF model dir, from its config and safetensors headers."""
    config = json.loads((model_dir / "config.json").read_text())
    text = config.get("text_config") or config
    index = model_dir / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.is_file()
        else ["model.safetensors"]
    )
    parameters = 0
    for file in files:
        with (model_dir / file).open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for key, entry in header.items():
            if key != "__metadata__":
                parameters += math.prod(entry["shape"])
    return {
        "model_class": (config.get("architectures") or ["?"])[0],
        "model_type": config.get("model_type"),
        "parameters": parameters,
        "vocab_size": text["vocab_size"],
        "hidden_size": text["hidden_size"],
        "num_layers": text["num_hidden_layers"],
        "dtype": config.get("dtype") or config.get("torch_dtype"),
    }


# ---------------------------------------------------------------------------------------------
# Tiny mode: a tiny model through a GGUF file, small slices of the bundled corpora


def tiny_inputs(work: Path) -> tuple[Any, dict]:
    """A tiny random Llama and tokenizer, written as a Q8_0 GGUF file and imported back, and
    sources made of the first documents of each bundled corpus (cut to 2,000 characters)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from forgetless.data import bundled
    from forgetless.model.gguf import import_gguf, write_llama_gguf

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    sources, texts = {}, []
    for name in SOURCES:
        path = data / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for split, count in (("train", 40), ("heldout", 8)):
                corpus = Path(bundled.__file__).parent / "corpora" / f"{name}.{split}.jsonl.gz"
                with gzip.open(corpus, "rt", encoding="utf-8") as handle:
                    for _, line in zip(range(count), handle, strict=False):
                        text = json.loads(line)["text"][:2000]
                        texts.append(text)
                        out.write(json.dumps({"text": text}) + "\n")
        sources[name] = {"files": [str(path)], "heldout": {"documents": 8}}

    eos = "<|endoftext|>"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, bos_token=eos)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    gguf_file = write_llama_gguf(LlamaForCausalLM(config), fast, work / "tiny.Q8_0.gguf", tensor_type="Q8_0")
    return import_gguf(gguf_file, work / "tiny-model"), sources


# ---------------------------------------------------------------------------------------------
# Output


def write_results(result: dict, out: Path) -> None:
    """real_model.json and real_model.md in `out`, each written whole under a temporary name first."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("real_model.json", json.dumps(result, indent=1) + "\n"),
        ("real_model.md", markdown(result)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


def markdown(result: dict) -> str:
    plan = result["plan"]
    tiny = result["mode"] == "tiny"
    lines = [
        "# Continued pretraining of real models on security text"
        + (" (tiny CPU mode: format only)" if tiny else ""),
        "",
        f"Written by `benchmarks/real_model.py` on {result['date']}: {result['device']}; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + f"; {result['wall_s']:.0f}s in all, budget {_budget(result)}; status: {result['status']}.",
        "",
        f"Each strategy: {plan['stage_tokens']:,} tokens of continued pretraining ({plan['steps']} steps of "
        f"{plan['batch_tokens']:,} tokens, sequence {plan['seq_len']}, cosine re-warmed to {plan['peak_lr']:g}, "
        f"{'bf16 autocast' if result['device_kind'] == 'cuda' else 'float32'}, "
        f"{'compiled' if plan['compile'] else 'eager'}), the model's own tokenizer; replay is compute-equivalent "
        f"(replayed tokens count inside the budget). Held-out loss in nats/token on up to {plan['eval_tokens']:,} "
        "tokens per source, bits per byte on the same text; MCQ accuracy on "
        + ("all items" if plan["mcq_limit"] is None else f"the first {plan['mcq_limit']} items")
        + " of each bundled set, 95% intervals (±1.96 standard errors); MCQ changes are paired on the same items. "
        "The base model is evaluated once and shared.",
    ]
    for name, model in result["models"].items():
        lines += ["", f"## {name}", ""]
        imported = result.get("imports", {}).get(name)
        origin = ""
        if imported:
            types = ", ".join(f"{t} x{n}" for t, n in sorted(imported["tensor_types"].items()))
            origin = (
                f" Imported from a GGUF file ({types}) in {imported['seconds']:.0f}s, weights in bfloat16."
            )
        lines.append(
            f"{model.get('model_class')}, {model.get('parameters', 0):,} parameters, vocabulary "
            f"{model.get('vocab_size', 0):,}.{origin}"
        )
        if "base" not in model:
            lines += ["", f"Not run: {model.get('skipped', {}).get('all', 'no base evaluation')}."]
            continue
        base = model["base"]
        lines += [
            "",
            "Base model: held-out loss "
            + ", ".join(f"{s} {r['loss']:.4f} ({r['bpb']:.4f} bits/byte)" for s, r in base["heldout"].items())
            + "; MCQ "
            + ", ".join(f"{s} {_acc(r)}" for s, r in base["mcq"].items())
            + ".",
            "",
            "| strategy | forgetting: general loss change | learning: security loss change | code loss change "
            "| bits/byte change (general / security / code) | tokens/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for strategy, run in model["strategies"].items():
            h = run["change"]["heldout"]
            lines.append(
                f"| {strategy} | {h['general']['loss']:+.4f} | {h['security']['loss']:+.4f} | {h['code']['loss']:+.4f} "
                f"| {h['general']['bpb']:+.4f} / {h['security']['bpb']:+.4f} / {h['code']['bpb']:+.4f} "
                f"| {run['tokens_per_s']:,.0f} |"
            )
        lines += [
            "",
            "| strategy | security MCQ before -> after | change (95% CI) | general MCQ before -> after | change (95% CI) |",
            "|---|---:|---:|---:|---:|",
        ]
        for strategy, run in model["strategies"].items():
            cells = []
            for qset in ("security-mcq", "general-mcq"):
                if qset not in base["mcq"]:
                    cells += ["-", "-"]
                    continue
                change = run["change"]["mcq"][qset]
                cells += [
                    f"{_acc(base['mcq'][qset])} -> {_acc(run['after']['mcq'][qset])}",
                    f"{change['acc']:+.3f} [{change['ci95'][0]:+.3f}, {change['ci95'][1]:+.3f}]",
                ]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        checks = model.get("checks") or {}
        if "strategies" in checks:
            lines += [
                "",
                f"Goal checks (forgetting: general-loss rise <= {FORGETTING_SHARE_GOAL:.0%} of no-replay's; learning: "
                f"security-loss fall >= {LEARNING_SHARE_GOAL:.0%} of no-replay's; security MCQ: the change's 95% "
                "interval is above 0; general MCQ: its interval reaches 0 or above):",
                "",
                "| strategy | general-loss rise, share of no-replay's | security-loss fall, share of no-replay's "
                "| forgetting | learning | security MCQ up | no general MCQ drop |",
                "|---|---:|---:|:-:|:-:|:-:|:-:|",
            ]
            for strategy, row in checks["strategies"].items():
                c = row["checks"]
                lines.append(
                    f"| {strategy} | {row['general_loss_rise']:+.4f} ({_share(row['forgetting_share'])}) "
                    f"| {row['security_loss_fall']:+.4f} ({_share(row['learning_share'])}) | "
                    + " | ".join(
                        _pass(c[k]) for k in ("forgetting", "learning", "security_mcq", "general_mcq")
                    )
                    + " |"
                )
            best = checks["best"]
            lines += [
                "",
                f"Best strategy: **{best}** ({checks['strategies'][best]['passed']} of 4 checks). "
                + ("Goal met." if checks["goal_met"] else "Goal not met."),
            ]
        elif checks.get("note"):
            lines += ["", checks["note"] + "."]
        for strategy, why in model.get("skipped", {}).items():
            if strategy != "all":
                lines.append(f"\nNot run ({strategy}): {why}.")
    return "\n".join(lines) + "\n"


def _interval(mean: float, se: float) -> list[float]:
    return [mean - Z95 * se, mean + Z95 * se]


def _acc(scores: dict) -> str:
    low, high = scores["acc_ci95"]
    return f"{scores['acc']:.3f} [{low:.3f}, {high:.3f}]"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _pass(ok: bool) -> str:
    return "pass" if ok else "fail"


def _budget(result: dict) -> str:
    budget = result["plan"].get("budget_s")
    return "none" if budget is None else f"{budget:.0f}s"


def _import_record(imported: Any) -> dict[str, Any]:
    return {
        "file": imported.facts.name,
        "architecture": imported.facts.architecture,
        "tensor_types": imported.facts.tensor_types,
        "seconds": imported.total_s,
    }


def _distribution_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _losses(evaluation: dict) -> str:
    return ", ".join(f"{s} {r['loss']:.3f}" for s, r in evaluation["heldout"].items())


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=PATH", help="HF dir or .gguf file"
    )
    parser.add_argument("--tiny", action="store_true", help="CPU mode: a tiny model through a GGUF file")
    parser.add_argument("--budget-s", type=float, default=None, help="deadline for the whole benchmark")
    parser.add_argument("--out", type=Path, default=None, help="folder for real_model.json and real_model.md")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for runs and caches (default: temporary)"
    )
    parser.add_argument("--tokens", type=int, default=None, help="training tokens per strategy")
    parser.add_argument("--only", nargs="+", default=None, help="run only these strategies")
    parser.add_argument("--compile", action="store_true", help="torch.compile each decoder block")
    parser.add_argument("--keep-models", action="store_true", help="keep each strategy's final model")
    parser.add_argument(
        "--plan", choices=["gpu", "tiny"], default=None, help="sizes (default: tiny with --tiny, else gpu)"
    )
    args = parser.parse_args(argv)
    if bool(args.model) == args.tiny:
        parser.error("give --model NAME=PATH (one or more) or --tiny")
    known = [s.name for s in strategies(GPU_PLAN)]
    if args.only and not set(args.only) <= set(known):
        parser.error(f"--only: strategies are {', '.join(known)}")

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if args.tiny:
        torch.set_num_threads(1)  # tiny models run fastest on one thread, far slower with threads competing
    deadline = Deadline(args.budget_s)
    started = time.monotonic()
    plan = TINY_PLAN if (args.plan or ("tiny" if args.tiny else "gpu")) == "tiny" else GPU_PLAN
    if args.tokens is not None:
        plan = replace(plan, stage_tokens=args.tokens)
    if args.compile:
        plan = replace(plan, compile=True)
    out = args.out or (Path(tempfile.mkdtemp(prefix="real-model-tiny-")) if args.tiny else RESULTS)
    work = args.work or Path(tempfile.mkdtemp(prefix="real-model-work-"))
    cuda = plan.device != "cpu" and torch.cuda.is_available()
    result: dict[str, Any] = {
        "benchmark": "real_model",
        "mode": "tiny" if args.tiny else "models",
        "status": "running",
        "device": torch.cuda.get_device_name() if cuda else f"CPU: {cpu_model()}, {os.cpu_count()} cores",
        "device_kind": "cuda" if cuda else "cpu",
        "versions": {**versions("torch", "transformers", "forgetless"), **_distribution_versions("gguf")},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "plan": {**asdict(plan), "steps": plan.steps, "budget_s": args.budget_s},
        "models": {},
        "wall_s": 0.0,
    }
    if not cuda:
        result["load_average"] = os.getloadavg()[0]

    def save(final: bool = False) -> None:
        result["wall_s"] = time.monotonic() - started
        done = sum(len(m.get("strategies", {})) for m in result["models"].values())
        skipped = any(m.get("skipped") for m in result["models"].values())
        if final:
            result["status"] = "cut short by the budget" if skipped else "complete"
        else:  # what a file left by a killed run says
            result["status"] = f"unfinished: {done} strategy run(s) written"
        write_results(result, out)

    models: list[tuple[str, Path]] = []
    sources = dict(SOURCES)
    if args.tiny:
        imported, sources = tiny_inputs(work)
        result["imports"] = {"tiny-llama": _import_record(imported)}
        models.append(("tiny-llama", imported.out_dir))
    for item in args.model:
        name, _, path = item.rpartition("=")
        path = Path(path).expanduser()
        name = name or path.stem
        if path.is_file():  # a GGUF file (import_gguf checks its magic bytes)
            from forgetless.model.gguf import import_gguf

            imported = import_gguf(path, work / f"{name}-hf")
            result.setdefault("imports", {})[name] = _import_record(imported)
            path = imported.out_dir
        models.append((name, path))
    result["sources"] = sources
    save()
    print(f"writing {out / 'real_model.json'} and {out / 'real_model.md'}; work folder {work}", flush=True)
    for name, model_dir in models:
        run_model(name, model_dir, plan, sources, work, deadline, result, save, args.only, args.keep_models)
    save(final=True)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
