"""A Kubernetes API emulator: cluster state from YAML manifests, served read-only over HTTP.

No Kubernetes API server can be installed here, so the sandbox and the plugin's own tests point
the real ``kubernetes`` client at this instead. It serves the part of the API a readiness check
reads, the way the API server does: ``/version``, discovery (``/api``, ``/apis``, resource
lists), GET of one object, LIST namespaced and cluster-wide with ``limit``/``continue``
pagination, label and field selectors, and pod logs. Every other verb gets 405 and changes
nothing. It counts the requests it gets, so tests can prove a run lists each kind once.

Where a real API server and a hand-made stand-in would differ, it behaves like the server:
- Authentication: a request without credentials is ``system:anonymous``, which may read
  ``/version``, ``/healthz``, ``/livez`` and ``/readyz`` only; everything else is 403 with the
  server's Status (``User "system:anonymous" cannot list resource "pods" in API group "" in
  the namespace "x"``). A token nobody issued is 401 with a Status body.
- RBAC: ``--identities FILE`` gives more tokens, each with a user name and RBAC rules
  (cluster-wide, or per namespace like a RoleBinding); a request its rules do not allow is the
  server's 403, kind by kind. The sandbox's own token may read everything.
- Objects carry what the server adds on create (kube_defaults): managedFields, generation,
  defaulted fields, the projected ``kube-api-access-xxxxx`` token volume and its mount on every
  container, the not-ready/unreachable tolerations, ``status.qosClass``.

Run::

    python -m pytest_vcci.sandbox.kube_emulator --port P --manifests DIR
        [--token T] [--identities FILE] [--latency-ms N] [--request-log FILE]
        [--extra-pods N] [--hang]

Manifests: every ``*.yaml``/``*.yml`` file directly in DIR (multi-document; ``kind: List``
is flattened). Missing ``uid``, ``resourceVersion`` and ``creationTimestamp`` are filled in, and
an ``ownerReferences`` entry without a ``uid`` gets its owner's uid, so manifests can name
owners without copying generated ids.

Pod logs live beside the manifests, not in the pod objects (which stay what a real cluster
returns): ``DIR/logs/<namespace>/<pod>.yaml`` maps each container name to its log text, one
log line per text line (a YAML ``|`` block). A pod or container without one has an empty log.

Test hooks, never authenticated and never counted: ``/_emulator/requests`` (counts by verb and
by "VERB /path", and ``scans``: how often a list had to be filtered from the store),
``/_emulator/reset`` (zero the counts), ``/_emulator/expire-continue?count=N`` (the next N
continue tokens presented get 410 Gone, as after an etcd compaction).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from pytest_vcci.sandbox.kube_defaults import SERVICE_ACCOUNT_MOUNT, realistic, token_volume

TOKEN_ENV = "KUBE_EMULATOR_TOKEN"  # preferred to --token: argv is visible to every local user
VERSION_INFO = {
    "major": "1",
    "minor": "29+",  # EKS reports "29+"; checks should read gitVersion
    "gitVersion": "v1.29.6-eks-a5ec690",
    "gitCommit": "a5ec690a5ce0b5fd0d2f1a96a31c3bdd5b7ed1e2",
    "gitTreeState": "clean",
    "buildDate": "2024-06-12T19:49:07Z",
    "goVersion": "go1.21.10",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_CREATED = "2025-01-06T09:00:00Z"


# --- resources --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",)),
    Resource("", "v1", "Node", "nodes", False, ("no",)),
    Resource("", "v1", "Pod", "pods", True, ("po",)),
    Resource("", "v1", "Service", "services", True, ("svc",)),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Resource("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",)),
    Resource("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",)),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",)),
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",)),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    Resource(
        "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",)
    ),
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",)),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Resource("batch", "v1", "CronJob", "cronjobs", True, ("cj",)),
)


# --- errors and responses ---------------------------------------------------------------


class ManifestError(Exception):
    """A manifest the API server would have refused; the message names the file."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class ApiError(Exception):
    """Answered as a Status object, like the API server's errors."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> Response:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = dict(self.details)
        return Response(self.code, _json(status))


def not_found(
    message: str = "the server could not find the requested resource", **details: str
) -> ApiError:
    return ApiError(404, "NotFound", message, details or None)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# --- selectors --------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement; ``!=`` and ``notin`` also match objects without the label."""

    key: str
    op: str  # "in", "notin", "exists", "!exists" ("=" is "in" with one value)
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``in (a,b)`` parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def parse_label_selector(text: str) -> list[Requirement]:
    if not text.strip():
        return []
    return [_requirement(part, text) for part in _split_top_level(text)]


def _requirement(part: str, whole: str) -> Requirement:
    if match := _SET_RE.match(part):
        values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
        return Requirement(match.group(1), match.group(2), values)
    if match := _EQ_RE.match(part):
        op = "notin" if match.group(2) == "!=" else "in"
        return Requirement(match.group(1), op, (match.group(3),))
    if match := _EXISTS_RE.match(part):
        return Requirement(match.group(2), "!exists" if match.group(1) else "exists")
    raise bad_request(f"unable to parse requirement: {part!r} in labelSelector {whole!r}")


COMMON_FIELDS = ("metadata.name", "metadata.namespace")
EXTRA_FIELDS = {"pods": ("status.phase", "spec.nodeName")}


def parse_field_selector(text: str, resource: Resource) -> list[tuple[str, bool, str]]:
    """``a=b,c!=d`` -> [(field, equal, value)]; only the fields the API server indexes."""
    supported = COMMON_FIELDS + EXTRA_FIELDS.get(resource.plural, ())
    terms = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"([A-Za-z.]+)\s*(==|!=|=)\s*(.*)", part)
        if not match:
            raise bad_request(f"invalid field selector: {part!r}")
        if match.group(1) not in supported:
            raise bad_request(f"field label not supported: {match.group(1)}")
        terms.append((match.group(1), match.group(2) != "!=", match.group(3)))
    return terms


def field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


# --- the store --------------------------------------------------------------------------


@dataclass
class Entry:
    resource: Resource
    namespace: str
    name: str
    obj: dict[str, Any]  # as a GET returns it (with kind and apiVersion)
    item: bytes = b""  # JSON as a list item, encoded once: lists of 10,000 pods stay cheap

    @property
    def labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.obj["metadata"].get("labels") or {}
        return labels


@dataclass
class Store:
    """Objects by resource, in (namespace, name) order like etcd keys. Never changes.

    ``scopes`` holds, per resource, the entries of every namespace and of the whole cluster
    (key None), built once: a page of a list is a slice of one of them, never a new scan.
    """

    logs_dir: Path | None = None
    resource_version: int = 0
    entries: dict[Resource, list[Entry]] = field(default_factory=dict)
    index: dict[tuple[Resource, str, str], Entry] = field(default_factory=dict)
    scopes: dict[tuple[Resource, str | None], list[Entry]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        objects: Iterable[tuple[str, dict[str, Any]]],
        logs_dir: Path | None = None,
        *,
        server_fields: bool = True,
    ) -> Store:
        """``objects`` are (where it came from, object) pairs; errors name the source.

        ``server_fields``: add what a real API server adds (defaults, the service-account token
        volume, managedFields, ...; see kube_defaults), as it would have on create.
        """
        store = cls(logs_dir=logs_dir)
        by_kind = {(r.group_version, r.kind): r for r in RESOURCES}
        for source, obj in objects:
            store._add(source, obj, by_kind)
        store._link_owners()
        if server_fields:
            store._add_server_fields()
        for resource, entries in store.entries.items():
            entries.sort(key=lambda e: (e.namespace, e.name))
            store.scopes[(resource, None)] = entries
            for entry in entries:
                store.scopes.setdefault((resource, entry.namespace), []).append(entry)
                # List items carry no kind/apiVersion, as the API server sends them.
                item = {k: v for k, v in entry.obj.items() if k not in ("kind", "apiVersion")}
                entry.item = _json(item)
        return store

    def _add_server_fields(self) -> None:
        accounts = {
            (e.namespace, e.name): e.obj
            for e in self.index.values()
            if e.resource.kind == "ServiceAccount"
        }
        for entry in self.index.values():
            realistic(entry.obj, accounts)

    def _add(
        self, source: str, obj: dict[str, Any], by_kind: Mapping[tuple[str, str], Resource]
    ) -> None:
        resource = by_kind.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        if resource is None:
            raise ManifestError(
                f"{source}: unknown kind {obj.get('kind')!r} "
                f"in apiVersion {obj.get('apiVersion')!r}"
            )
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{source}: {resource.kind} without metadata.name")
        _check_string_map(source, meta, "labels")
        _check_string_map(source, meta, "annotations")
        namespace = str(meta.get("namespace") or "default") if resource.namespaced else ""
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = (resource, namespace, name)
        if key in self.index:
            raise ManifestError(f"{source}: duplicate {resource.kind} {namespace}/{name}")
        self.resource_version += 1
        meta.setdefault("uid", stable_uid(f"{resource.plural}/{namespace}/{name}"))
        meta.setdefault("resourceVersion", str(1000 + self.resource_version))
        meta.setdefault("creationTimestamp", DEFAULT_CREATED)
        entry = Entry(resource, namespace, name, obj)
        self.index[key] = entry
        self.entries.setdefault(resource, []).append(entry)

    def _link_owners(self) -> None:
        by_kind = {r.kind: r for r in RESOURCES}
        for entry in self.index.values():
            for ref in entry.obj["metadata"].get("ownerReferences") or []:
                owner_kind = by_kind.get(ref.get("kind", ""))
                if owner_kind is None or "uid" in ref:
                    continue
                namespace = entry.namespace if owner_kind.namespaced else ""
                owner = self.index.get((owner_kind, namespace, str(ref.get("name"))))
                if owner is not None:
                    ref["uid"] = owner.obj["metadata"]["uid"]

    def resource(self, group: str, version: str, plural: str) -> Resource | None:
        for resource in RESOURCES:
            if (resource.group, resource.version, resource.plural) == (group, version, plural):
                return resource
        return None

    def get(self, resource: Resource, namespace: str, name: str) -> Entry | None:
        return self.index.get((resource, namespace, name))

    def count(self) -> int:
        return len(self.index)


def stable_uid(key: str) -> str:
    """A UUID-shaped uid derived from ``key``: the same on every start (uuid5 is slower)."""
    h = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _check_string_map(source: str, meta: Mapping[str, Any], key: str) -> None:
    for name, value in (meta.get(key) or {}).items():
        if not isinstance(value, str):
            raise ManifestError(
                f"{source}: metadata.{key}.{name} must be a string (quote it), got {value!r}"
            )


def _plain(node: Any) -> Any:
    """YAML timestamps -> RFC 3339 strings, as the API server would return them."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, dt.datetime):
        node = node if node.tzinfo else node.replace(tzinfo=dt.UTC)
        return node.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(node, dt.date):
        return node.isoformat()
    return node


def load_manifests(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, object) for every document of every YAML file directly in ``directory``."""
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a directory")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in files:
        try:
            documents = list(yaml.load_all(path.read_text(), Loader=loader))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from None
        for number, document in enumerate(documents, start=1):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ManifestError(f"{path}: document {number} is not a mapping")
            document = _plain(document)
            items = document.get("items", []) if document.get("kind") == "List" else [document]
            for item in items:
                yield f"{path}: document {number}", item


# --- scale test pods --------------------------------------------------------------------


def generate_pods(
    count: int,
    namespace: str = "vcci-scale",
    nodes: Sequence[str] = ("ip-10-20-1-11.eu-west-1.compute.internal",),
) -> Iterator[dict[str, Any]]:
    """``count`` realistic Running pods, made in memory for scale tests (about 2 KB of JSON
    each as generated, about 6 KB as served, with the fields the server adds at load)."""
    owner_uid = stable_uid(f"replicasets/{namespace}/vcci-load-7c9d8f6b5")
    spec = _scale_pod_spec()  # shared by every pod: nothing mutates a spec
    managed: list[dict[str, Any]] | None = None  # the same for every generated pod
    for i in range(count):
        digest = hashlib.sha256(f"{namespace}/{i}".encode()).hexdigest()
        name = f"vcci-load-7c9d8f6b5-{digest[:5]}{i:05d}"
        node = nodes[i % len(nodes)]
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "vcci-load",
                "app.kubernetes.io/part-of": "gl-vcci",
                "app.kubernetes.io/version": "2.0.0",
                "pod-template-hash": "7c9d8f6b5",
            },
            "annotations": {"vcci.greenlang.io/git-sha": digest[:40]},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "vcci-load-7c9d8f6b5",
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {**spec, "nodeName": node},
            "status": _scale_pod_status(i, digest),
        }
        if managed is None:  # computed once, as the server would for the first pod
            served = copy.deepcopy(pod)
            realistic(served, {})
            managed = served["metadata"]["managedFields"]
        metadata["managedFields"] = managed
        yield pod


def _scale_pod_spec() -> dict[str, Any]:
    token = "kube-api-access-q7k2x"
    return {
        "serviceAccountName": "vcci-worker",
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "containers": [
            {
                "name": "load",
                "image": "registry.vcci.internal/vcci-worker:2.0.0@sha256:" + "ab" * 32,
                "imagePullPolicy": "IfNotPresent",
                "env": [
                    {
                        "name": "DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "vcci-database", "key": "url"}},
                    }
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                },
                "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "readinessProbe": {
                    "httpGet": {"path": "/health/ready", "port": 8000},
                    "periodSeconds": 10,
                    "timeoutSeconds": 2,
                },
                # Mounted here, not by the admission step at load: the containers are shared
                # by every generated pod, and each pod's spec must name the volume it mounts.
                "volumeMounts": [
                    {"name": token, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
                ],
            }
        ],
        "volumes": [token_volume(token)],
    }


def _scale_pod_status(i: int, digest: str) -> dict[str, Any]:
    started = "2025-01-06T09:05:00Z"
    conditions = ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    return {
        "phase": "Running",
        "hostIP": f"10.20.{1 + i % 3}.{11 + i % 2}",
        "podIP": f"10.21.{i // 250}.{i % 250 + 2}",
        "startTime": started,
        "qosClass": "Burstable",
        "conditions": [
            {"type": c, "status": "True", "lastTransitionTime": started} for c in conditions
        ],
        "containerStatuses": [
            {
                "name": "load",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "image": "registry.vcci.internal/vcci-worker:2.0.0",
                "imageID": "registry.vcci.internal/vcci-worker@sha256:" + "ab" * 32,
                "containerID": f"containerd://{digest}",
                "state": {"running": {"startedAt": started}},
            }
        ],
    }


# --- who is asking: tokens, anonymous requests, RBAC ------------------------------------

ANONYMOUS = "system:anonymous"
# Readable without credentials on a real cluster (ClusterRole system:public-info-viewer).
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
SANDBOX_USER = "system:serviceaccount:vcci-readiness:pytest-vcci"


def _matches(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule, granted in ``namespaces`` (a RoleBinding each) or, when None,
    everywhere including cluster-scoped resources (a ClusterRoleBinding)."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]  # "pods", "pods/log", "*"
    namespaces: frozenset[str] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Rule:
        namespaces = data.get("namespaces")
        return cls(
            frozenset(data.get("verbs") or ()),
            frozenset(data.get("apiGroups") or ()),
            frozenset(data.get("resources") or ()),
            None if namespaces is None else frozenset(namespaces),
        )

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False  # a RoleBinding grants nothing at the cluster scope
        return (
            _matches(self.verbs, verb)
            and _matches(self.groups, group)
            and _matches(self.resources, resource)
        )


@dataclass(frozen=True)
class Identity:
    """Who a bearer token authenticates as, and what RBAC lets it do (None: read anything)."""

    user: str
    rules: tuple[Rule, ...] | None = None

    @property
    def anonymous(self) -> bool:
        return self.user == ANONYMOUS

    def may(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.rules is None:
            return True
        return any(r.allows(verb, group, resource, namespace) for r in self.rules)


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, ())


def load_identities(path: Path) -> dict[str, Identity]:
    """``{token: {"user": ..., "rules": [{"verbs", "apiGroups", "resources", "namespaces"?}]}}``
    (JSON): tokens with their own RBAC rules, for least-privilege tests."""
    data = json.loads(path.read_text())
    return {
        token: Identity(
            str(entry.get("user") or "system:serviceaccount:default:test"),
            None
            if entry.get("rules") is None
            else tuple(Rule.parse(r) for r in entry.get("rules") or ()),
        )
        for token, entry in data.items()
    }


def forbidden_path(identity: Identity, path: str) -> ApiError:
    """The 403 a real API server sends for a non-resource URL the user may not get."""
    return ApiError(
        403, "Forbidden", f'forbidden: User "{identity.user}" cannot get path "{path}"', {}
    )


def forbidden(
    identity: Identity,
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    name: str = "",
) -> ApiError:
    """The 403 a real API server sends when RBAC denies a resource request (same wording)."""
    plural = resource.split("/", 1)[0]
    qualified = f"{plural}.{group}" if group else plural  # schema.GroupResource, as the server says
    subject = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    details = {
        "kind": plural,
        **({"name": name} if name else {}),
        **({"group": group} if group else {}),
    }
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{identity.user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}" {scope}',
        details,
    )


# --- the emulator -----------------------------------------------------------------------


@dataclass
class Emulator:
    """Answers requests from the store; thread-safe (counters under a lock)."""

    store: Store
    token: str | None = None  # the sandbox's own token: may read everything
    latency_ms: int = 0
    request_log: Path | None = None
    expire_continue: int = 0
    identities: Mapping[str, Identity] = field(default_factory=dict)  # more tokens, with RBAC
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _by_verb: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _by_path: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    # Lists with a selector, filtered once and kept (the store never changes); scans counts
    # the times a list had to be filtered from its scope, for the tests.
    _selected: dict[tuple[Any, ...], list[Entry]] = field(default_factory=dict, init=False)
    _scans: int = field(default=0, init=False)
    # Signs continue tokens, so a forged or foreign token is refused (410) like an expired one.
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(16), init=False, repr=False)

    def handle(self, method: str, target: str, authorization: str | None) -> Response:
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if path.startswith("/_emulator/"):
            return self._control(path, query)
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        try:
            response = self._answer(method, path, query, authorization)
        except ApiError as exc:
            response = exc.response()
        except Exception as exc:  # a bug here must still answer, like the API server's 500
            traceback.print_exc()
            response = ApiError(500, "InternalError", f"emulator error: {exc}").response()
        self._record(method, path, split.query, response.status)
        return response

    def _answer(
        self, method: str, path: str, query: Mapping[str, str], authorization: str | None
    ) -> Response:
        identity = self._identify(authorization)
        if method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return self._get(path, query, identity)

    def _identify(self, authorization: str | None) -> Identity:
        """The token's identity; anonymous without one; 401 for a token nobody issued."""
        tokens = dict(self.identities)
        if self.token:
            tokens[self.token] = Identity(SANDBOX_USER)
        if not tokens:
            return Identity("system:admin")  # an emulator started without tokens is open
        if not authorization:
            return ANONYMOUS_IDENTITY
        scheme, _, presented = authorization.partition(" ")
        found = None
        for token, identity in tokens.items():  # compare every one: no timing hint
            if hmac.compare_digest(presented.strip(), token) and scheme.lower() == "bearer":
                found = identity
        if found is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return found

    # -- GET routing --

    def _get(self, path: str, query: Mapping[str, str], identity: Identity) -> Response:
        if path == "/version":
            return Response(200, _json(VERSION_INFO))
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain")
        parts = [p for p in path.split("/") if p] or [""]
        resource_request = (parts[:2] == ["api", "v1"] and len(parts) > 2) or (
            parts[0] == "apis" and len(parts) > 3
        )
        if identity.anonymous and not resource_request:
            # Discovery is for authenticated users only (system:discovery).
            raise forbidden_path(identity, path)
        if path == "/api":
            return Response(
                200,
                _json(
                    {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
                ),
            )
        if path == "/apis":
            return Response(200, _json(api_group_list()))
        if parts[:2] == ["api", "v1"]:
            return self._group_version("", "v1", parts[2:], query, identity)
        if parts[0] == "apis" and len(parts) == 2:
            return Response(200, _json(api_group(parts[1])))
        if parts[0] == "apis" and len(parts) >= 3:
            return self._group_version(parts[1], parts[2], parts[3:], query, identity)
        raise not_found()

    def _group_version(
        self,
        group: str,
        version: str,
        rest: list[str],
        query: Mapping[str, str],
        identity: Identity,
    ) -> Response:
        if not rest:
            return Response(200, _json(api_resource_list(group, version)))
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        self._authorize(identity, group, rest, namespace)
        resource = self.store.resource(group, version, rest[0])
        if resource is None or (namespace is not None and not resource.namespaced):
            raise not_found()
        tail = rest[1:]
        if not tail:
            return self._list(resource, namespace, query)
        if len(tail) == 1 and (namespace is not None or not resource.namespaced):
            return self._get_one(resource, namespace or "", tail[0])
        if len(tail) == 2 and tail[1] == "log" and resource.plural == "pods" and namespace:
            return self._pod_log(namespace, tail[0], query)
        raise not_found()

    @staticmethod
    def _authorize(
        identity: Identity, group: str, rest: Sequence[str], namespace: str | None
    ) -> None:
        """RBAC before anything else, as the API server does (403 even for what is not there)."""
        plural, name = rest[0], rest[1] if len(rest) > 1 else ""
        resource = f"{plural}/{rest[2]}" if len(rest) > 2 else plural
        verb = "get" if name else "list"
        if not identity.may(verb, group, resource, namespace):
            raise forbidden(identity, verb, group, resource, namespace, name)

    def _get_one(self, resource: Resource, namespace: str, name: str) -> Response:
        entry = self.store.get(resource, namespace, name)
        if entry is None:
            raise not_found(
                f'{resource.plural} "{name}" not found', name=name, kind=resource.plural
            )
        return Response(200, _json(entry.obj))

    # -- LIST --

    def _list(
        self, resource: Resource, namespace: str | None, query: Mapping[str, str]
    ) -> Response:
        limit = _non_negative(query, "limit")
        matching = self._matching(resource, namespace, query)
        key = hashlib.sha256(
            repr(
                (resource.plural, namespace, query.get("labelSelector"), query.get("fieldSelector"))
            ).encode()
        ).hexdigest()[:16]
        start = self._continue_offset(query.get("continue"), key)
        end = start + limit if limit else len(matching)
        page = matching[start:end]
        meta: dict[str, Any] = {"resourceVersion": str(1000 + self.store.resource_version)}
        if end < len(matching):
            meta["continue"] = self._continue_token(end, key)
            meta["remainingItemCount"] = len(matching) - end
        head = _json(
            {"kind": f"{resource.kind}List", "apiVersion": resource.group_version, "metadata": meta}
        )
        return Response(200, head[:-1] + b',"items":[' + b",".join(e.item for e in page) + b"]}")

    def _matching(
        self, resource: Resource, namespace: str | None, query: Mapping[str, str]
    ) -> list[Entry]:
        """The entries a list selects: its scope as built, or that scope filtered once by the
        selectors and kept, so every page of a list is a slice, not a scan of the store."""
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), resource)
        scope = self.store.scopes.get((resource, namespace), [])
        if not labels and not fields:
            return scope
        key = (resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        with self._lock:
            found = self._selected.get(key)
        if found is None:
            found = [
                e
                for e in scope
                if all(r.matches(e.labels) for r in labels)
                and all((field_value(e.obj, f) == v) == eq for f, eq, v in fields)
            ]
            with self._lock:
                if len(self._selected) >= 256:  # bounded: selectors are few in practice
                    self._selected.clear()
                self._selected[key] = found
                self._scans += 1
        return found

    def _continue_token(self, offset: int, key: str) -> str:
        payload = base64.urlsafe_b64encode(_json({"o": offset, "q": key})).rstrip(b"=")
        signature = hmac.new(self._secret, payload, hashlib.sha256).hexdigest()[:20]
        return f"{payload.decode()}.{signature}"

    def _continue_offset(self, token: str | None, key: str) -> int:
        """Where a continue token resumes; 410 Gone for a forged, foreign or expired one."""
        if not token:
            return 0
        with self._lock:
            expired = self.expire_continue > 0
            if expired:
                self.expire_continue -= 1
        payload, _, signature = token.partition(".")
        good = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:20]
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            valid = hmac.compare_digest(signature, good) and data["q"] == key
        except (ValueError, KeyError, TypeError):
            valid = False
        if expired or not valid:
            raise ApiError(
                410,
                "Expired",
                "The provided continue parameter is too old to "
                "display a consistent list result. You can start a new list without "
                "the continue parameter.",
            )
        return int(data["o"])

    # -- logs --

    def _pod_log(self, namespace: str, name: str, query: Mapping[str, str]) -> Response:
        pods = self.store.resource("", "v1", "pods")
        assert pods is not None
        entry = self.store.get(pods, namespace, name)
        if entry is None:
            raise not_found(f'pods "{name}" not found', name=name, kind="pods")
        container = _log_container(entry, query.get("container"))
        lines = self._log_lines(namespace, name, container)
        if "tailLines" in query:
            tail = _non_negative(query, "tailLines")
            lines = lines[len(lines) - tail :] if tail else []
        return Response(200, "".join(f"{line}\n" for line in lines).encode(), "text/plain")

    def _log_lines(self, namespace: str, pod: str, container: str) -> list[str]:
        if self.store.logs_dir is None:
            return []
        try:  # namespace and pod are known object names here, not arbitrary paths
            logs = yaml.safe_load((self.store.logs_dir / namespace / f"{pod}.yaml").read_text())
        except FileNotFoundError:
            return []
        return str((logs or {}).get(container) or "").splitlines()

    # -- counting and test hooks --

    def _record(self, method: str, path: str, query: str, status: int) -> None:
        with self._lock:
            self._by_verb[method] += 1
            self._by_path[f"{method} {path}"] += 1
            if self.request_log is not None:
                line = {
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    "method": method,
                    "path": path,
                    "query": query,
                    "status": status,
                }
                with self.request_log.open("a") as out:
                    out.write(json.dumps(line) + "\n")

    def _control(self, path: str, query: Mapping[str, str]) -> Response:
        with self._lock:
            if path == "/_emulator/requests":
                return Response(
                    200,
                    _json(
                        {
                            "total": sum(self._by_verb.values()),
                            "by_verb": dict(self._by_verb),
                            "by_path": dict(self._by_path),
                            "scans": self._scans,
                        }
                    ),
                )
            if path == "/_emulator/reset":
                self._by_verb.clear()
                self._by_path.clear()
                self._scans = 0
                return Response(200, _json({"reset": True}))
            if path == "/_emulator/expire-continue":
                self.expire_continue = int(query.get("count", "1"))
                return Response(200, _json({"expire_continue": self.expire_continue}))
        return not_found().response()


def _non_negative(query: Mapping[str, str], name: str) -> int:
    raw = query.get(name) or "0"
    if not raw.isdigit():
        raise bad_request(f"invalid {name}: {raw!r} (expected a non-negative integer)")
    return int(raw)


def _log_container(entry: Entry, wanted: str | None) -> str:
    spec = entry.obj.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    default = (entry.obj["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    container = wanted or default or (names[0] if len(names) == 1 else None)
    if container is None:
        raise bad_request(
            f"a container name must be specified for pod {entry.name}, "
            f"choose one of: [{' '.join(names)}]"
        )
    if container not in names + init:
        raise bad_request(f"container {container} is not valid for pod {entry.name}")
    return container


# --- discovery documents ----------------------------------------------------------------


def _groups() -> dict[str, str]:
    """API group -> its (only) version, in first-seen order."""
    groups: dict[str, str] = {}
    for resource in RESOURCES:
        if resource.group:
            groups.setdefault(resource.group, resource.version)
    return groups


def api_group(name: str) -> dict[str, Any]:
    version = _groups().get(name)
    if version is None:
        raise not_found()
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": [gv],
        "preferredVersion": gv,
    }


def api_group_list() -> dict[str, Any]:
    groups = [
        {k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
        for g in _groups()
    ]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        resources.append(
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "list"],
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
        )
        if r.plural == "pods":
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    if not resources:
        raise not_found()
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# --- HTTP -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # several xdist workers connect at once

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # One write per answer, sent at once: headers and body as two small writes met Nagle's
    # algorithm and the client's delayed ACK, 40 ms per keep-alive request.
    disable_nagle_algorithm = True
    wbufsize = -1  # buffered: flushed once after each request by handle_one_request
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def _serve(self, method: str) -> None:
        self._discard_body()
        response = self.server.emulator.handle(method, self.path, self.headers["Authorization"])
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)

    def _discard_body(self) -> None:
        """Read a write's body so the connection stays usable; it is never applied."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the emulator keeps its own request log (--request-log)."""


def serve_hang(port: int) -> None:
    """Accept connections and never answer: a server that is up but stuck."""
    with socket.create_server(("127.0.0.1", port), backlog=128) as server:
        print(f"kube emulator (hang): listening on 127.0.0.1:{server.getsockname()[1]}", flush=True)
        held: list[socket.socket] = []  # kept open, so clients wait for their read timeout
        while True:
            connection, _ = server.accept()
            held.append(connection)


def build_store(manifests: Path, extra_pods: int = 0, extra_namespace: str = "vcci-scale") -> Store:
    objects = list(load_manifests(manifests))
    if extra_pods:
        nodes = [o["metadata"]["name"] for _, o in objects if o.get("kind") == "Node"]
        objects.append(
            (
                "--extra-pods",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": extra_namespace},
                    "status": {"phase": "Active"},
                },
            )
        )
        generated = generate_pods(extra_pods, extra_namespace, nodes or ("node-1",))
        objects.extend(("--extra-pods", pod) for pod in generated)
    return Store.build(objects, logs_dir=manifests / "logs")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_vcci.sandbox.kube_emulator",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--manifests", type=Path, help="directory of YAML manifests")
    parser.add_argument("--token", help=f"require this bearer token (or set {TOKEN_ENV})")
    parser.add_argument(
        "--identities",
        type=Path,
        help="JSON file: more tokens, each with its user and RBAC rules",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every answer")
    parser.add_argument("--request-log", type=Path, help="append each request as a JSON line")
    parser.add_argument("--extra-pods", type=int, default=0, help="add N generated pods")
    parser.add_argument("--extra-pods-namespace", default="vcci-scale")
    parser.add_argument(
        "--expire-continue",
        type=int,
        default=0,
        help="answer the first N continue tokens with 410 Gone",
    )
    parser.add_argument("--hang", action="store_true", help="accept and never answer")
    args = parser.parse_args(argv)
    if not args.hang and args.manifests is None:
        parser.error("--manifests is required (unless --hang)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hang:
        serve_hang(args.port)
        return 0
    try:
        store = build_store(args.manifests, args.extra_pods, args.extra_pods_namespace)
        identities = load_identities(args.identities) if args.identities else {}
    except ManifestError as exc:
        print(f"kube emulator: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, AttributeError) as exc:
        print(f"kube emulator: {args.identities}: not an identities file: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(
        store,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        latency_ms=args.latency_ms,
        request_log=args.request_log,
        expire_continue=args.expire_continue,
        identities=identities,
    )
    with _Server(("127.0.0.1", args.port), emulator) as server:
        print(
            f"kube emulator: http://127.0.0.1:{server.server_port} serving {store.count()} "
            f"objects from {args.manifests}",
            flush=True,
        )
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
