"""Multiple-choice scoring: question files, prompts, per-choice log-likelihoods and the metrics."""

from __future__ import annotations

import gzip
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import tiny_llama
from forgetless.errors import UserError
from forgetless.evaluate import mcq
from forgetless.evaluate.mcq import (
    build_prompts,
    choice_logprobs,
    load_questions,
    question_set_name,
    score_mcq,
)

ITEMS = [
    {"question": "Which number is even?", "choices": ["three", "four", "five", "seven"], "answer": 1},
    {"question": "Which animal barks?", "choices": ["dog", "cat", "fish", "a small bird"], "answer": 0},
    {"question": "Which colour is the sky?", "choices": ["red", "green", "blue", "black"], "answer": 2},
    {"question": "Which is a fruit?", "choices": ["stone", "apple", "chair", "cloud"], "answer": 1},
    {"question": "Which is a metal?", "choices": ["wood", "glass", "paper", "iron"], "answer": 3},
]


def write_jsonl(path, records, compress=False):
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Question files


@pytest.mark.parametrize("compress", [False, True])
def test_load_questions_reads_jsonl_and_gzip(tmp_path, compress):
    path = write_jsonl(
        tmp_path / ("q.jsonl.gz" if compress else "q.jsonl"), [*ITEMS[:2], "", ITEMS[2]], compress
    )
    items = load_questions(str(path))
    assert items == ITEMS[:3]


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ("{not json", "invalid JSON"),
        ([1, 2], "JSON object"),
        ({"choices": ["a", "b"], "answer": 0}, "'question'"),
        ({"question": "q?", "choices": ["a"], "answer": 0}, "at least two"),
        ({"question": "q?", "choices": ["a", 3], "answer": 0}, "strings"),
        ({"question": "q?", "choices": ["a", "b"], "answer": 2}, "index"),
        ({"question": "q?", "choices": ["a", "b"], "answer": "a"}, "index"),
        ({"question": "q?", "choices": ["a", "b"], "answer": True}, "index"),
        ({"question": "", "choices": ["a", "b"], "answer": 0}, "non-empty"),
    ],
)
def test_a_bad_record_names_the_file_and_line(tmp_path, record, complaint):
    path = write_jsonl(tmp_path / "bad.jsonl", [ITEMS[0], "", record])
    with pytest.raises(UserError, match="bad.jsonl:3: ") as err:
        load_questions(str(path))
    assert complaint in str(err.value)


def test_missing_and_empty_question_sets_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="nowhere.jsonl: question set not found"):
        load_questions(str(tmp_path / "nowhere.jsonl"))
    with pytest.raises(UserError, match="empty"):
        load_questions(str(write_jsonl(tmp_path / "empty.jsonl", [""])))


def test_bundled_question_sets_load():
    bundled = pytest.importorskip(
        "forgetless.data.bundled", reason="the bundled data module is not there yet"
    )
    try:
        items = load_questions("bundled:security-mcq")
    except (FileNotFoundError, UserError) as err:
        pytest.skip(f"bundled security-mcq not available: {err}")
    assert len(items) == len(list(bundled.iter_questions("security-mcq")))
    assert all(len(item["choices"]) == 4 for item in items)


def test_question_set_names():
    assert question_set_name("bundled:security-mcq") == "security-mcq"
    assert question_set_name("/data/cwe_mcq.jsonl.gz") == "cwe_mcq"
    assert question_set_name("sets/general.jsonl") == "general"


# ---------------------------------------------------------------------------------------------
# Prompts


def test_zero_shot_prompt_is_the_template():
    prompts = build_prompts(ITEMS, "Q: {question}\nA:", few_shot=0, seed=0)
    assert prompts[0] == "Q: Which number is even?\nA:"


def test_few_shot_examples_are_other_items_with_their_answers_and_deterministic():
    prompts = build_prompts(ITEMS, "{question}\nAnswer:", few_shot=2, seed=0)
    assert prompts == build_prompts(ITEMS, "{question}\nAnswer:", few_shot=2, seed=0)
    for i, prompt in enumerate(prompts):
        blocks = prompt.split("\n\n")
        assert len(blocks) == 3
        assert blocks[-1] == f"{ITEMS[i]['question']}\nAnswer:"
        for block in blocks[:2]:
            example = next(item for item in ITEMS if block.startswith(item["question"]))
            assert example is not ITEMS[i]
            assert block == f"{example['question']}\nAnswer: {example['choices'][example['answer']]}"
    other_seeds = [build_prompts(ITEMS, "{question}\nAnswer:", few_shot=2, seed=s) for s in range(1, 6)]
    assert any(p != prompts for p in other_seeds)


def test_bad_template_and_few_shot_counts_are_user_errors():
    with pytest.raises(UserError, match="topic"):
        build_prompts(ITEMS, "{topic}: {question}", few_shot=0, seed=0)
    with pytest.raises(UserError, match="few_shot"):
        build_prompts(ITEMS, "{question}", few_shot=len(ITEMS), seed=0)


# ---------------------------------------------------------------------------------------------
# Scoring


def direct_choice_logprob(model, tokenizer, prompt: str, choice: str) -> float:
    context = tokenizer(prompt)["input_ids"]
    continuation = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(logprobs[len(context) + j - 1, token]) for j, token in enumerate(continuation))


@pytest.mark.parametrize(("few_shot", "batch_size"), [(0, 3), (0, 12), (2, 12), (2, 100)])
def test_batched_choice_scores_match_one_sequence_at_a_time(tiny_model, tiny_tokenizer, few_shot, batch_size):
    # Batches of one question, and of several questions whose prompts differ in length.
    template = "Question: {question}\nAnswer:"
    scores = choice_logprobs(
        tiny_model, tiny_tokenizer, ITEMS, batch_size=batch_size, template=template, few_shot=few_shot
    )
    prompts = build_prompts(ITEMS, template, few_shot=few_shot, seed=0)
    tiny_model.eval()
    for item, prompt, item_scores in zip(ITEMS, prompts, scores, strict=True):
        expected = [direct_choice_logprob(tiny_model, tiny_tokenizer, prompt, c) for c in item["choices"]]
        assert item_scores == pytest.approx(expected, abs=1e-4)
        assert all(s < 0 for s in item_scores)


def test_a_trailing_space_in_the_template_moves_to_the_continuation(tiny_model, tiny_tokenizer):
    plain = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS[:2], template="{question}\nAnswer:")
    spaced = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS[:2], template="{question}\nAnswer: ")
    assert np.allclose(spaced, plain, atol=1e-6, rtol=0)


def test_metrics_from_choice_scores(monkeypatch, tiny_tokenizer):
    # Item 0: the raw argmax is a short wrong choice; per character, the long right one wins.
    # Item 1: right both ways. Item 2: wrong both ways.
    scores = [[-10.0, -4.0, -9.0, -9.0], [-2.0, -1.0, -3.0, -9.0], [-5.0, -5.0, -1.0, -5.0]]
    items = [
        {"question": "a", "choices": ["a much longer choice", "ok", "x", "y"], "answer": 0},
        {"question": "b", "choices": ["p", "q", "r", "s"], "answer": 1},
        {"question": "c", "choices": ["p", "q", "r", "s"], "answer": 0},
    ]
    monkeypatch.setattr(mcq, "choice_logprobs", lambda *args, **kwargs: scores)
    result = score_mcq(None, tiny_tokenizer, items)
    assert result["n"] == 3
    assert result["acc"] == pytest.approx(1 / 3)
    assert result["acc_norm"] == pytest.approx(2 / 3)
    # Sample standard deviation of 0/1 outcomes over sqrt(n), as lm-eval reports it.
    assert result["acc_stderr"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 2))
    assert result["acc_norm_stderr"] == pytest.approx(np.std([1, 1, 0], ddof=1) / math.sqrt(3))
    assert "outcomes" not in result
    per_item = score_mcq(None, tiny_tokenizer, items, with_outcomes=True)
    assert per_item.pop("outcomes") == [0, 1, 0] and per_item == result


def test_score_mcq_is_deterministic_and_restores_training_mode(tiny_model, tiny_tokenizer):
    tiny_model.train()
    first = score_mcq(tiny_model, tiny_tokenizer, ITEMS, batch_size=4, few_shot=1)
    assert tiny_model.training
    second = score_mcq(tiny_model, tiny_tokenizer, ITEMS, batch_size=7, few_shot=1)
    assert first == second
    assert set(first) == {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr", "n", "chance"}
    with_outcomes = score_mcq(tiny_model, tiny_tokenizer, ITEMS, batch_size=4, few_shot=1, with_outcomes=True)
    assert sum(with_outcomes["outcomes"]) == round(first["acc"] * len(ITEMS))
    assert len(with_outcomes["outcomes"]) == len(ITEMS)
    assert first["n"] == len(ITEMS)
    assert first["acc"] * len(ITEMS) == pytest.approx(round(first["acc"] * len(ITEMS)))


def test_no_items_is_a_user_error(tiny_model, tiny_tokenizer):
    with pytest.raises(UserError, match="no questions"):
        score_mcq(tiny_model, tiny_tokenizer, [])


def test_a_prompt_longer_than_the_model_context_is_cut_from_the_left(tiny_tokenizer):
    model = tiny_llama(tiny_tokenizer, max_position_embeddings=16).eval()
    long_item = {"question": "word " * 40 + "which?", "choices": ["yes", "no"], "answer": 0}
    scores = choice_logprobs(model, tiny_tokenizer, [long_item])[0]

    context = tiny_tokenizer(long_item["question"] + "\nAnswer:")["input_ids"]
    continuations = [
        tiny_tokenizer(" " + c, add_special_tokens=False)["input_ids"] for c in long_item["choices"]
    ]
    # The prompt keeps its last tokens: as many as leave room for the longest choice.
    kept = context[-(16 + 1 - max(len(c) for c in continuations)) :]
    assert len(kept) < len(context)
    for continuation, score in zip(continuations, scores, strict=True):
        ids = kept + continuation
        assert len(ids) - 1 <= 16
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids[:-1]])).logits[0].double(), dim=-1)
        expected = sum(float(logprobs[len(kept) - 1 + j, token]) for j, token in enumerate(continuation))
        assert score == pytest.approx(expected, abs=1e-4)


class NoCacheModel(torch.nn.Module):
    """A causal LM that returns logits only, and ignores positions: nothing to share a prompt with."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids, attention_mask=None, **ignored):
        return SimpleNamespace(logits=self.inner(input_ids=input_ids, attention_mask=attention_mask).logits)


def test_prompts_are_run_once_per_question_when_the_model_keeps_a_cache(
    monkeypatch, tiny_model, tiny_tokenizer
):
    def whole_sequences(*args, **kwargs):
        raise AssertionError("the shared-prompt path should have been used")

    monkeypatch.setattr(mcq, "_whole_sequence_logprobs", whole_sequences)
    assert len(choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=8)) == len(ITEMS)


def test_a_model_without_a_cache_is_scored_one_whole_sequence_per_choice(tiny_model, tiny_tokenizer):
    shared = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=6, few_shot=1)
    whole = choice_logprobs(NoCacheModel(tiny_model), tiny_tokenizer, ITEMS, batch_size=6, few_shot=1)
    assert np.allclose(whole, shared, atol=1e-4, rtol=0)
    prompt = build_prompts(ITEMS, "{question}\nAnswer:", few_shot=1, seed=0)[3]
    expected = [direct_choice_logprob(tiny_model, tiny_tokenizer, prompt, c) for c in ITEMS[3]["choices"]]
    assert np.allclose(whole[3], expected, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Speed: the head at the scored positions only, batches by a token budget, halves on running out
# of memory, batches at once


def test_the_fused_head_gives_the_scores_of_the_full_logits(monkeypatch, tiny_model, tiny_tokenizer):
    assert mcq.fused_head(tiny_model)
    fused = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, few_shot=1)
    whole_fused = choice_logprobs(NoCacheModel(tiny_model), tiny_tokenizer, ITEMS, few_shot=1)
    monkeypatch.setattr(mcq, "fused_head", lambda model: False)
    plain = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, few_shot=1)
    assert np.allclose(fused, plain, rtol=1e-5, atol=1e-5)
    assert np.allclose(whole_fused, plain, rtol=1e-5, atol=1e-4)


def test_batches_hold_at_most_the_token_budget_or_the_pair_count():
    questions = [mcq._Question([1] * n, [[2] * c, [3]]) for n, c in [(9, 1), (3, 5), (7, 2), (2, 2), (8, 1)]]
    by_tokens = mcq._batches(questions, None, budget=40)
    for batch in by_tokens:
        width = max(len(questions[i].context) for i in batch)
        longest = max(len(c) for i in batch for c in questions[i].continuations)
        assert len(batch) == 1 or 2 * len(batch) * (width + longest) <= 40
    assert sorted(i for batch in by_tokens for i in batch) == list(range(5))
    assert [len(questions[b[0]].context) for b in by_tokens] == sorted(
        (len(questions[b[0]].context) for b in by_tokens), reverse=True
    )
    assert all(sum(len(questions[i].continuations) for i in b) <= 4 for b in mcq._batches(questions, 4))
    assert len(mcq._batches(questions, None, budget=1)) == 5  # one question each, at least


def test_a_batch_that_runs_out_of_memory_is_scored_in_halves(monkeypatch, tiny_model, tiny_tokenizer):
    expected = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=100)
    shared = mcq._shared_prompt_logprobs

    def limited(model, questions, device, fused=False):
        if len(questions) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return shared(model, questions, device, fused)

    monkeypatch.setattr(mcq, "_shared_prompt_logprobs", limited)
    assert np.allclose(
        choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=100), expected, atol=1e-6
    )


def test_batches_at_once_give_the_serial_scores(monkeypatch, tiny_model, tiny_tokenizer):
    monkeypatch.setattr(mcq, "pass_threads", lambda model, device: 1)
    serial = choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=4)
    monkeypatch.setattr(mcq, "pass_threads", lambda model, device: 3)
    assert np.allclose(choice_logprobs(tiny_model, tiny_tokenizer, ITEMS, batch_size=4), serial, atol=1e-6)
