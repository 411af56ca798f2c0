"""What a check cannot read becomes its observation, in one place: never a traceback.

A target raises ``Unobservable`` (what could not be read, why, what would let it be) or
``ReadOnlyViolation``; the run records it as a failed observation of the test, beside the
test's other observations, and the failure message says it in one sentence.
"""

from __future__ import annotations

import pytest
from plugin_support import MINIMAL_ENV, nodeid_map, output, read_evidence, write_env

SUITE = """
import pytest
from pytest_vcci.targets.base import ReadOnlyViolation, Unobservable

WHERE = "postgres app@db:5432/vcci (sslmode=require)"

def cannot_read():
    raise Unobservable(
        "postgres",
        "setting ssl_min_protocol_version",
        "the role app lacks pg_read_all_settings",
        "readable: grant pg_read_all_settings to app, or attest",
        WHERE,
    )

@pytest.fixture
def settings_row():
    cannot_read()

@pytest.mark.checklist("6.2.2")
def test_in_the_call(evidence):
    evidence.check("ssl", "off", "on", False, where=WHERE)
    cannot_read()

@pytest.mark.checklist("2.2.3")
def test_in_a_fixture(settings_row, evidence):
    pass

@pytest.mark.checklist("7.1.2")
def test_a_write(evidence):
    raise ReadOnlyViolation("postgres", "INSERT (only SELECT, WITH ... are sent)")
"""
SENTENCE = (
    "postgres app@db:5432/vcci (sslmode=require): setting ssl_min_protocol_version: observed "
    "cannot read: the role app lacks pg_read_all_settings, expected readable: grant "
    "pg_read_all_settings to app, or attest"
)


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_unobservable_is_a_failed_observation(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_env(pytester, MINIMAL_ENV)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "--vcci-config", "env.toml", "--vcci-report-dir", "out", *workers
    )
    tests = nodeid_map(read_evidence(pytester, "out"))
    call = tests["test_suite.py::test_in_the_call"]
    assert call["outcome"] == "failed"
    assert [(o["name"], o["observed"], o["passed"]) for o in call["observations"]] == [
        ("ssl", "off", False),
        (
            "setting ssl_min_protocol_version",
            "cannot read: the role app lacks pg_read_all_settings",
            False,
        ),
    ]
    assert call["message"] == (
        "2 criteria failed:\n"
        "- postgres app@db:5432/vcci (sslmode=require): ssl: observed off, expected on\n"
        f"- {SENTENCE}"
    )
    fixture = tests["test_suite.py::test_in_a_fixture"]
    assert fixture["outcome"] == "error"
    assert fixture["message"] == SENTENCE
    write = tests["test_suite.py::test_a_write"]
    assert write["outcome"] == "failed"
    assert write["message"] == (
        "postgres: read-only guard: observed refused INSERT (only SELECT, WITH ... are sent) "
        "(pytest-vcci never changes what it checks), expected reads only"
    )
    text = output(result)
    assert "Traceback" not in text
    assert "raise Unobservable" not in text
    assert SENTENCE in text
