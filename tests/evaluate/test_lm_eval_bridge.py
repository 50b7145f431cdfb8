"""The lm-evaluation-harness bridge on a local multiple-choice task, offline, with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from forgetless.errors import UserError

pytest.importorskip(
    "lm_eval", reason="lm-evaluation-harness is not installed (pip install 'forgetless[eval]')"
)

from forgetless.evaluate.lm_eval_bridge import run_lm_eval  # noqa: E402

QUESTIONS = [
    ("Which number is even?", ["three", "four", "five", "seven"], 1),
    ("Which animal barks?", ["dog", "cat", "fish", "bird"], 0),
    ("Which colour is the sky?", ["red", "green", "blue", "black"], 2),
    ("Which is a fruit?", ["stone", "apple", "chair", "cloud"], 1),
    ("Which is a metal?", ["wood", "glass", "paper", "iron"], 3),
    ("Which season is cold?", ["winter", "summer", "spring", "autumn"], 0),
    ("Which is a vowel?", ["b", "c", "e", "d"], 2),
    ("Which planet is ours?", ["Mars", "Earth", "Venus", "Jupiter"], 1),
]


def write_task(folder: Path, name: str = "tiny_mcq") -> Path:
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for question, choices, answer in QUESTIONS:
            handle.write(json.dumps({"question": question, "choices": choices, "answer": answer}) + "\n")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {data.resolve()}\n"  # absolute: lm-eval resolves relative paths against the cwd
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}\\nAnswer:"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        "metric_list:\n"
        "  - metric: acc\n"
        "  - metric: acc_norm\n",
        encoding="utf-8",
    )
    return folder


def test_local_multiple_choice_task_runs_offline(tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """Through the bridge, lm-eval scores every choice with the log-likelihood our scorer gives it,
    and its accuracy is the one those log-likelihoods imply."""
    from lm_eval.models.huggingface import HFLM

    from forgetless.evaluate.mcq import choice_logprobs

    scored: dict[tuple[str, str], float] = {}
    original = HFLM.loglikelihood

    def recording(self, requests, *args, **kwargs):
        results = original(self, requests, *args, **kwargs)
        for request, (logprob, _) in zip(requests, results, strict=True):
            scored[tuple(request.args)] = logprob
        return results

    monkeypatch.setattr(HFLM, "loglikelihood", recording)
    tiny_model.train()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)

    results = run_lm_eval(
        tiny_model, tiny_tokenizer, ["tiny_mcq"], str(write_task(tmp_path)), batch_size=8, device="cpu"
    )

    # Training state is left as it was: the mode, and the global random stream lm-eval reseeds.
    assert tiny_model.training
    assert torch.equal(torch.rand(3), expected_next)
    items = [{"question": q, "choices": c, "answer": a} for q, c, a in QUESTIONS]
    ours = choice_logprobs(tiny_model, tiny_tokenizer, items, batch_size=5, template="{question}\nAnswer:")
    theirs = [[scored[(f"{q}\nAnswer:", f" {choice}")] for choice in c] for q, c, _ in QUESTIONS]
    assert [s for row in theirs for s in row] == pytest.approx([s for row in ours for s in row], abs=1e-4)
    correct = [
        max(range(len(row)), key=row.__getitem__) == a for row, (_, _, a) in zip(ours, QUESTIONS, strict=True)
    ]
    assert results["tiny_mcq"]["acc"] == pytest.approx(sum(correct) / len(QUESTIONS))


def test_agrees_with_our_own_mcq_scoring(tmp_path, tiny_model, tiny_tokenizer):
    from forgetless.evaluate.mcq import score_mcq

    items = [{"question": q, "choices": c, "answer": a} for q, c, a in QUESTIONS]
    ours = score_mcq(tiny_model, tiny_tokenizer, items, template="{question}\nAnswer:")
    theirs = run_lm_eval(
        tiny_model, tiny_tokenizer, ["tiny_mcq"], str(write_task(tmp_path)), batch_size=4, device="cpu"
    )["tiny_mcq"]
    assert theirs["acc"] == pytest.approx(ours["acc"])
    assert theirs["acc_norm"] == pytest.approx(ours["acc_norm"])
    assert theirs["acc_stderr"] == pytest.approx(ours["acc_stderr"])


class FakeTaskManager:
    """Stands in for lm-eval's TaskManager: indexing its own few thousand tasks takes seconds."""

    made: list[bool] = []

    def __init__(self, include_path=None, include_defaults=True):
        FakeTaskManager.made.append(include_defaults)
        self.all_tasks = ["tiny_mcq"] + (["hellaswag", "arc_easy"] if include_defaults else [])


def test_tasks_are_looked_up_locally_first_then_among_lm_evals_own(tmp_path):
    from forgetless.evaluate.lm_eval_bridge import _task_manager

    FakeTaskManager.made = []
    _task_manager(FakeTaskManager, ["tiny_mcq"], str(tmp_path))
    assert FakeTaskManager.made == [False]  # found locally: lm-eval's own tasks never indexed

    FakeTaskManager.made = []
    assert "hellaswag" in _task_manager(FakeTaskManager, ["tiny_mcq", "hellaswag"], str(tmp_path)).all_tasks
    assert FakeTaskManager.made == [False, True]


def test_an_unknown_task_is_a_user_error_with_a_suggestion(tmp_path):
    from forgetless.evaluate.lm_eval_bridge import _task_manager

    with pytest.raises(UserError, match="unknown task 'helaswag' \\(did you mean 'hellaswag'\\?\\)"):
        _task_manager(FakeTaskManager, ["helaswag"], str(tmp_path))


def test_a_missing_include_folder_is_a_user_error(tmp_path, tiny_model, tiny_tokenizer):
    with pytest.raises(UserError, match="--lm-eval-include"):
        run_lm_eval(
            tiny_model, tiny_tokenizer, ["tiny_mcq"], str(tmp_path / "none"), batch_size=8, device="cpu"
        )


def test_per_choice_log_likelihoods_equal_lm_evals(tiny_model, tiny_tokenizer):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from forgetless.evaluate.mcq import choice_logprobs

    items = [{"question": q, "choices": c, "answer": a} for q, c, a in QUESTIONS]
    ours = choice_logprobs(tiny_model, tiny_tokenizer, items, batch_size=5, template="Q: {question}\nA:")
    lm = HFLM(pretrained=tiny_model, tokenizer=tiny_tokenizer, batch_size=4, device="cpu")
    requests = [
        Instance("loglikelihood", doc={}, arguments=(f"Q: {q}\nA:", f" {choice}"), idx=i)
        for q, choices, _ in QUESTIONS
        for i, choice in enumerate(choices)
    ]
    theirs = [logprob for logprob, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    assert [s for item_scores in ours for s in item_scores] == pytest.approx(theirs, abs=1e-4)
