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
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pytest_vcci.settings import SettingsError


class AttestationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str
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
    source = str(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(source, "", "attestations file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(source, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(source, "", f"not valid TOML: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise SettingsError(source, "", f"cannot read: {exc.strerror}") from None
    unknown = set(data) - {"attestation"}
    if unknown:
        raise SettingsError(
            source, f"[{sorted(unknown)[0]}]", "unknown table (expected [[attestation]])"
        )
    records = [
        _record(raw, i, source, catalog_ids) for i, raw in enumerate(data.get("attestation", []))
    ]
    return Attestations(records, source)


def _record(raw: Any, index: int, source: str, catalog_ids: set[str]) -> AttestationRecord:
    where = f"[[attestation]] #{index + 1}"
    if not isinstance(raw, dict):
        raise SettingsError(source, where, "expected a table")
    try:
        record = AttestationRecord.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        message = {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
            error["type"], error["msg"]
        )
        raise SettingsError(source, f"{where}.{key}", message) from None
    if record.item not in catalog_ids:
        raise SettingsError(source, f"{where}.item", f"unknown checklist ID {record.item!r}")
    if record.expires <= record.date:
        raise SettingsError(source, f"{where}.expires", "must be after date")
    return record
