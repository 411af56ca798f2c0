"""pytest-xdist: a parallel run produces the same evidence as a serial one."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_support import MINIMAL_ENV, files_under, output, read_evidence, write_env

FILES = {
    "test_xd_deploy": """
import pytest

pytestmark = pytest.mark.checklist("3.1.1")

@pytest.mark.checklist("3.2.4")
def test_replicas(evidence):
    evidence.check("replicas", 3, 3, True, where="deployment vcci/backend")
    evidence.record("image", "vcci-backend:2.0.0")
    evidence.attach("spec", {"replicas": 3})

@pytest.mark.checklist("3.2.5", "3.2.6")
def test_service(evidence):
    evidence.check("type", "NodePort", "ClusterIP", False, where="service vcci/backend")

@pytest.mark.checklist("3.2.7")
class TestHpa:
    @pytest.mark.parametrize("name", ["backend", "worker", "frontend"])
    def test_min_replicas(self, name, evidence):
        evidence.check("minReplicas", 3, 3, name != "frontend", where=f"hpa vcci/{name}")
""",
    "test_xd_data": """
import pytest

@pytest.mark.checklist("2.1.3")
def test_indexes():
    pytest.skip("no database in CI")

@pytest.fixture
def connection():
    raise ConnectionError("connection refused")

@pytest.mark.checklist("2.2.1")
def test_reference_data(connection):
    pass

@pytest.mark.checklist("2.1.1")
@pytest.mark.xfail(reason="known: encoding check pending", strict=True)
def test_encoding():
    assert False

@pytest.mark.checklist("5.1.1")
@pytest.mark.parametrize("n", range(4))
def test_scrape(n, evidence):
    evidence.record("target", f"pod-{n}", passed=True)
""",
    "test_xd_docs": """
import pytest

@pytest.mark.checklist("10.1.2")
def test_docs_low():
    assert False, "docs missing"

@pytest.mark.checklist("1.1.1")
def test_cluster():
    pass

def test_unmarked():
    pass
""",
}


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how many workers ran: items, their status and their tests."""
    items = {}
    for item in data["items"]:
        tests = sorted(
            (
                test["nodeid"],
                test["outcome"],
                test["message"],
                tuple(test["checklist"]),
                tuple(
                    tuple(sorted((k, repr(v)) for k, v in o.items() if k != "at"))
                    for o in test["observations"]
                ),
                repr(test["attachments"]),
            )
            for test in item["tests"]
        )
        items[item["id"]] = (item["status"], tests)
    run = data["run"]
    return {
        "items": items,
        "sections": data["sections"],
        "verdict": run["verdict"],
        "exit_status": run["exit_status"],
        "blocking": sorted(run["blocking"]),
        "warnings": sorted(run["warnings"]),
    }


def run_both(pytester: pytest.Pytester, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pytester.makepyfile(**FILES)
    serial = pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "serial", *args)
    parallel = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--vcci-report-dir", "parallel", "-n", "2", *args
    )
    assert serial.ret == parallel.ret == 1, output(parallel)
    parallel.stdout.fnmatch_lines(["2 workers [[]* items[]]"])
    serial_data = read_evidence(pytester, "serial")
    parallel_data = read_evidence(pytester, "parallel")
    assert (serial_data["run"]["workers"], parallel_data["run"]["workers"]) == (0, 2)
    names = {p.name for p in files_under(pytester.path / "parallel")}
    assert {"evidence.json", "report.html", "checklist.html", "junit.xml"} <= names
    assert not [n for n in names if n.endswith(".partial")]
    return serial_data, parallel_data


def test_xdist_evidence_matches_serial_with_options(pytester: pytest.Pytester) -> None:
    write_env(pytester, MINIMAL_ENV)
    serial, parallel = run_both(
        pytester, "--vcci-config", "env.toml", "--checklist", "1.*,2.*,3.*,5.*"
    )

    assert normalise(parallel) == normalise(serial)
    assert parallel["run"]["environment"] == "pytester"
    # The selection happened on the workers too: the section-10 test and the unmarked one
    # were deselected, and their items are not covered.
    nodeids = {t["nodeid"] for t in parallel["tests"]}
    assert "test_xd_docs.py::test_docs_low" not in nodeids
    assert "test_xd_docs.py::test_unmarked" not in nodeids
    assert len(nodeids) == 13
    check_statuses(parallel)
    assert parallel["run"]["verdict"] == "blocked"


def test_xdist_evidence_matches_serial_in_late_activation(pytester: pytest.Pytester) -> None:
    """No option names the plugin: the controller learns of checklist tests from reports."""
    serial, parallel = run_both(pytester)

    assert normalise(parallel) == normalise(serial)
    assert len(parallel["tests"]) == 15
    assert {t["nodeid"] for t in parallel["tests"]} == {t["nodeid"] for t in serial["tests"]}
    check_statuses(parallel)
    items = {i["id"]: i["status"] for i in parallel["items"]}
    assert items["10.1.2"] == "failed"
    assert parallel["run"]["warnings"] == ["1.1.1", "2.1.1", "2.1.3", "3.2.4", "5.1.1", "10.1.2"]


def check_statuses(data: dict[str, Any]) -> None:
    items = {i["id"]: i for i in data["items"]}
    assert {
        i: items[i]["status"]
        for i in ("3.2.4", "3.2.5", "3.2.7", "2.1.3", "2.2.1", "2.1.1", "5.1.1", "1.1.1")
    } == {
        # Passing tests the catalog does not name decide no criterion: those items are undecided.
        "3.2.4": "skipped",
        "3.2.5": "failed",
        "3.2.7": "failed",
        "2.1.3": "skipped",
        "2.2.1": "error",
        "2.1.1": "skipped",
        "5.1.1": "skipped",
        "1.1.1": "skipped",
    }
    # The module-level mark reaches every test of the module, on every worker.
    assert len(items["3.1.1"]["tests"]) == 5
    assert len(items["5.1.1"]["tests"]) == 4
    hpa = {t["nodeid"]: t for t in items["3.2.7"]["tests"]}
    frontend = hpa["test_xd_deploy.py::TestHpa::test_min_replicas[frontend]"]
    assert frontend["message"] == "hpa vcci/frontend: minReplicas: observed 3, expected 3"
    assert [o["where"] for o in frontend["observations"]] == ["hpa vcci/frontend"]


def test_xdist_without_checklist_tests_is_inert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n\ndef test_b():\n    assert False\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")

    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    assert "GL-VCCI" not in output(result)
    assert not (pytester.path / "reports").exists()
