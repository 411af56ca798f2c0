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
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from support_net import BlackHole

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.kube import STAGING_MANIFESTS, KubeComponent
from pytest_vcci.settings import SettingsError, build_settings, interpolate
from pytest_vcci.targets.base import MissingPermission, ReadOnlyViolation, TargetUnreachable
from pytest_vcci.targets.kubernetes import (
    ALL,
    KINDS,
    Cluster,
    KubeApiError,
    check_configuration,
    in_cluster_missing,
    resolve_kind,
)

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
    assert lists == ["GET /apis/policy/v1/poddisruptionbudgets"]  # one list, all namespaces


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


def test_version_is_fetched_once(cluster: Cluster, kube: KubeComponent, tmp_path: Path) -> None:
    assert cluster.version()["gitVersion"].startswith("v1.29.")
    cluster.version()
    cluster_for(tmp_path, kube).version()  # another worker of the same run: reads the file
    assert kube.requests()["by_path"]["GET /version"] == 1
    assert kube.requests()["by_path"]["GET /api"] == 1  # the probe: needs a credential


def test_pod_logs(cluster: Cluster, kube: KubeComponent) -> None:
    worker = cluster.list("pods", NS)[-1]["metadata"]["name"]
    lines = cluster.pod_logs(worker, tail=5)
    assert len(lines) == 5
    assert all(json.loads(line)["request_id"] for line in lines)
    assert cluster.pod_logs(worker, container="worker", tail=5) == lines  # its only container
    assert cluster.pod_logs(worker, tail=2) == lines[-2:]
    assert len(cluster.pod_logs(worker, tail=10_000)) > 5
    path = f"GET /api/v1/namespaces/{NS}/pods/{worker}/log"
    assert kube.requests()["by_path"][path] == 1  # read once per run, then kept
    logged = [r["query"] for r in kube.logged_requests() if r["path"] == path[4:]]
    assert logged[-1] == "tailLines=500&container=worker"  # [kubernetes].log_lines
    for _ in range(2):  # an error answer is kept too: asked again, it would be the same
        with pytest.raises(KubeApiError, match=r"400 BadRequest: container nope is not valid"):
            cluster.pod_logs(worker, container="nope")
    assert kube.requests()["by_path"][path] == 2


# --- listed once per run ----------------------------------------------------------------


def test_each_kind_is_listed_once_per_run(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    first, second = cluster_for(tmp_path, kube), cluster_for(tmp_path, kube)  # two "workers"
    for target in (first, second, first):
        assert len(target.list("pods")) == 8
        assert len(target.list("nodes")) == 6
        assert target.get("deployments", "backend") is not None
        assert len(target.list("pods", ALL)) > 8
    assert second.stats["nodes"].source == "file"  # read what "first" listed
    assert first.stats["pods"].namespace == ALL  # one list, every namespace filtered from it
    counts = kube.requests()["by_path"]
    assert counts == {
        "GET /api": 1,
        "GET /api/v1/pods": 1,
        "GET /api/v1/nodes": 1,
        "GET /apis/apps/v1/deployments": 1,
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
    print(json.dumps({"pods": len(pods), "source": cluster.stats["pods"].source}))
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
    assert counts["GET /api/v1/pods"] == 1
    assert counts["GET /api"] == 1  # one probe for the run, whichever worker came first


# --- pagination -------------------------------------------------------------------------


def test_pages_follow_the_page_size(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    target = cluster_for(tmp_path, kube, page_size=2)
    assert len(target.list("nodes")) == 6
    assert target.stats["nodes"].pages == 3
    assert kube.requests()["by_path"]["GET /api/v1/nodes"] == 3


def test_expired_continue_token_restarts_the_list(kube: KubeComponent, tmp_path: Path) -> None:
    kube.reset_requests()
    target = cluster_for(tmp_path, kube, page_size=2)
    target.ensure()
    kube.get("/_emulator/expire-continue?count=1", authenticated=False)  # like a compaction
    names = [n["metadata"]["name"] for n in target.list("nodes")]
    assert len(names) == len(set(names)) == 6  # complete, no page twice
    assert target.stats["nodes"].restarts == 1
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
    with pytest.raises(TargetUnreachable) as info:
        target.list("pods")
    assert str(info.value) == (
        "kubernetes unreachable: KubeAccessError: GET /api: 401 Unauthorized (the API server "
        "rejected the credential: renew [kubernetes].token or the kubeconfig user's credentials)"
    )


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
    assert sent == ["GET /api/v1/pods"]  # the nodes list was never sent


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
    stats = target.stats["pods"]
    assert len(pods) == 10_000
    assert len({p["metadata"]["name"] for p in pods}) == 10_000
    assert all(p["kind"] == "Pod" and p["metadata"]["namespace"] == "vcci-scale" for p in pods)
    assert not any("managedFields" in p["metadata"] for p in pods)  # dropped when parsed
    everywhere = len(target.list("pods", ALL))
    assert stats.items == everywhere > 10_000
    assert stats.pages == -(-everywhere // 500)  # page_size 500, all namespaces at once
    assert big.requests()["by_path"] == {"GET /api/v1/pods": stats.pages}
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


# --- credentials: one root cause for the whole target -------------------------------------


def test_no_credential_is_one_root_cause(kube: KubeComponent, tmp_path: Path) -> None:
    """A real API server lets system:anonymous read /version: a probe of /version would pass
    and every LIST would then fail on its own. /api needs a user: one cause, said once."""
    assert kube.get("/version", authenticated=False)["gitVersion"]  # readable anonymously
    kube.reset_requests()
    first, again = cluster_for(tmp_path, kube, token=None), cluster_for(tmp_path, kube, token=None)
    with pytest.raises(TargetUnreachable) as info:
        first.ensure()
    assert str(info.value) == (
        "kubernetes unreachable: KubeAccessError: GET /api: 403 Forbidden: forbidden: User "
        '"system:anonymous" cannot get path "/api" (set [kubernetes].token, a kubeconfig user '
        "with credentials, or in_cluster = true)"
    )
    for attempt in (lambda: again.list("pods"), lambda: again.pod_logs("x"), again.version):
        with pytest.raises(TargetUnreachable) as later:
            attempt()
        assert str(later.value) == str(info.value)
    assert kube.requests()["by_path"] == {"GET /api": 1}


def test_anonymous_on_purpose_reports_what_it_may_not_read(
    kube: KubeComponent, tmp_path: Path
) -> None:
    target = cluster_for(tmp_path, kube, token=None, anonymous=True)
    kube.reset_requests()
    extra = target.prefetch()  # the probe is /version: anonymous is what the file asked for
    report = extra["permissions"]
    assert report["user"] == "system:anonymous"
    assert report["message"].startswith(
        "system:anonymous may not read everything the checks need: grant list on pods, "
    )
    assert (
        "list on namespaces, nodes, ingressclasses, clusterroles, clusterrolebindings "
        in (report["message"])
    )
    with pytest.raises(MissingPermission, match=r"^kubernetes: may not list deployments \(in"):
        target.list("deployments")
    assert target.version()["gitVersion"].startswith("v1.29.")
    counts = kube.requests()["by_path"]
    assert counts["GET /version"] == 1
    assert "GET /api" not in counts
    # One LIST per kind at its widest scope, and the namespace alone after a 403: no more.
    assert counts["GET /api/v1/pods"] == counts[f"GET /api/v1/namespaces/{NS}/pods"] == 1
    assert all(n == 1 for n in counts.values()), counts


@pytest.fixture(scope="module")
def ca_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from pytest_vcci.sandbox.pki import LocalCA

    base = tmp_path_factory.mktemp("pki")
    return LocalCA.create(base / "server-ca"), LocalCA.create(base / "other-ca")


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    """A TLS listener presenting ``cert``: the handshake is all a client gets."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection, suppress(OSError):
                connection.settimeout(5)
                context.wrap_socket(connection, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_wrong_ca_is_one_whole_cause(ca_pair: tuple[Any, Any], tmp_path: Path) -> None:
    server_ca, other_ca = ca_pair
    leaf = server_ca.issue("kube", ["localhost", "127.0.0.1"])
    with tls_server(leaf.fullchain, leaf.key) as port:
        target = cluster_for(
            tmp_path,
            server=f"https://127.0.0.1:{port}",
            token="t0ken-wrong-ca",
            ca_bundle=str(other_ca.ca_bundle),
        )
        with pytest.raises(TargetUnreachable) as info:
            target.ensure()
    assert str(info.value) == (
        "kubernetes unreachable: KubeAccessError: GET /api: TLS: certificate verify failed: "
        "unable to get local issuer certificate (is [kubernetes].ca_bundle the CA that signed "
        "the API server's certificate, and [kubernetes].server the name in it?)"
    )


# --- permissions: established once, all missing ones said together ------------------------

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_USER = "system:serviceaccount:vcci-readiness:pytest-vcci"


def role_rules() -> list[dict[str, Any]]:
    """deploy/clusterrole.yaml's rules: the least privilege the README tells users to grant."""
    role = yaml.safe_load((ROOT / "deploy" / "clusterrole.yaml").read_text())
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def without(rules: list[dict[str, Any]], *resources: str) -> list[dict[str, Any]]:
    kept = [{**r, "resources": [x for x in r["resources"] if x not in resources]} for r in rules]
    return [r for r in kept if r["resources"]]


def role_resources() -> list[str]:
    return [res for rule in role_rules() for res in rule["resources"]]


@pytest.fixture(scope="module")
def rbac_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeComponent]:
    """The staging cluster with one token per identity: the role as deployed, the role less
    each of its resources in turn, and a namespace-bound reader."""
    role = role_rules()
    namespace_only = [
        *without(role, "pods"),
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "namespaces": [NS]},
    ]
    identities = {
        "t0ken-role": {"user": SANDBOX_USER, "rules": role},
        "t0ken-partial": {
            "user": SANDBOX_USER,
            "rules": without(role, "secrets", "networkpolicies", "nodes", "pods/log"),
        },
        "t0ken-namespace": {"user": SANDBOX_USER, "rules": namespace_only},
        **{
            f"t0ken-less-{resource.replace('/', '-')}": {
                "user": SANDBOX_USER,
                "rules": without(role, resource),
            }
            for resource in role_resources()
        },
    }
    component = KubeComponent(
        workdir=tmp_path_factory.mktemp("rbac-kube"),
        identities=identities,
        manifests_repository=False,
    )
    try:
        component.start()
        yield component
    finally:
        component.stop()


def test_the_deployed_role_is_exactly_what_a_run_needs(
    rbac_kube: KubeComponent, tmp_path: Path
) -> None:
    """With deploy/clusterrole.yaml's rules nothing is missing; without any one of them, the
    report names exactly that one: the role grants what a run needs, and nothing more."""
    target = cluster_for(tmp_path / "role", rbac_kube, token="t0ken-role")
    assert target.prefetch() == {}
    assert target.pod_logs(target.list("pods")[0]["metadata"]["name"], tail=1)
    for resource in role_resources():
        reduced = cluster_for(
            tmp_path / resource.replace("/", "-"),
            rbac_kube,
            token=f"t0ken-less-{resource.replace('/', '-')}",
        )
        report = reduced.prefetch()["permissions"]
        verb = "get" if resource == "pods/log" else "list"
        assert report["missing"] in (
            [f"{verb} {resource}"],
            [f"list {resource} (all namespaces)"],
            [f"list {resource} (cluster-scoped)"],
        ), resource
        reduced.close()


def test_missing_permissions_are_established_once_and_said_together(
    rbac_kube: KubeComponent, tmp_path: Path
) -> None:
    rbac_kube.reset_requests()
    target = cluster_for(tmp_path, rbac_kube, token="t0ken-partial")
    report = target.prefetch()["permissions"]
    assert report["message"] == (
        f"{SANDBOX_USER} may not read everything the checks need: grant list on secrets, "
        f"networkpolicies in all namespaces; list on nodes (cluster-scoped); get on pods/log in "
        f"{NS} (deploy/clusterrole.yaml grants exactly what a run needs)"
    )
    # The checks that need a forbidden kind fail at once with one line; the others run.
    another_worker = cluster_for(tmp_path, rbac_kube, token="t0ken-partial")
    with pytest.raises(MissingPermission) as info:
        another_worker.list("secrets")
    assert str(info.value) == (
        "kubernetes: may not list secrets (in any namespace: 403 Forbidden); all the run lacks: "
        '"target permissions missing" in the summary, run.targets'
    )
    with pytest.raises(MissingPermission, match=r"^kubernetes: may not list nodes \(cluster-"):
        another_worker.list("nodes")
    with pytest.raises(MissingPermission, match=r"^kubernetes: may not get pods/log in "):
        another_worker.pod_logs(another_worker.list("pods")[0]["metadata"]["name"])
    assert len(another_worker.list("deployments")) == 3
    counts = rbac_kube.requests()["by_path"]
    assert counts["GET /api/v1/secrets"] == counts[f"GET /api/v1/namespaces/{NS}/secrets"] == 1
    assert all(n == 1 for n in counts.values()), counts  # the worker only read files


def test_a_namespace_role_reads_its_namespace_only(
    rbac_kube: KubeComponent, tmp_path: Path
) -> None:
    target = cluster_for(tmp_path, rbac_kube, token="t0ken-namespace")
    report = target.prefetch()["permissions"]
    assert f"grant list on pods in all namespaces (only {NS} is granted)" in report["message"]
    assert len(target.list("pods")) == 8
    with pytest.raises(MissingPermission) as info:
        target.list("pods", "monitoring")
    assert str(info.value).startswith(
        f"kubernetes: may list pods in {NS} only, not in monitoring (403 Forbidden); "
    )
    with pytest.raises(MissingPermission, match=f"may list pods in {NS} only, not in all"):
        target.list("pods", ALL)


# --- configuration: usage errors when the plugin activates ----------------------------------


def test_server_without_a_credential_is_a_usage_error() -> None:
    def settings(**kubernetes: Any) -> Any:
        raw = {
            "environment": {"name": "t"},
            "kubernetes": {"server": "https://k8s:6443", **kubernetes},
        }
        return build_settings(raw, "env.toml")

    with pytest.raises(SettingsError) as info:
        check_configuration(settings())
    assert str(info.value) == (
        "env.toml: [kubernetes].server: no credential to present: set token (e.g. token = "
        '"${VCCI_KUBE_TOKEN}"), or anonymous = true to connect as system:anonymous on purpose'
    )
    with pytest.raises(SettingsError, match=r"\[kubernetes\].anonymous: true, but a token"):
        check_configuration(settings(token="t0ken", anonymous=True))
    check_configuration(settings(token="t0ken"))
    check_configuration(settings(anonymous=True))
    kubeconfig = {
        "environment": {"name": "t"},
        "kubernetes": {"kubeconfig": "k", "anonymous": True},
    }
    with pytest.raises(SettingsError, match=r"\[kubernetes\].anonymous: applies to server only"):
        check_configuration(build_settings(kubeconfig, "env.toml"))


def test_in_cluster_outside_a_pod_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    raw = {"environment": {"name": "t"}, "kubernetes": {"in_cluster": True}}
    with pytest.raises(SettingsError) as info:
        check_configuration(build_settings(raw, "env.toml"))
    assert str(info.value) == (
        "env.toml: [kubernetes].in_cluster: true, but this process is not in a Kubernetes pod "
        "(KUBERNETES_SERVICE_HOST is not set); outside the cluster use server + token, or "
        "kubeconfig + context"
    )
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    token = tmp_path / "token"
    assert in_cluster_missing(environ, str(token)) == f"no service account token at {token}"
    token.write_text("t0ken")
    assert in_cluster_missing(environ, str(token)) == ""


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'server = "https://k8s:6443"\n',
            "ERROR: env.toml: [[]kubernetes[]].server: no credential to present: *",
        ),
        ("in_cluster = true\n", "ERROR: env.toml: [[]kubernetes[]].in_cluster: true, but *"),
    ],
)
def test_configuration_errors_stop_the_run_before_any_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, table: str, message: str
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    pytester.path.joinpath("env.toml").write_text(
        f'[environment]\nname = "t"\n[kubernetes]\n{table}'
    )
    pytester.makepyfile(
        "import pytest\n@pytest.mark.checklist('1.1.1')\ndef test_one(cluster):\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--vcci-config", "env.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert len([line for line in result.errlines if line.strip()]) == 1
    assert "test_one" not in "\n".join(result.outlines)


# --- a whole run through the plugin: requests, one-line errors, the summary -----------------

READS = """
import pytest

@pytest.mark.checklist("3.2.4")
@pytest.mark.parametrize("n", range({tests}))
def test_reads(cluster, n):
    for kind in ("pods", "deployments", "services", "nodes", "secrets", "configmaps"):
        assert cluster.list(kind) is not None
    assert cluster.list("pods", "*") and cluster.list("configmaps", "monitoring")
    assert cluster.version()["gitVersion"]
    for pod in cluster.list("pods")[:3]:
        cluster.pod_logs(pod["metadata"]["name"], tail=10)
"""


def plugin_run(
    pytester: pytest.Pytester, kubernetes: str, tests: str, *args: str
) -> pytest.RunResult:
    pytester.path.joinpath("env.toml").write_text(
        f'[environment]\nname = "t"\n[kubernetes]\n{kubernetes}'
    )
    pytester.makepyfile(test_reads=tests)
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--vcci-config", "env.toml", "--vcci-report-dir", "out", *args
    )


def test_requests_per_run_do_not_grow_with_tests_or_workers(
    pytester: pytest.Pytester, kube: KubeComponent
) -> None:
    """One LIST per kind, /api and /version once, each log once: for -n 0, 2 and 4, and for 4
    tests or 12 (the emulator counts what it was asked)."""
    table = f'server = "{kube.server}"\ntoken = "{kube.token}"\nnamespace = "{NS}"\n'
    pods = sorted(p["metadata"]["name"] for p in kube.get(f"/api/v1/namespaces/{NS}/pods")["items"])
    expected = {"GET /api": 1, "GET /version": 1}
    for spec in {k.name: k for k in KINDS.values()}.values():
        path, params = spec.list_path(ALL if spec.namespaced else "")
        expected[f"GET {path.format(**params)}"] = 1
    for pod in pods[:3]:  # the checks read the first three; the preflight the first one
        expected[f"GET /api/v1/namespaces/{NS}/pods/{pod}/log"] = 1
    for tests, workers in ((4, "0"), (4, "2"), (4, "4"), (12, "2")):
        kube.reset_requests()
        result = plugin_run(pytester, table, READS.replace("{tests}", str(tests)), "-n", workers)
        result.assert_outcomes(passed=tests)
        assert kube.requests()["by_path"] == expected, (tests, workers)


def test_a_target_error_is_one_line_per_test_and_its_cause_once_in_full(
    pytester: pytest.Pytester, ca_pair: tuple[Any, Any]
) -> None:
    server_ca, other_ca = ca_pair
    leaf = server_ca.issue("kube-run", ["localhost", "127.0.0.1"])
    with tls_server(leaf.fullchain, leaf.key) as port:
        table = (
            f'server = "https://127.0.0.1:{port}"\ntoken = "t0ken-tls-run"\n'
            f'ca_bundle = "{other_ca.ca_bundle}"\n'
        )
        result = plugin_run(pytester, table, READS.replace("{tests}", "3"), "-rE")
    result.assert_outcomes(errors=3)
    cause = (
        "KubeAccessError: GET /api: TLS: certificate verify failed: unable to get local issuer "
        "certificate (is [kubernetes].ca_bundle the CA that signed the API server's "
        "certificate, and [kubernetes].server the name in it?)"
    )
    out = result.outlines
    # The ERRORS section: a header and the one line per test, no fixture traceback.
    for n in range(3):
        header = next(i for i, line in enumerate(out) if f"at setup of test_reads[{n}] " in line)
        assert out[header + 1] == f"kubernetes unreachable: {cause}"
        assert out[header + 2].startswith(("_", "=")), out[header : header + 4]
    text = "\n".join(out)
    for traceback_mark in ("Traceback", "def cluster(", "\nE   ", "\n>   "):
        assert traceback_mark not in text
    # The summary: the whole cause once, no stray status 0.
    assert f"  kubernetes    {cause}" in out
    assert ": 0 " not in text
    evidence = json.loads((pytester.path / "out" / "evidence.json").read_text())
    assert evidence["run"]["targets"]["kubernetes"]["cause"] == cause


GENERIC = """
import pytest
from pytest_vcci.targets.base import TargetUnreachable

@pytest.fixture(scope="session")
def warehouse():
    raise TargetUnreachable("warehouse", "{cause}")

@pytest.mark.checklist("2.1.1")
@pytest.mark.parametrize("n", range(2))
def test_setup(warehouse, n):
    pass

@pytest.mark.checklist("2.1.2")
def test_body():
    raise TargetUnreachable("warehouse", "{cause}")
"""


def test_any_target_error_in_any_fixture_is_one_line(pytester: pytest.Pytester) -> None:
    cause = "Connection refused by warehouse.example:5432 " + "after a long way " * 20
    pytester.path.joinpath("env.toml").write_text('[environment]\nname = "t"\n')
    pytester.makepyfile(GENERIC.replace("{cause}", cause))
    result = pytester.runpytest("-p", "no:cacheprovider", "--vcci-config", "env.toml")
    result.assert_outcomes(errors=2, failed=1)
    whole = f"warehouse unreachable: {cause}"
    assert result.outlines.count(whole) == 3  # in full, once per test
    text = "\n".join(result.outlines)
    assert "Traceback" not in text
    assert "raise TargetUnreachable" not in text
