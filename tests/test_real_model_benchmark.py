"""benchmarks/real_model.py: its CPU mode runs end to end, and its statistics and goal checks are right."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_model", ROOT / "benchmarks" / "real_model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_model"] = module  # dataclasses look their module up by name
    # The script imports machine.py from its own folder; that folder also holds a `methods.py`,
    # so it goes on the path only while the script loads.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    yield module
    sys.modules.pop("real_model", None)


def test_tiny_mode_cut_short_by_the_deadline_leaves_valid_results(bench, tmp_path, monkeypatch, capsys):
    """The base is evaluated once and shared; every strategy trains on the same tokens; results are
    written as each strategy completes, and a strategy the deadline leaves out is named."""
    plan = [s.name for s in bench.strategies(bench.TINY_PLAN)]
    assert plan == ["no-replay", "replay-5%", "mer+replay-5%", "replay-25%", "lora+embeddings", "adept"]

    class LastStrategyDoesNotFit(bench.Deadline):
        asked = 0

        def fits(self, seconds: float) -> bool:  # base + first strategy, then one per strategy
            LastStrategyDoesNotFit.asked += 1
            return LastStrategyDoesNotFit.asked <= 4

    evaluated: list[str] = []
    evaluate = bench.evaluate
    monkeypatch.setattr(bench, "Deadline", LastStrategyDoesNotFit)
    monkeypatch.setattr(
        bench,
        "evaluate",
        lambda model_dir, config: evaluated.append(model_dir.name) or evaluate(model_dir, config),
    )
    written: list[int] = []
    write_results = bench.write_results

    def write_and_read_back(result: dict, out: Path) -> None:
        write_results(result, out)
        models = json.loads((out / "real_model.json").read_text())["models"]
        written.append(sum(len(m.get("strategies", {})) for m in models.values()))

    monkeypatch.setattr(bench, "write_results", write_and_read_back)

    out = tmp_path / "out"
    result = bench.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "work")])

    assert evaluated == [
        "tiny-model",
        "final",
        "final",
        "final",
    ]  # the base once, then each run's final model
    assert sorted(set(written)) == [0, 1, 2, 3]
    saved = json.loads((out / "real_model.json").read_text())
    assert saved["status"] == "cut short by the budget" and saved["mode"] == "tiny"
    assert saved["versions"]["torch"] and saved["device"].startswith("CPU") and saved["date"]
    (model,) = saved["models"].values()
    assert list(model["strategies"]) == plan[:3] and list(model["skipped"]) == plan[3:]
    tokens = {run["tokens"] for run in model["strategies"].values()}
    assert tokens == {bench.TINY_PLAN.steps * bench.TINY_PLAN.batch_tokens}
    base = model["base"]
    assert set(base["heldout"]) == {"general", "security", "code"}
    assert set(base["mcq"]) == {"security-mcq", "general-mcq"}
    for run in model["strategies"].values():
        for source, change in run["change"]["heldout"].items():
            assert change["loss"] == pytest.approx(
                run["after"]["heldout"][source]["loss"] - base["heldout"][source]["loss"]
            )
        for qset, change in run["change"]["mcq"].items():
            assert (
                len(run["after"]["mcq"][qset]["correct"])
                == base["mcq"][qset]["n"]
                == bench.TINY_PLAN.mcq_limit
            )
            low, high = change["ci95"]
            assert low <= change["acc"] <= high
    assert model["checks"]["best"] in plan[:3] and set(model["checks"]["strategies"]) == set(plan[:3])

    table = (out / "real_model.md").read_text()
    assert "tiny CPU mode: format only" in table and "status: cut short by the budget" in table
    assert "| mer+replay-5% |" in table and "Not run (replay-25%)" in table and "Best strategy:" in table
    assert table == bench.markdown(result)


def _evaluation(losses: dict[str, float], correct: dict[str, str]) -> dict:
    return {
        "heldout": {name: {"loss": loss, "bpb": loss / math.log(2)} for name, loss in losses.items()},
        "mcq": {name: {"correct": bits, "n": len(bits)} for name, bits in correct.items()},
    }


def test_paired_change_uses_the_per_item_differences(bench):
    before = _evaluation({"general": 2.0}, {"security-mcq": "0011", "general-mcq": "1111"})
    after = _evaluation({"general": 2.5}, {"security-mcq": "0111", "general-mcq": "1111"})
    change = bench.changes(before, after)
    assert change["heldout"]["general"]["loss"] == pytest.approx(0.5)
    security = change["mcq"]["security-mcq"]
    # Differences 0, +1, 0, 0: mean 1/4, sample sd sqrt(1/4), standard error sqrt(1/4) / sqrt(4).
    assert security["acc"] == pytest.approx(0.25)
    assert security["stderr"] == pytest.approx(0.25)
    assert security["ci95"] == pytest.approx([0.25 - bench.Z95 * 0.25, 0.25 + bench.Z95 * 0.25])
    assert change["mcq"]["general-mcq"] == {"acc": 0.0, "stderr": 0.0, "ci95": [0.0, 0.0]}


def _run(general: float, security: float, security_mcq: list[float], general_mcq: list[float]) -> dict:
    return {
        "change": {
            "heldout": {"general": {"loss": general}, "security": {"loss": security}},
            "mcq": {"security-mcq": {"ci95": security_mcq}, "general-mcq": {"ci95": general_mcq}},
        }
    }


def test_goal_checks_and_the_best_strategy(bench):
    model = {
        "strategies": {
            "no-replay": _run(+0.50, -1.00, [0.01, 0.05], [-0.06, -0.01]),
            "replay-5%": _run(+0.30, -0.99, [0.01, 0.05], [-0.03, 0.01]),
            "mer+replay-5%": _run(+0.05, -0.96, [0.00, 0.04], [-0.02, 0.02]),  # 10% and 96%: loss goal met
            "replay-25%": _run(+0.04, -0.90, [0.02, 0.06], [-0.02, 0.02]),  # 90% of the learning: not enough
        }
    }
    checks = bench.goal_checks(model)
    rows = checks["strategies"]
    assert rows["mer+replay-5%"]["forgetting_share"] == pytest.approx(0.10)
    assert rows["mer+replay-5%"]["checks"] == {
        "forgetting": True,
        "learning": True,
        "security_mcq": False,  # the interval touches 0
        "general_mcq": True,
    }
    assert rows["no-replay"]["checks"] == {
        "forgetting": False,
        "learning": True,
        "security_mcq": True,
        "general_mcq": False,  # a significant drop
    }
    assert rows["replay-25%"]["checks"]["learning"] is False and rows["replay-25%"]["passed"] == 3
    # Three checks each for mer+replay-5% and replay-25%: the smaller general-loss rise wins.
    assert checks["best"] == "replay-25%" and checks["goal_met"] is False
    model["strategies"]["mer+replay-5%"] = _run(+0.05, -0.96, [0.001, 0.04], [-0.02, 0.02])
    assert (
        bench.goal_checks(model)["best"] == "mer+replay-5%" and bench.goal_checks(model)["goal_met"] is True
    )
    assert "note" in bench.goal_checks({"strategies": {"replay-5%": model["strategies"]["replay-5%"]}})


def test_every_strategy_is_a_valid_run_config(bench, tmp_path, monkeypatch):
    """The transform strategies size themselves from the model: ADEPT adds a quarter of its blocks."""
    from forgetless.config import config_from_dict

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"num_hidden_layers": 30}))
    plan = bench.TINY_PLAN
    monkeypatch.setattr(bench, "micro_batch", lambda model_dir, plan: plan.micro_batch)
    for strategy in bench.strategies(plan):
        data = bench.run_config(model_dir, plan, strategy, dict(bench.SOURCES), tmp_path / strategy.name, tmp_path)
        config = config_from_dict(data)
        kinds = [t.kind for t in config.model.transforms]
        assert kinds == [t["kind"] for t in strategy.transforms], strategy.name
    (adept,) = bench.model_transforms(model_dir, bench.strategies(plan)[-1])
    assert adept["count"] == 7 and adept["select"] == "least_important"
