"""The one result model every renderer reads: plain, JSON-serialisable dicts.

A test's outcome comes from its reports (setup / call / teardown). Each criterion of an item is
decided by the checks the catalog names for it (or by an attestation record): ``failed`` or
``error`` when one of them did, ``passed`` when all of them ran to a pass that decided
something, ``undecided`` otherwise (skipped, deselected, absent, left out, or passed without
deciding anything). An item is ``failed``/``error`` when any of its tests is, ``skipped`` when a
criterion is undecided (``failed`` under --vcci-strict), ``passed``/``attested`` when every
criterion is decided and held; an item no test covers is ``not_covered``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_vcci.checklist import Automation, Catalog, CheckRef, Criterion, Item
from pytest_vcci.evidence.recorder import UNDECIDED as UNDECIDED_PREFIX

# Worst first. ``attested`` and ``waived`` are as good as ``passed`` for the gate.
STATUS_ORDER = ("error", "failed", "skipped", "waived", "passed", "attested")
STATUSES = (*STATUS_ORDER, "not_covered")
BAD = ("error", "failed")
#: What a criterion can be: decided and held, decided and not, or not decided.
CRITERION_STATUSES = ("error", "failed", "undecided", "passed", "attested", "not_automatable")


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
    smoke: dict[str, str] | None = None  # a quick-validation check: {category, check}

    def add(self, report: pytest.TestReport) -> None:
        self.duration += report.duration
        if report.when == "call" or not report.passed:
            self.finished = True
        payload: Mapping[str, Any] = getattr(report, "vcci", None) or {}
        if payload.get("checklist"):
            self.checklist = list(payload["checklist"])
        self.intrusive = self.intrusive or bool(payload.get("intrusive"))
        if payload.get("smoke"):
            self.smoke = dict(payload["smoke"])
        self.observations.extend(payload.get("observations", []))
        self.attachments.extend(payload.get("attachments", []))
        self.attestations.extend(payload.get("attestations", []))
        outcome = _phase_outcome(report)
        if outcome and STATUS_ORDER.index(outcome) < STATUS_ORDER.index(self.outcome):
            self.outcome = outcome
            self.message = payload.get("message") or _message(report)

    @property
    def decided(self) -> bool:
        """True when the test recorded a verdict (a check, a requirement or an attestation):
        a test that passed without one decided nothing."""
        return bool(self.attestations) or any(
            o.get("passed") is not None for o in self.observations
        )

    @property
    def function(self) -> str:
        """The test function as the catalog names it: ``test_x`` or ``TestClass::test_x``."""
        return _split_nodeid(self.nodeid)[0]

    @property
    def param(self) -> str | None:
        """The parametrized instance (``backend`` in ``test_x[backend]``), or None."""
        return _split_nodeid(self.nodeid)[1]

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
        smoke = {"smoke": self.smoke} if self.smoke else {}
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
            "decided": self.decided,
            **smoke,
        }


def _split_nodeid(nodeid: str) -> tuple[str, str | None]:
    """``suites/x.py::TestA::test_b[p]`` -> (``TestA::test_b``, ``p``)."""
    name = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    if "[" in name and name.endswith("]"):
        name, param = name.split("[", 1)
        return name, param[:-1]
    return name, None


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


def item_status(item: Item, tests: Iterable[TestRecord], *, strict: bool = False) -> str:
    """The item's status from its tests (see the module docstring)."""
    tests = list(tests)
    return _judge(item, tests, judge_criteria(item, tests), strict)[0]


def item_message(item: Item, tests: list[TestRecord], status: str) -> str:
    """The message of the test that set the item's status (failures, errors, attestations)."""
    if status == "not_covered":
        return "no test covers this item in this run"
    for test in tests:
        if test.status_for(item) == status:
            if status == "failed" and test.outcome == "passed":
                return "attestation item passed without an attestation record"
            return test.message
    return ""


@dataclass
class CriterionResult:
    """How one criterion came out in this run."""

    text: str
    decided_by: str  # checks | attestation | not_automatable | none
    checks: list[str]
    status: str  # one of CRITERION_STATUSES
    reason: str = ""
    from_title: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "decided_by": self.decided_by,
            "checks": self.checks,
            "status": self.status,
            "reason": self.reason,
        }
        if self.from_title:
            data["from_title"] = True
        return data


def judge_criteria(item: Item, tests: list[TestRecord]) -> list[CriterionResult]:
    """Every criterion of ``item`` (title requirements first) as decided by ``tests``."""
    return [_judge_criterion(item, criterion, tests) for criterion in item.criterion_specs]


def _judge_criterion(item: Item, criterion: Criterion, tests: list[TestRecord]) -> CriterionResult:
    result = CriterionResult(
        criterion.text,
        criterion.decided_by,
        criterion.check_names,
        "undecided",
        from_title=criterion.from_title,
    )
    if criterion.not_automatable is not None:
        result.status, result.reason = "not_automatable", criterion.not_automatable
        return result
    entries = [_judge_entry(entry, tests) for entry in criterion.checks]
    bad = [e for e in entries if e[0] in BAD]
    if bad:
        result.status, result.reason = min(bad, key=lambda e: STATUS_ORDER.index(e[0]))
    elif criterion.attestation is not None:
        if any(r.get("item") == item.id for t in tests for r in t.attestations):
            result.status, result.reason = "attested", criterion.attestation
        else:
            why = next((reason for status, reason in entries if status != "passed"), "")
            result.reason = why or f"no attestation record for {item.id} in this run"
    elif not entries:
        result.reason = criterion.note or "no check decides it yet"
    elif all(status == "passed" for status, _ in entries):
        result.status = "passed"
    else:
        result.reason = next(reason for status, reason in entries if status != "passed")
    return result


def _judge_entry(entry: tuple[CheckRef, ...], tests: list[TestRecord]) -> tuple[str, str]:
    """(status, reason) of one entry: a check, or alternatives any one of which decides it."""
    judged = [_judge_check(ref, tests) for ref in entry]
    bad = [j for j in judged if j[0] in BAD]
    if bad:
        return min(bad, key=lambda j: STATUS_ORDER.index(j[0]))
    if any(status == "passed" for status, _ in judged):
        return "passed", ""
    return "undecided", " / ".join(reason for _, reason in judged)


def _judge_check(ref: CheckRef, tests: list[TestRecord]) -> tuple[str, str]:
    """(status, reason) of one named check over all its instances in the run."""
    instances = [t for t in tests if ref.matches(t.function, t.param)]
    if not instances:
        # The named instance is missing: its function's skipped instances say why (an [expect]
        # list that is not set), or the instances that did run show what the run held.
        siblings = [t for t in tests if t.function == ref.function]
        skipped = [t for t in siblings if t.outcome == "skipped"]
        if skipped:
            return "undecided", _skip_reason(skipped[0])
        if siblings:
            held = ", ".join(str(t.param) for t in siblings)
            return "undecided", f"{ref} did not run (this run has {ref.function}[{held}])"
        return "undecided", f"{ref} did not run"
    bad = [t for t in instances if t.outcome in BAD]
    if bad:
        worst = min(bad, key=lambda t: STATUS_ORDER.index(t.outcome))
        return worst.outcome, worst.message
    for test in instances:
        if test.outcome != "passed":
            return "undecided", _skip_reason(test)
        if not test.decided:
            name = test.nodeid.split("::", 1)[-1]
            return "undecided", f"{name} passed without deciding anything (no evidence.check)"
    return "passed", ""


def _skip_reason(test: TestRecord) -> str:
    return test.message.removeprefix(UNDECIDED_PREFIX) or "skipped"


def _judge(
    item: Item, tests: list[TestRecord], criteria: list[CriterionResult], strict: bool
) -> tuple[str, str]:
    """(status, message) of the item; the message names the undecided criteria."""
    if not tests:
        return "not_covered", "no test covers this item in this run"
    statuses = [t.status_for(item) for t in tests]
    bad = [s for s in statuses if s in BAD]
    if bad:
        worst = min(bad, key=STATUS_ORDER.index)
        return worst, item_message(item, tests, worst)
    undecided = [c for c in criteria if c.status == "undecided"]
    if undecided:
        return ("failed" if strict else "skipped"), undecided_message(undecided, strict)
    if any(c.status == "passed" for c in criteria):
        return "passed", ""
    if any(c.status == "attested" for c in criteria):
        return "attested", ""
    return "skipped", "no criterion of this item can be decided by a check"


def undecided_message(undecided: list[CriterionResult], strict: bool = False) -> str:
    """``undecided: <criterion>: <why>``, or a list when several are undecided."""
    suffix = " (--vcci-strict makes undecided a failure)" if strict else ""
    if len(undecided) == 1:
        return f"{UNDECIDED_PREFIX}{undecided[0].text}: {undecided[0].reason}{suffix}"
    lines = [f"{len(undecided)} criteria undecided{suffix}:"]
    lines.extend(f"- {c.text}: {c.reason}" for c in undecided)
    return "\n".join(lines)


def build_items(
    catalog: Catalog, tests: Mapping[str, TestRecord], *, strict: bool = False
) -> list[dict[str, Any]]:
    by_item: dict[str, list[TestRecord]] = {item.id: [] for item in catalog.items}
    for test in tests.values():
        for item_id in test.checklist:
            if item_id in by_item:
                by_item[item_id].append(test)
    items = []
    for item in catalog.items:
        mine = by_item[item.id]
        criteria = judge_criteria(item, mine)
        status, message = _judge(item, mine, criteria, strict)
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
                "controls": item.controls.to_dict(),
                "status": status,
                "message": message,
                "tests": [t.nodeid for t in mine],
                "criteria_status": [c.to_dict() for c in criteria],
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
