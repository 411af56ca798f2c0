"""12. Post-deployment: DNS cutover, alerting, initial traffic, the soak, the readiness report.

The soak (12.2.1) reads Prometheus over the last [thresholds."12.2.1"].soak_hours. When
Prometheus holds less history than that (a fresh environment, or the sandbox), every criterion
is evaluated over the data there is: a problem found fails the test, but a clean result is a
skip that says how many hours were seen, never a pass claiming a soak that did not happen.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import pytest

# The application's metric names (the same the 5.3.1 alert rules use).
REQUESTS = "http_requests_total"
LATENCY_BUCKETS = "http_request_duration_seconds_bucket"
RESIDENT_MEMORY = "process_resident_memory_bytes"


def performance(settings: Any) -> Any:
    from pytest_vcci.settings import PerformanceTable

    return settings.table("performance") or PerformanceTable()


def scalar(prometheus: Any, expr: str, at: float | None = None) -> float | None:
    """The single value of an instant query (None when Prometheus has no sample)."""
    result = prometheus.query(expr, time=at)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def error_rate_expr(job: str, window: str) -> str:
    """5xx answers as a percentage of all answers over ``window`` (0 with no 5xx series)."""
    every = f'{REQUESTS}{{job="{job}"}}'
    failed = f'{REQUESTS}{{job="{job}",status=~"5.."}}'
    return (
        f"100 * (sum(increase({failed}[{window}])) or vector(0)) / sum(increase({every}[{window}]))"
    )


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# --- 12.1.1 DNS cutover ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def production_domain(vcci_context: Any, expect: Any) -> tuple[str, list[str]]:
    """(production domain, the addresses it resolves to through [host].resolver)."""
    from pytest_vcci.targets.host import resolve_with

    table = vcci_context.target_table("host")
    domain = expect("dns", "production_domain")
    return domain, sorted(resolve_with(table, domain, vcci_context.gate))


@pytest.mark.checklist("12.1.1")
def test_domain_points_to_load_balancer(
    production_domain: Any, vcci_context: Any, expect: Any, evidence: Any
) -> None:
    """The production domain resolves, and only to the load balancer's addresses."""
    domain, addresses = production_domain
    balancer = sorted(expect("dns", "load_balancer_addresses"))
    host = vcci_context.settings.table("host")
    where = f"DNS {domain} via {host.resolver or 'the system resolver'}"
    evidence.require(
        "addresses", addresses or "none (no A/AAAA record)", balancer, bool(addresses), where=where
    )
    stray = [a for a in addresses if a not in balancer]
    evidence.check(
        "addresses not of the load balancer", stray or "none", "none", not stray, where=where
    )


@pytest.mark.checklist("12.1.1")
def test_domain_serves_valid_certificate(
    production_domain: Any, tls: Any, threshold: Any, evidence: Any
) -> None:
    """The load balancer serves a trusted, unexpired certificate for the production domain."""
    from pytest_vcci.targets.tls import parse_endpoint

    domain, addresses = production_domain
    if not addresses:
        pytest.fail(f"{domain} does not resolve: no endpoint to check", pytrace=False)
    # The [tls] endpoint on a resolved address (or named by the domain) gives the port.
    endpoint = next(
        (e for e in tls.endpoints if parse_endpoint(e)[0] in {*addresses, domain}),
        f"{addresses[0]}:443",
    )
    report = tls.inspect(endpoint, server_name=domain)
    where = f"TLS {endpoint} (SNI {domain})"
    evidence.check(
        "certificate verified for the name",
        report.verification,
        "verified (trusted chain, matching host name, within its validity)",
        report.verified is True,
        where=where,
    )
    leaf = report.leaf
    evidence.require(
        "certificate",
        "none" if leaf is None else leaf.subject,
        "a certificate",
        leaf is not None,
        where=where,
    )
    assert leaf is not None
    evidence.check(
        "names (SAN)", list(leaf.sans), f"covers {domain}", leaf.covers(domain), where=where
    )
    evidence.check(
        "days to expiry", leaf.days_to_expiry, "> 0", leaf.days_to_expiry > 0, where=where
    )


# --- 12.1.2 monitoring alerts ---------------------------------------------------------------


@pytest.mark.checklist("12.1.2")
def test_alertmanager_up(alertmanager: Any, evidence: Any) -> None:
    """Alertmanager answers its status API and its cluster is ready."""
    status = alertmanager.status()
    where = f"alertmanager {alertmanager.describe()['url']}"
    evidence.record("version", status.get("versionInfo", {}).get("version"), where=where)
    cluster = status.get("cluster", {}).get("status")
    evidence.check(
        "cluster status",
        cluster,
        "ready (or disabled: no HA peers)",
        cluster in ("ready", "disabled"),
        where=where,
    )


@pytest.mark.checklist("12.1.2")
def test_watchdog_alert_firing_and_routed(alertmanager: Any, threshold: Any, evidence: Any) -> None:
    """The Watchdog (dead man's switch) alert is firing in Alertmanager and routed to a receiver."""
    name = threshold("12.1.2", "watchdog_alert")
    where = f"alertmanager {alertmanager.describe()['url']}"
    alerts = alertmanager.alerts(silenced=True, inhibited=True, matchers=[f'alertname="{name}"'])
    active = [a for a in alerts if a.get("status", {}).get("state") == "active"]
    evidence.require(
        f"active {name} alerts",
        len(active),
        ">= 1 (Prometheus evaluates and sends it continuously)",
        bool(active),
        where=where,
    )
    configured = set(alertmanager.receivers())
    for alert in active:
        receivers = sorted(r["name"] for r in alert.get("receivers", []))
        evidence.check(
            f"{name} receivers",
            receivers or "none",
            "configured receivers",
            bool(receivers) and set(receivers) <= configured,
            where=where,
        )
        silenced = alert["status"].get("silencedBy") or alert["status"].get("inhibitedBy")
        evidence.check(
            f"{name} silenced or inhibited", bool(silenced), False, not silenced, where=where
        )


@pytest.mark.checklist("12.1.2")
def test_no_unexpected_alert_firing(alertmanager: Any, threshold: Any, evidence: Any) -> None:
    """No alert fires except the expected ones (no false positives after launch)."""
    allowed = set(threshold("12.1.2", "expected_firing"))
    firing = sorted(
        {
            a["labels"].get("alertname", "?")
            for a in alertmanager.alerts()
            if a.get("status", {}).get("state") == "active"
        }
    )
    unexpected = [name for name in firing if name not in allowed]
    evidence.record("firing", firing, where=f"alertmanager {alertmanager.describe()['url']}")
    evidence.check(
        "unexpected alerts firing",
        unexpected or "none",
        f"none besides {sorted(allowed)}",
        not unexpected,
        where=f"alertmanager {alertmanager.describe()['url']}",
    )


# --- 12.1.3 initial traffic -----------------------------------------------------------------


@pytest.mark.checklist("12.1.3")
def test_traffic_served_with_few_errors(
    prometheus: Any, settings: Any, expect: Any, threshold: Any, evidence: Any
) -> None:
    """The API served requests in [performance].window, and under 1 % of them were 5xx."""
    job = expect("monitoring", "api_job")
    window = performance(settings).window
    total_expr = f'sum(increase({REQUESTS}{{job="{job}"}}[{window}]))'
    total = scalar(prometheus, total_expr)
    evidence.require(
        "requests served",
        "no data" if total is None else round(total),
        "> 0",
        bool(total),
        where=f"prometheus: {total_expr}",
    )
    expr = error_rate_expr(job, window)
    rate = scalar(prometheus, expr)
    limit = threshold("12.1.3", "max_error_rate_percent")
    evidence.check(
        "5xx rate (%)",
        "no data" if rate is None else round(rate, 3),
        f"< {limit}",
        rate is not None and rate < limit,
        where=f"prometheus: {expr}",
    )


@pytest.mark.smoke("monitoring", "Prometheus metrics")
@pytest.mark.checklist("12.1.3")
def test_metrics_flowing(prometheus: Any, expect: Any, evidence: Any) -> None:
    """Every Prometheus scrape target of the application is up (metrics are flowing)."""
    job = expect("monitoring", "api_job")
    targets = [t for t in prometheus.targets() if t.get("labels", {}).get("job") == job]
    evidence.require(
        "scrape targets", len(targets), ">= 1", bool(targets), where=f"prometheus job {job}"
    )
    for target in targets:
        evidence.check(
            "health",
            target.get("health"),
            "up",
            target.get("health") == "up",
            where=f"prometheus target {target.get('scrapeUrl')}",
        )


@pytest.mark.checklist("12.1.3")
def test_all_pods_healthy(cluster: Any, namespace: str, evidence: Any) -> None:
    """Every pod of the application namespace is Running and Ready (or Succeeded, for jobs)."""
    pods = cluster.list("pods", namespace=namespace)
    evidence.require("pods", len(pods), ">= 1", bool(pods), where=f"namespace {namespace}")
    unhealthy = []
    for pod in pods:
        phase = pod.get("status", {}).get("phase")
        if phase == "Succeeded":
            continue
        waiting = [
            c["state"]["waiting"].get("reason")
            for c in pod.get("status", {}).get("containerStatuses") or []
            if "waiting" in (c.get("state") or {})
        ]
        if phase != "Running" or not _ready(pod) or waiting:
            unhealthy.append(
                f"{pod['metadata']['name']} ({phase}"
                f"{', ' + ', '.join(map(str, waiting)) if waiting else ''}"
                f"{'' if _ready(pod) else ', not Ready'})"
            )
    evidence.check(
        "unhealthy pods", unhealthy or "none", "none", not unhealthy, where=f"namespace {namespace}"
    )


# --- 12.2.1 soak ----------------------------------------------------------------------------


def data_hours(prometheus: Any, job: str, hours: float, now: float) -> float:
    """How many of the last ``hours`` Prometheus holds request data for."""
    step = max(60, int(hours * 3600 / 500))
    series = prometheus.query_range(
        f'count({REQUESTS}{{job="{job}"}})', now - hours * 3600, now, step
    )
    stamps = [float(t) for s in series for t, _ in s.get("values", [])]
    return min(hours, (now - min(stamps)) / 3600) if stamps else 0.0


def restarts_within(pods: list[dict[str, Any]], since: dt.datetime) -> list[str]:
    """Containers whose last termination (a restart) ended after ``since``."""
    found = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            ended = ((status.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            if status.get("restartCount", 0) and ended:
                when = dt.datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
                if when >= since:
                    found.append(
                        f"{pod['metadata']['name']}/{status['name']} "
                        f"(restarts {status['restartCount']}, last {ended})"
                    )
    return found


@pytest.mark.checklist("12.2.1")
def test_soak_stable(
    prometheus: Any, cluster: Any, namespace: str, expect: Any, threshold: Any, evidence: Any
) -> None:
    """Over the soak window: no restarts, no memory growth, no latency degradation, few errors."""
    job = expect("monitoring", "api_job")
    soak = float(threshold("12.2.1", "soak_hours"))
    now = time.time()
    hours = data_hours(prometheus, job, soak, now)
    where = f"prometheus job {job}"
    evidence.record("soak window (h)", round(hours, 2), soak, where=where)
    evidence.require("request data", f"{hours:.2f} h", "> 0 h", hours > 0, where=where)
    window = f"{int(hours * 3600)}s"
    gaps: list[str] = []  # criteria the data could not decide

    since = dt.datetime.fromtimestamp(now - hours * 3600, dt.UTC)
    restarts = restarts_within(cluster.list("pods", namespace=namespace), since)
    evidence.check(
        "container restarts",
        restarts or "none",
        "none",
        not restarts,
        where=f"namespace {namespace} since {since.isoformat(timespec='seconds')}",
    )

    expr = f'deriv({RESIDENT_MEMORY}{{job="{job}"}}[{window}]) * 3600 / 1e6'
    growth = [float(s["value"][1]) for s in prometheus.query(expr)]
    limit = threshold("12.2.1", "max_memory_growth_mb_per_hour")
    if growth:
        worst = max(growth)
        evidence.check(
            "memory growth (MB/h)",
            round(worst, 2),
            f"<= {limit}",
            worst <= limit,
            where=f"prometheus: {expr}",
        )
    else:
        gaps.append(f"no {RESIDENT_MEMORY} samples for job {job}")
        evidence.record(
            "memory growth (MB/h)", "no data", f"<= {limit}", where=f"prometheus: {expr}"
        )

    compare = min(float(threshold("12.2.1", "compare_hours")) * 3600, hours * 3600 / 2)
    segment = f"{int(compare)}s"
    p95 = (
        f"histogram_quantile(0.95, sum by (le) (increase({LATENCY_BUCKETS}"
        f'{{job="{job}"}}[{segment}]))) * 1000'
    )
    first = scalar(prometheus, p95, at=now - hours * 3600 + compare)
    last = scalar(prometheus, p95, at=now)
    most = threshold("12.2.1", "max_p95_degradation_percent")
    if first and last is not None:
        change = (last - first) / first * 100
        evidence.check(
            "p95 change, last vs first segment (%)",
            f"{change:+.1f} ({first:.0f} -> {last:.0f} ms)",
            f"<= +{most}",
            change <= most,
            where=f"prometheus: {p95} ({segment} segments)",
        )
    else:
        gaps.append("too few latency samples to compare the first and last segment")
        evidence.record("p95 change (%)", "no data", f"<= +{most}", where=f"prometheus: {p95}")

    errors = error_rate_expr(job, window)
    rate = scalar(prometheus, errors)
    most_errors = threshold("12.2.1", "max_error_rate_percent")
    evidence.check(
        "5xx rate over the window (%)",
        "no data" if rate is None else round(rate, 3),
        f"< {most_errors}",
        rate is not None and rate < most_errors,
        where=f"prometheus: {errors}",
    )

    if evidence.failures():
        return  # a problem in the data there is: fail now, whatever the window
    if hours < soak:
        gaps.insert(0, f"Prometheus holds {hours:.2f} h of data, less than the {soak:g} h soak")
    if gaps:
        pytest.skip(
            "soak not yet decidable: "
            + "; ".join(gaps)
            + " (no problem in the data there is; re-run once the soak window is covered)"
        )


# --- 12.2.2 readiness report ----------------------------------------------------------------


@pytest.mark.checklist("12.2.2")
def test_readiness_report_complete(vcci_collected: dict[str, list[str]], evidence: Any) -> None:
    """This run evaluates every checklist item, so its report leaves none unevaluated."""
    from pytest_vcci.checklist import load_catalog

    catalog = load_catalog()
    missing = [item.id for item in catalog.items if item.id not in vcci_collected]
    evidence.record(
        "items with tests in this run", len(catalog.items) - len(missing), len(catalog.items)
    )
    shown = ", ".join(missing[:10]) + (
        f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    )
    evidence.check(
        "items no test of this run evaluates",
        f"{len(missing)}: {shown}" if missing else "none",
        "none",
        not missing,
        where="this run's readiness report",
    )


@pytest.mark.checklist("12.2.2")
def test_signoff_obtained(
    attest: Any, request: pytest.FixtureRequest, threshold: Any, evidence: Any
) -> None:
    """The readiness report is signed off by the CTO and the VP Engineering (attested)."""
    from pytest_vcci.context import attestations_for

    attest("12.2.2")
    records = attestations_for(request.config)
    today = dt.datetime.now(dt.UTC).date()
    valid = [r for r in records.records if r.item == "12.2.2" and r.expires >= today]
    for role in threshold("12.2.2", "signoff_roles"):
        signed = [r for r in valid if r.role.casefold() == role.casefold()]
        evidence.check(
            f"sign-off by {role}",
            signed[-1].describe() if signed else "none",
            "a valid attestation record",
            bool(signed),
            where=records.source,
        )
