"""Selecting tests by checklist ID (--checklist) and section (--checklist-section)."""

from __future__ import annotations

from fnmatch import fnmatch

import pytest
from plugin_support import covered, output, read_evidence

SUITE = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas():
    pass

@pytest.mark.checklist("3.2.7")
def test_hpa():
    pass

@pytest.mark.checklist("1.1.1")
def test_cluster():
    pass

@pytest.mark.checklist("2.1.3")
def test_indexes():
    pass

@pytest.mark.checklist("5.1.1", "6.1.1")
def test_prometheus_and_auth():
    pass

def test_unmarked():
    pass
"""
ALL = {
    "test_replicas",
    "test_hpa",
    "test_cluster",
    "test_indexes",
    "test_prometheus_and_auth",
    "test_unmarked",
}


@pytest.mark.parametrize(
    ("args", "selected"),
    [
        pytest.param(
            ["--checklist", "3.2.*,1.1.1"],
            {"test_replicas", "test_hpa", "test_cluster"},
            id="glob+id",
        ),
        pytest.param(
            ["--checklist", "3.2.4", "--checklist", "2.1.3"],
            {"test_replicas", "test_indexes"},
            id="repeated",
        ),
        pytest.param(["--checklist", " 3.2.7 , 2.1.3 "], {"test_hpa", "test_indexes"}, id="spaces"),
        pytest.param(["--checklist", "3"], {"test_replicas", "test_hpa"}, id="bare-section"),
        pytest.param(["--checklist", "3.2"], {"test_replicas", "test_hpa"}, id="subsection"),
        pytest.param(
            ["--checklist", "?.1.1"],
            {"test_cluster", "test_prometheus_and_auth"},
            id="question-mark",
        ),
        pytest.param(["--checklist", "6.1.1"], {"test_prometheus_and_auth"}, id="second-id"),
        pytest.param(["--checklist", "3.2.[4-6]"], {"test_replicas"}, id="range"),
        pytest.param(["--checklist-section", "2"], {"test_indexes"}, id="section"),
        pytest.param(
            ["--checklist-section", "1", "--checklist-section", "5"],
            {"test_cluster", "test_prometheus_and_auth"},
            id="sections",
        ),
        pytest.param(
            ["--checklist", "3.2.7", "--checklist-section", "2"],
            {"test_hpa", "test_indexes"},
            id="pattern+section",
        ),
    ],
)
def test_selection_runs_only_matching_tests_and_reports_deselected(
    pytester: pytest.Pytester, args: list[str], selected: set[str]
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-v", *args)

    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {
        "passed": len(selected),
        "deselected": len(ALL) - len(selected),
    }
    ran = {line.split("::")[1].split()[0] for line in result.outlines if " PASSED" in line}
    assert ran == selected
    data = read_evidence(pytester)
    assert {t["nodeid"].split("::")[1] for t in data["tests"]} == selected
    # Items outside the selection are listed, not silently dropped.
    assert len(data["items"]) == 92
    assert "not_covered" in {i["status"] for i in data["items"]}


def test_no_selection_runs_everything(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--vcci-report-dir", "out")

    assert result.parseoutcomes() == {"passed": len(ALL)}
    # Every item is covered; these tests are not the catalog's checks, so each is undecided.
    assert covered(read_evidence(pytester, "out")) == dict.fromkeys(
        ("1.1.1", "2.1.3", "3.2.4", "3.2.7", "5.1.1", "6.1.1"), "skipped"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--checklist", "99.*"],
            "ERROR: --checklist: '99.*' matches no checklist item",
            id="none",
        ),
        pytest.param(
            ["--checklist", "3.2.4,3.2.99"],
            "ERROR: --checklist: '3.2.99' matches no checklist item",
            id="one-of-list",
        ),
        pytest.param(
            ["--checklist", "deploy"],
            "ERROR: --checklist: invalid checklist pattern 'deploy'*",
            id="not-a-pattern",
        ),
        pytest.param(
            ["--checklist-section", "13"],
            "ERROR: --checklist-section: no section 13; the checklist has sections 1..12",
            id="no-section",
        ),
    ],
)
def test_selection_matching_nothing_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # Found before the session starts: one line, no header, no verdict, no reports.
    lines = [line for line in output(result).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert fnmatch(lines[0], message), lines
    assert not (pytester.path / "reports").exists()


def test_section_must_be_a_number(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--checklist-section", "three")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output(result).strip() == (
        "ERROR: --checklist-section: 'three' is not a section number (e.g. 3)"
    )
