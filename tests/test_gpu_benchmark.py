"""benchmarks/gpu_throughput.py keeps working without a GPU: its cheapest items end to end at toy
size on CPU, the largest-micro-batch search against a simulated memory, and the memory profile's
summary of an allocator trace."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_toy_plan_runs_and_leaves_a_results_file_and_a_table(tmp_path) -> None:
    out = tmp_path / "results.json"
    ids = "toy/trainer-compiled/mb4,toy/forgetless-best/mb4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        str(SCRIPT),
        "--toy",
        "--ids",
        ids,
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [item["id"] for item in results["items"]] == ids.split(",")
    for item in results["items"]:
        assert item["tokens_per_s"] > 0, item
    entry = results["summary"]["toy"]
    assert entry["forgetless"]["settings"] == "fsdp"  # bf16 compute copies of float32 master weights
    assert entry["speedup"] == pytest.approx(
        entry["forgetless"]["tokens_per_s"] / entry["hf_trainer"]["tokens_per_s"]
    )
    assert "forgetless / best Trainer" in done.stdout


def test_the_largest_micro_batch_search_brackets_the_capacity(bench, monkeypatch) -> None:
    """Against a device of 80 GiB where a step takes 20 GiB plus 3 GiB a sequence: from an eager
    measurement at 8 sequences the search probes 16 (fits) and 24 (does not), the neighbours on its grid."""
    probed = []

    def fake_run_job(job, timeout, env):
        probed.append(job["micro_batch"])
        peak = 20 + 3 * job["micro_batch"]
        if peak > 80:
            return {"error": "out of memory", "wall_s": 1.0}
        return {"tokens_per_s": 1.0, "peak_mem_gib": peak, "wall_s": 1.0}

    monkeypatch.setattr(bench, "run_job", fake_run_job)
    monkeypatch.setattr(bench, "model_counts", lambda *a: {"params": 20 * 2**30 // 16})  # 20 GiB static
    session = bench.Session(None, Path("unused"), 1e12, {"seq_len": 2048, "vocab": 32000}, {}, toy=False)
    session.results = {
        "device_memory_gib": 80.0,
        "items": [{"model": "m", "side": "hf", "micro_batch": 8, "peak_mem_gib": 44.0, "compile": False}],
    }
    item = bench.Item("m/max", "max_micro_batch", {}, 20, 60)
    job = {"model": "m", "side": "hf", "seq_len": 2048, "vocab": 32000}
    monkeypatch.setitem(bench.MODELS, "m", bench.MODELS["toy"])
    found = bench.search_max_micro_batch(session, item, job)
    assert probed == [16, 24]
    assert (found["largest_fitting"], found["smallest_failing"], found["exact_on_grid"]) == (16, 24, True)


def test_the_memory_profile_sorts_the_live_memory_at_the_peak(bench) -> None:
    """A synthetic allocator trace of one step: each block's category follows from the phase it was
    allocated in, the code that allocated it and the code that frees it."""
    mib = 2**20
    events = []

    def frames(*names):
        return [{"filename": f, "name": n, "line": 1} for f, n in names]

    def alloc(addr, size, *where):
        events.append({"action": "alloc", "addr": addr, "size": size, "frames": frames(*where)})

    def free(addr, *where):
        events.append({"action": "free_requested", "addr": addr, "frames": frames(*where)})

    def marker(phase):
        where = [("gpu_throughput.py", "_marker_allocation"), ("gpu_throughput.py", f"_phase_{phase}")]
        alloc(999_000 + len(events), 512, *where)

    alloc(1, 100 * mib, ("transformers/modeling_llama.py", "__init__"))  # a weight
    marker("forward")
    alloc(2, 8 * mib, ("torchinductor/abc.py", "call"))  # 4M-element weight in bf16: a cast
    alloc(3, 50 * mib, ("torchinductor/abc.py", "call"))  # saved for backward
    alloc(4, 60 * mib, ("forgetless/model/fused_ce.py", "forward"))  # the fused loss's stored gradients
    alloc(5, 30 * mib, ("torchinductor/abc.py", "call"))
    free(5, ("torchinductor/abc.py", "call"))  # a forward temporary, gone before the peak
    marker("backward")
    alloc(6, 40 * mib)  # a gradient (accumulated by autograd in C++: no Python frames)
    alloc(7, 20 * mib)  # an activation gradient
    free(3)
    marker("optimizer")
    alloc(8, 5 * mib, ("torch/optim/adamw.py", "_init_group"))
    marker("step_end")
    free(6, ("torch/optim/optimizer.py", "zero_grad"))
    free(7)

    summary = bench.summarise_memory_trace(events, weight_numels=[4 * mib], logits_numel=10**12)
    by = {k: round(v * 1024) for k, v in summary["by_category_gib"].items()}  # MiB
    assert summary["phase_at_peak"] == "backward"
    assert round(summary["peak_gib"] * 1024) == 100 + 8 + 50 + 60 + 40 + 20
    assert by["parameters and buffers"] == 100
    assert by["bf16 weight copies (autocast casts, FSDP gathers)"] == 8
    assert by["activations saved for backward"] == 50
    assert by["logits and loss"] == 60
    assert by["gradients"] == 40
    assert by["backward temporaries"] == 20
    assert by["optimizer state"] == 0 and by["other"] == 0
    assert summary["training_forwards_in_trace"] == 1
