"""Training throughput and memory on one GPU: forgetless against the Hugging Face Trainer, in one run.

Models: random-init Llama, 134M = 12 x 768 and 1.1B = 16 x 2048 (32 heads / 8 KV heads, FFN 8192);
vocab 32000, sequence 2048, bf16, SDPA attention, fused AdamW. The run works through a plan of
items in priority order, each in its own process with its own time limit, against one deadline
(`--budget-s`): an item that would not finish before the deadline is skipped, and the results file
is rewritten after every item, so a run cut short still leaves a valid file and the table.

1. `peak`: an 8192^3 bf16 matrix product, the denominator of MFU.
2. `baselines`: the Trainer tuned by a careful user (`torch_compile=True`) at the micro-batch that was
   best in the first round, and the Trainer as most users run it (bf16=True, no compile).
3. `forgetless`: `forgetless train` (config, prepare, loop) with its best settings: compiled blocks,
   the fused linear + cross-entropy, bf16 compute copies of float32 master weights
   (`train.mixed_precision: fsdp`).
4. `profile`: one 1.1B step (micro-batch 16) under `torch.cuda.memory._record_memory_history`, with
   the first round's settings (autocast); the live memory at the peak summarised by category.
5. `levers`: the variants that show what each lever buys (first-round settings; selective
   activation checkpointing).
6. `max_micro_batch`: per model and side, the largest micro-batch that fits at sequence 2048:
   eager, two steps, each probe in its own process, on a coarse grid.
`--extended` adds, after these: `kernels`, the fused linear + cross-entropy alone (forgetless's
against Liger-Kernel's and cut-cross-entropy's, when installed, and the plain loss: time, memory,
error); the Trainer's search one micro-batch further; full runs with the Liger and
cut-cross-entropy losses; the profile of the best settings; more lever variants.

Steps: each job warms up (compilation happens there), then times steps with a device
synchronisation at each step end; the median step gives tokens/s. MFU = tokens/s x (6 x
non-embedding params + 12 x layers x hidden x seq) / peak. forgetless's final model save is left
out of its jobs (it is not training), and both sides initialise their model on the device.
Compiled code is cached in one folder shared by all the jobs (`--cache-dir`).

    python benchmarks/gpu_throughput.py --budget-s 400                 # the default plan, on the GPU
    python benchmarks/gpu_throughput.py --extended --budget-s 480      # more, as the budget allows
    python benchmarks/gpu_throughput.py --list                         # the plan with estimates
    python benchmarks/gpu_throughput.py --toy                          # the whole plan on CPU, tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = {
    "llama-134m": dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12, intermediate_size=2048),
    "llama-1.1b": dict(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192),
    "toy": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128),
    "toy-wide": dict(hidden_size=96, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=192),
}
VOCAB = 32000
SEQ_LEN = 2048
TOY = {"seq_len": 64, "vocab": 512, "warmup": 1, "timed": 2, "models": ("toy", "toy-wide")}
TOY_CAPACITY_SEQUENCES = 6  # --toy: probes above this many sequences count as out of memory (simulated)
SNAPSHOT_LIMIT_BYTES = 10 << 20  # the raw memory snapshot is kept only when smaller than this

# forgetless settings by name: train.* keys of the run config
FIRST_ROUND = {"mixed_precision": "autocast", "activation_checkpointing": False, "fused_loss": "on"}
BEST = {**FIRST_ROUND, "mixed_precision": "fsdp"}
SELECTIVE_BLOCKS = {**BEST, "activation_checkpointing": "selective", "selective_checkpointing": {"every": 2}}


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass
class Item:
    id: str
    group: str
    job: dict
    est_s: float  # expected wall time on an H200 (round 1's per-job times, less the work left out)
    timeout_s: float
    notes: str = ""
    extended: bool = False


def settings_label(settings: dict) -> str:
    parts = [settings.get("mixed_precision", "autocast")]
    ac = settings.get("activation_checkpointing", False)
    if ac == "selective":
        sel = {"every": 2, "part": "block", **settings.get("selective_checkpointing", {})}
        parts.append(f"recompute {sel['part']} every {sel['every']}")
    elif ac:
        parts.append("recompute all blocks")
    if settings.get("fused_loss", "on") not in ("on", "auto"):
        parts.append(f"loss {settings['fused_loss']}")
    if settings.get("optimizer_in_backward"):
        parts.append("step in backward, no clipping")
    return ", ".join(parts)


def build_plan(toy: bool, extended: bool) -> list[Item]:
    """Every item in priority order; `extended` items come last."""
    big, small = ("toy-wide", "toy") if toy else ("llama-1.1b", "llama-134m")
    mb = {small: 4 if toy else 32, big: 2 if toy else 16}
    hf_default_mb = {small: 4 if toy else 16, big: 2 if toy else 8}
    items: list[Item] = [Item("peak", "peak", {"kind": "peak"}, 10, 120)]

    def hf(model: str, micro_batch: int, compile_: bool, est: float, group: str = "baselines", **kw) -> Item:
        name = f"{model}/trainer{'-compiled' if compile_ else '-default'}/mb{micro_batch}"
        job = {"kind": "hf", "model": model, "micro_batch": micro_batch, "compile": compile_}
        return Item(name, group, job, est, 240, **kw)

    def fl(model: str, micro_batch: int, settings: dict, est: float, group: str, tag: str, **kw) -> Item:
        job = {
            "kind": "forgetless",
            "model": model,
            "micro_batch": micro_batch,
            "compile": True,
            "train": settings,
        }
        return Item(f"{model}/forgetless-{tag}/mb{micro_batch}", group, job, est, 240, **kw)

    items += [
        hf(small, mb[small], True, 48),
        hf(big, mb[big], True, 58),
        hf(small, hf_default_mb[small], False, 17),
        hf(big, hf_default_mb[big], False, 22),
        fl(small, mb[small], BEST, 22, "forgetless", "best"),
        fl(big, mb[big], BEST, 32, "forgetless", "best"),
    ]
    profile_job = {"kind": "forgetless", "model": big, "micro_batch": mb[big], "compile": True}
    items.append(
        Item(
            f"{big}/profile-first-round/mb{mb[big]}",
            "profile",
            {**profile_job, "train": FIRST_ROUND, "profile": True},
            40,
            240,
            "3 steps; the peak's live memory by category",
        )
    )
    items += [
        fl(big, mb[big], FIRST_ROUND, 30, "levers", "first-round"),
        fl(big, mb[big], SELECTIVE_BLOCKS, 32, "levers", "selective"),
    ]
    for model in (small, big):
        for side in ("hf", "forgetless"):
            job = {"kind": "max_micro_batch", "model": model, "side": side, "train": BEST}
            est = 18 if model == small else 24
            items.append(Item(f"{model}/max-micro-batch/{side}", "max_micro_batch", job, est, 2 * est))
    if not extended:
        return items
    more = [
        Item("fused-loss-kernels", "kernels", {"kind": "kernels", "models": [small, big]}, 45, 150),
        hf(small, mb[small] * 2, True, 50, group="baselines"),
        hf(big, mb[big] * 2, True, 65, group="baselines"),
        fl(big, mb[big], {**BEST, "fused_loss": "liger"}, 32, "kernels", "liger"),
        fl(big, mb[big], {**BEST, "fused_loss": "cce"}, 32, "kernels", "cce"),
        Item(
            f"{big}/profile-best/mb{mb[big]}",
            "profile",
            {**profile_job, "train": BEST, "profile": True},
            30,
            240,
        ),
        fl(small, mb[small], FIRST_ROUND, 20, "levers", "first-round"),
        fl(
            big,
            mb[big],
            {
                **BEST,
                "activation_checkpointing": "selective",
                "selective_checkpointing": {"every": 1, "part": "attention"},
            },
            32,
            "levers",
            "attention",
        ),
        fl(
            big,
            mb[big],
            {**BEST, "activation_checkpointing": "selective", "selective_checkpointing": {"every": 3}},
            32,
            "levers",
            "selective3",
        ),
        fl(
            big,
            mb[big],
            {**FIRST_ROUND, "optimizer_in_backward": True, "grad_clip": None},
            32,
            "levers",
            "in-backward",
        ),
        fl(small, mb[small] * 2, BEST, 25, "forgetless", "best"),
        fl(big, mb[big] * 2, SELECTIVE_BLOCKS, 45, "forgetless", "selective"),
    ]
    for item in more:
        item.extended = True
    return items + more


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


def model_counts(sizes: dict, seq_len: int, vocab: int) -> dict:
    """Parameters (all, non-embedding), training FLOPs per token as in PERFORMANCE.md, weight shapes."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(_llama_config(sizes, seq_len, vocab))
    total = sum(p.numel() for p in model.parameters())
    params = total - model.get_input_embeddings().weight.numel()
    cfg = model.config
    return {
        "params": total,
        "non_embedding_params": params,
        "flops_per_token": 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len,
        "weight_numels": sorted({p.numel() for p in model.parameters() if p.dim() == 2}),
    }


def worker_peak(job: dict) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"peak_tflops": None, "note": "no CUDA device (toy run): MFU is not computed"}
    n = 8192
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=gen)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    props = torch.cuda.get_device_properties(0)
    return {
        "peak_tflops": 2 * n**3 / statistics.median(times) / 1e12,
        "device_memory_gib": props.total_memory / 2**30,
        "device": props.name,
    }


def worker_hf(job: dict) -> dict:
    import torch
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    seq_len, mb, device = job["seq_len"], job["micro_batch"], job["device"]
    steps = job["warmup"] + job["timed"]
    with torch.device(device):  # initialised on the device: seconds less per job, same steps
        model = LlamaForCausalLM(_llama_config(MODELS[job["model"]], seq_len, job["vocab"]))
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
    step_s = statistics.median(step_times[job["warmup"] :])
    return {
        "tokens_per_s": mb * seq_len / step_s,
        "step_s": step_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
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


def forgetless_config(job: dict, tmp_path: Path) -> dict:
    """The run config of a forgetless job: random words, one stage of exactly the job's steps."""
    import numpy as np

    seq_len, mb, steps = job["seq_len"], job["micro_batch"], job["warmup"] + job["timed"]
    tokenizer = _word_tokenizer(tmp_path / "tokenizer", job["vocab"])
    rng = np.random.default_rng(1)
    docs = (steps * mb * (seq_len + 1)) // 4096 + 2
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "random.jsonl", "w") as fh:  # one document per line: 4096 random words
        for _ in range(docs):
            text = " ".join(f"w{i}" for i in rng.integers(1, job["vocab"], 4096))
            fh.write(json.dumps({"text": text}) + "\n")
    train = {
        "seq_len": seq_len,
        "batch_tokens": mb * seq_len,
        "micro_batch": mb,
        "precision": "bf16",
        "compile": job["compile"],
        "device": job["device"],
        "log_every_steps": 1,
        **job.get("train", {}),
    }
    return {
        "model": {
            "init": {
                "architecture": "llama",
                **MODELS[job["model"]],
                "max_position_embeddings": seq_len,
                "tie_word_embeddings": False,
                "extra": {"attn_implementation": "sdpa"},
            }
        },
        "tokenizer": str(tokenizer),
        "sources": {
            "random": {"files": [str(tmp_path / "data" / "random.jsonl")], "heldout": {"documents": 1}}
        },
        "stages": [
            {
                "name": "bench",
                "tokens": steps * mb * seq_len,
                "mix": {"random": 1.0},
                "schedule": {"kind": "cosine", "peak_lr": 3e-4, "warmup": 0.1},
            }
        ],
        "train": train,
        "eval": {"sources": [], "dense_start": []},
        "output": {"dir": str(tmp_path / "run")},
        "cache_dir": str(tmp_path / "cache"),
    }


def worker_forgetless(job: dict) -> dict:
    import torch

    import forgetless.train.run as run_module
    from forgetless.config import config_from_dict

    device = job["device"]
    build = run_module.build_model

    def build_on_device(*args: Any, **kwargs: Any):  # initialised on the device: seconds less per job
        with torch.device(device):
            return build(*args, **kwargs)

    run_module.build_model = build_on_device
    run_module._save_final = lambda run: None  # the final model save is not training
    run_module.write_card = lambda run_dir: None  # nor its model card (which needs final/)
    markers = PhaseMarkers(device) if job.get("profile") else None
    with tempfile.TemporaryDirectory() as tmp:
        config = config_from_dict(forgetless_config(job, Path(tmp)))
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with markers or contextlib.nullcontext():
            run_dir = run_module.run_training(config, quiet=True)
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    timed = train[job["warmup"] :]
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in timed)
    result = {
        "tokens_per_s": tokens_per_s,
        "step_s": job["micro_batch"] * job["seq_len"] / tokens_per_s,
        "peak_mem_gib": max((r.get("peak_mem_gib") or 0.0) for r in train) if device == "cuda" else None,
        "losses": [r["loss"] for r in train[:: max(1, len(train) // 3)]],
        **_compile_record(),
    }
    if markers is not None:
        counts = model_counts(MODELS[job["model"]], job["seq_len"], job["vocab"])
        result["memory_profile"] = markers.summary(
            weight_numels=counts["weight_numels"],
            logits_numel=job["micro_batch"] * job["seq_len"] * job["vocab"],
            snapshot_path=Path(job["snapshot_path"]) if job.get("snapshot_path") else None,
        )
    return result


def _compile_record() -> dict:
    """What torch.compile did in this process: graphs compiled, graph breaks and their reasons."""
    from torch._dynamo.utils import counters

    breaks = counters.get("graph_break", {})
    return {
        "compiled_graphs": counters.get("stats", {}).get("unique_graphs", 0),
        "graph_breaks": sum(breaks.values()),
        "graph_break_reasons": [reason.splitlines()[0][:160] for reason in list(breaks)[:3]],
    }


def worker_kernels(job: dict) -> dict:
    """The fused linear + cross-entropy kernels alone on each model's head: [N, H] x [V, H], bf16
    operands as under `train.mixed_precision: fsdp`; forward + backward time, memory, error."""
    import torch
    import torch.nn.functional as F

    from forgetless.model.fused_ce import linear_cross_entropy
    from forgetless.model.loss import EXTERNAL_KERNELS, external_linear_cross_entropy

    device = job["device"]
    cuda = device == "cuda"
    results: dict[str, Any] = {}
    for model in job["models"]:
        sizes = MODELS[model]
        n, h, v = job["micro_batches"][model] * job["seq_len"], sizes["hidden_size"], job["vocab"]
        gen = torch.Generator(device=device).manual_seed(0)
        hidden = (torch.randn(n, h, device=device, generator=gen) * 0.5).to(torch.bfloat16)
        weight = (torch.randn(v, h, device=device, generator=gen) * 0.02).to(torch.bfloat16)
        targets = torch.randint(0, v, (n,), device=device, generator=gen)
        targets[::97] = -100
        torch.backends.cuda.matmul.allow_tf32 = False
        ref_h, ref_w = hidden.float().requires_grad_(), weight.float().requires_grad_()
        ref_loss = F.cross_entropy(ref_h @ ref_w.t(), targets)
        ref_gh, ref_gw = torch.autograd.grad(ref_loss, (ref_h, ref_w))
        ref_loss = ref_loss.detach()
        del ref_h, ref_w

        kernels = {
            "forgetless": lambda x, w, t=targets: linear_cross_entropy(x, w, t, compiled=cuda),
            "plain (logits stored)": lambda x, w, t=targets: F.cross_entropy((x @ w.t()).float(), t),
        }
        for name in EXTERNAL_KERNELS:
            kernels[name] = lambda x, w, t=targets, k=name: external_linear_cross_entropy(k, x, w, t, x.dtype)
        rows: dict[str, Any] = {}
        for name, fn in kernels.items():
            if name in EXTERNAL_KERNELS:
                if not cuda:
                    rows[name] = {"error": "CUDA only"}
                    continue
                try:
                    __import__(EXTERNAL_KERNELS[name][0])
                except ImportError as err:
                    rows[name] = {"error": f"not installed ({err})"}
                    continue
            try:
                rows[name] = _time_loss_kernel(fn, hidden, weight, (ref_loss, ref_gh, ref_gw), cuda)
            except Exception as err:  # noqa: BLE001 - a failing kernel is a result, not a crash
                rows[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        results[model] = {"tokens": n, "hidden": h, "vocab": v, "kernels": rows}
    return {"kernels": results}


def _time_loss_kernel(fn, hidden, weight, reference, cuda: bool, repeats: int = 10) -> dict:
    import torch

    def once():
        x = hidden.detach().requires_grad_()
        w = weight.detach().requires_grad_()
        loss = fn(x, w)
        gx, gw = torch.autograd.grad(loss, (x, w))
        return loss.detach(), gx, gw

    for _ in range(2):  # warm-up: compilation, autotuning
        once()
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = once()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            out = once()
            times.append(time.perf_counter() - t0)
    loss, gx, gw = out
    ref_loss, ref_gx, ref_gw = reference

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    return {
        "ms": 1e3 * statistics.median(times),
        "extra_mem_gib": (torch.cuda.max_memory_allocated() - base) / 2**30 if cuda else None,
        "loss_rel_err": abs(loss.item() - ref_loss.item()) / abs(ref_loss.item()),
        "grad_hidden_rel_err": rel(gx, ref_gx),
        "grad_weight_rel_err": rel(gw, ref_gw),
    }


WORKERS = {"peak": worker_peak, "hf": worker_hf, "forgetless": worker_forgetless, "kernels": worker_kernels}


# ---------------------------------------------------------------------------------------------
# The memory profile: phase markers in the trace, and the live memory at the peak by category

PHASES = ("setup", "forward", "backward", "optimizer", "step_end")


def _marker_allocation() -> None:
    import torch

    torch.empty(512, dtype=torch.uint8, device="cuda")  # allocated and freed: two trace events


# One function per phase, so that a marker's phase is the name of a frame of its allocation.
def _phase_forward() -> None:
    _marker_allocation()


def _phase_backward() -> None:
    _marker_allocation()


def _phase_optimizer() -> None:
    _marker_allocation()


def _phase_step_end() -> None:
    _marker_allocation()


PHASE_MARKERS = {
    "forward": _phase_forward,
    "backward": _phase_backward,
    "optimizer": _phase_optimizer,
    "step_end": _phase_step_end,
}


def _marker_phase(event: dict) -> str | None:
    """The phase an allocation event marks, if it is a marker (`PhaseMarkers`)."""
    for frame in event.get("frames") or []:
        name = frame.get("name", "")
        if name.startswith("_phase_") and name[len("_phase_") :] in PHASE_MARKERS:
            return name[len("_phase_") :]
    return None


CATEGORIES = (
    "parameters and buffers",
    "gradients",
    "optimizer state",
    "activations saved for backward",
    "bf16 weight copies (autocast casts, FSDP gathers)",
    "logits and loss",
    "backward temporaries",
    "other",
)


class PhaseMarkers:
    """Records the CUDA allocator's history while a run trains, with a marker allocation at every
    phase change of a training step (forward of the base model, backward reaching its output,
    optimizer step, step end), so the trace can be cut into phases afterwards."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seen: list[str] = []
        self._handles: list[Any] = []

    def _phase_marker(self, phase: str) -> None:
        self.seen.append(phase)
        if self.device == "cuda":
            PHASE_MARKERS[phase]()

    def __enter__(self) -> PhaseMarkers:
        import torch
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        def is_base_model(module) -> bool:
            return type(module).__name__.endswith("Model") and hasattr(module, "layers") and module.training

        def pre(module, args):
            if is_base_model(module) and torch.is_grad_enabled():
                self._phase_marker("forward")

        def post(module, args, output):
            if is_base_model(module) and torch.is_grad_enabled():
                hidden = getattr(output, "last_hidden_state", None)
                if hidden is not None and hidden.requires_grad:
                    hidden.register_hook(lambda grad: self._phase_marker("backward"))

        self._handles = [
            register_module_forward_pre_hook(pre),
            register_module_forward_hook(post),
            register_optimizer_step_pre_hook(lambda opt, args, kwargs: self._phase_marker("optimizer")),
            register_optimizer_step_post_hook(lambda opt, args, kwargs: self._phase_marker("step_end")),
        ]
        if self.device == "cuda":
            torch.cuda.memory._record_memory_history(enabled="all", stacks="python", max_entries=4_000_000)
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def summary(self, *, weight_numels: list[int], logits_numel: int, snapshot_path: Path | None) -> dict:
        if self.device != "cuda":
            return {"note": "the allocator history needs CUDA", "phases_seen": len(self.seen)}
        import torch

        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        events = snapshot["device_traces"][0] if snapshot.get("device_traces") else []
        result = summarise_memory_trace(events, weight_numels=weight_numels, logits_numel=logits_numel)
        result["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["max_memory_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        if snapshot_path is not None:
            raw = pickle.dumps(snapshot) if len(events) < 200_000 else b""
            if 0 < len(raw) < SNAPSHOT_LIMIT_BYTES:
                snapshot_path.write_bytes(raw)
                result["snapshot"] = snapshot_path.name
            else:
                result["snapshot"] = f"not kept ({len(events)} events, over {SNAPSHOT_LIMIT_BYTES >> 20} MB)"
        return result


def _frames_text(event: dict) -> str:
    return "\n".join(f"{f.get('filename', '')}:{f.get('name', '')}" for f in event.get("frames") or [])


def summarise_memory_trace(events: list[dict], *, weight_numels: list[int], logits_numel: int) -> dict:
    """The live allocations at the peak of `events` (a CUDA allocator trace: `alloc` and
    `free_requested` events with `addr`, `size` and Python `frames`), by category.

    The phase of an allocation comes from the marker allocations before it (`PhaseMarkers`: a
    frame named `_phase_<phase>`). Rules,
    first match wins: freed by `zero_grad` or by a unit's step in the backward -> gradients;
    allocated by `torch.optim` -> optimizer state; allocated before the first training forward ->
    parameters and buffers; at least a micro-batch of logits (in bf16) or allocated in a fused loss ->
    logits and loss; allocated by FSDP or the size of a bf16 weight, in a forward or backward -> bf16
    weight copies; allocated in a forward -> activations saved for backward; in a backward -> backward
    temporaries; the rest -> other.
    """
    weight_bytes = {2 * n for n in weight_numels}
    live: dict[int, tuple[int, int, str]] = {}  # addr -> (size, event index, phase)
    phase, total, peak, peak_index, peak_phase, steps = "setup", 0, -1, -1, "setup", 0
    for index, event in enumerate(events):
        action, size = event.get("action"), int(event.get("size", 0))
        if action == "alloc":
            marked = _marker_phase(event)
            if marked is not None:
                phase = marked
                steps += phase == "forward"
                continue
            live[event["addr"]] = (size, index, phase)
            total += size
            if total > peak:
                peak, peak_index, peak_phase = total, index, phase
        elif action == "free_requested" and event.get("addr") in live:
            total -= live.pop(event["addr"])[0]
    # Replay up to the peak for the live set and its phases, then find how each block is freed later.
    live_at_peak: dict[int, tuple[int, int, str]] = {}
    phase = "setup"
    for index, event in enumerate(events[: peak_index + 1]):
        action, size = event.get("action"), int(event.get("size", 0))
        if action == "alloc":
            marked = _marker_phase(event)
            if marked is not None:
                phase = marked
                continue
            live_at_peak[event["addr"]] = (size, index, phase)
        elif action == "free_requested":
            live_at_peak.pop(event.get("addr"), None)
    freed_by: dict[int, str] = {}
    for event in events[peak_index + 1 :]:
        if event.get("action") == "free_requested" and event.get("addr") in live_at_peak:
            freed_by.setdefault(event["addr"], _frames_text(event))
    by_category = dict.fromkeys(CATEGORIES, 0)
    blocks = []
    for addr, (size, index, alloc_phase) in live_at_peak.items():
        frames = _frames_text(events[index])
        freed = freed_by.get(addr, "")
        if "zero_grad" in freed or "optimizer_in_backward" in freed:
            category = "gradients"
        elif "torch/optim/" in frames:
            category = "optimizer state"
        elif alloc_phase == "setup":
            category = "parameters and buffers"
        elif size >= 2 * logits_numel or any(
            k in frames for k in ("fused_ce", "liger_kernel", "cut_cross_entropy")
        ):
            category = "logits and loss"
        elif alloc_phase in ("forward", "backward") and ("_fsdp" in frames or size in weight_bytes):
            category = "bf16 weight copies (autocast casts, FSDP gathers)"
        elif alloc_phase == "forward":
            category = "activations saved for backward"
        elif alloc_phase == "backward":
            category = "backward temporaries"
        else:
            category = "other"
        by_category[category] += size
        blocks.append((size, category, alloc_phase, frames.splitlines()[:1]))
    blocks.sort(key=lambda b: -b[0])
    gib = 2**30
    return {
        "peak_gib": peak / gib,
        "phase_at_peak": peak_phase,
        "training_forwards_in_trace": steps,
        "events": len(events),
        "by_category_gib": {k: v / gib for k, v in by_category.items()},
        "largest_live_blocks": [
            {"gib": s / gib, "category": c, "phase": p, "frame": f[0] if f else ""}
            for s, c, p, f in blocks[:12]
        ],
    }


# ---------------------------------------------------------------------------------------------
# Driver


def run_job(job: dict, timeout: float, env: dict[str, str]) -> dict:
    """Run one job in a fresh process; OOM, crash and timeout come back as results, not exceptions."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=max(1.0, timeout),
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            result["wall_s"] = wall
            return result
    stderr = proc.stderr or ""
    oom = "OutOfMemoryError" in stderr or "out of memory" in stderr or "out of GPU memory" in stderr
    tail = stderr.strip().splitlines()[-3:]
    return {"error": "out of memory" if oom else " | ".join(tail), "wall_s": wall}


GRID = sorted({int(m * 2**k) for k in range(0, 12) for m in (1, 1.5)})  # 1, 2, 3, 4, 6, 8, 12, ...


def _grid_floor(value: float) -> int:
    return max([g for g in GRID if g <= value], default=1)


def _grid_next(value: int) -> int:
    return min(g for g in GRID if g > value)


def _grid_prev(value: int) -> int:
    return max([g for g in GRID if g < value], default=0)


@dataclass
class Session:
    """One run of the plan: where results go, the deadline, and what is known so far."""

    args: argparse.Namespace
    out: Path
    deadline: float
    base: dict
    env: dict[str, str]
    toy: bool
    results: dict = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, item: Item) -> float:
        """An item's time limit: its own (sized for an H200; ten times that for a toy run on a
        CPU), at most the time left."""
        return min(item.timeout_s * (10 if self.toy else 1), self.remaining())

    def save(self) -> None:
        self.results["summary"] = summarise(self.results)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=2) + "\n")
        os.replace(tmp, self.out)


def run_item(session: Session, item: Item) -> dict:
    job = {**session.base, **item.job}
    if job["kind"] == "max_micro_batch":
        return search_max_micro_batch(session, item, job)
    if job["kind"] == "kernels":
        job["micro_batches"] = {m: (4 if session.toy else (32 if "134m" in m else 16)) for m in job["models"]}
    if job.get("profile"):
        slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in item.id)
        job["snapshot_path"] = str(session.out.with_name(f"{session.out.stem}-{slug}.pickle"))
        job["timed"] = 1
        job["warmup"] = 2
    if job["kind"] in ("hf", "forgetless") and session.toy:
        job["compile"] = False  # compiling on a small CPU takes minutes; the toy run checks the script
    return run_job(job, session.timeout(item), session.env)


def search_max_micro_batch(session: Session, item: Item, job: dict) -> dict:
    """The largest micro-batch on the grid that fits for one side and model: eager, 2 steps, each
    probe in its own process. Starts from a linear prediction (memory = static + per-sequence slope)
    fitted to what the run has measured so far, and refines it after every probe."""
    model, side = job["model"], job["side"]
    counts = model_counts(MODELS[model], job["seq_len"], job["vocab"])
    static = 16 * counts["params"] / 2**30  # float32 weights, gradients and two AdamW moments (GiB)
    capacity = session.results.get("device_memory_gib") or 0.0
    settings = settings_label(job.get("train", {})) if side == "forgetless" else None
    known = [
        (r["micro_batch"], r["peak_mem_gib"], r.get("compile", False))
        for r in session.results.get("items", [])
        if r.get("model") == model
        and r.get("side") == side
        and r.get("peak_mem_gib")
        and r.get("settings") == settings
        and not r.get("profile")
    ]
    if session.toy:
        guess = TOY_CAPACITY_SEQUENCES
    elif known and capacity:
        mb0, peak0, compiled = max(known, key=lambda k: (not k[2], k[0]))  # eager ones first
        slope = (peak0 - static) / mb0 * (1.4 if compiled else 1.0)  # eager keeps more than compiled
        guess = (0.92 * capacity - static) / max(slope, 1e-3)
    else:
        guess = 16
    probes: list[dict] = []
    fits: int | None = None
    fails: int | None = None
    size = _grid_floor(guess)
    item_deadline = time.monotonic() + session.timeout(item)
    while size >= 1 and len(probes) < 3 and item_deadline - time.monotonic() > 5:
        if fits is not None and size <= fits or fails is not None and size >= fails:
            break
        probe_job = {
            **session.base,
            "kind": side,
            "model": model,
            "micro_batch": size,
            "compile": False,
            "warmup": 1,
            "timed": 1,
            "train": job.get("train", {}),
        }
        if session.toy and size > TOY_CAPACITY_SEQUENCES:
            result = {"error": "out of memory", "simulated": True, "wall_s": 0.0}
        else:
            result = run_job(probe_job, item_deadline - time.monotonic(), session.env)
        probes.append(
            {"micro_batch": size, **{k: result.get(k) for k in ("peak_mem_gib", "error", "wall_s")}}
        )
        if "tokens_per_s" in result:
            fits = size
            peak = result.get("peak_mem_gib")
            if peak and capacity and peak > static:
                predicted = _grid_floor((0.97 * capacity - static) / ((peak - static) / size))
                size = predicted if predicted > size else _grid_next(size)
            else:
                size = _grid_next(size)
        elif result.get("error") == "out of memory":
            fails = size
            size = _grid_prev(size)
        else:
            break  # another failure: report it, do not guess further
    return {
        "largest_fitting": fits,
        "smallest_failing": fails,
        "exact_on_grid": fits is not None and fails is not None and _grid_next(fits) == fails,
        "probes": probes,
        "simulated_capacity": TOY_CAPACITY_SEQUENCES if session.toy else None,
    }


def summarise(results: dict) -> dict:
    """Per model: the Trainer's default and best compiled configurations, forgetless's fastest,
    speed and memory ratios, the lever variants, the largest micro-batches."""
    peak = results.get("peak_tflops")
    summary: dict[str, Any] = {}
    for item in results.get("items", []):
        model = item.get("model")
        if not model or "tokens_per_s" not in item:
            continue
        entry = summary.setdefault(model, {"forgetless_runs": []})
        if peak and item.get("flops_per_token"):
            item["mfu"] = item["tokens_per_s"] * item["flops_per_token"] / (peak * 1e12)
        row = {
            k: item.get(k)
            for k in ("micro_batch", "tokens_per_s", "mfu", "peak_mem_gib", "compile", "settings", "id")
        }
        if item.get("side") == "hf":
            key = "hf_trainer" if item.get("compile") else "hf_trainer_default"
            best = entry.get(key)
            if best is None or row["tokens_per_s"] > best["tokens_per_s"]:
                entry[key] = row
            entry.setdefault("hf_trainer_runs", []).append(row)
        elif item.get("side") == "forgetless" and not item.get("profile"):
            entry["forgetless_runs"].append(row)
    for entry in summary.values():
        runs = entry["forgetless_runs"]
        if runs:
            entry["forgetless"] = max(runs, key=lambda r: r["tokens_per_s"])
        hf, fl = entry.get("hf_trainer"), entry.get("forgetless")
        if hf and fl:
            entry["speedup"] = fl["tokens_per_s"] / hf["tokens_per_s"]
            same = [r for r in runs if r["micro_batch"] == hf["micro_batch"] and r.get("peak_mem_gib")]
            if same and hf.get("peak_mem_gib"):
                fastest = max(same, key=lambda r: r["tokens_per_s"])
                leanest = min(same, key=lambda r: r["peak_mem_gib"])
                entry["mem_ratio_micro_batch"] = hf["micro_batch"]
                entry["mem_ratio"] = fastest["peak_mem_gib"] / hf["peak_mem_gib"]
                entry["mem_ratio_settings"] = fastest.get("settings")
                entry["mem_ratio_leanest"] = leanest["peak_mem_gib"] / hf["peak_mem_gib"]
                entry["mem_ratio_leanest_settings"] = leanest.get("settings")
    for item in results.get("items", []):
        if item.get("group") == "max_micro_batch" and "largest_fitting" in item:
            summary.setdefault(item["model"], {"forgetless_runs": []}).setdefault("max_micro_batch", {})[
                item["side"]
            ] = {k: item[k] for k in ("largest_fitting", "smallest_failing", "exact_on_grid")}
    return summary


def print_table(results: dict) -> None:
    peak = results.get("peak_tflops")
    print()
    print(
        f"device {results.get('device')}, peak {peak or 0:.0f} TFLOP/s, {len(results.get('items', []))} items"
    )
    print(f"{'model':11s} {'setup':44s} {'mb':>4s} {'tokens/s':>10s} {'MFU':>6s} {'peak GiB':>8s}")
    for model, entry in results.get("summary", {}).items():
        rows = [
            ("Trainer default", entry.get("hf_trainer_default")),
            ("Trainer compiled (best)", entry.get("hf_trainer")),
        ]
        rows += [(f"forgetless {r.get('settings')}", r) for r in entry.get("forgetless_runs", [])]
        for label, r in rows:
            if r:
                mfu = f"{100 * r['mfu']:>5.1f}%" if r.get("mfu") else f"{'-':>6s}"
                mem = f"{r['peak_mem_gib']:>8.1f}" if r.get("peak_mem_gib") else f"{'-':>8s}"
                print(
                    f"{model:11s} {label[:44]:44s} {r['micro_batch']:>4d} {r['tokens_per_s']:>10,.0f} {mfu} {mem}"
                )
        if "speedup" in entry:
            mem = ""
            if "mem_ratio" in entry:
                mem = (
                    f"; memory at mb {entry['mem_ratio_micro_batch']}: {entry['mem_ratio']:.2f}x "
                    f"(leanest {entry['mem_ratio_leanest']:.2f}x, {entry['mem_ratio_leanest_settings']})"
                )
            print(f"{model:11s} forgetless / best Trainer: {entry['speedup']:.2f}x tokens/s{mem}")
        for side, found in entry.get("max_micro_batch", {}).items():
            fits = f"{found['largest_fitting']} fits" if found.get("largest_fitting") else "no probe fit"
            bound = f", {found['smallest_failing']} does not" if found.get("smallest_failing") else ""
            print(
                f"{model:11s} largest micro-batch at seq {results['settings']['seq_len']}, {side}: {fits}{bound}"
            )
    for item in results.get("items", []):
        profile = item.get("memory_profile")
        if profile and "by_category_gib" in profile:
            print(
                f"\nmemory at the peak of {item['id']} ({profile['peak_gib']:.1f} GiB, {profile['phase_at_peak']}):"
            )
            for category, gib in profile["by_category_gib"].items():
                print(f"  {category:50s} {gib:7.2f} GiB")
        if "kernels" in item:
            for model, found in item["kernels"].items():
                for name, row in found["kernels"].items():
                    if "ms" in row:
                        mem = (
                            f"{row['extra_mem_gib']:.2f} GiB" if row.get("extra_mem_gib") is not None else "-"
                        )
                        print(
                            f"{model:11s} loss kernel {name:22s} {row['ms']:8.2f} ms  {mem:>10s}  "
                            f"grad err {row['grad_hidden_rel_err']:.1e}/{row['grad_weight_rel_err']:.1e}"
                        )
                    else:
                        print(f"{model:11s} loss kernel {name:22s} {row['error']}")
    skipped = [i["id"] for i in results.get("items", []) if i.get("skipped")]
    if skipped:
        print(f"\nskipped for the budget: {', '.join(skipped)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--toy", action="store_true", help="tiny models on CPU: checks the script, not speed")
    parser.add_argument(
        "--extended", action="store_true", help="add the lower-priority items after the default plan"
    )
    parser.add_argument(
        "--budget-s", type=float, help="deadline for the whole plan in seconds (default 400; --toy: 3600)"
    )
    parser.add_argument("--groups", help="run only these groups (comma-separated), e.g. baselines,forgetless")
    parser.add_argument("--ids", help="run only these items (comma-separated ids, as --list shows them)")
    parser.add_argument("--list", action="store_true", help="print the plan with estimated seconds and exit")
    parser.add_argument(
        "--warmup", type=int, default=4, help="steps excluded from timing (compile happens here)"
    )
    parser.add_argument("--timed", type=int, default=8, help="timed steps; the median step is reported")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "forgetless-gpu-bench-cache"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_throughput.json")
    args = parser.parse_args()

    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(WORKERS[job["kind"]](job)), flush=True)
        return

    start = time.monotonic()
    if args.budget_s is None:
        args.budget_s = 3600.0 if args.toy else 400.0
    plan = build_plan(args.toy, args.extended)
    if args.groups:
        wanted = set(args.groups.split(","))
        plan = [item for item in plan if item.group in wanted]
    if args.ids:
        wanted = set(args.ids.split(","))
        plan = [item for item in plan if item.id in wanted]
    if args.list:
        total = 0.0
        for item in plan:
            total += item.est_s
            print(
                f"{item.est_s:5.0f} s  (cum {total:5.0f})  {item.group:16s} {item.id}{' [extended]' if item.extended else ''}"
            )
        return

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(args.cache_dir / "inductor"))
    env.setdefault("TRITON_CACHE_DIR", str(args.cache_dir / "triton"))
    toy = args.toy
    seq_len, vocab = (TOY["seq_len"], TOY["vocab"]) if toy else (SEQ_LEN, VOCAB)
    warmup, timed = (TOY["warmup"], TOY["timed"]) if toy else (args.warmup, args.timed)
    base = {
        "seq_len": seq_len,
        "vocab": vocab,
        "device": "cpu" if toy else "cuda",
        "warmup": warmup,
        "timed": timed,
    }
    from machine import versions

    session = Session(args, args.out, start + args.budget_s, base, env, toy)
    session.results = {
        "device": "cpu (toy check)" if toy else None,
        "versions": versions("torch", "transformers", "forgetless"),
        "date": time.strftime("%Y-%m-%d"),
        "settings": {"seq_len": seq_len, "vocab": vocab, "warmup_steps": warmup, "timed_steps": timed},
        "budget_s": args.budget_s,
        "plan": [{"id": i.id, "group": i.group, "est_s": i.est_s} for i in plan],
        "items": [],
    }

    def stop(signum, frame):  # a wall-clock limit outside: leave the file and the table as they are
        print_table(session.results)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    counts = {m: model_counts(MODELS[m], seq_len, vocab) for m in MODELS if not m.startswith("toy") or toy}
    for item in plan:
        record: dict[str, Any] = {
            "id": item.id,
            "group": item.group,
            "est_s": item.est_s,
            **_describe(item.job),
        }
        margin = 0.5 if toy else 0.9  # start an item only when most of its estimate fits before the deadline
        if session.remaining() < margin * item.est_s * (0.1 if toy else 1.0):
            record["skipped"] = f"budget: {session.remaining():.0f} s left, about {item.est_s:.0f} s needed"
            session.results["items"].append(record)
            session.save()
            print(f"{item.id:48s} skipped ({session.remaining():.0f} s left)", flush=True)
            continue
        result = run_item(session, item)
        record.update(result)
        model = item.job.get("model")
        if model in counts:
            record.update({k: counts[model][k] for k in ("non_embedding_params", "flops_per_token")})
        if item.job["kind"] == "peak":
            session.results["peak_tflops"] = result.get("peak_tflops")
            session.results["device_memory_gib"] = result.get("device_memory_gib")
            session.results["device"] = result.get("device") or session.results["device"]
        session.results["items"].append(record)
        session.save()
        print(f"{item.id:48s} {_fmt(record)}", flush=True)
    session.results["wall_s"] = time.monotonic() - start
    session.save()
    print_table(session.results)


def _describe(job: dict) -> dict:
    side = {"hf": "hf", "forgetless": "forgetless"}.get(job["kind"], job.get("side"))
    described = {"kind": job["kind"], "model": job.get("model"), "side": side}
    if "micro_batch" in job:
        described["micro_batch"] = job["micro_batch"]
        described["compile"] = job.get("compile", False)
    if job["kind"] == "forgetless":
        described["settings"] = settings_label(job.get("train", {}))
        described["train"] = job.get("train", {})
        described["profile"] = bool(job.get("profile"))
    return described


def _fmt(result: dict) -> str:
    if "error" in result:
        return f"failed: {result['error']}  ({result.get('wall_s', 0):.0f} s)"
    if "largest_fitting" in result:
        return f"largest fitting {result['largest_fitting']}, failing {result['smallest_failing']}  ({len(result['probes'])} probes)"
    if "tokens_per_s" in result:
        mem = f"{result['peak_mem_gib']:.1f} GiB" if result.get("peak_mem_gib") else "-"
        return f"{result['tokens_per_s']:>10,.0f} tok/s  {mem}  ({result['wall_s']:.0f} s)"
    if "peak_tflops" in result:
        return f"{result['peak_tflops'] or 0:.0f} TFLOP/s  ({result['wall_s']:.0f} s)"
    return f"done ({result.get('wall_s', 0):.0f} s)"


if __name__ == "__main__":
    main()
