"""Documents and tool reports of the sandbox's staging: the docs tree and fresh scan reports.

Nothing runs: start() copies the packaged documentation (``sandbox/docs/``: user guides, admin
documentation, API extras and the nine runbooks) into ``<workdir>/docs`` and writes the reports
the suites ingest, stamped with the time of the start so they are never stale:

- ``reports/zap-baseline.json``: an OWASP ZAP "Traditional JSON" report, no High alerts;
- ``reports/trivy/<image>.json``: Trivy image scans (schema 2) of the three 2.0.0 images, clean;
- ``reports/locust/vcci_stats.csv`` (+ ``_stats_history``, ``_failures``, ``_exceptions``):
  a Locust run at 10,000 users within the 7.1.1 limits.

[docs].directory is ``<workdir>``, the root that holds ``docs/`` the way a repository does, so
``docs/runbooks/DATA_RECOVERY.md`` (8.2.3) is a path relative to it. The writers are plain
functions so tests can write broken reports (stale, with a High alert) the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component

DOCS_SOURCE = Path(__file__).parent / "docs"
ZAP_SITE = "https://api.staging.vcci.greenlang.io"
ZAP_VERSION = "2.15.0"
IMAGES = {
    "vcci-backend": "df2c591b97019741a6dc00d36797066292ad9c18d3f2fb4e277ccdd9a5fe8127",
    "vcci-frontend": "b6f2cb347f0ba17a51e40edc0823ccd7beaf3482a5a40e405973bd1662c921da",
    "vcci-worker": "58de813a05a21514cb56d93dcaf675d78efeede2326a023437bca4f86bc9f101",
}
REGISTRY = "registry.vcci.internal"
RELEASE = "2.0.0"
# What the executive dashboard (10.2.4) plots: the sample API's business metrics.
BUSINESS_METRICS = (
    "vcci_suppliers_processed_total",
    "vcci_emissions_calculations_total",
    "vcci_reports_generated_total",
    "vcci_active_tenants",
)


@dataclass
class ArtifactsComponent(Component):
    """The docs tree and fresh ZAP, Trivy and Locust reports; no process."""

    name: str = "artifacts"
    report_age_hours: float = 0.0  # > 0 back-dates every report (stale-report tests)
    zap_high_alerts: int = 0  # > 0 adds High alerts to the ZAP report
    missing_docs: tuple[str, ...] = ()  # paths under docs/ left out (missing-document tests)

    @property
    def docs_dir(self) -> Path:
        return self.workdir / "docs"

    @property
    def reports_dir(self) -> Path:
        return self.workdir / "reports"

    def start(self) -> None:
        shutil.rmtree(self.docs_dir, ignore_errors=True)
        shutil.copytree(DOCS_SOURCE, self.docs_dir)
        for relative in self.missing_docs:
            (self.docs_dir / relative).unlink()
        when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=self.report_age_hours)
        write_zap_report(self.zap_path, generated_at=when, high_alerts=self.zap_high_alerts)
        for image in IMAGES:
            write_trivy_report(self.trivy_path(image), image, generated_at=when)
        write_locust_reports(self.locust_path, generated_at=when)

    @property
    def zap_path(self) -> Path:
        return self.reports_dir / "zap-baseline.json"

    def trivy_path(self, image: str) -> Path:
        return self.reports_dir / "trivy" / f"{image}.json"

    @property
    def locust_path(self) -> Path:
        return self.reports_dir / "locust" / "vcci_stats.csv"

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {
            "docs": {"directory": str(self.workdir)},
            "reports": {
                "zap": str(self.zap_path),
                "trivy": [str(self.trivy_path(image)) for image in IMAGES],
                "locust": str(self.locust_path),
                "max_age_hours": 168.0,
            },
        }

    def expect(self) -> dict[str, Any]:
        """Names the suites look for, for the environment file's [expect] table."""
        return {
            "executive_dashboard": {
                "uid": "vcci-executive",
                "business_metrics": list(BUSINESS_METRICS),
            },
        }


# --- OWASP ZAP ------------------------------------------------------------------------------


def _zap_alert(
    plugin: str,
    name: str,
    risk: int,
    confidence: int,
    cwe: int,
    wasc: int,
    uris: list[str],
    desc: str,
    solution: str,
) -> dict[str, Any]:
    risks = ("Informational", "Low", "Medium", "High")
    confidences = ("False Positive", "Low", "Medium", "High", "Confirmed")
    return {
        "pluginid": plugin,
        "alertRef": plugin,
        "alert": name,
        "name": name,
        "riskcode": str(risk),
        "confidence": str(confidence),
        "riskdesc": f"{risks[risk]} ({confidences[confidence]})",
        "desc": f"<p>{desc}</p>",
        "instances": [
            {
                "id": str(100 + i),
                "uri": uri,
                "nodeName": uri,
                "method": "GET",
                "param": "",
                "attack": "",
                "evidence": "",
                "otherinfo": "",
            }
            for i, uri in enumerate(uris)
        ],
        "count": str(len(uris)),
        "systemic": False,
        "solution": f"<p>{solution}</p>",
        "otherinfo": "",
        "reference": "",
        "cweid": str(cwe),
        "wascid": str(wasc),
        "sourceid": "3",
    }


def zap_report(
    generated_at: dt.datetime, high_alerts: int = 0, site: str = ZAP_SITE
) -> dict[str, Any]:
    """A baseline scan of the API: Low and Informational findings only, unless asked."""
    alerts = [
        _zap_alert(
            "10036",
            'Server Leaks Version Information via "Server" HTTP Response Header Field',
            1,
            3,
            200,
            13,
            [f"{site}/health/live", f"{site}/docs"],
            "The web server leaks version information in the Server header.",
            "Configure the server to suppress the Server header or give a generic one.",
        ),
        _zap_alert(
            "10049",
            "Non-Storable Content",
            0,
            2,
            524,
            13,
            [f"{site}/api/v1/me"],
            "The response contents are not storable by caching components.",
            "No action needed for authenticated API responses.",
        ),
        _zap_alert(
            "10104",
            "User Agent Fuzzer",
            0,
            2,
            0,
            0,
            [f"{site}/"],
            "Checked for differences in response based on a fuzzed User Agent.",
            "No action needed.",
        ),
    ]
    for n in range(high_alerts):
        alerts.append(
            _zap_alert(
                "40018",
                "SQL Injection",
                3,
                2,
                89,
                19,
                [f"{site}/api/v1/suppliers?name=%27+OR+%271%27%3D%271&page={n + 1}"],
                "SQL injection may be possible.",
                "Use parameterised queries; never build SQL from request input.",
            )
        )
    parts = site.split("://", 1)[-1].split(":")
    return {
        "@programName": "ZAP",
        "@version": ZAP_VERSION,
        # ZAP writes this one without a zone ("Sun, 22 Nov 2026 10:59:47").
        "@generated": format_datetime(generated_at.astimezone(dt.UTC)).removesuffix(" +0000"),
        "created": generated_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "site": [
            {
                "@name": site,
                "@host": parts[0],
                "@port": parts[1] if len(parts) > 1 else "443",
                "@ssl": str(site.startswith("https")).lower(),
                "alerts": alerts,
            }
        ],
    }


def write_zap_report(path: Path, *, generated_at: dt.datetime, high_alerts: int = 0) -> Path:
    _write(path, json.dumps(zap_report(generated_at, high_alerts), indent=2), generated_at)
    return path


# --- Trivy ----------------------------------------------------------------------------------


def trivy_report(image: str, generated_at: dt.datetime) -> dict[str, Any]:
    """A Trivy image scan (``trivy image -f json``) of a clean Wolfi-based image."""
    digest = IMAGES[image]
    name = f"{REGISTRY}/{image}:{RELEASE}"
    image_id = "sha256:" + hashlib.sha256(f"{image}-config".encode()).hexdigest()
    return {
        "SchemaVersion": 2,
        "CreatedAt": generated_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "ArtifactName": f"{name}@sha256:{digest}",
        "ArtifactType": "container_image",
        "Metadata": {
            "OS": {"Family": "wolfi", "Name": "20230201"},
            "ImageID": image_id,
            "DiffIDs": [
                "sha256:" + hashlib.sha256(f"{image}-layer-{i}".encode()).hexdigest()
                for i in range(3)
            ],
            "RepoTags": [name],
            "RepoDigests": [f"{REGISTRY}/{image}@sha256:{digest}"],
            "ImageConfig": {"architecture": "amd64", "os": "linux", "config": {"User": "10001"}},
        },
        "Results": [
            {"Target": f"{name} (wolfi 20230201)", "Class": "os-pkgs", "Type": "wolfi"},
            {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg"},
        ],
    }


def write_trivy_report(path: Path, image: str, *, generated_at: dt.datetime) -> Path:
    _write(path, json.dumps(trivy_report(image, generated_at), indent=2), generated_at)
    return path


# --- Locust ---------------------------------------------------------------------------------

PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")
# (method, name, requests, median ms, average ms, min ms, max ms, size, percentiles ms)
LOCUST_ROWS = (
    (
        "GET",
        "/api/v1/suppliers",
        842_113,
        110,
        142.6,
        18,
        1870,
        2311,
        (110, 140, 170, 190, 260, 330, 420, 610, 990, 1500, 1870),
    ),
    (
        "POST",
        "/api/v1/calculations",
        421_307,
        150,
        181.2,
        31,
        2140,
        412,
        (150, 190, 220, 250, 330, 410, 520, 740, 1200, 1900, 2140),
    ),
    (
        "POST",
        "/api/v1/ingestions",
        84_221,
        190,
        228.4,
        44,
        2380,
        318,
        (190, 230, 270, 300, 380, 460, 580, 820, 1400, 2100, 2380),
    ),
    (
        "GET",
        "/api/v1/me",
        210_554,
        48,
        61.9,
        6,
        920,
        402,
        (48, 60, 72, 80, 110, 150, 210, 330, 610, 840, 920),
    ),
    (
        "GET",
        "/health/ready",
        105_276,
        12,
        16.3,
        2,
        410,
        231,
        (12, 15, 18, 20, 27, 35, 52, 90, 240, 380, 410),
    ),
)
LOCUST_SECONDS = 3600
PEAK_USERS = 10_000


def _aggregate() -> tuple[Any, ...]:
    requests = sum(r[2] for r in LOCUST_ROWS)
    average = sum(r[2] * r[4] for r in LOCUST_ROWS) / requests
    size = sum(r[2] * r[7] for r in LOCUST_ROWS) / requests
    return (
        "",
        "Aggregated",
        requests,
        110,
        average,
        min(r[5] for r in LOCUST_ROWS),
        max(r[6] for r in LOCUST_ROWS),
        size,
        (110, 140, 170, 190, 260, 340, 430, 640, 1050, 1700, 2380),
    )


def write_locust_reports(stats: Path, *, generated_at: dt.datetime) -> Path:
    """``locust --csv=vcci --headless -u 10000``: stats, history, failures, exceptions."""
    stats.parent.mkdir(parents=True, exist_ok=True)
    prefix = str(stats).removesuffix("_stats.csv")
    with stats.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "Type",
                "Name",
                "Request Count",
                "Failure Count",
                "Median Response Time",
                "Average Response Time",
                "Min Response Time",
                "Max Response Time",
                "Average Content Size",
                "Requests/s",
                "Failures/s",
                *PERCENTILES,
            ]
        )
        for method, name, count, median, avg, low, high, size, pcts in (*LOCUST_ROWS, _aggregate()):
            out.writerow(
                [
                    method,
                    name,
                    count,
                    0,
                    median,
                    round(avg, 6),
                    low,
                    high,
                    round(size, 6),
                    round(count / LOCUST_SECONDS, 6),
                    0.0,
                    *pcts,
                ]
            )
    _history(Path(f"{prefix}_stats_history.csv"), generated_at)
    Path(f"{prefix}_failures.csv").write_text("Method,Name,Error,Occurrences\n")
    Path(f"{prefix}_exceptions.csv").write_text("Count,Message,Traceback,Nodes\n")
    for path in (
        stats,
        *(Path(f"{prefix}{s}") for s in ("_stats_history.csv", "_failures.csv", "_exceptions.csv")),
    ):
        _touch(path, generated_at)
    return stats


def _history(path: Path, generated_at: dt.datetime) -> None:
    end = int(generated_at.timestamp())
    aggregate = _aggregate()
    total = aggregate[2]
    steps = 12
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "Timestamp",
                "User Count",
                "Type",
                "Name",
                "Requests/s",
                "Failures/s",
                *PERCENTILES,
                "Total Request Count",
                "Total Failure Count",
                "Total Median Response Time",
                "Total Average Response Time",
                "Total Min Response Time",
                "Total Max Response Time",
                "Total Average Content Size",
            ]
        )
        for step in range(1, steps + 1):
            share = step / steps
            users = min(PEAK_USERS, int(PEAK_USERS * step / 4))  # ramp up over 15 minutes
            out.writerow(
                [
                    end - LOCUST_SECONDS + int(LOCUST_SECONDS * share),
                    users,
                    "",
                    "Aggregated",
                    round(total / LOCUST_SECONDS * users / PEAK_USERS, 2),
                    0.0,
                    *aggregate[8],
                    int(total * share),
                    0,
                    aggregate[3],
                    round(aggregate[4], 2),
                    aggregate[5],
                    aggregate[6],
                    round(aggregate[7], 2),
                ]
            )


# --- helpers --------------------------------------------------------------------------------


def _write(path: Path, text: str, when: dt.datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    _touch(path, when)


def _touch(path: Path, when: dt.datetime) -> None:
    """The file's mtime is the report's time (a back-dated report is stale by either)."""
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


__all__ = [
    "ArtifactsComponent",
    "write_locust_reports",
    "write_trivy_report",
    "write_zap_report",
    "zap_report",
]
