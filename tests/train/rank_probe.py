"""`forgetless ARGS` in this process, for tests under torchrun (in place of `-m forgetless`).

- After every update of a loss-driven mixture, this process's sampler state goes to
  `$RANK_PROBE_DIR/rank<R>.jsonl` (the run's own files show the first process's state only).
- With `RANK_PROBE_BUDGET=disagree`, the processes' `eval.budget` decisions disagree, as clocks that
  differ would make them: the first process keeps every evaluation point, the others skip them.
- Every time this process loads the base model to score a subset's documents, a line goes to
  `$RANK_PROBE_DIR/scoring<R>.jsonl`.
- With `RANK_PROBE_CACHE=own`, each process reads and writes its own token cache, `<cache_dir>/rank<R>`
  (given as `--set cache_dir=...`), as each node of a multi-node run may have its own disk.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import forgetless.train.run as run_module
import forgetless.train.subsets as subsets_module
from forgetless.cli import main

RANK = int(os.environ["RANK"])
adapt_mix = run_module._adapt_mix
model_scorer = subsets_module._model_scorer


def _recording(run, position, stage, sampler) -> None:
    adapt_mix(run, position, stage, sampler)
    with open(Path(os.environ["RANK_PROBE_DIR"]) / f"rank{RANK}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": position.step, "sampler": sampler.state_dict()}) + "\n")


def _counting_scorer(*args, **kwargs):
    with open(Path(os.environ["RANK_PROBE_DIR"]) / f"scoring{RANK}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"rank": RANK}) + "\n")
    return model_scorer(*args, **kwargs)


run_module._adapt_mix = _recording
subsets_module._model_scorer = _counting_scorer
if os.environ.get("RANK_PROBE_CACHE") == "own":
    sys.argv = [f"{arg}/rank{RANK}" if arg.startswith("cache_dir=") else arg for arg in sys.argv]
if os.environ.get("RANK_PROBE_BUDGET") == "disagree":
    run_module.within_budget = lambda *args, **kwargs: RANK == 0
main()
