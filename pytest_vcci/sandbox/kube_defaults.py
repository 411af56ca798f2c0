"""What a real API server adds to an object it stores, so the emulator serves real-shaped objects.

Hand-written manifests are about half the size of what ``kubectl get -o json`` shows for the
same objects: the API server fills in defaults (``imagePullPolicy``, ``dnsPolicy``,
``terminationMessagePath``, a workload's ``strategy`` ...), admission plugins add to every Pod
(the projected ``kube-api-access-xxxxx`` service-account token volume and its mount on every
container, the ``not-ready``/``unreachable`` tolerations, ``priority``), and every object gets
``managedFields``, ``generation`` and a computed ``status.qosClass``. Checks must read real
objects right (a check that counts volumes must not be fooled by the token volume), so the
emulator applies these at load, never overriding what a manifest sets.

Sources: k8s.io/kubernetes pkg/apis/core/v1/defaults.go and apps/v1, batch/v1 defaults;
plugin/pkg/admission/serviceaccount (token volume), defaulttolerationseconds, priority.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOLERATION_SECONDS = 300
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand

# Kinds whose spec changes bump metadata.generation (the API server sets it to 1 on create).
GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "IngressClass",
        "NetworkPolicy",
    }
)
# Who writes what, as managedFields say it on a cluster deployed with kubectl apply.
_STATUS_MANAGERS = {"Pod": "kubelet", "Node": "kubelet", "Namespace": "kube-controller-manager"}
_SPEC_MANAGERS = {
    "Pod": "kube-controller-manager",  # pods are created by the ReplicaSet/DaemonSet controllers
    "ReplicaSet": "kube-controller-manager",
    "EndpointSlice": "kube-controller-manager",
    "Event": "kubelet",
    "Node": "kubelet",
}


def realistic(obj: dict[str, Any], service_accounts: Mapping[tuple[str, str], Any]) -> None:
    """Add, in place, what the API server would have added to ``obj`` when it was created.

    ``service_accounts`` maps (namespace, name) to ServiceAccount objects: a Pod's token volume
    depends on its account's ``automountServiceAccountToken``.
    """
    kind = str(obj.get("kind"))
    meta = obj.setdefault("metadata", {})
    if kind in GENERATION_KINDS:
        meta.setdefault("generation", 1)
    default = _KIND_DEFAULTS.get(kind)
    if default is not None:
        default(obj)
    if kind == "Pod":
        _pod_admission(obj, service_accounts)
    if "managedFields" not in meta:
        meta["managedFields"] = managed_fields(obj)


# --- pod specs (Pods and every workload's template) --------------------------------------


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if "serviceAccountName" in spec:  # the deprecated alias, still filled in by the server
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        _container(container)
    for volume in spec.get("volumes") or []:
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def _container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("imagePullPolicy", _pull_policy(str(container.get("image", ""))))
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(probe), dict):
            _probe(container[probe])


def _pull_policy(image: str) -> str:
    """Always for ``:latest`` or no tag, else IfNotPresent (a digest counts as pinned)."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _probe(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")


def _template(obj: dict[str, Any], *path: str) -> None:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        _pod_spec(node)


# --- per kind -----------------------------------------------------------------------------


def _deployment(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    )
    _template(obj, "spec", "template", "spec")


def _replica_set(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _template(obj, "spec", "template", "spec")


def _daemon_set(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault(
        "updateStrategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    )
    _template(obj, "spec", "template", "spec")


def _stateful_set(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault(
        "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
    )
    for claim in spec.get("volumeClaimTemplates") or []:
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        claim.setdefault("status", {"phase": "Pending"})
    _template(obj, "spec", "template", "spec")


def _cron_job(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    _template(obj, "spec", "jobTemplate", "spec", "template", "spec")


def _service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if "clusterIP" not in spec:
        spec["clusterIP"] = _cluster_ip(obj)
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _cluster_ip(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    digest = hashlib.sha256(f"{meta.get('namespace')}/{meta.get('name')}".encode()).digest()
    return f"172.20.{digest[0]}.{1 + digest[1] % 254}"


def _namespace(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    meta.setdefault("labels", {}).setdefault("kubernetes.io/metadata.name", meta.get("name"))
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _network_policy(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _claim(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")


def _pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("serviceAccountName", "default")
    _pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    status = obj.get("status")
    if isinstance(status, dict):
        status.setdefault("qosClass", qos_class(spec))


_KIND_DEFAULTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _replica_set,
    "DaemonSet": _daemon_set,
    "StatefulSet": _stateful_set,
    "CronJob": _cron_job,
    "Service": _service,
    "Namespace": _namespace,
    "NetworkPolicy": _network_policy,
    "PersistentVolumeClaim": _claim,
    "Secret": _secret,
}


# --- admission: what every Pod gets on create ---------------------------------------------


def _pod_admission(obj: dict[str, Any], service_accounts: Mapping[tuple[str, str], Any]) -> None:
    spec = obj["spec"]
    namespace = str(obj["metadata"].get("namespace", "default"))
    _default_tolerations(spec)
    account = service_accounts.get((namespace, spec["serviceAccountName"])) or {}
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken", True)
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    mounted = any(
        m.get("mountPath") == SERVICE_ACCOUNT_MOUNT
        for c in containers
        for m in c.get("volumeMounts") or []
    )
    if automount is False or mounted:
        return
    name = f"kube-api-access-{_suffix(str(obj['metadata'].get('uid') or obj['metadata']['name']))}"
    spec["volumes"] = [*(spec.get("volumes") or []), token_volume(name)]
    for container in containers:
        mount = {"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
        container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]


def token_volume(name: str) -> dict[str, Any]:
    """The projected volume the ServiceAccount admission plugin adds (Kubernetes 1.22+)."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace",
                                },
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def _suffix(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:5])


def _default_tolerations(spec: dict[str, Any]) -> None:
    """DefaultTolerationSeconds: tolerate not-ready/unreachable nodes for 300 s, unless the pod
    already tolerates them (a toleration of that key, or of every key)."""
    tolerations = list(spec.get("tolerations") or [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        covered = any(
            (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        )
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed (every container's requests == limits for cpu and memory), BestEffort (none
    set anywhere), else Burstable: the kubelet's rule."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


# --- managedFields ------------------------------------------------------------------------


def managed_fields(
    obj: Mapping[str, Any], memo: dict[int, Any] | None = None
) -> list[dict[str, Any]]:
    """Server-side apply's field ownership, as the API server records it: one entry for the
    writer of metadata and spec (kubectl, or the controller that made the object) and, when
    there is a status, one for the status subresource."""
    kind = str(obj.get("kind"))
    meta = obj.get("metadata") or {}
    when = str(meta.get("creationTimestamp") or "")
    api_version = str(obj.get("apiVersion"))
    owned = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    tracked_meta = {
        k: meta[k] for k in ("labels", "annotations", "ownerReferences", "finalizers") if k in meta
    }
    main: dict[str, Any] = {}
    if tracked_meta:
        main["f:metadata"] = _fields(tracked_meta)
    main.update({f"f:{k}": _fields(v) for k, v in owned.items()})
    entries = [
        {
            "manager": _SPEC_MANAGERS.get(kind, "kubectl-client-side-apply"),
            "operation": "Update",
            "apiVersion": api_version,
            "time": when,
            "fieldsType": "FieldsV1",
            "fieldsV1": main,
        }
    ]
    if isinstance(obj.get("status"), dict) and obj["status"]:
        entries.append(
            {
                "manager": _STATUS_MANAGERS.get(kind, "kube-controller-manager"),
                "operation": "Update",
                "apiVersion": api_version,
                "time": when,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": _fields(obj["status"])},
                "subresource": "status",
            }
        )
    return entries


# The keys a list of objects is merged by (the +listMapKey of the Kubernetes API types).
_LIST_KEYS = ("uid", "name", "type", "mountPath", "ip", "containerPort", "key", "port")


def _json_value(value: Any) -> str:
    if isinstance(value, str) and '"' not in value and "\\" not in value:
        return f'"{value}"'  # the common case, without json.dumps (50,000 pods load faster)
    return json.dumps(value)


def _fields(node: Any) -> Any:
    """A FieldsV1 set: ``{"f:key": ...}`` for maps, ``{"k:{...}": ...}`` for keyed lists."""
    if isinstance(node, dict):
        if not node:
            return {}
        fields: dict[str, Any] = {".": {}}
        fields.update({f"f:{k}": _fields(v) for k, v in node.items()})
        return fields
    if isinstance(node, list) and node and all(isinstance(i, dict) for i in node):
        keyed: dict[str, Any] = {}
        for item in node:
            key = next((k for k in _LIST_KEYS if k in item), None)
            if key is None:
                return {}  # an atomic list: owned as a whole
            selector = f'"{key}":{_json_value(item[key])}'
            if key == "containerPort":
                selector += f',"protocol":{_json_value(item.get("protocol", "TCP"))}'
            keyed[f"k:{{{selector}}}"] = _fields(item)
        return keyed
    return {}


__all__ = ["SERVICE_ACCOUNT_MOUNT", "managed_fields", "qos_class", "realistic", "token_volume"]
