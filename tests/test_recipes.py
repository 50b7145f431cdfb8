"""Every recipe in recipes/ is a valid run config."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetless.config import load_config

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    names = {path.stem for path in RECIPES}
    assert {"mer", "l2sp", "ewc", "distill", "slow-learner", "ema"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads(path: Path, tmp_path: Path) -> None:
    config = load_config(path, [f"model.path={tmp_path}", f"output.dir={tmp_path / 'run'}"])
    assert config.stages, path.name
    for stage in config.stages:
        for source in [*stage.mix, *(stage.replay.from_ if stage.replay else [])]:
            assert source in config.sources


@pytest.mark.parametrize(
    ("name", "method"),
    [("mer", "mer"), ("l2sp", "l2sp"), ("ewc", "ewc"), ("distill", "distill"), ("ema", "ema")],
)
def test_method_recipes_configure_their_method(name: str, method: str, tmp_path: Path) -> None:
    config = load_config(Path(RECIPES[0]).parent / f"{name}.yaml", [f"model.path={tmp_path}"])
    assert getattr(config.stages[0].methods, method) is not None


def test_slow_learner_recipe_lowers_the_blocks_lr(tmp_path: Path) -> None:
    config = load_config(Path(RECIPES[0]).parent / "slow-learner.yaml", [f"model.path={tmp_path}"])
    assert config.stages[0].methods.lr_multipliers == {"layers": 0.1}


@pytest.mark.parametrize(
    "name",
    ["llama-pro", "adept", "lora", "vocab", "long-context", "long-context-yarn", "depth-upscale", "upcycle-moe"],
)
def test_transform_recipes_run_on_the_demo_base(name: str, tmp_path: Path, monkeypatch) -> None:
    import forgetless.demo as demo

    config = load_config(Path(RECIPES[0]).parent / f"{name}.yaml")
    assert config.model.path == demo.DEMO_BASE and config.model.transforms
    built = []
    monkeypatch.setattr(demo, "build_base", lambda size, quiet=False: built.append(size) or tmp_path)
    resolved = demo.resolve_demo_base(config, quiet=True)
    assert built == [demo.QUICK] and resolved.model.path == str(tmp_path)
    assert any(stage.methods.train_only for stage in config.stages) == (name in ("llama-pro", "adept", "vocab"))
