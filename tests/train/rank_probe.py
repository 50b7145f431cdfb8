"""`forgetless ARGS` in this process, for tests under torchrun (in place of `-m forgetless`).

- After every update of a loss-driven mixture, this process's sampler state goes to
  `$RANK_PROBE_DIR/rank<R>.jsonl` (the run's own files show the first process's state only).
- With `RANK_PROBE_BUDGET=disagree`, the processes' `eval.budget` decisions disagree, as clocks that
  differ would make them: the first process keeps every evaluation point, the others skip them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import forgetless.train.run as run_module
from forgetless.cli import main

RANK = int(os.environ["RANK"])
adapt_mix = run_module._adapt_mix


def _recording(run, position, stage, sampler) -> None:
    adapt_mix(run, position, stage, sampler)
    with open(Path(os.environ["RANK_PROBE_DIR"]) / f"rank{RANK}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": position.step, "sampler": sampler.state_dict()}) + "\n")


run_module._adapt_mix = _recording
if os.environ.get("RANK_PROBE_BUDGET") == "disagree":
    run_module.within_budget = lambda *args, **kwargs: RANK == 0
main()
