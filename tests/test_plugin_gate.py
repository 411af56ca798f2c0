"""The severity gate: verdicts and exit statuses, through real runs and on the model directly."""

from __future__ import annotations

import pytest
from plugin_support import ITEM_BY_SEVERITY, covered, output, read_evidence, write_passing

from pytest_vcci.gate import decide

GATES = ("critical", "high", "medium", "low")
RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


def one_failure(pytester: pytest.Pytester, severity: str) -> str:
    item_id = ITEM_BY_SEVERITY[severity]
    write_passing(pytester, "3.2.7")  # two instances of test_hpa_as_checklist
    pytester.makepyfile(
        test_gate=f"""
        import pytest

        @pytest.mark.checklist("{item_id}")
        def test_fails():
            assert 2 + 2 == 5, "arithmetic is broken"
        """
    )
    return item_id


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("severity", GATES)
def test_failure_blocks_at_or_above_the_gate(
    pytester: pytest.Pytester, gate: str, severity: str
) -> None:
    item_id = one_failure(pytester, severity)
    result = pytester.runpytest("--vcci-gate", gate)

    result.assert_outcomes(passed=2, failed=1)
    run = read_evidence(pytester)["run"]
    assert run["gate"] == gate
    if RANK[severity] >= RANK[gate]:
        assert result.ret == 1
        assert (run["verdict"], run["exit_status"]) == ("blocked", 1)
        assert (run["blocking"], run["warnings"]) == ([item_id], [])
        result.stdout.fnmatch_lines(
            ["blocking:", f"  {item_id}*{severity}*failed*arithmetic is broken*"]
        )
        result.stdout.fnmatch_lines([f"verdict: BLOCKED (gate {gate}, exit status 1)"])
    else:
        assert result.ret == 0
        assert (run["verdict"], run["exit_status"]) == ("ready_with_warnings", 0)
        assert (run["blocking"], run["warnings"]) == ([], [item_id])
        result.stdout.fnmatch_lines(
            ["warnings:", f"  {item_id}*{severity}*failed*arithmetic is broken*"]
        )
        result.stdout.fnmatch_lines([f"verdict: READY_WITH_WARNINGS (gate {gate}, exit status 0)"])


@pytest.mark.parametrize("gate", GATES)
def test_all_passing_is_ready(pytester: pytest.Pytester, gate: str) -> None:
    write_passing(pytester, "1.1.2", "3.2.4", "2.1.3", "10.1.2")
    result = pytester.runpytest("--vcci-gate", gate)

    assert result.ret == 0
    assert set(covered(read_evidence(pytester)).values()) == {"passed"}
    run = read_evidence(pytester)["run"]
    assert (run["verdict"], run["exit_status"], run["gate"]) == ("ready", 0, gate)
    result.stdout.fnmatch_lines([f"verdict: READY (gate {gate}, exit status 0)"])


def test_skipped_item_is_a_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("1.1.2")
        def test_skipped():
            pytest.skip("database not reachable from CI")
        """
    )
    result = pytester.runpytest("--vcci-gate", "low")

    assert result.ret == 0
    run = read_evidence(pytester)["run"]
    assert (run["verdict"], run["warnings"]) == ("ready_with_warnings", ["1.1.2"])


def test_default_gate_is_high(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("2.1.3")
        def test_medium():
            assert False
        """
    )
    result = pytester.runpytest()

    assert result.ret == 0
    run = read_evidence(pytester)["run"]
    assert (run["gate"], run["verdict"]) == ("high", "ready_with_warnings")


def test_error_in_setup_blocks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def database():
            raise ConnectionError("connection refused")

        @pytest.mark.checklist("1.1.2")
        def test_backups(database):
            pass
        """
    )
    result = pytester.runpytest()

    assert result.ret == 1
    data = read_evidence(pytester)
    assert covered(data) == {"1.1.2": "error"}
    assert data["run"]["verdict"] == "blocked"


@pytest.mark.parametrize("options", [["--vcci-gate", "low"], []], ids=["active", "late"])
def test_unmarked_failure_still_fails_the_run(
    pytester: pytest.Pytester, options: list[str]
) -> None:
    write_passing(pytester, "3.2.7")
    pytester.makepyfile(
        """
        def test_helper_is_broken():
            assert [1, 2] == [1, 3]
        """
    )
    result = pytester.runpytest(*options)

    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=1)
    data = read_evidence(pytester)
    assert covered(data) == {"3.2.7": "passed"}
    assert (data["run"]["verdict"], data["run"]["exit_status"]) == ("blocked", 1)


def test_ini_gate_and_option_override(pytester: pytest.Pytester) -> None:
    one_failure(pytester, "high")
    pytester.makeini("[pytest]\nvcci_gate = critical\n")

    from_ini = pytester.runpytest()
    assert from_ini.ret == 0
    assert read_evidence(pytester)["run"]["gate"] == "critical"

    from_option = pytester.runpytest("--vcci-gate", "high")
    assert from_option.ret == 1
    assert read_evidence(pytester)["run"]["gate"] == "high"


def test_bad_gate_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    one_failure(pytester, "high")
    result = pytester.runpytest("--vcci-gate", "severe")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output(result).strip() == (
        "ERROR: --vcci-gate: 'severe' is not one of critical, high, medium, low"
    )


def test_bad_ini_gate_is_a_usage_error(pytester: pytest.Pytester) -> None:
    one_failure(pytester, "high")
    pytester.makeini("[pytest]\nvcci_gate = severe\n")
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: ini vcci_gate: 'severe' is not one of critical, high, medium, low"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "reports").exists()


# --- the gate on the model directly -------------------------------------------------------


def item(item_id: str, severity: str, status: str) -> dict[str, str]:
    return {"id": item_id, "severity": severity, "status": status}


def test_decide_verdicts() -> None:
    items = [
        item("1.1.2", "critical", "passed"),
        item("3.2.4", "high", "attested"),
        item("2.1.3", "medium", "failed"),
        item("10.1.2", "low", "skipped"),
        item("10.1.3", "low", "not_covered"),
        item("3.2.7", "high", "waived"),
    ]
    verdict = decide(items, "high")
    assert (verdict.verdict, verdict.exit_status) == ("ready_with_warnings", 0)
    assert (verdict.blocking, verdict.warnings) == ([], ["2.1.3", "10.1.2"])

    verdict = decide(items, "medium")
    assert (verdict.verdict, verdict.exit_status) == ("blocked", 1)
    assert (verdict.blocking, verdict.warnings) == (["2.1.3"], ["10.1.2"])


def test_decide_strict_blocks_not_covered_at_or_above_the_gate() -> None:
    items = [item("1.1.2", "critical", "not_covered"), item("10.1.3", "low", "not_covered")]
    assert decide(items, "high").verdict == "ready"
    verdict = decide(items, "high", strict=True)
    assert (verdict.verdict, verdict.blocking, verdict.warnings) == (
        "blocked",
        ["1.1.2"],
        ["10.1.3"],
    )


def test_decide_stray_failures_and_interruption() -> None:
    items = [item("1.1.2", "critical", "passed")]
    assert decide(items, "critical").verdict == "ready"
    assert decide(items, "critical", stray_failures=1).verdict == "blocked"
    assert decide(items, "critical", stray_failures=1).exit_status == 1
    interrupted = decide([item("1.1.2", "critical", "failed")], "critical", interrupted=True)
    assert interrupted.verdict == "incomplete"


def test_decide_error_blocks_like_failure() -> None:
    verdict = decide([item("6.2.1", "critical", "error")], "critical")
    assert (verdict.verdict, verdict.blocking) == ("blocked", ["6.2.1"])
