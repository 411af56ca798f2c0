"""Section 5: monitoring and observability — metrics (5.1), logs and traces (5.2), alerting (5.3).

Prometheus, Alertmanager and Grafana are read over their APIs; the in-cluster parts (the
Prometheus StatefulSet, the log shipper DaemonSet, a tracing collector) from the cluster.
Names come from the environment file:

```toml
[expect.monitoring]
scrape_jobs = ["prometheus", "vcci-api"]           # jobs that scrape at the checklist interval
receivers = ["pagerduty-critical", "opsgenie", "slack-warnings"]
synthetic_jobs = {uptime = "synthetic-uptime", workflow = "synthetic-workflow"}
[expect.monitoring.key_metrics]                     # criterion -> series name
api_request_rate = "http_requests_total"
[expect.monitoring.checklist_alerts]                # 5.3.1 criterion -> alert rule name
api_error_rate = "VcciApiErrorRateHigh"
[expect.kubernetes]
prometheus = {namespace = "monitoring", statefulset = "prometheus"}
log_shipper = {namespace = "logging", daemonset = "fluent-bit", configmap = "fluent-bit-config"}
```
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from pytest_vcci.readers.config_files import fluent_bit_match, fluent_bit_sections
from pytest_vcci.readers.kubernetes_objects import (
    labels_of,
    name_of,
    parse_quantity,
    pod_ready,
    selected,
)
from pytest_vcci.readers.monitoring_config import (
    duration_seconds,
    expression_threshold,
    paging_receivers,
    receiver_integrations,
    route_receivers,
)

# --- 5.1 metrics and dashboards -----------------------------------------------------------


@pytest.mark.checklist("5.1.1")
def test_prometheus_scrape_interval(prometheus, expect, threshold, evidence):
    """Prometheus scrapes every 30 s (globally and in each application scrape job)."""
    want = float(threshold("5.1.1", "scrape_interval_seconds"))
    config = prometheus.config()
    interval = (config.get("global") or {}).get("scrape_interval")
    evidence.check(
        "scrape_interval",
        interval,
        f"{want:g}s",
        duration_seconds(interval) == want,
        where="prometheus global",
    )
    jobs = {j.get("job_name"): j for j in config.get("scrape_configs") or []}
    for name in expect("monitoring", "scrape_jobs", default=[]):
        job = jobs.get(name)
        if evidence.check(
            "job",
            "present" if job else "missing",
            "present",
            job is not None,
            where=f"prometheus job {name}",
        ):
            assert job is not None
            have = job.get("scrape_interval", interval)
            evidence.check(
                "scrape_interval",
                have,
                f"{want:g}s",
                duration_seconds(have) == want,
                where=f"prometheus job {name}",
            )


@pytest.mark.checklist("5.1.1")
def test_prometheus_retention(prometheus, threshold, evidence):
    """Prometheus keeps at least 15 days of data."""
    days = float(threshold("5.1.1", "retention_days"))
    flags = prometheus.flags()
    value = flags.get("storage.tsdb.retention.time") or flags.get("storage.tsdb.retention")
    seconds = duration_seconds(value) or 0.0
    evidence.check(
        "storage.tsdb.retention.time",
        value,
        f">= {days:g}d",
        seconds >= days * 86400,
        where="prometheus flags",
    )


@pytest.mark.checklist("5.1.1")
def test_prometheus_highly_available_with_volume(cluster, expect, threshold, evidence):
    """The in-cluster Prometheus runs 2 ready replicas, each with a bound volume of at least 100 GB."""
    wanted = expect("kubernetes", "prometheus")
    namespace, name = wanted["namespace"], wanted["statefulset"]
    sts = cluster.get("statefulsets", name, namespace)
    where = f"statefulset {namespace}/{name}"
    evidence.require("exists", sts is not None, True, sts is not None, where=where)
    replicas = int(threshold("5.1.1", "min_replicas"))
    size = float(threshold("5.1.1", "min_volume_gb")) * 10**9
    spec, status = sts.get("spec", {}), sts.get("status", {})
    evidence.check(
        "replicas",
        spec.get("replicas"),
        f">= {replicas}",
        int(spec.get("replicas") or 0) >= replicas,
        where=where,
    )
    evidence.check(
        "ready replicas",
        status.get("readyReplicas", 0),
        f">= {replicas}",
        int(status.get("readyReplicas") or 0) >= replicas,
        where=where,
    )
    templates = spec.get("volumeClaimTemplates") or []
    evidence.require(
        "volume claim templates",
        [name_of(t) for t in templates],
        ">= 1",
        bool(templates),
        where=where,
    )
    claims = {name_of(c): c for c in cluster.list("persistentvolumeclaims", namespace)}
    for template in templates:
        storage = (template.get("spec", {}).get("resources", {}).get("requests") or {}).get(
            "storage", "0"
        )
        evidence.check(
            "volume size",
            storage,
            f">= {size / 10**9:g} GB",
            parse_quantity(storage) >= size,
            where=f"{where} volumeClaimTemplate {name_of(template)}",
        )
        for ordinal in range(int(spec.get("replicas") or 0)):
            claim_name = f"{name_of(template)}-{name}-{ordinal}"
            claim = claims.get(claim_name)
            phase = (claim or {}).get("status", {}).get("phase", "(missing)")
            capacity = ((claim or {}).get("status", {}).get("capacity") or {}).get("storage", "0")
            ok = phase == "Bound" and parse_quantity(capacity) >= size
            evidence.check(
                "claim",
                f"{phase}, {capacity}",
                f"Bound, >= {size / 10**9:g} GB",
                ok,
                where=f"pvc {namespace}/{claim_name}",
            )


@pytest.mark.checklist("5.1.2")
def test_grafana_healthy(grafana, evidence):
    """Grafana answers /api/health with its database ok."""
    health = grafana.health()
    evidence.check(
        "database", health.get("database"), "ok", health.get("database") == "ok", where="grafana"
    )
    evidence.record("version", health.get("version"), where="grafana")


@pytest.mark.checklist("5.1.2")
def test_grafana_refuses_anonymous_access(grafana, evidence):
    """Grafana's API refuses a request without credentials (admin access is not open)."""
    status = grafana.anonymous_status("/api/search")
    evidence.check(
        "anonymous /api/search", status, "401 or 403", status in (401, 403), where="grafana"
    )


@pytest.mark.checklist("5.1.2")
def test_grafana_prometheus_datasource(grafana, evidence):
    """Grafana has a Prometheus data source."""
    sources = [s for s in grafana.datasources() if s.get("type") == "prometheus"]
    evidence.check(
        "Prometheus data sources",
        [s.get("name") for s in sources] or "(none)",
        ">= 1",
        bool(sources),
        where="grafana",
    )


@pytest.mark.checklist("5.1.2")
def test_grafana_vcci_dashboard(grafana, expect, threshold, evidence):
    """The production VCCI dashboard (grafana-vcci-dashboard.json) is imported."""
    uid = expect("grafana", "dashboard_uid")
    found = grafana.dashboard(uid)
    title = (found.get("dashboard") or {}).get("title")
    evidence.check(
        "dashboard",
        title or "(missing)",
        f"uid {uid} ({threshold('5.1.2', 'dashboard_file')})",
        bool(title),
        where="grafana",
    )


@pytest.mark.checklist("5.1.2")
def test_grafana_alerting_enabled(grafana, evidence):
    """Grafana alerting is switched on."""
    enabled = grafana.alerting_enabled()
    evidence.check("alerting", enabled, True, enabled, where="grafana")


def _check_recent_series(
    prometheus: Any, name: str, max_age: float, evidence: Any, where: str
) -> None:
    selector = f'{{__name__="{name}"}}'
    count = prometheus.query(f"count({selector})")
    series = int(float(count[0]["value"][1])) if count else 0
    evidence.require("series", series, ">= 1", series >= 1, where=where)
    age = prometheus.query(f"min(time() - timestamp({selector}))")
    newest = float(age[0]["value"][1]) if age else math.inf
    evidence.check(
        "newest sample age (s)", round(newest, 1), f"<= {max_age:g}", newest <= max_age, where=where
    )


@pytest.mark.checklist("5.1.3")
@pytest.mark.each("metric", "monitoring", "key_metrics")
def test_key_metric_has_recent_samples(prometheus, expect, threshold, evidence, metric):
    """Each key metric (request rate, latency, 5xx, DB pool, Redis memory, queue depth) has fresh samples."""
    name = expect("monitoring", "key_metrics")[metric]
    where = f"prometheus {name} ({metric})"
    _check_recent_series(
        prometheus, name, float(threshold("5.1.3", "max_sample_age_seconds")), evidence, where
    )
    if name.endswith("_bucket"):
        buckets = prometheus.query(f'count({{__name__="{name}", le!=""}})')
        evidence.check(
            "histogram buckets (le)",
            int(float(buckets[0]["value"][1])) if buckets else 0,
            ">= 1",
            bool(buckets),
            where=where,
        )
        for quantile in threshold("5.1.3", "latency_quantiles"):
            result = prometheus.query(
                f"histogram_quantile({quantile}, sum by (le) (rate({name}[5m])))"
            )
            evidence.record(
                f"p{round(float(quantile) * 100)}",
                result[0]["value"][1] if result else None,
                where=where,
            )


@pytest.mark.checklist("5.1.4")
@pytest.mark.each("metric", "monitoring", "business_metrics")
def test_business_metric_has_recent_samples(prometheus, expect, threshold, evidence, metric):
    """Each business metric (tenants, suppliers, calculations, ingestion, reports) has fresh samples."""
    name = expect("monitoring", "business_metrics")[metric]
    _check_recent_series(
        prometheus,
        name,
        float(threshold("5.1.4", "max_sample_age_seconds")),
        evidence,
        f"prometheus {name} ({metric})",
    )


# --- 5.2 logging and tracing --------------------------------------------------------------


def _shipper(cluster: Any, expect: Callable[..., Any], evidence: Any) -> tuple[dict[str, Any], str]:
    wanted = expect("kubernetes", "log_shipper")
    namespace, name = wanted["namespace"], wanted["daemonset"]
    daemonset = cluster.get("daemonsets", name, namespace)
    evidence.require(
        "exists",
        daemonset is not None,
        True,
        daemonset is not None,
        where=f"daemonset {namespace}/{name}",
    )
    return dict(daemonset), namespace


def _shipper_config(
    cluster: Any, expect: Callable[..., Any], evidence: Any
) -> list[tuple[str, dict[str, str]]]:
    wanted = expect("kubernetes", "log_shipper")
    namespace, name = wanted["namespace"], wanted.get("configmap", wanted["daemonset"])
    configmap = cluster.get("configmaps", name, namespace)
    where = f"configmap {namespace}/{name}"
    evidence.require("exists", configmap is not None, True, configmap is not None, where=where)
    data = (configmap or {}).get("data") or {}
    text = "\n".join(v for k, v in sorted(data.items()) if k.endswith(".conf"))
    sections = fluent_bit_sections(text)
    evidence.require(
        "fluent-bit configuration",
        [s for s, _ in sections] or "(none)",
        "INPUT and OUTPUT sections",
        any(s == "OUTPUT" for s, _ in sections),
        where=where,
    )
    return sections


@pytest.mark.checklist("5.2.1")
def test_log_shipper_runs_on_every_node(cluster, expect, evidence):
    """The log shipper DaemonSet has a Running, Ready pod on every Ready node."""
    daemonset, namespace = _shipper(cluster, expect, evidence)
    nodes = [
        name_of(n)
        for n in cluster.list("nodes")
        if not n.get("spec", {}).get("unschedulable")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in n.get("status", {}).get("conditions") or []
        )
    ]
    pods = selected(cluster.list("pods", namespace), daemonset.get("spec", {}).get("selector"))
    covered = {
        p.get("spec", {}).get("nodeName")
        for p in pods
        if p.get("status", {}).get("phase") == "Running" and pod_ready(p)
    }
    missing = [n for n in nodes if n not in covered]
    where = f"daemonset {namespace}/{name_of(daemonset)}"
    if not nodes:
        evidence.undecided(
            "no Ready, schedulable node listed: none to run a shipper on", where=where
        )
    evidence.check(
        "nodes with a ready shipper pod",
        f"{len(nodes) - len(missing)}/{len(nodes)}",
        f"{len(nodes)}/{len(nodes)}",
        not missing,
        where=where + (f" (missing on {', '.join(missing)})" if missing else ""),
    )
    status = daemonset.get("status", {})
    ready, desired = status.get("numberReady"), status.get("desiredNumberScheduled")
    if ready is None or desired is None:  # the per-node count above decides
        evidence.record("numberReady / desiredNumberScheduled", f"{ready} / {desired}", where=where)
    else:
        evidence.check("numberReady", ready, desired, ready == desired, where=where)


@pytest.mark.checklist("5.2.1")
def test_log_shipper_collects_every_pod(cluster, expect, evidence):
    """The shipper tails every container log and sends what it tails to an output."""
    sections = _shipper_config(cluster, expect, evidence)
    where = f"log shipper {expect('kubernetes', 'log_shipper')['daemonset']}"
    tails = [
        s
        for kind, s in sections
        if kind == "INPUT"
        and s.get("name") == "tail"
        and "/var/log/containers/" in s.get("path", "")
    ]
    evidence.require(
        "container log input",
        [s.get("path") for s in tails] or "(none)",
        "/var/log/containers/*.log",
        bool(tails),
        where=where,
    )
    outputs = [s for kind, s in sections if kind == "OUTPUT"]
    for tail in tails:
        tag = tail.get("tag", "tail.0").replace("*", "var.log.containers.pod.log")
        shipped = [o.get("name") for o in outputs if fluent_bit_match(o.get("match", ""), tag)]
        evidence.check(
            "outputs matching the container logs",
            shipped or "(none)",
            ">= 1",
            bool(shipped),
            where=f"{where} input {tail.get('tag')}",
        )


@pytest.mark.checklist("5.2.1")
def test_log_backend_answers_with_retention(request, cluster, expect, threshold, evidence):
    """The shipper's backend (CloudWatch Logs) answers and keeps logs for 90 days."""
    sections = _shipper_config(cluster, expect, evidence)
    days = int(threshold("5.2.1", "log_retention_days"))
    outputs = [s for kind, s in sections if kind == "OUTPUT"]
    cloudwatch = [o for o in outputs if o.get("name") == "cloudwatch_logs"]
    if not cloudwatch:
        pytest.skip(
            f"log shipper outputs {[o.get('name') for o in outputs]}: only cloudwatch_logs backends are "
            "checked automatically"
        )
    cloud = request.getfixturevalue("cloud")
    for output in cloudwatch:
        group = output.get("log_group_name", "")
        logs = cloud.client("logs", region=output.get("region") or None)
        found = [
            g
            for g in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups") or []
            if g.get("logGroupName") == group
        ]
        where = f"CloudWatch Logs {group}"
        if evidence.check(
            "log group", "present" if found else "missing", "present", bool(found), where=where
        ):
            retention = found[0].get("retentionInDays")
            evidence.check(
                "retention days",
                retention or "never expire",
                f">= {days}",
                retention is None or int(retention) >= days,
                where=where,
            )


REQUEST_ID_KEYS = ("request_id", "requestId", "request.id", "x_request_id", "req_id")
STACK_KEYS = ("stack_trace", "stacktrace", "stack", "traceback", "exc_info", "exception")
ERROR_LEVELS = ("ERROR", "CRITICAL", "FATAL")
# Shapes of secrets and personal data that must never reach a log (values are never recorded).
SENSITIVE = {
    "email address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "bearer token": re.compile(r"(?i)bearer\s+[A-Za-z0-9\-_.=]{16,}"),
    "password": re.compile(
        r"(?i)\"?(?:password|passwd|pwd|secret)\"?\s*[:=]\s*\"?(?!\*|\[REDACTED|<)[^\s\",}]{3,}"
    ),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def _luhn(digits: str) -> bool:
    numbers = [int(d) for d in digits if d.isdigit()]
    total = sum(numbers[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in numbers[-2::-2])
    return 13 <= len(numbers) <= 19 and total % 10 == 0


def sensitive_kinds(line: str) -> list[str]:
    """The kinds of secret or personal data a log line shows (never the values)."""
    found = [kind for kind, pattern in SENSITIVE.items() if pattern.search(line)]
    if any(_luhn(m.group(0)) for m in CARD.finditer(line)):
        found.append("card number")
    return found


@pytest.mark.checklist("5.2.2")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_application_logs_structured_and_masked(cluster, namespace, expect, evidence, role):
    """Sampled pod logs are JSON with a request ID on every line, errors carry stack traces, nothing sensitive."""
    name = expect("kubernetes", "deployments")[role]
    deployment = cluster.get("deployments", name, namespace)
    evidence.require(
        "exists",
        deployment is not None,
        True,
        deployment is not None,
        where=f"deployment {namespace}/{name}",
    )
    pods = [
        p
        for p in selected(
            cluster.list("pods", namespace), deployment.get("spec", {}).get("selector")
        )
        if p.get("status", {}).get("phase") == "Running"
    ][:3]
    container = (deployment["spec"]["template"]["spec"].get("containers") or [{}])[0].get("name")
    sampled = not_json = no_request_id = errors = errors_without_stack = 0
    leaks: list[str] = []
    for pod in pods:
        for number, line in enumerate(
            cluster.pod_logs(name_of(pod), namespace, container=container, tail=200), 1
        ):
            if not line.strip():
                continue
            sampled += 1
            leaks += [f"{kind} at {name_of(pod)} line {number}" for kind in sensitive_kinds(line)]
            try:
                record = json.loads(line)
            except ValueError:
                not_json += 1
                continue
            if not isinstance(record, dict):
                not_json += 1
                continue
            no_request_id += not any(record.get(k) for k in REQUEST_ID_KEYS)
            if str(record.get("level", record.get("severity", ""))).upper() in ERROR_LEVELS:
                errors += 1
                errors_without_stack += not any(record.get(k) for k in STACK_KEYS)
    where = f"deployment {namespace}/{name} ({len(pods)} pods, {sampled} lines)"
    evidence.require("sampled log lines", sampled, ">= 1", sampled >= 1, where=where)
    evidence.check("lines that are not JSON objects", not_json, 0, not_json == 0, where=where)
    evidence.check("lines without a request ID", no_request_id, 0, no_request_id == 0, where=where)
    evidence.check(
        "error lines without a stack trace",
        f"{errors_without_stack} of {errors}",
        0,
        errors_without_stack == 0,
        where=where,
    )
    evidence.check("secrets or personal data", leaks[:10] or "none", "none", not leaks, where=where)


TRACING_APPS = ("opentelemetry-collector", "otel-collector", "jaeger", "tempo")


@pytest.mark.checklist("5.2.3")
def test_tracing_collector_and_sampling(cluster, namespace, expect, threshold, evidence):
    """A tracing collector (OpenTelemetry/Jaeger/Tempo) runs and the applications sample 10 % of traces."""
    wanted = expect("kubernetes", "tracing_collector", default=None)
    if wanted:
        workloads = [
            w
            for kind in ("deployments", "daemonsets", "statefulsets")
            if (w := cluster.get(kind, wanted["name"], wanted["namespace"])) is not None
        ]
    else:
        workloads = [
            w
            for kind in ("deployments", "daemonsets", "statefulsets")
            for w in cluster.list(kind, "*")
            if any(
                app in f"{name_of(w)} {labels_of(w).get('app.kubernetes.io/name', '')}"
                for app in TRACING_APPS
            )
        ]
    names = [f"{w['metadata'].get('namespace')}/{name_of(w)}" for w in workloads]
    evidence.check(
        "tracing collector",
        names or "(none deployed)",
        " or ".join(TRACING_APPS),
        bool(workloads),
        where="cluster",
    )
    ratio = float(threshold("5.2.3", "sampling_ratio"))
    for _role, name in expect("kubernetes", "deployments").items():
        deployment = cluster.get("deployments", name, namespace) or {}
        env = {
            e.get("name"): e.get("value")
            for c in deployment.get("spec", {})
            .get("template", {})
            .get("spec", {})
            .get("containers")
            or []
            for e in c.get("env") or []
        }
        have = env.get("OTEL_TRACES_SAMPLER_ARG")
        try:
            ok = have is not None and math.isclose(float(have), ratio)
        except ValueError:
            ok = False
        evidence.check(
            "OTEL_TRACES_SAMPLER_ARG",
            have or "(unset)",
            ratio,
            ok,
            where=f"deployment {namespace}/{name}",
        )


# --- 5.3 alerting -------------------------------------------------------------------------

# 5.3.1 criterion -> its threshold name in the catalog ("<criterion>_severity" is the severity).
ALERT_CRITERIA = {
    "api_error_rate": "api_error_rate_percent",
    "api_latency_p99": "api_latency_p99_seconds",
    "db_cpu": "db_cpu_percent",
    "db_disk": "db_disk_percent",
    "pod_restarts": "pod_restarts_per_hour",
    "worker_queue_depth": "worker_queue_depth",
}


@pytest.mark.checklist("5.3.1")
@pytest.mark.parametrize("criterion", list(ALERT_CRITERIA))
def test_alert_rule_threshold_and_severity(prometheus, expect, threshold, evidence, criterion):
    """Each checklist alert rule exists, fires above the checklist's threshold, with its severity."""
    name = expect("monitoring", "checklist_alerts", criterion)
    rule = prometheus.alert_rules().get(name)
    where = f"alert rule {name} ({criterion})"
    evidence.require(
        "rule", "present" if rule else "missing", "present", rule is not None, where=where
    )
    want = float(threshold("5.3.1", ALERT_CRITERIA[criterion]))
    found = expression_threshold(str(rule.get("query", "")))
    accepted = {want, want / 100} if ALERT_CRITERIA[criterion].endswith("_percent") else {want}
    ok = (
        found is not None
        and found[0] in (">", ">=")
        and any(math.isclose(found[1], a) for a in accepted)
    )
    evidence.check(
        "threshold",
        f"{found[0]} {found[1]:g}" if found else rule.get("query"),
        f"> {want:g}",
        ok,
        where=where,
    )
    severity = (rule.get("labels") or {}).get("severity")
    want_severity = threshold("5.3.1", f"{criterion}_severity")
    evidence.check("severity", severity, want_severity, severity == want_severity, where=where)
    health = rule.get("health")
    if health == "unknown":  # loaded, not yet evaluated: whether it evaluates is not known
        evidence.undecided("rule not evaluated yet (health unknown)", where=where)
    evidence.check("health", health, "ok", health == "ok", where=where)


@pytest.mark.checklist("5.3.2")
@pytest.mark.each("receiver", "monitoring", "receivers")
def test_alert_receiver_configured(alertmanager, evidence, receiver):
    """Each expected Alertmanager receiver exists with at least one notification integration."""
    integrations = receiver_integrations(alertmanager.config())
    where = f"alertmanager receiver {receiver}"
    evidence.require(
        "receiver",
        "present" if receiver in integrations else "missing",
        "present",
        receiver in integrations,
        where=where,
    )
    evidence.check(
        "integrations",
        integrations[receiver] or "(none)",
        ">= 1",
        bool(integrations[receiver]),
        where=where,
    )


@pytest.mark.checklist("5.3.2")
def test_alert_channels_and_escalation(alertmanager, evidence):
    """Alerts reach PagerDuty/Opsgenie/Slack: critical ones page someone, warnings reach a channel."""
    config = alertmanager.config()
    integrations = receiver_integrations(config)
    kinds = sorted({k for have in integrations.values() for k in have})
    evidence.check(
        "channels",
        kinds,
        "pagerduty, opsgenie or slack",
        bool({"pagerduty", "opsgenie", "slack"} & set(kinds)),
        where="alertmanager",
    )
    route = config.get("route") or {}
    pagers = paging_receivers(config)
    critical = route_receivers(route, {"alertname": "VcciReadinessProbe", "severity": "critical"})
    evidence.check(
        "critical alerts reach",
        critical,
        f"a paging receiver ({', '.join(pagers) or 'none configured'})",
        bool(set(critical) & set(pagers)),
        where="alertmanager route",
    )
    warning = route_receivers(route, {"alertname": "VcciReadinessProbe", "severity": "warning"})
    evidence.check(
        "warning alerts reach",
        warning,
        "a receiver with an integration",
        any(integrations.get(r) for r in warning),
        where="alertmanager route",
    )


@pytest.mark.checklist("5.3.2")
def test_on_call_rotation_attested(attest):
    """The on-call rotation and escalation policy are defined (attested by a person)."""
    attest("5.3.2")


def _probe_job(
    prometheus: Any, expect: Callable[..., Any], kind: str, evidence: Any
) -> tuple[str, dict[str, Any]]:
    name = expect("monitoring", "synthetic_jobs", kind)
    job = next(
        (j for j in prometheus.config().get("scrape_configs") or [] if j.get("job_name") == name),
        None,
    )
    evidence.require(
        "probe job",
        "present" if job else "missing",
        "present",
        job is not None,
        where=f"prometheus job {name}",
    )
    return name, dict(job or {})


def _check_probe(
    prometheus: Any, name: str, job: dict[str, Any], interval: float, failures: int, evidence: Any
) -> None:
    where = f"prometheus job {name}"
    have = duration_seconds(job.get("scrape_interval")) or 0.0
    evidence.check(
        "probe interval",
        job.get("scrape_interval"),
        f"{interval:g}s",
        have == interval,
        where=where,
    )
    is_probe = job.get("metrics_path") == "/probe" or "module" in (job.get("params") or {})
    evidence.check(
        "prober", job.get("metrics_path"), "/probe (blackbox exporter)", is_probe, where=where
    )
    targets = [t for t in prometheus.targets() if t.get("labels", {}).get("job") == name]
    evidence.check(
        "probe targets",
        [t.get("labels", {}).get("instance") for t in targets] or "(none)",
        ">= 1",
        bool(targets),
        where=where,
    )
    for target in targets:
        health = target.get("health")
        instance = f"{where} {target.get('labels', {}).get('instance')}"
        if health == "unknown":  # not scraped since (re)start: the probe results below decide
            evidence.record("probe health", "unknown (not scraped yet)", "up", where=instance)
            continue
        evidence.check("probe health", health, "up", health == "up", where=instance)
    # The latest probe within two intervals: a plain selector goes stale after 5 minutes,
    # before a 15-minute probe runs again.
    window = f"{int(max(2 * have, 300))}s"
    results = prometheus.query(f'last_over_time(probe_success{{job="{name}"}}[{window}])')
    for result in results:
        success = float(result["value"][1])
        evidence.check(
            "last probe succeeded",
            success,
            1,
            success == 1,
            where=f"{where} {result.get('metric', {}).get('instance')}",
        )
    rules = [
        r
        for r in prometheus.alert_rules().values()
        if "probe_success" in str(r.get("query")) and f'job="{name}"' in str(r.get("query"))
    ]
    evidence.require(
        "alert rule on probe_success",
        [r.get("name") for r in rules] or "(none)",
        ">= 1",
        bool(rules),
        where=where,
    )
    for rule in rules:
        wait = float(rule.get("duration") or 0)
        consecutive = int(wait // have) + 1 if have else 0
        evidence.check(
            "failures before alerting",
            consecutive,
            failures,
            consecutive == failures,
            where=f"alert rule {rule.get('name')} (for {wait:g}s, every {have:g}s)",
        )
    if not results:
        evidence.undecided(f"no probe result in the last {window}: not probed yet", where=where)


@pytest.mark.checklist("5.3.3")
def test_uptime_checks_every_minute(prometheus, expect, threshold, evidence):
    """An uptime probe checks the API's health endpoint every minute and alerts after 2 failures in a row."""
    name, job = _probe_job(prometheus, expect, "uptime", evidence)
    targets = [t for c in job.get("static_configs") or [] for t in c.get("targets") or []]
    evidence.check(
        "API health check",
        targets,
        "a /health URL",
        any("/health" in t for t in targets),
        where=f"prometheus job {name}",
    )
    _check_probe(
        prometheus,
        name,
        job,
        float(threshold("5.3.3", "uptime_check_interval_seconds")),
        int(threshold("5.3.3", "alert_after_failures")),
        evidence,
    )


@pytest.mark.checklist("5.3.3")
def test_workflow_checks_every_15_minutes(prometheus, expect, threshold, evidence):
    """An end-to-end workflow probe runs every 15 minutes and alerts after 2 failures in a row."""
    name, job = _probe_job(prometheus, expect, "workflow", evidence)
    _check_probe(
        prometheus,
        name,
        job,
        float(threshold("5.3.3", "workflow_check_interval_minutes")) * 60,
        int(threshold("5.3.3", "alert_after_failures")),
        evidence,
    )
