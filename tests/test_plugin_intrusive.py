"""Intrusive checks: left out of a read-only run, an item whose criteria other checks decide
still passes and an item whose criteria only intrusive checks decide is "skipped" (undecided);
allowed, they run in a phase of their own after every read-only check, one at a time, with or
without xdist and whatever its --dist mode."""

from __future__ import annotations

import json

import pytest
from plugin_support import output

# 4.2.3's burst criterion is decided by its headers or by the intrusive burst test; 9.2.2's
# criteria only by its intrusive workflow.
TESTS = """
import pytest

@pytest.mark.checklist("4.2.3")
def test_rate_limit_settings(evidence):
    evidence.check("limits", "set", "set", True)

@pytest.mark.checklist("4.2.3")
def test_rate_limit_headers(evidence):
    evidence.check("X-RateLimit-Limit", 100, 100, True)

@pytest.mark.checklist("4.2.3")
@pytest.mark.intrusive
def test_burst_is_limited(evidence):
    evidence.check("status beyond the burst", 429, 429, True)

@pytest.mark.checklist("9.2.2")
@pytest.mark.intrusive
def test_emissions_calculation_workflow(evidence):
    evidence.check("report generated", True, True, True)
"""


def statuses(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    pytester.makepyfile(test_intrusive_items=TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "out", *args)
    evidence = json.loads((pytester.path / "out" / "evidence.json").read_text())
    return {i["id"]: i["status"] for i in evidence["items"] if i["status"] != "not_covered"}


def test_read_only_run(pytester: pytest.Pytester) -> None:
    # 4.2.3 was decided by its read-only tests; 9.2.2 was not checked at all.
    assert statuses(pytester, "--vcci-gate", "high") == {"4.2.3": "passed", "9.2.2": "skipped"}


def test_intrusive_run(pytester: pytest.Pytester) -> None:
    assert statuses(pytester, "--vcci-allow-intrusive") == {"4.2.3": "passed", "9.2.2": "passed"}


# --- the intrusive phase: after every read-only check, one at a time --------------------------

PHASE_CONFTEST = """
import os, time, pytest

def log(line):
    fd = os.open(os.environ["PHASE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

@pytest.fixture(autouse=True)
def record(request):
    kind = "intrusive" if request.node.get_closest_marker("intrusive") else "read-only"
    log(f"start {kind} {request.node.name}")
    yield
    time.sleep(0.05)  # a test takes time: let the other worker run meanwhile
    log(f"end {kind} {request.node.name}")
"""

PHASE_TESTS = {
    "test_phase_a": """
import pytest

@pytest.mark.checklist("4.2.3")
@pytest.mark.intrusive
def test_burst():
    pass

@pytest.mark.checklist("4.2.3")
@pytest.mark.parametrize("n", range(6))
def test_headers(n):
    pass

@pytest.mark.checklist("7.1.1")
@pytest.mark.intrusive
@pytest.mark.xdist_group("load")
def test_load_probe():
    pass
""",
    "test_phase_b": """
import pytest

@pytest.mark.checklist("9.2.1")
@pytest.mark.intrusive
def test_workflow():
    pass

@pytest.mark.checklist("7.1.1")
@pytest.mark.parametrize("n", range(8))
def test_latency(n):
    pass
""",
}


def phase_log(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> list[tuple[str, str, str]]:
    """(event, kind, test) in the order the tests logged them, from a run with ``args``."""
    pytester.makeconftest(PHASE_CONFTEST)
    pytester.makepyfile(**PHASE_TESTS)
    log = pytester.path / "phase.log"
    monkeypatch.setenv("PHASE_LOG", str(log))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--vcci-report-dir",
        "out",
        "--vcci-allow-intrusive",
        *args,
        timeout=120,  # a guard: a deadlocked phase would otherwise hang the suite
    )
    assert result.ret == 0, output(result)
    events = [tuple(line.split(" ", 2)) for line in log.read_text().splitlines()]
    assert len(events) == 2 * 17, events
    return events  # type: ignore[return-value]


def assert_phase(events: list[tuple[str, str, str]]) -> None:
    last_read_only_end = max(i for i, e in enumerate(events) if e[:2] == ("end", "read-only"))
    first_intrusive = min(i for i, e in enumerate(events) if e[1] == "intrusive")
    assert first_intrusive > last_read_only_end, events
    intrusive = [e for e in events if e[1] == "intrusive"]
    # One at a time: each intrusive test ends before the next starts.
    assert [e[0] for e in intrusive] == ["start", "end"] * 3, intrusive
    assert [e[2] for e in intrusive[::2]] == [e[2] for e in intrusive[1::2]], intrusive


def test_intrusive_checks_run_last_without_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_phase(phase_log(pytester, monkeypatch))


@pytest.mark.parametrize("dist", ["load", "loadfile", "loadscope", "loadgroup", "worksteal"])
def test_intrusive_checks_run_last_one_at_a_time_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dist: str
) -> None:
    assert_phase(phase_log(pytester, monkeypatch, "-n", "2", "--dist", dist))


def test_a_run_stopped_early_cancels_the_phase_instead_of_hanging(
    pytester: pytest.Pytester,
) -> None:
    # -x stops the run at the first failure: the read-only tests still queued never run, so
    # the phase can never open. The waiting intrusive test is skipped, saying why.
    pytester.makepyfile(
        test_stop="""
import time, pytest

@pytest.mark.checklist("4.2.3")
@pytest.mark.intrusive
def test_burst():
    pass

@pytest.mark.checklist("4.2.3")
@pytest.mark.parametrize("n", range(6))
def test_headers(n):
    time.sleep(0.3)
    assert n != 1
"""
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--vcci-report-dir",
        "out",
        "--vcci-allow-intrusive",
        "-n",
        "2",
        "-x",
        "-rs",
        timeout=120,  # a guard: a phase waiting forever would otherwise hang the suite
    )
    text = output(result)
    assert result.ret == pytest.ExitCode.INTERRUPTED, text
    assert "intrusive phase cancelled:" in text, text
