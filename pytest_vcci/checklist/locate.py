"""Finding a checklist item's tests in the source, without collecting or running anything:
``vcci checklist --tests 3.2.9`` lists each test function and its ``file:line``.

Reads test modules with ``ast``: a ``@pytest.mark.checklist(...)`` on a function, on its class,
or a module-level ``pytestmark``. Parametrized tests are listed once, by function.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestLocation:
    item_ids: tuple[str, ...]
    path: Path
    line: int
    name: str  # "test_x" or "TestClass::test_x"
    doc: str

    def where(self, base: Path | None = None) -> str:
        path = self.path
        if base is not None and path.is_relative_to(base):
            path = path.relative_to(base)
        return f"{path}:{self.line}"


def suite_directories() -> list[Path]:
    """Where the readiness suites live: the package ``pytest_vcci.suites`` (in a wheel; an
    editable install maps it to the repository's ``suites/``), else ``suites/`` next to the
    package (a checkout whose editable install predates that mapping)."""
    try:
        spec = importlib.util.find_spec("pytest_vcci.suites")
    except ImportError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return [Path(location).resolve()]
    here = Path(__file__).resolve().parents[2] / "suites"
    return [here] if here.is_dir() else []


def _checklist_ids(decorators: Iterable[ast.expr]) -> list[str]:
    ids: list[str] = []
    for node in decorators:
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "checklist"
            ):
                ids.extend(
                    arg.value
                    for arg in call.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
    return ids


def _module_marks(tree: ast.Module) -> list[str]:
    marks: list[ast.expr] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            marks.append(node.value)
    return _checklist_ids(marks)


def _tests_in(path: Path) -> Iterator[TestLocation]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_ids = _module_marks(tree)

    def functions(body: list[ast.stmt], prefix: str, outer: list[str]) -> Iterator[TestLocation]:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                yield from functions(
                    node.body, f"{node.name}::", outer + _checklist_ids(node.decorator_list)
                )
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                ids = outer + _checklist_ids(node.decorator_list)
                if ids:
                    doc = (ast.get_docstring(node) or "").strip().splitlines()
                    yield TestLocation(
                        tuple(dict.fromkeys(ids)),
                        path,
                        node.lineno,
                        prefix + node.name,
                        doc[0] if doc else "",
                    )

    yield from functions(tree.body, "", module_ids)


def locate_tests(directories: Iterable[Path] | None = None) -> list[TestLocation]:
    """Every checklist-marked test function under the directories (default: the suites)."""
    found: list[TestLocation] = []
    for directory in directories if directories is not None else suite_directories():
        for path in sorted(Path(directory).rglob("test_*.py")):
            found.extend(_tests_in(path))
    return found


def item_tests(item_id: str, directories: Iterable[Path] | None = None) -> list[TestLocation]:
    return [t for t in locate_tests(directories) if item_id in t.item_ids]
