"""The package's import graph reads top-down, with no cycle.

Every `import` of a forgetless module counts, wherever it stands: at the top of a module, inside a
function, or under `if TYPE_CHECKING:`. A module may import modules of its own layer or of a layer
below it; within a layer (a package), the imports form no cycle either. The layers follow the path
of the data: the method layer knows nothing of the trainer, and evaluation and reports never import
the training loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import forgetless

PACKAGE_ROOT = Path(forgetless.__file__).parent

# Lowest first. Each entry names top-level modules or packages of forgetless.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "device", "durable", "file_lock", "console", "recipes"},
    {"config"},
    {"data"},
    {"model"},
    {"distributed"},  # processes, sharded models and their checkpoints
    {"evaluate"},
    {"methods"},
    {"train"},
    {"report"},
    {"weights", "plan"},  # operations on trained weights; mixture planning (runs proxy trainings)
    {"demo", "starter"},
    {"cli", "__main__"},
]


def module_imports(root: Path, package: str) -> dict[str, set[str]]:
    """`{module: modules of the package it imports}` for every module under `root`, the folder of
    `package`. `from a.b import c` counts as importing `a.b.c` when that is a module, else `a.b`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package, *parts])] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == package:
                    found.add(target)
        graph[name] = found
    return graph


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module}: in no layer of LAYERS; add its package to the layer it belongs to")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(module_imports(PACKAGE_ROOT, "forgetless")) == []


def test_no_import_cycle() -> None:
    cycle = find_cycle(module_imports(PACKAGE_ROOT, "forgetless"))
    assert cycle is None, " -> ".join(cycle or [])


def test_methods_evaluation_and_reports_never_import_the_trainer() -> None:
    graph = module_imports(PACKAGE_ROOT, "forgetless")
    offending = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[1:2] in (["methods"], ["evaluate"], ["report"])
        for target in targets
        if target.startswith("forgetless.train")
    ]
    assert offending == []


def test_the_checks_see_type_checking_imports_and_cycles(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "evaluate").mkdir(parents=True)
    (package / "train").mkdir()
    for folder in (package, package / "evaluate", package / "train"):
        (folder / "__init__.py").write_text("")
    (package / "evaluate" / "score.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.train.loop import Run\n"
    )
    (package / "train" / "loop.py").write_text("def f():\n    from pkg.evaluate import score\n")
    graph = module_imports(package, "pkg")
    assert graph["pkg.evaluate.score"] == {"pkg.train.loop"}
    assert graph["pkg.train.loop"] == {"pkg.evaluate.score"}
    assert find_cycle(graph) == ["pkg.evaluate.score", "pkg.train.loop", "pkg.evaluate.score"]
