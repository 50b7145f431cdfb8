"""Multiple-choice scoring by the log-likelihood of each choice, as lm-evaluation-harness does it.

A question set is JSONL, one record a line: `{"question": str, "choices": [str, ...], "answer": int}`
(other fields are kept and may be used by the prompt template). The score of a choice is the summed
log-probability of `" " + choice` after the prompt; the prediction is the choice with the highest
score (`acc`) or the highest score per character of the choice (`acc_norm`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.errors import UserError

BUNDLED_PREFIX = "bundled:"
TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


# ---------------------------------------------------------------------------------------------
# Question sets


def load_questions(ref: str) -> list[dict[str, Any]]:
    """Read and validate a question set: `bundled:<set>` or a path to a `.jsonl` / `.jsonl.gz` file.

    Raises `UserError` naming `file:line` for a record that is not a JSON object with a non-empty
    string `question`, a list of at least two strings `choices` and an integer `answer` indexing it.
    """
    if ref.startswith(BUNDLED_PREFIX):
        from forgetless.data import bundled

        path = Path(bundled.mcq_path(ref[len(BUNDLED_PREFIX) :]))
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise UserError(f"{ref}: question set not found (give a .jsonl file or bundled:<set>)")
    items = [_checked(record, path, line) for line, record in _read_jsonl(path)]
    if not items:
        raise UserError(f"{path}: the question set is empty")
    return items


def question_set_name(ref: str) -> str:
    """The short name of a question set: `bundled:security-mcq` -> `security-mcq`, `a/b.jsonl.gz` -> `b`."""
    if ref.startswith(BUNDLED_PREFIX):
        return ref[len(BUNDLED_PREFIX) :]
    name = Path(ref).name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{line_number}: invalid JSON: {err.msg}") from None
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UserError(f"{path}: cannot read the question set: {err}") from None


def _checked(record: Any, path: Path, line: int) -> dict[str, Any]:
    where = f"{path}:{line}"
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object with question, choices and answer")
    for key in ("question", "choices", "answer"):
        if key not in record:
            raise UserError(f"{where}: missing key {key!r}")
    question, choices, answer = record["question"], record["choices"], record["answer"]
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise UserError(f"{where}: 'choices' must be a list of at least two strings")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise UserError(f"{where}: 'answer' must be an integer index into choices (0..{len(choices) - 1})")
    return record


# ---------------------------------------------------------------------------------------------
# Prompts


def build_prompts(items: list[dict[str, Any]], template: str, few_shot: int, seed: int) -> list[str]:
    """The prompt of every item: `few_shot` solved examples from the other items, then the question.

    The examples of item `i` are drawn without replacement from the other items by a generator
    seeded with `(seed, i)`, so the prompts depend only on the items, the template and the seed.
    Each example is the template followed by `" " + its correct choice`; examples and the question
    are separated by a blank line.
    """
    if few_shot < 0:
        raise UserError(f"few_shot must be >= 0, got {few_shot}")
    if few_shot >= len(items) and few_shot > 0:
        raise UserError(f"few_shot = {few_shot} needs more than {few_shot} questions, got {len(items)}")
    prompts = []
    for i, item in enumerate(items):
        parts = []
        if few_shot:
            rng = np.random.default_rng([seed, i])
            others = rng.choice(len(items) - 1, size=few_shot, replace=False)
            for j in others:
                example = items[int(j) + (int(j) >= i)]  # skip item i itself
                answer = example["choices"][example["answer"]]
                parts.append(_render(template, example) + TARGET_DELIMITER + answer)
        parts.append(_render(template, item))
        prompts.append(FEWSHOT_DELIMITER.join(parts))
    return prompts


def _render(template: str, item: dict[str, Any]) -> str:
    try:
        return template.format_map(item)
    except (KeyError, IndexError, ValueError, AttributeError) as err:
        raise UserError(
            f"prompt template {template!r}: cannot fill it from a question record: {err!r}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Scoring


def score_mcq(
    model: torch.nn.Module,
    tokenizer: Any,
    items: list[dict[str, Any]],
    *,
    batch_size: int = 32,
    template: str = "{question}\nAnswer:",
    few_shot: int = 0,
    device: Any = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy of `model` on multiple-choice `items` by the log-likelihood of each choice.

    Returns `acc`, `acc_norm` (score divided by the choice's length in characters), their standard
    errors (`acc_stderr`, `acc_norm_stderr`: sample standard deviation over sqrt(n); 0 when n < 2)
    and `n`. Ties go to the first of the tied choices. See `choice_logprobs` for the scores.
    """
    scores = choice_logprobs(
        model,
        tokenizer,
        items,
        batch_size=batch_size,
        template=template,
        few_shot=few_shot,
        device=device,
        autocast_dtype=autocast_dtype,
        seed=seed,
    )
    correct, correct_norm = [], []
    for item, item_scores in zip(items, scores, strict=True):
        lengths = np.array([max(1, len(c)) for c in item["choices"]], dtype=np.float64)
        correct.append(float(np.argmax(item_scores) == item["answer"]))
        correct_norm.append(float(np.argmax(np.asarray(item_scores) / lengths) == item["answer"]))
    return {
        "acc": float(np.mean(correct)),
        "acc_norm": float(np.mean(correct_norm)),
        "acc_stderr": _stderr(correct),
        "acc_norm_stderr": _stderr(correct_norm),
        "n": len(items),
    }


def choice_logprobs(
    model: torch.nn.Module,
    tokenizer: Any,
    items: list[dict[str, Any]],
    *,
    batch_size: int = 32,
    template: str = "{question}\nAnswer:",
    few_shot: int = 0,
    device: Any = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> list[list[float]]:
    """For every item, the summed log-probability (nats) of `" " + choice` after its prompt, per choice.

    The prompt and the continuation are tokenized separately and their ids concatenated, so the
    scored tokens are exactly the continuation's. `batch_size` counts (prompt, choice) sequences;
    the model runs in eval mode without gradients and its mode is restored afterwards.
    """
    if not items:
        raise UserError("no questions to score")
    if batch_size < 1:
        raise UserError(f"batch_size must be positive, got {batch_size}")
    prompts = build_prompts(items, template, few_shot, seed)
    requests = []
    for item, prompt in zip(items, prompts, strict=True):
        context_ids, continuations = _encode(tokenizer, prompt, item["choices"])
        requests.extend((context_ids, continuation_ids) for continuation_ids in continuations)
    flat = _continuation_logprobs(model, requests, batch_size=batch_size, device=device, dtype=autocast_dtype)
    scores, first = [], 0
    for item in items:
        scores.append(flat[first : first + len(item["choices"])])
        first += len(item["choices"])
    return scores


def _stderr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _encode(tokenizer: Any, prompt: str, choices: list[str]) -> tuple[list[int], list[list[int]]]:
    """Token ids of the prompt (with the tokenizer's own BOS, if it adds one) and of each continuation."""
    # A space that ends the prompt belongs to the continuation, where BPE tokenizers expect it.
    stripped = prompt.rstrip(" ")
    delimiter = prompt[len(stripped) :] or TARGET_DELIMITER
    context_ids = list(tokenizer(stripped, add_special_tokens=True)["input_ids"])
    if not context_ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        context_ids = [start]
    continuations = []
    for choice in choices:
        ids = list(tokenizer(delimiter + choice, add_special_tokens=False)["input_ids"])
        continuations.append(ids)
    return context_ids, continuations


def _continuation_logprobs(
    model: torch.nn.Module,
    requests: list[tuple[list[int], list[int]]],
    *,
    batch_size: int,
    device: Any,
    dtype: torch.dtype | None,
) -> list[float]:
    """Summed log-probability of each continuation after its context, in the order of `requests`.

    Sequences are sorted by length (longest first) so that each padded batch wastes little, and
    padded on the right, where a causal model's predictions for real tokens cannot see the padding.
    """
    device = torch.device(device)
    order = sorted(range(len(requests)), key=lambda k: -(len(requests[k][0]) + len(requests[k][1])))
    results = [0.0] * len(requests)
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), autocast:
            for first in range(0, len(order), batch_size):
                chunk = order[first : first + batch_size]
                # The last continuation token is never an input.
                sequences = [requests[k][0] + requests[k][1][:-1] for k in chunk]
                width = max(len(s) for s in sequences)
                input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
                attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
                rows, positions, targets = [], [], []
                for row, (k, seq) in enumerate(zip(chunk, sequences, strict=True)):
                    input_ids[row, : len(seq)] = torch.tensor(seq)
                    attention_mask[row, : len(seq)] = 1
                    context, continuation = requests[k]
                    start = len(context) - 1  # the position whose output predicts continuation[0]
                    rows.extend([row] * len(continuation))
                    positions.extend(range(start, start + len(continuation)))
                    targets.extend(continuation)
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
                ).logits
                picked = logits[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
                logprobs = torch.log_softmax(picked.float(), dim=-1)
                token_logprobs = logprobs.gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
                per_request = torch.zeros(len(chunk), dtype=torch.float64, device=device)
                per_request.index_add_(0, torch.tensor(rows, device=device), token_logprobs.double())
                for row, k in enumerate(chunk):
                    results[k] = float(per_request[row])
    finally:
        model.train(was_training)
    return results
