"""The ``@pytest.mark.checklist("3.2.7", ...)`` marker: reading, validating and selecting by it."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_vcci.checklist.catalog import Catalog, UnknownItemError

MARKER = "checklist"
MARKER_HELP = (
    "checklist(*ids): the GL-VCCI checklist item(s) this test checks, e.g. "
    'checklist("3.2.4"); unknown IDs are collection errors'
)


def marker_ids(item: pytest.Item) -> list[str]:
    """All checklist IDs on an item (function, class, module and parametrize marks), in order."""
    ids: list[str] = []
    for mark in item.iter_markers(MARKER):
        for value in mark.args:
            if value not in ids:
                ids.append(value)
    return ids


def marker_problem(item: pytest.Item, catalog: Catalog) -> str | None:
    """Why the item's checklist marks are invalid, or None."""
    for mark in item.iter_markers(MARKER):
        if not mark.args:
            return '@pytest.mark.checklist needs at least one item ID, e.g. checklist("3.2.4")'
        if mark.kwargs:
            return f"@pytest.mark.checklist takes IDs only, not {', '.join(mark.kwargs)}="
        for value in mark.args:
            if not isinstance(value, str):
                return f'checklist ID must be a string like "3.2.4", got {value!r}'
            try:
                catalog.get(value)
            except UnknownItemError as exc:
                return str(exc)
    return None


def where(item: pytest.Item) -> str:
    """``path:line`` of the test's definition, for errors a person can jump to."""
    obj = getattr(item, "obj", None)
    try:
        path = Path(inspect.getsourcefile(obj) or item.path)  # type: ignore[arg-type]
        line = inspect.getsourcelines(obj)[1]  # type: ignore[arg-type]
    except (TypeError, OSError):
        path, line = Path(item.path), (item.location[1] or 0) + 1
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    return f"{shown}:{line}"


def parse_patterns(values: Iterable[str]) -> list[str]:
    """``["3.2.*,1.1.1", "4.*"]`` -> ``["3.2.*", "1.1.1", "4.*"]``."""
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def parse_sections(values: Iterable[str]) -> list[int]:
    """``["3", "4,5"]`` -> ``[3, 4, 5]``; anything but whole numbers is a usage error."""
    numbers = []
    for value in values:
        for part in (p.strip() for p in str(value).split(",")):
            if not part.isdigit():
                raise pytest.UsageError(
                    f"--checklist-section: {part!r} is not a section number (e.g. 3)"
                )
            numbers.append(int(part))
    return numbers


def selected_ids(catalog: Catalog, patterns: list[str], sections: list[int]) -> set[str]:
    """The catalog IDs chosen by --checklist patterns and --checklist-section numbers."""
    chosen: set[str] = set()
    for pattern in patterns:
        try:
            matched = catalog.match(pattern)
        except ValueError as exc:
            raise pytest.UsageError(f"--checklist: {exc}") from None
        if not matched:
            raise pytest.UsageError(f"--checklist: {pattern!r} matches no checklist item")
        chosen.update(item.id for item in matched)
    for number in sections:
        try:
            chosen.update(item.id for item in catalog.section(number).items)
        except KeyError as exc:
            raise pytest.UsageError(f"--checklist-section: {exc.args[0]}") from None
    return chosen
