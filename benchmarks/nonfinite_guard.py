"""What it costs to skip non-finite steps: the training step with and without the guard.

Three versions of the same optimizer step (forward, backward, gradient clipping, fused AdamW) on a
random-init Llama and random tokens:

- `none`: no check at all (what the loop did before non-finite steps were skipped);
- `device`: the loop's guard (`StepHealth.guard_step`): `isfinite(loss) & isfinite(grad_norm)` is
  handed to fused AdamW as `found_inf`, which skips the update inside the kernel; no host sync;
- `host`: the same flag read on the host each step (`if bool(finite): optimizer.step()`), which is
  what an optimizer without `found_inf` support needs.

Each version records the step's loss and gradient norm for a later read, as the loop does. Timed:
`--steps` steps after `--warmup`, with one host sync at the end of the timed span; versions
alternate and each one's median over `--repeats` counts.

    python benchmarks/nonfinite_guard.py [--device cpu|cuda] [--size tiny|small] [--repeats 5]

Results go to `benchmarks/results/nonfinite_guard_<device>.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from forgetless.model.loss import causal_lm_loss
from forgetless.train.health import StepHealth

SIZES = {
    # hidden, layers, heads, intermediate, vocab, seq_len, micro_batch
    "tiny": (32, 2, 2, 64, 512, 32, 8),  # the test suite's model
    "small": (512, 8, 8, 1376, 32000, 512, 8),
}


def build(size: str, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor]:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, inter, vocab, seq_len, micro = SIZES[size]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=seq_len,
    )
    model = LlamaForCausalLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    tokens = torch.randint(0, vocab, (micro, seq_len + 1), device=device)
    return model, optimizer, tokens


def run_steps(model, optimizer, tokens, *, guard: str, steps: int, autocast: bool) -> float:
    params = list(model.parameters())
    if guard != "device":
        optimizer.__dict__.pop("found_inf", None)  # no flag left over from the guarded version
    health_records: list[torch.Tensor] = []
    device = tokens.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            loss = causal_lm_loss(model, tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        if guard == "none":
            optimizer.step()
        elif guard == "device":
            if StepHealth.guard_step(optimizer, loss.detach(), grad_norm):
                optimizer.step()
        else:
            if bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)):
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        health_records.append(torch.stack((loss.detach().float(), grad_norm.float())))
    torch.stack(health_records).tolist()  # the one read per span, as at a log interval
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, choices=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    size = args.size or ("small" if device.type == "cuda" else "tiny")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    model, optimizer, tokens = build(size, device)
    autocast = device.type == "cuda"
    versions = ("none", "device", "host")
    for guard in versions:
        run_steps(model, optimizer, tokens, guard=guard, steps=args.warmup, autocast=autocast)
    times: dict[str, list[float]] = {g: [] for g in versions}
    for _ in range(args.repeats):
        for guard in versions:
            times[guard].append(
                run_steps(model, optimizer, tokens, guard=guard, steps=args.steps, autocast=autocast)
            )
    median = {g: statistics.median(t) for g, t in times.items()}
    result = {
        "benchmark": "nonfinite_guard",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
        },
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "size": size,
        "model": dict(
            zip(
                ("hidden", "layers", "heads", "intermediate", "vocab", "seq_len", "micro_batch"),
                SIZES[size],
                strict=True,
            )
        ),
        "steps": args.steps,
        "repeats": args.repeats,
        "step_ms_median": {g: 1000 * m for g, m in median.items()},
        "step_ms_all": {g: [1000 * t for t in ts] for g, ts in times.items()},
        "overhead_vs_none_percent": {g: 100 * (median[g] / median["none"] - 1) for g in versions},
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"nonfinite_guard_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {"step_ms_median": result["step_ms_median"], "overhead_%": result["overhead_vs_none_percent"]}
        )
    )


if __name__ == "__main__":
    main()
