"""How many failing variants each automated and hybrid item has: tests that build a target
violating one of the item's criteria and assert that the item fails (tests/suites/test_broken_*.py:
a sandbox or one of its parts with a defect, the suites run against it).

Read from the tests with ``ast`` (nothing runs). In each test function, an item counts when
the test asserts that it fails through the broken-variant harness or a helper like it:

- ``assert_only(broken, good, "3.2.4", ...)`` and ``assert_fails(broken, good, {"3.2.4": [...],
  "3.2.9": [...]})`` (tests/suites/variants.py; one broken run may count for several items);
- ``only_broken(good, broken, "10.1.4")`` and ``newly_failing(good, broken) == {"1.1.3"}``;
- ``<...>["1.2.1"]["status"] == "failed"`` or ``statuses["1.2.1"] == "failed"`` (a deliberate
  finding of the sandbox's good run);

an ID given through ``@pytest.mark.parametrize`` counts once per case that carries it.

    .venv/bin/python scripts/variants_table.py          # per item, the total, the items at 0
    .venv/bin/python scripts/variants_table.py --json   # the same as JSON
    .venv/bin/python scripts/variants_table.py --check  # exit 1 while an item is at 0
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from pytest_vcci.checklist import Automation, is_well_formed, load_catalog

ROOT = Path(__file__).resolve().parents[1]
#: Harness calls whose checklist-ID arguments (or dict keys) are items asserted to fail.
FAILING = ("assert_only", "assert_fails", "only_broken")
#: Harness calls compared with the set of items that newly fail.
NEWLY_FAILING = ("newly_failing",)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _ids(node: ast.AST) -> list[str]:
    """Checklist IDs written as string literals anywhere in ``node``."""
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and is_well_formed(n.value)
    ]


def _parametrized(function: ast.FunctionDef) -> dict[str, list[str | None]]:
    """{argname: [the ID of each case, or None]} from @pytest.mark.parametrize decorators."""
    found: dict[str, list[str | None]] = {}
    for decorator in function.decorator_list:
        if not (isinstance(decorator, ast.Call) and _name(decorator.func) == "parametrize"):
            continue
        if len(decorator.args) < 2 or not isinstance(decorator.args[0], ast.Constant | ast.Tuple):
            continue
        first = decorator.args[0]
        names = (
            [n.strip() for n in str(first.value).split(",")]
            if isinstance(first, ast.Constant)
            else [str(e.value) for e in first.elts if isinstance(e, ast.Constant)]
        )
        cases = (
            decorator.args[1].elts if isinstance(decorator.args[1], ast.List | ast.Tuple) else []
        )
        for position, argname in enumerate(names):
            found[argname] = [_case_value(case, position, len(names)) for case in cases]
    return found


def _case_value(case: ast.expr, position: int, width: int) -> str | None:
    if isinstance(case, ast.Call) and _name(case.func) == "param":  # pytest.param(...)
        values: list[ast.expr] = list(case.args)
    elif width > 1 and isinstance(case, ast.Tuple | ast.List):
        values = list(case.elts)
    else:
        values = [case]
    value = values[position] if position < len(values) else None
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value if is_well_formed(value.value) else None
    return None


def _failing(function: ast.FunctionDef) -> Iterator[tuple[str, str]]:
    """(item ID, case label) for each item the test asserts fails."""
    params = _parametrized(function)

    def through(node: ast.AST) -> Iterator[tuple[str, str]]:
        yield from ((i, "") for i in _ids(node))
        for name in (n.id for n in ast.walk(node) if isinstance(n, ast.Name)):
            for case, value in enumerate(params.get(name, [])):
                if value is not None:
                    yield value, f"[{case}]"

    for node in ast.walk(function):
        if isinstance(node, ast.Call) and _name(node.func) in FAILING:
            for argument in node.args[2:]:
                if isinstance(argument, ast.Dict):
                    for key in argument.keys:
                        if key is not None:
                            yield from through(key)
                else:
                    yield from through(argument)
        elif isinstance(node, ast.Compare) and len(node.comparators) == 1:
            left, right = node.left, node.comparators[0]
            if isinstance(left, ast.Call) and _name(left.func) in NEWLY_FAILING:
                yield from through(right)
            elif (
                isinstance(node.ops[0], ast.Eq)
                and isinstance(right, ast.Constant)
                and right.value == "failed"
                and isinstance(left, ast.Subscript)
            ):
                yield from through(left)


def failing_variants(tests: Path) -> dict[str, list[str]]:
    """{item: ["file::test[case]", ...]} over every test_broken_*.py under ``tests``."""
    catalog = load_catalog()
    found: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_broken_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test")):
                continue
            for item_id, case in sorted(set(_failing(node))):
                if item_id in catalog:
                    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                    where = f"{shown}::{node.name}{case}"
                    found.setdefault(item_id, []).append(where)
    return found


def table(found: dict[str, list[str]]) -> dict[str, object]:
    catalog = load_catalog()
    rows = [
        {
            "id": item.id,
            "severity": item.severity.value,
            "automation": item.automation.value,
            "variants": len(found.get(item.id, [])),
            "tests": found.get(item.id, []),
        }
        for item in catalog
        if item.automation is not Automation.ATTESTATION
    ]
    return {
        "items": rows,
        "total": sum(r["variants"] for r in rows),  # type: ignore[misc]
        "at_zero": [r["id"] for r in rows if not r["variants"]],
    }


def render(data: dict[str, object]) -> str:
    rows: list[dict[str, object]] = data["items"]  # type: ignore[assignment]
    lines = [f"{'item':<8}{'severity':<10}{'kind':<11}{'variants':>8}  tests"]
    for row in rows:
        tests: list[str] = row["tests"]  # type: ignore[assignment]
        lines.append(
            f"{row['id']:<8}{row['severity']:<10}{row['automation']:<11}{row['variants']:>8}  "
            + (", ".join(tests) if tests else "-")
        )
    zero: list[str] = data["at_zero"]  # type: ignore[assignment]
    covered = len(rows) - len(zero)
    lines += [
        "",
        f"{data['total']} failing variants; {covered} of {len(rows)} automated and hybrid "
        f"items have at least one, {len(zero)} have none:",
        "  " + ", ".join(zero),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    data = table(failing_variants(ROOT / "tests" / "suites"))
    print(json.dumps(data, indent=2) if "--json" in argv else render(data))
    return 1 if "--check" in argv and data["at_zero"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
