"""The ledger against hand-computed values: CL metrics, stability gaps, signs, and reading metrics.jsonl."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from forgetless.errors import UserError
from forgetless.evaluate.ledger import (
    build_ledger,
    change_label,
    cl_metrics,
    read_metrics,
    stability_gap,
    write_summary,
)

# --------------------------------------------------------------------------------------------------
# cl_metrics


def test_cl_metrics_accuracy_matrix_matches_hand_computation():
    # R[i][j]: accuracy on task j after stage i; b: the base model.
    R = [
        [0.80, 0.10, 0.20],
        [0.60, 0.90, 0.30],
        [0.50, 0.70, 0.95],
    ]
    b = [0.10, 0.10, 0.25]
    m = cl_metrics(R, b, higher_is_better=True)
    assert m["acc"] == pytest.approx((0.50 + 0.70 + 0.95) / 3)  # 0.71667
    assert m["bwt"] == pytest.approx(((0.50 - 0.80) + (0.70 - 0.90)) / 2)  # -0.25: forgetting
    assert m["fwt"] == pytest.approx(((0.10 - 0.10) + (0.30 - 0.25)) / 2)  # 0.025
    # Chaudhry: max over earlier rows minus final, for the first T-1 tasks.
    assert m["forgetting"] == pytest.approx(((0.80 - 0.50) + (0.90 - 0.70)) / 2)  # 0.25
    assert m["learned"] == pytest.approx((0.80 + 0.90 + 0.95) / 3)
    assert m["retained"] == m["acc"]


def test_cl_metrics_forgetting_takes_the_best_earlier_row_not_the_diagonal():
    # Task 0 peaks after stage 1 (0.9 > 0.7 on the diagonal): forgetting uses 0.9, BWT uses 0.7.
    R = [[0.7, 0.0, 0.0], [0.9, 0.8, 0.0], [0.6, 0.8, 0.9]]
    m = cl_metrics(R, [0.0, 0.0, 0.0], higher_is_better=True)
    assert m["bwt"] == pytest.approx(((0.6 - 0.7) + (0.8 - 0.8)) / 2)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.8)) / 2)


def test_cl_metrics_on_losses_keeps_the_formulas_so_positive_bwt_is_forgetting():
    L = [[2.0, 5.0], [2.6, 3.0]]
    b = [2.1, 5.5]
    m = cl_metrics(L, b, higher_is_better=False)
    assert m["acc"] == pytest.approx(2.8)
    assert m["bwt"] == pytest.approx(0.6)  # loss on task 0 rose by 0.6 after stage 1: forgetting
    assert m["fwt"] == pytest.approx(-0.5)  # stage 0 already lowered task 1's loss below base
    assert m["forgetting"] == pytest.approx(2.6 - 2.0)  # final minus the lowest earlier loss
    assert m["learned"] == pytest.approx(2.5)


def test_cl_metrics_loss_forgetting_uses_lowest_earlier_loss():
    # Task 0's lowest loss (2.5) is neither on the diagonal (3.0) nor in the row before last (2.8).
    L = [
        [3.0, 9.0, 9.0, 9.0],
        [2.5, 4.0, 9.0, 9.0],
        [2.8, 3.8, 5.0, 9.0],
        [3.1, 4.5, 5.2, 2.0],
    ]
    m = cl_metrics(L, [3.5, 9.5, 9.5, 9.5], higher_is_better=False)
    assert m["forgetting"] == pytest.approx(((3.1 - 2.5) + (4.5 - 3.8) + (5.2 - 5.0)) / 3)  # 0.5
    assert m["bwt"] == pytest.approx(((3.1 - 3.0) + (4.5 - 4.0) + (5.2 - 5.0)) / 3)  # 0.2667
    assert m["fwt"] == pytest.approx(((9.0 - 9.5) + (9.0 - 9.5) + (9.0 - 9.5)) / 3)
    assert m["acc"] == pytest.approx(14.8 / 4)
    assert m["learned"] == pytest.approx((3.0 + 4.0 + 5.0 + 2.0) / 4)


def test_cl_metrics_accuracy_forgetting_uses_highest_earlier_score():
    # Task 0 peaks after stage 1 (0.9): not the diagonal (0.7), not the row before last (0.8).
    R = [
        [0.7, 0.1, 0.1, 0.1],
        [0.9, 0.6, 0.1, 0.1],
        [0.8, 0.7, 0.5, 0.1],
        [0.6, 0.65, 0.5, 0.9],
    ]
    m = cl_metrics(R, [0.1, 0.1, 0.1, 0.1], higher_is_better=True)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.7 - 0.65) + (0.5 - 0.5)) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.7) + (0.65 - 0.6) + (0.5 - 0.5)) / 3)


def test_cl_metrics_with_a_retained_column_learned_by_the_base_model():
    # Columns: general (no stage trains it), a (stage 0), b (stage 1); losses.
    L = [[2.02, 3.0, 4.8], [2.1, 3.2, 3.5]]
    b = [2.0, 4.0, 5.0]
    m = cl_metrics(L, b, higher_is_better=False, learned_at=[None, 0, 1])
    assert m["acc"] == pytest.approx((2.1 + 3.2 + 3.5) / 3)
    assert m["bwt"] == pytest.approx(((2.1 - 2.0) + (3.2 - 3.0)) / 2)  # general is measured from base
    assert m["fwt"] == pytest.approx(4.8 - 5.0)
    assert m["forgetting"] == pytest.approx(
        ((2.1 - 2.0) + (3.2 - 3.0)) / 2
    )  # base is a candidate for general
    assert m["learned"] == pytest.approx((3.0 + 3.5) / 2)


def test_cl_metrics_rejects_a_non_square_matrix_without_learned_at():
    with pytest.raises(ValueError, match="not square"):
        cl_metrics([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [1.0, 2.0, 3.0], higher_is_better=True)
    with pytest.raises(ValueError, match="columns"):
        cl_metrics([[1.0, 2.0], [1.0]], [1.0, 2.0], higher_is_better=True)


# --------------------------------------------------------------------------------------------------
# stability_gap


def test_stability_gap_depth_peak_and_recovery():
    losses = [(10, 2.3), (20, 2.5), (50, 2.2), (100, 2.02)]
    gap = stability_gap(losses, start_loss=2.0, tolerance=0.01)
    assert gap["depth"] == pytest.approx(0.5)
    assert gap["peak_loss"] == 2.5 and gap["peak_tokens"] == 20
    assert gap["recovery_tokens"] is None  # 2.02 > 2.0 + 0.01
    assert gap["recovered"] is False
    relaxed = stability_gap(losses, start_loss=2.0, tolerance=0.01, relative_tolerance=0.1)
    assert relaxed["tolerance"] == pytest.approx(0.05)  # 10% of the 0.5 depth beats the 0.01 floor
    assert relaxed["recovery_tokens"] == 100 and relaxed["recovered"] is True


def test_stability_gap_recovery_is_the_first_eval_after_the_peak():
    # 2.0 at tokens 5 is before the peak and does not count; 2.005 at 30 is the first after it.
    losses = [(5, 2.0), (10, 2.4), (20, 2.1), (30, 2.005), (40, 2.0)]
    gap = stability_gap(losses, start_loss=2.0, tolerance=0.01)
    assert gap["peak_tokens"] == 10
    assert gap["recovery_tokens"] == 30


def test_stability_gap_first_of_equal_peaks_and_no_rise():
    gap = stability_gap([(1, 3.0), (2, 3.2), (3, 3.2), (4, 3.0)], start_loss=3.0, tolerance=0.01)
    assert gap["peak_tokens"] == 2 and gap["recovery_tokens"] == 4
    flat = stability_gap([(1, 2.9), (2, 2.8)], start_loss=3.0, tolerance=0.01)
    assert flat["depth"] == 0.0 and flat["peak_tokens"] is None and flat["recovered"] is True
    empty = stability_gap([], start_loss=3.0, tolerance=0.01)
    assert empty["depth"] is None and empty["recovered"] is None


def test_a_rise_within_the_noise_floor_is_not_a_gap_to_recover_from():
    # 0.002 nats up at the last evaluation: no later evaluation could show a recovery, and none is due.
    gap = stability_gap([(10, 3.0005), (20, 3.002)], start_loss=3.0, tolerance=0.01, relative_tolerance=0.1)
    assert gap["depth"] == pytest.approx(0.002) and gap["peak_tokens"] == 20
    assert gap["significant"] is False and gap["recovered"] is True and gap["recovery_tokens"] is None
    deeper = stability_gap([(10, 3.0), (20, 3.02)], start_loss=3.0, tolerance=0.01)
    assert deeper["significant"] is True and deeper["recovered"] is False


def test_change_labels_apply_the_floor_and_call_improvements_improvements():
    assert change_label(-0.0494, "retained") == "improved"
    assert change_label(0.0494, "retained") == "forgotten"
    assert change_label(0.002, "retained") == "unchanged"
    assert change_label(-0.0099, "retained") == "unchanged"
    assert change_label(-0.53, "target") == "learned"
    assert change_label(0.03, "target") == "regressed"
    assert change_label(-0.004, "target") == "unchanged"
    assert change_label(None, "target") is None


# --------------------------------------------------------------------------------------------------
# build_ledger on a hand-made two-stage run


def _eval(step, tokens, stage, index, point, general, law, med, mcq=None, stage_start=0):
    line = {
        "kind": "eval",
        "step": step,
        "tokens": tokens,
        "stage": stage,
        "stage_index": index,
        "stage_tokens": tokens - stage_start,
        "point": point,
        "eval_s": 0.5,
    }
    for name, loss in (("general", general), ("law", law), ("med", med)):
        line[f"eval/{name}/loss"] = loss
        line[f"eval/{name}/bpb"] = loss / 2
        line[f"eval/{name}/ppl"] = 1.0
    for set_name, (acc, acc_norm) in (mcq or {}).items():
        line[f"mcq/{set_name}/acc"] = acc
        line[f"mcq/{set_name}/acc_norm"] = acc_norm
    return line


def _train(step, stage, index):
    return {
        "kind": "train",
        "step": step,
        "tokens": 10 * step,
        "stage": stage,
        "stage_index": index,
        "lr": 1e-3,
        "loss": 3.0,
        "grad_norm": 1.0,
        "tokens_per_s": 8.0,
        "elapsed_s": float(step),
    }


def two_stage_records() -> list[dict]:
    """Stage "law" (tokens 0-100) then stage "med" (100-200); "general" is only replayed."""
    stages = [
        {"name": "law", "tokens": 100, "targets": ["law"], "replay": ["general"], "replay_ratio": 0.05},
        {"name": "med", "tokens": 100, "targets": ["med"], "replay": ["general"], "replay_ratio": 0.05},
    ]
    return [
        {
            "kind": "run_start",
            "time": 0,
            "stages": stages,
            "sources": ["general", "law", "med"],
            "mcq": ["law-quiz", "trivia"],
        },
        _eval(0, 0, "law", 0, "base", 2.0, 4.0, 5.0, {"law-quiz": (0.30, 0.32), "trivia": (0.60, 0.61)}),
        {"kind": "stage_start", "stage": "law", "stage_index": 0, "step": 0, "tokens": 0},
        *[_train(s, "law", 0) for s in range(1, 11)],
        _eval(1, 10, "law", 0, "dense", 2.3, 3.8, 5.1),
        _eval(2, 20, "law", 0, "dense", 2.5, 3.5, 5.0),
        {"kind": "event", "step": 3, "event": "loss_spike"},
        _eval(5, 50, "law", 0, "periodic", 2.2, 3.2, 4.9),
        _eval(
            10, 100, "law", 0, "stage_end", 2.02, 3.0, 4.8, {"law-quiz": (0.40, 0.41), "trivia": (0.58, 0.60)}
        ),
        {"kind": "stage_end", "stage": "law", "stage_index": 0, "step": 10, "tokens": 100},
        {"kind": "stage_start", "stage": "med", "stage_index": 1, "step": 10, "tokens": 100},
        *[_train(s, "med", 1) for s in range(11, 21)],
        _eval(11, 110, "med", 1, "dense", 2.1, 3.4, 4.5, stage_start=100),
        _eval(15, 150, "med", 1, "periodic", 2.05, 3.3, 4.0, stage_start=100),
        _eval(
            20,
            200,
            "med",
            1,
            "stage_end",
            2.1,
            3.2,
            3.5,
            {"law-quiz": (0.36, 0.37), "trivia": (0.57, 0.58)},
            100,
        ),
        {"kind": "stage_end", "stage": "med", "stage_index": 1, "step": 20, "tokens": 200},
        {
            "kind": "run_end",
            "step": 20,
            "tokens": 200,
            "wall_s": 50.0,
            "train_s": 40.0,
            "eval_s": 5.0,
            "tokens_per_s": 8.0,
        },
    ]


def test_per_source_base_final_delta_max_min():
    ledger = build_ledger(two_stage_records())
    general, law, med = (ledger["sources"][s] for s in ("general", "law", "med"))
    assert general["role"] == "retained" and law["role"] == "target" and med["role"] == "target"
    assert general["base_loss"] == 2.0 and general["final_loss"] == 2.1
    assert general["delta"] == pytest.approx(0.1)
    assert (general["max_loss"], general["max_loss_tokens"]) == (2.5, 20)
    assert (general["min_loss"], general["min_loss_tokens"]) == (2.0, 0)
    assert general["peak_delta"] == pytest.approx(0.5)
    assert (med["max_loss"], med["max_loss_tokens"]) == (5.1, 10)
    assert (law["min_loss"], law["min_loss_tokens"]) == (3.0, 100)
    assert general["base_bpb"] == 1.0 and general["final_bpb"] == 1.05
    assert general["delta_bpb"] == pytest.approx(0.05)
    assert (general["max_bpb"], general["max_bpb_tokens"]) == (1.25, 20)


def test_learning_and_forgetting_signs():
    ledger = build_ledger(two_stage_records())
    # learning = base - final on targets: positive when the loss fell.
    assert ledger["learning"] == {"law": pytest.approx(0.8), "med": pytest.approx(1.5)}
    # forgetting = final - base on the others: positive when the loss rose.
    assert ledger["forgetting"] == {"general": pytest.approx(0.1)}
    assert ledger["learning_mean"] == pytest.approx(1.15)
    assert ledger["forgetting_mean"] == pytest.approx(0.1)
    assert ledger["targets"] == ["law", "med"] and ledger["retained"] == ["general"]


def test_learning_is_negative_when_a_target_got_worse():
    records = two_stage_records()
    final_eval = [r for r in records if r["kind"] == "eval"][-1]
    final_eval["eval/med/loss"] = 5.25  # the final med loss ends above its base of 5.0
    ledger = build_ledger(records)
    assert ledger["learning"]["med"] == pytest.approx(-0.25)


def test_sources_carry_their_change_label_and_evaluated_size():
    records = two_stage_records()
    evals = [r for r in records if r["kind"] == "eval"]
    for record in evals:
        for name, (documents, tokens) in {
            "general": (40, 60_000),
            "law": (12, 9_000),
            "med": (3, 2_000),
        }.items():
            record.update({f"eval/{name}/documents": documents, f"eval/{name}/tokens": tokens})
            record[f"eval/{name}/bytes"] = 4 * tokens
    evals[-1]["eval/general/loss"] = 2.004  # 0.004 above its base of 2.0: noise
    ledger = build_ledger(records)
    sources = ledger["sources"]
    assert sources["general"]["change"] == "unchanged"
    assert sources["law"]["change"] == "learned" and sources["med"]["change"] == "learned"
    assert sources["general"]["eval_size"] == {"documents": 40, "tokens": 60_000, "bytes": 240_000}
    assert ledger["change_floor"] == 0.01
    small = [w for w in ledger["warnings"] if w.startswith("held-out")]
    assert len(small) == 1 and "med" in small[0] and "3 documents / 2,000 tokens" in small[0]
    assert build_ledger(two_stage_records())["sources"]["med"]["eval_size"] is None  # older runs


def test_stage_stability_gaps():
    stages = build_ledger(two_stage_records())["stages"]
    assert list(stages) == ["law", "med"]
    law, med = stages["law"], stages["med"]
    assert law["targets"] == ["law"] and law["tokens"] == 100 and law["start_tokens"] == 0
    assert set(law["stability_gap"]) == {"general", "med"}  # retained = every non-target source
    g = law["stability_gap"]["general"]
    # start 2.0 (base), peak 2.5 at 20 tokens: depth 0.5, tolerance max(0.01, 0.05); 2.02 at 100 is back.
    assert g["depth"] == pytest.approx(0.5) and g["peak_tokens"] == 20
    assert g["tolerance"] == pytest.approx(0.05)
    assert g["recovery_tokens"] == 100 and g["recovered"] is True
    m = law["stability_gap"]["med"]
    # start 5.0, peak 5.1 at 10: depth 0.1, tolerance max(0.01, 0.01); 5.0 at 20 is back.
    assert m["depth"] == pytest.approx(0.1) and m["peak_tokens"] == 10 and m["recovery_tokens"] == 20
    # Stage med starts from the law stage_end losses (general 2.02, law 3.0).
    assert med["start_tokens"] == 100 and med["start_losses"]["general"] == 2.02
    g2 = med["stability_gap"]["general"]
    assert g2["depth"] == pytest.approx(0.08) and g2["peak_tokens"] == 110 and g2["peak_stage_tokens"] == 10
    assert g2["recovery_tokens"] is None and g2["recovered"] is False  # never back to <= 2.03
    law_gap = med["stability_gap"]["law"]
    assert law_gap["depth"] == pytest.approx(0.4) and law_gap["recovered"] is False
    assert med["final_losses"] == {"general": 2.1, "law": 3.2, "med": 3.5}
    assert med["worst_gap"] == {"source": "law", "depth": pytest.approx(0.4)}
    worst = build_ledger(two_stage_records())["worst_stability_gap"]
    assert (worst["stage"], worst["source"], worst["depth"]) == ("law", "general", pytest.approx(0.5))


def test_loss_matrix_and_cl_metrics():
    matrix = build_ledger(two_stage_records())["matrix"]["loss"]
    assert matrix["rows"] == ["law", "med"]
    assert matrix["columns"] == ["general", "law", "med"]
    assert matrix["base"] == [2.0, 4.0, 5.0]
    assert matrix["values"] == [[2.02, 3.0, 4.8], [2.1, 3.2, 3.5]]
    assert matrix["learned_in"] == [None, "law", "med"]
    assert matrix["acc"] == pytest.approx(8.8 / 3)
    assert matrix["bwt"] == pytest.approx(0.15)  # (general 2.1-2.0 + law 3.2-3.0) / 2
    assert matrix["fwt"] == pytest.approx(-0.2)  # med after stage law (4.8) minus base (5.0)
    assert matrix["forgetting"] == pytest.approx(0.15)
    assert matrix["learned"] == pytest.approx(3.25)


def test_mcq_matrix_and_before_after():
    ledger = build_ledger(two_stage_records())
    acc = ledger["matrix"]["mcq_acc"]
    assert acc["columns"] == ["law-quiz", "trivia"]
    assert acc["learned_in"] == ["law", None]  # "law" is a word of "law-quiz"; no target is in "trivia"
    assert acc["values"] == [[0.40, 0.58], [0.36, 0.57]]
    assert acc["acc"] == pytest.approx(0.465)
    assert acc["bwt"] == pytest.approx(-0.035)  # (0.36-0.40 + 0.57-0.60) / 2: negative = forgetting
    assert acc["fwt"] is None  # no set belongs to a later stage
    assert acc["forgetting"] == pytest.approx(0.035)  # (0.40-0.36 + max(0.60, 0.58)-0.57) / 2
    law_quiz = ledger["mcq"]["law-quiz"]
    assert law_quiz["before"] == {"acc": 0.30, "acc_norm": 0.32, "acc_stderr": None, "n": None}
    assert law_quiz["after"] == {"acc": 0.36, "acc_norm": 0.37, "acc_stderr": None, "n": None}
    assert law_quiz["delta"]["acc_stderr"] is None  # lines without standard errors: no interval
    assert law_quiz["delta"]["acc"] == pytest.approx(0.06)
    assert law_quiz["delta"]["acc_norm"] == pytest.approx(0.05)
    assert ledger["mcq"]["trivia"]["delta"]["acc"] == pytest.approx(-0.03)


def test_run_totals():
    ledger = build_ledger(two_stage_records())
    assert ledger["complete"] is True
    assert ledger["tokens"] == 200 and ledger["steps"] == 20
    assert ledger["wall_s"] == 50.0 and ledger["eval_s"] == 5.0
    assert ledger["eval_fraction"] == pytest.approx(0.1)
    assert ledger["tokens_per_s"] == 8.0
    assert ledger["warnings"] == []


def test_single_stage_run_has_a_matrix_row_but_no_cl_metrics():
    records = [r for r in two_stage_records() if r.get("stage_index", 0) == 0 and r["kind"] != "run_end"]
    records[0] = {**records[0], "stages": records[0]["stages"][:1]}
    ledger = build_ledger(records)
    assert ledger["matrix"]["loss"]["rows"] == ["law"]
    assert ledger["matrix"]["loss"]["bwt"] is None and ledger["matrix"]["loss"]["acc"] is None
    # med is no stage's target here, so it counts as forgetting.
    assert ledger["forgetting"]["med"] == pytest.approx(-0.2)
    assert ledger["complete"] is False
    assert any("run_end" in w for w in ledger["warnings"])
    assert ledger["eval_s"] == pytest.approx(2.5)  # no run_end: the sum of the eval lines


# --------------------------------------------------------------------------------------------------
# read_metrics and write_summary


def _write(path: Path, records: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_read_metrics_drops_a_torn_last_line(tmp_path):
    records = two_stage_records()
    path = _write(tmp_path / "metrics.jsonl", records, tail='{"kind": "train", "step": 21, "tok')
    assert read_metrics(path) == records


def test_read_metrics_resume_drops_later_steps_and_supersedes_repeats(tmp_path):
    first = [
        {"kind": "run_start", "stages": [], "sources": ["general"]},
        {"kind": "eval", "step": 0, "point": "base", "stage_index": 0, "tokens": 0, "eval/general/loss": 2.0},
        {"kind": "train", "step": 1, "tokens": 10, "loss": 5.0},
        {"kind": "train", "step": 2, "tokens": 20, "loss": 4.0},
        {
            "kind": "eval",
            "step": 2,
            "point": "periodic",
            "stage_index": 0,
            "tokens": 20,
            "eval/general/loss": 2.5,
        },
        {"kind": "train", "step": 3, "tokens": 30, "loss": 3.0},
        {"kind": "event", "step": 3, "event": "loss_spike"},
    ]
    second = [
        {"kind": "resume", "step": 2, "tokens": 20},
        {
            "kind": "eval",
            "step": 2,
            "point": "periodic",
            "stage_index": 0,
            "tokens": 20,
            "eval/general/loss": 2.4,
        },
        {"kind": "train", "step": 3, "tokens": 30, "loss": 3.5},
    ]
    got = read_metrics(_write(tmp_path / "metrics.jsonl", first + second))
    kinds = [(r["kind"], r.get("step")) for r in got]
    assert kinds == [
        ("run_start", None),
        ("eval", 0),
        ("train", 1),
        ("train", 2),
        ("resume", 2),
        ("eval", 2),
        ("train", 3),
    ]
    assert got[5]["eval/general/loss"] == 2.4  # the repeated eval supersedes the first
    assert got[6]["loss"] == 3.5  # step 3 from the resumed run, not the lost one
    assert not any(r["kind"] == "event" for r in got)  # the step-3 event was after the resume point


def test_read_metrics_recovers_a_line_glued_to_a_torn_one(tmp_path):
    # A crash mid-write leaves no newline; the resumed run's first line is appended to the fragment.
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"kind": "train", "step": 1, "tokens": 10}\n'
        '{"kind": "train", "step": 2, "tokens": 20}\n'
        '{"kind": "train", "step": 3, "to'
        '{"kind": "resume", "step": 1, "tokens": 10}\n'
        '{"kind": "train", "step": 2, "tokens": 20, "loss": 1.5}\n'
    )
    got = read_metrics(path)
    assert [(r["kind"], r["step"]) for r in got] == [("train", 1), ("resume", 1), ("train", 2)]
    assert got[-1]["loss"] == 1.5


def test_read_metrics_names_file_and_line_of_a_broken_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "step": 1}\nnot json\n{"kind": "train", "step": 2}\n')
    with pytest.raises(UserError, match=r"metrics\.jsonl:2"):
        read_metrics(path)


def test_read_metrics_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="metrics.jsonl"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_write_summary_is_atomic_and_deterministic(tmp_path):
    _write(tmp_path / "metrics.jsonl", two_stage_records())
    summary = write_summary(tmp_path)
    first = (tmp_path / "summary.json").read_bytes()
    assert json.loads(first) == summary == build_ledger(two_stage_records())
    write_summary(tmp_path)
    assert (tmp_path / "summary.json").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "summary.json"]  # no temp left


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_summary_file_mode_follows_the_umask(tmp_path, umask):
    _write(tmp_path / "metrics.jsonl", two_stage_records())
    before = os.umask(umask)
    try:
        write_summary(tmp_path)
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o666 & ~umask


def test_non_finite_losses_become_null_with_a_warning(tmp_path):
    records = two_stage_records()
    evals = [r for r in records if r["kind"] == "eval"]
    evals[1]["eval/general/loss"] = None  # the log writes NaN as null
    evals[2]["eval/law/loss"] = float("nan")
    _write(tmp_path / "metrics.jsonl", records)
    summary = write_summary(tmp_path)  # allow_nan=False: raises if a NaN reached the JSON
    assert any("non-finite loss on general" in w for w in summary["warnings"])
    assert summary["sources"]["general"]["evals"] == 7  # 8 evaluations, one unusable
