"""Synthetic monitoring for the sandbox (checklist 5.3.3): a real blackbox exporter probing the
sample API, scraped by the sandbox Prometheus, with alert rules on consecutive failures.

Where the checks live, as in a typical Prometheus setup:

- the **uptime check** is the Prometheus job ``synthetic-uptime``: every 1 minute the blackbox
  exporter GETs the API's ``/health/ready`` over HTTPS (trusting the sandbox CA) and Prometheus
  records ``probe_success``;
- the **end-to-end workflow check** is the job ``synthetic-workflow``: every 15 minutes an
  authenticated read of the tenant's suppliers through the public API (the read-only CI API key
  in an ``X-API-Key`` header);
- **alerting after 2 consecutive failures** is the alert rules' ``for:``: one probe interval of
  continuous failure (``for: 1m`` at a 1-minute interval, ``for: 15m`` at 15 minutes) means the
  second failed probe in a row fires the alert. The 15-minute job's rule reads the latest probe
  with ``last_over_time(...[20m])``, because a plain selector goes stale after 5 minutes.

The suites find these through ``[expect.monitoring].synthetic_jobs`` and read intervals, targets
and rules from the live Prometheus, the same way they would in a real environment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_vcci.sandbox.base import Component, free_port, require_binary, wait_until

BLACKBOX_PACKAGE = "prometheus-blackbox-exporter"
UPTIME_JOB = "synthetic-uptime"
WORKFLOW_JOB = "synthetic-workflow"
UPTIME_INTERVAL = "1m"
WORKFLOW_INTERVAL = "15m"


def probe_targets_for(api: Any) -> dict[str, Any]:
    """What to probe on the sample API component (empty if there is no API in this sandbox)."""
    if api is None or not getattr(api, "base_url", None):
        return {}
    base = str(api.base_url)
    return {
        "uptime": [f"{base}/health/ready"],
        "workflow": [f"{base}/api/v1/suppliers"],
        "ca_file": str(api.ca_bundle),
        "api_key": str(api.api_key),
    }


def blackbox_config(probes: Mapping[str, Any]) -> dict[str, Any]:
    tls = {"ca_file": probes["ca_file"]}
    http = {
        "method": "GET",
        "valid_status_codes": [200],
        "tls_config": tls,
        "preferred_ip_protocol": "ip4",
        "fail_if_not_ssl": True,
    }
    return {
        "modules": {
            "http_2xx": {"prober": "http", "timeout": "5s", "http": http},
            "vcci_workflow": {
                "prober": "http",
                "timeout": "10s",
                "http": {
                    **http,
                    "headers": {"X-API-Key": probes["api_key"], "Accept": "application/json"},
                    "fail_if_body_not_matches_regexp": ["\\["],
                },
            },
        }
    }


def probe_jobs(blackbox: str, probes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Prometheus scrape jobs that run the probes through the blackbox exporter at ``blackbox``."""

    def job(name: str, interval: str, module: str, targets: list[str]) -> dict[str, Any]:
        return {
            "job_name": name,
            "scrape_interval": interval,
            "scrape_timeout": "10s",
            "metrics_path": "/probe",
            "params": {"module": [module]},
            "static_configs": [{"targets": targets, "labels": {"environment": "staging"}}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": blackbox},
            ],
        }

    return [
        job(UPTIME_JOB, UPTIME_INTERVAL, "http_2xx", list(probes["uptime"])),
        job(WORKFLOW_JOB, WORKFLOW_INTERVAL, "vcci_workflow", list(probes["workflow"])),
    ]


def probe_history(jobs: Sequence[Mapping[str, Any]], now: float) -> list[Any]:
    """The probes' last hour as history families for the backfill: one successful probe_success
    sample per interval and target, labelled as the scrape labels it (job, instance, ...)."""
    series = []
    for job in jobs:
        step = {"1m": 60, "15m": 900}[job["scrape_interval"]]
        for config in job["static_configs"]:
            for target in config["targets"]:
                labels = {"job": job["job_name"], "instance": target, **config.get("labels", {})}
                points = [(now - k * step, 1) for k in range(3600 // step, 0, -1)]
                series.append(("probe_success", labels, points))
    return [("probe_success", "gauge", series)] if series else []


def probe_rules() -> dict[str, Any]:
    """Alert after 2 consecutive failed probes (for: one interval, see the module docstring)."""

    def rule(alert: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
        return {
            "alert": alert,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity, "team": "vcci-platform"},
            "annotations": {
                "summary": summary,
                "checklist": "5.3.3",
                "threshold": "2",
                "runbook_url": f"https://runbooks.vcci.greenlang.io/alerts/{alert}",
            },
        }

    return {
        "name": "vcci-synthetic",
        "rules": [
            rule(
                "VcciUptimeCheckFailing",
                f'probe_success{{job="{UPTIME_JOB}"}} == 0',
                UPTIME_INTERVAL,
                "critical",
                "API health check failed twice in a row",
            ),
            rule(
                "VcciWorkflowCheckFailing",
                f'last_over_time(probe_success{{job="{WORKFLOW_JOB}"}}[20m]) == 0',
                WORKFLOW_INTERVAL,
                "warning",
                "End-to-end workflow check failed twice in a row",
            ),
        ],
    }


@dataclass
class BlackboxComponent(Component):
    """prometheus-blackbox-exporter on 127.0.0.1 with the uptime and workflow modules."""

    name: str = "blackbox"
    port: int = 0
    probes: Mapping[str, Any] | None = None
    startup_seconds: float = 0.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        import yaml

        from pytest_vcci.sandbox.base import port_open

        binary = require_binary("prometheus-blackbox-exporter", BLACKBOX_PACKAGE)
        self.port = self.port or free_port()
        directory = self.workdir / "blackbox"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "blackbox.yml"
        config.touch(mode=0o600)  # holds the read-only API key
        config.write_text(yaml.safe_dump(blackbox_config(self.probes or {}), sort_keys=False))
        began = time.monotonic()
        proc = self.spawn(
            [binary, f"--config.file={config}", f"--web.listen-address={self.address}"],
            "blackbox.log",
        )
        wait_until(
            lambda: port_open(self.port),
            "blackbox exporter",
            timeout=30,
            proc=proc,
            log=self.log_path("blackbox.log"),
        )
        self.startup_seconds = time.monotonic() - began


__all__ = [
    "UPTIME_JOB",
    "WORKFLOW_JOB",
    "BlackboxComponent",
    "blackbox_config",
    "probe_history",
    "probe_jobs",
    "probe_rules",
    "probe_targets_for",
]
