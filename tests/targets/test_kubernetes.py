"""The cluster target against the real Kubernetes API emulator, through the real client.

What a user would notice: a run lists each kind once (whatever the number of tests or
workers), never sees a Secret's value, never changes the cluster, and a cluster that is down
or hung costs one connect timeout, not one per test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support_net import BlackHole

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.kube import STAGING_MANIFESTS, KubeComponent
from pytest_vcci.settings import SettingsError, build_settings, interpolate
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable
from pytest_vcci.targets.kubernetes import ALL, KINDS, Cluster, KubeApiError, resolve_kind

NS = "vcci-staging"


def requests_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every request the client hands to urllib3, as "GET /path"."""
    import urllib3

    sent: list[str] = []
    urlopen = urllib3.PoolManager.urlopen

    def counted(self: urllib3.PoolManager, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{method} {urllib3.util.parse_url(url).path}")
        return urlopen(self, method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.PoolManager, "urlopen", counted)
    return sent


def start(workdir: Path, **options: Any) -> KubeComponent:
    component = KubeComponent(workdir=workdir, **options)
    component.start()
    return component


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeComponent]:
    """The staging cluster; tests that count requests reset the counters first."""
    component = KubeComponent(workdir=tmp_path_factory.mktemp("kube"))
    try:
        component.start()
        yield component
    finally:
        component.stop()


@pytest.fixture
def scratch_kube(tmp_path: Path) -> Iterator[list[KubeComponent]]:
    """For tests that start their own emulator (latency, stopped, scale): all stopped after."""
    started: list[KubeComponent] = []
    yield started
    for component in started:
        component.stop()


def context(run_dir: Path, component: KubeComponent | None = None, **kubernetes: Any) -> RunContext:
    """A RunContext as the plugin builds it: env tables with ${VAR} secrets, interpolated."""
    raw: dict[str, Any] = {"environment": {"name": "test"}}
    variables: dict[str, str] = {}
    if component is not None:
        raw.update(component.env_tables())
        variables.update(component.env_vars())
    raw["kubernetes"] = {**raw.get("kubernetes", {}), **kubernetes}
    settings = build_settings(interpolate(raw, "test.toml", "", variables), "test.toml")
    return RunContext(
        settings=settings, redactor=Redactor(settings.secrets()), run_id="t", run_dir=run_dir
    )


def cluster_for(
    run_dir: Path, component: KubeComponent | None = None, **kubernetes: Any
) -> Cluster:
    ctx = context(run_dir, component, **kubernetes)
    return Cluster.from_context(ctx.settings.require("kubernetes"), ctx)


@pytest.fixture
def cluster(kube: KubeComponent, tmp_path: Path) -> Iterator[Cluster]:
    kube.reset_requests()
    target = cluster_for(tmp_path, kube)
    yield target
    target.close()


# --- reading the snapshot ---------------------------------------------------------------


def test_lists_the_staging_cluster(cluster: Cluster) -> None:
    deployments = {d["metadata"]["name"]: d for d in cluster.list("deployments")}
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {
        "backend": 3,
        "frontend": 2,
        "worker": 3,
    }
    assert deployments["backend"]["kind"] == "Deployment"  # filled in, as kubectl does
    assert deployments["backend"]["apiVersion"] == "apps/v1"

    nodes = cluster.list("nodes")
    assert len(nodes) == 6
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}

    assert [h["spec"]["maxReplicas"] for h in cluster.list("hpa")] == [20, 50]
    assert len(cluster.list("pods", ALL)) > len(cluster.list("pods")) == 8
    assert len(cluster.list("pods", "monitoring")) == 2
    assert cluster.list("pods", "nowhere") == []


def test_get_reads_one_object_from_the_snapshot(cluster: Cluster, kube: KubeComponent) -> None:
    pdb = cluster.get("pdb", "backend")
    assert pdb is not None
    assert pdb["spec"]["minAvailable"] == 2
    assert cluster.get("pdb", "worker")["spec"]["maxUnavailable"] == 1  # type: ignore[index]
    assert cluster.get("deployments", "nope") is None
    assert cluster.get("namespace", NS)["status"]["phase"] == "Active"  # type: ignore[index]
    lists = [p for p in kube.requests()["by_path"] if "poddisruptionbudgets" in p]
    assert lists == [f"GET /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"]


def test_kind_names_and_aliases() -> None:
    assert resolve_kind("hpa") is resolve_kind("horizontalpodautoscalers")
    assert resolve_kind("deploy").kind == "Deployment"
    assert resolve_kind("EndpointSlice").api_version == "discovery.k8s.io/v1"
    with pytest.raises(ValueError, match=r"unknown Kubernetes kind 'widgets' \(known: .*pods"):
        resolve_kind("widgets")


def test_kinds_match_the_api_discovery(kube: KubeComponent) -> None:
    """The kinds table says what the API server's discovery documents say."""
    for kind in {k.name: k for k in KINDS.values()}.values():
        path = f"/apis/{kind.api_version}" if kind.group else f"/api/{kind.version}"
        served = {r["name"]: r for r in kube.get(path)["resources"]}
        assert served[kind.name]["kind"] == kind.kind
        assert served[kind.name]["namespaced"] is kind.namespaced, kind.name


def test_every_kind_lists_from_the_emulator(cluster: Cluster) -> None:
    for name in sorted({k.name for k in KINDS.values()}):
        assert cluster.list(name, ALL), name


def test_version_is_fetched_once(cluster: Cluster, kube: KubeComponent) -> None:
    assert cluster.version()["gitVersion"].startswith("v1.29.")
    cluster.version()
    assert kube.requests()["by_path"]["GET /version"] == 1  # the probe's answer is kept


def test_pod_logs(cluster: Cluster, kube: KubeComponent) -> None:
    worker = cluster.list("pods", NS)[-1]["metadata"]["name"]
    lines = cluster.pod_logs(worker, tail=5)
    assert len(lines) == 5
    assert all(json.loads(line)["request_id"] for line in lines)
    assert cluster.pod_logs(worker, container="worker", tail=5) == lines
    path = f"GET /api/v1/namespaces/{NS}/pods/{worker}/log"
    assert kube.requests()["by_path"][path] == 2  # logs are live, never cached
    with pytest.raises(KubeApiError, match=r"400 BadRequest: container nope is not valid"):
        cluster.pod_logs(worker, container="nope")


# --- listed once per run ----------------------------------------------------------------


def test_each_kind_is_listed_once_per_run(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    first, second = cluster_for(tmp_path, kube), cluster_for(tmp_path, kube)  # two "workers"
    for target in (first, second, first):
        assert len(target.list("pods")) == 8
        assert len(target.list("nodes")) == 6
        assert target.get("deployments", "backend") is not None
        assert len(target.list("pods", ALL)) > 8
    assert second.stats[("nodes", "")].source == "file"  # read what "first" listed
    assert second.stats[("pods", NS)].source == "all-namespaces"
    counts = kube.requests()["by_path"]
    assert counts == {
        "GET /version": 1,
        f"GET /api/v1/namespaces/{NS}/pods": 1,
        "GET /api/v1/nodes": 1,
        f"GET /apis/apps/v1/namespaces/{NS}/deployments": 1,
        "GET /api/v1/pods": 1,
    }


def test_a_namespace_is_filtered_from_an_existing_all_namespaces_list(
    cluster: Cluster, kube: KubeComponent
) -> None:
    everything = cluster.list("configmaps", ALL)
    monitoring = cluster.list("configmaps", "monitoring")
    assert [c["metadata"]["name"] for c in monitoring] == ["prometheus-config"]
    assert len(everything) > len(monitoring)
    assert not [p for p in kube.requests()["by_path"] if "/namespaces/monitoring/" in p]


WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from pytest_vcci.settings import KubernetesTable
    from pytest_vcci.targets.base import TargetGate
    from pytest_vcci.targets.kubernetes import Cluster

    run_dir, name = Path(sys.argv[1]), sys.argv[2]
    table = KubernetesTable(server=os.environ["KUBE_SERVER"], token=os.environ["KUBE_TOKEN"],
                            namespace="vcci-staging")
    cluster = Cluster(table, TargetGate(run_dir / "targets"), run_dir)
    cluster.api_client  # import the client before the race starts
    (run_dir / f"ready-{name}").touch()
    while not (run_dir / "go").exists():
        time.sleep(0.005)
    pods = cluster.list("pods")
    print(json.dumps({"pods": len(pods), "source": cluster.stats[("pods", "vcci-staging")].source}))
""")


def test_two_worker_processes_list_once(scratch_kube: list[KubeComponent], tmp_path: Path) -> None:
    # Slow answers keep the first list in flight while the other worker asks for it.
    slow = start(tmp_path / "kube", latency_ms=300)
    scratch_kube.append(slow)
    slow.reset_requests()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "KUBE_SERVER": slow.server, "KUBE_TOKEN": slow.token}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(run_dir), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while not all((run_dir / f"ready-{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.02)
        (run_dir / "go").touch()
        results = [json.loads(w.communicate(timeout=30)[0]) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert [r["pods"] for r in results] == [8, 8]
    assert sorted(r["source"] for r in results) == ["api", "file"]
    counts = slow.requests()["by_path"]
    assert counts[f"GET /api/v1/namespaces/{NS}/pods"] == 1
    assert counts["GET /version"] == 1  # one probe for the run, whichever worker came first


# --- pagination -------------------------------------------------------------------------


def test_pages_follow_the_page_size(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    target = cluster_for(tmp_path, kube, page_size=2)
    assert len(target.list("nodes")) == 6
    assert target.stats[("nodes", "")].pages == 3
    assert kube.requests()["by_path"]["GET /api/v1/nodes"] == 3


def test_expired_continue_token_restarts_the_list(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    target = cluster_for(tmp_path, kube, page_size=2)
    target.ensure()
    kube.get("/_emulator/expire-continue?count=1", authenticated=False)  # like a compaction
    names = [n["metadata"]["name"] for n in target.list("nodes")]
    assert len(names) == len(set(names)) == 6  # complete, no page twice
    assert target.stats[("nodes", "")].restarts == 1
    assert kube.requests()["by_path"]["GET /api/v1/nodes"] == 2 + 3  # 2 pages, 410, restart


# --- secrets ----------------------------------------------------------------------------


def manifest_secret_values() -> list[str]:
    docs = yaml.safe_load_all((STAGING_MANIFESTS / "05-secrets.yaml").read_text())
    encoded = [v for d in docs for v in d["data"].values()]
    return encoded + [base64.b64decode(v).decode() for v in encoded]


def test_secret_values_are_never_returned(cluster: Cluster) -> None:
    secrets = {s["metadata"]["name"]: s for s in cluster.list("secrets")}
    assert set(secrets["vcci-api-keys"]["data"]) == {
        "ecoinvent-api-key",
        "desnz-api-key",
        "epa-api-key",
    }  # keys stay: checks need them
    for secret in secrets.values():
        assert set(secret["data"].values()) == {"[REDACTED]"}
    annotations = secrets["vcci-database"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/last-applied-configuration"] == "[REDACTED]"
    assert cluster.get("secrets", "vcci-jwt")["data"]["jwt-private-key"] == "[REDACTED]"  # type: ignore[index]

    on_disk = "".join(p.read_text() for p in cluster.snapshot_dir.glob("*.json"))
    returned = json.dumps(cluster.list("secrets", ALL))
    for value in manifest_secret_values():
        assert value not in on_disk
        assert value not in returned


# --- read-only guard ----------------------------------------------------------------------


def test_writes_are_refused_before_they_leave(cluster: Cluster, kube: KubeComponent) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    apps = client.AppsV1Api(cluster.api_client)
    core = client.CoreV1Api(cluster.api_client)
    pod = cluster.list("pods")[0]["metadata"]["name"]
    meta = client.V1ObjectMeta(name="x")
    attempts = [
        lambda: apps.delete_namespaced_deployment("backend", NS),
        lambda: apps.patch_namespaced_deployment_scale("backend", NS, {"spec": {"replicas": 0}}),
        lambda: core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta)),
        lambda: core.replace_namespaced_secret("vcci-jwt", NS, client.V1Secret(metadata=meta)),
        lambda: cluster.api_client.call_api("DELETE", f"{kube.server}/api/v1/nodes/x"),
        lambda: cluster.api_client.rest_client.request("POST", f"{kube.server}/api/v1/pods"),
        lambda: stream(core.connect_get_namespaced_pod_exec, pod, NS, command=["sh"], stdout=True),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyViolation, match="read-only guard: kubernetes refused"):
            attempt()
    with pytest.raises(
        ReadOnlyViolation,
        match=r"refused DELETE /apis/apps/v1/namespaces/"
        r"vcci-staging/deployments/backend \(",
    ):
        apps.delete_namespaced_deployment("backend", NS)

    assert {r["method"] for r in kube.logged_requests()} == {"GET"}
    assert kube.requests()["by_verb"].keys() == {"GET"}
    assert not [p for p in kube.requests()["by_path"] if "/exec" in p]
    assert kube.get(f"/apis/apps/v1/namespaces/{NS}/deployments/backend")["spec"]["replicas"] == 3


# --- fail fast ----------------------------------------------------------------------------


def assert_later_uses_fail_fast(
    first: Cluster, again: Cluster, message: str, server: BlackHole
) -> None:
    """Every later use, through either client, fails with the first use's message and
    opens no connection to ``server`` (listening on the cluster's address)."""
    before = server.connections()
    for attempt in (lambda: first.list("pods"), lambda: again.list("nodes"), again.version):
        with pytest.raises(TargetUnreachable) as later:
            attempt()
        assert str(later.value) == message
    assert server.connections() == before  # no new connection attempt


def test_stopped_cluster_fails_fast_with_one_cause(
    scratch_kube: list[KubeComponent], tmp_path: Path
) -> None:
    stopped = start(tmp_path / "kube")
    stopped.stop()  # a cluster that was there and is not anymore: connection refused
    run_dir = tmp_path / "run"
    first, again = cluster_for(run_dir, stopped), cluster_for(run_dir, stopped)
    with pytest.raises(TargetUnreachable, match="Connection refused") as info:
        first.ensure()
    message = str(info.value)
    assert message.startswith("kubernetes unreachable: NewConnectionError")
    with BlackHole(stopped.port) as server:  # the address takes connections again
        assert_later_uses_fail_fast(first, again, message, server)
        assert server.connections() == 0


def test_hung_cluster_costs_one_connect_timeout(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with BlackHole() as hung:  # accepts connections and never answers
        options = {
            "server": f"http://127.0.0.1:{hung.port}",
            "token": "t0ken-hung",
            "connect_timeout": 0.5,
            "read_timeout": 30,
        }
        first, again = cluster_for(run_dir, **options), cluster_for(run_dir, **options)
        # urllib3's own words: the probe read waited the connect timeout, not read_timeout=30.
        with pytest.raises(
            TargetUnreachable, match=r"Read timed out\. \(read timeout=0\.5\)"
        ) as info:
            first.ensure()
        message = str(info.value)
        assert "ReadTimeoutError" in message
        assert hung.connections() == 1  # one probe for the run
        assert_later_uses_fail_fast(first, again, message, hung)


def test_wrong_token_marks_the_cluster_down(kube: KubeComponent, tmp_path: Path) -> None:
    target = cluster_for(tmp_path, kube, token="not-the-token")
    with pytest.raises(TargetUnreachable, match=r"GET /version: 401 Unauthorized"):
        target.list("pods")


def test_slow_list_is_cut_at_the_read_timeout(
    scratch_kube: list[KubeComponent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = start(tmp_path / "kube", latency_ms=700)
    scratch_kube.append(slow)
    # The probe may wait a connect timeout (1 s), enough; a list gets the read timeout only.
    target = cluster_for(tmp_path / "run", slow, connect_timeout=1.0, read_timeout=0.3)
    target.ensure()
    # The emulator counts a request only once its delayed answer is written, so what a
    # cut-short client sent is counted on the client side.
    sent = requests_sent(monkeypatch)
    # urllib3's own words: the read timeout (0.3 s), not the 700 ms answer, ended the wait.
    with pytest.raises(TargetUnreachable, match=r"Read timed out\. \(read timeout=0\.3\)"):
        target.list("pods")
    with pytest.raises(TargetUnreachable, match="Read timed out"):
        target.list("nodes")  # marked down: the next kind fails at once
    assert sent == [f"GET /api/v1/namespaces/{NS}/pods"]  # the nodes list was never sent


def test_cluster_going_down_mid_run_is_marked_down(
    scratch_kube: list[KubeComponent], tmp_path: Path
) -> None:
    component = start(tmp_path / "kube")
    scratch_kube.append(component)
    target = cluster_for(tmp_path / "run", component, connect_timeout=0.5)
    pods = target.list("pods")
    component.stop()
    with pytest.raises(TargetUnreachable, match="Connection refused"):
        target.pod_logs(pods[0]["metadata"]["name"])
    with BlackHole(component.port) as server:  # the address takes connections again
        with pytest.raises(TargetUnreachable, match="Connection refused"):
            target.list("nodes")
        assert server.connections() == 0  # marked down: nothing was sent


def test_a_broken_variant_is_a_copied_manifest(
    scratch_kube: list[KubeComponent], tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(STAGING_MANIFESTS, manifests)
    backend = manifests / "10-backend.yaml"
    docs = list(yaml.safe_load_all(backend.read_text()))
    docs[0]["spec"]["replicas"] = 2  # the Deployment: someone scaled it down
    backend.write_text(yaml.safe_dump_all(docs))
    broken = start(tmp_path / "kube", manifests=manifests)
    scratch_kube.append(broken)
    target = cluster_for(tmp_path / "run", broken)
    assert target.get("deployments", "backend")["spec"]["replicas"] == 2  # type: ignore[index]


# --- scale --------------------------------------------------------------------------------


def test_10000_pods_are_listed_in_pages_and_parsed(
    scratch_kube: list[KubeComponent], tmp_path: Path
) -> None:
    """Correctness at scale; the parse time is benchmarks/kube_parse.py's figure."""
    big = start(tmp_path / "kube", extra_pods=10_000)
    scratch_kube.append(big)
    target = cluster_for(tmp_path / "run", big)
    target.ensure()
    big.reset_requests()
    pods = target.list("pods", "vcci-scale")
    stats = target.stats[("pods", "vcci-scale")]
    assert len(pods) == 10_000
    assert len({p["metadata"]["name"] for p in pods}) == 10_000
    assert all(p["kind"] == "Pod" and p["metadata"]["namespace"] == "vcci-scale" for p in pods)
    assert stats.pages == 20  # page_size 500
    assert big.requests()["by_path"] == {"GET /api/v1/namespaces/vcci-scale/pods": 20}
    # Only a runaway parse (quadratic, say) fails this; the figure itself is the benchmark's.
    assert stats.parse_cpu_seconds < 5.0


# --- connecting -------------------------------------------------------------------------


def write_kubeconfig(path: Path, kube: KubeComponent) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "other",
                "clusters": [
                    {"name": "staging", "cluster": {"server": kube.server}},
                    {"name": "other", "cluster": {"server": "http://127.0.0.1:1"}},
                ],
                "users": [{"name": "qa", "user": {"token": kube.token}}],
                "contexts": [
                    {"name": "vcci-staging", "context": {"cluster": "staging", "user": "qa"}},
                    {"name": "other", "context": {"cluster": "other", "user": "qa"}},
                ],
            }
        )
    )


def test_kubeconfig_and_context(
    kube: KubeComponent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(tmp_path / "kubeconfig.yaml", kube)
    before = (tmp_path / "kubeconfig.yaml").read_text()
    monkeypatch.chdir(tmp_path)  # a relative path resolves against the environment file's dir
    target = cluster_for(
        tmp_path / "run", kubeconfig="kubeconfig.yaml", context="vcci-staging", namespace=NS
    )
    assert [d["metadata"]["name"] for d in target.list("deployments")] == [
        "backend",
        "frontend",
        "worker",
    ]
    assert (tmp_path / "kubeconfig.yaml").read_text() == before  # never written back


def test_bad_kubeconfig_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig.yaml").write_text("apiVersion: v1\nkind: Config\n")
    target = cluster_for(tmp_path, kubeconfig=str(tmp_path / "kubeconfig.yaml"), context="nope")
    with pytest.raises(SettingsError, match=r"test.toml: \[kubernetes\].kubeconfig: cannot load"):
        target.list("pods")


def test_client_is_imported_lazily() -> None:
    code = (
        "import sys, pytest_vcci.targets.kubernetes as k; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# --- the fixture --------------------------------------------------------------------------

CONFTEST = """
    import pytest
    from pytest_vcci.context import RunContext
    from pytest_vcci.evidence.redaction import Redactor
    from pytest_vcci.settings import build_settings
    from pytest_vcci.targets.kubernetes import cluster  # noqa: F401  (the fixture under test)

    @pytest.fixture(scope="session")
    def vcci_context(tmp_path_factory):
        settings = build_settings({TABLES}, "env.toml")
        return RunContext(settings=settings, redactor=Redactor(), run_id="t",
                          run_dir=tmp_path_factory.mktemp("run"))
"""

TESTS = """
    def test_backend(cluster):
        assert cluster.get("deployments", "backend")["spec"]["replicas"] == 3

    def test_nodes(cluster):
        assert len(cluster.list("nodes")) == 6
"""


def test_fixture_gives_the_cluster(pytester: pytest.Pytester, kube: KubeComponent) -> None:
    tables = {
        "environment": {"name": "t"},
        "kubernetes": {"server": kube.server, "token": kube.token, "namespace": NS},
    }
    pytester.makeconftest(textwrap.dedent(CONFTEST).replace("{TABLES}", repr(tables)))
    pytester.makepyfile(textwrap.dedent(TESTS))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_fixture_skips_without_the_table(pytester: pytest.Pytester) -> None:
    tables = {"environment": {"name": "t"}}
    pytester.makeconftest(textwrap.dedent(CONFTEST).replace("{TABLES}", repr(tables)))
    pytester.makepyfile(textwrap.dedent(TESTS))
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*[[]kubernetes[]] is not configured in env.toml*"])


def test_fixture_errors_every_test_with_one_cause(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib3.util.connection

    attempts: list[tuple[str, int]] = []
    connect = urllib3.util.connection.create_connection

    def counted(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return connect(address, *args, **kwargs)

    # runpytest runs the inner session in this process: its client connects through this.
    monkeypatch.setattr(urllib3.util.connection, "create_connection", counted)
    tables = {
        "environment": {"name": "t"},
        "kubernetes": {"server": "http://127.0.0.1:1", "connect_timeout": 0.5},
    }
    pytester.makeconftest(textwrap.dedent(CONFTEST).replace("{TABLES}", repr(tables)))
    pytester.makepyfile(textwrap.dedent(TESTS))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*TargetUnreachable: kubernetes unreachable: NewConnection*"])
    # One connection attempt for the whole run: no retry, no second probe.
    assert attempts == [("127.0.0.1", 1)]
