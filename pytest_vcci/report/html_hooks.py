"""pytest-html hooks: a checklist column and each test's observations as an extra.

Registered only when pytest-html is active, so its hook specs exist.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pytest


def pytest_html_report_title(report: Any) -> None:
    report.title = "GL-VCCI readiness: test report"


def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="checklist">Checklist</th>')


def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    ids = (getattr(report, "vcci", None) or {}).get("checklist", [])
    cells.insert(1, f'<td class="col-checklist">{escape(", ".join(ids))}</td>')


def observations_extra(payload: dict[str, Any]) -> dict[str, Any]:
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            "pass" if o.get("passed") else "FAIL" if o.get("passed") is False else "info",
            escape(o.get("where") or ""),
            escape(str(o["name"])),
            escape(str(o["observed"]))[:500],
            escape(str(o.get("expected")))[:500],
        )
        for o in payload.get("observations", [])
    )
    content = (
        "<table><tr><th></th><th>where</th><th>criterion</th><th>observed</th>"
        f"<th>expected</th></tr>{rows}</table>"
    )
    return {
        "name": "observations",
        "format_type": "html",
        "content": content,
        "mime_type": None,
        "extension": None,
    }
