"""Inert unless asked: a run with no --vcci-* option and no checklist test is left alone."""

from __future__ import annotations

import pytest
from plugin_support import output

PLAIN = """
import logging
import sys

def test_passes():
    pass

def test_logging_untouched():
    # No redacting record factory and no filter on pytest's log handlers.
    assert logging.getLogRecordFactory() is logging.LogRecord
    assert not [h.filters for h in logging.getLogger().handlers if h.filters]

def test_no_client_libraries_loaded():
    loaded = {"boto3", "botocore", "psycopg", "redis", "kubernetes", "requests", "pydantic"}
    assert not loaded & set(sys.modules), sorted(loaded & set(sys.modules))
"""


def assert_untouched(pytester: pytest.Pytester, result: pytest.RunResult) -> None:
    text = output(result)
    assert "GL-VCCI" not in text
    assert "verdict" not in text
    assert "Generated html report" not in text
    assert not (pytester.path / "reports").exists()
    assert not list(pytester.path.rglob("*.html"))
    assert not list(pytester.path.rglob("evidence.json"))


def test_passing_run_is_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=PLAIN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    assert_untouched(pytester, result)


def test_failing_run_keeps_its_exit_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_fails():\n    assert 1 == 2\n")
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_untouched(pytester, result)


def test_empty_run_keeps_its_exit_status(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert_untouched(pytester, result)


def test_collection_error_is_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import not_a_module_anywhere\n")
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert_untouched(pytester, result)


def test_intrusive_mark_alone_does_not_activate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.intrusive
        def test_writes():
            pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert_untouched(pytester, result)


def test_fixtures_without_activation(pytester: pytest.Pytester) -> None:
    """evidence works without the plugin active; vcci_context says how to turn it on."""
    pytester.makepyfile(
        """
        def test_evidence(evidence):
            evidence.record("x", 1, 1, True)
            assert len(evidence.observations) == 1

        def test_context(vcci_context):
            pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-vcci is not active in this run: pass --vcci-env, --vcci-config or --vcci-sandbox*"
        ]
    )
    assert_untouched(pytester, result)
