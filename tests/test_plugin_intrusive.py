"""Intrusive checks left out of a read-only run do not make a covered item "skipped"."""

from __future__ import annotations

import json

import pytest

TESTS = """
import pytest

@pytest.mark.checklist("4.2.3")
def test_headers_present():
    pass

@pytest.mark.checklist("4.2.3")
@pytest.mark.intrusive
def test_burst_is_limited():
    pass

@pytest.mark.checklist("9.2.1")
@pytest.mark.intrusive
def test_onboarding_workflow():
    pass
"""


def statuses(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    pytester.makepyfile(test_intrusive_items=TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "out", *args)
    evidence = json.loads((pytester.path / "out" / "evidence.json").read_text())
    return {i["id"]: i["status"] for i in evidence["items"] if i["status"] != "not_covered"}


def test_read_only_run(pytester: pytest.Pytester) -> None:
    # 4.2.3 was checked by its read-only test; 9.2.1 was not checked at all.
    assert statuses(pytester, "--vcci-gate", "high") == {"4.2.3": "passed", "9.2.1": "skipped"}


def test_intrusive_run(pytester: pytest.Pytester) -> None:
    assert statuses(pytester, "--vcci-allow-intrusive") == {"4.2.3": "passed", "9.2.1": "passed"}
