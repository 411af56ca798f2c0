"""The one result model every renderer reads: plain, JSON-serialisable dicts.

A test's outcome comes from its reports (setup / call / teardown). An item's status is the worst
of its tests' outcomes; an item no test covers is ``not_covered``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_vcci.checklist import Automation, Catalog, Item

# Worst first. ``attested`` and ``waived`` are as good as ``passed`` for the gate.
STATUS_ORDER = ("error", "failed", "skipped", "waived", "passed", "attested")
STATUSES = (*STATUS_ORDER, "not_covered")
BAD = ("error", "failed")


@dataclass
class TestRecord:
    """Everything the controller learns about one test from its reports."""

    nodeid: str
    checklist: list[str] = field(default_factory=list)
    outcome: str = "passed"  # passed | failed | error | skipped
    duration: float = 0.0
    message: str = ""
    observations: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    attestations: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = field(default=False, repr=False)  # its call ran, or setup did not pass
    intrusive: bool = False  # marked intrusive: sends load or writes test data

    def add(self, report: pytest.TestReport) -> None:
        self.duration += report.duration
        if report.when == "call" or not report.passed:
            self.finished = True
        payload: Mapping[str, Any] = getattr(report, "vcci", None) or {}
        if payload.get("checklist"):
            self.checklist = list(payload["checklist"])
        self.intrusive = self.intrusive or bool(payload.get("intrusive"))
        self.observations.extend(payload.get("observations", []))
        self.attachments.extend(payload.get("attachments", []))
        self.attestations.extend(payload.get("attestations", []))
        outcome = _phase_outcome(report)
        if outcome and STATUS_ORDER.index(outcome) < STATUS_ORDER.index(self.outcome):
            self.outcome = outcome
            self.message = payload.get("message") or _message(report)

    def interrupted(self) -> None:
        """The run stopped during this test: only its setup reported, so it did not pass."""
        if not self.finished and self.outcome == "passed":
            self.outcome = "error"
            self.message = "the run was interrupted before this test finished"

    def status_for(self, item: Item) -> str:
        """What this test says about one item (its own attestation record makes ``attested``)."""
        if self.outcome != "passed":
            return self.outcome
        # A record attests the item it names, not every item the test is marked with.
        if any(record.get("item") == item.id for record in self.attestations):
            return "attested"
        if item.automation is Automation.ATTESTATION:
            # A human fact is never satisfied by a test that just passes.
            return "failed"
        return "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "checklist": self.checklist,
            "outcome": self.outcome,
            "duration": round(self.duration, 4),
            "message": self.message,
            "observations": self.observations,
            "attachments": self.attachments,
            "attestations": self.attestations,
            "intrusive": self.intrusive,
        }


def _phase_outcome(report: pytest.TestReport) -> str | None:
    if hasattr(report, "wasxfail"):
        return "skipped" if report.skipped else "passed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return None


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return report.longreprtext.strip().splitlines()[-1] if report.longreprtext.strip() else ""


def item_status(item: Item, tests: Iterable[TestRecord]) -> str:
    tests = list(tests)
    # An intrusive check left out of a read-only run says nothing about the item when other
    # checks cover it; alone, it leaves the item skipped (not checked), which is the truth.
    ran = [t for t in tests if not (t.intrusive and t.outcome == "skipped")]
    statuses = [t.status_for(item) for t in (ran or tests)]
    if not statuses:
        return "not_covered"
    worst = min(statuses, key=STATUS_ORDER.index)
    if worst in ("passed", "attested"):
        return "passed" if "passed" in statuses else "attested"
    return worst


def item_message(item: Item, tests: list[TestRecord], status: str) -> str:
    if status == "not_covered":
        return "no test covers this item in this run"
    for test in tests:
        if test.status_for(item) == status:
            if status == "failed" and test.outcome == "passed":
                return "attestation item passed without an attestation record"
            return test.message
    return ""


def build_items(catalog: Catalog, tests: Mapping[str, TestRecord]) -> list[dict[str, Any]]:
    by_item: dict[str, list[TestRecord]] = {item.id: [] for item in catalog.items}
    for test in tests.values():
        for item_id in test.checklist:
            if item_id in by_item:
                by_item[item_id].append(test)
    items = []
    for item in catalog.items:
        mine = by_item[item.id]
        status = item_status(item, mine)
        items.append(
            {
                "id": item.id,
                "section": item.section,
                "section_name": item.section_name,
                "subsection": item.subsection,
                "title": item.title,
                "criteria": list(item.criteria),
                "severity": item.severity.value,
                "automation": item.automation.value,
                "status": status,
                "message": item_message(item, mine, status),
                "tests": [t.nodeid for t in mine],
            }
        )
    return items


def section_table(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per section: name and count of items by status."""
    rows: dict[int, dict[str, Any]] = {}
    for item in items:
        row = rows.setdefault(
            item["section"],
            {
                "section": item["section"],
                "name": item["section_name"],
                **dict.fromkeys(STATUSES, 0),
            },
        )
        row[item["status"]] += 1
    return [rows[k] for k in sorted(rows)]


def headline(message: str, width: int = 240) -> str:
    """The line a reader in a hurry needs: "4 criteria failed:" is followed by the first one."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text if len(text) <= width else text[: width - 3] + "..."
