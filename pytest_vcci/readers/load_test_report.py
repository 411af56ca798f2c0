"""Load-test results: Locust CSV stats and k6 JSON summaries (7.1.1).

- Locust (``locust --csv PREFIX``): ``PREFIX_stats.csv`` has one row per endpoint and an
  ``Aggregated`` row with request and failure counts and response-time percentiles in ms.
  ``PREFIX_stats_history.csv`` next to it, when present, gives the user count over time (the
  peak is the concurrent users the test reached) and the time of the last sample (the
  report's age). https://docs.locust.io/en/stable/retrieving-stats.html
- k6 (``k6 run --summary-export FILE``, or the JSON ``handleSummary`` gets): ``metrics`` with
  ``http_req_duration`` percentiles (``p(95)``, ``p(99)`` needs ``--summary-trend-stats``),
  ``http_req_failed`` (a rate: ``passes`` counts failed requests), ``http_reqs`` and
  ``vus_max``. A summary has no timestamp: its age is the file's.
  https://grafana.com/docs/k6/latest/results-output/end-of-test/

A missing, malformed or stale file raises :class:`IngestError` naming the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vcci.readers.tool_reports import IngestError, check_age

LOCUST_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "95%", "99%")


@dataclass(frozen=True)
class LoadTestResult:
    """What a load test reached, in one shape for both tools (times in ms)."""

    tool: str
    path: Path
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float
    p99_ms: float
    peak_users: int | None  # None: the report does not say
    generated_at: dt.datetime | None = None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "file": str(self.path),
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": round(self.error_rate, 6),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "peak_users": self.peak_users,
            "generated_at": self.generated_at.isoformat() if self.generated_at else None,
        }


# --- Locust ---------------------------------------------------------------------------------


def read_locust(path: Path, max_age_hours: float) -> LoadTestResult:
    """The Aggregated row of a Locust ``*_stats.csv`` (+ peak users from its history)."""
    rows = _csv_rows(path, "Locust stats CSV")
    missing = [c for c in LOCUST_COLUMNS if c not in rows[0]]
    if missing:
        raise IngestError(
            f"{path}: not a Locust stats CSV: no column {missing[0]!r} "
            "(expected the *_stats.csv that `locust --csv` writes)"
        )
    total = [r for r in rows if r.get("Name") == "Aggregated"]
    if not total:
        raise IngestError(f"{path}: not a Locust stats CSV: no 'Aggregated' row")
    row = total[-1]
    requests = _number(path, row, "Request Count", integer=True)
    if requests <= 0:
        raise IngestError(f"{path}: the Locust report has no requests (Request Count 0)")
    history = _history(path)
    generated_at = history[1] if history else None
    check_age(path, generated_at, max_age_hours)
    return LoadTestResult(
        tool="locust",
        path=path,
        requests=int(requests),
        failures=int(_number(path, row, "Failure Count", integer=True)),
        p50_ms=_number(path, row, "50%") if "50%" in row else None,
        p95_ms=_number(path, row, "95%"),
        p99_ms=_number(path, row, "99%"),
        peak_users=history[0] if history else None,
        generated_at=generated_at,
    )


def _csv_rows(path: Path, what: str) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise IngestError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not a {what}: not UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise IngestError(f"{path}: not a {what}: {exc}") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
    if not rows:
        raise IngestError(f"{path}: not a {what}: no rows")
    return rows


def _number(path: Path, row: dict[str, str], column: str, integer: bool = False) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise IngestError(
            f"{path}: row {row.get('Name')!r}: {column} is {raw!r}, not a number"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise IngestError(f"{path}: row {row.get('Name')!r}: {column} is {raw!r}")
    return value


def _history(stats: Path) -> tuple[int, dt.datetime] | None:
    """(peak users, time of the last sample) from ``*_stats_history.csv``, if it is there."""
    if not stats.name.endswith("_stats.csv"):
        return None
    path = stats.with_name(stats.name.removesuffix("_stats.csv") + "_stats_history.csv")
    if not path.exists():
        return None
    rows = _csv_rows(path, "Locust stats history CSV")
    for column in ("Timestamp", "User Count"):
        if column not in rows[0]:
            raise IngestError(f"{path}: not a Locust stats history CSV: no column {column!r}")
    users = [_number(path, r, "User Count", integer=True) for r in rows]
    last = max(_number(path, r, "Timestamp") for r in rows)
    return int(max(users)), dt.datetime.fromtimestamp(last, dt.UTC)


# --- k6 -------------------------------------------------------------------------------------


def read_k6(path: Path, max_age_hours: float) -> LoadTestResult:
    """A k6 end-of-test summary (``--summary-export`` or ``handleSummary`` JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(f"{path}: k6 summary not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path}: not a k6 summary: not valid JSON ({exc})") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise IngestError(f"{path}: not a k6 summary: no 'metrics' object")
    duration = _k6_metric(path, metrics, "http_req_duration")
    for stat in ("p(95)", "p(99)"):
        if stat not in duration:
            raise IngestError(
                f"{path}: k6 summary has no http_req_duration {stat} "
                '(run k6 with --summary-trend-stats="avg,med,p(95),p(99),max")'
            )
    requests = _k6_value(path, _k6_metric(path, metrics, "http_reqs"), "count")
    failed = _k6_metric(path, metrics, "http_req_failed")
    # http_req_failed is a Rate: "passes" are requests for which "failed" was true.
    failures = (
        _k6_value(path, failed, "passes")
        if "passes" in failed
        else round(_k6_value(path, failed, "rate" if "rate" in failed else "value") * requests)
    )
    users = metrics.get("vus_max")
    peak = None
    if isinstance(users, dict):
        values = users.get("values", users)
        peak = values.get("max", values.get("value"))
    check_age(path, None, max_age_hours)
    return LoadTestResult(
        tool="k6",
        path=path,
        requests=int(requests),
        failures=int(failures),
        p50_ms=float(duration["med"]) if isinstance(duration.get("med"), int | float) else None,
        p95_ms=_k6_value(path, duration, "p(95)"),
        p99_ms=_k6_value(path, duration, "p(99)"),
        peak_users=int(peak) if isinstance(peak, int | float) else None,
    )


def _k6_metric(path: Path, metrics: dict[str, Any], name: str) -> dict[str, Any]:
    metric = metrics.get(name)
    if not isinstance(metric, dict):
        raise IngestError(f"{path}: not a k6 summary of HTTP tests: no metric {name!r}")
    # handleSummary nests the numbers under "values"; --summary-export does not.
    values = metric.get("values", metric)
    if not isinstance(values, dict):
        raise IngestError(f"{path}: k6 metric {name!r} has no values")
    return values


def _k6_value(path: Path, values: dict[str, Any], key: str) -> float:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IngestError(f"{path}: k6 summary: {key} is {value!r}, not a number")
    return float(value)


def read_load_test(tool: str, path: Path, max_age_hours: float) -> LoadTestResult:
    """``tool``: ``locust`` or ``k6`` (the [reports] key the path came from)."""
    readers = {"locust": read_locust, "k6": read_k6}
    return readers[tool](path, max_age_hours)
