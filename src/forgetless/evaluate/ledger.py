"""The ledger: what a run learned and what it forgot, computed from `metrics.jsonl` alone.

Everything here is a pure function of the metrics lines, so the ledger of an old run can be
recomputed at any time (`write_summary`). Units: losses are nats per token, bpb is bits per byte,
token counts are training tokens (cumulative over stages unless a name says `stage_tokens`).
`docs/ledger.md` defines every field of `summary.json`.

Sign conventions (all chosen so that the name says which way is good):
- `learning` of a target source = base loss - final loss: positive means it learned.
- `forgetting` of any other source = final loss - base loss: positive means it forgot.
- When a transform replaced the tokenizer (`run_start.tokenizer`), nats per token of the base and
  the adapted model are not comparable: `learning` and `forgetting` are then in bits per byte,
  against the base model evaluated with its own tokenizer on the same text (`units: "bpb"`).
  `learning_bpb` and `forgetting_bpb` are in bits per byte for every run.
- The continual-learning metrics on the loss matrix keep the formulas of the literature applied to
  losses (see `cl_metrics`): there a positive BWT means forgetting, a negative FWT means the earlier
  stages already helped.

Changes smaller than `CHANGE_FLOOR_NATS` are evaluation noise, not findings: every label the ledger
gives (`change` of a source, a stability gap that did not recover) applies that floor, and the
report, `forgetless compare` and the line `forgetless train` prints use the ledger's labels.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any, TypeGuard

from forgetless import __version__
from forgetless.errors import UserError
from forgetless.evaluate.mcq_stats import near_chance, paired_difference, unpack_outcomes, unpaired_difference

SCHEMA_VERSION = 2
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

# A held-out loss that moved by less than this (nats per token) is reported as unchanged.
CHANGE_FLOOR_NATS = 0.01

# A retained source has recovered from a stage's stability gap at the first evaluation after the peak
# whose loss is back within max(GAP_TOLERANCE_NATS, GAP_TOLERANCE_RELATIVE * depth) of the loss at the
# stage start; a rise no deeper than that tolerance is no gap at all. The absolute floor keeps
# evaluation noise on shallow gaps from reading as "never recovered"; the relative part makes the
# rule independent of the scale of deep gaps.
GAP_TOLERANCE_NATS = CHANGE_FLOOR_NATS
GAP_TOLERANCE_RELATIVE = 0.1

# A held-out sample smaller than this (documents or predicted tokens) gets a warning: its changes are
# noisy. The evaluator's selection reaches it at eval.max_tokens >= 8,192 whenever the split allows.
MIN_USEFUL_DOCUMENTS = 10
MIN_USEFUL_TOKENS = 8192

# What a change of a source's held-out loss is called, by role and direction (see `change_label`).
CHANGE_LABELS = {
    ("target", -1): "learned",
    ("target", 1): "regressed",
    ("retained", 1): "forgotten",
    ("retained", -1): "improved",
}

# Lines that a resumed run writes again; a later copy supersedes an earlier one. Other kinds
# (events, unknown kinds) are kept as they come, apart from the resume rule.
_DEDUP_KINDS = frozenset({"run_start", "train", "stage_start", "stage_end", "eval", "run_end"})


# --------------------------------------------------------------------------------------------------
# Reading metrics.jsonl


def read_metrics(path: Path) -> list[dict]:
    """The metrics lines of a run, in order, as they stand after every resume.

    - A torn line left by a crash mid-write (the last line, or a fragment glued to the first line a
      resumed run appended) is dropped or, where the appended line can be recovered, split off.
    - A `{"kind": "resume", "step": S}` line drops every line read before it whose `step` is > S.
    - A later line with the same (kind, step, point, stage_index) as an earlier one replaces it, for
      the kinds a resumed run writes again (run_start, train, stage_start, stage_end, eval, run_end).

    Raises `UserError` naming the file when it is missing, or the file and line when a line other
    than a torn one is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; a run directory must contain {METRICS_FILE}")
    raw = path.read_bytes().decode("utf-8", errors="replace")
    lines = raw.split("\n")
    parsed: list[dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse_line(line)
        if record is None:
            if number == len(lines):  # the file ends without a newline: a crash mid-write
                continue
            raise UserError(f"{path}:{number}: not a JSON object; fix or delete this line")
        parsed.append(record)
    return _apply_resumes(parsed)


def _parse_line(line: str) -> dict | None:
    try:
        value = json.loads(line)
        return value if isinstance(value, dict) else None
    except ValueError:
        pass
    # A torn fragment followed by a complete line that a resumed run appended to it.
    start = line.find("{", 1)
    while start != -1:
        try:
            value = json.loads(line[start:])
        except ValueError:
            start = line.find("{", start + 1)
            continue
        return value if isinstance(value, dict) and "kind" in value else None
    return None


def _step(record: dict) -> int | None:
    step = record.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _apply_resumes(parsed: list[dict]) -> list[dict]:
    kept: list[dict | None] = []
    position: dict[tuple, int] = {}
    for record in parsed:
        kind = record.get("kind")
        resume_step = _step(record)
        if kind == "resume" and resume_step is not None:
            for i, earlier in enumerate(kept):
                if earlier is not None and (_step(earlier) or 0) > resume_step:
                    kept[i] = None
            position = {key: i for key, i in position.items() if kept[i] is not None}
        if kind in _DEDUP_KINDS:
            key = (kind, _step(record), record.get("point"), record.get("stage_index"))
            if key in position:
                kept[position[key]] = None
            position[key] = len(kept)
        kept.append(record)
    return [record for record in kept if record is not None]


# --------------------------------------------------------------------------------------------------
# Metric functions (pure, unit-tested against hand-computed values)


def stability_gap(
    losses: list[tuple[int, float]],
    start_loss: float,
    tolerance: float,
    *,
    relative_tolerance: float = 0.0,
) -> dict:
    """The stability gap of one retained source over one stage.

    `losses` are the (tokens, loss) evaluations after the stage started, in order; `start_loss` is
    the loss at the stage start. Returns:
    - `depth`: max(0, max loss - start_loss), in the units of the losses;
    - `peak_loss`, `peak_tokens`: the first evaluation with the highest loss (None when depth is 0);
    - `tolerance`: the tolerance used, max(tolerance, relative_tolerance * depth);
    - `significant`: the rise is deeper than the tolerance (a shallower one is noise, not a gap);
    - `recovery_tokens`: the first evaluation after the peak with loss <= start_loss + tolerance,
      None when the loss never came back (or there was no significant rise);
    - `recovered`: True when there was no significant rise or the loss came back, False when it
      did not, None when there are no evaluations.
    """
    result: dict[str, Any] = {
        "start_loss": start_loss,
        "depth": None,
        "peak_loss": None,
        "peak_tokens": None,
        "tolerance": tolerance,
        "significant": None,
        "recovery_tokens": None,
        "recovered": None,
        "evals": len(losses),
    }
    finite = [(tokens, loss) for tokens, loss in losses if _finite(loss)]
    if not finite or not _finite(start_loss):
        return result
    peak_index = max(range(len(finite)), key=lambda i: (finite[i][1], -i))
    peak_tokens, peak_loss = finite[peak_index]
    depth = peak_loss - start_loss
    if depth <= 0:
        result.update(depth=0.0, significant=False, recovered=True)
        return result
    effective = max(tolerance, relative_tolerance * depth)
    result.update(depth=depth, peak_loss=peak_loss, peak_tokens=peak_tokens, tolerance=effective)
    if depth <= effective:  # within the noise floor: nothing to recover from
        result.update(significant=False, recovered=True)
        return result
    result.update(significant=True, recovered=False)
    for tokens, loss in finite[peak_index + 1 :]:
        if loss <= start_loss + effective:
            result.update(recovery_tokens=tokens, recovered=True)
            break
    return result


def small_sample_warning(name: str, documents: int, tokens: int) -> str:
    """The warning for a held-out sample below `MIN_USEFUL_DOCUMENTS` or `MIN_USEFUL_TOKENS`."""
    return (
        f"held-out {name}: evaluated on {documents:,} documents / {tokens:,} tokens, below "
        f"{MIN_USEFUL_DOCUMENTS} documents or {MIN_USEFUL_TOKENS:,} tokens: its changes are noisy; "
        f"raise eval.max_tokens or sources.{name}.heldout"
    )


def change_label(delta: float | None, role: str, floor: float = CHANGE_FLOOR_NATS) -> str | None:
    """What a change of held-out loss (`delta` = final - base, nats/token) means for a source of this
    role ("target" or "retained"): "learned" or "regressed" for a target, "forgotten" or "improved"
    for a retained source, "unchanged" within `floor` either way; None when `delta` is unknown."""
    if delta is None or not _finite(delta):
        return None
    if abs(delta) < floor:
        return "unchanged"
    return CHANGE_LABELS[(role, 1 if delta > 0 else -1)]


def cl_metrics(
    R: list[list[float]],
    base: list[float],
    higher_is_better: bool,
    *,
    learned_at: list[int | None] | None = None,
) -> dict:
    """Continual-learning metrics of a stage-by-task matrix, with the base model as the reference.

    `R[i][j]` is the score on column j after stage i (T rows); `base[j]` is the base model's score
    (b_j). `learned_at[j]` is the stage in which column j is trained (its diagonal), or None for a
    column the base model already knew (a retained source: its "just learned" score is b_j).
    Without `learned_at`, R must be square and column j is learned at stage j (the GEM setting).

    With F the final row and D_j the score right after learning j (R[learned_at[j]][j], or b_j):
    - `acc` = mean_j F_j (over all columns); `retained` is the same number;
    - `bwt` = mean over columns learned before the last stage of F_j - D_j;
    - `fwt` = mean over columns learned at stage s >= 1 of R[s-1][j] - b_j;
    - `forgetting` (Chaudhry et al.) = mean over the same columns as BWT of
      best_{l < T-1} R[l][j] - F_j for scores, or F_j - min_{l < T-1} R[l][j] for losses, where the
      candidates include b_j for base-learned columns; positive means forgotten in both cases;
    - `learned` = mean over stage-learned columns of D_j (Abbes et al.'s learned loss).

    For accuracies (higher is better) a negative BWT means forgetting; for losses the formulas are
    applied to the losses as they are, so a positive BWT means forgetting and a negative FWT means
    positive transfer. A metric with no column to average over is None.
    """
    T = len(R)
    columns = len(base)
    if any(len(row) != columns for row in R):
        raise ValueError(f"every row of R must have {columns} columns (the length of base)")
    if learned_at is None:
        if T != columns:
            raise ValueError(f"R is {T}x{columns}; give learned_at for a matrix that is not square")
        learned_at = list(range(columns))
    if len(learned_at) != columns:
        raise ValueError(f"learned_at has {len(learned_at)} entries for {columns} columns")
    if T == 0:
        return {"acc": None, "bwt": None, "fwt": None, "forgetting": None, "learned": None, "retained": None}

    final = R[-1]
    just_learned: list[float | None] = [
        base[j] if s is None else (R[s][j] if s < T else None) for j, s in enumerate(learned_at)
    ]
    before_last = [j for j, s in enumerate(learned_at) if (s is None or s < T - 1)]
    bwt_terms = [final[j] - value for j in before_last if (value := just_learned[j]) is not None]
    fwt_terms = [R[s - 1][j] - base[j] for j, s in enumerate(learned_at) if s is not None and 1 <= s <= T]
    forgetting_terms = []
    for j in before_last:
        candidates = [R[row][j] for row in range(T - 1)] + ([base[j]] if learned_at[j] is None else [])
        if higher_is_better:
            forgetting_terms.append(max(candidates) - final[j])
        else:
            forgetting_terms.append(final[j] - min(candidates))
    learned = [just_learned[j] for j, s in enumerate(learned_at) if s is not None and s < T]
    acc = _mean(final)
    return {
        "acc": acc,
        "bwt": _mean(bwt_terms),
        "fwt": _mean(fwt_terms),
        "forgetting": _mean(forgetting_terms),
        "learned": _mean(learned),
        "retained": acc,
    }


# --------------------------------------------------------------------------------------------------
# The ledger


def build_ledger(records: list[dict]) -> dict:
    """The content of `summary.json` for a run, from its metrics lines (see `docs/ledger.md`)."""
    warnings: list[str] = []
    run_start = _last(records, "run_start")
    run_end = _last(records, "run_end")
    evals = sorted((r for r in records if r.get("kind") == "eval"), key=lambda r: _step(r) or 0)
    trains = [r for r in records if r.get("kind") == "train"]
    if run_start is None:
        warnings.append("no run_start line: stage targets are unknown, every source counts as retained")
    if run_end is None:
        warnings.append("no run_end line: the run did not finish (or is still running)")

    sources = _names(run_start, "sources", evals, "eval/", ("/loss", "/bpb"))
    mcq_sets = _names(run_start, "mcq", evals, "mcq/", ("/acc", "/acc_norm"))
    stages = _stage_plans(run_start, records)
    targets = {name for stage in stages for name in stage["targets"]}

    base = next((r for r in evals if r.get("point") == "base"), None)
    if base is None:
        warnings.append("no base evaluation (point 'base'): deltas against the base model are unknown")
    for record in evals:
        for source in sources:
            if not _finite(record.get(f"eval/{source}/loss", 0.0)):
                warnings.append(f"non-finite loss on {source} at {record.get('tokens')} tokens")

    source_table = {
        source: {"role": "target" if source in targets else "retained", **_source_stats(evals, base, source)}
        for source in sources
    }
    change = (run_start or {}).get("tokenizer") or {}
    tokenizer = _tokenizer_change(change, source_table) if change.get("changed") else None
    for source, entry in source_table.items():
        size = entry["eval_size"]
        if tokenizer is None:
            entry["change"] = change_label(entry["delta"], entry["role"])
        else:  # in bits per byte: the floor of CHANGE_FLOOR_NATS per token, at this text's tokens per byte
            text = (change.get("evaluated") or {}).get(source) or size or {}
            per_byte = text["tokens"] / text["bytes"] if text.get("bytes") else 1.0  # at most 1 (byte-level)
            floor = CHANGE_FLOOR_NATS * per_byte / math.log(2)
            entry["change"] = change_label(entry["delta_bpb_reference"], entry["role"], floor)
        if size is not None and (
            size["documents"] < MIN_USEFUL_DOCUMENTS or size["tokens"] < MIN_USEFUL_TOKENS
        ):
            warnings.append(small_sample_warning(source, size["documents"], size["tokens"]))
    learning_bpb = {
        s: _neg(v["delta_bpb_reference"])
        for s, v in source_table.items()
        if v["role"] == "target" and v["delta_bpb_reference"] is not None
    }
    forgetting_bpb = {
        s: v["delta_bpb_reference"]
        for s, v in source_table.items()
        if v["role"] == "retained" and v["delta_bpb_reference"] is not None
    }
    if tokenizer is not None:
        learning, forgetting = learning_bpb, forgetting_bpb
        warnings.append(
            "the tokenizer changed: nats per token of the base and the adapted model are not comparable; "
            "learning and forgetting are in bits per byte against the base with its own tokenizer"
        )
        warnings += [
            f"{name}: the held-out text differs from the one the base was measured on (its split changed); "
            "its bits per byte against the base compare different documents"
            for name, same in tokenizer["same_text"].items()
            if not same
        ]
    else:
        learning = {
            s: _neg(v["delta"])
            for s, v in source_table.items()
            if v["role"] == "target" and v["delta"] is not None
        }
        forgetting = {
            s: v["delta"] for s, v in source_table.items() if v["role"] == "retained" and v["delta"] is not None
        }

    stage_table, stage_end_evals = _stage_ledgers(stages, evals, base, sources, mcq_sets, records)
    worst = _worst_gap(stage_table)
    matrix = _matrices(stages, stage_end_evals, base, sources, mcq_sets)
    mcq = {name: _mcq_stats(evals, base, name) for name in mcq_sets}

    tokens = _first_number(
        run_end, "tokens", default=max((_num(r.get("tokens")) or 0 for r in trains), default=0)
    )
    wall_s = _first_number(run_end, "wall_s")
    eval_s = _first_number(run_end, "eval_s", default=sum(_num(r.get("eval_s")) or 0.0 for r in evals))
    tokens_per_s = _first_number(
        run_end, "tokens_per_s", default=_num(trains[-1].get("tokens_per_s")) if trains else None
    )
    return _clean(
        {
            "schema_version": SCHEMA_VERSION,
            "forgetless_version": __version__,
            "complete": run_end is not None,
            "tokens": tokens,
            "steps": _first_number(run_end, "step", default=max((_step(r) or 0 for r in trains), default=0)),
            "wall_s": wall_s,
            "train_s": _first_number(run_end, "train_s"),
            "eval_s": eval_s,
            "eval_fraction": (eval_s / wall_s) if wall_s and eval_s is not None else None,
            "eval_budget": _num((run_start or {}).get("eval_budget")),
            "evals_skipped": _first_number(run_end, "evals_skipped"),
            "tokens_per_s": tokens_per_s,
            "resumes": sum(1 for r in records if r.get("kind") == "resume"),
            "targets": [s for s in sources if s in targets],
            "retained": [s for s in sources if s not in targets],
            "sources": source_table,
            "units": "bpb" if tokenizer is not None else "nats_per_token",
            "learning": learning,
            "forgetting": forgetting,
            "learning_mean": _mean(list(learning.values())),
            "forgetting_mean": _mean(list(forgetting.values())),
            "learning_bpb": learning_bpb,
            "forgetting_bpb": forgetting_bpb,
            "learning_bpb_mean": _mean(list(learning_bpb.values())),
            "forgetting_bpb_mean": _mean(list(forgetting_bpb.values())),
            "tokenizer": tokenizer,
            "stages": stage_table,
            "worst_stability_gap": worst,
            "matrix": matrix,
            "mcq": mcq,
            "change_floor": CHANGE_FLOOR_NATS,
            "gap_tolerance": {"nats": GAP_TOLERANCE_NATS, "relative": GAP_TOLERANCE_RELATIVE},
            "warnings": warnings,
        }
    )


def write_summary(run_dir: Path) -> dict:
    """Recompute the ledger of `run_dir` from its metrics.jsonl and write `run_dir/summary.json`.

    The file is written to a temporary name in the same folder and renamed, so a reader never sees
    half a summary. The JSON is deterministic: the same metrics give the same bytes.
    """
    run_dir = Path(run_dir)
    summary = build_ledger(read_metrics(run_dir / METRICS_FILE))
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    tmp = run_dir / f".{SUMMARY_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as handle:  # the umask's permissions, like every run file
            handle.write(text)
        os.replace(tmp, run_dir / SUMMARY_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return summary


# --------------------------------------------------------------------------------------------------
# Pieces of the ledger


def _stage_plans(run_start: dict | None, records: list[dict]) -> list[dict]:
    """The stages in order: name, planned tokens, targets, replay, and where they started and ended."""
    planned = list((run_start or {}).get("stages") or [])
    starts = {r.get("stage_index"): r for r in records if r.get("kind") == "stage_start"}
    ends = {r.get("stage_index"): r for r in records if r.get("kind") == "stage_end"}
    seen = sorted({i for i in [*starts, *ends] if isinstance(i, int)} | set(range(len(planned))))
    stages = []
    for index in seen:
        plan = planned[index] if index < len(planned) else {}
        start, end = starts.get(index), ends.get(index)
        name = plan.get("name") or (start or end or {}).get("stage") or f"stage{index}"
        stages.append(
            {
                "index": index,
                "name": str(name),
                "planned_tokens": _num(plan.get("tokens")),
                "targets": [str(s) for s in plan.get("targets") or []],
                "replay": [str(s) for s in plan.get("replay") or []],
                "replay_ratio": _num(plan.get("replay_ratio")),
                "start_tokens": _num(start.get("tokens")) if start else None,
                "end_tokens": _num(end.get("tokens")) if end else None,
                "complete": end is not None,
            }
        )
    return stages


def _tokenizer_change(change: dict, source_table: dict[str, dict]) -> dict:
    """The ledger's `tokenizer` section, and each source's bits per byte against the base as it was
    (with its own tokenizer): `tokenizer_base_bpb`, `transform_jump_bpb` (what the transforms alone
    changed, before training) and `delta_bpb_reference`."""
    base = change.get("base") or {}
    for source, row in source_table.items():
        before = (base.get(source) or {}).get("bpb")
        before = before if _finite(before) else None
        row["tokenizer_base_bpb"] = before
        row["transform_jump_bpb"] = _minus(row["base_bpb"], before)
        row["delta_bpb_reference"] = _minus(row["final_bpb"], before)
    fertility = change.get("fertility") or {}
    return {
        "vocab_before": change.get("vocab_before"),
        "vocab_after": change.get("vocab_after"),
        "same_text": change.get("same_text") or {},
        "evaluated": change.get("evaluated") or {},
        "fertility": {
            name: {
                "before": {k: v["before"].get(k) for k in ("tokens_per_byte", "tokens_per_word")},
                "after": {k: v["after"].get(k) for k in ("tokens_per_byte", "tokens_per_word")},
            }
            for name, v in fertility.items()
        },
        "note": "nats per token are not comparable across tokenizers; compare bits per byte",
    }


def _source_stats(evals: list[dict], base: dict | None, source: str) -> dict:
    stats: dict[str, Any] = {}
    for metric, suffix in (("loss", "_loss"), ("bpb", "_bpb")):
        key = f"eval/{source}/{metric}"
        points = [(_num(r.get("tokens")) or 0, r[key]) for r in evals if _finite(r.get(key))]
        base_value = base.get(key) if base is not None and _finite(base.get(key)) else None
        final_tokens, final_value = points[-1] if points else (None, None)
        worst = max(points, key=lambda p: p[1]) if points else (None, None)
        best = min(points, key=lambda p: p[1]) if points else (None, None)
        name = "delta" if metric == "loss" else "delta_bpb"
        stats.update(
            {
                f"base{suffix}": base_value,
                f"final{suffix}": final_value,
                name: (final_value - base_value)
                if final_value is not None and base_value is not None
                else None,
                f"max{suffix}": worst[1],
                f"max{suffix}_tokens": worst[0],
                f"min{suffix}": best[1],
                f"min{suffix}_tokens": best[0],
            }
        )
        if metric == "bpb":
            stats["delta_bpb_reference"] = stats["delta_bpb"]  # against the base; see _tokenizer_change
        if metric == "loss":
            stats["final_tokens"] = final_tokens
            stats["peak_delta"] = (
                (worst[1] - base_value) if worst[1] is not None and base_value is not None else None
            )
            stats["evals"] = len(points)
    stats["eval_size"] = _eval_size(evals, source)
    stats["loss_by_position"] = _loss_by_position(evals, base, source)
    return stats


def _loss_by_position(evals: list[dict], base: dict | None, source: str) -> dict | None:
    """Per position bucket (tokens into the document): the loss at the base and at the last
    evaluation that recorded it, their difference and the bucket's tokens; None without such records."""
    key = f"eval/{source}/loss_by_position"
    final = next((r for r in reversed(evals) if isinstance(r.get(key), dict)), None)
    if final is None:
        return None
    before: dict = base[key] if base is not None and isinstance(base.get(key), dict) else {}
    tokens = final.get(f"eval/{source}/tokens_by_position") or {}
    table = {}
    for label, value in final[key].items():
        base_value = _num(before.get(label))
        table[label] = {
            "base": base_value,
            "final": _num(value),
            "delta": _minus(_num(value), base_value),
            "tokens": tokens.get(label),
        }
    return table


def _eval_size(evals: list[dict], source: str) -> dict | None:
    """The documents, tokens and bytes the last evaluation of `source` that recorded them scored."""
    for record in reversed(evals):
        size = {field: record.get(f"eval/{source}/{field}") for field in ("documents", "tokens", "bytes")}
        if all(_finite(v) for v in size.values()):
            return {k: int(v) for k, v in size.items()}
    return None


def _stage_ledgers(
    stages: list[dict],
    evals: list[dict],
    base: dict | None,
    sources: list[str],
    mcq_sets: list[str],
    records: list[dict],
) -> tuple[dict, dict[int, dict]]:
    """Per stage: its tokens, final losses and the stability gap of each retained source."""
    table: dict[str, dict] = {}
    stage_end_evals: dict[int, dict] = {}
    previous_eval = base
    for stage in stages:
        index = stage["index"]
        inside = [r for r in evals if r.get("stage_index") == index and r.get("point") != "base"]
        start_tokens = stage["start_tokens"]
        if start_tokens is None:
            start_tokens = _num(previous_eval.get("tokens")) if previous_eval is not None else None
        end_eval = next((r for r in reversed(inside) if r.get("point") == "stage_end"), None)
        if end_eval is None and stage["complete"] and inside:
            end_eval = inside[-1]
        if end_eval is not None:
            stage_end_evals[index] = end_eval
        last_tokens = stage["end_tokens"]
        if last_tokens is None:
            trained = [
                _num(r.get("tokens"))
                for r in records
                if r.get("kind") == "train" and r.get("stage_index") == index
            ]
            last_tokens = max((t for t in trained if t is not None), default=None)
        retained = [s for s in sources if s not in stage["targets"]]
        gaps = {}
        for source in retained:
            key = f"eval/{source}/loss"
            start_loss = previous_eval.get(key) if previous_eval is not None else None
            if not _finite(start_loss):
                continue
            after = [(_num(r.get("tokens")) or 0, r[key]) for r in inside if key in r]
            gap = stability_gap(
                after, start_loss, GAP_TOLERANCE_NATS, relative_tolerance=GAP_TOLERANCE_RELATIVE
            )
            gap["peak_stage_tokens"] = _minus(gap["peak_tokens"], start_tokens)
            gap["recovery_stage_tokens"] = _minus(gap["recovery_tokens"], start_tokens)
            gaps[source] = gap
        final_eval = end_eval or (inside[-1] if inside else None)
        name = stage["name"] if stage["name"] not in table else f"{stage['name']}#{index}"
        table[name] = {
            "index": index,
            "targets": stage["targets"],
            "replay": stage["replay"],
            "replay_ratio": stage["replay_ratio"],
            "planned_tokens": stage["planned_tokens"],
            "start_tokens": start_tokens,
            "end_tokens": stage["end_tokens"],
            "tokens": _minus(last_tokens, start_tokens),
            "complete": stage["complete"],
            "evals": len(inside),
            "start_losses": _losses(previous_eval, sources),
            "final_losses": _losses(final_eval, sources),
            "final_bpb": _losses(final_eval, sources, "bpb"),
            "final_mcq": {s: final_eval.get(f"mcq/{s}/acc") for s in mcq_sets if f"mcq/{s}/acc" in final_eval}
            if final_eval is not None
            else {},
            "stability_gap": gaps,
            "worst_gap": _worst_of(gaps),
        }
        if inside:
            previous_eval = inside[-1]
    return table, stage_end_evals


def _worst_of(gaps: dict[str, dict]) -> dict | None:
    rated = [(gap["depth"], source) for source, gap in gaps.items() if gap["depth"] is not None]
    if not rated:
        return None
    depth, source = max(rated, key=lambda item: item[0])
    return {"source": source, "depth": depth}


def _worst_gap(stage_table: dict[str, dict]) -> dict | None:
    best: dict | None = None
    for stage_name, stage in stage_table.items():
        for source, gap in stage["stability_gap"].items():
            if gap["depth"] is None:
                continue
            if best is None or gap["depth"] > best["depth"]:
                best = {
                    "stage": stage_name,
                    "source": source,
                    "depth": gap["depth"],
                    "peak_tokens": gap["peak_tokens"],
                    "recovery_tokens": gap["recovery_tokens"],
                    "recovered": gap["recovered"],
                    "significant": gap["significant"],
                }
    return best


def _matrices(
    stages: list[dict],
    stage_end_evals: dict[int, dict],
    base: dict | None,
    sources: list[str],
    mcq_sets: list[str],
) -> dict:
    rows = [stage for stage in stages if stage["index"] in stage_end_evals]
    source_stage = {s: next((st for st in stages if s in st["targets"]), None) for s in sources}
    set_stage = {
        name: next((st for st in stages if any(_set_matches(name, t) for t in st["targets"])), None)
        for name in mcq_sets
    }
    loss = _matrix(rows, stage_end_evals, base, sources, "eval/{}/loss", source_stage, higher_is_better=False)
    acc = _matrix(rows, stage_end_evals, base, mcq_sets, "mcq/{}/acc", set_stage, higher_is_better=True)
    return {"loss": loss, "mcq_acc": acc if mcq_sets else None}


def _set_matches(set_name: str, source: str) -> bool:
    """An MCQ set belongs to a stage when the words of a target source's name appear, in order, among
    the words of the set's name: `security` matches `bundled:security-mcq`, `a` does not match `trivia`.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", set_name.lower()) if w]
    wanted = [w for w in re.split(r"[^a-z0-9]+", source.lower()) if w]
    return bool(wanted) and any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


def _matrix(
    rows: list[dict],
    stage_end_evals: dict[int, dict],
    base: dict | None,
    columns: list[str],
    key: str,
    learned_in: dict[str, dict | None],
    *,
    higher_is_better: bool,
) -> dict:
    """R[i][j] for the completed stages i, with its CL metrics once there are two rows."""
    values: list[list[Any]] = [
        [stage_end_evals[row["index"]].get(key.format(c)) for c in columns] for row in rows
    ]
    base_row: list[Any] = [base.get(key.format(c)) if base is not None else None for c in columns]
    row_of = {row["index"]: i for i, row in enumerate(rows)}
    # A column targeted by a stage that has not finished is "learned" one row past the last.
    learned_at = [
        None if (stage := learned_in[c]) is None else row_of.get(stage["index"], len(rows)) for c in columns
    ]
    usable = len(rows) >= 2 and all(_finite(v) for row in [*values, base_row] for v in row)
    metrics = (
        cl_metrics(values, base_row, higher_is_better, learned_at=learned_at)
        if usable
        else {"acc": None, "bwt": None, "fwt": None, "forgetting": None, "learned": None, "retained": None}
    )
    return {
        "higher_is_better": higher_is_better,
        "rows": [row["name"] for row in rows],
        "columns": columns,
        "base": base_row,
        "values": values,
        "learned_in": [None if (stage := learned_in[c]) is None else stage["name"] for c in columns],
        **metrics,
    }


def _mcq_stats(evals: list[dict], base: dict | None, name: str) -> dict:
    """Before (base) and after (last evaluation that scored the set) accuracies with their standard
    errors, the change with its standard error and 95% interval (paired on the same questions when
    both evaluations carry their per-question outcomes), and whether the set stayed at chance."""
    with_set = [r for r in evals if f"mcq/{name}/acc" in r]
    final = with_set[-1] if with_set else None
    stats: dict[str, Any] = {"before": {}, "after": {}, "delta": {}}
    for side, record in (("before", base), ("after", final)):
        for metric in ("acc", "acc_norm", "acc_stderr", "n"):
            value = record.get(f"mcq/{name}/{metric}") if record is not None else None
            stats[side][metric] = value if _finite(value) else None
    for metric in ("acc", "acc_norm"):
        before, after = stats["before"][metric], stats["after"][metric]
        stats["delta"][metric] = after - before if before is not None and after is not None else None
    stats["delta"].update(_mcq_change(base, final, name, stats))
    chance = _num(((final or base) or {}).get(f"mcq/{name}/chance"))
    stats["chance"] = chance
    stats["at_chance"] = (
        all(
            near_chance(stats[side]["acc"], stats[side]["acc_stderr"], chance) for side in ("before", "after")
        )
        if chance is not None and stats["before"]["acc"] is not None and stats["after"]["acc"] is not None
        else None
    )
    stats["after_tokens"] = _num(final.get("tokens")) if final is not None else None
    return stats


def _mcq_change(base: dict | None, final: dict | None, name: str, stats: dict) -> dict:
    """`acc_stderr`, `acc_ci95`, `significant` and `paired` of the accuracy change (see mcq_stats)."""
    empty = {"acc_stderr": None, "acc_ci95": None, "significant": None, "paired": None}
    before, after = stats["before"], stats["after"]
    if base is None or final is None or before["acc"] is None or after["acc"] is None or base is final:
        return empty
    key, n = f"mcq/{name}/outcomes", before["n"]
    change = None
    if isinstance(base.get(key), str) and isinstance(final.get(key), str) and n == after["n"] and n:
        try:
            change = paired_difference(unpack_outcomes(base[key], n), unpack_outcomes(final[key], n))
        except ValueError:
            change = None
    if change is None:
        change = unpaired_difference(before["acc"], before["acc_stderr"], after["acc"], after["acc_stderr"])
    return {
        "acc_stderr": change["stderr"],
        "acc_ci95": change["ci95"],
        "significant": change["significant"] if change["stderr"] is not None else None,
        "paired": change["paired"],
    }


# --------------------------------------------------------------------------------------------------
# Small helpers


def _last(records: list[dict], kind: str) -> dict | None:
    return next((r for r in reversed(records) if r.get("kind") == kind), None)


def _names(
    run_start: dict | None, field: str, evals: list[dict], prefix: str, suffixes: tuple[str, ...]
) -> list[str]:
    """Source or MCQ-set names: those the run_start line lists, then any others the evals carry."""
    names = [str(n) for n in (run_start or {}).get(field) or []]
    for record in evals:
        for key in record:
            if key.startswith(prefix):
                for suffix in suffixes:
                    if key.endswith(suffix):
                        name = key[len(prefix) : -len(suffix)]
                        if name and name not in names:
                            names.append(name)
    return names


def _losses(record: dict | None, sources: list[str], metric: str = "loss") -> dict:
    if record is None:
        return {}
    return {s: record[f"eval/{s}/{metric}"] for s in sources if f"eval/{s}/{metric}" in record}


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> Any:
    return value if _finite(value) else None


def _first_number(record: dict | None, key: str, default: Any = None) -> Any:
    value = _num(record.get(key)) if record is not None else None
    return default if value is None else value


def _minus(a: Any, b: Any) -> Any:
    return a - b if a is not None and b is not None else None


def _neg(value: float | None) -> float | None:
    return None if value is None else 0.0 - value  # 0.0 - x, not -x: no "-0.0" for an unchanged loss


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
