"""The report directory: evidence.json, report.html, checklist.html, junit.xml."""

from __future__ import annotations

import datetime as dt
import getpass
import re
import socket
import xml.etree.ElementTree as ET

import pytest
from plugin_support import (
    MINIMAL_ENV,
    files_under,
    items_by_id,
    nodeid_map,
    read_evidence,
    write_env,
)

import pytest_vcci
from pytest_vcci.checklist import load_catalog

# test_configmap_deployed_and_valid is the one check the catalog names for all of 3.2.2's
# criteria, so that item passes; tests of other names decide no criterion.
SUITE = """
import pytest

@pytest.mark.checklist("3.2.2")
def test_configmap_deployed_and_valid(evidence):
    evidence.check("replicas", 3, ">= 3", True, where="deployment vcci-staging/backend")
    evidence.record("image", "vcci-backend:2.0.0")
    evidence.attach("deployment", {"kind": "Deployment", "replicas": 3})

@pytest.mark.checklist("3.2.7", "3.2.8")
def test_hpa(evidence):
    evidence.check("minReplicas", 2, 3, False, where="hpa vcci-staging/backend")
    evidence.check("maxReplicas", 20, 20, True, where="hpa vcci-staging/backend")

@pytest.mark.checklist("2.1.3")
def test_indexes():
    pytest.skip("database not configured")

def test_unmarked():
    pass
"""
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATUSES = {"passed", "failed", "error", "skipped", "not_covered", "attested", "waived"}


@pytest.fixture
def run(pytester: pytest.Pytester) -> pytest.RunResult:
    write_env(pytester, MINIMAL_ENV)
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest("--vcci-config", "env.toml", "--vcci-report-dir", "out")


def test_evidence_json_run(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    assert run.ret == 1
    data = read_evidence(pytester, "out")
    assert data["schema"] == "pytest-vcci/evidence/v1"
    info = data["run"]
    assert re.fullmatch(r"[0-9a-f]{12}", info["id"])
    assert info["environment"] == "pytester"
    for key in ("started_at", "finished_at"):
        assert RFC3339_UTC.match(info[key]), info[key]
    started = dt.datetime.fromisoformat(info["started_at"])
    finished = dt.datetime.fromisoformat(info["finished_at"])
    assert started.utcoffset() == dt.timedelta(0)
    assert started <= finished <= dt.datetime.now(dt.UTC)
    assert info["tool"] == {"name": "pytest-vcci", "version": pytest_vcci.__version__}
    assert info["user"] == getpass.getuser()
    assert info["host"] == socket.gethostname()
    assert info["workers"] == 0
    assert info["gate"] == "high"
    assert (info["verdict"], info["exit_status"]) == ("blocked", 1)
    assert set(info["blocking"]) == {"3.2.7", "3.2.8"}
    assert info["warnings"] == ["2.1.3"]


def test_evidence_json_items(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    data = read_evidence(pytester, "out")
    items = data["items"]
    catalog = load_catalog()
    assert [i["id"] for i in items] == list(catalog.ids)
    assert len(items) == 92
    for item in items:
        expected = catalog.get(item["id"])
        assert item["section"] == expected.section
        assert item["title"] == expected.title
        assert item["severity"] == expected.severity.value
        assert item["automation"] == expected.automation.value
        assert item["status"] in STATUSES
        assert isinstance(item["tests"], list)
    by_id = items_by_id(data)
    assert {i: by_id[i]["status"] for i in ("3.2.2", "3.2.7", "3.2.8", "2.1.3", "1.1.1")} == {
        "3.2.2": "passed",
        "3.2.7": "failed",
        "3.2.8": "failed",
        "2.1.3": "skipped",
        "1.1.1": "not_covered",
    }
    assert sum(1 for i in items if i["status"] == "not_covered") == 88
    assert sum(row["not_covered"] for row in data["sections"]) == 88
    assert [row["section"] for row in data["sections"]] == list(range(1, 13))


def test_evidence_json_tests(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    data = read_evidence(pytester, "out")
    [replicas] = items_by_id(data)["3.2.2"]["tests"]
    assert replicas["nodeid"] == "test_suite.py::test_configmap_deployed_and_valid"
    assert replicas["outcome"] == "passed"
    assert isinstance(replicas["duration"], float)
    assert replicas["duration"] >= 0
    assert replicas["message"] == ""
    observations = [
        {k: o[k] for k in ("name", "observed", "expected", "passed", "where")}
        for o in replicas["observations"]
    ]
    assert observations == [
        {
            "name": "replicas",
            "observed": 3,
            "expected": ">= 3",
            "passed": True,
            "where": "deployment vcci-staging/backend",
        },
        {
            "name": "image",
            "observed": "vcci-backend:2.0.0",
            "expected": None,
            "passed": None,
            "where": "",
        },
    ]
    assert all(RFC3339_UTC.match(o["at"]) for o in replicas["observations"])
    assert replicas["attachments"][0]["name"] == "deployment"
    assert replicas["attachments"][0]["format"] == "json"

    hpa = nodeid_map(data)["test_suite.py::test_hpa"]
    assert hpa["outcome"] == "failed"
    assert hpa["checklist"] == ["3.2.7", "3.2.8"]
    assert hpa["message"] == "hpa vcci-staging/backend: minReplicas: observed 2, expected 3"
    assert [o["passed"] for o in hpa["observations"]] == [False, True]
    # A test covering two items appears under both.
    assert items_by_id(data)["3.2.8"]["tests"] == [hpa]

    skipped = nodeid_map(data)["test_suite.py::test_indexes"]
    assert (skipped["outcome"], skipped["message"]) == ("skipped", "database not configured")
    unmarked = nodeid_map(data)["test_suite.py::test_unmarked"]
    assert (unmarked["outcome"], unmarked["checklist"]) == ("passed", [])


def test_report_html_is_self_contained_with_checklist_column(
    pytester: pytest.Pytester, run: pytest.RunResult
) -> None:
    html = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script" in html  # pytest-html's inline app
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=", html)
    assert "Checklist</th>" in html
    assert "GL-VCCI readiness: test report" in html
    # The checklist IDs of each test and its observations (as extras) are in the report.
    assert "3.2.7, 3.2.8" in html
    assert "minReplicas" in html
    run.stdout.fnmatch_lines([f"*Generated html report: *{pytester.path / 'out' / 'report.html'}*"])


def test_checklist_html(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    html = (pytester.path / "out" / "checklist.html").read_text(encoding="utf-8")
    ids = re.findall(r"<details id='item-([0-9.]+)' data-status='(\w+)'>", html)
    assert [i for i, _ in ids] == list(load_catalog().ids)
    statuses = dict(ids)
    assert (statuses["3.2.2"], statuses["3.2.7"], statuses["2.1.3"]) == (
        "passed",
        "failed",
        "skipped",
    )
    assert html.count("<section id='section-") == 12
    assert "<script" not in html  # works without JavaScript: <details> drills down
    assert "class='verdict v-blocked'>blocked</span>" in html
    assert "hpa vcci-staging/backend" in html  # observations in the drill-down
    assert "test_suite.py::test_hpa" in html


def test_junit_xml_properties(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    root = ET.parse(pytester.path / "out" / "junit.xml").getroot()
    [suite] = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {
        "test_configmap_deployed_and_valid",
        "test_hpa",
        "test_indexes",
        "test_unmarked",
    }

    def props(name: str) -> list[tuple[str | None, str | None]]:
        return [(p.get("name"), p.get("value")) for p in cases[name].iter("property")]

    assert props("test_configmap_deployed_and_valid") == [
        ("checklist", "3.2.2"),
        ("severity", "high"),
    ]
    assert props("test_hpa") == [
        ("checklist", "3.2.7"),
        ("checklist", "3.2.8"),
        ("severity", "high"),
    ]
    assert props("test_indexes") == [("checklist", "2.1.3"), ("severity", "medium")]
    assert props("test_unmarked") == []
    failure = cases["test_hpa"].find("failure")
    assert failure is not None
    assert failure.get("message") == "hpa vcci-staging/backend: minReplicas: observed 2, expected 3"
    assert cases["test_indexes"].find("skipped") is not None


def test_severity_property_is_the_highest_of_the_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("10.1.2", "2.1.3", "1.1.2")
        def test_mixed():
            pass
        """
    )
    pytester.runpytest()
    root = ET.parse(pytester.path / "reports" / "junit.xml").getroot()
    values = [(p.get("name"), p.get("value")) for p in root.iter("property")]
    assert values[-1] == ("severity", "critical")


def test_no_partial_files_are_left(pytester: pytest.Pytester, run: pytest.RunResult) -> None:
    names = [p.name for p in files_under(pytester.path / "out")]
    assert {"evidence.json", "report.html", "checklist.html", "junit.xml"} <= set(names)
    assert [n for n in names if n.endswith(".partial") or n.startswith(".")] == []


def test_reports_in_late_activation(pytester: pytest.Pytester) -> None:
    """No options at all: the markers turn the plugin on, and all reports are written."""
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest()

    assert result.ret == 1
    out = pytester.path / "reports"
    names = {p.name for p in files_under(out)}
    assert {"evidence.json", "report.html", "checklist.html", "junit.xml"} <= names
    assert not [n for n in names if n.endswith(".partial")]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Checklist</th>" in html
    assert "3.2.7, 3.2.8" in html
    data = read_evidence(pytester)
    assert data["run"]["environment"] == "default"
    assert data["run"]["verdict"] == "blocked"
    result.stdout.fnmatch_lines(
        ["*= GL-VCCI readiness =*", "verdict: BLOCKED (gate high, exit status 1)"]
    )


def test_user_html_path_is_respected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--html", "mine.html", "--self-contained-html")

    assert (pytester.path / "mine.html").is_file()
    assert "Checklist</th>" in (pytester.path / "mine.html").read_text(encoding="utf-8")
    assert not (pytester.path / "reports" / "report.html").exists()
    assert (pytester.path / "reports" / "evidence.json").is_file()
