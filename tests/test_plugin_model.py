"""The result model: test outcomes from reports, item statuses from tests."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_vcci.checklist import load_catalog
from pytest_vcci.report.model import TestRecord as Record  # not collected as a test class
from pytest_vcci.report.model import build_items, item_status, section_table

NODEID = "suites/test_k8s.py::test_replicas"


def report(
    when: str, outcome: str, *, ids: tuple[str, ...] = ("3.2.4",), **payload: Any
) -> pytest.TestReport:
    longrepr: Any = None
    if outcome == "skipped":
        longrepr = ("suites/test_k8s.py", 3, "Skipped: cluster not configured")
    elif outcome == "failed":
        longrepr = "AssertionError: replicas 2 < 3"
    rep = pytest.TestReport(
        NODEID,
        ("suites/test_k8s.py", 2, "test_replicas"),
        {},
        outcome,
        longrepr,
        when,
        duration=0.25,
    )
    rep.vcci = {"checklist": list(ids), "message": payload.pop("message", ""), **payload}  # type: ignore[attr-defined]
    return rep


def record(*reports: pytest.TestReport) -> Record:
    test = Record(NODEID)
    for rep in reports:
        test.add(rep)
    return test


def test_passing_test() -> None:
    obs = {"name": "replicas", "observed": 3, "expected": 3, "passed": True}
    test = record(
        report("setup", "passed"),
        report("call", "passed", observations=[obs]),
        report("teardown", "passed"),
    )
    assert test.to_dict() == {
        "nodeid": NODEID,
        "checklist": ["3.2.4"],
        "outcome": "passed",
        "duration": 0.75,
        "message": "",
        "observations": [obs],
        "attachments": [],
        "attestations": [],
        "intrusive": False,
        "decided": True,
    }


def test_failure_in_call_and_error_in_teardown() -> None:
    failed = record(
        report("setup", "passed"),
        report("call", "failed", message="replicas 2 < 3"),
        report("teardown", "passed"),
    )
    assert (failed.outcome, failed.message) == ("failed", "replicas 2 < 3")

    errored = record(
        report("setup", "passed"),
        report("call", "failed", message="replicas 2 < 3"),
        report("teardown", "failed", message="cleanup broke"),
    )
    # error is worse than failed; the message follows the worst outcome
    assert (errored.outcome, errored.message) == ("error", "cleanup broke")


def test_skip_in_setup_uses_the_reason() -> None:
    test = record(report("setup", "skipped"), report("teardown", "passed"))
    assert (test.outcome, test.message) == ("skipped", "cluster not configured")


def test_interrupted_test_does_not_pass() -> None:
    running = record(report("setup", "passed"))
    running.interrupted()
    assert (running.outcome, running.message) == (
        "error",
        "the run was interrupted before this test finished",
    )

    done = record(report("setup", "passed"), report("call", "passed"))
    done.interrupted()
    assert done.outcome == "passed"

    skipped = record(report("setup", "skipped"))
    skipped.interrupted()
    assert skipped.outcome == "skipped"


def test_attestation_item_needs_a_record() -> None:
    catalog = load_catalog()
    training = catalog.get("10.2.1")
    assert training.automation.value == "attestation"
    plain = record(report("call", "passed", ids=("10.2.1",)))
    assert plain.status_for(training) == "failed"
    attested = record(report("call", "passed", ids=("10.2.1",), attestations=[{"item": "10.2.1"}]))
    assert attested.status_for(training) == "attested"
    # A record attests only the item it names, not the other items of the same test.
    assert attested.status_for(catalog.get("3.2.4")) == "passed"
    assert attested.status_for(catalog.get("10.2.2")) == "failed"


OBSERVED = [{"name": "replicas", "observed": 3, "expected": 3, "passed": True}]
CHECKS_3_2_4 = [
    "suites/test_03.py::test_deployment_replicas_available[backend]",
    "suites/test_03.py::test_deployment_replicas_available[frontend]",
    "suites/test_03.py::test_deployment_replicas_available[worker]",
    "suites/test_03.py::test_deployment_pods_running_and_ready[backend]",
]


def checks_of_3_2_4(*, last: str = "passed") -> list[Record]:
    """3.2.4's catalog checks, passing (the last one with outcome ``last``)."""
    records = [Record(n, ["3.2.4"], "passed", observations=OBSERVED) for n in CHECKS_3_2_4]
    records[-1].outcome = last
    return records


def test_passed_test_without_a_verdict_decides_nothing() -> None:
    assert Record(NODEID, ["3.2.4"], observations=OBSERVED).decided
    informational = [{"name": "scheme", "observed": "internal", "passed": None}]
    assert not Record(NODEID, ["3.2.4"], observations=informational).decided
    assert Record(NODEID, ["10.2.1"], attestations=[{"item": "10.2.1"}]).decided


def test_item_status_is_the_worst() -> None:
    item = load_catalog().get("3.2.4")

    def with_outcome(outcome: str) -> Record:
        return Record(NODEID, ["3.2.4"], outcome)

    assert item_status(item, []) == "not_covered"
    assert item_status(item, checks_of_3_2_4()) == "passed"
    assert item_status(item, checks_of_3_2_4(last="skipped")) == "skipped"
    assert item_status(item, [*checks_of_3_2_4(), with_outcome("failed")]) == "failed"
    assert item_status(item, [with_outcome("failed"), with_outcome("error")]) == "error"
    # A test the catalog does not name can fail the item, never pass a criterion.
    assert item_status(item, [with_outcome("passed"), with_outcome("passed")]) == "skipped"


def test_build_items_and_sections() -> None:
    catalog = load_catalog()
    tests = {
        **{r.nodeid: r for r in checks_of_3_2_4()},
        "b": Record("b", ["3.2.5"], "failed", message="NodePort"),
        "c": Record("c", ["99.9.9"], "failed"),  # unknown IDs never reach here; ignored
    }
    items = {i["id"]: i for i in build_items(catalog, tests)}
    assert len(items) == 92
    assert (items["3.2.4"]["status"], items["3.2.4"]["tests"]) == ("passed", CHECKS_3_2_4)
    assert (items["3.2.5"]["status"], items["3.2.5"]["message"]) == ("failed", "NodePort")
    assert items["3.2.6"]["message"] == "no test covers this item in this run"
    sections = {row["section"]: row for row in section_table(list(items.values()))}
    assert (sections[3]["passed"], sections[3]["failed"], sections[3]["not_covered"]) == (1, 1, 10)
    assert sum(row["not_covered"] for row in sections.values()) == 90
