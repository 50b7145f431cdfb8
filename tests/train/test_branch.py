"""Cooldown branches: a schedule, not a new mechanism; bit for bit equal to a run of that schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from forgetless.cli import main
from forgetless.config import ScheduleConfig, load_config
from forgetless.errors import UserError
from forgetless.train.branch import branch_schedule, branches_of, cooldown, read_branch
from forgetless.train.run import run_training
from forgetless.train.schedules import min_lr, schedule_points
from methods.tiny_runs import save_config, tiny_config, write_corpora


def test_branch_schedule_keeps_the_lr_before_the_branch_and_decays_after() -> None:
    parent = ScheduleConfig(kind="constant", peak_lr=1e-3, warmup=0.1, final_lr_ratio=0.05)
    new = branch_schedule(parent, 40, 12, 6, "cosine")
    points = schedule_points(new, 18)
    assert points[:12] == schedule_points(parent, 40)[:12]
    assert points[12:] == sorted(points[12:], reverse=True) and points[12] < 1e-3
    assert points[-1] == pytest.approx(0.05e-3)


def test_branch_of_a_wsd_stage_and_of_an_infinite_stage() -> None:
    wsd = ScheduleConfig(kind="wsd", peak_lr=1e-3, warmup=0.05, decay=0.2, final_lr_ratio=0.1)
    new = branch_schedule(wsd, 100, 30, 10, "1-sqrt")
    assert schedule_points(new, 40)[:30] == schedule_points(wsd, 100)[:30]
    assert schedule_points(new, 40)[-1] == pytest.approx(min_lr(wsd))
    infinite = ScheduleConfig(kind="infinite", peak_lr=1e-3, warmup=0.05, cooldown=0.2, anneal=0.1)
    new = branch_schedule(infinite, 100, 50, 10, "exponential")
    assert schedule_points(new, 60)[:50] == pytest.approx(schedule_points(infinite, 100)[:50], rel=1e-12)
    assert schedule_points(new, 60)[-1] == pytest.approx(min_lr(infinite))


@pytest.mark.parametrize(
    "schedule, step, shape, message",
    [
        (ScheduleConfig(kind="cosine"), 10, "linear", "cosine schedule.*nothing to branch|no constant phase"),
        (ScheduleConfig(kind="constant", warmup=0.2), 3, "linear", "not in its constant-LR phase"),
        (ScheduleConfig(kind="wsd", decay=0.2), 90, "linear", "not in its constant-LR phase"),
        (ScheduleConfig(kind="constant"), 10, "exponential", "only infinite schedules"),
        (ScheduleConfig(kind="infinite"), 50, "linear", "anneals exponentially"),
        (ScheduleConfig(kind="constant"), 10, "step", "--shape step"),
    ],
)
def test_branches_that_cannot_be(schedule: ScheduleConfig, step: int, shape: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        branch_schedule(schedule, 100, step, 10, shape)


def write_config(tmp: Path, tokenizer_dir: Path) -> Path:
    """The tiny run on a constant LR: 8 steps, a checkpoint every 2, an evaluation every 4."""
    schedule = {"kind": "constant", "peak_lr": 3e-3, "warmup": 0.25, "final_lr_ratio": 0.1}
    data = tiny_config(tmp, tokenizer_dir, write_corpora(tmp / "data"), cache_dir=tmp / "cache", schedule=schedule)
    data["train"]["log_every_steps"] = 1
    data["eval"].update(dense_start=[], every_tokens=1024)
    data["output"].update(checkpoint_every_tokens=512, keep_checkpoints=4)
    return save_config(data, tmp / "config.yaml")


@pytest.fixture(scope="module")
def parent_and_branch(tmp_path_factory, tiny_tokenizer_dir):
    tmp = tmp_path_factory.mktemp("branch")
    parent = run_training(load_config(write_config(tmp, tiny_tokenizer_dir)), quiet=True)  # 8 steps
    branch = cooldown(parent, tokens=768, from_step=4, shape="linear", quiet=True)  # 3 steps of decay
    return tmp, parent, branch


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_branch_equals_a_run_of_its_schedule_bit_for_bit(parent_and_branch) -> None:
    tmp, parent, branch = parent_and_branch
    config = load_config(branch / "config.yaml", [f"output.dir={tmp / 'reference'}"])
    assert config.stages[0].schedule.kind == "wsd" and config.stages[0].tokens == 7 * 256
    reference = run_training(config, quiet=True)  # from the start, no checkpoint
    mine, theirs = (
        load_file(branch / "final" / "model.safetensors"),
        load_file(reference / "final" / "model.safetensors"),
    )
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name
    ref_lr = {r["step"]: r["lr"] for r in lines(reference) if r["kind"] == "train"}
    branch_lr = {r["step"]: r["lr"] for r in lines(branch) if r["kind"] == "train"}
    parent_lr = {r["step"]: r["lr"] for r in lines(parent) if r["kind"] == "train"}
    assert branch_lr == ref_lr
    assert [branch_lr[s] for s in range(1, 5)] == [parent_lr[s] for s in range(1, 5)]  # before the branch
    assert branch_lr[7] == pytest.approx(3e-4) and branch_lr[5] > branch_lr[6] > branch_lr[7]


def test_a_branch_has_its_own_ledger_against_the_same_base(parent_and_branch) -> None:
    _, parent, branch = parent_and_branch
    info = read_branch(branch)
    assert info["from_step"] == 4 and info["decay_steps"] == 3 and info["parent"] == str(parent.resolve())
    assert info["loss_at_branch"]["step"] == 4  # the evaluation every 1,024 tokens
    summary = json.loads((branch / "summary.json").read_text())
    parent_summary = json.loads((parent / "summary.json").read_text())
    assert summary["complete"] and summary["tokens"] == 7 * 256
    for name in ("general", "code"):
        assert summary["sources"][name]["base_loss"] == parent_summary["sources"][name]["base_loss"]
    assert branches_of(parent) == [branch]
    assert (branch / "final" / "model.safetensors").is_file()


def test_cooldown_from_a_cosine_stage_is_refused(parent_and_branch, tmp_path, capsys) -> None:
    import shutil

    _, parent, _ = parent_and_branch
    run = Path(shutil.copytree(parent, tmp_path / "cosine-run", ignore=shutil.ignore_patterns("branches")))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["stages"][0]["schedule"]["kind"] = "cosine"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_:
        main(["cooldown", str(run), "--tokens", "512", "--from", "step_4", "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "cosine schedule" in err and len(err.strip().splitlines()) == 1
    assert not (run / "branches").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from", "step_3"], "no such checkpoint"),
        (["--from", "four"], "expected step_N or N"),
        (["--tokens-before-end", "--from", "4"], "not both"),
        (["--from", "8"], "written after the last stage"),
    ],
)
def test_cooldown_bad_input(parent_and_branch, capsys, args, message) -> None:
    _, parent, _ = parent_and_branch
    with pytest.raises(SystemExit) as exit_:
        main(["cooldown", str(parent), "--tokens", "512", *args, "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_compare_and_report_show_a_run_with_its_branches(parent_and_branch, tmp_path, capsys) -> None:
    _, parent, _ = parent_and_branch
    main(["compare", str(parent)])
    table = capsys.readouterr().out
    assert "step 4" in table  # the branch row, its name wrapped in the narrow run column
    main(["report", str(parent), "--out", str(tmp_path / "report.html")])
    html = (tmp_path / "report.html").read_text()
    assert "run &gt; step 4, linear over 3 steps" in html
