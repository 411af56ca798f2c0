"""The severity gate: item statuses -> verdict and exit status.

Failures (failed / error) at or above the gate severity block the release (exit 1). Failures
below it, and skipped items, are warnings (exit 0, ``ready_with_warnings``). ``not_covered``
items do not change the verdict unless --vcci-strict is given, where they block like failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_vcci.checklist import Severity
from pytest_vcci.report.model import BAD

GATES = tuple(s.value for s in Severity)
DEFAULT_GATE = "high"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # ready | ready_with_warnings | blocked | incomplete
    blocking: list[str]
    warnings: list[str]

    @property
    def exit_status(self) -> int:
        return 1 if self.verdict == "blocked" else 0


def decide(
    items: list[dict[str, Any]],
    gate: str,
    *,
    strict: bool = False,
    interrupted: bool = False,
    stray_failures: int = 0,
) -> Verdict:
    """``stray_failures``: failed tests carrying no checklist ID (they always block)."""
    threshold = Severity(gate)
    blocking, warnings = [], []
    for item in items:
        at_or_above = Severity(item["severity"]).at_least(threshold)
        bad = item["status"] in BAD or (strict and item["status"] == "not_covered")
        if bad and at_or_above:
            blocking.append(item["id"])
        elif bad or item["status"] == "skipped":
            warnings.append(item["id"])
    if interrupted:
        verdict = "incomplete"
    elif blocking or stray_failures:
        verdict = "blocked"
    elif warnings:
        verdict = "ready_with_warnings"
    else:
        verdict = "ready"
    return Verdict(verdict, blocking, warnings)
