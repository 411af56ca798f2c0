"""Checklist section 7: performance validation.

What is read, and from where:

- Prometheus: the API's request metrics (``http_request_duration_seconds``,
  ``http_requests_total``) and the workers' (``vcci_suppliers_processed_total``,
  ``vcci_emissions_calculations_total``, ``vcci_worker_queue_wait_seconds``,
  ``vcci_worker_tasks_total``) over ``[performance].window``, for the job named at
  ``[expect.monitoring].api_job``.
- Load-test reports named in ``[reports]``: a Locust ``*_stats.csv`` and/or a k6 summary.
- The API (``api``): a bounded load probe of ``[performance].api_endpoints`` (intrusive).
- PostgreSQL (``db``, read-only): connections, lock waits, ``pg_stat_statements``, the
  replicas' replay lag; a bounded concurrent probe of ``[performance].db_queries`` (intrusive).
- Kubernetes (``cluster``): the HorizontalPodAutoscalers of ``[expect.kubernetes].hpas``.
- Redis (``cache``): INFO stats and memory.

The failover drill (7.2.2) is a human fact: attested.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

LATENCY_BUCKETS = "http_request_duration_seconds_bucket"
REQUESTS = "http_requests_total"
SUPPLIERS_PROCESSED = "vcci_suppliers_processed_total"
CALCULATIONS = "vcci_emissions_calculations_total"
QUEUE_WAIT_BUCKETS = "vcci_worker_queue_wait_seconds_bucket"
WORKER_TASKS = "vcci_worker_tasks_total"
# The API role whose HPA scales on CPU at the checklist's 70 % (3.2.7: "Backend HPA").
API_ROLE = "backend"
# Kubernetes' defaults when an HPA has no behavior section (autoscaling/v2).
DEFAULT_SCALE_DOWN_WINDOW = 300
DEFAULT_SCALE_UP_WINDOW = 0
HPA_SYNC_SECONDS = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period
# Statements that are the application's work, not schema changes or maintenance.
DML = r"^\s*(select|insert|update|delete|with)\y"  # \y: a word boundary in PostgreSQL regexes


# --- helpers ------------------------------------------------------------------------------


def performance(settings: Any) -> Any:
    """The [performance] table, or its defaults when the environment file has none."""
    from pytest_vcci.settings import PerformanceTable

    return settings.table("performance") or PerformanceTable.model_validate({})


def configured_performance(settings: Any) -> Any:
    """The [performance] table; load probes run only against what it names explicitly."""
    table = settings.table("performance")
    if table is None:
        pytest.skip(
            f"[performance] is not configured in {settings.source} "
            "(load probes need its endpoints, queries and bounds)"
        )
    return table


def scalar(prometheus: Any, expr: str) -> float | None:
    """The single value of an instant query (None when Prometheus has no sample, or NaN)."""
    result = prometheus.query(expr)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def shown(value: float | None, digits: int = 1) -> Any:
    return "no data" if value is None else round(value, digits)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.95 for p95)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def timed_run(
    call: Callable[[str], bool], items: list[str], concurrency: int, max_seconds: float
) -> tuple[list[float], int, int, float]:
    """``call(item)`` (True: ok) for each item on ``concurrency`` threads, starting nothing after
    ``max_seconds``: (latencies of the finished calls in ms, errors, not started, seconds)."""
    deadline = time.monotonic() + max_seconds
    latencies: list[float] = []
    errors = skipped = 0
    lock = threading.Lock()

    def one(item: str) -> None:
        nonlocal errors, skipped
        if time.monotonic() > deadline:
            with lock:
                skipped += 1
            return
        began = time.perf_counter()
        try:
            ok = call(item)
        except Exception:
            ok = False
        elapsed = (time.perf_counter() - began) * 1000
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, items))
    return latencies, errors, skipped, time.monotonic() - began


def job_selector(expect: Callable[..., Any]) -> str:
    return f'job="{expect("monitoring", "api_job")}"'


# --- 7.1.1 API load testing -----------------------------------------------------------------


@pytest.mark.checklist("7.1.1")
def test_api_latency_percentiles(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """API latency over [performance].window is p95 < 500 ms and p99 < 1000 ms (Prometheus)."""
    window, job = performance(settings).window, job_selector(expect)
    for quantile, name in ((0.95, "p95_ms"), (0.99, "p99_ms")):
        expr = (
            f"histogram_quantile({quantile}, sum by (le) "
            f"(rate({LATENCY_BUCKETS}{{{job}}}[{window}]))) * 1000"
        )
        value, limit = scalar(prometheus, expr), threshold("7.1.1", name)
        evidence.check(
            f"API latency {name.removesuffix('_ms')} (ms)",
            shown(value),
            f"< {limit}",
            value is not None and value < limit,
            where=f"prometheus: {expr}",
        )


@pytest.mark.checklist("7.1.1")
def test_api_error_rate(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """The API answered no 5xx errors over [performance].window (Prometheus request counts)."""
    window, job = performance(settings).window, job_selector(expect)
    total = f"sum(rate({REQUESTS}{{{job}}}[{window}]))"
    expr = f'(sum(rate({REQUESTS}{{{job},status=~"5.."}}[{window}])) or vector(0)) / {total}'
    rate, limit = scalar(prometheus, expr), threshold("7.1.1", "max_error_rate")
    evidence.check(
        "5xx error rate",
        "no data" if rate is None else round(rate, 6),
        f"<= {limit}",
        rate is not None and rate <= limit,
        where=f"prometheus: {expr}",
    )


@pytest.mark.checklist("7.1.1")
def test_load_test_report(settings: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """The Locust/k6 report ([reports]) shows 10,000 users, p95 < 500 ms, p99 < 1 s, no errors."""
    from pytest_vcci.readers.load_test_report import read_load_test
    from pytest_vcci.readers.tool_reports import IngestError

    reports = settings.table("reports")
    named = {tool: getattr(reports, tool) for tool in ("locust", "k6")} if reports else {}
    named = {tool: path for tool, path in named.items() if path}
    if not named:
        pytest.skip(f"[reports].locust / [reports].k6 is not set in {settings.source}")
    for tool, value in named.items():
        path = settings.resolve_path(value)
        where = f"{tool} report {path}"
        try:
            result = read_load_test(tool, path, reports.max_age_hours)
        except IngestError as exc:
            evidence.check(
                "report",
                str(exc),
                f"a readable {tool} report, at most {reports.max_age_hours:g} h old",
                False,
                where=where,
            )
            continue
        evidence.attach(f"{tool} summary", result.summary())
        users = threshold("7.1.1", "concurrent_users")
        evidence.check(
            "peak concurrent users",
            "not in the report" if result.peak_users is None else result.peak_users,
            f">= {users}",
            (result.peak_users or 0) >= users,
            where=where,
        )
        for name, value in (("p95_ms", result.p95_ms), ("p99_ms", result.p99_ms)):
            limit = threshold("7.1.1", name)
            evidence.check(
                f"latency {name.removesuffix('_ms')} (ms)",
                value,
                f"< {limit}",
                value < limit,
                where=where,
            )
        limit = threshold("7.1.1", "max_error_rate")
        evidence.check(
            "error rate",
            f"{result.failures}/{result.requests}",
            f"<= {limit}",
            result.error_rate <= limit,
            where=where,
        )


@pytest.mark.checklist("7.1.1")
@pytest.mark.intrusive
def test_api_load_probe(
    api: Any, settings: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """[performance]'s bounded GET probe of api_endpoints has p95 < 500 ms, p99 < 1 s, no errors."""
    bounds = configured_performance(settings)
    endpoints = list(bounds.api_endpoints)
    paths = [endpoints[n % len(endpoints)] for n in range(bounds.api_requests)]
    latencies, errors, skipped, seconds = timed_run(
        lambda path: bool(api.get(path).status_code < 400),
        paths,
        bounds.api_concurrency,
        bounds.max_seconds,
    )
    where = (
        f"{len(latencies)} GETs of {', '.join(endpoints)} at concurrency "
        f"{bounds.api_concurrency} in {seconds:.1f}s"
    )
    evidence.record("p50 (ms)", round(statistics.median(latencies), 1), where=where)
    evidence.check(
        "requests sent",
        len(latencies),
        f"{bounds.api_requests} within {bounds.max_seconds:g}s",
        skipped == 0,
        where=where,
    )
    for share, name in ((0.95, "p95_ms"), (0.99, "p99_ms")):
        value, limit = percentile(latencies, share), threshold("7.1.1", name)
        evidence.check(
            f"{name.removesuffix('_ms')} (ms)",
            round(value, 1),
            f"< {limit}",
            value < limit,
            where=where,
        )
    rate, limit = errors / len(latencies), threshold("7.1.1", "max_error_rate")
    evidence.check(
        "error rate", f"{errors}/{len(latencies)}", f"<= {limit}", rate <= limit, where=where
    )


# --- 7.1.2 Database load testing ------------------------------------------------------------


@pytest.mark.checklist("7.1.2")
@pytest.mark.intrusive
def test_database_query_probe(
    db: Any, settings: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """[performance].db_queries run concurrently (read-only, bounded) have p95 < 100 ms, no errors."""
    from pytest_vcci.targets.postgres import Database

    bounds = configured_performance(settings)
    queries = list(bounds.db_queries)
    # One connection per thread: a Database serialises its calls on its own connection.
    pool = [Database(db.table, db.gate, dsn=db.table.dsn) for _ in range(bounds.db_concurrency)]
    local = threading.local()
    counter = iter(range(bounds.db_concurrency))
    lock = threading.Lock()

    def connection() -> Any:
        if not hasattr(local, "db"):
            with lock:
                local.db = pool[next(counter)]
        return local.db

    statements = [queries[n % len(queries)] for n in range(bounds.db_iterations)]
    try:
        latencies, errors, skipped, seconds = timed_run(
            lambda sql: connection().rows(sql) is not None,
            statements,
            bounds.db_concurrency,
            bounds.max_seconds,
        )
    finally:
        for database in pool:
            database.close()
    where = (
        f"{db.describe()}: {len(latencies)} queries ({len(queries)} statements) at "
        f"concurrency {bounds.db_concurrency} in {seconds:.2f}s"
    )
    evidence.record(
        "throughput (queries/s)",
        round(len(latencies) / seconds, 1),
        f"{threshold('7.1.2', 'queries_per_second')} sustained (a bounded probe "
        "does not show sustained load)",
        where=where,
    )
    evidence.check(
        "queries run",
        len(latencies),
        f"{bounds.db_iterations} within {bounds.max_seconds:g}s",
        skipped == 0,
        where=where,
    )
    limit = threshold("7.1.2", "query_p95_ms")
    p95 = percentile(latencies, 0.95)
    evidence.check("query p95 (ms)", round(p95, 2), f"< {limit}", p95 < limit, where=where)
    evidence.check("failed queries", errors, 0, errors == 0, where=where)


@pytest.mark.checklist("7.1.2")
def test_database_connections_below_limit(
    db: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """Client connections are below 80 % of max_connections (no pool exhaustion)."""
    # Without pg_read_all_stats, other roles' sessions show no backend_type: not counted.
    used = db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
        about="pg_stat_activity.backend_type of every session",
        needs="pg_read_all_stats",
    )
    most = int(db.setting("max_connections"))
    ratio = threshold("7.1.2", "max_connection_ratio")
    evidence.check(
        "client connections",
        f"{used} of {most} ({used / most:.0%})",
        f"< {ratio:.0%} of max_connections",
        used < ratio * most,
        where=db.describe(),
    )


@pytest.mark.checklist("7.1.2")
def test_database_no_lock_waits(db: Any, evidence: Any) -> None:
    """No session is waiting for a lock (pg_locks has no ungranted lock)."""
    waiting = db.rows(
        "SELECT l.pid, l.locktype, l.mode, l.relation::regclass::text AS relation, "
        "a.wait_event, now() - a.query_start AS waiting_for FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted"
    )
    deadlocks = db.value(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    evidence.record("deadlocks since statistics reset", deadlocks, where=db.describe())
    evidence.check("sessions waiting for a lock", waiting or 0, 0, not waiting, where=db.describe())


@pytest.mark.checklist("7.1.2")
def test_database_statement_latency(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """95 % of the application's statement calls average under 100 ms (pg_stat_statements)."""
    present = db.value("SELECT to_regclass('pg_stat_statements') IS NOT NULL")
    if not present:
        pytest.skip("pg_stat_statements is not installed in this database")
    limit = threshold("7.1.2", "query_p95_ms")
    # Non-superuser roles: the application (migrations and maintenance run as the owner).
    rows = db.rows(
        "SELECT s.calls, s.mean_exec_time, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) "
        "AS query FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
        "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND NOT r.rolsuper AND s.query ~* %s ORDER BY s.mean_exec_time DESC",
        (DML,),
        about="pg_stat_statements.query of the application's statements",
        needs="pg_read_all_stats",  # other roles' statements read "<insufficient privilege>"
    )
    calls = sum(r["calls"] for r in rows)
    if not calls:
        pytest.skip("pg_stat_statements has recorded no application statements yet")
    fast = sum(r["calls"] for r in rows if r["mean_exec_time"] < limit)
    slow = [
        {"query": r["query"], "calls": r["calls"], "mean_ms": round(r["mean_exec_time"], 1)}
        for r in rows
        if r["mean_exec_time"] >= limit
    ][:10]
    if slow:
        evidence.attach("statements averaging over the limit", slow)
    evidence.check(
        f"calls of statements averaging < {limit} ms",
        f"{fast}/{calls} ({fast / calls:.1%})",
        ">= 95%",
        fast >= 0.95 * calls,
        where=f"{db.describe()}: pg_stat_statements",
    )


# --- 7.1.3 Worker throughput ----------------------------------------------------------------


@pytest.mark.checklist("7.1.3")
def test_suppliers_per_hour(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Workers process at least 10,000 suppliers an hour over [performance].window (Prometheus)."""
    window, job = performance(settings).window, job_selector(expect)
    expr = f"sum(rate({SUPPLIERS_PROCESSED}{{{job}}}[{window}])) * 3600"
    rate, least = scalar(prometheus, expr), threshold("7.1.3", "suppliers_per_hour")
    evidence.check(
        "suppliers per hour",
        shown(rate, 0),
        f">= {least}",
        rate is not None and rate >= least,
        where=f"prometheus: {expr}",
    )


@pytest.mark.checklist("7.1.3")
def test_calculations_per_day(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Workers run at least 1M emission calculations a day at the rate of [performance].window."""
    window, job = performance(settings).window, job_selector(expect)
    expr = f"sum(rate({CALCULATIONS}{{{job}}}[{window}])) * 86400"
    rate, least = scalar(prometheus, expr), threshold("7.1.3", "calculations_per_day")
    evidence.check(
        "calculations per day",
        shown(rate, 0),
        f">= {least}",
        rate is not None and rate >= least,
        where=f"prometheus: {expr}",
    )


@pytest.mark.checklist("7.1.3")
def test_queue_latency(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Tasks wait less than 5 seconds in the queue (p95 over [performance].window)."""
    window, job = performance(settings).window, job_selector(expect)
    expr = f"histogram_quantile(0.95, sum by (le) (rate({QUEUE_WAIT_BUCKETS}{{{job}}}[{window}])))"
    wait, limit = scalar(prometheus, expr), threshold("7.1.3", "queue_latency_seconds")
    evidence.check(
        "queue wait p95 (s)",
        shown(wait, 2),
        f"< {limit}",
        wait is not None and wait < limit,
        where=f"prometheus: {expr}",
    )


@pytest.mark.checklist("7.1.3")
def test_no_failed_tasks(
    prometheus: Any,
    settings: Any,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """No worker task failed over [performance].window (Prometheus task counts)."""
    window, job = performance(settings).window, job_selector(expect)
    done = scalar(prometheus, f"sum(increase({WORKER_TASKS}{{{job}}}[{window}]))")
    expr = f'sum(increase({WORKER_TASKS}{{{job},status="failed"}}[{window}]))'
    failed, most = scalar(prometheus, expr), threshold("7.1.3", "max_task_failures")
    evidence.require(
        "worker tasks seen",
        shown(done, 0),
        "> 0",
        bool(done),
        where=f"prometheus: {WORKER_TASKS}{{{job}}}",
    )
    evidence.check(
        "failed tasks",
        shown(failed, 0),
        f"<= {most}",
        failed is not None and round(failed) <= most,
        where=f"prometheus: {expr}",
    )


# --- 7.2.1 Horizontal scaling ---------------------------------------------------------------


def hpa_of(cluster: Any, namespace: str, name: str, evidence: Any) -> dict[str, Any]:
    hpa = cluster.get("horizontalpodautoscalers", name, namespace)
    evidence.require(
        "HorizontalPodAutoscaler",
        "present" if hpa else "missing",
        "present",
        hpa is not None,
        where=f"hpa {namespace}/{name}",
    )
    return hpa


@pytest.mark.checklist("7.2.1")
def test_api_scales_at_cpu_target(
    cluster: Any,
    namespace: str,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """The API's HPA scales on CPU at a 70 % average utilisation target."""
    name = expect("kubernetes", "hpas", API_ROLE)
    hpa = hpa_of(cluster, namespace, name, evidence)
    targets = [
        m["resource"]["target"].get("averageUtilization")
        for m in hpa["spec"].get("metrics", [])
        if m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"
    ]
    want = threshold("7.2.1", "scale_cpu_percent")
    evidence.check(
        "CPU utilisation target (%)",
        targets[0] if targets else "no CPU metric",
        want,
        targets == [want],
        where=f"hpa {namespace}/{name}",
    )


@pytest.mark.checklist("7.2.1")
@pytest.mark.each("role", "kubernetes", "hpas")
def test_scale_down_is_graceful(
    cluster: Any,
    namespace: str,
    role: str,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Each HPA waits at least 5 minutes before scaling down (scaleDown stabilizationWindowSeconds)."""
    name = expect("kubernetes", "hpas", role)
    hpa = hpa_of(cluster, namespace, name, evidence)
    down = (hpa["spec"].get("behavior") or {}).get("scaleDown") or {}
    window = down.get("stabilizationWindowSeconds", DEFAULT_SCALE_DOWN_WINDOW)
    least = threshold("7.2.1", "scale_down_cooldown_seconds")
    evidence.check(
        "scale-down stabilization (s)",
        window,
        f">= {least}",
        window >= least,
        where=f"hpa {namespace}/{name}",
    )


@pytest.mark.checklist("7.2.1")
@pytest.mark.each("role", "kubernetes", "hpas")
def test_scale_up_is_prompt(
    cluster: Any,
    namespace: str,
    role: str,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Each HPA reacts to load within 2 minutes (scaleUp stabilization window + sync period)."""
    name = expect("kubernetes", "hpas", role)
    hpa = hpa_of(cluster, namespace, name, evidence)
    up = (hpa["spec"].get("behavior") or {}).get("scaleUp") or {}
    where = f"hpa {namespace}/{name}"
    evidence.check(
        "scale-up policy",
        up.get("selectPolicy", "Max"),
        "not Disabled",
        up.get("selectPolicy") != "Disabled",
        where=where,
    )
    window = up.get("stabilizationWindowSeconds", DEFAULT_SCALE_UP_WINDOW)
    reaction, most = window + HPA_SYNC_SECONDS, threshold("7.2.1", "scale_up_seconds")
    evidence.check(
        "scale-up reaction (s)",
        reaction,
        f"< {most}",
        reaction < most,
        where=f"{where} (stabilization {window}s + {HPA_SYNC_SECONDS}s sync period)",
    )


@pytest.mark.checklist("7.2.1")
@pytest.mark.each("role", "kubernetes", "hpas")
def test_autoscaler_is_active(
    cluster: Any, namespace: str, role: str, expect: Callable[..., Any], evidence: Any
) -> None:
    """Each HPA reports AbleToScale and ScalingActive as True."""
    name = expect("kubernetes", "hpas", role)
    hpa = hpa_of(cluster, namespace, name, evidence)
    conditions = {c["type"]: c for c in (hpa.get("status") or {}).get("conditions", [])}
    for kind in ("AbleToScale", "ScalingActive"):
        condition = conditions.get(kind, {})
        seen = condition.get("status", "missing")
        if condition.get("reason"):
            seen = f"{seen} ({condition['reason']})"
        evidence.check(
            kind, seen, "True", condition.get("status") == "True", where=f"hpa {namespace}/{name}"
        )


# --- 7.2.2 Database scaling -----------------------------------------------------------------

REPLICA_LAG_SQL = (
    "SELECT pg_is_in_recovery() AS standby, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag_seconds, "
    "pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed"
)


@pytest.mark.checklist("7.2.2")
def test_read_replicas_streaming(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """At least 2 read replicas are configured and streaming from the primary."""
    least = threshold("7.2.2", "min_read_replicas")
    configured = len(db.replicas())
    evidence.check(
        "configured replicas ([postgres].replicas)",
        configured,
        f">= {least}",
        configured >= least,
        where=db.describe(),
    )
    rows = db.rows(
        "SELECT application_name, state, replay_lag::text AS replay_lag "
        "FROM pg_stat_replication ORDER BY application_name",
        about="pg_stat_replication.state",
        needs="pg_read_all_stats",
    )
    streaming = [r for r in rows if r["state"] == "streaming"]
    evidence.attach("pg_stat_replication", rows)
    evidence.check(
        "replicas streaming",
        len(streaming),
        f">= {least}",
        len(streaming) >= least,
        where=f"{db.describe()}: pg_stat_replication",
    )


@pytest.mark.checklist("7.2.2")
def test_replication_lag(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Every read replica is a hot standby whose replay lags the primary by less than 1 second."""
    replicas = db.replicas()
    if not replicas:
        pytest.skip("[postgres].replicas is not set (the replica DSNs to measure replay lag on)")
    most = threshold("7.2.2", "max_replication_lag_seconds")
    for replica in replicas:
        row = replica.ensure().rows(REPLICA_LAG_SQL)[0]
        where = replica.describe()
        if not evidence.check(
            "in recovery (a standby)", row["standby"], True, row["standby"] is True, where=where
        ):
            continue
        lag = float(row["lag_seconds"]) if row["lag_seconds"] is not None else None
        evidence.check(
            "replay lag (s)",
            "unknown" if lag is None else round(lag, 3),
            f"< {most}",
            lag is not None and lag < most,
            where=f"{where} (received {row['received']}, replayed {row['replayed']})",
        )


@pytest.mark.checklist("7.2.2")
def test_failover_drill(attest: Any) -> None:
    """A failover drill promoted a replica in under 30 seconds (attested)."""
    attest("7.2.2")


# --- 7.2.3 Cache hit rate -------------------------------------------------------------------


@pytest.mark.checklist("7.2.3")
def test_cache_hit_rate(cache: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Redis answers more than 95 % of key lookups from the cache (keyspace hits / lookups)."""
    stats = cache.info("stats")
    hits, misses = int(stats["keyspace_hits"]), int(stats["keyspace_misses"])
    least = threshold("7.2.3", "min_hit_rate")
    where = f"{cache.describe()}: INFO stats"
    evidence.require("key lookups", hits + misses, "> 0", hits + misses > 0, where=where)
    rate = hits / (hits + misses)
    evidence.check(
        "hit rate",
        f"{rate:.2%} ({hits} hits, {misses} misses)",
        f"> {least:.0%}",
        rate > least,
        where=where,
    )


@pytest.mark.checklist("7.2.3")
def test_cache_eviction_rate(cache: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Fewer than 1 % of cached keys were evicted (evicted keys / keys stored and evicted)."""
    evicted = int(cache.info("stats")["evicted_keys"])
    keyspace = cache.info("keyspace")
    stored = sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict))
    most = threshold("7.2.3", "max_eviction_rate")
    rate = evicted / (evicted + stored) if evicted + stored else 0.0
    evidence.check(
        "eviction rate",
        f"{rate:.2%} ({evicted} evicted, {stored} stored)",
        f"< {most:.0%}",
        rate < most,
        where=f"{cache.describe()}: INFO stats",
    )


@pytest.mark.checklist("7.2.3")
def test_cache_memory(cache: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Redis uses less than 80 % of its maxmemory."""
    memory = cache.info("memory")
    used, limit = int(memory["used_memory"]), int(memory.get("maxmemory", 0))
    where = f"{cache.describe()}: INFO memory"
    evidence.require("maxmemory", limit or "0 (unbounded)", "set", limit > 0, where=where)
    most = threshold("7.2.3", "max_memory_ratio")
    evidence.check(
        "memory used",
        f"{used / limit:.2%} ({memory.get('used_memory_human')} of "
        f"{memory.get('maxmemory_human')})",
        f"< {most:.0%}",
        used < most * limit,
        where=where,
    )
