"""An interrupted run still leaves its reports behind, with the verdict ``incomplete``."""

from __future__ import annotations

import pytest
from plugin_support import covered, files_under, nodeid_map, read_evidence

SUITE = """
import pytest

@pytest.mark.checklist("3.2.3")  # the one check of all 3.2.3's criteria
def test_secret_deployed_with_keys(evidence):
    evidence.check("keys", ["url"], ["url"], True)

@pytest.mark.checklist("3.2.5")
def test_failed_before():
    assert False, "service type is NodePort"

@pytest.mark.checklist("3.2.6")
def test_stops_the_run():
    {stop}

@pytest.mark.checklist("3.2.7")
def test_never_runs():
    pass
"""


@pytest.mark.parametrize(
    ("stop", "banner", "subprocess"),
    [
        ("raise KeyboardInterrupt", "*! KeyboardInterrupt !*", True),
        (
            'pytest.exit("operator stopped the run")',
            "*! _pytest.outcomes.Exit: operator stopped the run !*",
            False,
        ),
    ],
    ids=["keyboard-interrupt", "pytest-exit"],
)
def test_interrupted_run_writes_reports_with_verdict_incomplete(
    pytester: pytest.Pytester, stop: str, banner: str, subprocess: bool
) -> None:
    pytester.makepyfile(test_stop=SUITE.format(stop=stop))
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = run("-p", "no:cacheprovider", "--vcci-report-dir", "out")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([banner])
    result.stdout.fnmatch_lines(["verdict: INCOMPLETE (gate high, exit status 2)"])
    out = pytester.path / "out"
    names = [p.name for p in files_under(out)]
    assert {"evidence.json", "report.html", "checklist.html", "junit.xml"} <= set(names)
    assert [n for n in names if n.endswith(".partial")] == []

    data = read_evidence(pytester, "out")
    assert (data["run"]["verdict"], data["run"]["exit_status"]) == ("incomplete", 2)
    # What ran is recorded; the test that was running did not pass; the rest never ran.
    assert covered(data) == {"3.2.3": "passed", "3.2.5": "failed", "3.2.6": "error"}
    stopped = nodeid_map(data)["test_stop.py::test_stops_the_run"]
    assert stopped["message"] == "the run was interrupted before this test finished"
    before = nodeid_map(data)["test_stop.py::test_secret_deployed_with_keys"]
    assert before["observations"][0]["name"] == "keys"
    assert "test_stop.py::test_never_runs" not in nodeid_map(data)
    html = (out / "checklist.html").read_text(encoding="utf-8")
    assert "class='verdict v-incomplete'>incomplete</span>" in html


def test_interrupt_in_late_activation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stop=SUITE.format(stop="raise KeyboardInterrupt"))
    result = pytester.runpytest(no_reraise_ctrlc=True)

    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = read_evidence(pytester)
    assert data["run"]["verdict"] == "incomplete"
    assert covered(data)["3.2.6"] == "error"


def test_exitfirst_is_not_an_interruption(pytester: pytest.Pytester) -> None:
    """-x stops at the first failure, but that is a (blocked) verdict, not an incomplete one."""
    pytester.makepyfile(test_stop=SUITE.format(stop="pass"))
    result = pytester.runpytest("-x")

    assert result.ret == 1
    data = read_evidence(pytester)
    assert data["run"]["verdict"] == "blocked"
    assert covered(data) == {"3.2.3": "passed", "3.2.5": "failed"}
