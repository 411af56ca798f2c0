"""OWASP ZAP report ingestion: risk counts, High alerts, malformed and stale reports."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from pytest_vcci.readers.tool_reports import IngestError, check_age
from pytest_vcci.readers.zap_report import load_zap
from pytest_vcci.sandbox.artifacts import write_zap_report, zap_report

NOW = dt.datetime.now(dt.UTC)


def write(tmp_path: Path, data: object, name: str = "zap.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_clean_report_counts_alerts_by_risk(tmp_path: Path) -> None:
    report = load_zap(write_zap_report(tmp_path / "zap.json", generated_at=NOW), 24)
    assert report.counts() == {"High": 0, "Medium": 0, "Low": 1, "Informational": 2}
    assert report.high == []
    assert report.sites == ("https://api.staging.vcci.greenlang.io",)
    assert report.generated_at is not None
    assert abs((report.generated_at - NOW).total_seconds()) < 1


def test_high_alerts_are_found(tmp_path: Path) -> None:
    path = write_zap_report(tmp_path / "zap.json", generated_at=NOW, high_alerts=2)
    report = load_zap(path, 24)
    assert report.counts()["High"] == 2
    assert {a.name for a in report.high} == {"SQL Injection"}


def test_risk_from_riskdesc_when_riskcode_is_absent(tmp_path: Path) -> None:
    data = zap_report(NOW)
    alert = data["site"][0]["alerts"][0]
    del alert["riskcode"]
    alert["riskdesc"] = "High (Medium)"
    assert load_zap(write(tmp_path, data)).counts()["High"] == 1


def test_false_positives_are_not_counted(tmp_path: Path) -> None:
    data = zap_report(NOW, high_alerts=1)
    data["site"][0]["alerts"][-1]["confidence"] = "0"
    assert load_zap(write(tmp_path, data)).counts()["High"] == 0


def test_generated_without_created_is_read(tmp_path: Path) -> None:
    data = zap_report(NOW)
    del data["created"]
    report = load_zap(write(tmp_path, data))
    assert report.generated_at == NOW.replace(microsecond=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a ZAP JSON report"),
        ('{"@version": "2.15.0"}', "no 'site' list"),
        ('{"site": [{"@name": "x", "alerts": [{"name": "A", "riskcode": "7"}]}]}', "riskcode"),
        ('{"site": [{"alerts": [{"name": "A", "riskdesc": "Severe"}]}]}', "no riskcode"),
        ('{"created": "yesterday", "site": []}', "not an ISO 8601 time"),
    ],
)
def test_malformed_report_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "zap.json"
    path.write_text(content)
    with pytest.raises(IngestError, match=message) as raised:
        load_zap(path)
    assert str(path) in str(raised.value)


def test_missing_report_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="ZAP report not found"):
        load_zap(tmp_path / "absent.json")


def test_stale_report_by_its_own_date(tmp_path: Path) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=200)  # now, not at import: no drift
    path = write_zap_report(tmp_path / "zap.json", generated_at=old)
    os.utime(path)  # a fresh mtime must not hide the report's own age
    with pytest.raises(IngestError, match=r"stale: generated .*200\.0 h ago.*168 h limit"):
        load_zap(path, 168)


def test_stale_report_by_mtime_when_undated(tmp_path: Path) -> None:
    data = zap_report(NOW)
    del data["created"], data["@generated"]
    path = write(tmp_path, data)
    stamp = (NOW - dt.timedelta(hours=30)).timestamp()
    os.utime(path, (stamp, stamp))
    with pytest.raises(IngestError, match="stale: file modified"):
        load_zap(path, 24)
    assert load_zap(path, 48).counts()["High"] == 0


def test_check_age_takes_naive_times_as_utc(tmp_path: Path) -> None:
    naive = (NOW - dt.timedelta(hours=2)).replace(tzinfo=None)
    check_age(tmp_path / "any.json", naive, 3)
    with pytest.raises(IngestError, match="1 h limit"):
        check_age(tmp_path / "any.json", naive, 1)
