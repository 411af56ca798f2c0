"""11. Final validation: smoke tests, security scan, performance benchmarks, compliance, CAB.

Read-only throughout: smoke tests and the frontend timing are GET requests, the database timing
runs [performance].db_queries in read-only transactions (a bounded, sequential sample: no load),
and latency and throughput come from Prometheus over [performance].window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

# The application's metric names (the same the 5.3.1 alert rules use).
LATENCY_BUCKETS = "http_request_duration_seconds_bucket"
SUPPLIERS_PROCESSED = "vcci_suppliers_processed_total"


def performance(settings: Any) -> Any:
    """The [performance] table, or its defaults when the environment file has none."""
    from pytest_vcci.settings import PerformanceTable

    return settings.table("performance") or PerformanceTable()


def scalar(prometheus: Any, expr: str) -> float | None:
    """The single value of an instant query (None when Prometheus has no sample)."""
    result = prometheus.query(expr)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.95 for p95)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# --- the frontend ---------------------------------------------------------------------------


class _Assets(HTMLParser):
    """Scripts, stylesheets, icons, preloads and images a page asks the browser to load."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        rel = (found.get("rel") or "").lower().split()
        if tag in ("script", "img") and found.get("src"):
            self.urls.append(str(found["src"]))
        elif (
            tag == "link"
            and found.get("href")
            and {"stylesheet", "icon", "modulepreload", "preload", "manifest"} & set(rel)
        ):
            self.urls.append(str(found["href"]))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


@dataclass
class FrontendLoad:
    url: str
    status: int
    content_type: str
    title: str = ""
    assets: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # other origins (CDNs): not fetched
    seconds: float = 0.0


def load_frontend(api: Any, path: str) -> FrontendLoad:
    """GET the page and every same-origin asset it references, one after the other."""
    client = api.anonymous()  # the landing page and its assets are public
    started = time.perf_counter()
    page = client.get(path)
    load = FrontendLoad(client.url(path), page.status_code, page.headers.get("Content-Type", ""))
    if page.status_code == 200 and load.content_type.startswith("text/html"):
        parser = _Assets()
        parser.feed(page.text)
        load.title = parser.title.strip()
        origin = urlsplit(client.base_url).netloc
        for src in dict.fromkeys(parser.urls):
            absolute = urljoin(load.url, src)
            if urlsplit(absolute).netloc != origin:
                load.foreign.append(absolute)
                continue
            response = client.get(absolute)
            load.assets.append(
                {
                    "url": urlsplit(absolute).path,
                    "status": response.status_code,
                    "bytes": len(response.content),
                    "content_type": response.headers.get("Content-Type", ""),
                }
            )
    load.seconds = time.perf_counter() - started
    return load


# --- 11.1.1 smoke tests ---------------------------------------------------------------------


@pytest.mark.smoke("api", "health endpoints")
@pytest.mark.checklist("11.1.1")
def test_health_endpoints_respond(api: Any, threshold: Any, evidence: Any) -> None:
    """Every health endpoint answers 200 and reports its status as ok."""
    for path in threshold("11.1.1", "health_paths"):
        response = api.anonymous().get(path)
        where = f"GET {api.base_url}{path}"
        evidence.check(
            "HTTP status", response.status_code, 200, response.status_code == 200, where=where
        )
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if status is not None:
            evidence.check(
                "status", status, "ok", status in ("ok", "pass", "UP", "healthy"), where=where
            )


@pytest.mark.checklist("11.1.1")
def test_sample_api_requests_succeed(api: Any, threshold: Any, evidence: Any) -> None:
    """Sample authenticated API reads answer 2xx with JSON."""
    for path in threshold("11.1.1", "sample_paths"):
        response = api.get(path)
        where = f"GET {api.base_url}{path} ({api.credentials.describe()})"
        kind = response.headers.get("Content-Type", "")
        evidence.check(
            "HTTP status",
            response.status_code,
            "2xx",
            200 <= response.status_code < 300,
            where=where,
        )
        evidence.check(
            "content type",
            kind,
            "application/json",
            kind.startswith("application/json"),
            where=where,
        )


@pytest.mark.checklist("11.1.1")
def test_frontend_loads(api: Any, threshold: Any, evidence: Any) -> None:
    """The frontend page loads as HTML and every asset it references answers 200."""
    load = load_frontend(api, threshold("11.1.1", "frontend_path"))
    where = f"GET {load.url}"
    evidence.require("HTTP status", load.status, 200, load.status == 200, where=where)
    evidence.require(
        "content type",
        load.content_type,
        "text/html",
        load.content_type.startswith("text/html"),
        where=where,
    )
    evidence.check("title", load.title or "(none)", "a <title>", bool(load.title), where=where)
    evidence.record("assets of other origins (not fetched)", load.foreign, where=where)
    for asset in load.assets:
        ok = asset["status"] == 200 and asset["bytes"] > 0
        evidence.check(
            "asset",
            f"HTTP {asset['status']}, {asset['bytes']} bytes",
            "HTTP 200, not empty",
            ok,
            where=f"GET {asset['url']}",
        )


def _selector(text: str) -> dict[str, str]:
    return dict(part.strip().split("=", 1) for part in text.split(",") if "=" in part)


def _matches(labels: dict[str, str] | None, wanted: dict[str, str]) -> bool:
    return all((labels or {}).get(k) == v for k, v in wanted.items())


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@pytest.mark.checklist("11.1.1")
def test_worker_pods_ready(cluster: Any, namespace: str, threshold: Any, evidence: Any) -> None:
    """The background worker Deployments have every replica and pod Ready."""
    selector = threshold("11.1.1", "worker_selector")
    workers = [
        d
        for d in cluster.list("deployments", namespace=namespace)
        if _matches(d["metadata"].get("labels"), _selector(selector))
    ]
    evidence.require(
        "worker deployments",
        [d["metadata"]["name"] for d in workers],
        f"at least one labelled {selector}",
        bool(workers),
        where=f"namespace {namespace}",
    )
    pods = cluster.list("pods", namespace=namespace)
    for deployment in workers:
        name = deployment["metadata"]["name"]
        wanted = deployment["spec"].get("replicas", 1)
        ready = deployment.get("status", {}).get("readyReplicas", 0)
        evidence.check(
            "ready replicas",
            ready,
            f"{wanted} (>= 1)",
            ready == wanted >= 1,
            where=f"deployment {namespace}/{name}",
        )
        match = deployment["spec"]["selector"].get("matchLabels", {})
        mine = [p for p in pods if _matches(p["metadata"].get("labels"), match)]
        not_ready = [p["metadata"]["name"] for p in mine if not _ready(p)]
        evidence.check(
            "pods not Ready",
            not_ready or "none",
            "none",
            not not_ready,
            where=f"deployment {namespace}/{name}",
        )


@pytest.mark.checklist("11.1.1")
def test_workers_consuming(prometheus: Any, settings: Any, evidence: Any) -> None:
    """The workers are processing jobs: suppliers processed per hour is above zero."""
    window = performance(settings).window
    expr = f"sum(rate({SUPPLIERS_PROCESSED}[{window}])) * 3600"
    rate = scalar(prometheus, expr)
    evidence.check(
        "suppliers processed per hour",
        "no data" if rate is None else round(rate),
        "> 0",
        rate is not None and rate > 0,
        where=f"prometheus: {expr}",
    )


# --- 11.1.2 security scan -------------------------------------------------------------------


@pytest.mark.checklist("11.1.2")
def test_zap_scan_has_no_high_alerts(vcci_context: Any, threshold: Any, evidence: Any) -> None:
    """The OWASP ZAP report ([reports].zap) is fresh and has no High-risk alerts."""
    from pytest_vcci.readers.tool_reports import IngestError
    from pytest_vcci.readers.zap_report import load_zap

    table = vcci_context.target_table("reports")
    settings = vcci_context.settings
    if not table.zap:
        pytest.skip(f"[reports].zap is not set in {settings.source}")
    path = settings.resolve_path(table.zap)
    try:
        report = load_zap(path, table.max_age_hours)
    except IngestError as exc:
        evidence.require(
            "ZAP report",
            str(exc),
            f"a ZAP JSON report at most {table.max_age_hours:g} h old",
            False,
            where=f"ZAP report {path}",
        )
        raise
    where = f"ZAP report {path}"
    evidence.record("generated", report.generated_at, where=where)
    evidence.record("sites scanned", list(report.sites), where=where)
    evidence.record("alerts by risk", report.counts(), where=where)
    high = sorted({f"{a.name} ({a.site})" for a in report.high})
    most = threshold("11.1.2", "max_high_findings")
    evidence.check("High alerts", high or 0, f"<= {most}", len(report.high) <= most, where=where)


@pytest.mark.checklist("11.1.2")
def test_third_party_penetration_test(attest: Any) -> None:
    """A third-party penetration test is completed and its findings remediated (attested)."""
    attest("11.1.2")


# --- 11.1.3 performance benchmarks ----------------------------------------------------------


@pytest.mark.smoke("api", "performance")
@pytest.mark.checklist("11.1.3")
def test_api_latency_p95(
    prometheus: Any, settings: Any, expect: Any, threshold: Any, evidence: Any
) -> None:
    """API latency p95 over [performance].window is below 500 ms (Prometheus histogram)."""
    job = expect("monitoring", "api_job")
    window = performance(settings).window
    expr = (
        f'histogram_quantile(0.95, sum by (le) (rate({LATENCY_BUCKETS}{{job="{job}"}}'
        f"[{window}]))) * 1000"
    )
    p95 = scalar(prometheus, expr)
    limit = threshold("11.1.3", "api_p95_ms")
    evidence.check(
        "API p95 (ms)",
        "no data" if p95 is None else round(p95, 1),
        f"< {limit}",
        p95 is not None and p95 < limit,
        where=f"prometheus: {expr}",
    )


@pytest.mark.smoke("database", "performance")
@pytest.mark.checklist("11.1.3")
def test_database_query_p95(db: Any, settings: Any, threshold: Any, evidence: Any) -> None:
    """Database query p95 of [performance].db_queries (sequential, read-only) is below 100 ms."""
    samples = threshold("11.1.3", "db_samples")
    limit = threshold("11.1.3", "db_query_p95_ms")
    for query in performance(settings).db_queries:
        timings = []
        for _ in range(samples):
            began = time.perf_counter()
            db.rows(query)
            timings.append((time.perf_counter() - began) * 1000)
        p95 = percentile(timings, 0.95)
        evidence.check(
            "query p95 (ms)",
            round(p95, 2),
            f"< {limit}",
            p95 < limit,
            where=f"{db.describe()}: {query} x{samples}",
        )


@pytest.mark.checklist("11.1.3")
def test_worker_throughput(prometheus: Any, settings: Any, threshold: Any, evidence: Any) -> None:
    """Workers process more than 10,000 suppliers an hour over [performance].window."""
    window = performance(settings).window
    expr = f"sum(rate({SUPPLIERS_PROCESSED}[{window}])) * 3600"
    rate = scalar(prometheus, expr)
    least = threshold("11.1.3", "suppliers_per_hour")
    evidence.check(
        "suppliers per hour",
        "no data" if rate is None else round(rate),
        f"> {least}",
        rate is not None and rate > least,
        where=f"prometheus: {expr}",
    )


@pytest.mark.checklist("11.1.3")
def test_frontend_load_time(api: Any, threshold: Any, evidence: Any) -> None:
    """The frontend page and its assets load in under 2 seconds (fetched one by one)."""
    load = load_frontend(api, threshold("11.1.1", "frontend_path"))
    limit = threshold("11.1.3", "frontend_load_seconds")
    where = f"GET {load.url} + {len(load.assets)} assets"
    evidence.require("HTTP status", load.status, 200, load.status == 200, where=where)
    evidence.check(
        "load time (s)", round(load.seconds, 3), f"< {limit}", load.seconds < limit, where=where
    )


# --- 11.1.4 / 11.1.5 ------------------------------------------------------------------------


@pytest.mark.checklist("11.1.4")
def test_compliance_validated(attest: Any) -> None:
    """SOC 2 Type II certificate active, GDPR verified, ISO 27001 controls documented (attested)."""
    attest("11.1.4")


@pytest.mark.checklist("11.1.5")
def test_change_management_approved(attest: Any) -> None:
    """The CAB approved the change: window scheduled, rollback plan, stakeholders told (attested)."""
    attest("11.1.5")
