"""No check passes on nothing: a suite check that finds nothing to judge (no nodes, no workloads,
a file type it cannot parse, a rule not yet evaluated, no probe result) ends undecided, naming
why, and its criterion stays undecided; the same check passes on the staging it was written for.

Kubernetes cases run the suite against the Kubernetes API emulator serving a copy of the staging
manifests; the monitoring cases call the suite function with a stand-in Prometheus that answers
as a just-started one does (a state a real server is only in for seconds).
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from variants import run_pytester

from pytest_vcci.evidence.recorder import Evidence
from pytest_vcci.sandbox.kube import STAGING_MANIFESTS, TOKEN_VAR, KubeComponent, application_expect

SUITES = Path(__file__).resolve().parents[2] / "suites"
SECTION_1, SECTION_3, SECTION_5 = (
    SUITES / "test_01_pre_deployment.py",
    SUITES / "test_03_application.py",
    SUITES / "test_05_monitoring.py",
)
NAMESPACE = "vcci-staging"


def manifests_copy(directory: Path, edit: Callable[[Path], None]) -> Path:
    target = directory / "manifests"
    shutil.copytree(STAGING_MANIFESTS, target)
    edit(target)
    return target


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KubeComponent]]:
    """The staging cluster, one without nodes, and one whose app ConfigMap holds a script."""

    def no_nodes(directory: Path) -> None:
        (directory / "01-nodes.yaml").unlink()

    def with_script(directory: Path) -> None:
        path = directory / "04-configmaps.yaml"
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for document in documents:
            if document["metadata"]["name"] == "vcci-app-config":
                document["data"]["startup.sh"] = "#!/bin/sh\nexec gunicorn app:app\n"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))

    started: dict[str, KubeComponent] = {}
    try:
        for name, edit in (("staging", None), ("no-nodes", no_nodes), ("script", with_script)):
            workdir = tmp_path_factory.mktemp(f"kube-{name}")
            manifests = manifests_copy(workdir, edit) if edit else STAGING_MANIFESTS
            kube = KubeComponent(workdir=workdir, manifests=manifests, manifests_repository=False)
            kube.start()
            started[name] = kube
        yield started
    finally:
        for kube in started.values():
            kube.stop()


def run(
    pytester: pytest.Pytester,
    kube: KubeComponent,
    module: Path,
    select: str,
    namespace: str = NAMESPACE,
) -> dict[str, dict[str, Any]]:
    """The tests matching ``select`` of ``module`` against ``kube``: {test name: test}."""
    tables = {
        "environment": {"name": "nothing-to-judge"},
        "kubernetes": {**kube.env_tables()["kubernetes"], "namespace": namespace},
        "expect": {
            "kubernetes": {
                **application_expect(),
                "node_labels": ["topology.kubernetes.io/zone"],
                "registry": "registry.vcci.internal",
            }
        },
    }
    items = run_pytester(
        pytester, [module], tables, {TOKEN_VAR: kube.token}, ("1.", "3.", "5."), "-k", select
    )
    return {t["nodeid"].split("::")[-1]: t for item in items.values() for t in item["tests"]}


def outcome(test: dict[str, Any]) -> tuple[str, str]:
    return test["outcome"], test["message"]


# --- 1.1.1 node labels and 5.2.1's shipper coverage: no nodes -----------------------------------


def test_node_labels_with_no_nodes_are_undecided(pytester, clusters) -> None:
    tests = run(pytester, clusters["no-nodes"], SECTION_1, "test_node_labels")
    assert outcome(tests["test_node_labels"]) == (
        "skipped",
        "undecided: cluster: no nodes listed: no labels to judge",
    )
    assert outcome(
        run(pytester, clusters["staging"], SECTION_1, "test_node_labels")["test_node_labels"]
    ) == (
        "passed",
        "",
    )


def test_log_shipper_on_no_nodes_is_undecided(pytester, clusters) -> None:
    name = "test_log_shipper_runs_on_every_node"
    tests = run(pytester, clusters["no-nodes"], SECTION_5, name)
    assert outcome(tests[name]) == (
        "skipped",
        "undecided: daemonset logging/fluent-bit: no Ready, schedulable node listed: "
        "none to run a shipper on",
    )
    assert outcome(run(pytester, clusters["staging"], SECTION_5, name)[name]) == ("passed", "")


# --- 1.2.5: a wrong or empty namespace has no workloads ------------------------------------------

REGISTRY_CHECKS = (
    "test_images_from_configured_registry",
    "test_image_pull_secrets",
    "test_images_pinned_by_digest",
)


def test_registry_checks_of_an_empty_namespace_are_undecided(pytester, clusters) -> None:
    select = " or ".join(REGISTRY_CHECKS)
    tests = run(pytester, clusters["staging"], SECTION_1, select, namespace="vcci-stagign")
    reason = (
        "undecided: namespace vcci-stagign: no workload (deployments, statefulsets, daemonsets, "
        "cronjobs) in the namespace"
    )
    assert {name: outcome(tests[name]) for name in REGISTRY_CHECKS} == dict.fromkeys(
        REGISTRY_CHECKS, ("skipped", reason)
    )
    good = run(pytester, clusters["staging"], SECTION_1, select)
    assert {name: good[name]["outcome"] for name in REGISTRY_CHECKS} == dict.fromkeys(
        REGISTRY_CHECKS, "passed"
    )


# --- 3.2.2: an entry of a file type no parser knows is not validated ----------------------------


def test_configmap_entry_of_unknown_type_is_undecided(pytester, clusters) -> None:
    name = "test_configmap_deployed_and_valid"
    tests = run(pytester, clusters["script"], SECTION_3, name)
    assert outcome(tests[f"{name}[vcci-app-config]"]) == (
        "skipped",
        "undecided: configmap vcci-staging/vcci-app-config: startup.sh: file type not one of "
        "YAML, JSON, TOML, nginx: not validated",
    )
    assert tests[f"{name}[vcci-nginx-config]"]["outcome"] == "passed"
    good = run(pytester, clusters["staging"], SECTION_3, name)
    assert good[f"{name}[vcci-app-config]"]["outcome"] == "passed"


# --- 5.3.1 / 5.3.3: a rule not yet evaluated, a probe that has not run --------------------------


def suite(path: Path) -> ModuleType:
    """A suite module, imported outside a run (its @pytest.mark.each is registered by the
    suites' conftest, which is not loaded here)."""
    spec = importlib.util.spec_from_file_location(f"suite_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        spec.loader.exec_module(module)
    return module


class JustStartedPrometheus:
    """Answers as Prometheus does right after a (re)start: rules loaded, not yet evaluated;
    probe targets known, not yet scraped; no probe result stored."""

    def __init__(
        self, rule_health: str = "unknown", probe_results: list[Any] | None = None
    ) -> None:
        self.rule_health = rule_health
        self.probe_results = probe_results or []
        self.queries: list[str] = []

    def alert_rules(self) -> dict[str, Any]:
        return {
            "VcciApiErrorRateHigh": {
                "name": "VcciApiErrorRateHigh",
                "query": "sum(rate(http_requests_total{status=~'5..'}[5m])) / sum(rate(http_requests_total[5m])) > 0.01",
                "labels": {"severity": "critical"},
                "health": self.rule_health,
            },
            "VcciUptimeCheckFailing": {
                "name": "VcciUptimeCheckFailing",
                "query": 'probe_success{job="synthetic-uptime"} == 0',
                "duration": 60,
                "health": self.rule_health,
            },
        }

    def config(self) -> dict[str, Any]:
        return {
            "scrape_configs": [
                {
                    "job_name": "synthetic-uptime",
                    "scrape_interval": "1m",
                    "metrics_path": "/probe",
                    "params": {"module": ["http_2xx"]},
                    "static_configs": [{"targets": ["https://api.example/health/ready"]}],
                }
            ]
        }

    def targets(self) -> list[dict[str, Any]]:
        labels = {"job": "synthetic-uptime", "instance": "https://api.example/health/ready"}
        return [{"labels": labels, "health": "unknown"}]

    def query(self, expression: str) -> list[Any]:
        self.queries.append(expression)
        return self.probe_results


def expect(*path: str, default: Any = None) -> Any:
    values = {
        ("monitoring", "checklist_alerts", "api_error_rate"): "VcciApiErrorRateHigh",
        ("monitoring", "synthetic_jobs", "uptime"): "synthetic-uptime",
    }
    return values.get(path, default)


def threshold(item_id: str, name: str) -> Any:
    from pytest_vcci.checklist import load_catalog

    return load_catalog().get(item_id).thresholds[name]


def call(function: Callable[..., None], **arguments: Any) -> tuple[str, str, Evidence]:
    """(outcome, message, evidence) of one suite function called with these fixtures."""
    evidence = Evidence()
    try:
        function(evidence=evidence, expect=expect, threshold=threshold, **arguments)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc.msg), evidence
    except pytest.fail.Exception as exc:
        return "failed", str(exc.msg), evidence
    if evidence.failures():
        return "failed", evidence.failure_message(), evidence
    return "passed", "", evidence


def test_alert_rule_not_yet_evaluated_is_undecided() -> None:
    module = suite(SECTION_5)
    check = module.test_alert_rule_threshold_and_severity
    result = call(check, prometheus=JustStartedPrometheus(), criterion="api_error_rate")
    assert result[:2] == (
        "skipped",
        "undecided: alert rule VcciApiErrorRateHigh (api_error_rate): rule not evaluated yet "
        "(health unknown)",
    )
    assert call(check, prometheus=JustStartedPrometheus("ok"), criterion="api_error_rate")[:2] == (
        "passed",
        "",
    )
    failed = call(check, prometheus=JustStartedPrometheus("err"), criterion="api_error_rate")
    assert (
        failed[1]
        == "alert rule VcciApiErrorRateHigh (api_error_rate): health: observed err, expected ok"
    )


def test_probe_without_a_result_is_undecided() -> None:
    module = suite(SECTION_5)
    prometheus = JustStartedPrometheus("ok")
    outcome_, message, evidence = call(
        module.test_uptime_checks_every_minute, prometheus=prometheus
    )
    assert (outcome_, message) == (
        "skipped",
        "undecided: prometheus job synthetic-uptime: no probe result in the last 300s: not probed yet",
    )
    # The target's unknown health is recorded, never counted as "up".
    [health] = [o for o in evidence.observations if o.name == "probe health"]
    assert (health.observed, health.passed) == ("unknown (not scraped yet)", None)
    # The latest probe within two intervals (at least 5 minutes) is what decides.
    assert prometheus.queries == ['last_over_time(probe_success{job="synthetic-uptime"}[300s])']
    probed = JustStartedPrometheus("ok", [{"metric": {"instance": "api"}, "value": [0, "1"]}])
    assert call(module.test_uptime_checks_every_minute, prometheus=probed)[:2] == ("passed", "")
