"""Locust and k6 results (7.1.1): what is read, and the clear errors for bad or old files."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from pytest_vcci.readers.load_test_report import read_k6, read_load_test, read_locust
from pytest_vcci.readers.tool_reports import IngestError

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
)
HISTORY = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,"
    "99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count\n"
)


def locust(
    directory: Path, *, failures: int = 0, history_at: float | None = None, users: int = 10_000
) -> Path:
    stats = directory / "run_stats.csv"
    stats.write_text(
        HEADER
        + "GET,/api/v1/suppliers,9000,0,110,140,18,1870,2311,150,0,110,140,170,190,260,330,420,"
        "610,990,1500,1870\n"
        + f",Aggregated,10000,{failures},110,150,18,1870,2300,166,0,110,140,170,190,260,340,430,"
        "640,1050,1700,1870\n"
    )
    if history_at is not None:
        (directory / "run_stats_history.csv").write_text(
            HISTORY + f"{int(history_at) - 60},{users // 2},,Aggregated,80,0,110,140,170,190,260,"
            "340,430,640,1050,1700,1870,5000,0\n"
            + f"{int(history_at)},{users},,Aggregated,166,0,110,140,170,190,260,340,430,640,"
            "1050,1700,1870,10000,0\n"
        )
    return stats


def test_locust_aggregated_row_and_peak_users(tmp_path: Path) -> None:
    result = read_locust(locust(tmp_path, failures=3, history_at=time.time()), 168)
    assert (result.requests, result.failures, result.p95_ms, result.p99_ms) == (10000, 3, 340, 640)
    assert result.peak_users == 10_000
    assert result.error_rate == pytest.approx(0.0003)
    assert result.generated_at is not None


def test_locust_without_history_does_not_know_its_users(tmp_path: Path) -> None:
    assert read_locust(locust(tmp_path), 168).peak_users is None


def test_locust_stale_by_its_last_sample(tmp_path: Path) -> None:
    stats = locust(tmp_path, history_at=time.time() - 200 * 3600)
    with pytest.raises(
        IngestError,
        match=r"run_stats\.csv: report is stale: generated .* older "
        r"than the 168 h limit \(\[reports\]\.max_age_hours\)",
    ):
        read_locust(stats, 168)


def test_locust_stale_by_file_time_without_history(tmp_path: Path) -> None:
    stats = locust(tmp_path)
    old = time.time() - 10 * 3600
    os.utime(stats, (old, old))
    with pytest.raises(IngestError, match="stale: file modified"):
        read_locust(stats, 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rows"),
        ("a,b\n1,2\n", "no column 'Type'"),
        (HEADER + "GET,/x,1,0,1,1,1,1,1,1,0,1,1,1,1,1,1,1,1,1,1,1\n", "no 'Aggregated' row"),
        (
            HEADER + ",Aggregated,lots,0,1,1,1,1,1,1,0,1,1,1,1,1,1,1,1,1,1,1\n",
            "Request Count is 'lots', not a number",
        ),
        (
            HEADER + ",Aggregated,10,0,1,1,1,1,1,1,0,1,1,1,1,1,N/A,1,1,1,1,1\n",
            "95% is 'N/A', not a number",
        ),
        (HEADER + ",Aggregated,0,0,1,1,1,1,1,1,0,1,1,1,1,1,1,1,1,1,1,1\n", "no requests"),
    ],
)
def test_locust_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad_stats.csv"
    path.write_text(text)
    with pytest.raises(IngestError, match=message) as raised:
        read_locust(path, 168)
    assert str(path) in str(raised.value)


def test_locust_missing_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        read_locust(tmp_path / "none_stats.csv", 168)
    path = tmp_path / "binary_stats.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(IngestError, match="not UTF-8"):
        read_locust(path, 168)


def k6(path: Path, **duration: float) -> Path:
    stats = {"avg": 120.5, "med": 101.0, "p(90)": 260.0, "p(95)": 412.5, "p(99)": 795.3, **duration}
    path.write_text(
        json.dumps(
            {
                "metrics": {
                    "http_req_duration": stats,
                    "http_req_failed": {"passes": 12, "fails": 99_988, "value": 0.00012},
                    "http_reqs": {"count": 100_000, "rate": 55.5},
                    "vus_max": {"value": 10_000, "min": 10_000, "max": 10_000},
                }
            }
        )
    )
    return path


def test_k6_summary_export(tmp_path: Path) -> None:
    result = read_k6(k6(tmp_path / "summary.json"), 168)
    assert (result.requests, result.failures, result.p95_ms, result.p99_ms) == (
        100_000,
        12,
        412.5,
        795.3,
    )
    assert result.peak_users == 10_000
    assert result.p50_ms == 101.0


def test_k6_handle_summary_shape(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(
        json.dumps(
            {
                "metrics": {
                    "http_req_duration": {"type": "trend", "values": {"p(95)": 300, "p(99)": 600}},
                    "http_req_failed": {
                        "type": "rate",
                        "values": {"rate": 0, "passes": 0, "fails": 50},
                    },
                    "http_reqs": {"type": "counter", "values": {"count": 50, "rate": 5}},
                    "vus_max": {"type": "gauge", "values": {"value": 200, "min": 200, "max": 200}},
                }
            }
        )
    )
    result = read_load_test("k6", path, 168)
    assert (result.requests, result.failures, result.peak_users) == (50, 0, 200)


def test_k6_without_p99_says_how_to_get_it(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(
        json.dumps(
            {
                "metrics": {
                    "http_req_duration": {"avg": 1, "p(90)": 2, "p(95)": 3},
                    "http_reqs": {"count": 1},
                    "http_req_failed": {"passes": 0, "fails": 1},
                }
            }
        )
    )
    with pytest.raises(IngestError, match=r"no http_req_duration p\(99\).*--summary-trend-stats"):
        read_k6(path, 168)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "no 'metrics' object"),
        ('{"metrics": {}}', "no metric 'http_req_duration'"),
    ],
)
def test_k6_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "summary.json"
    path.write_text(text)
    with pytest.raises(IngestError, match=message):
        read_k6(path, 168)


def test_k6_stale_by_file_time(tmp_path: Path) -> None:
    path = k6(tmp_path / "summary.json")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)).timestamp()
    os.utime(path, (old, old))
    with pytest.raises(IngestError, match=r"summary\.json: report is stale"):
        read_k6(path, 24)
