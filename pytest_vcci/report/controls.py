"""Per framework: each control, the items that support it, and a status derived from theirs.

A control's status is decided by the first rule that applies, and the result says which:
1. ``failed`` when any of its items failed or erred;
2. ``not_assessed`` when none of its items was checked (all skipped or not covered);
3. ``passed`` when every item passed, was attested or was waived (waivers are named);
4. ``partly_assessed`` otherwise: nothing failed, but some items were not checked.

Plain JSON types only: this is part of the result model every renderer reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pytest_vcci.checklist.controls import FRAMEWORKS, ControlMapping

#: Worst first, the order of the pages' summaries.
CONTROL_STATUSES = ("failed", "partly_assessed", "not_assessed", "passed")
RULES = {
    "failed": "a control fails when any of its items failed or erred",
    "not_assessed": "a control is not assessed when none of its items was checked",
    "passed": "a control passes only when every item passed, was attested or was waived",
    "partly_assessed": (
        "a control is partly assessed when none of its items failed but some were not checked"
    ),
}
_BAD = ("failed", "error")
_UNCHECKED = ("skipped", "not_covered")


def page_name(framework: str) -> str:
    """The report file of a framework: ``controls-soc2.html``."""
    return f"controls-{framework}.html"


def build_controls(items: list[dict[str, Any]], mapping: ControlMapping) -> dict[str, Any]:
    """``{framework: {name, title, page, counts, controls: [...], not_applicable: [...]}}``.

    A control names its items by ID (``items``); their titles and statuses are in the result's
    items, so evidence.json does not repeat them for every control.
    """
    by_id = {item["id"]: item for item in items}
    return {fw: _framework(fw, by_id, mapping) for fw in FRAMEWORKS}


def _framework(
    framework: str, items: dict[str, dict[str, Any]], mapping: ControlMapping
) -> dict[str, Any]:
    info = mapping.frameworks[framework]
    controls = []
    for control in mapping.controls(framework):
        mine = [items[i] for i in mapping.items_of(framework, control.id) if i in items]
        status, rule = control_status(mine)
        controls.append(
            {
                "id": control.id,
                "description": control.description,
                "status": status,
                "rule": rule,
                "items": [item["id"] for item in mine],
            }
        )
    not_applicable = [
        {"id": item["id"], "reason": mapping.for_item(item["id"]).not_applicable[framework]}
        for item in items.values()
        if framework in mapping.for_item(item["id"]).not_applicable
    ]
    counts = Counter(c["status"] for c in controls)
    return {
        "framework": framework,
        "name": info.name,
        "title": info.title,
        "page": page_name(framework),
        "counts": {status: counts[status] for status in CONTROL_STATUSES},
        "controls": controls,
        "not_applicable": not_applicable,
    }


def control_status(items: list[dict[str, Any]]) -> tuple[str, str]:
    """(status, the sentence saying which rule decided it and on which items)."""
    statuses = {item["id"]: item["status"] for item in items}
    total = len(statuses)
    bad = [f"{i} {s}" for i, s in statuses.items() if s in _BAD]
    unchecked = [f"{i} {s.replace('_', ' ')}" for i, s in statuses.items() if s in _UNCHECKED]
    if bad:
        return "failed", f"Failed: {_join(bad)} ({RULES['failed']})."
    if len(unchecked) == total:
        what = (
            "no item maps to it"
            if not total
            else "its one item was not checked"
            if total == 1
            else f"none of its {total} items was checked"
        )
        return "not_assessed", f"Not assessed: {what} ({_join(unchecked) or 'no items'})."
    if not unchecked:
        waived = [i for i, s in statuses.items() if s == "waived"]
        every = "its one item" if total == 1 else f"all {total} items"
        text = f"Passed: {every} passed or {'was' if total == 1 else 'were'} attested"
        if waived:
            text = (
                f"Passed: {every} passed, {'was' if total == 1 else 'were'} attested or waived; "
                f"waived (a failure accepted, not fixed): {', '.join(waived)}"
            )
        return "passed", f"{text} ({RULES['passed']})."
    good = total - len(unchecked)
    return (
        "partly_assessed",
        f"Partly assessed: {good} of {total} items checked without a failure; not checked: "
        f"{_join(unchecked)} ({RULES['partly_assessed']}).",
    )


def _join(parts: list[str]) -> str:
    return ", ".join(parts)
