"""Ready run configs on the bundled data, installed with the package (`forgetless recipes`).

The YAML files beside this module are the recipes; the repository's `recipes/` folder holds the
same files (a test keeps them identical) so that the README's commands work from a checkout.
"""

from __future__ import annotations

from pathlib import Path

from forgetless.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """The recipes' names (file names without `.yaml`), sorted."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The file of recipe `name`; `UserError` listing the recipes when there is none of that name."""
    path = RECIPES_DIR / f"{name}.yaml"
    if name not in recipe_names():
        raise UserError(f"recipe {name!r}: no such recipe; recipes: {', '.join(recipe_names())}")
    return path


def recipe_summary(name: str) -> str:
    """What the recipe sets, read from its YAML: stages with their tokens, replay and methods."""
    import yaml

    data = yaml.safe_load(recipe_path(name).read_text(encoding="utf-8")) or {}
    parts = []
    for stage in data.get("stages") or []:
        text = (
            f"{stage.get('name')}: {stage.get('tokens', 0):,} tokens of {', '.join(stage.get('mix') or {})}"
        )
        replay = stage.get("replay")
        if replay:
            sources = replay.get("from")
            text += f", {replay.get('ratio', 0):.0%} replay of {', '.join(sources) if isinstance(sources, list) else sources}"
        methods = [key for key, value in (stage.get("methods") or {}).items() if value not in (None, [], {})]
        if methods:
            text += f", methods {', '.join(methods)}"
        parts.append(text)
    return "; ".join(parts)
