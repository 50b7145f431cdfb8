"""`forgetless plan` end to end on a tiny model: proxy runs, resume, plan.json/html, --apply, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from forgetless.cli import main
from forgetless.config import dump_config, load_config
from forgetless.plan.planner import NoRecommendation, make_plan
from forgetless.plan.proxy import plan_setup, proxy_config, proxy_dir
from forgetless.plan.recommend import Budget
from methods.tiny_runs import save_config, tiny_config, write_corpora

RATIOS = [0.0, 0.25, 0.5]


def write_config(tmp: Path, tokenizer_dir: Path) -> Path:
    """The tiny run without replay: one stage of 32 steps on code, a checkpoint every step."""
    data = tiny_config(tmp, tokenizer_dir, write_corpora(tmp / "data"), cache_dir=tmp / "cache", tokens=8192)
    del data["stages"][0]["replay"]
    data["train"]["log_every_steps"] = 1
    data["eval"]["dense_start"] = []
    data["output"].update(checkpoint_every_tokens=256, keep_checkpoints=1)
    return save_config(data, tmp / "config.yaml")


def read_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def planned(tmp_path_factory, tiny_tokenizer_dir):
    """A plan of real tiny proxy runs, interrupted in its second proxy run, then run again to the end."""
    from methods.tiny_runs import run_interrupted

    tmp = tmp_path_factory.mktemp("plan")
    path = write_config(tmp, tiny_tokenizer_dir)
    config = load_config(path)
    setup = plan_setup(config, "code", RATIOS, 768, evals=3)
    out = tmp / "plan"
    # 3 steps per proxy: stop after the first proxy and 2 steps of the second.
    run_interrupted(5, lambda: make_plan(config, setup, Budget(10.0), out, quiet=True))
    first = snapshot(proxy_dir(out, 0.0))
    try:
        plan = make_plan(config, setup, Budget(10.0), out, quiet=True)
    except NoRecommendation as err:
        plan = {"error": str(err)}
    return tmp, path, out, plan, first


def test_a_resumed_plan_reruns_nothing_that_finished(planned) -> None:
    _, _, out, _, first = planned
    saved = json.loads((out / "plan.json").read_text())
    assert snapshot(proxy_dir(out, 0.0)) == first
    assert [p["reused"] for p in saved["proxies"]] == [True, False, False]
    resumed = read_lines(proxy_dir(out, 0.25))
    assert any(r["kind"] == "resume" and r["step"] == 1 for r in resumed)  # from its checkpoint


def test_plan_of_real_runs_holds_the_measurements(planned) -> None:
    _, _, out, plan, _ = planned
    saved = json.loads((out / "plan.json").read_text())
    assert saved["ratios"] == RATIOS and saved["retained"] == ["general"] and saved["targets"] == ["code"]
    for proxy in saved["proxies"]:
        summary = json.loads((Path(proxy["run_dir"]) / "summary.json").read_text())
        assert proxy["final"]["general"] == pytest.approx(summary["sources"]["general"]["final_loss"])
        assert len(proxy["curve"]) == 3  # --evals 3 over 3 steps
        run_config = yaml.safe_load((Path(proxy["run_dir"]) / "config.yaml").read_text())
        assert run_config["stages"][0]["tokens"] == 768
        assert (run_config["stages"][0]["replay"] or {}).get("ratio", 0.0) == proxy["ratio"]
    assert set(saved["fits"]) == {"general", "code"}
    # Three points of a tiny model need not follow the law: then the plan says so, without a ratio.
    if saved["recommendation"] is None:
        assert "did not converge" in saved["message"] and "did not converge" in plan["error"]
        assert "No recommendation" in (out / "plan.html").read_text()
    else:
        assert saved["recommendation"]["replay_ratio"] == 0.0  # 10 nats: no replay needed


def test_a_plan_of_another_config_in_the_same_folder_is_refused(planned, capsys) -> None:
    tmp, path, out, _, _ = planned
    before = snapshot(out)
    code = _cli(
        [
            "plan",
            str(path),
            "--stage",
            "code",
            "--ratios",
            "0,0.25,0.5",
            "--tokens",
            "1024",
            "--budget",
            "10",
            "--evals",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2 and "holds a proxy run of a different config" in err and len(err.strip().splitlines()) == 1
    )
    assert snapshot(out) == before


# ---------------------------------------------------------------------------------------------
# Proxy runs written by hand, their losses on a known law: the command's paths without training

LAWS = {"general": (0.6, 3.0, 2.95), "code": (-1.0, 0.8, 4.5)}  # L(R) = a R^s + b
BASE = {"general": 3.0, "code": 4.0}


def fake_proxies(config_path: Path, out: Path, ratios: list[float], tokens: int) -> None:
    """Finished proxy runs in `out`, as `run_proxies` would leave them, with losses from `LAWS`."""
    config = load_config(config_path)
    setup = plan_setup(config, "code", ratios, tokens, evals=3)
    for ratio in ratios:
        run_dir = proxy_dir(out, ratio)
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(dump_config(proxy_config(config, setup, ratio, run_dir)))
        (run_dir / "summary.json").write_text(json.dumps({"complete": True}))
        lines = [
            {
                "kind": "eval",
                "step": 0,
                "tokens": 0,
                "point": "base",
                **{f"eval/{n}/loss": v for n, v in BASE.items()},
            }
        ]
        for k in (1, 2, 3):
            share = 1 - ratio
            losses = {n: BASE[n] + (a * share**s + b - BASE[n]) * k / 3 for n, (a, s, b) in LAWS.items()}
            lines.append(
                {
                    "kind": "eval",
                    "step": k,
                    "tokens": k * tokens // 3,
                    "stage_tokens": k * tokens // 3,
                    "point": "stage_end" if k == 3 else "periodic",
                    **{f"eval/{n}/loss": v for n, v in losses.items()},
                }
            )
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.fixture
def faked(tmp_path, tiny_tokenizer_dir):
    path = write_config(tmp_path, tiny_tokenizer_dir)
    out = tmp_path / "plan"
    fake_proxies(path, out, [0.0, 0.05, 0.1, 0.25, 0.5], 1024)
    args = [
        "plan",
        str(path),
        "--stage",
        "code",
        "--tokens",
        "1/8",
        "--evals",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    return path, out, args


def test_cli_recommends_applies_and_draws_from_finished_proxies(faked, capsys) -> None:
    path, out, args = faked
    assert _cli([*args, "--budget", "0.2", "--apply"]) == 0
    printed = capsys.readouterr().out
    boundary = 1 - (0.25 / 0.6) ** (1 / 3)  # general rises 0.6 R^3 - 0.05 <= 0.2
    ratio = math.ceil(boundary * 1000) / 1000
    assert f"recommended replay ratio for stage code: {ratio:g}" in printed
    assert "general (retained): predicted +0.1991 nats/token (fit rmse 0.0000)" in printed  # on its law
    plan = json.loads((out / "plan.json").read_text())
    assert plan["recommendation"]["replay_ratio"] == pytest.approx(ratio)
    assert all(p["reused"] for p in plan["proxies"])
    assert plan["fits"]["general"]["params"] == pytest.approx({"a": 0.6, "s": 3.0, "b": 2.95}, rel=1e-4)
    assert plan["acceptable_measured"] == [0.5]  # +0.203 at 0.25, +0.025 at 0.5
    config = load_config(path.with_name("config.planned.yaml"))
    assert config.stages[0].replay.ratio == pytest.approx(ratio)
    assert config.stages[0].replay.from_ == ["general"]
    html = (out / "plan.html").read_text()
    assert html.count('data-plot="plan-ratio"') == 2 and html.count('data-plot="plan-curve"') == 2
    assert "recommended" in html


def test_cli_margin_keeps_the_prediction_below_the_budget(faked, capsys) -> None:
    _, out, args = faked
    assert _cli([*args, "--budget", "0.2", "--margin", "0.05"]) == 0
    assert "recommended replay ratio for stage code" in capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert plan["budget"]["margin"] == 0.05 and "less a margin of 0.05" in plan["budget"]["text"]
    assert plan["recommendation"]["predicted_delta"]["general"] <= 0.15 + 1e-9


def test_cli_monotone_in_the_budget(faked, capsys) -> None:
    _, out, args = faked
    chosen = []
    for budget in ("0.1", "0.2", "0.4", "2%", "10%"):
        assert _cli([*args, "--budget", budget]) == 0
        chosen.append(json.loads((out / "plan.json").read_text())["recommendation"]["replay_ratio"])
    capsys.readouterr()
    assert chosen[:3] == sorted(chosen[:3], reverse=True) and chosen[3] >= chosen[4]


def test_cli_unmeetable_budget_names_the_closest_and_writes_nothing(faked, capsys) -> None:
    _, out, args = faked
    before = snapshot(out)
    assert _cli([*args, "--budget", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "closest: replay 0.5, where general rises +0.0250" in err and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before and not (out / "plan.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ratios", "0,0.5", "--budget", "0.1"], "at least three different replay ratios"),
        (["--ratios", "0,0.5,1", "--budget", "0.1"], "not a replay ratio"),
        (["--ratios", "0,0.1,0.5", "--budget", "lots"], "--budget lots"),
        (["--ratios", "0,0.1,0.5", "--budget", "0.1", "--margin", "wide"], "--margin wide"),
        (["--ratios", "0,0.1,0.5", "--budget", "0.1", "--stage", "nope"], "--stage nope"),
        (["--ratios", "0,0.1,0.5", "--budget", "0.1", "--retained", "code"], "not retained"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_tokenizer_dir, capsys, extra, message) -> None:
    path = write_config(tmp_path, tiny_tokenizer_dir)
    args = ["plan", str(path), "--stage", "code", "--tokens", "1024", "--out", str(tmp_path / "p"), "--quiet"]
    if "--stage" in extra:
        args = [a for a in args if a not in ("--stage", "code")]
    code = _cli([*args, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def _cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_proxy_tokens_as_a_count_or_a_share_of_the_stage(tmp_path, tiny_tokenizer_dir) -> None:
    from forgetless.errors import UserError
    from forgetless.plan.proxy import parse_tokens

    config = load_config(write_config(tmp_path, tiny_tokenizer_dir))  # a stage of 8,192 tokens
    assert parse_tokens("3000", config, "code") == 3000
    assert parse_tokens("3_000", config, "code") == 3000
    assert parse_tokens("1/8", config, "code") == parse_tokens("0.125", config, "code") == 1024
    assert parse_tokens("1/1", config, "code") == 8192  # the stage's own length
    for bad in ("lots", "2/1", "0/8", "1/0", "1.5"):
        with pytest.raises(UserError, match="--tokens"):
            parse_tokens(bad, config, "code")
