"""Run lm-evaluation-harness tasks on a model that is already in memory, offline.

lm-eval is an optional extra (`pip install 'forgetless[eval]'`) and is imported only here, only when
a task is asked for. Tasks are looked up first in `include_dir` (local YAML tasks whose data files
are on disk), then among lm-eval's own tasks, which run offline only if their data is cached.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from forgetless.errors import UserError

_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run_lm_eval(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: list[str],
    include_dir: str | None,
    *,
    batch_size: int,
    device: Any,
    limit: int | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate `model` on lm-eval `tasks`; return `{task: {metric: value}}`.

    Metric names drop lm-eval's `,none` filter suffix (`acc`, `acc_stderr`, `acc_norm`, ...); a
    metric under another filter keeps it (`exact_match,strict-match`). `limit` caps the documents
    per task. The global random states that lm-eval seeds are restored afterwards, and the model's
    train/eval mode too, so calling this during training changes nothing else.
    """
    if not tasks:
        raise UserError("--lm-eval: name at least one task")
    if include_dir is not None and not os.path.isdir(include_dir):
        raise UserError(f"{include_dir}: --lm-eval-include must be a folder of task YAML files")
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)  # before datasets and huggingface_hub read them
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("lm-evaluation-harness is not installed: pip install 'forgetless[eval]'") from None

    task_manager = _task_manager(TaskManager, tasks, include_dir)
    was_training = model.training
    try:
        with _saved_random_state():
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(device))
            output = lm_eval.simple_evaluate(
                model=lm,
                tasks=list(tasks),
                task_manager=task_manager,
                limit=limit,
                log_samples=False,
                bootstrap_iters=1000,
            )
    finally:
        model.train(was_training)
    if output is None:  # only on non-zero ranks of a distributed run
        return {}
    return {name: _metrics(values) for name, values in output["results"].items()}


def _task_manager(task_manager_cls: Any, tasks: list[str], include_dir: str | None) -> Any:
    # Indexing lm-eval's own few thousand task files takes seconds; skip it when the local folder
    # has every task asked for.
    if include_dir is not None:
        local = task_manager_cls(include_path=include_dir, include_defaults=False)
        if all(task in local.all_tasks for task in tasks):
            return local
    manager = task_manager_cls(include_path=include_dir)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        close = difflib.get_close_matches(unknown[0], manager.all_tasks, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f" in {include_dir} or" if include_dir else ""
        raise UserError(
            f"--lm-eval: unknown task {unknown[0]!r}{hint}: not found{where} among lm-eval's tasks"
        )
    return manager


def _metrics(values: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for key, value in values.items():
        if key == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        name, _, filter_name = key.partition(",")
        metrics[name if filter_name in ("", "none") else key] = float(value)
    return metrics


@contextlib.contextmanager
def _saved_random_state() -> Iterator[None]:
    """lm-eval seeds Python's, NumPy's and torch's global generators; put them back afterwards."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
