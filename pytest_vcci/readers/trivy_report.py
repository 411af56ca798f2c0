"""Trivy JSON reports (``trivy image --format json --output report.json IMAGE``), schema 2.

The report names the scanned artifact (``ArtifactName``) and holds ``Results``, one per scanned
target (the OS packages, each language's lock files); each result lists ``Vulnerabilities`` with
a ``VulnerabilityID``, the package and a ``Severity`` of UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL.
``CreatedAt`` (Trivy 0.48+) dates the scan; older reports are dated by the file's mtime.

https://aquasecurity.github.io/trivy/latest/docs/configuration/reporting/#json
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.readers.tool_reports import IngestError, check_age

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class TrivyFinding:
    vulnerability_id: str
    package: str
    installed_version: str
    fixed_version: str
    severity: str
    target: str

    def describe(self) -> str:
        fixed = f", fixed in {self.fixed_version}" if self.fixed_version else ", no fix yet"
        return (
            f"{self.vulnerability_id} ({self.severity}) in {self.package} "
            f"{self.installed_version}{fixed} [{self.target}]"
        )


@dataclass(frozen=True)
class TrivySummary:
    """What a Trivy report found: counts per severity and every finding."""

    path: Path
    artifact: str
    artifact_type: str
    created_at: dt.datetime | None
    findings: tuple[TrivyFinding, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Findings per severity, ``{"CRITICAL": 0, "HIGH": 1, ...}`` (every level present)."""
        counts = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def at(self, severity: str) -> list[TrivyFinding]:
        return [f for f in self.findings if f.severity == severity]


def load_trivy(path: Path | str, max_age_hours: float | None = None) -> TrivySummary:
    """Read a Trivy JSON report; IngestError (naming the file) if missing, malformed or stale."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(f"{path}: Trivy report not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path}: not a Trivy JSON report: {exc}") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
    summary = parse_trivy(data, path)
    if max_age_hours is not None:
        check_age(path, summary.created_at, max_age_hours)
    return summary


def parse_trivy(data: Any, path: Path) -> TrivySummary:
    if not isinstance(data, dict):
        raise IngestError(f"{path}: not a Trivy JSON report: expected an object at the top")
    version = data.get("SchemaVersion")
    if version != SCHEMA_VERSION:
        raise IngestError(
            f"{path}: not a Trivy JSON report: SchemaVersion is {version!r}, expected "
            f"{SCHEMA_VERSION} (trivy --format json)"
        )
    artifact = data.get("ArtifactName")
    if not isinstance(artifact, str) or not artifact:
        raise IngestError(f"{path}: malformed Trivy report: ArtifactName is missing")
    results = data.get("Results")
    if results is None:  # a clean scan of some artifacts has no Results at all
        results = []
    if not isinstance(results, list):
        raise IngestError(f"{path}: malformed Trivy report: Results is not a list")
    findings: list[TrivyFinding] = []
    for number, result in enumerate(results):
        findings += _findings(result, f"{path}: Results[{number}]")
    return TrivySummary(
        path=path,
        artifact=artifact,
        artifact_type=str(data.get("ArtifactType") or ""),
        created_at=_timestamp(data.get("CreatedAt"), path),
        findings=tuple(findings),
    )


def _findings(result: Any, where: str) -> list[TrivyFinding]:
    if not isinstance(result, dict):
        raise IngestError(f"{where}: malformed Trivy report: a result is not an object")
    vulnerabilities = result.get("Vulnerabilities") or []
    if not isinstance(vulnerabilities, list):
        raise IngestError(f"{where}: malformed Trivy report: Vulnerabilities is not a list")
    target = str(result.get("Target") or "")
    found = []
    for index, vulnerability in enumerate(vulnerabilities):
        if not isinstance(vulnerability, dict) or not vulnerability.get("VulnerabilityID"):
            raise IngestError(
                f"{where}.Vulnerabilities[{index}]: malformed Trivy report: no VulnerabilityID"
            )
        severity = str(vulnerability.get("Severity") or "UNKNOWN").upper()
        if severity not in SEVERITIES:
            raise IngestError(
                f"{where}.Vulnerabilities[{index}]: malformed Trivy report: Severity "
                f"{severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        found.append(
            TrivyFinding(
                vulnerability_id=str(vulnerability["VulnerabilityID"]),
                package=str(vulnerability.get("PkgName") or ""),
                installed_version=str(vulnerability.get("InstalledVersion") or ""),
                fixed_version=str(vulnerability.get("FixedVersion") or ""),
                severity=severity,
                target=target,
            )
        )
    return found


def _timestamp(value: Any, path: Path) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(
            f"{path}: malformed Trivy report: CreatedAt {value!r} is not an RFC 3339 time"
        ) from None


__all__ = ["SEVERITIES", "TrivyFinding", "TrivySummary", "load_trivy", "parse_trivy"]
