"""The Kubernetes API emulator, over real HTTP, as the API server would answer.

One emulator (the staging manifests) serves most tests; tests that need other options (latency,
hang, a broken manifest) start their own. Every child process is stopped by its fixture.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_vcci.sandbox import kube_emulator
from pytest_vcci.sandbox.kube import STAGING_MANIFESTS, KubeComponent
from pytest_vcci.sandbox.kube_emulator import (
    ManifestError,
    Store,
    build_store,
    generate_pods,
    load_manifests,
)

NS = "vcci-staging"


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeComponent]:
    component = KubeComponent(workdir=tmp_path_factory.mktemp("kube"))
    try:
        component.start()
        yield component
    finally:
        component.stop()


def call(
    kube: KubeComponent,
    path: str,
    method: str = "GET",
    *,
    token: str | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    """(status, decoded body) of one request; error statuses are returned, not raised."""
    request = urllib.request.Request(kube.server + path, data=body, method=method)
    request.add_header("Authorization", f"Bearer {kube.token if token is None else token}")
    if body is not None:
        request.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers["Content-Type"]
    if kind == "application/json" and raw:
        return status, json.loads(raw)
    return status, raw.decode()


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["metadata"]["name"] for item in items]


# --- discovery and reads ----------------------------------------------------------------


def test_version_and_discovery(kube: KubeComponent) -> None:
    status, version = call(kube, "/version")
    assert status == 200
    assert version["gitVersion"].startswith("v1.29.")

    assert call(kube, "/api")[1]["versions"] == ["v1"]
    groups = {g["name"]: g["preferredVersion"]["version"] for g in call(kube, "/apis")[1]["groups"]}
    assert groups["apps"] == "v1"
    assert groups["autoscaling"] == "v2"
    assert groups["rbac.authorization.k8s.io"] == "v1"

    core = {r["name"]: r for r in call(kube, "/api/v1")[1]["resources"]}
    assert core["pods"]["namespaced"] is True
    assert core["pods"]["verbs"] == ["get", "list"]
    assert core["nodes"]["namespaced"] is False
    assert "pods/log" in core
    apps = call(kube, "/apis/apps/v1")[1]
    assert apps["groupVersion"] == "apps/v1"
    assert {"deployments", "replicasets", "daemonsets", "statefulsets"} <= {
        r["name"] for r in apps["resources"]
    }
    assert call(kube, "/apis/example.com/v1")[0] == 404


def test_get_one_object(kube: KubeComponent) -> None:
    status, deployment = call(kube, f"/apis/apps/v1/namespaces/{NS}/deployments/backend")
    assert status == 200
    assert (deployment["kind"], deployment["apiVersion"]) == ("Deployment", "apps/v1")
    assert deployment["spec"]["replicas"] == 3

    node_name = "ip-10-20-1-11.eu-west-1.compute.internal"
    status, node = call(kube, f"/api/v1/nodes/{node_name}")
    assert status == 200
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "eu-west-1a"
    assert call(kube, f"/api/v1/namespaces/{NS}")[1]["status"]["phase"] == "Active"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/apis/apps/v1/namespaces/{NS}/deployments/nope", 'deployments "nope" not found'),
        (f"/api/v1/namespaces/{NS}/widgets", "the server could not find the requested resource"),
        ("/api/v1/pods/some-pod", "the server could not find the requested resource"),
        ("/nothing/here", "the server could not find the requested resource"),
        ("/", "the server could not find the requested resource"),
    ],
)
def test_unknown_paths_and_objects_are_404_status(
    kube: KubeComponent, path: str, message: str
) -> None:
    status, body = call(kube, path)
    assert status == 404
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == message


def test_list_namespaced_and_cluster_wide(kube: KubeComponent) -> None:
    status, pods = call(kube, f"/api/v1/namespaces/{NS}/pods")
    assert status == 200
    assert (pods["kind"], pods["apiVersion"]) == ("PodList", "v1")
    assert pods["metadata"]["resourceVersion"].isdigit()
    assert len(pods["items"]) == 8  # backend 3 + frontend 2 + worker 3
    assert "kind" not in pods["items"][0]  # like the API server: list items carry no kind

    everywhere = call(kube, "/api/v1/pods")[1]["items"]
    namespaces = {p["metadata"]["namespace"] for p in everywhere}
    assert {NS, "monitoring", "logging", "kube-system", "ingress-nginx"} <= namespaces
    fluent_bit = [p for p in everywhere if p["metadata"]["namespace"] == "logging"]
    assert len(fluent_bit) == 6  # the DaemonSet runs on every node
    assert call(kube, "/api/v1/namespaces/nowhere/pods")[1]["items"] == []


def test_staging_manifests_deserialize_into_the_official_models(kube: KubeComponent) -> None:
    """The kubernetes client's own models accept every object: the manifests are realistic."""
    from kubernetes import client

    configuration = client.Configuration(host=kube.server)
    configuration.api_key = {"BearerToken": kube.token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(configuration) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        assert client.VersionApi(api).get_code().git_version.startswith("v1.29.")
        statuses = [p.status for p in core.list_namespaced_pod(NS).items if p.status]
        assert len(statuses) == 8
        assert {s.phase for s in statuses} == {"Running"}
        containers = [c for s in statuses for c in s.container_statuses or []]
        assert len(containers) == 8
        assert all(c.ready and c.restart_count == 0 for c in containers)
        assert len(core.list_node().items) == 6
        assert [d.spec.replicas for d in apps.list_namespaced_deployment(NS).items] == [3, 2, 3]
        hpas = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(NS)
        assert sorted((h.spec.min_replicas, h.spec.max_replicas) for h in hpas.items) == [
            (3, 20),
            (3, 50),
        ]
        for lister in (
            core.list_service_for_all_namespaces,
            core.list_config_map_for_all_namespaces,
            core.list_secret_for_all_namespaces,
            core.list_event_for_all_namespaces,
            core.list_persistent_volume_claim_for_all_namespaces,
            core.list_namespace,
            apps.list_replica_set_for_all_namespaces,
            apps.list_daemon_set_for_all_namespaces,
            apps.list_stateful_set_for_all_namespaces,
            client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces,
            client.NetworkingV1Api(api).list_ingress_for_all_namespaces,
            client.NetworkingV1Api(api).list_network_policy_for_all_namespaces,
            client.NetworkingV1Api(api).list_ingress_class,
            client.PolicyV1Api(api).list_pod_disruption_budget_for_all_namespaces,
            client.RbacAuthorizationV1Api(api).list_cluster_role_binding,
            client.BatchV1Api(api).list_cron_job_for_all_namespaces,
        ):
            assert lister().items, lister.__name__


# --- pagination -------------------------------------------------------------------------


def test_limit_2_over_6_nodes_takes_3_pages(kube: KubeComponent) -> None:
    seen: list[str] = []
    remaining: list[int | None] = []
    token, pages = "", 0
    while True:
        path = "/api/v1/nodes?limit=2" + (f"&continue={token}" if token else "")
        status, page = call(kube, path)
        assert status == 200
        pages += 1
        seen += names(page["items"])
        remaining.append(page["metadata"].get("remainingItemCount"))
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert pages == 3
    assert remaining == [4, 2, None]
    assert len(set(seen)) == 6
    assert seen == sorted(seen)  # key order, like etcd


@pytest.mark.parametrize("token", ["garbage", "eyJvIjoyLCJxIjoiMDAwMDAwMDAwMDAwMDAwMCJ9.abc"])
def test_unknown_continue_token_is_410_expired(kube: KubeComponent, token: str) -> None:
    status, body = call(kube, f"/api/v1/nodes?limit=2&continue={token}")
    assert status == 410
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Expired", 410)


def test_continue_token_of_another_list_is_410(kube: KubeComponent) -> None:
    token = call(kube, "/api/v1/nodes?limit=2")[1]["metadata"]["continue"]
    assert call(kube, f"/api/v1/namespaces/{NS}/pods?limit=2&continue={token}")[0] == 410


def test_expire_hook_expires_the_next_token_only(kube: KubeComponent) -> None:
    token = call(kube, "/api/v1/nodes?limit=2")[1]["metadata"]["continue"]
    kube.get("/_emulator/expire-continue?count=1", authenticated=False)
    assert call(kube, f"/api/v1/nodes?limit=2&continue={token}")[0] == 410
    assert call(kube, f"/api/v1/nodes?limit=2&continue={token}")[0] == 200


# --- selectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app.kubernetes.io/name=vcci-backend", 3),
        ("app.kubernetes.io/name==vcci-backend", 3),
        ("app.kubernetes.io/name!=vcci-backend", 5),
        ("app.kubernetes.io/component in (api,worker)", 6),
        ("app.kubernetes.io/component notin (api, worker)", 2),
        ("app.kubernetes.io/part-of=gl-vcci,app.kubernetes.io/component=web", 2),
        ("pod-template-hash", 8),
        ("!pod-template-hash", 0),
        ("no-such-label!=x", 8),  # != also matches objects without the label
        ("no-such-label", 0),
    ],
)
def test_label_selectors(kube: KubeComponent, selector: str, expected: int) -> None:
    query = urllib.parse.quote(selector)
    status, pods = call(kube, f"/api/v1/namespaces/{NS}/pods?labelSelector={query}")
    assert status == 200
    assert len(pods["items"]) == expected


def test_bad_label_selector_is_400(kube: KubeComponent) -> None:
    status, body = call(kube, f"/api/v1/namespaces/{NS}/pods?labelSelector=a%20in%20b")
    assert (status, body["reason"]) == (400, "BadRequest")


def test_field_selectors(kube: KubeComponent) -> None:
    node = "ip-10-20-2-12.eu-west-1.compute.internal"

    def count(selector: str, path: str = "/api/v1/pods") -> int:
        status, body = call(kube, f"{path}?fieldSelector={urllib.parse.quote(selector)}")
        assert status == 200, body
        return len(body["items"])

    assert count("status.phase=Running") == count("metadata.name!=x") > 8
    assert count("status.phase!=Running") == 0
    assert count(f"spec.nodeName={node}") == 2  # a worker and fluent-bit on the compute node
    assert count(f"metadata.namespace={NS}") == 8
    assert count("metadata.name==backend", f"/apis/apps/v1/namespaces/{NS}/deployments") == 1
    status, body = call(
        kube, f"/apis/apps/v1/namespaces/{NS}/deployments?fieldSelector=status.phase%3DRunning"
    )
    assert (status, body["message"]) == (400, "field label not supported: status.phase")


# --- logs -------------------------------------------------------------------------------


def test_pod_logs_are_json_lines_with_request_ids(kube: KubeComponent) -> None:
    pods = call(
        kube, f"/api/v1/namespaces/{NS}/pods?labelSelector=app.kubernetes.io/name%3Dvcci-backend"
    )[1]["items"]
    name = pods[0]["metadata"]["name"]
    status, text = call(kube, f"/api/v1/namespaces/{NS}/pods/{name}/log?tailLines=5")
    assert status == 200
    lines = text.splitlines()
    assert len(lines) == 5
    for line in lines:
        entry = json.loads(line)
        assert entry["level"] == "INFO"
        assert entry["request_id"].startswith("req_")
    full = call(kube, f"/api/v1/namespaces/{NS}/pods/{name}/log?container=backend")[1]
    assert full.splitlines()[-5:] == lines


def test_pod_log_errors(kube: KubeComponent) -> None:
    name = names(call(kube, f"/api/v1/namespaces/{NS}/pods")[1]["items"])[0]
    status, body = call(kube, f"/api/v1/namespaces/{NS}/pods/{name}/log?container=sidecar")
    assert (status, body["message"]) == (400, f"container sidecar is not valid for pod {name}")
    assert call(kube, f"/api/v1/namespaces/{NS}/pods/nope/log")[0] == 404
    prometheus = call(kube, "/api/v1/namespaces/monitoring/pods/prometheus-0/log")
    assert prometheus == (200, "")  # no sidecar file: an empty log


# --- read-only, auth, counting, latency ---------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_405_and_change_nothing(kube: KubeComponent, method: str) -> None:
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/backend"
    before = call(kube, path)[1]
    status, body = call(kube, path, method, body=b'{"spec":{"replicas":0}}')
    assert status == 405
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)
    after = call(kube, path)[1]
    assert after == before
    assert after["spec"]["replicas"] == 3


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_a_token_nobody_issued_is_401_with_a_status(kube: KubeComponent, token: str) -> None:
    status, body = call(kube, "/api/v1/nodes", token=token)
    assert (status, body) == (
        401,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        },
    )


def anonymous(kube: KubeComponent, path: str) -> tuple[int, Any]:
    """A request without an Authorization header: system:anonymous on a real server."""
    try:
        with urllib.request.urlopen(kube.server + path, timeout=10) as response:
            raw, kind, status = response.read(), response.headers["Content-Type"], response.status
    except urllib.error.HTTPError as exc:
        raw, kind, status = exc.read(), exc.headers["Content-Type"], exc.code
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


@pytest.mark.parametrize("path", ["/version", "/healthz", "/livez", "/readyz"])
def test_anonymous_may_read_what_public_info_viewer_grants(kube: KubeComponent, path: str) -> None:
    assert anonymous(kube, path)[0] == 200


@pytest.mark.parametrize(
    ("path", "message", "details"),
    [
        ("/api", 'forbidden: User "system:anonymous" cannot get path "/api"', {}),
        ("/apis/apps/v1", 'forbidden: User "system:anonymous" cannot get path "/apis/apps/v1"', {}),
        (
            f"/api/v1/namespaces/{NS}/pods",
            'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group '
            f'"" in the namespace "{NS}"',
            {"kind": "pods"},
        ),
        (
            "/apis/apps/v1/deployments",
            'deployments.apps is forbidden: User "system:anonymous" cannot list resource '
            '"deployments" in API group "apps" at the cluster scope',
            {"kind": "deployments", "group": "apps"},
        ),
        (
            f"/api/v1/namespaces/{NS}/pods/backend-6d8f7b9c4d-l5qk5/log",
            'pods "backend-6d8f7b9c4d-l5qk5" is forbidden: User "system:anonymous" cannot get '
            f'resource "pods/log" in API group "" in the namespace "{NS}"',
            {"kind": "pods", "name": "backend-6d8f7b9c4d-l5qk5"},
        ),
    ],
)
def test_anonymous_gets_the_real_servers_403(
    kube: KubeComponent, path: str, message: str, details: dict[str, str]
) -> None:
    status, body = anonymous(kube, path)
    assert status == 403
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


SA = "system:serviceaccount:vcci-readiness:pytest-vcci"
IDENTITIES = {
    "t0ken-pods-reader": {
        "user": SA,
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"], "namespaces": [NS]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"], "namespaces": [NS]},
        ],
    }
}


@pytest.fixture(scope="module")
def rbac_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeComponent]:
    component = KubeComponent(
        workdir=tmp_path_factory.mktemp("rbac"), identities=IDENTITIES, manifests_repository=False
    )
    try:
        component.start()
        yield component
    finally:
        component.stop()


def test_rbac_rules_answer_kind_by_kind_like_the_server(rbac_kube: KubeComponent) -> None:
    token = "t0ken-pods-reader"
    assert call(rbac_kube, "/api/v1/pods", token=token)[0] == 200
    assert call(rbac_kube, "/api/v1/nodes", token=token)[0] == 200
    assert (
        call(rbac_kube, f"/apis/apps/v1/namespaces/{NS}/deployments/backend", token=token)[0] == 200
    )
    pods = call(rbac_kube, f"/api/v1/namespaces/{NS}/pods", token=token)[1]["items"]
    assert (
        call(rbac_kube, f"/api/v1/namespaces/{NS}/pods/{names(pods)[0]}/log", token=token)[0] == 200
    )
    assert call(rbac_kube, "/api", token=token)[0] == 200  # discovery: any authenticated user
    # A RoleBinding's grant: its namespace, never the cluster scope.
    assert call(rbac_kube, f"/api/v1/namespaces/{NS}/secrets", token=token)[0] == 200
    status, body = call(rbac_kube, "/api/v1/secrets", token=token)
    assert (status, body["message"]) == (
        403,
        f'secrets is forbidden: User "{SA}" cannot list resource "secrets" in API group "" at '
        "the cluster scope",
    )
    status, body = call(
        rbac_kube, "/api/v1/namespaces/monitoring/pods/prometheus-0/log", token=token
    )
    assert status == 403
    assert (
        'cannot get resource "pods/log" in API group "" in the namespace "monitoring"'
        in (body["message"])
    )
    status, body = call(rbac_kube, "/apis/networking.k8s.io/v1/networkpolicies", token=token)
    assert (status, body["details"]) == (
        403,
        {"kind": "networkpolicies", "group": "networking.k8s.io"},
    )
    assert call(rbac_kube, "/api/v1/nodes/nope", token=token)[0] == 403  # list, not get
    assert call(rbac_kube, "/api/v1/nodes")[0] == 200  # the sandbox's own token reads anything


def test_an_unreadable_identities_file_stops_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "ids.json").write_text("[1, 2]")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_vcci.sandbox.kube_emulator",
            "--port",
            "0",
            "--manifests",
            str(STAGING_MANIFESTS),
            "--identities",
            str(tmp_path / "ids.json"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{tmp_path / 'ids.json'}: not an identities file" in result.stderr


# --- objects as a real API server stores them ----------------------------------------------


def served(kube: KubeComponent, path: str) -> dict[str, Any]:
    status, body = call(kube, path)
    assert status == 200, body
    return dict(body)


def test_pods_carry_what_the_server_adds(kube: KubeComponent) -> None:
    pod = served(kube, f"/api/v1/namespaces/{NS}/pods/backend-6d8f7b9c4d-l5qk5")
    meta, spec = pod["metadata"], pod["spec"]
    assert {"uid", "resourceVersion", "creationTimestamp", "managedFields"} <= set(meta)
    managers = [(m["manager"], m.get("subresource")) for m in meta["managedFields"]]
    assert managers == [("kube-controller-manager", None), ("kubelet", "status")]
    assert all(m["fieldsType"] == "FieldsV1" for m in meta["managedFields"])
    assert 'k:{"name":"backend"}' in meta["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"]
    # The ServiceAccount admission plugin: a projected token volume, mounted in every container.
    (token,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert re.fullmatch(r"kube-api-access-[a-z0-9]{5}", token["name"])
    sources = token["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    for container in spec["containers"]:
        assert {
            "name": token["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        } in container["volumeMounts"]
        assert container["terminationMessagePath"] == "/dev/termination-log"
        assert container["terminationMessagePolicy"] == "File"
        assert container["readinessProbe"]["successThreshold"] == 1
    assert {t["key"]: t["tolerationSeconds"] for t in spec["tolerations"]} == {
        "node.kubernetes.io/not-ready": 300,
        "node.kubernetes.io/unreachable": 300,
    }
    assert (spec["dnsPolicy"], spec["restartPolicy"], spec["schedulerName"]) == (
        "ClusterFirst",
        "Always",
        "default-scheduler",
    )
    assert (spec["priority"], spec["enableServiceLinks"], spec["serviceAccount"]) == (
        0,
        True,
        "vcci-backend",
    )
    assert pod["status"]["qosClass"] == "Burstable"


def test_no_token_volume_where_automount_is_off(kube: KubeComponent) -> None:
    """vcci-frontend's pods say automountServiceAccountToken: false: nothing is mounted."""
    pods = call(
        kube, f"/api/v1/namespaces/{NS}/pods?labelSelector=app.kubernetes.io/component%3Dweb"
    )[1]
    assert len(pods["items"]) == 2
    for pod in pods["items"]:
        volumes = [v["name"] for v in pod["spec"].get("volumes") or []]
        assert not [v for v in volumes if v.startswith("kube-api-access-")], volumes


def test_workloads_carry_defaults_and_generation(kube: KubeComponent) -> None:
    deployment = served(kube, f"/apis/apps/v1/namespaces/{NS}/deployments/frontend")
    assert deployment["metadata"]["generation"] >= 1
    template = deployment["spec"]["template"]["spec"]
    assert template["dnsPolicy"] == "ClusterFirst"
    assert template["schedulerName"] == "default-scheduler"
    assert template["containers"][0]["terminationMessagePolicy"] == "File"
    # Admission happens to pods, not to templates.
    assert "tolerations" not in template
    assert not any(v["name"].startswith("kube-api-access") for v in template.get("volumes") or [])
    service = served(kube, f"/api/v1/namespaces/{NS}/services/backend")
    assert service["spec"]["sessionAffinity"] == "None"
    assert service["spec"]["clusterIPs"] == [service["spec"]["clusterIP"]]
    namespace = served(kube, f"/api/v1/namespaces/{NS}")
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == NS


def test_served_objects_are_about_twice_their_manifests() -> None:
    """Real API server objects are about twice the size of hand-written manifests."""
    real = build_store(STAGING_MANIFESTS)
    hand = Store.build(load_manifests(STAGING_MANIFESTS), server_fields=False)
    for kind, low in (("Pod", 2.0), ("Deployment", 1.8)):
        size = sum(len(e.item) for e in real.index.values() if e.resource.kind == kind)
        written = sum(len(e.item) for e in hand.index.values() if e.resource.kind == kind)
        assert size >= low * written, (kind, size / written)


def test_pages_are_slices_not_scans(kube: KubeComponent) -> None:
    kube.reset_requests()
    token, pages = "", 0
    while True:
        page = call(kube, "/api/v1/pods?limit=5" + (f"&continue={token}" if token else ""))[1]
        pages, token = pages + 1, page["metadata"].get("continue", "")
        if not token:
            break
    assert pages > 3
    assert kube.requests()["scans"] == 0  # every scope is indexed when the store is built
    selector = "labelSelector=app.kubernetes.io/part-of%3Dgl-vcci&limit=2"
    token, pages = "", 0
    while True:
        page = call(kube, f"/api/v1/pods?{selector}" + (f"&continue={token}" if token else ""))[1]
        pages, token = pages + 1, page["metadata"].get("continue", "")
        if not token:
            break
    assert pages >= 3
    assert kube.requests()["scans"] == 1  # filtered once, then sliced


def test_requests_are_counted_logged_and_reset(kube: KubeComponent) -> None:
    kube.reset_requests()
    assert kube.requests()["total"] == 0
    call(kube, "/api/v1/nodes")
    call(kube, "/api/v1/nodes?limit=1")
    call(kube, f"/api/v1/namespaces/{NS}/pods/x", "DELETE")
    counts = kube.requests()
    assert counts["total"] == 3
    assert counts["by_verb"] == {"GET": 2, "DELETE": 1}
    assert counts["by_path"]["GET /api/v1/nodes"] == 2
    assert counts["by_path"][f"DELETE /api/v1/namespaces/{NS}/pods/x"] == 1
    logged = kube.logged_requests()[-3:]
    assert [(r["method"], r["query"], r["status"]) for r in logged] == [
        ("GET", "", 200),
        ("GET", "limit=1", 200),
        ("DELETE", "", 405),
    ]
    kube.reset_requests()
    assert kube.requests() == {"total": 0, "by_verb": {}, "by_path": {}, "scans": 0}


class RecordedSleep:
    """Stands in for the emulator's ``time``: sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_latency_delays_every_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = RecordedSleep()
    monkeypatch.setattr(kube_emulator, "time", clock)
    emulator = kube_emulator.Emulator(build_store(STAGING_MANIFESTS), token="t0ken", latency_ms=300)
    assert emulator.handle("GET", "/version", "Bearer t0ken").status == 200
    assert emulator.handle("GET", "/api/v1/nodes", "Bearer wr0ng").status == 401  # refusals too
    assert clock.slept == [0.3, 0.3]
    emulator.handle("GET", "/_emulator/requests", None)  # the test hooks answer at once
    assert clock.slept == [0.3, 0.3]
    # The component starts its emulator with that latency, and it serves.
    slow = KubeComponent(workdir=tmp_path, latency_ms=300)
    try:
        slow.start()
        argv = Path(f"/proc/{slow.pids[0]}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--latency-ms") + 1] == b"300"
        assert call(slow, "/version")[0] == 200
    finally:
        slow.stop()


def test_hang_mode_accepts_and_never_answers(tmp_path: Path) -> None:
    hung = KubeComponent(workdir=tmp_path, hang=True)
    try:
        hung.start()
        with socket.create_connection(("127.0.0.1", hung.port), timeout=2) as sock:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
    finally:
        hung.stop()


# --- manifests --------------------------------------------------------------------------


def test_owner_references_get_their_owner_uid() -> None:
    store = build_store(STAGING_MANIFESTS)
    by_name = {(e.resource.kind, e.namespace, e.name): e.obj for e in store.index.values()}
    deployment = by_name[("Deployment", NS, "backend")]
    replica_sets = [
        o
        for (kind, ns, _), o in by_name.items()
        if kind == "ReplicaSet" and o["metadata"]["ownerReferences"][0]["name"] == "backend"
    ]
    assert len(replica_sets) == 2
    for rs in replica_sets:
        assert rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}},
            "unknown kind 'Widget'",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "annotations": {"limit-rpm": 100}},
            },
            "metadata.annotations.limit-rpm must be a string",
        ),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "without metadata.name"),
    ],
)
def test_bad_manifests_are_refused_naming_the_file(
    tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ManifestError, match=message) as info:
        build_store(tmp_path)
    assert "broken.yaml: document 1" in str(info.value)


def test_emulator_exits_with_the_manifest_error(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(STAGING_MANIFESTS, manifests)
    (manifests / "99-bad.yaml").write_text("kind: Widget\napiVersion: v1\nmetadata: {name: w}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_vcci.sandbox.kube_emulator",
            "--port",
            "0",
            "--manifests",
            str(manifests),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "99-bad.yaml: document 1: unknown kind 'Widget'" in result.stderr


def test_yaml_timestamps_stay_strings(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
        "  creationTimestamp: 2025-01-06T09:00:00Z\n"
    )
    [(_, obj)] = list(load_manifests(tmp_path))
    assert obj["metadata"]["creationTimestamp"] == "2025-01-06T09:00:00Z"


def test_generated_pods_are_realistic_and_unique() -> None:
    pods = list(generate_pods(10_000, nodes=["a", "b", "c"]))
    assert len({p["metadata"]["name"] for p in pods}) == 10_000
    assert {p["spec"]["nodeName"] for p in pods} == {"a", "b", "c"}
    store = Store.build(("generated", p) for p in pods[:10])
    size = len(next(iter(store.index.values())).item)
    assert 5_000 < size < 8_000, size  # real-shaped: managedFields, token volume, defaults
