"""The ``evidence`` fixture: what a check observed, what it expected, and whether that passed.

Observations are plain JSON values, redacted when recorded, stamped with the UTC time they were
made, and carried to the xdist controller on the test report (``report.vcci``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

import pytest

from pytest_vcci.evidence.redaction import Redactor

MAX_ATTACHMENT_BYTES = 64 * 1024
#: How the reason of a test that found nothing to judge starts (the report model strips it).
UNDECIDED = "undecided: "


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of ``value`` (str() for anything exotic)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


@dataclass
class Observation:
    name: str
    observed: Any
    expected: Any = None
    passed: bool | None = None
    where: str = ""
    at: str = field(default_factory=utc_now)

    def message(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return (
            f"{place}{self.name}: observed {_show(self.observed)}, expected {_show(self.expected)}"
        )


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:197] + "..."


class Evidence:
    """Per-test recorder. ``check`` records and defers a failure to the end of the test."""

    def __init__(self, redactor: Redactor | None = None, *, strict: bool = False) -> None:
        self._redact = redactor or Redactor()
        self.strict = strict  # --vcci-strict: undecided is a failure
        self.observations: list[Observation] = []
        self.attachments: list[dict[str, Any]] = []
        self.attestations: list[dict[str, Any]] = []

    def record(
        self,
        name: str,
        observed: Any,
        expected: Any = None,
        passed: bool | None = None,
        where: str = "",
    ) -> Observation:
        """Record an observation (``passed`` None means informational)."""
        observation = Observation(
            name=self._redact(name),
            observed=self._redact.data(jsonable(observed)),
            expected=self._redact.data(jsonable(expected)),
            passed=passed,
            where=self._redact(where),
        )
        self.observations.append(observation)
        return observation

    def check(self, name: str, observed: Any, expected: Any, passed: bool, where: str = "") -> bool:
        """Record a criterion; a failure fails the test when it ends, with all failures listed."""
        self.record(name, observed, expected, bool(passed), where)
        return bool(passed)

    def require(
        self, name: str, observed: Any, expected: Any, passed: bool, where: str = ""
    ) -> None:
        """Record a criterion and stop the test now if it failed."""
        observation = self.record(name, observed, expected, bool(passed), where)
        if not passed:
            raise AssertionError(observation.message())

    def unobservable(self, what: str, why: str, expected: str, where: str = "") -> Observation:
        """Record that ``what`` could not be read, and why: a failed observation, since a
        criterion nobody could observe is not met (``cannot read: the role lacks ...``)."""
        return self.record(what, f"cannot read: {why}", expected, False, where)

    def undecided(self, reason: str, where: str = "") -> NoReturn:
        """Nothing to judge (no nodes, no workloads, no probe result, an unknown file type):
        end the test as skipped with a reason starting "undecided:", never as passed.

        Criteria that already failed still fail the test; under --vcci-strict an undecided
        test fails. The item then names the criterion and this reason.
        """
        self.record("undecided", reason, where=where)
        if self.failures():
            pytest.fail(self.failure_message(), pytrace=False)
        text = self._redact(f"{where}: {reason}" if where else reason)
        if self.strict:
            pytest.fail(f"{UNDECIDED}{text} (--vcci-strict makes this a failure)", pytrace=False)
        pytest.skip(f"{UNDECIDED}{text}")

    def attach(self, name: str, content: str | dict[str, Any] | list[Any]) -> None:
        """Attach a small artefact (text or JSON), redacted and capped at 64 KiB."""
        if isinstance(content, str):
            kind, text = "text", self._redact(content)
        else:
            kind, text = "json", json.dumps(self._redact.data(jsonable(content)), indent=2)
        if len(text.encode()) > MAX_ATTACHMENT_BYTES:
            text = text.encode()[:MAX_ATTACHMENT_BYTES].decode(errors="ignore") + "\n[truncated]"
        self.attachments.append({"name": self._redact(name), "format": kind, "content": text})

    def failures(self) -> list[Observation]:
        return [o for o in self.observations if o.passed is False]

    def failure_message(self) -> str:
        failed = self.failures()
        if len(failed) == 1:
            return failed[0].message()
        return f"{len(failed)} criteria failed:\n" + "\n".join(f"- {o.message()}" for o in failed)

    def payload(self) -> dict[str, Any]:
        """The plain-JSON form carried on the test report."""
        return {
            "observations": [asdict(o) for o in self.observations],
            "attachments": list(self.attachments),
            "attestations": list(self.attestations),
        }
