"""Monitoring for the sandbox: real Prometheus and Alertmanager (Debian packages) on loopback.

Prometheus runs the checklist's configuration (5.1.1: scrape interval 30s, retention 15 days),
the alert rules of 5.3.1 and 2.2.3 plus an always-firing ``Watchdog``, and sends alerts to the
Alertmanager. Alertmanager has the receivers of 5.3.2 (PagerDuty, Opsgenie, Slack, a
dead-man's-switch) and an escalation route. Every receiver URL points at a loopback port
nothing listens on, so no notification can leave the machine.

Only the rule evaluation interval is shortened (default 1s), so the Watchdog reaches the
Alertmanager within seconds; start() returns once it is firing there.

Metric names the alert rules expect (the sample API's names, and conventional exporter names):

- ``http_requests_total{job="vcci-api",status}`` and
  ``http_request_duration_seconds_bucket{job="vcci-api",le}`` (API error rate, latency p99) and
  ``worker_queue_depth{queue}`` (worker queue depth), all exposed by the sample API;
- ``aws_rds_cpuutilization_average`` (CloudWatch exporter), ``pg_stat_database_numbackends``,
  ``pg_settings_max_connections``, ``pg_replication_lag_seconds`` (postgres_exporter),
  ``node_filesystem_avail_bytes`` / ``node_filesystem_size_bytes`` on the database volume;
- ``kube_pod_container_status_restarts_total`` (kube-state-metrics).

Every rule carries ``labels.severity`` and ``annotations.checklist``/``annotations.threshold``
(the checklist's number in the checklist's unit) so suites can match rules to criteria.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_vcci.sandbox.base import (
    Component,
    SandboxError,
    free_port,
    require_binary,
    wait_until,
)

PROMETHEUS_PACKAGE = "prometheus"
ALERTMANAGER_PACKAGE = "prometheus-alertmanager"
RETENTION = "15d"
SCRAPE_INTERVAL = "30s"
RECEIVERS = ("pagerduty-critical", "opsgenie", "slack-warnings", "deadmansswitch")
# Named ways to start a monitoring stack that fails a check, for the suites' negative tests.
BREAKAGES: dict[str, str] = {
    "missing-alert-rule": "no VcciWorkerQueueDepthHigh rule (5.3.1)",
    "missing-receiver": "no pagerduty-critical receiver; critical alerts page Opsgenie only (5.3.2)",
}


def _rule(
    alert: str,
    expr: str,
    duration: str,
    severity: str,
    checklist: str,
    threshold: str,
    summary: str,
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, "team": "vcci-platform"},
        "annotations": {
            "summary": summary,
            "checklist": checklist,
            "threshold": threshold,
            "runbook_url": f"https://runbooks.vcci.greenlang.io/alerts/{alert}",
        },
    }


def _db_disk_percent() -> str:
    volume = 'job="vcci-db-node",mountpoint="/var/lib/postgresql"'
    return (
        f"100 * (1 - node_filesystem_avail_bytes{{{volume}}}"
        f" / node_filesystem_size_bytes{{{volume}}})"
    )


def alert_rules() -> dict[str, Any]:
    """The rule file: 5.3.1, 2.2.3 and the Watchdog, as Prometheus loads it."""
    api = [
        _rule(
            "VcciApiErrorRateHigh",
            '100 * sum(rate(http_requests_total{job="vcci-api",status=~"5.."}[5m]))'
            ' / sum(rate(http_requests_total{job="vcci-api"}[5m])) > 1',
            "5m",
            "critical",
            "5.3.1",
            "1",
            "API 5xx error rate above 1%",
        ),
        _rule(
            "VcciApiLatencyP99High",
            "histogram_quantile(0.99, sum by (le) (rate("
            'http_request_duration_seconds_bucket{job="vcci-api"}[5m]))) > 2',
            "10m",
            "warning",
            "5.3.1",
            "2",
            "API p99 latency above 2s",
        ),
    ]
    database = [
        _rule(
            "VcciDatabaseCpuHigh",
            "max by (dbinstance_identifier) (aws_rds_cpuutilization_average) > 80",
            "15m",
            "warning",
            "5.3.1",
            "80",
            "Database CPU above 80%",
        ),
        _rule(
            "VcciDatabaseDiskCritical",
            f"{_db_disk_percent()} > 85",
            "5m",
            "critical",
            "5.3.1",
            "85",
            "Database disk above 85% used",
        ),
        _rule(
            "VcciDatabaseDiskHigh",
            f"{_db_disk_percent()} > 80",
            "15m",
            "warning",
            "2.2.3",
            "80",
            "Database disk above 80% used",
        ),
        _rule(
            "VcciDatabaseConnectionsHigh",
            "100 * sum by (instance) (pg_stat_database_numbackends)"
            " / on (instance) max by (instance) (pg_settings_max_connections) > 80",
            "5m",
            "warning",
            "2.2.3",
            "80",
            "Database connections above 80% of max",
        ),
        _rule(
            "VcciDatabaseReplicationLagHigh",
            "max by (instance) (pg_replication_lag_seconds) > 5",
            "2m",
            "warning",
            "2.2.3",
            "5",
            "Replication lag above 5 seconds",
        ),
    ]
    platform = [
        _rule(
            "VcciPodRestartRateHigh",
            'increase(kube_pod_container_status_restarts_total{namespace=~"vcci-.*"}[1h]) > 5',
            "0m",
            "warning",
            "5.3.1",
            "5",
            "Pod restarted more than 5 times in an hour",
        ),
        _rule(
            "VcciWorkerQueueDepthHigh",
            "sum(worker_queue_depth) > 10000",
            "10m",
            "warning",
            "5.3.1",
            "10000",
            "Worker queue deeper than 10,000",
        ),
    ]
    watchdog = _rule(
        "Watchdog",
        "vector(1)",
        "0m",
        "none",
        "12.1.2",
        "",
        "Always firing: proves the alerting pipeline end to end",
    )
    return {
        "groups": [
            {"name": "vcci-api", "rules": api},
            {"name": "vcci-database", "rules": database},
            {"name": "vcci-platform", "rules": platform},
            {"name": "meta", "rules": [watchdog]},
        ]
    }


def _scrape_job(name: str, urls: Sequence[str]) -> dict[str, Any]:
    """One job for URLs that share scheme and path (Prometheus sets those per job)."""
    parts = [urlsplit(u) for u in urls]
    schemes_paths = {(p.scheme or "http", p.path or "/metrics") for p in parts}
    if len(schemes_paths) > 1:
        raise SandboxError(f"scrape targets of job {name} differ in scheme or path: {list(urls)}")
    scheme, path = schemes_paths.pop() if schemes_paths else ("http", "/metrics")
    targets = [p.netloc for p in parts]
    return {
        "job_name": name,
        "scheme": scheme,
        "metrics_path": path,
        "static_configs": [{"targets": targets, "labels": {"environment": "staging"}}],
    }


@dataclass
class AlertmanagerComponent(Component):
    """prometheus-alertmanager on 127.0.0.1 with the 5.3.2 receivers and escalation route."""

    name: str = "alertmanager"
    port: int = 0
    startup_seconds: float = 0.0
    broken: frozenset[str] = frozenset()
    _sink_port: int = field(default=0, repr=False)  # loopback port nothing listens on

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        sink = f"http://127.0.0.1:{self._sink_port}"
        return {
            "global": {
                "resolve_timeout": "5m",
                "slack_api_url": f"{sink}/slack",
                "pagerduty_url": f"{sink}/pagerduty",
                "opsgenie_api_url": f"{sink}/opsgenie/",
            },
            "route": _route(),
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["alertname", "instance"],
                }
            ],
            "receivers": [
                {
                    "name": "pagerduty-critical",
                    "pagerduty_configs": [
                        {
                            "routing_key": "sandbox-pagerduty-routing-key",
                            "send_resolved": True,
                            "severity": "critical",
                        }
                    ],
                },
                {
                    "name": "opsgenie",
                    "opsgenie_configs": [
                        {
                            "api_key": "sandbox-opsgenie-api-key",
                            "priority": "P1",
                            "responders": [{"name": "vcci-oncall", "type": "schedule"}],
                        }
                    ],
                },
                {
                    "name": "slack-warnings",
                    "slack_configs": [
                        {
                            "channel": "#vcci-alerts",
                            "send_resolved": True,
                            "title": "{{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})",
                        }
                    ],
                },
                {
                    "name": "deadmansswitch",
                    "webhook_configs": [{"url": f"{sink}/deadmansswitch", "send_resolved": False}],
                },
            ],
        }

    def effective_config(self) -> dict[str, Any]:
        """config(), less what ``broken`` takes away."""
        config = self.config()
        if "missing-receiver" in self.broken:
            gone = "pagerduty-critical"
            config["receivers"] = [r for r in config["receivers"] if r["name"] != gone]
            routes = config["route"]["routes"]
            config["route"]["routes"] = [r for r in routes if r["receiver"] != gone]
        return config

    def start(self) -> None:
        import yaml

        binary = require_binary("prometheus-alertmanager", ALERTMANAGER_PACKAGE)
        self.port = self.port or free_port()
        self._sink_port = self._sink_port or free_port()
        directory = self.workdir / "alertmanager"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        config_file = directory / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(self.effective_config(), sort_keys=False))
        began = time.monotonic()
        proc = self.spawn(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no HA gossip: it would bind 0.0.0.0:9094
            ],
            "alertmanager.log",
        )
        wait_until(
            lambda: _http_ok(f"{self.url}/-/ready"),
            "alertmanager",
            timeout=30,
            proc=proc,
            log=self.log_path("alertmanager.log"),
        )
        self.startup_seconds = time.monotonic() - began

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {"alertmanager": {"url": self.url}}


def _route() -> dict[str, Any]:
    """Escalation: critical pages (PagerDuty, then Opsgenie) and also goes to Slack."""
    return {
        "receiver": "slack-warnings",
        "group_by": ["alertname", "severity"],
        "group_wait": "10s",
        "group_interval": "1m",
        "repeat_interval": "4h",
        "routes": [
            {
                "receiver": "deadmansswitch",
                "matchers": ['alertname="Watchdog"'],
                "group_wait": "0s",
                "group_interval": "1m",
                "repeat_interval": "1m",
            },
            {
                "receiver": "pagerduty-critical",
                "matchers": ['severity="critical"'],
                "continue": True,
                "repeat_interval": "1h",
            },
            {
                "receiver": "opsgenie",
                "matchers": ['severity="critical"'],
                "continue": True,
                "group_wait": "5m",
            },
            {"receiver": "slack-warnings", "matchers": ['severity=~"critical|warning"']},
        ],
    }


@dataclass
class PrometheusComponent(Component):
    """Prometheus on 127.0.0.1: 30s scrapes, 15d retention, checklist alert rules."""

    name: str = "prometheus"
    port: int = 0
    alertmanager_url: str | None = None
    scrape_targets: Sequence[str] = ()  # e.g. the sample API's http://127.0.0.1:PORT/metrics
    # The first target's recent past (SampleApiComponent.history), backfilled before start so
    # rate() over the last hour answers at once; None: an empty TSDB.
    history: Callable[[], Sequence[Any]] | None = None
    probe_jobs: Sequence[dict[str, Any]] = ()  # synthetic checks (5.3.3), see synthetic.py
    extra_rule_groups: Sequence[dict[str, Any]] = ()
    broken: frozenset[str] = frozenset()
    scrape_interval: str = SCRAPE_INTERVAL
    evaluation_interval: str = "1s"  # short only so the Watchdog fires within seconds
    resend_delay: str = "2s"
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": "10s",
                "evaluation_interval": self.evaluation_interval,
                "external_labels": {"environment": "staging", "cluster": "vcci-staging"},
            },
            "rule_files": ["rules/*.yml"],
            "scrape_configs": [
                _scrape_job("prometheus", [f"{self.url}/metrics"]),
                _scrape_job("vcci-api", list(self.scrape_targets)),
                *self.probe_jobs,
            ],
        }
        if self.alertmanager_url:
            target = urlsplit(self.alertmanager_url)
            config["alerting"] = {
                "alertmanagers": [
                    {
                        "scheme": target.scheme or "http",
                        "path_prefix": target.path or "/",
                        "static_configs": [{"targets": [target.netloc]}],
                    }
                ]
            }
        return config

    def start(self) -> None:
        import yaml

        binary = require_binary("prometheus", PROMETHEUS_PACKAGE)
        self.port = self.port or free_port()
        directory = self.workdir / "prometheus"
        (directory / "rules").mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        (directory / "rules" / "vcci.yml").write_text(yaml.safe_dump(self.rules(), sort_keys=False))
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        began = time.monotonic()
        if (self.history is not None and self.scrape_targets) or self.probe_jobs:
            self._backfill(directory)
        proc = self.spawn(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Alerts evaluated before the Alertmanager is discovered (discovery updates every
                # 5s) are re-sent after this delay; the default 1m would delay the Watchdog by 1m.
                f"--rules.alert.resend-delay={self.resend_delay}",
            ],
            "prometheus.log",
        )
        wait_until(
            lambda: _http_ok(f"{self.url}/-/ready"),
            "prometheus",
            timeout=30,
            proc=proc,
            log=self.log_path("prometheus.log"),
        )
        self.startup_seconds = time.monotonic() - began

    def _backfill(self, directory: Path) -> None:
        """promtool writes the recent past as TSDB blocks, with the labels a scrape would add:
        the application's history, and the synthetic probes' last hour (a 15-minute probe
        would otherwise have no result for up to 15 minutes after start: 5.3.3 undecided)."""
        from pytest_vcci.sandbox.synthetic import probe_history

        target = {"environment": "staging"}
        families: list[Any] = []
        if self.history is not None and self.scrape_targets:
            target = {
                "job": "vcci-api",
                "instance": urlsplit(self.scrape_targets[0]).netloc,
                "environment": "staging",
            }
            families.extend(self.history())
        families.extend(probe_history(self.probe_jobs, time.time()))
        if not families:
            return
        source = directory / "history.om"
        source.write_text(openmetrics(families, target))
        promtool = require_binary("promtool", PROMETHEUS_PACKAGE)
        done = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(directory / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise SandboxError(
                f"promtool backfill failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-500:]}"
            )

    def rules(self) -> dict[str, Any]:
        """alert_rules() and the extra groups, less what ``broken`` takes away."""
        groups = [*alert_rules()["groups"], *self.extra_rule_groups]
        if "missing-alert-rule" in self.broken:
            groups = [
                {**g, "rules": [r for r in g["rules"] if r["alert"] != "VcciWorkerQueueDepthHigh"]}
                for g in groups
            ]
        return {"groups": groups}

    def scraped_once(self, job: str) -> bool:
        """True once every target of ``job`` has been scraped (successfully or not)."""
        import requests

        answer = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=2)
        targets = [
            t for t in answer.json()["data"]["activeTargets"] if t["labels"].get("job") == job
        ]
        return bool(targets) and all(t.get("health") != "unknown" for t in targets)

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {"prometheus": {"url": self.url}}


def openmetrics(families: Sequence[Any], target: dict[str, str]) -> str:
    """(family, type, [(sample, labels, [(time, value)])]) as OpenMetrics text for promtool."""
    lines = []
    for family, kind, series in families:
        lines.append(f"# TYPE {family} {kind}")
        for name, labels, points in series:
            text = ",".join(f'{k}="{v}"' for k, v in {**target, **labels}.items())
            lines.extend(f"{name}{{{text}}} {float(value)!r} {at:.3f}" for at, value in points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass
class MonitoringComponent(Component):
    """Alertmanager, then Prometheus pointed at it; ready once the Watchdog fires there."""

    name: str = "monitoring"
    scrape_targets: Sequence[str] = ()
    history: Callable[[], Sequence[Any]] | None = None  # see PrometheusComponent.history
    # What the synthetic checks probe (synthetic.probe_targets_for(api)); empty: no probes.
    probe_targets: dict[str, Any] = field(default_factory=dict)
    broken: frozenset[str] = frozenset()  # names from BREAKAGES
    prometheus: PrometheusComponent | None = None
    alertmanager: AlertmanagerComponent | None = None
    startup_seconds: float = 0.0
    watchdog_seconds: float = 0.0  # from start until the Watchdog is active in Alertmanager

    def start(self) -> None:
        began = time.monotonic()
        unknown = set(self.broken) - set(BREAKAGES)
        if unknown:
            raise SandboxError(
                f"unknown monitoring breakage(s) {sorted(unknown)}: {sorted(BREAKAGES)}"
            )
        self.alertmanager = AlertmanagerComponent(
            workdir=self.workdir, broken=frozenset(self.broken)
        )
        self._start(self.alertmanager)
        jobs: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        if self.probe_targets:
            from pytest_vcci.sandbox.synthetic import BlackboxComponent, probe_jobs, probe_rules

            blackbox = BlackboxComponent(workdir=self.workdir, probes=self.probe_targets)
            self._start(blackbox)
            jobs, groups = probe_jobs(blackbox.address, self.probe_targets), [probe_rules()]
        self.prometheus = PrometheusComponent(
            workdir=self.workdir,
            alertmanager_url=self.alertmanager.url,
            scrape_targets=self.scrape_targets,
            history=self.history,
            probe_jobs=jobs,
            extra_rule_groups=groups,
            broken=frozenset(self.broken),
        )
        self._start(self.prometheus)
        wait_until(
            lambda: watchdog_firing(self.alertmanager_url),
            "Watchdog alert in alertmanager",
            timeout=60,
            log=self.log_path("prometheus.log"),
        )
        if self.scrape_targets:
            # 30 s scrapes start at an offset within the interval: wait for the first one, so
            # the application's series have a sample as soon as the sandbox is up (5.1.3).
            prometheus = self.prometheus
            wait_until(
                lambda: prometheus.scraped_once("vcci-api"),
                "first scrape of vcci-api",
                timeout=45,
                log=self.log_path("prometheus.log"),
            )
        self.startup_seconds = time.monotonic() - began
        self.watchdog_seconds = self.startup_seconds

    def _start(self, part: Component) -> None:
        try:
            part.start()
        finally:
            self.pids.extend(part.pids)  # recorded even on failure, so stop() kills them

    @property
    def alertmanager_url(self) -> str:
        if self.alertmanager is None:
            raise SandboxError("monitoring is not started")
        return self.alertmanager.url

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise SandboxError("monitoring is not started")
        return self.prometheus.url

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {
            "prometheus": {"url": self.prometheus_url},
            "alertmanager": {"url": self.alertmanager_url},
        }

    def expect(self) -> dict[str, Any]:
        """Names the suites look for, for the environment file's [expect] table."""
        rules = [r["alert"] for g in alert_rules()["groups"] for r in g["rules"]]
        return {
            "monitoring": {
                "alert_rules": rules,
                "receivers": list(RECEIVERS),
                "scrape_jobs": ["prometheus", "vcci-api"],
                **suite_expect(),
                # The job of the application's request metrics (11.1.3, 12.x).
                "api_job": "vcci-api",
            }
        }


def _http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=2).ok


def watchdog_firing(alertmanager_url: str) -> bool:
    """True once Alertmanager holds an active Watchdog alert."""
    import requests

    response = requests.get(
        f"{alertmanager_url}/api/v2/alerts",
        params={"active": "true", "filter": 'alertname="Watchdog"'},
        timeout=2,
    )
    return response.ok and bool(response.json())


def suite_expect() -> dict[str, Any]:
    """What sections 5.1.3-5.3.3 look for: series names (the sample API's), the rule of each
    5.3.1 criterion, and the synthetic-check jobs (synthetic.py)."""
    from pytest_vcci.sandbox.synthetic import UPTIME_JOB, WORKFLOW_JOB

    return {
        "key_metrics": {
            "api_request_rate": "http_requests_total",
            "api_latency": "http_request_duration_seconds_bucket",
            "api_error_rate": "http_requests_total",
            "db_pool_usage": "db_pool_connections_active",
            "redis_memory": "redis_memory_used_bytes",
            "worker_queue_depth": "worker_queue_depth",
        },
        "business_metrics": {
            "active_tenants": "vcci_active_tenants",
            "suppliers_processed": "vcci_suppliers_processed_total",
            "emissions_calculations": "vcci_emissions_calculations_total",
            "ingestion_volume": "vcci_ingestion_bytes_total",
            "reports_generated": "vcci_reports_generated_total",
        },
        "checklist_alerts": {
            "api_error_rate": "VcciApiErrorRateHigh",
            "api_latency_p99": "VcciApiLatencyP99High",
            "db_cpu": "VcciDatabaseCpuHigh",
            "db_disk": "VcciDatabaseDiskCritical",
            "pod_restarts": "VcciPodRestartRateHigh",
            "worker_queue_depth": "VcciWorkerQueueDepthHigh",
        },
        "synthetic_jobs": {"uptime": UPTIME_JOB, "workflow": WORKFLOW_JOB},
    }
