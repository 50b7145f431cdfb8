"""Write docs/config.md: every key of the run config with its type, default and meaning.

The reference is generated from the pydantic models in `forgetless.config`, so it cannot drift from
the code; `tests/test_config.py` checks that the committed file is current.

    python scripts/config_reference.py            # rewrite docs/config.md
    python scripts/config_reference.py --check    # exit 1 if docs/config.md is stale
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from forgetless import config as cfg

OUT = Path(__file__).resolve().parents[1] / "docs" / "config.md"

HEADER = """# Config reference

A run config is a YAML file (`forgetless train CONFIG`). Relative paths resolve against the config
file's folder; `--set key.path=value` overrides any key (list items by index: `stages.0.tokens`).
Unknown keys are errors (with a did-you-mean suggestion), and every error names the file, line and
key. The resolved config, every default filled in, is written to the run directory as `config.yaml`.

This page is generated from the code by `scripts/config_reference.py`.
"""


def type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "") for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(type_name(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value!r}`".replace("'", "") if value not in (None, {}, []) else f"`{value}`"


def nested_models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in nested_models(arg)]


def section(model: type[BaseModel], prefix: str, lines: list[str], seen: set[str]) -> None:
    lines += ["", f"## `{prefix or '(top level)'}`", ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    children = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | {description} |")
        for child in nested_models(field.annotation):
            path = f"{prefix}.{key}" if prefix else key
            if typing.get_origin(field.annotation) in (list, dict) or "list" in str(field.annotation):
                path += ".*" if "dict" in str(field.annotation) else ".N"
            kind = child.model_fields.get("kind")
            if kind is not None and typing.get_origin(kind.annotation) is typing.Literal:
                path += f" (kind: {typing.get_args(kind.annotation)[0]})"  # one member of a union by kind
            children.append((child, path))
    for child, path in children:
        if path not in seen:
            seen.add(path)
            section(child, path, lines, seen)


def render() -> str:
    lines = [HEADER.rstrip()]
    section(cfg.RunConfig, "", lines, set())
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/config_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
