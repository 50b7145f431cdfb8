"""Multiple-choice scoring by the log-likelihood of each choice, as lm-evaluation-harness does it.

A question set is JSONL, one record a line: `{"question": str, "choices": [str, ...], "answer": int}`
(other fields are kept and may be used by the prompt template). The score of a choice is the summed
log-probability of `" " + choice` after the prompt; the prediction is the choice with the highest
score (`acc`) or the highest score per character of the choice (`acc_norm`).
"""

from __future__ import annotations

import gzip
import inspect
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.device import autocast
from forgetless.errors import UserError
from forgetless.evaluate.forward import (
    fused_head,
    no_gradient_state,
    pass_threads,
    run_in_passes,
    tokens_per_pass,
)
from forgetless.evaluate.mcq_stats import chance_accuracy, pack_outcomes

BUNDLED_PREFIX = "bundled:"
# Multiple-choice sequences are short (a question and one choice): with a set `eval.batch_size`, a
# forward pass scores this many of them per held-out window of an evaluation batch.
SEQUENCES_PER_WINDOW = 4
TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


def mcq_batch_size(eval_batch_size: int | str | None) -> int | None:
    """(prompt, choice) pairs per forward pass for an evaluation batch of `eval_batch_size` windows;
    None for `auto` (batches by a token budget, see `choice_logprobs`)."""
    if eval_batch_size is None or eval_batch_size == "auto":
        return None
    return int(eval_batch_size) * SEQUENCES_PER_WINDOW


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
    batch_size: int | None = None,
    template: str = "{question}\nAnswer:",
    few_shot: int = 0,
    device: Any = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
    with_outcomes: bool = False,
) -> dict[str, Any]:
    """Accuracy of `model` on multiple-choice `items` by the log-likelihood of each choice.

    Returns `acc`, `acc_norm` (score divided by the choice's length in characters), their standard
    errors (`acc_stderr`, `acc_norm_stderr`: sample standard deviation over sqrt(n); 0 when n < 2),
    `n` and `chance` (the accuracy of guessing, see `mcq_stats.chance_accuracy`); with
    `with_outcomes`, also `outcomes`: 1 or 0 per item, in order, for `acc`. Ties go to the first of
    the tied choices. See `choice_logprobs` for the scores.
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
    result: dict[str, Any] = {
        "acc": float(np.mean(correct)),
        "acc_norm": float(np.mean(correct_norm)),
        "acc_stderr": _stderr(correct),
        "acc_norm_stderr": _stderr(correct_norm),
        "n": len(items),
        "chance": chance_accuracy(items),
    }
    if with_outcomes:
        result["outcomes"] = [int(c) for c in correct]
    return result


def mcq_record(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The `mcq/<name>/...` keys of an eval line in metrics.jsonl for a `score_mcq` result: `acc`,
    `acc_norm`, `acc_stderr`, `n`, `chance`, and `outcomes` packed (`mcq_stats.pack_outcomes`)."""
    record = {f"mcq/{name}/{key}": result[key] for key in ("acc", "acc_norm", "acc_stderr", "n", "chance")}
    if "outcomes" in result:
        record[f"mcq/{name}/outcomes"] = pack_outcomes(result["outcomes"])
    return record


def choice_logprobs(
    model: torch.nn.Module,
    tokenizer: Any,
    items: list[dict[str, Any]],
    *,
    batch_size: int | None = None,
    template: str = "{question}\nAnswer:",
    few_shot: int = 0,
    device: Any = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> list[list[float]]:
    """For every item, the summed log-probability (nats) of `" " + choice` after its prompt, per choice.

    The prompt and the continuation are tokenized separately and their ids concatenated, so the
    scored tokens are exactly the continuation's. A prompt longer than the model's context is cut
    from the left so that the longest choice fits. `batch_size` counts (prompt, choice) pairs per
    batch; None batches questions up to `forward.tokens_per_pass` padded tokens (prompt width plus
    longest choice, per pair). The model runs in eval mode with no gradient state, batches on a CPU
    as many at once as `forward.pass_threads` says, and a batch that runs out of memory is scored
    in halves; the model's mode is restored afterwards. For a model with a plain LM head
    (`forward.fused_head`) the head runs only at the scored positions.
    """
    if not items:
        raise UserError("no questions to score")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"batch_size must be positive, got {batch_size}")
    prompts = build_prompts(items, template, few_shot, seed)
    max_length = _max_length(model)
    questions = []
    for item, prompt in zip(items, prompts, strict=True):
        context_ids, continuations = _encode(tokenizer, prompt, item["choices"])
        questions.append(_Question(_fit(context_ids, continuations, max_length), continuations))

    device = torch.device(device)
    fused = fused_head(model)
    budget = None
    if batch_size is None:
        budget = tokens_per_pass(model, device, fused=fused, autocast_dtype=autocast_dtype, with_cache=True)
    batches = _batches(questions, batch_size, budget)

    def score(first: int, stop: int) -> list[list[float]]:
        # Grad mode and autocast are per thread: set here, where the batch runs.
        with no_gradient_state(model), autocast(device, autocast_dtype):
            return _batch_logprobs(model, [questions[i] for i in batches[first]], device, fused)

    was_training = model.training
    model.eval()
    scores: list[list[float]] = [[] for _ in questions]
    try:
        threads = pass_threads(model, device)
        for batch, batch_scores in zip(
            batches, run_in_passes(len(batches), 1, score, threads=threads), strict=True
        ):
            for i, item_scores in zip(batch, batch_scores, strict=True):
                scores[i] = item_scores
    finally:
        model.train(was_training)
    return scores


def _batch_logprobs(
    model: torch.nn.Module, questions: list[_Question], device: torch.device, fused: bool
) -> list[list[float]]:
    """The choice scores of `questions`, prompts shared when the model keeps a reusable cache; a
    batch that runs out of memory is scored in two halves (one question that does is an error)."""
    try:
        scores = _shared_prompt_logprobs(model, questions, device, fused)
        if scores is None:  # the model keeps no reusable cache: score whole sequences
            scores = _whole_sequence_logprobs(model, questions, device, fused)
        return scores
    except torch.OutOfMemoryError:
        if len(questions) == 1:
            raise
    # outside the handler: the failed batch's tensors are free by now
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    half = len(questions) // 2
    return _batch_logprobs(model, questions[:half], device, fused) + _batch_logprobs(
        model, questions[half:], device, fused
    )


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


@dataclass(frozen=True)
class _Question:
    context: list[int]  # token ids of the prompt
    continuations: list[list[int]]  # token ids of " " + each choice


def _max_length(model: torch.nn.Module) -> int | None:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 1 else None


def _fit(context: list[int], continuations: list[list[int]], max_length: int | None) -> list[int]:
    """The context, cut from the left so that context + the longest continuation (less its last
    token, which is only a target) fits in `max_length` positions."""
    longest = max(len(c) for c in continuations)
    if max_length is None or len(context) + longest - 1 <= max_length:
        return context
    keep = max_length + 1 - longest
    if keep < 1:
        raise UserError(f"a choice of {longest} tokens does not fit the model's {max_length}-token context")
    return context[-keep:]


def _batches(
    questions: list[_Question], batch_size: int | None, budget: int | None = None
) -> list[list[int]]:
    """Question indices in batches, longest prompts first so that the padding in each batch is
    small: at most `batch_size` (prompt, choice) pairs each, or, without one, at most `budget`
    padded tokens (pairs x (widest prompt + longest choice)); at least one question each."""
    order = sorted(range(len(questions)), key=lambda i: -len(questions[i].context))
    batches: list[list[int]] = []
    pairs = width = longest = 0
    for i in order:
        q = questions[i]
        n, choice = len(q.continuations), max(len(c) for c in q.continuations)
        if batch_size is not None:
            fits = pairs + n <= batch_size
        else:
            assert budget is not None
            fits = (pairs + n) * (max(width, len(q.context)) + max(longest, choice)) <= budget
        if batches and fits:
            batches[-1].append(i)
            pairs, width, longest = pairs + n, max(width, len(q.context)), max(longest, choice)
        else:
            batches.append([i])
            pairs, width, longest = n, len(q.context), choice
    return batches


def _shared_prompt_logprobs(
    model: torch.nn.Module, questions: list[_Question], device: torch.device, fused: bool = False
) -> list[list[float]] | None:
    """Score every choice of `questions` running each prompt once: one forward pass over the
    prompts keeps their key/value cache, which is copied for every choice of the prompt; a second
    pass runs all choices on it. Returns None if the model returns no cache that can be copied.

    Prompts are padded on the left, with explicit positions, so that all of them end in the last
    column and the choices continue at the right positions.
    """
    width = max(len(q.context) for q in questions)
    input_ids = torch.zeros((len(questions), width), dtype=torch.long)
    mask = torch.zeros((len(questions), width), dtype=torch.long)
    positions = torch.zeros((len(questions), width), dtype=torch.long)
    for row, q in enumerate(questions):
        n = len(q.context)
        input_ids[row, width - n :] = torch.tensor(q.context)
        mask[row, width - n :] = 1
        positions[row, width - n :] = torch.arange(n)
    last = torch.full((len(questions),), width - 1)
    first_logits, cache = _logits_at(
        model,
        fused,
        torch.arange(len(questions)),
        last,
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
    )
    if cache is None or not hasattr(cache, "reorder_cache"):
        return None
    # The last prompt position predicts the first token of every choice.
    first_logprobs = torch.log_softmax(first_logits.float(), dim=-1)

    owner = [row for row, q in enumerate(questions) for _ in q.continuations]
    choices = [c for q in questions for c in q.continuations]
    owner_index = torch.tensor(owner, device=device)
    firsts = torch.tensor([c[0] for c in choices], device=device)
    totals = first_logprobs[owner_index, firsts].double()

    rest = max(len(c) for c in choices) - 1  # inputs per choice: all tokens but the last
    if rest > 0:
        cache.reorder_cache(owner_index)  # one copy of its prompt's cache per choice
        inputs = torch.zeros((len(choices), rest), dtype=torch.long)
        new_mask = torch.zeros((len(choices), rest), dtype=torch.long)
        for row, c in enumerate(choices):
            inputs[row, : len(c) - 1] = torch.tensor(c[:-1])
            new_mask[row, : len(c) - 1] = 1
        lengths = torch.tensor([len(questions[r].context) for r in owner])
        rows, cols, targets = [], [], []
        for row, c in enumerate(choices):
            rows.extend([row] * (len(c) - 1))
            cols.extend(range(len(c) - 1))
            targets.extend(c[1:])
        if targets:
            picked, _ = _logits_at(
                model,
                fused,
                torch.tensor(rows),
                torch.tensor(cols),
                input_ids=inputs.to(device),
                attention_mask=torch.cat([mask[owner], new_mask], dim=1).to(device),
                position_ids=(lengths[:, None] + torch.arange(rest)[None, :]).to(device),
                use_cache=True,
                cache=cache,
            )
            logprobs = torch.log_softmax(picked.float(), dim=-1)
            token_logprobs = logprobs.gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
            totals.index_add_(0, torch.tensor(rows, device=device), token_logprobs.double())
    return _split(totals.tolist(), questions)


def _whole_sequence_logprobs(
    model: torch.nn.Module, questions: list[_Question], device: torch.device, fused: bool = False
) -> list[list[float]]:
    """Score every choice of `questions` as its own sequence, prompt + choice, padded on the right,
    where a causal model's predictions for the real tokens cannot see the padding."""
    sequences = [q.context + c[:-1] for q in questions for c in q.continuations]
    width = max(len(s) for s in sequences)
    input_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    row = 0
    for q in questions:
        for c in q.continuations:
            n = len(q.context) + len(c) - 1
            input_ids[row, :n] = torch.tensor(q.context + c[:-1])
            mask[row, :n] = 1
            start = len(q.context) - 1  # the position whose output predicts c[0]
            rows.extend([row] * len(c))
            cols.extend(range(start, start + len(c)))
            targets.extend(c)
            row += 1
    picked, _ = _logits_at(
        model,
        fused,
        torch.tensor(rows),
        torch.tensor(cols),
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        use_cache=False,
    )
    logprobs = torch.log_softmax(picked.float(), dim=-1)
    token_logprobs = logprobs.gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
    totals = torch.zeros(len(sequences), dtype=torch.float64, device=device)
    totals.index_add_(0, torch.tensor(rows, device=device), token_logprobs.double())
    return _split(totals.tolist(), questions)


def _logits_at(
    model: torch.nn.Module,
    fused: bool,
    rows: torch.Tensor,
    cols: torch.Tensor,
    *,
    cache: Any = None,
    **inputs: Any,
) -> tuple[torch.Tensor, Any]:
    """The logits `[len(rows), V]` at positions `(rows, cols)` of one forward pass over `inputs`,
    and the key/value cache it returns (or None).

    With `fused` (a plain LM head) the decoder runs alone and the head only at those positions;
    otherwise the model computes its logits (only the last position's when every position asked
    for is the last one and the model accepts `logits_to_keep`) and those positions are picked.
    """
    target: Any = model.base_model if fused else model
    if cache is not None:
        # transformers names the key/value cache argument `cache` since 5.x, `past_key_values` before.
        inputs["cache" if _accepts(target, "cache") else "past_key_values"] = cache
    width = inputs["input_ids"].shape[1]
    device = inputs["input_ids"].device
    if fused:
        out = target(**inputs)
        hidden = out.last_hidden_state[rows.to(device), cols.to(device)]
        head: Any = model.get_output_embeddings()  # type: ignore[operator]
        logits = head(hidden)
    elif bool((cols == width - 1).all()) and _accepts(model, "logits_to_keep"):
        out = model(**inputs, logits_to_keep=1)
        logits = out.logits[rows.to(device), 0]
    else:
        out = model(**inputs)
        logits = out.logits[rows.to(device), cols.to(device)]
    # transformers names the returned cache `cache` since 5.x, `past_key_values` before.
    returned = getattr(out, "cache", None)
    if returned is None:
        returned = getattr(out, "past_key_values", None)
    return logits, returned


def _split(flat: list[float], questions: list[_Question]) -> list[list[float]]:
    out, first = [], 0
    for q in questions:
        out.append(flat[first : first + len(q.continuations)])
        first += len(q.continuations)
    return out


def _accepts(model: torch.nn.Module, argument: str) -> bool:
    try:
        return argument in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
