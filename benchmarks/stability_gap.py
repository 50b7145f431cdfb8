"""The stability-gap recipe: several epochs over a high-quality subset against one pass over the corpus.

Guo et al. (arXiv 2406.14833) shrink the stability gap of domain continual pretraining, the drop
at the start of the stage and the tokens it takes to recover, by training several epochs on a
high-quality subset of the domain corpus instead of one pass over all of it. On the demo setting
(`forgetless.demo`): the quick demo's base model continues on the bundled security corpus for
`STAGE_TOKENS` tokens (`BATCH_TOKENS` per step, the demo's cosine schedule re-warming to 3e-3, 25%
replay of general), evaluated every `EVAL_EVERY` tokens and at the demo's dense points of the
stage start. Three ways to spend those tokens on security:

- `whole corpus`: the whole training split of the corpus, less than one pass;
- `subset, lowest base loss`: `subset: {score: base_loss, keep: KEEP, order: lowest}`, the documents
  the base model finds most familiar, `KEEP` of the corpus's tokens, read about `EPOCHS` times;
- `subset, highest base loss`: the same share ranked the other way (the same number of epochs over
  text of the other end of the ranking: what the epochs do without the quality).

Each is run with `SEEDS` seeds (the data order). From each run's ledger (`summary.json`): the
stability gap of the retained source general (depth in nats/token, the tokens at its peak, the
tokens to recover), its rise at the end (forgetting) and the fall of the security held-out loss
(learning, on the whole corpus's held-out text in every variant). Mean and standard deviation over
seeds.

Writes `benchmarks/results/stability_gap.json`.

    python benchmarks/stability_gap.py [--keep DIR] [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

STAGE_TOKENS = 65_536  # the quick demo's stage
BATCH_TOKENS = 1024  # 64 steps
EVAL_EVERY = 2048
EVAL_TOKENS = 4096  # held-out tokens per source
REPLAY = 0.25
EPOCHS = 4  # Guo et al.'s best number of epochs over the subset
SEEDS = 3

VARIANTS = {
    "whole corpus": None,
    "subset, lowest base loss": "lowest",
    "subset, highest base loss": "highest",
}


def stage_config(base: Path, out: Path, subset: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    from forgetless.demo import QUICK, strategy_config

    data = strategy_config(QUICK, base, REPLAY, out)
    data["stages"][0]["tokens"] = STAGE_TOKENS
    data["train"].update(batch_tokens=BATCH_TOKENS, micro_batch=8, seed=seed)
    data["eval"].update(mcq=[], max_tokens=EVAL_TOKENS, every_tokens=EVAL_EVERY, budget=None)
    if subset is not None:
        data["sources"]["security"] = {"files": ["bundled:security"], "subset": subset}
    return data


def measure(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    gap = summary["stages"]["security"]["stability_gap"]["general"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    end = next(line for line in lines if line.get("kind") == "stage_end")
    return {
        "gap_depth": gap["depth"],
        "gap_peak_tokens": gap["peak_stage_tokens"],
        "recovery_tokens": gap["recovery_stage_tokens"],
        "recovered": gap["recovered"],
        "forgetting": summary["forgetting"]["general"],
        "learning": summary["learning"]["security"],
        "security_epochs": end["epochs"]["security"],
        "general_curve": [
            [line["stage_tokens"], line["eval/general/loss"]] for line in lines if line.get("kind") == "eval"
        ],
        "train_s": summary["train_s"],
    }


def spread(values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(known) if known else None,
        "std": statistics.stdev(known) if len(known) > 1 else None,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_record

    from forgetless.config import config_from_dict
    from forgetless.data.prepare import prepare_sources
    from forgetless.demo import QUICK, build_base
    from forgetless.model.load import load_tokenizer
    from forgetless.train.run import run_training

    started = time.monotonic()
    load = os.getloadavg()
    base = build_base(QUICK, quiet=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="forgetless-gap-"))
    root.mkdir(parents=True, exist_ok=True)
    whole = config_from_dict(stage_config(base, root / "probe", None, 0))
    corpus = prepare_sources(whole, load_tokenizer(str(base)), sources=["security"], progress=False)["security"]
    keep = STAGE_TOKENS * (1 - REPLAY) / EPOCHS / corpus.train.num_tokens

    runs: dict[str, list[dict[str, Any]]] = {}
    for name, order in VARIANTS.items():
        subset = None if order is None else {"score": "base_loss", "keep": keep, "order": order}
        runs[name] = []
        for seed in range(args.seeds):
            out = root / f"{name.replace(' ', '-').replace(',', '')}-seed{seed}"
            run_dir = run_training(config_from_dict(stage_config(base, out, subset, seed)), quiet=True)
            runs[name].append(measure(run_dir))
            print(f"{name}, seed {seed}: " + ", ".join(
                f"{k} {v}" for k, v in runs[name][-1].items() if k != "general_curve"
            ), flush=True)

    table = {
        name: {
            key: spread([r[key] for r in results])
            for key in ("gap_depth", "gap_peak_tokens", "recovery_tokens", "forgetting", "learning", "security_epochs")
        }
        | {"recovered": [r["recovered"] for r in results]}
        for name, results in runs.items()
    }
    result = {
        "kind": "stability_gap_benchmark",
        "machine": machine_record("torch", "transformers", "forgetless"),
        "load_average_at_start": load,
        "settings": {
            "base": f"quick demo base ({QUICK.num_layers} layers, hidden {QUICK.hidden_size})",
            "stage_tokens": STAGE_TOKENS,
            "batch_tokens": BATCH_TOKENS,
            "replay": REPLAY,
            "eval_every_tokens": EVAL_EVERY,
            "eval_tokens": EVAL_TOKENS,
            "subset_keep": keep,
            "security_train_tokens": corpus.train.num_tokens,
            "seeds": args.seeds,
            "schedule": whole.stages[0].schedule.model_dump(),
        },
        "table": table,
        "runs": runs,
        "wall_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stability_gap.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, row in table.items():
        cells = [f"{key} {row[key]['mean']}" for key in ("gap_depth", "recovery_tokens", "forgetting", "learning")]
        print(f"{name}: " + ", ".join(cells))
    print(f"wall time {result['wall_s']:.0f}s; wrote {RESULTS / 'stability_gap.json'}")


if __name__ == "__main__":
    main()
