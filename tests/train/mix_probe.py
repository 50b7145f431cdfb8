"""`forgetless ARGS` in this process, writing the sampler state of this rank after every update of a
loss-driven mixture to `$MIX_PROBE_DIR/rank<R>.jsonl` (what the run's own files show is the first
process's state only). Run by tests under torchrun in place of `-m forgetless`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import forgetless.train.run as run_module
from forgetless.cli import main

adapt_mix = run_module._adapt_mix


def _recording(run, position, stage, sampler) -> None:
    adapt_mix(run, position, stage, sampler)
    with open(Path(os.environ["MIX_PROBE_DIR"]) / f"rank{run.world.rank}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": position.step, "sampler": sampler.state_dict()}) + "\n")


run_module._adapt_mix = _recording
main()
