"""OWASP ZAP reports (the "Traditional JSON" report, ``zap-*-scan.py -J report.json``).

The report lists sites, each with alerts; an alert's ``riskcode`` is 0 (Informational), 1 (Low),
2 (Medium) or 3 (High), and ``riskdesc`` reads ``"High (Medium)"`` (risk, then confidence).
Alerts whose confidence is 0 ("False Positive") are left out of the counts, as ZAP's own
summary does.

https://www.zaproxy.org/docs/desktop/addons/report-generation/report-traditional-json/
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from pytest_vcci.readers.tool_reports import IngestError, check_age

RISKS = ("Informational", "Low", "Medium", "High")
HIGH = 3
FALSE_POSITIVE = 0


@dataclass(frozen=True)
class ZapAlert:
    site: str
    name: str
    risk: int
    confidence: int
    instances: int
    cweid: str = ""

    @property
    def risk_name(self) -> str:
        return RISKS[self.risk]


@dataclass(frozen=True)
class ZapReport:
    path: Path
    version: str
    generated_at: dt.datetime | None
    sites: tuple[str, ...]
    alerts: tuple[ZapAlert, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Alerts per risk level, ``{"High": 0, "Medium": 1, ...}`` (false positives left out)."""
        counts = dict.fromkeys(reversed(RISKS), 0)
        for alert in self.alerts:
            if alert.confidence != FALSE_POSITIVE:
                counts[alert.risk_name] += 1
        return counts

    def at_risk(self, risk: int) -> list[ZapAlert]:
        return [a for a in self.alerts if a.risk == risk and a.confidence != FALSE_POSITIVE]

    @property
    def high(self) -> list[ZapAlert]:
        return self.at_risk(HIGH)


def load_zap(path: Path, max_age_hours: float | None = None) -> ZapReport:
    """Read a ZAP JSON report; IngestError (naming the file) if missing, malformed or stale."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(f"{path}: ZAP report not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path}: not a ZAP JSON report: {exc}") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
    report = parse_zap(data, path)
    if max_age_hours is not None:
        check_age(path, report.generated_at, max_age_hours)
    return report


def parse_zap(data: Any, path: Path) -> ZapReport:
    if not isinstance(data, dict) or not isinstance(data.get("site"), list):
        raise IngestError(f"{path}: not a ZAP JSON report: no 'site' list at the top level")
    sites: list[str] = []
    alerts: list[ZapAlert] = []
    for s, site in enumerate(data["site"]):
        if not isinstance(site, dict):
            raise IngestError(f"{path}: site #{s + 1} is not an object")
        name = str(site.get("@name", f"site #{s + 1}"))
        sites.append(name)
        raw_alerts = site.get("alerts", [])
        if not isinstance(raw_alerts, list):
            raise IngestError(f"{path}: {name}: 'alerts' is not a list")
        alerts.extend(_alert(raw, name, a, path) for a, raw in enumerate(raw_alerts))
    return ZapReport(
        path=path,
        version=str(data.get("@version", "")),
        generated_at=_generated_at(data, path),
        sites=tuple(sites),
        alerts=tuple(alerts),
    )


def _alert(raw: Any, site: str, index: int, path: Path) -> ZapAlert:
    where = f"{path}: {site}: alert #{index + 1}"
    if not isinstance(raw, dict):
        raise IngestError(f"{where}: not an object")
    name = str(raw.get("name") or raw.get("alert") or f"alert #{index + 1}")
    risk = _risk(raw, f"{where} ({name})")
    confidence = _small_int(raw.get("confidence", 2), 0, 4, f"{where} ({name}): confidence")
    instances = raw.get("instances")
    count = len(instances) if isinstance(instances, list) else _count(raw.get("count", 1))
    return ZapAlert(site, name, risk, confidence, count, str(raw.get("cweid", "")))


def _risk(raw: dict[str, Any], where: str) -> int:
    """``riskcode`` ("3"), else the risk word that starts ``riskdesc`` ("High (Medium)")."""
    if "riskcode" in raw:
        return _small_int(raw["riskcode"], 0, 3, f"{where}: riskcode")
    desc = str(raw.get("riskdesc", "")).split("(")[0].strip().lower()
    for code, word in enumerate(RISKS):
        if desc == word.lower():
            return code
    raise IngestError(f"{where}: no riskcode and no risk in riskdesc {raw.get('riskdesc')!r}")


def _small_int(value: Any, low: int, high: int, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise IngestError(f"{where}: expected {low}..{high}, got {value!r}") from None
    if not low <= number <= high:
        raise IngestError(f"{where}: expected {low}..{high}, got {value!r}")
    return number


def _count(value: Any) -> int:
    try:
        return max(int(str(value)), 0)
    except ValueError:
        return 1


def _generated_at(data: dict[str, Any], path: Path) -> dt.datetime | None:
    """``created`` (ISO 8601, ZAP 2.12+), else ``@generated`` ("Tue, 9 Jan 2024 15:08:36")."""
    created = data.get("created")
    if created:
        try:
            return _utc(dt.datetime.fromisoformat(str(created).replace("Z", "+00:00")))
        except ValueError:
            raise IngestError(f"{path}: 'created' is not an ISO 8601 time: {created!r}") from None
    generated = data.get("@generated")
    if generated:
        try:
            return _utc(parsedate_to_datetime(str(generated)))
        except (TypeError, ValueError):
            raise IngestError(
                f"{path}: '@generated' is not a date like 'Tue, 9 Jan 2024 15:08:36': {generated!r}"
            ) from None
    return None


def _utc(value: dt.datetime) -> dt.datetime:
    # ZAP writes @generated in the scanner's local time without a zone: read it as UTC.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


__all__ = ["HIGH", "RISKS", "ZapAlert", "ZapReport", "load_zap", "parse_zap"]
