"""The package's import graph runs one way: no module imports, even inside a function, a
module that imports it back. Imports under ``if TYPE_CHECKING:`` never run and do not count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest_vcci

PACKAGE = Path(pytest_vcci.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except what sits under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports at run time, function-level imports included."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "pytest_vcci":
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_function_level_loop() -> None:
    graph = import_graph()
    graph["pytest_vcci.context"] = {*graph["pytest_vcci.context"], "pytest_vcci.plugin"}
    assert any("pytest_vcci.context" in c and "pytest_vcci.plugin" in c for c in cycles(graph))


def test_function_level_imports_are_seen(tmp_path: Path) -> None:
    graph = import_graph()
    # plugin.py imports activation only inside functions (pydantic stays out of inert runs).
    assert "pytest_vcci.activation" in graph["pytest_vcci.plugin"]
    # ... and context.py imports targets.base only under TYPE_CHECKING and in a method.
    assert "pytest_vcci.targets.base" in graph["pytest_vcci.context"]


def test_stash_keys_live_in_context_only() -> None:
    """Every StashKey of the plugin is defined in context.py (the module at the bottom)."""
    defined = {
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if "StashKey[" in path.read_text(encoding="utf-8")
    }
    assert defined == {"pytest_vcci.context"}


def test_context_imports_nothing_above_it() -> None:
    above = {"pytest_vcci.plugin", "pytest_vcci.activation", "pytest_vcci.session"}
    assert not import_graph()["pytest_vcci.context"] & above
