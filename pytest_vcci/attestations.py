"""Attestations: human facts (training done, CAB approval, SOC 2 certificate) recorded per environment.

An attestation item is satisfied only by a valid record — who attested what, when, in which
role, with a reference and an expiry — never by a test that merely passes.

```toml
[[attestation]]
item = "10.2.1"
statement = "Operations team completed the 2-day training"
attested_by = "Dana Ops"
role = "Head of Operations"
date = 2026-10-02
expires = 2027-10-02
reference = "OPS-1432"
```
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pydantic import field_validator
from pydantic_core import ErrorDetails

from pytest_vcci.records import ItemRecord, load_records


class AttestationRecord(ItemRecord):
    statement: str
    attested_by: str
    role: str
    date: dt.date
    expires: dt.date
    reference: str

    @field_validator("statement", "attested_by", "role", "reference")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def describe(self) -> str:
        return (
            f"{self.item} attested by {self.attested_by} ({self.role}) on {self.date}, "
            f"expires {self.expires}, ref {self.reference}"
        )


@dataclass(frozen=True)
class Verdict:
    record: AttestationRecord | None
    problem: str | None

    @property
    def valid(self) -> bool:
        return self.problem is None


class Attestations:
    """The records of one attestations file, looked up by checklist item."""

    def __init__(self, records: list[AttestationRecord], source: str) -> None:
        self.records = records
        self.source = source

    def check(self, item_id: str, today: dt.date | None = None) -> Verdict:
        today = today or dt.datetime.now(dt.UTC).date()
        mine = sorted((r for r in self.records if r.item == item_id), key=lambda r: r.date)
        if not mine:
            return Verdict(None, f"no attestation record for {item_id} in {self.source}")
        current = [r for r in mine if r.expires >= today]
        if current:
            return Verdict(current[-1], None)
        latest = mine[-1]
        return Verdict(
            latest,
            f"attestation for {item_id} expired on {latest.expires} "
            f"({latest.attested_by}, ref {latest.reference})",
        )


def load_attestations(path: Path | None, catalog_ids: set[str]) -> Attestations:
    """Read and validate an attestations file; None gives an empty set."""
    if path is None:
        return Attestations([], "<no attestations file configured>")
    records = load_records(path, "attestation", AttestationRecord, catalog_ids, _explain, _check)
    return Attestations(records, str(path))


def _explain(key: str, error: ErrorDetails) -> str:
    return {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
        error["type"], error["msg"]
    )


def _check(record: AttestationRecord) -> tuple[str, str] | None:
    if record.expires <= record.date:
        return "expires", "must be after date"
    return None
