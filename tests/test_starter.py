"""Starter configs: `forgetless init` sizes a config from a model and data that trains as is, and
the recipes are installed with the package, identical to the repository's recipes/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import tiny_llama, write_corpora
from forgetless.cli import main
from forgetless.errors import UserError
from forgetless.recipes import RECIPES_DIR, recipe_names
from forgetless.starter import EVAL_SHARE, model_facts, size_run, source_name

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    out = tmp_path_factory.mktemp("base") / "base"
    tiny_llama(tiny_tokenizer, max_position_embeddings=64).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


def _run(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as exit_:
        assert exit_.code in (0, None)


def test_init_writes_a_config_that_trains_as_is(tmp_path: Path, base_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORGETLESS_CACHE", str(tmp_path / "cache"))
    corpora = write_corpora(tmp_path / "data")
    _run(
        [
            "init",
            "--model",
            str(base_dir),
            "--data",
            str(corpora["code"]),
            "--replay",
            str(corpora["general"]),
            "--recipe",
            "l2sp",
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    config = yaml.safe_load(text)
    assert text.startswith("# A starter config written by `forgetless init`")
    assert "training tokens in" in text and "held out for evaluation" in text  # measured, said in comments
    stage = config["stages"][0]
    assert stage["mix"] == {"code": 1.0} and stage["replay"]["from"] == "general"
    assert stage["methods"] == {"l2sp": {"weight": pytest.approx(stage["methods"]["l2sp"]["weight"])}}
    assert config["train"]["seq_len"] <= 64  # the model's context
    assert stage["tokens"] // config["train"]["batch_tokens"] >= 100  # enough optimizer steps
    path = tmp_path / "my-run.yaml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    _run(["train", str(path), "--quiet"])
    run = tmp_path / config["output"]["dir"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["tokens"] == stage["tokens"]
    assert summary["eval_fraction"] < 0.5  # a tiny model on a busy CPU: only a loose check here


def test_sizing_keeps_evaluation_within_its_share() -> None:
    from forgetless.starter import ModelFacts, SourceFacts

    model = ModelFacts(Path("."), parameters=494_000_000, max_positions=32768, model_type="qwen2")
    domain = SourceFacts("law", "x", train_tokens=50_000_000, heldout_tokens=400_000, documents=10_000)
    general = SourceFacts("general", "y", train_tokens=4_900_000, heldout_tokens=150_000, documents=2_000)
    plan = size_run(model, domain, [domain, general])
    assert plan.seq_len == 2048 and plan.batch_tokens == 262_144 and plan.peak_lr == 3e-4
    assert plan.steps >= 100 and plan.stage_tokens <= domain.train_tokens
    assert plan.eval_share <= EVAL_SHARE
    assert plan.eval_every_tokens is not None and plan.eval_points >= 8


def test_names_and_bad_input(tmp_path: Path) -> None:
    assert source_name("bundled:general") == "general"
    assert source_name("data/law/") == "law" and source_name("a/Court Rulings.jsonl.gz") == "court-rulings"
    with pytest.raises(UserError, match="no config.json"):
        model_facts(tmp_path)
    with pytest.raises(UserError, match="no such recipe"):
        from forgetless.recipes import recipe_path

        recipe_path("nope")


def test_recipes_are_installed_and_match_the_repository() -> None:
    installed = {path.name: path.read_bytes() for path in RECIPES_DIR.glob("*.yaml")}
    repository = {path.name: path.read_bytes() for path in REPO_RECIPES.glob("*.yaml")}
    assert installed == repository  # one set of recipes: edit both, or copy recipes/ into the package
    assert {"mer", "l2sp", "ewc"} <= set(recipe_names())


def test_recipes_command_lists_and_prints(capsys) -> None:
    _run(["recipes"])
    listing = capsys.readouterr().out
    assert "mer" in listing and "methods mer" in listing
    _run(["recipes", "mer"])
    assert capsys.readouterr().out == (RECIPES_DIR / "mer.yaml").read_text()
