"""Section 3: application deployment — images (3.1) and Kubernetes manifests (3.2).

Workloads are named by role in the environment file, so thresholds line up with the checklist:

```toml
[expect.kubernetes]
deployments = {backend = "backend", frontend = "frontend", worker = "worker"}
images = {backend = "vcci-backend", frontend = "vcci-frontend", worker = "vcci-worker"}
services = {backend = "backend", frontend = "frontend"}
hpas = {backend = "backend", worker = "worker"}
pdbs = {backend = "backend", frontend = "frontend", worker = "worker"}
ingress = "vcci"
[expect.kubernetes.configmaps]     # name -> keys it must hold (each is parsed by its extension)
vcci-app-config = ["app.yaml", "settings.json"]
[expect.kubernetes.secret_keys]    # name -> key names (values are never read)
vcci-jwt = ["jwt-private-key", "jwt-public-key"]
```

Images in the registry come from ``[expect.aws].ecr_repositories``; scan results from ECR
(DescribeImageScanFindings) and/or the Trivy JSON reports of ``[reports].trivy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from pytest_vcci.readers.config_files import config_problems
from pytest_vcci.readers.kubernetes_objects import (
    image_id_digest,
    labels_of,
    main_container,
    name_of,
    parse_image,
    pod_problems,
    pod_ready,
    quantities_equal,
    selected,
    selector_matches,
)

GIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
GIT_SHA_TAG = re.compile(r"^(?:git-|sha-)?[0-9a-f]{7,40}$")
# A label or annotation that records the commit, when [expect.kubernetes].git_sha_label is unset.
GIT_SHA_KEY = re.compile(r"(git[-_.]?(sha|commit)|commit[-_.]?sha|vcs-ref|revision)$", re.I)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Ingress controllers the checklist accepts (Nginx/Traefik), by IngressClass.spec.controller.
CONTROLLERS = (
    "k8s.io/ingress-nginx",
    "nginx.org/ingress-controller",
    "traefik.io/ingress-controller",
)
CONTROLLER_APPS = ("ingress-nginx", "nginx-ingress", "traefik")
DOCKER_CONFIG = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}


# --- helpers ------------------------------------------------------------------------------


def _deployment(
    cluster: Any, expect: Callable[..., Any], namespace: str, role: str, evidence: Any
) -> dict[str, Any]:
    """The role's Deployment, or stop the test saying it is missing."""
    name = expect("kubernetes", "deployments")[role]
    deployment = cluster.get("deployments", name, namespace)
    evidence.require(
        "exists",
        deployment is not None,
        True,
        deployment is not None,
        where=f"deployment {namespace}/{name}",
    )
    assert deployment is not None
    return dict(deployment)


def _pods_of(cluster: Any, workload: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    return selected(cluster.list("pods", namespace), workload.get("spec", {}).get("selector"))


def _optional_threshold(threshold: Callable[[str, str], Any], item: str, name: str) -> Any:
    try:
        return threshold(item, name)
    except KeyError:
        return None


def _release(threshold: Callable[[str, str], Any]) -> str:
    return str(threshold("3.1.1", "release_tag"))


def _registry_image(cloud: Any, repository: str, tag: str) -> dict[str, Any] | None:
    ecr = cloud.client("ecr")
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
        return None
    details = found.get("imageDetails") or []
    return dict(details[0]) if details else None


# --- 3.1 container images -----------------------------------------------------------------


@pytest.mark.checklist("3.1.1")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_deployed_image_carries_release_tag(cluster, namespace, expect, threshold, evidence, role):
    """Each workload runs its image at the release tag (never latest), in its spec and its pods."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    image_name = expect("kubernetes", "images")[role]
    release = _release(threshold)
    where = f"deployment {namespace}/{name_of(deployment)}"
    ref = parse_image(str(main_container(deployment, image_name).get("image", "")))
    evidence.check("image", ref.name, image_name, ref.name == image_name, where=where)
    evidence.check(
        "image tag", ref.tag or "(none: latest)", release, ref.tag == release, where=where
    )
    for pod in _pods_of(cluster, deployment, namespace):
        for container in pod.get("spec", {}).get("containers") or []:
            pod_ref = parse_image(str(container.get("image", "")))
            if pod_ref.name == image_name:
                evidence.check(
                    "image tag",
                    pod_ref.tag or "(none: latest)",
                    release,
                    pod_ref.tag == release,
                    where=f"pod {namespace}/{name_of(pod)}",
                )


@pytest.mark.checklist("3.1.1")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_workload_labelled_with_git_sha(cluster, namespace, expect, evidence, role):
    """Each workload and its pods carry the git SHA they were built from (label or annotation)."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    key = expect("kubernetes", "git_sha_label", default=None)
    template = deployment.get("spec", {}).get("template", {})
    for what, obj in (
        ("deployment", deployment),
        ("pod template", template),
        *(("pod", pod) for pod in _pods_of(cluster, deployment, namespace)),
    ):
        meta = obj.get("metadata") or {}
        marks = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
        keys = [key] if key else [k for k in marks if GIT_SHA_KEY.search(k)]
        value = next((str(marks[k]) for k in keys if k in marks), None)
        name = name_of(obj) or name_of(deployment)
        evidence.check(
            f"git SHA ({key or 'git-sha label'})",
            value or "(none)",
            "7-40 hex digits",
            bool(value and GIT_SHA.match(value)),
            where=f"{what} {namespace}/{name}",
        )


@pytest.mark.checklist("3.1.1")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_registry_image_tagged_with_release_and_git_sha(cloud, threshold, evidence, repository):
    """Each registry image has the release tag and, on the same digest, a git SHA tag."""
    release = _release(threshold)
    image = _registry_image(cloud, repository, release)
    where = f"ECR {repository}"
    evidence.require(
        f"image {release}",
        "present" if image else "missing",
        "present",
        image is not None,
        where=where,
    )
    assert image is not None
    tags = sorted(image.get("imageTags") or [])
    sha_tags = [t for t in tags if GIT_SHA_TAG.match(t)]
    evidence.check(
        "git SHA tag",
        sha_tags or tags,
        "a tag like git-<sha>",
        bool(sha_tags),
        where=f"{where}:{release}",
    )


@pytest.mark.checklist("3.1.2")
def test_images_have_no_critical_or_high_findings(request, settings, expect, threshold, evidence):
    """Image scans (ECR scan results and/or Trivy reports) show no critical and no high findings."""
    max_critical = int(threshold("3.1.2", "max_critical_findings"))
    max_high = int(threshold("3.1.2", "max_high_findings"))
    repositories = (
        expect("aws", "ecr_repositories", default=None) if settings.table("aws") else None
    )
    reports = settings.table("reports")
    trivy = list(reports.trivy) if reports is not None else []
    if not repositories and not trivy:
        pytest.skip(
            f"no scan source: neither [aws] with [expect.aws].ecr_repositories nor [reports].trivy "
            f"is set in {settings.source}"
        )
    if repositories:
        cloud = request.getfixturevalue("cloud")
        for repository in repositories:
            _check_registry_scan(
                cloud, repository, _release(threshold), max_critical, max_high, evidence
            )
    for path in trivy:
        _check_trivy_report(
            settings.resolve_path(path), reports.max_age_hours, max_critical, max_high, evidence
        )


def _check_registry_scan(
    cloud: Any, repository: str, tag: str, max_critical: int, max_high: int, evidence: Any
) -> None:
    ecr = cloud.client("ecr")
    where = f"ECR {repository}:{tag}"
    try:
        scan = ecr.describe_image_scan_findings(
            repositoryName=repository, imageId={"imageTag": tag}
        )
    except (
        ecr.exceptions.ScanNotFoundException,
        ecr.exceptions.ImageNotFoundException,
        ecr.exceptions.RepositoryNotFoundException,
    ) as exc:
        evidence.check(
            "scan", exc.response["Error"]["Code"], "a completed scan", False, where=where
        )
        return
    status = (scan.get("imageScanStatus") or {}).get("status")
    if not evidence.check("scan status", status, "COMPLETE", status == "COMPLETE", where=where):
        return
    findings = scan.get("imageScanFindings") or {}
    counts = findings.get("findingSeverityCounts") or {}
    serious = [
        f"{f.get('name')} ({f.get('severity')})"
        for f in findings.get("findings") or []
        if f.get("severity") in ("CRITICAL", "HIGH")
    ]
    evidence.record("findings by severity", counts, where=where)
    evidence.check(
        "critical findings",
        counts.get("CRITICAL", 0),
        f"<= {max_critical}",
        counts.get("CRITICAL", 0) <= max_critical,
        where=where,
    )
    evidence.check(
        "high findings",
        counts.get("HIGH", 0),
        f"<= {max_high}",
        counts.get("HIGH", 0) <= max_high,
        where=where + (f" ({', '.join(serious[:5])})" if serious else ""),
    )


def _check_trivy_report(
    path: Any, max_age_hours: float, max_critical: int, max_high: int, evidence: Any
) -> None:
    from pytest_vcci.readers.tool_reports import IngestError
    from pytest_vcci.readers.trivy_report import load_trivy

    try:
        summary = load_trivy(path, max_age_hours)
    except IngestError as exc:
        evidence.check(
            "Trivy report", str(exc), "a readable, recent Trivy JSON report", False, where=str(path)
        )
        return
    where = f"Trivy {summary.artifact}"
    counts = summary.counts()
    evidence.record("findings by severity", counts, where=where)
    serious = [f.describe() for f in summary.at("CRITICAL") + summary.at("HIGH")]
    evidence.check(
        "critical findings",
        counts["CRITICAL"],
        f"<= {max_critical}",
        counts["CRITICAL"] <= max_critical,
        where=where,
    )
    evidence.check(
        "high findings",
        counts["HIGH"],
        f"<= {max_high}",
        counts["HIGH"] <= max_high,
        where=where + (f" ({'; '.join(serious[:5])})" if serious else ""),
    )


@pytest.mark.checklist("3.1.3")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_release_image_in_registry_with_digest(cloud, threshold, evidence, repository):
    """Each release image is in the registry, and its digest is recorded."""
    release = _release(threshold)
    image = _registry_image(cloud, repository, release)
    where = f"ECR {repository}:{release}"
    evidence.require(
        "image", "present" if image else "missing", "present", image is not None, where=where
    )
    assert image is not None
    digest = str(image.get("imageDigest", ""))
    evidence.check("digest", digest, "sha256:<64 hex>", bool(DIGEST.match(digest)), where=where)


@pytest.mark.checklist("3.1.3")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_pods_run_the_registry_digest(cloud, cluster, namespace, threshold, evidence, repository):
    """Every running pod of an image runs exactly the digest the registry holds for the release."""
    release = _release(threshold)
    image = _registry_image(cloud, repository, release)
    evidence.require(
        "image",
        "present" if image else "missing",
        "present",
        image is not None,
        where=f"ECR {repository}:{release}",
    )
    assert image is not None
    want = image["imageDigest"]
    running = 0
    for pod in cluster.list("pods", namespace):
        if pod.get("status", {}).get("phase") != "Running":
            continue
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if parse_image(str(status.get("image", ""))).name != repository:
                continue
            running += 1
            have = image_id_digest(status.get("imageID"))
            evidence.check(
                "running digest",
                have,
                want,
                have == want,
                where=f"pod {namespace}/{name_of(pod)} container {status.get('name')}",
            )
    evidence.check(
        "running containers", running, ">= 1", running >= 1, where=f"{repository} in {namespace}"
    )


@pytest.mark.checklist("3.1.3")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_image_pull_secrets_exist(cluster, namespace, expect, evidence, role):
    """The image pull secrets a workload references exist as registry credentials with their key."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    names = [ref.get("name") for ref in spec.get("imagePullSecrets") or []]
    account = cluster.get("serviceaccounts", spec.get("serviceAccountName") or "default", namespace)
    names += [ref.get("name") for ref in (account or {}).get("imagePullSecrets") or []]
    if not names:
        evidence.record(
            "image pull secrets",
            "none (pulled with the node's registry credentials)",
            where=f"deployment {namespace}/{name_of(deployment)}",
        )
    for name in dict.fromkeys(names):
        secret = cluster.get("secrets", name, namespace)
        where = f"secret {namespace}/{name}"
        if not evidence.check("exists", secret is not None, True, secret is not None, where=where):
            continue
        kind = str(secret.get("type"))
        key = DOCKER_CONFIG.get(kind)
        evidence.check("type", kind, " or ".join(DOCKER_CONFIG), key is not None, where=where)
        if key:
            evidence.check(
                "key",
                sorted(secret.get("data") or {}),
                key,
                key in (secret.get("data") or {}),
                where=where,
            )


# --- 3.2.1 namespace ----------------------------------------------------------------------


@pytest.mark.smoke("infrastructure", "namespace")
@pytest.mark.checklist("3.2.1")
def test_namespace_active(cluster, namespace, settings, threshold, evidence):
    """The application namespace exists and is Active (named as the checklist says in production)."""
    obj = cluster.get("namespaces", namespace)
    where = f"namespace {namespace}"
    evidence.require("exists", obj is not None, True, obj is not None, where=where)
    phase = (obj or {}).get("status", {}).get("phase")
    evidence.check("phase", phase, "Active", phase == "Active", where=where)
    if settings.environment.production:
        want = threshold("3.2.1", "namespace")
        evidence.check("name", namespace, want, namespace == want, where=where)


@pytest.mark.checklist("3.2.1")
def test_resource_quota_applied(cluster, namespace, evidence):
    """The namespace has a ResourceQuota capping CPU and memory."""
    quotas = cluster.list("resourcequotas", namespace)
    evidence.require(
        "resource quotas",
        [name_of(q) for q in quotas],
        ">= 1",
        bool(quotas),
        where=f"namespace {namespace}",
    )
    capped = {}
    for quota in quotas:
        hard = quota.get("spec", {}).get("hard") or {}
        capped[name_of(quota)] = sorted(hard)
        for resource in ("cpu", "memory"):
            keys = [
                k for k in hard if k in (resource, f"requests.{resource}", f"limits.{resource}")
            ]
            evidence.check(
                f"{resource} capped",
                keys or "(no cap)",
                f"{resource}, requests.{resource} or limits.{resource}",
                bool(keys),
                where=f"resourcequota {namespace}/{name_of(quota)}",
            )


@pytest.mark.checklist("3.2.1")
def test_limit_range_configured(cluster, namespace, evidence):
    """The namespace has a LimitRange giving containers default CPU/memory requests and limits."""
    ranges = cluster.list("limitranges", namespace)
    evidence.require(
        "limit ranges",
        [name_of(r) for r in ranges],
        ">= 1",
        bool(ranges),
        where=f"namespace {namespace}",
    )
    for limit_range in ranges:
        containers = [
            lim
            for lim in limit_range.get("spec", {}).get("limits") or []
            if lim.get("type") == "Container"
        ]
        where = f"limitrange {namespace}/{name_of(limit_range)}"
        evidence.check("Container limits", len(containers), ">= 1", bool(containers), where=where)
        for limit in containers:
            for field in ("default", "defaultRequest"):
                have = sorted(limit.get(field) or {})
                evidence.check(
                    field, have, ["cpu", "memory"], {"cpu", "memory"} <= set(have), where=where
                )


@pytest.mark.checklist("3.2.1")
def test_default_deny_network_policy(cluster, namespace, evidence):
    """A NetworkPolicy selecting every pod denies all ingress by default."""
    policies = cluster.list("networkpolicies", namespace)
    deny = []
    for policy in policies:
        spec = policy.get("spec") or {}
        selector = spec.get("podSelector") or {}
        everyone = not selector.get("matchLabels") and not selector.get("matchExpressions")
        if (
            everyone
            and "Ingress" in (spec.get("policyTypes") or ["Ingress"])
            and not spec.get("ingress")
        ):
            deny.append(policy)
    evidence.check(
        "default-deny ingress policy",
        [name_of(p) for p in deny] or "(none)",
        "a policy with podSelector {} and no ingress rules",
        bool(deny),
        where=f"namespace {namespace}",
    )
    egress = [
        name_of(p)
        for p in deny
        if "Egress" in (p["spec"].get("policyTypes") or []) and not p["spec"].get("egress")
    ]
    evidence.record("default-deny egress", egress or "(none)", where=f"namespace {namespace}")
    evidence.record(
        "network policies", [name_of(p) for p in policies], where=f"namespace {namespace}"
    )


# --- 3.2.2 / 3.2.3 configuration ------------------------------------------------------------


@pytest.mark.checklist("3.2.2")
@pytest.mark.each("configmap", "kubernetes", "configmaps")
def test_configmap_deployed_and_valid(cluster, namespace, expect, evidence, configmap):
    """Each ConfigMap exists with its entries, and every entry parses (YAML, JSON, TOML, nginx)."""
    obj = cluster.get("configmaps", configmap, namespace)
    where = f"configmap {namespace}/{configmap}"
    evidence.require("exists", obj is not None, True, obj is not None, where=where)
    data = (obj or {}).get("data") or {}
    wanted = list(expect("kubernetes", "configmaps")[configmap] or [])
    missing = [k for k in wanted if k not in data]
    evidence.check("entries", sorted(data), wanted, not missing, where=where)
    unknown = []
    for key, text in sorted(data.items()):
        problems = config_problems(key, str(text))
        if problems is None:
            unknown.append(key)
            continue
        evidence.check(
            "syntax", "; ".join(problems) or "valid", "valid", not problems, where=f"{where} {key}"
        )
    if unknown:
        known = "YAML, JSON, TOML, nginx"
        evidence.undecided(
            f"{', '.join(unknown)}: file type not one of {known}: not validated", where=where
        )


@pytest.mark.smoke("security", "secrets configuration")
@pytest.mark.checklist("3.2.3")
@pytest.mark.each("secret", "kubernetes", "secret_keys")
def test_secret_deployed_with_keys(cluster, namespace, expect, evidence, secret):
    """Each Secret exists with every expected key (key names only; values are never read)."""
    obj = cluster.get("secrets", secret, namespace)
    where = f"secret {namespace}/{secret}"
    evidence.require("exists", obj is not None, True, obj is not None, where=where)
    keys = sorted({*((obj or {}).get("data") or {}), *((obj or {}).get("stringData") or {})})
    wanted = list(expect("kubernetes", "secret_keys")[secret] or [])
    missing = [k for k in wanted if k not in keys]
    evidence.check(
        "keys",
        keys,
        wanted,
        not missing,
        where=where + (f" (missing {', '.join(missing)})" if missing else ""),
    )


# --- 3.2.4 deployments ----------------------------------------------------------------------


@pytest.mark.smoke("infrastructure", "deployments")
@pytest.mark.checklist("3.2.4")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_deployment_replicas_available(cluster, namespace, expect, threshold, evidence, role):
    """Each deployment asks for and has available the checklist's replicas (backend 3, frontend 2, worker 3)."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    want = int(threshold("3.2.4", f"{role}_replicas"))
    where = f"deployment {namespace}/{name_of(deployment)}"
    replicas = int(deployment.get("spec", {}).get("replicas", 1))
    available = int(deployment.get("status", {}).get("availableReplicas") or 0)
    evidence.check("replicas", replicas, f">= {want}", replicas >= want, where=where)
    evidence.check("available replicas", available, f">= {want}", available >= want, where=where)


@pytest.mark.smoke("infrastructure", "pod health")
@pytest.mark.checklist("3.2.4")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_deployment_pods_running_and_ready(cluster, namespace, expect, threshold, evidence, role):
    """Every pod of each deployment is Running and Ready, none crash-looping or restarting too often."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    max_restarts = int(threshold("3.2.4", "max_restarts"))
    want = int(threshold("3.2.4", f"{role}_replicas"))
    pods = _pods_of(cluster, deployment, namespace)
    ready = [p for p in pods if p.get("status", {}).get("phase") == "Running" and pod_ready(p)]
    evidence.check(
        "Running and Ready pods",
        len(ready),
        f">= {want}",
        len(ready) >= want,
        where=f"deployment {namespace}/{name_of(deployment)}",
    )
    for pod in pods:
        problems = pod_problems(pod, max_restarts)
        evidence.check(
            "health",
            "; ".join(problems) or "Running, Ready",
            f"Running, Ready, no CrashLoopBackOff, restarts <= {max_restarts}",
            not problems,
            where=f"pod {namespace}/{name_of(pod)}",
        )


# --- 3.2.5 services -------------------------------------------------------------------------


def _ready_endpoints(cluster: Any, namespace: str, service: str) -> int:
    slices = [
        s
        for s in cluster.list("endpointslices", namespace)
        if labels_of(s).get("kubernetes.io/service-name") == service
    ]
    return sum(
        1
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready") is not False
    )


@pytest.mark.checklist("3.2.5")
@pytest.mark.each("role", "kubernetes", "services")
def test_service_clusterip_with_ready_endpoints(
    cluster, namespace, expect, threshold, evidence, role
):
    """Each service is a ClusterIP service with ready endpoints."""
    name = expect("kubernetes", "services")[role]
    service = cluster.get("services", name, namespace)
    where = f"service {namespace}/{name}"
    evidence.require("exists", service is not None, True, service is not None, where=where)
    want = threshold("3.2.5", "service_type")
    kind = (service or {}).get("spec", {}).get("type", "ClusterIP")
    evidence.check("type", kind, want, kind == want, where=where)
    ready = _ready_endpoints(cluster, namespace, name)
    evidence.check("ready endpoints", ready, ">= 1", ready >= 1, where=where)


@pytest.mark.checklist("3.2.5")
def test_every_service_has_endpoints(cluster, namespace, evidence):
    """Every service with a selector in the namespace has at least one ready endpoint."""
    services = [
        s
        for s in cluster.list("services", namespace)
        if s.get("spec", {}).get("selector") and s.get("spec", {}).get("type") != "ExternalName"
    ]
    evidence.record(
        "services with a selector", [name_of(s) for s in services], where=f"namespace {namespace}"
    )
    for service in services:
        ready = _ready_endpoints(cluster, namespace, name_of(service))
        evidence.check(
            "ready endpoints",
            ready,
            ">= 1",
            ready >= 1,
            where=f"service {namespace}/{name_of(service)}",
        )


# --- 3.2.6 ingress --------------------------------------------------------------------------


def _ingress(
    cluster: Any, namespace: str, expect: Callable[..., Any], evidence: Any
) -> dict[str, Any]:
    name = expect("kubernetes", "ingress")
    ingress = cluster.get("ingresses", name, namespace)
    evidence.require(
        "exists",
        ingress is not None,
        True,
        ingress is not None,
        where=f"ingress {namespace}/{name}",
    )
    assert ingress is not None
    return dict(ingress)


@pytest.mark.checklist("3.2.6")
def test_ingress_controller_deployed(cluster, namespace, expect, evidence):
    """The ingress names an Nginx/Traefik IngressClass whose controller is deployed and available."""
    ingress = _ingress(cluster, namespace, expect, evidence)
    where = f"ingress {namespace}/{name_of(ingress)}"
    classes = cluster.list("ingressclasses")
    class_name = (
        ingress.get("spec", {}).get("ingressClassName")
        or (ingress.get("metadata", {}).get("annotations") or {}).get("kubernetes.io/ingress.class")
        or next(
            (
                name_of(c)
                for c in classes
                if (c.get("metadata", {}).get("annotations") or {}).get(
                    "ingressclass.kubernetes.io/is-default-class"
                )
                == "true"
            ),
            None,
        )
    )
    ingress_class = next((c for c in classes if name_of(c) == class_name), None)
    evidence.require(
        "ingress class",
        class_name or "(none)",
        "an existing IngressClass",
        ingress_class is not None,
        where=where,
    )
    controller = str((ingress_class or {}).get("spec", {}).get("controller"))
    evidence.check(
        "controller",
        controller,
        " or ".join(CONTROLLERS),
        controller in CONTROLLERS,
        where=f"ingressclass {class_name}",
    )
    wanted = expect("kubernetes", "ingress_controller", default=None)
    if wanted:
        workloads = [cluster.get("deployments", wanted["deployment"], wanted["namespace"])]
    else:
        workloads = [
            d
            for d in cluster.list("deployments", "*")
            if labels_of(d).get("app.kubernetes.io/name") in CONTROLLER_APPS
        ]
    workloads = [w for w in workloads if w is not None]
    evidence.require(
        "controller deployment",
        [name_of(w) for w in workloads] or "(none)",
        "deployed",
        bool(workloads),
        where=f"ingressclass {class_name}",
    )
    for workload in workloads:
        available = int(workload.get("status", {}).get("availableReplicas") or 0)
        evidence.check(
            "available replicas",
            available,
            ">= 1",
            available >= 1,
            where=f"deployment {workload['metadata'].get('namespace')}/{name_of(workload)}",
        )


def _host_covered(host: str, tls_hosts: list[str]) -> bool:
    for pattern in tls_hosts:
        if pattern == host or (
            pattern.startswith("*.")
            and host.endswith(pattern[1:])
            and "." not in host[: -len(pattern) + 1]
        ):
            return True
    return False


@pytest.mark.checklist("3.2.6")
def test_ingress_terminates_tls_for_its_hosts(cluster, namespace, expect, evidence):
    """Every ingress host is covered by a TLS entry whose certificate Secret exists."""
    ingress = _ingress(cluster, namespace, expect, evidence)
    spec = ingress.get("spec", {})
    where = f"ingress {namespace}/{name_of(ingress)}"
    tls = spec.get("tls") or []
    evidence.require("tls entries", len(tls), ">= 1", bool(tls), where=where)
    tls_hosts = [h for entry in tls for h in entry.get("hosts") or []]
    for rule in spec.get("rules") or []:
        host = rule.get("host") or "(any host)"
        evidence.check(
            "TLS",
            "covered" if _host_covered(host, tls_hosts) else "not covered",
            "covered",
            _host_covered(host, tls_hosts),
            where=f"{where} host {host}",
        )
    for entry in tls:
        name = entry.get("secretName")
        secret = cluster.get("secrets", name, namespace) if name else None
        keys = sorted((secret or {}).get("data") or {})
        ok = secret is not None and {"tls.crt", "tls.key"} <= set(keys)
        evidence.check(
            "certificate secret",
            keys if secret else "(missing)",
            ["tls.crt", "tls.key"],
            ok,
            where=f"secret {namespace}/{name}",
        )


@pytest.mark.checklist("3.2.6")
def test_ingress_paths_route_to_services(cluster, namespace, expect, evidence):
    """Every ingress path routes to an existing service and one of its ports."""
    ingress = _ingress(cluster, namespace, expect, evidence)
    where = f"ingress {namespace}/{name_of(ingress)}"
    paths = [
        (rule.get("host", "*"), p)
        for rule in ingress.get("spec", {}).get("rules") or []
        for p in (rule.get("http") or {}).get("paths") or []
    ]
    evidence.require("path rules", len(paths), ">= 1", bool(paths), where=where)
    for host, path in paths:
        backend = (path.get("backend") or {}).get("service") or {}
        name, port = backend.get("name"), backend.get("port") or {}
        service = cluster.get("services", name, namespace) if name else None
        route = f"{where} {host}{path.get('path', '/')}"
        if not evidence.check(
            "backend service",
            name or "(none)",
            "an existing service",
            service is not None,
            where=route,
        ):
            continue
        assert service is not None
        ports = service.get("spec", {}).get("ports") or []
        found = any(
            p.get("name") == port.get("name")
            if port.get("name")
            else p.get("port") == port.get("number")
            for p in ports
        )
        evidence.check(
            "backend port",
            port.get("name") or port.get("number"),
            [p.get("name") or p.get("port") for p in ports],
            found,
            where=route,
        )


@pytest.mark.checklist("3.2.6")
def test_ingress_rate_limit_per_ip(cluster, namespace, expect, threshold, evidence):
    """The ingress limits each client IP to the checklist's requests per minute (100)."""
    ingress = _ingress(cluster, namespace, expect, evidence)
    want = int(threshold("3.2.6", "rate_limit_per_ip_per_minute"))
    annotations = ingress.get("metadata", {}).get("annotations") or {}
    rpm = annotations.get("nginx.ingress.kubernetes.io/limit-rpm")
    rps = annotations.get("nginx.ingress.kubernetes.io/limit-rps")
    have = int(rpm) if rpm else int(rps) * 60 if rps else None
    evidence.check(
        "requests per minute per IP",
        have if have is not None else "(no limit-rpm/limit-rps annotation)",
        want,
        have == want,
        where=f"ingress {namespace}/{name_of(ingress)}",
    )


# --- 3.2.7 / 3.2.8 / 3.2.9 scaling and resources ------------------------------------------


def _utilization(hpa: dict[str, Any], resource: str) -> int | None:
    for metric in hpa.get("spec", {}).get("metrics") or []:
        spec = metric.get("resource") or {}
        if metric.get("type") == "Resource" and spec.get("name") == resource:
            value = (spec.get("target") or {}).get("averageUtilization")
            return int(value) if value is not None else None
    return None


@pytest.mark.checklist("3.2.7")
@pytest.mark.each("role", "kubernetes", "hpas")
def test_hpa_as_checklist(cluster, namespace, expect, threshold, evidence, role):
    """Each HPA scales its deployment between the checklist's min and max on CPU and memory targets."""
    name = expect("kubernetes", "hpas")[role]
    hpa = cluster.get("horizontalpodautoscalers", name, namespace)
    where = f"hpa {namespace}/{name}"
    evidence.require("exists", hpa is not None, True, hpa is not None, where=where)
    assert hpa is not None
    spec = hpa.get("spec", {})
    target = spec.get("scaleTargetRef") or {}
    deployment = expect("kubernetes", "deployments", default={}).get(role)
    if deployment:
        evidence.check(
            "scale target",
            f"{target.get('kind')}/{target.get('name')}",
            f"Deployment/{deployment}",
            (target.get("kind"), target.get("name")) == ("Deployment", deployment),
            where=where,
        )
    for field, key in (("minReplicas", f"{role}_min"), ("maxReplicas", f"{role}_max")):
        want = int(threshold("3.2.7", key))
        evidence.check(field, spec.get(field), want, spec.get(field) == want, where=where)
    cpu, memory = (
        int(threshold("3.2.7", f"{role}_cpu_percent")),
        int(threshold("3.2.7", "memory_percent")),
    )
    evidence.check(
        "CPU target %", _utilization(hpa, "cpu"), cpu, _utilization(hpa, "cpu") == cpu, where=where
    )
    evidence.check(
        "memory target %",
        _utilization(hpa, "memory"),
        memory,
        _utilization(hpa, "memory") == memory,
        where=where,
    )


@pytest.mark.checklist("3.2.8")
@pytest.mark.each("role", "kubernetes", "pdbs")
def test_pdb_as_checklist_and_selecting_pods(cluster, namespace, expect, threshold, evidence, role):
    """Each PDB has the checklist's minAvailable/maxUnavailable and selects the workload's pods."""
    name = expect("kubernetes", "pdbs")[role]
    pdb = cluster.get("poddisruptionbudgets", name, namespace)
    where = f"pdb {namespace}/{name}"
    evidence.require("exists", pdb is not None, True, pdb is not None, where=where)
    assert pdb is not None
    spec = pdb.get("spec", {})
    for field, key in (
        ("minAvailable", f"{role}_min_available"),
        ("maxUnavailable", f"{role}_max_unavailable"),
    ):
        want = _optional_threshold(threshold, "3.2.8", key)
        if want is not None:
            evidence.check(
                field, spec.get(field), want, str(spec.get(field)) == str(want), where=where
            )
    pods = selected(cluster.list("pods", namespace), spec.get("selector"))
    evidence.check("selected pods", len(pods), ">= 1", bool(pods), where=where)
    deployment_name = expect("kubernetes", "deployments", default={}).get(role)
    deployment = cluster.get("deployments", deployment_name, namespace) if deployment_name else None
    if deployment is not None:
        own = _pods_of(cluster, deployment, namespace)
        covered = [p for p in own if selector_matches(spec.get("selector"), labels_of(p))]
        evidence.check(
            f"pods of deployment {deployment_name} covered",
            len(covered),
            len(own),
            bool(own) and len(covered) == len(own),
            where=where,
        )


@pytest.mark.checklist("3.2.9")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_container_requests_and_limits(cluster, namespace, expect, threshold, evidence, role):
    """Each workload's container requests and limits CPU and memory as the checklist says."""
    deployment = _deployment(cluster, expect, namespace, role, evidence)
    container = main_container(deployment, expect("kubernetes", "images", default={}).get(role))
    resources = container.get("resources") or {}
    where = f"deployment {namespace}/{name_of(deployment)} container {container.get('name')}"
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            want = threshold("3.2.9", f"{role}_{resource}_{kind[:-1]}")
            have = (resources.get(kind) or {}).get(resource)
            evidence.check(
                f"{resource} {kind[:-1]}",
                have if have is not None else "(unset)",
                want,
                quantities_equal(have, want),
                where=where,
            )
