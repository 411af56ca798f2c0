"""The sandbox's Kubernetes: the API emulator as a child process, serving a manifests directory.

Tests that need a broken cluster copy the staging manifests, change one file and pass the copy
as ``manifests``; everything else (token, port, request log) stays the same.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component, free_port, port_open, wait_until
from pytest_vcci.sandbox.kube_emulator import TOKEN_ENV

STAGING_MANIFESTS = Path(__file__).parent / "manifests" / "staging"
TOKEN_VAR = "VCCI_SANDBOX_KUBE_TOKEN"


@dataclass
class KubeComponent(Component):
    """A Kubernetes API emulator on 127.0.0.1, with a bearer token generated per start."""

    name: str = "kubernetes"
    manifests: Path = STAGING_MANIFESTS
    namespace: str = "vcci-staging"
    latency_ms: int = 0
    extra_pods: int = 0
    expire_continue: int = 0
    hang: bool = False  # accept connections and never answer (fail-fast tests)
    manifests_repository: bool = True  # the git repository the cluster is deployed from (8.1.3)
    # More tokens, each {"user": ..., "rules": [RBAC rules]}: least-privilege identities.
    identities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    port: int = 0
    token: str = field(default="", repr=False)

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repository(self) -> Path:
        return self.workdir / "vcci-infra"

    @property
    def request_log(self) -> Path:
        return self.log_path("kube-requests.jsonl")

    @property
    def identities_file(self) -> Path:
        return self.workdir / "kube-identities.json"

    def start(self) -> None:
        self.port = self.port or free_port()
        self.token = self.token or secrets.token_urlsafe(24)
        self.request_log.parent.mkdir(parents=True, exist_ok=True)
        if self.identities:
            self.workdir.mkdir(parents=True, exist_ok=True)
            # Tokens are secrets: a file only the owner reads, never argv.
            fd = os.open(self.identities_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({t: dict(i) for t, i in self.identities.items()}, out)
        proc = self.spawn(
            self._argv(), "kube-emulator.log", env={TOKEN_ENV: self.token}
        )  # not in argv: ps shows argv
        if self.hang:
            wait_until(
                lambda: port_open(self.port),
                "kube emulator (hang)",
                15,
                proc,
                self.log_path("kube-emulator.log"),
            )
        else:
            wait_until(self._answers, "kube emulator", 30, proc, self.log_path("kube-emulator.log"))
        if self.manifests_repository:
            write_manifests_repository(self.manifests, self.repository)

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "pytest_vcci.sandbox.kube_emulator", "--port", str(self.port)]
        if self.hang:
            return [*argv, "--hang"]
        argv += ["--manifests", str(self.manifests), "--request-log", str(self.request_log)]
        if self.latency_ms:
            argv += ["--latency-ms", str(self.latency_ms)]
        if self.extra_pods:
            argv += ["--extra-pods", str(self.extra_pods)]
        if self.expire_continue:
            argv += ["--expire-continue", str(self.expire_continue)]
        if self.identities:
            argv += ["--identities", str(self.identities_file)]
        return argv

    def _answers(self) -> bool:
        return "gitVersion" in self.get("/version")

    def get(
        self,
        path: str,
        *,
        authenticated: bool = True,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """GET a path of the emulator and decode its JSON (for tests and readiness); ``token``
        instead of the sandbox's own, or none at all with ``authenticated=False``."""
        request = urllib.request.Request(self.server + path)
        if authenticated:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def requests(self) -> dict[str, Any]:
        """The emulator's request counts: total, by_verb, by_path ("GET /api/v1/nodes")."""
        counts: dict[str, Any] = self.get("/_emulator/requests", authenticated=False)
        return counts

    def reset_requests(self) -> None:
        self.get("/_emulator/reset", authenticated=False)

    def logged_requests(self) -> list[dict[str, Any]]:
        """Every request the emulator logged, oldest first."""
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text().splitlines() if line]

    def env_tables(self) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, Any]] = {
            "kubernetes": {
                "server": self.server,
                "token": f"${{{TOKEN_VAR}}}",
                "namespace": self.namespace,
            }
        }
        if self.manifests_repository and not self.hang:
            tables["docs"] = {"manifests_repository": str(self.repository)}
        return tables

    def env_vars(self) -> dict[str, str]:
        return {TOKEN_VAR: self.token}

    def expect(self) -> dict[str, Any]:
        """Names the suites look for, for the environment file's [expect] table."""
        return {
            "kubernetes": {
                # The application's configuration (feature flags, logging, pools, sessions).
                "app_configmap": "vcci-app-config",
                # Workloads that connect to PostgreSQL and Redis (DATABASE_URL, REDIS_URL).
                "app_deployments": ["backend", "worker"],
                # Creates the upcoming emissions/audit_log partitions (2.1.4).
                "partition_maintenance_cronjob": "vcci-partition-maintenance",
                **application_expect(),
                **pre_deployment_expect(),
            }
        }


def pre_deployment_expect() -> dict[str, Any]:
    """What section 1 looks for: node labels and taints, Secrets, IRSA accounts, the registry."""
    return {
        # 1.1.1: labels every node carries, taints some node pool carries.
        "node_labels": [
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "vcci.greenlang.io/pool",
        ],
        "node_taints": ["vcci.greenlang.io/workload=worker:NoSchedule"],
        # 1.2.2: Secrets the workloads mount (only their key names are ever read).
        "secrets": [
            "vcci-database",
            "vcci-redis",
            "vcci-api-keys",
            "vcci-jwt",
            "vcci-encryption",
            "regcred-vcci",
        ],
        # 1.2.3: service accounts that assume an IAM role (IRSA).
        "irsa_service_accounts": ["vcci-backend", "vcci-worker"],
        # 1.2.5: where the application's images come from.
        "registry": "registry.vcci.internal",
    }


def application_expect() -> dict[str, Any]:
    """What sections 3 and 5 look for in the staging manifests (workloads named by role, so the
    checklist's per-role thresholds apply: backend 3 replicas, worker HPA 3-50, ...)."""
    roles = ("backend", "frontend", "worker")
    return {
        "deployments": {role: role for role in roles},
        "images": {role: f"vcci-{role}" for role in roles},
        "services": {"backend": "backend", "frontend": "frontend"},
        "hpas": {"backend": "backend", "worker": "worker"},
        "pdbs": {role: role for role in roles},
        "git_sha_label": "vcci.greenlang.io/git-sha",
        "configmaps": {
            "vcci-app-config": ["app.yaml", "settings.json"],
            "vcci-nginx-config": ["nginx.conf"],
            "vcci-logging-config": ["logging.json"],
        },
        # 3.2.3: Secret name -> the keys it must hold (key names only, values are never read).
        "secret_keys": {
            "vcci-database": ["url", "username", "password"],
            "vcci-redis": ["url", "password"],
            "vcci-api-keys": ["ecoinvent-api-key", "desnz-api-key", "epa-api-key"],
            "vcci-jwt": ["jwt-private-key", "jwt-public-key"],
            "vcci-encryption": ["aes-256-key"],
        },
        "ingress": "vcci",
        "ingress_controller": {
            "namespace": "ingress-nginx",
            "deployment": "ingress-nginx-controller",
        },
        # 5.1.1 and 5.2.1: the in-cluster Prometheus and log shipper.
        "prometheus": {"namespace": "monitoring", "statefulset": "prometheus"},
        "log_shipper": {
            "namespace": "logging",
            "daemonset": "fluent-bit",
            "configmap": "fluent-bit-config",
        },
    }


# --- the manifests repository (8.1.3) ------------------------------------------------------

# What the API server adds or runs by itself: never in a repository of manifests.
RUNTIME_KINDS = frozenset({"Pod", "ReplicaSet", "Event", "EndpointSlice", "Node", "Secret"})
RUNTIME_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
)


def write_manifests_repository(
    source: Path, repository: Path, *, committed_days_ago: float = 2.0
) -> Path:
    """A git repository of the declarative objects of ``source`` (no status, no Secrets, no
    runtime objects), committed ``committed_days_ago`` days ago: the GitOps repository the
    staging cluster was deployed from. Secrets are documented by name in SECRETS.md."""
    import datetime as dt
    import shutil
    import subprocess

    import yaml

    shutil.rmtree(repository, ignore_errors=True)
    (repository / "k8s").mkdir(parents=True)
    secrets_seen: list[str] = []
    for path in sorted(source.glob("*.yaml")):
        kept = []
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            if obj.get("kind") == "Secret":
                meta = obj.get("metadata", {})
                secrets_seen.append(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
            if obj.get("kind") in RUNTIME_KINDS:
                continue
            obj.pop("status", None)
            for key in RUNTIME_METADATA:
                obj.get("metadata", {}).pop(key, None)
            kept.append(obj)
        if kept:
            (repository / "k8s" / path.name).write_text(yaml.safe_dump_all(kept, sort_keys=False))
    (repository / "SECRETS.md").write_text(
        "# Secrets (documented, never exported)\n\nValues live in AWS Secrets Manager and are "
        "synced by external-secrets; only their names are kept here.\n\n"
        + "".join(f"- `{name}`\n" for name in secrets_seen)
    )
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=committed_days_ago)).isoformat()
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repository),
    }
    identity = ["-c", "user.name=VCCI Platform", "-c", "user.email=platform@vcci.greenlang.io"]
    for argv in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*identity, "commit", "-q", "-m", "staging: release 2.0.0"],
    ):
        subprocess.run(
            ["git", *argv], cwd=repository, env=env, check=True, capture_output=True, timeout=30
        )
    return repository
