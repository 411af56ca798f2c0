"""The prometheus/alertmanager targets against real servers; grafana against a stub.

Prometheus and Alertmanager are the Debian packages, started once per session by the
sandbox's MonitoringComponent (fixtures here, not in a conftest). No Grafana server can be
installed here, so the Grafana client is tested against a tiny HTTP server defined below.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support_net import BlackHole

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.base import require_binary
from pytest_vcci.sandbox.monitoring import RECEIVERS, MonitoringComponent
from pytest_vcci.settings import EnvironmentTable, HttpTable, Settings
from pytest_vcci.targets.base import TargetUnreachable
from pytest_vcci.targets.monitoring import (
    Alertmanager,
    Grafana,
    MonitoringError,
    Prometheus,
    _build,
)

TOKEN = "glsa_sandbox-token-that-must-never-show-42"

# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def monitoring_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoringComponent]:
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    component = MonitoringComponent(workdir=tmp_path_factory.mktemp("monitoring"))
    try:
        component.start()
        assert component.prometheus is not None
        assert component.alertmanager is not None
        print(
            f"\nalertmanager ready in {component.alertmanager.startup_seconds:.2f}s, "
            f"prometheus ready in {component.prometheus.startup_seconds:.2f}s, "
            f"Watchdog firing in alertmanager after {component.watchdog_seconds:.2f}s"
        )
        yield component
    finally:
        component.stop()


def make_context(tmp_path: Path, **tables: Any) -> RunContext:
    settings = Settings(
        source="<test>", environment=EnvironmentTable.model_validate({"name": "t"}), tables=tables
    )
    return RunContext(
        settings=settings, redactor=Redactor(settings.secrets()), run_id="t", run_dir=tmp_path
    )


def table(url: str, **overrides: Any) -> HttpTable:
    return HttpTable(url=url, **overrides)


@pytest.fixture
def prom(monitoring_stack: MonitoringComponent, tmp_path: Path) -> Prometheus:
    url = monitoring_stack.env_tables()["prometheus"]["url"]
    context = make_context(tmp_path, prometheus=table(url, token=TOKEN))
    target: Prometheus = _build(context, Prometheus, "prometheus")
    return target


@pytest.fixture
def am(monitoring_stack: MonitoringComponent, tmp_path: Path) -> Alertmanager:
    url = monitoring_stack.env_tables()["alertmanager"]["url"]
    target: Alertmanager = _build(
        make_context(tmp_path, alertmanager=table(url)), Alertmanager, "alertmanager"
    )
    return target


# --- Prometheus ---------------------------------------------------------------------------


def test_prometheus_runs_the_checklist_configuration(prom: Prometheus) -> None:
    assert prom.flags()["storage.tsdb.retention.time"] == "15d"
    config = prom.config()
    assert config["global"]["scrape_interval"] == "30s"
    assert {j["job_name"] for j in config["scrape_configs"]} == {"prometheus", "vcci-api"}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert prom.buildinfo()["version"].startswith("2.")
    assert "storageRetention" in prom.runtimeinfo()
    jobs = {t["labels"]["job"] for t in prom.targets()}
    assert "prometheus" in jobs


def test_prometheus_queries(prom: Prometheus) -> None:
    (sample,) = prom.query("vector(42)")
    assert sample["value"][1] == "42"
    assert prom.query("scalar(vector(7))")[0]["value"][1] == "7"
    now = time.time()
    series = prom.query_range("vector(1)", now - 60, now, "15s")
    assert len(series[0]["values"]) >= 4
    assert prom.query("no_such_metric_anywhere") == []


def test_prometheus_has_the_checklist_alert_rules(prom: Prometheus) -> None:
    rules = prom.alert_rules()
    expected = {
        "VcciApiErrorRateHigh": ("critical", "5.3.1", "1"),
        "VcciApiLatencyP99High": ("warning", "5.3.1", "2"),
        "VcciDatabaseCpuHigh": ("warning", "5.3.1", "80"),
        "VcciDatabaseDiskCritical": ("critical", "5.3.1", "85"),
        "VcciPodRestartRateHigh": ("warning", "5.3.1", "5"),
        "VcciWorkerQueueDepthHigh": ("warning", "5.3.1", "10000"),
        "VcciDatabaseConnectionsHigh": ("warning", "2.2.3", "80"),
        "VcciDatabaseReplicationLagHigh": ("warning", "2.2.3", "5"),
        "VcciDatabaseDiskHigh": ("warning", "2.2.3", "80"),
    }
    for name, (severity, item, threshold) in expected.items():
        rule = rules[name]
        assert rule["labels"]["severity"] == severity
        assert rule["annotations"]["checklist"] == item
        assert rule["annotations"]["threshold"] == threshold
        assert rule["query"].endswith(f"> {threshold}")
        assert rule["health"] == "ok"
    assert rules["Watchdog"]["state"] == "firing"


def test_prometheus_alerts_show_the_watchdog_firing(prom: Prometheus) -> None:
    firing = {a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"}
    assert firing == {"Watchdog"}


# --- Alertmanager -------------------------------------------------------------------------


def test_alertmanager_receivers_and_escalation_route(am: Alertmanager) -> None:
    assert set(am.receivers()) == set(RECEIVERS)
    status = am.status()
    assert status["versionInfo"]["version"].startswith("0.")
    route = status["config"]["parsed"]["route"]
    by_receiver = {r["receiver"]: r for r in route["routes"]}
    assert by_receiver["pagerduty-critical"]["continue"] is True
    assert by_receiver["pagerduty-critical"]["matchers"] == ['severity="critical"']
    assert 'severity=~"critical|warning"' in by_receiver["slack-warnings"]["matchers"][0]
    assert by_receiver["deadmansswitch"]["matchers"] == ['alertname="Watchdog"']
    # Alertmanager masks secrets itself; they never reach the client in clear.
    original = status["config"]["original"]
    assert "sandbox-pagerduty-routing-key" not in original
    assert "sandbox-opsgenie-api-key" not in original
    assert "<secret>" in original


def test_alertmanager_has_the_watchdog_active(am: Alertmanager) -> None:
    (watchdog,) = am.alerts(matchers=['alertname="Watchdog"'])
    assert watchdog["status"]["state"] == "active"
    assert [r["name"] for r in watchdog["receivers"]] == ["deadmansswitch"]
    assert {a["labels"]["alertname"] for a in am.alerts()} == {"Watchdog"}
    assert am.alerts(active=False, silenced=True) == []


def test_monitoring_component_tables(monitoring_stack: MonitoringComponent) -> None:
    tables = monitoring_stack.env_tables()
    assert tables["prometheus"]["url"].startswith("http://127.0.0.1:")
    assert tables["alertmanager"]["url"].startswith("http://127.0.0.1:")
    assert "Watchdog" in monitoring_stack.expect()["monitoring"]["alert_rules"]


# --- errors -------------------------------------------------------------------------------


def test_bad_query_names_url_and_status_not_token(prom: Prometheus) -> None:
    with pytest.raises(MonitoringError) as error:
        prom.query("sum(")
    message = str(error.value)
    assert "/api/v1/query answered HTTP 400" in message
    assert "parse error" in message
    assert TOKEN not in message
    assert error.value.status == 400


def test_non_json_and_404_answers_are_clear_errors(prom: Prometheus) -> None:
    with pytest.raises(MonitoringError, match=r"/metrics answered HTTP 200: not JSON"):
        prom.get("/metrics")
    with pytest.raises(MonitoringError, match=r"/api/v1/nothing-here answered HTTP 404"):
        prom.api("nothing-here")


def test_no_token_in_repr_or_describe(prom: Prometheus) -> None:
    for text in (repr(prom), json.dumps(prom.describe())):
        assert TOKEN not in text
    assert prom.describe()["auth"] == "bearer"


# --- fail fast ----------------------------------------------------------------------------


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_stopped_prometheus_fails_fast_once_for_the_run(tmp_path: Path) -> None:
    port = _dead_port()
    context = make_context(
        tmp_path,
        prometheus=table(
            f"http://127.0.0.1:{port}", connect_timeout=0.5, read_timeout=0.5, token=TOKEN
        ),
    )
    with pytest.raises(TargetUnreachable, match="prometheus unreachable: ConnectionError") as down:
        _build(context, Prometheus, "prometheus")
    assert "Connection refused" in str(down.value)  # refused at once, not a timeout
    assert TOKEN not in str(down.value)
    with BlackHole(port) as server:  # the address takes connections again
        with pytest.raises(TargetUnreachable) as again:
            _build(context, Prometheus, "prometheus")
        assert server.connections() == 0  # down for the run: no second probe was sent
    assert str(again.value) == str(down.value)


def test_never_answering_alertmanager_times_out_then_fails_fast(tmp_path: Path) -> None:
    with BlackHole() as server:
        url = f"http://127.0.0.1:{server.port}"
        context = make_context(
            tmp_path, alertmanager=table(url, connect_timeout=0.5, read_timeout=0.5)
        )
        target = Alertmanager(
            context.settings.require("alertmanager"), gate=context.gate, name="alertmanager"
        )
        with pytest.raises(
            TargetUnreachable, match="alertmanager unreachable: ReadTimeout"
        ) as first:
            target.receivers()
        # urllib3's own words: the configured read timeout ended the wait.
        assert "(read timeout=0.5)" in str(first.value)
        assert server.connections() == 1
        with pytest.raises(TargetUnreachable) as second:
            target.alerts()
        assert server.connections() == 1  # no new connection attempt
    assert str(second.value) == str(first.value)


def test_absent_table_skips(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"\[grafana\] is not configured"):
        _build(make_context(tmp_path), Grafana, "grafana")


# --- Grafana (stub server) ----------------------------------------------------------------


class GrafanaStub(BaseHTTPRequestHandler):
    """Answers the few Grafana endpoints the client reads; records every request."""

    seen: ClassVar[list[tuple[str, str, str | None]]] = []
    routes: ClassVar[dict[str, Any]] = {
        "/api/health": {"commit": "abc123", "database": "ok", "version": "10.4.2"},
        "/api/datasources": [
            {
                "uid": "prometheus",
                "name": "Prometheus",
                "type": "prometheus",
                "url": "http://prometheus:9090",
                "isDefault": True,
            }
        ],
        "/api/dashboards/uid/vcci-production": {
            "dashboard": {
                "uid": "vcci-production",
                "title": "GL-VCCI Production",
                "panels": [{"title": "API request rate"}],
            },
            "meta": {"provisioned": True, "folderTitle": "VCCI"},
        },
        "/api/frontend/settings": {"unifiedAlertingEnabled": True, "alertingEnabled": False},
    }

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append(("GET", self.path, auth))
        public = self.path == "/api/health"
        if not public and auth != f"Bearer {TOKEN}":
            self._send(401, {"message": "Unauthorized"})
        elif self.path in self.routes:
            self._send(200, self.routes[self.path])
        elif self.path == "/login":
            self._send(200, "<html>login</html>", "text/html")
        else:
            self._send(404, {"message": "Not found"})

    def do_POST(self) -> None:
        self.seen.append(("POST", self.path, None))
        self._send(405, {"message": "read-only test"})

    def _send(self, status: int, body: Any, kind: str = "application/json") -> None:
        data = (json.dumps(body) if kind == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


@pytest.fixture(scope="module")
def grafana_stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), GrafanaStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_grafana_client_reads_health_datasources_dashboard_alerting(
    grafana_stub: str,
    tmp_path: Path,
) -> None:
    GrafanaStub.seen.clear()
    context = make_context(tmp_path, grafana=table(grafana_stub, token=TOKEN))
    grafana: Grafana = _build(context, Grafana, "grafana")
    assert grafana.health()["database"] == "ok"
    assert [d["type"] for d in grafana.datasources()] == ["prometheus"]
    assert grafana.dashboard("vcci-production")["dashboard"]["title"] == "GL-VCCI Production"
    assert grafana.alerting_enabled() is True
    assert {method for method, _, _ in GrafanaStub.seen} == {"GET"}
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in GrafanaStub.seen)


def test_grafana_errors_name_url_and_status_never_the_token(
    grafana_stub: str, tmp_path: Path
) -> None:
    wrong = Grafana(table(grafana_stub, api_key="wrong-key-0123456789"), name="grafana")
    with pytest.raises(MonitoringError) as denied:
        wrong.datasources()
    assert str(denied.value).startswith(
        f"grafana: {grafana_stub}/api/datasources answered HTTP 401"
    )
    assert "wrong-key-0123456789" not in str(denied.value)
    right = Grafana(table(grafana_stub, token=TOKEN), name="grafana")
    with pytest.raises(MonitoringError, match="HTTP 404"):
        right.dashboard("no-such-dashboard")
    with pytest.raises(MonitoringError, match="not JSON"):
        right.get("/login")
    assert TOKEN not in repr(right)


def test_anonymous_status_sends_no_credentials(grafana_stub: str, tmp_path: Path) -> None:
    GrafanaStub.seen.clear()
    context = make_context(tmp_path, grafana=table(grafana_stub, token=TOKEN))
    grafana: Grafana = _build(context, Grafana, "grafana")
    assert grafana.anonymous_status("/api/search") == 401
    assert grafana.anonymous_status("/api/health") == 200  # public: answered without a token
    assert GrafanaStub.seen[-2:] == [("GET", "/api/search", None), ("GET", "/api/health", None)]


def test_anonymous_status_fails_fast_on_a_server_that_never_answers(tmp_path: Path) -> None:
    with BlackHole() as server:
        context = make_context(
            tmp_path, grafana=table(f"http://127.0.0.1:{server.port}", read_timeout=0.5)
        )
        grafana = Grafana(context.settings.require("grafana"), gate=context.gate, name="grafana")
        with pytest.raises(TargetUnreachable, match="grafana unreachable: ReadTimeout") as first:
            grafana.anonymous_status("/api/search")
        with pytest.raises(TargetUnreachable) as second:
            grafana.anonymous_status("/api/search")
        assert server.connections() == 1  # marked down: the second call sent nothing
    assert str(second.value) == str(first.value)
