"""Intrusive checks left out of a read-only run: an item whose criteria other checks decide
still passes; an item whose criteria only intrusive checks decide is "skipped" (undecided)."""

from __future__ import annotations

import json

import pytest

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
