"""Waivers: accepted risks. A failing item covered by a valid waiver is ``waived``, not blocking.

A waivers file (TOML, one per environment) holds records like::

    [[waiver]]
    item = "3.2.4"                                    # checklist ID
    nodeid = "suites/test_kubernetes.py::test_hpa*"   # optional: only these tests' failures
    justification = "HPA rollout scheduled with the Q4 capacity change"
    approved_by = "Dana Ops (Head of Operations)"
    approved_on = 2026-10-01
    expires_on = 2026-11-15
    ticket = "RISK-231"

Rules (the loader enforces the first two; :meth:`Waivers.apply` the rest):

- every key but ``nodeid`` is required and non-empty; an unknown key or checklist ID is an error;
- ``expires_on`` is after ``approved_on`` and at most ``max_days`` (ini ``vcci_waiver_max_days``,
  default 90) after it;
- a waiver whose ``expires_on`` has passed is ignored with a warning naming it (valid through
  that day, UTC), so its item blocks again;
- a waiver applies only to an item that failed (``failed`` / ``error``), and only if every
  failing test of the item matches its ``nodeid`` pattern (when it has one);
- a waiver for an item that passes is stale: reported, so it gets removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_core import ErrorDetails

from pytest_vcci.records import ItemRecord, load_records

DEFAULT_MAX_DAYS = 90
FAILING = ("failed", "error")
PASSING = ("passed", "attested")
REQUIRED_WHY = {
    "justification": "a waiver needs a justification",
    "approved_by": "a waiver needs the name of who approved it",
    "approved_on": "a waiver needs the date it was approved",
    "expires_on": "a waiver needs an expiry date",
    "ticket": "a waiver needs a ticket reference",
    "item": "a waiver needs the checklist ID it covers",
}


class WaiverRecord(ItemRecord):
    nodeid: str | None = None
    justification: str
    approved_by: str
    approved_on: dt.date
    expires_on: dt.date
    ticket: str

    @field_validator("item", "justification", "approved_by", "ticket")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("nodeid")
    @classmethod
    def _pattern_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave it out to cover the whole item)")
        return value

    @field_validator("approved_on", "expires_on", mode="before")
    @classmethod
    def _plain_date(cls, value: Any) -> Any:
        # TOML gives a datetime for 2026-10-01T00:00:00; a waiver's dates are days.
        if isinstance(value, dt.datetime):
            raise ValueError("expected a date like 2026-10-01, not a date and time")
        return value


@dataclass(frozen=True)
class Waiver:
    """One validated record and where it came from."""

    record: WaiverRecord
    index: int  # 1-based position in the file
    source: str

    @property
    def item(self) -> str:
        return self.record.item

    def name(self) -> str:
        pattern = f" [{self.record.nodeid}]" if self.record.nodeid else ""
        return (
            f"waiver #{self.index} for {self.item}{pattern} (ticket {self.record.ticket}, "
            f"approved by {self.record.approved_by} on {self.record.approved_on})"
        )

    def expired(self, today: dt.date) -> bool:
        return self.record.expires_on < today

    def covers(self, nodeid: str) -> bool:
        pattern = self.record.nodeid
        # Exact match first: parametrized IDs contain [..], which fnmatch reads as a class.
        return pattern is None or nodeid == pattern or fnmatchcase(nodeid, pattern)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.record.model_dump(mode="json"),
            "source": self.source,
            "index": self.index,
        }


@dataclass
class WaiverOutcome:
    """What applying the waivers did to one run's items."""

    applied: list[str] = field(default_factory=list)  # item IDs now ``waived``
    warnings: list[str] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)


class Waivers:
    """The waivers of one file, applied to a run's items."""

    def __init__(
        self, waivers: list[Waiver], source: str, max_days: int = DEFAULT_MAX_DAYS
    ) -> None:
        self.waivers = waivers
        self.source = source
        self.max_days = max_days

    def __len__(self) -> int:
        return len(self.waivers)

    def apply(self, items: list[dict[str, Any]], today: dt.date | None = None) -> WaiverOutcome:
        """Mark failing items covered by a current waiver ``waived`` (items are changed in place).

        ``items`` are result-model items whose ``tests`` are test dicts (nodeid, outcome).
        """
        today = today or dt.datetime.now(dt.UTC).date()
        outcome = WaiverOutcome()
        current: dict[str, list[Waiver]] = {}
        for waiver in self.waivers:
            if waiver.expired(today):
                outcome.warnings.append(
                    f"{self.source}: {waiver.name()} expired on {waiver.record.expires_on}: "
                    f"ignored, {waiver.item} is judged on its own again"
                )
            else:
                current.setdefault(waiver.item, []).append(waiver)
        for item in items:
            mine = current.get(item["id"], [])
            if not mine:
                continue
            if item["status"] in PASSING:
                outcome.stale.extend(self._stale(waiver, item) for waiver in mine)
            elif item["status"] in FAILING:
                self._waive(item, mine, outcome)
        return outcome

    def _waive(self, item: dict[str, Any], mine: list[Waiver], outcome: WaiverOutcome) -> None:
        failing = [t["nodeid"] for t in item["tests"] if t["outcome"] in FAILING]
        # An item can fail with all its tests passed (an attestation item without a record).
        failing = failing or [t["nodeid"] for t in item["tests"]]
        fitting = [w for w in mine if all(w.covers(nodeid) for nodeid in failing)]
        if not fitting:
            for waiver in mine:
                uncovered = next(n for n in failing if not waiver.covers(n))
                outcome.warnings.append(
                    f"{self.source}: {waiver.name()} does not cover the failing test "
                    f"{uncovered}: not applied, {item['id']} stays {item['status']}"
                )
            return
        chosen = max(fitting, key=lambda w: w.record.expires_on)
        item["waived_status"] = item["status"]
        item["status"] = "waived"
        item["waiver"] = chosen.to_dict()
        outcome.applied.append(item["id"])

    def _stale(self, waiver: Waiver, item: dict[str, Any]) -> dict[str, Any]:
        return {
            **waiver.to_dict(),
            "item_status": item["status"],
            "message": f"{self.source}: {waiver.name()} is stale: {item['id']} "
            f"{item['status']}; remove the waiver",
        }


def load_waivers(
    path: Path | None, catalog_ids: set[str], max_days: int = DEFAULT_MAX_DAYS
) -> Waivers:
    """Read and validate a waivers file; None gives no waivers. Errors are SettingsErrors."""
    if path is None:
        return Waivers([], "<no waivers file configured>", max_days)
    source = str(path)
    records = load_records(
        path, "waiver", WaiverRecord, catalog_ids, _explain, lambda r: _check(r, max_days)
    )
    waivers = [Waiver(record, i, source) for i, record in enumerate(records, start=1)]
    return Waivers(waivers, source, max_days)


def _explain(key: str, error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return f"required key is missing ({REQUIRED_WHY.get(key, 'required')})"
    if error["type"] == "extra_forbidden":
        return f"unknown key (expected one of: {', '.join(WaiverRecord.model_fields)})"
    return str(error["msg"]).removeprefix("Value error, ")


def _check(record: WaiverRecord, max_days: int) -> tuple[str, str] | None:
    days = (record.expires_on - record.approved_on).days
    if days <= 0:
        return "expires_on", f"must be after approved_on ({record.approved_on})"
    if days > max_days:
        return (
            "expires_on",
            f"{record.expires_on} is {days} days after approved_on ({record.approved_on}); "
            f"a waiver may last at most {max_days} days (ini vcci_waiver_max_days)",
        )
    return None
