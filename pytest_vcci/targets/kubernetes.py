"""The ``cluster`` target: a read-only, run-wide snapshot of a Kubernetes cluster.

Checks never talk to the API server themselves. They ask ``cluster.list("deployments")`` and
read plain JSON dicts (what ``kubectl get -o json`` shows). Each kind is listed ONCE per run,
across all namespaces and paginated, into a JSON file under ``run_dir/kube-snapshot`` that every
test and every xdist worker reads; a namespace is a filter over that list. The controller's
preflight lists every kind at once, in parallel, before the first test (``Cluster.prefetch``),
so workers only read files; a kind nobody prefetched is listed by the first worker to need it,
under a file lock. Pod logs are read once per container and kept beside the lists. A run costs
one LIST per kind, ``/api`` and ``/version`` once and each log at most once, whatever the number
of tests and workers.

Guards, in one place:

- GET only: the API client refuses any other verb (and exec/attach/portforward, which are
  writes in RBAC terms) before a byte leaves the process.
- Secret values never leave: ``list("secrets")`` keeps the keys and replaces every value with
  ``[REDACTED]`` before anything is cached, written or returned.
- Bounded time: every call has (connect, read) timeouts and no retries; the first use probes
  ``/api`` through the run's TargetGate. ``/api`` needs an authenticated user (``/version`` and
  the health endpoints are readable by ``system:anonymous`` on a real server), so a missing or
  rejected credential is one root cause for the whole target, like a connection-level failure
  (refused, timed out, TLS), and every later test errors at once with it.
- Permissions are established once: a LIST the credential may not make (403) is recorded in the
  snapshot; the checks that need that kind fail at once with one line and the others run, and
  ``permission_report`` says everything to grant in one message (``run.targets``, the summary).

Requests go through the client's generic ``param_serialize``/``call_api`` and come back as raw
bytes for ``json.loads``: no typed models, which would make 10,000 pods cost seconds. The
``kubernetes`` package takes about a second to import, so it is imported inside functions:
loading this module (and the plugin) stays cheap.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pytest

from pytest_vcci.targets.base import (
    MissingPermission,
    ReadOnlyViolation,
    TargetGate,
    TargetUnreachable,
)

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import KubernetesTable, Settings

TARGET: Final = "kubernetes"
ALL: Final = "*"  # namespace argument: every namespace
REDACTED: Final = "[REDACTED]"
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
DEFAULT_CONTAINER: Final = "kubectl.kubernetes.io/default-container"
MAX_LIST_RESTARTS: Final = 3
PREFETCH_THREADS: Final = 8
IN_CLUSTER_TOKEN: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# Where a check's one-line permission failure sends the user: all of it, said once.
SEE_ALL: Final = 'all the run lacks: "target permissions missing" in the summary, run.targets'
# Subresources that are writes in RBAC terms even though the client opens them with GET.
_INTRUSIVE_SUBRESOURCES = re.compile(r"/(exec|attach|portforward)(\?|$)")


# --- kinds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One resource kind: where the API serves it."""

    name: str  # the API's plural, also the snapshot file name: "horizontalpodautoscalers"
    kind: str  # "HorizontalPodAutoscaler"
    group: str  # "" for the core group
    version: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def list_path(self, scope: str) -> tuple[str, dict[str, str]]:
        """(path template, path parameters) of the list for a namespace, ALL or "" (cluster)."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and scope != ALL:
            return f"{prefix}/namespaces/{{namespace}}/{self.name}", {"namespace": scope}
        return f"{prefix}/{self.name}", {}


# The kinds the snapshot lists. Each is also known by its singular (kind.lower()) and short
# names, the way kubectl accepts them: "pods", "pod", "po"; "hpa"; "deploy".
_KIND_TABLE = """
namespaces               Namespace               v1                            no         ns
nodes                    Node                    v1                            no         no
pods                     Pod                     v1                            yes        po
services                 Service                 v1                            yes        svc
configmaps               ConfigMap               v1                            yes        cm
secrets                  Secret                  v1                            yes
serviceaccounts          ServiceAccount          v1                            yes        sa
resourcequotas           ResourceQuota           v1                            yes        quota
limitranges              LimitRange              v1                            yes        limits
persistentvolumeclaims   PersistentVolumeClaim   v1                            yes        pvc
events                   Event                   v1                            yes        ev
deployments              Deployment              apps/v1                       yes        deploy
replicasets              ReplicaSet              apps/v1                       yes        rs
daemonsets               DaemonSet               apps/v1                       yes        ds
statefulsets             StatefulSet             apps/v1                       yes        sts
endpointslices           EndpointSlice           discovery.k8s.io/v1           yes
ingresses                Ingress                 networking.k8s.io/v1          yes        ing
networkpolicies          NetworkPolicy           networking.k8s.io/v1          yes        netpol
ingressclasses           IngressClass            networking.k8s.io/v1          no
horizontalpodautoscalers HorizontalPodAutoscaler autoscaling/v2                yes        hpa
poddisruptionbudgets     PodDisruptionBudget     policy/v1                     yes        pdb
clusterroles             ClusterRole             rbac.authorization.k8s.io/v1  no
clusterrolebindings      ClusterRoleBinding      rbac.authorization.k8s.io/v1  no
roles                    Role                    rbac.authorization.k8s.io/v1  yes
rolebindings             RoleBinding             rbac.authorization.k8s.io/v1  yes
cronjobs                 CronJob                 batch/v1                      yes        cj
"""


def _kinds() -> Mapping[str, Kind]:
    table: dict[str, Kind] = {}
    for row in _KIND_TABLE.strip().splitlines():
        plural, kind, api_version, namespaced, *short_names = row.split()
        group, _, version = api_version.rpartition("/")
        entry = Kind(plural, kind, group, version, namespaced == "yes")
        for key in (plural, kind.lower(), *short_names):
            table[key] = entry
    return MappingProxyType(table)


KINDS: Final[Mapping[str, Kind]] = _kinds()


def resolve_kind(name: str) -> Kind:
    """The Kind for a friendly name or alias ("pods", "po", "hpa", "deploy")."""
    try:
        return KINDS[name.lower()]
    except KeyError:
        known = ", ".join(sorted({k.name for k in KINDS.values()}))
        raise ValueError(f"unknown Kubernetes kind {name!r} (known: {known})") from None


# --- configuration ----------------------------------------------------------------------


def check_configuration(settings: Settings) -> None:
    """What the environment file alone cannot say is wrong, checked when the plugin activates
    (before any test): a server without a credential, in_cluster outside a pod."""
    from pytest_vcci.settings import SettingsError  # loaded by now: it made ``settings``

    table = settings.table(TARGET)
    if table is None:
        return
    if table.anonymous and not table.server:
        raise SettingsError(
            settings.source,
            "[kubernetes].anonymous",
            "applies to server only (kubeconfig and in_cluster bring their own credentials)",
        )
    if table.server and table.token and table.anonymous:
        raise SettingsError(
            settings.source, "[kubernetes].anonymous", "true, but a token is given: choose one"
        )
    if table.server and not table.token and not table.anonymous:
        raise SettingsError(
            settings.source,
            "[kubernetes].server",
            'no credential to present: set token (e.g. token = "${VCCI_KUBE_TOKEN}"), or '
            "anonymous = true to connect as system:anonymous on purpose",
        )
    if table.in_cluster and not table.server:
        missing = in_cluster_missing()
        if missing:
            raise SettingsError(
                settings.source,
                "[kubernetes].in_cluster",
                f"true, but this process is not in a Kubernetes pod ({missing}); outside the "
                "cluster use server + token, or kubeconfig + context",
            )


def in_cluster_missing(
    environ: Mapping[str, str] | None = None, token: str = IN_CLUSTER_TOKEN
) -> str:
    """Why in-cluster configuration cannot work here ("" when it can): what the client needs."""
    environ = os.environ if environ is None else environ
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        if not environ.get(name):
            return f"{name} is not set"
    if not os.path.isfile(token):
        return f"no service account token at {token}"
    return ""


# --- errors -----------------------------------------------------------------------------


class KubeApiError(Exception):
    """The API server answered with an error Status; the message says where and why."""

    def __init__(self, what: str, status: int, reason: str, message: str, hint: str = "") -> None:
        self.what, self.status, self.reason, self.message = what, status, reason, message
        head = f"{what}: {status} {reason}" if status else f"{what}: {reason}"
        detail = f": {message}" if message and message != reason else ""
        super().__init__(head + detail + (f" ({hint})" if hint else ""))


class KubeAccessError(KubeApiError):
    """401, TLS, or no credential at all: every later call would fail the same way."""


_SSL_REASON = re.compile(r"\[SSL: [A-Z0-9_]+\] (.+?)(?: \(_ssl\.c:\d+\))?(?:'|\"|$)")
CREDENTIAL_HINT = "set [kubernetes].token, a kubeconfig user with credentials, or in_cluster = true"


def _api_error(what: str, status: int, reason: str, body: bytes | str | None) -> KubeApiError:
    """A one-line error from an error answer (the API server sends a Status object)."""
    if status == 0:  # the client reports TLS failures as status 0, reason "SSLError\n..."
        text = " ".join(reason.split())
        found = _SSL_REASON.search(text)
        return KubeAccessError(
            what,
            0,
            "TLS",
            found.group(1) if found else text,
            "is [kubernetes].ca_bundle the CA that signed the API server's certificate, "
            "and [kubernetes].server the name in it?",
        )
    message = ""
    try:
        answer = json.loads(body or b"{}")
        reason = str(answer.get("reason") or reason)
        message = str(answer.get("message") or "")
    except (ValueError, AttributeError, TypeError):
        pass
    if status == 401:  # bad or expired credentials fail every call alike
        return KubeAccessError(
            what,
            status,
            reason,
            message,
            "the API server rejected the credential: renew [kubernetes].token or the "
            "kubeconfig user's credentials",
        )
    # 403 is one kind RBAC does not grant (a read-only role without Secrets): that check only.
    return KubeApiError(what, status, reason, message)


def _user_in(message: str) -> str:
    """The user a 403 Status names (``User "system:serviceaccount:ns:sa" cannot ...``)."""
    found = re.search(r'User "([^"]+)"', message)
    return found.group(1) if found else ""


# --- the read-only client ---------------------------------------------------------------


def _refuse_writes(method: str, url: str) -> None:
    path = url.split("://", 1)[-1].partition("/")[2]
    if method.upper() != "GET":
        raise ReadOnlyViolation(TARGET, f"{method.upper()} /{path.split('?')[0]}")
    if _INTRUSIVE_SUBRESOURCES.search(url):
        raise ReadOnlyViolation(TARGET, f"GET /{path.split('?')[0]} (exec/attach/portforward)")


class _ReadOnlyRest:
    """Wraps the client's REST layer, the last step before a request leaves the process."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        _refuse_writes(method, url)
        return self._inner.request(method, url, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def read_only_api_client(configuration: Any) -> Any:
    """A kubernetes ApiClient that issues GET only (both at call_api and at the REST layer)."""
    from kubernetes.client import ApiClient

    class ReadOnlyApiClient(ApiClient):
        def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            _refuse_writes(method, url)
            return super().call_api(method, url, *args, **kwargs)

        def __setattr__(self, name: str, value: Any) -> None:
            # kubernetes.stream swaps call_api for a websocket (exec/attach): refuse that too.
            if name == "call_api" or (name == "rest_client" and "rest_client" in self.__dict__):
                raise ReadOnlyViolation(TARGET, f"replacing the API client's {name}")
            super().__setattr__(name, value)

    client = ReadOnlyApiClient(configuration)
    client.__dict__["rest_client"] = _ReadOnlyRest(client.rest_client)
    return client


# --- the snapshot -----------------------------------------------------------------------


@dataclass
class ListStats:
    """How one kind's list was obtained. parse_* is json.loads alone: wall time, and CPU time
    of this thread (what the parse costs, whatever else the machine is doing)."""

    kind: str
    namespace: str  # what was listed: "" (cluster-scoped), ALL, or one namespace
    source: str  # "api" (this process listed it) or "file" (another process did)
    items: int = 0
    pages: int = 0
    restarts: int = 0
    bytes: int = 0
    fetch_seconds: float = 0.0
    parse_seconds: float = 0.0
    parse_cpu_seconds: float = 0.0


def redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret with every value replaced; the keys stay, so checks can see what exists."""
    for key in ("data", "stringData"):
        if isinstance(obj.get(key), dict):
            obj[key] = dict.fromkeys(obj[key], REDACTED)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED in annotations:  # kubectl apply copies the whole Secret in here
        annotations[LAST_APPLIED] = REDACTED
    return obj


# Aliases, because inside Cluster the name "list" is the method.
Objects = list[dict[str, Any]]
Lines = list[str]


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while parsing: a list of 10,000 pods is millions of new objects,
    and the collector would rescan them all again and again (3-4x slower). JSON has no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    with _no_gc():
        data: dict[str, Any] = json.loads(raw)
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(path)  # readers never see a half-written file


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    from filelock import FileLock  # imported on first use: keeps plugin start fast

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        yield


def _scope_text(scope: str) -> str:
    return {"": "cluster-scoped", ALL: "in all namespaces"}.get(scope, f"in {scope}")


@dataclass
class KindSnapshot:
    """One kind as the run listed it: the items of ``scope`` ("" cluster-scoped, ALL, or the
    one namespace the credential may list), what was denied, or the error answer."""

    kind: Kind
    scope: str | None  # None: nothing could be listed
    items: Objects = field(default_factory=list)
    denied: dict[str, str] | None = None  # {"scope": ..., "message": the server's 403 text}
    error: dict[str, Any] | None = None  # {"what", "status", "reason", "message"}
    _by_namespace: dict[str, Objects] | None = None

    @classmethod
    def from_file(cls, kind: Kind, data: Mapping[str, Any]) -> KindSnapshot:
        return cls(kind, data.get("scope"), data["items"], data.get("denied"), data.get("error"))

    def view(self, scope: str) -> Objects:
        """The objects of ``scope``; MissingPermission or KubeApiError when they are unknown."""
        if self.error is not None:
            raise KubeApiError(**self.error)
        if self.scope in ("", ALL) and (scope in ("", ALL)):
            return self.items
        if self.scope == ALL:
            return self._namespaces().get(scope, [])
        if self.scope == scope:
            return self.items
        raise MissingPermission(TARGET, self.refusal(scope))

    def refusal(self, scope: str) -> str:
        name = self.kind.name
        if self.scope is None:
            tried = "cluster-scoped" if not self.kind.namespaced else "in any namespace"
            return f"may not list {name} ({tried}: 403 Forbidden); {SEE_ALL}"
        return (
            f"may list {name} in {self.scope} only, not {_scope_text(scope)} "
            f"(403 Forbidden); {SEE_ALL}"
        )

    def _namespaces(self) -> dict[str, Objects]:
        if self._by_namespace is None:
            grouped: dict[str, Objects] = {}
            for obj in self.items:
                grouped.setdefault((obj.get("metadata") or {}).get("namespace", ""), []).append(obj)
            self._by_namespace = grouped
        return self._by_namespace


class Cluster:
    """A read-only view of one cluster for one run. See the module docstring."""

    kinds: ClassVar[Mapping[str, Kind]] = KINDS

    def __init__(
        self,
        table: KubernetesTable,
        gate: TargetGate,
        run_dir: Path,
        *,
        base_dir: Path | None = None,
        source: str = "environment file",
    ) -> None:
        self.table = table
        self.gate = gate
        self.snapshot_dir = run_dir / "kube-snapshot"
        self.stats: dict[str, ListStats] = {}  # by kind name
        self._base_dir = base_dir or Path.cwd()
        self._source = source
        self._client: Any = None
        self._kinds: dict[str, KindSnapshot] = {}
        self._logs: dict[Path, dict[str, Any]] = {}
        self._version: dict[str, Any] | None = None
        # While pods are listed: the first Running pod of the namespace (the log permission probe).
        self._log_sample: tuple[str, str | None] | None = None

    @classmethod
    def from_context(cls, table: KubernetesTable, ctx: RunContext) -> Cluster:
        return cls(
            table, ctx.gate, ctx.run_dir, base_dir=ctx.settings.base_dir, source=ctx.settings.source
        )

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.table.connect_timeout, self.table.read_timeout)

    @property
    def namespace(self) -> str:
        return self.table.namespace

    @property
    def api_client(self) -> Any:
        """The guarded kubernetes ApiClient (GET only), for what the snapshot does not cover."""
        return self._connect()

    def _connect(self) -> Any:
        """The client, built on first use; a bad configuration raises SettingsError here."""
        if self._client is None:
            self._client = read_only_api_client(self._configuration())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- connecting --

    def _configuration(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        table = self.table
        try:
            if table.server:
                cfg.host = table.server.rstrip("/")
                if table.token:
                    cfg.api_key = {"BearerToken": table.token}
                    cfg.api_key_prefix = {"BearerToken": "Bearer"}
            elif table.in_cluster:
                config.load_incluster_config(client_configuration=cfg)
            else:
                kubeconfig = self._path(table.kubeconfig) if table.kubeconfig else None
                # persist_config=False: a token refresh must never rewrite the user's file.
                config.load_kube_config(
                    config_file=kubeconfig,
                    context=table.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
        except (config.ConfigException, OSError) as exc:
            from pytest_vcci.settings import SettingsError

            key = "kubeconfig" if not table.in_cluster else "in_cluster"
            raise SettingsError(
                self._source, f"[kubernetes].{key}", f"cannot load the cluster configuration: {exc}"
            ) from None
        if table.ca_bundle:
            cfg.ssl_ca_cert = self._path(table.ca_bundle)
        if not table.verify_tls:
            cfg.verify_ssl = False
        cfg.retries = False  # fail fast: one attempt, the timeout is the whole budget
        return cfg

    def _path(self, value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self._base_dir / path)

    def _get(self, what: str, path: str, **options: Any) -> bytes:
        """A GET under the gate: connection-level failures mark the target down for the run."""
        import urllib3

        with self.gate.watch(TARGET, urllib3.exceptions.HTTPError, KubeAccessError, OSError):
            return self._send(what, path, **options)

    def _send(
        self,
        what: str,
        path: str,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, Any]] = (),
        accept: str = "application/json",
        timeout: tuple[float, float] | None = None,
    ) -> bytes:
        """One GET through the guarded client; the raw body, or KubeApiError for an error.

        The generic ApiClient path rather than the generated methods: those validate their
        arguments with pydantic on every call (~45 ms each here, ~1 s for 20 pages of pods)
        and would then build typed models. This costs ~1 ms and returns bytes for json.loads.
        """
        from kubernetes.client.exceptions import ApiException

        client = self.api_client
        request = client.param_serialize(
            "GET",
            path,
            path_params=dict(path_params or {}),
            query_params=list(query),
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        try:
            response = client.call_api(*request, _request_timeout=timeout or self.timeout)
        except ApiException as exc:  # TLS failures
            raise _api_error(what, exc.status or 0, str(exc.reason), exc.body) from None
        try:
            data: bytes = response.read()
        finally:
            response.response.release_conn()
        if not 200 <= response.status <= 299:
            raise _api_error(what, response.status, str(response.reason), data)
        return data

    def _probe(self) -> None:
        """GET /api outside gate.watch: gate.ensure records this probe's own error.

        /api, not /version: a real API server lets system:anonymous read /version (and the
        health endpoints), so only a request that needs an authenticated user proves the
        credential. With ``anonymous = true`` the run means to be anonymous: /version then.
        """
        connect = self.table.connect_timeout
        # No longer than a connect: a server that accepts and never answers must not cost a
        # full read timeout before every test knows it is down.
        timeout = (connect, connect)
        if self.table.anonymous:
            raw = self._send("GET /version", "/version", timeout=timeout)
            _write_json(self._version_path, json.loads(raw))
            return
        try:
            self._send("GET /api", "/api", timeout=timeout)
        except KubeApiError as exc:
            if exc.status != 403:
                raise
            raise KubeAccessError(
                exc.what, exc.status, exc.reason, exc.message, CREDENTIAL_HINT
            ) from None

    def ensure(self) -> None:
        """Probe once per run (all workers); raise TargetUnreachable if the cluster is down."""
        self._connect()  # first: a configuration error is a usage error, not "cluster down"
        self.gate.ensure(TARGET, self._probe)

    # -- the whole run's reads, at once --

    def prefetch(self) -> dict[str, Any]:
        """List every kind (in parallel), read /version and one pod's log: everything a run
        reads but the other logs, and every permission it needs, before the first test.

        Returns what run.targets records beyond reachability: the permissions missing
        (``permissions``) and the kinds the server answered with an error (``unavailable``).
        """
        self.ensure()
        specs = list({k.name: k for k in KINDS.values()}.values())
        with ThreadPoolExecutor(max_workers=PREFETCH_THREADS) as pool:
            listed = list(pool.map(self._ensure_listed, specs))
            self.version()
        outcomes = {spec.name: outcome for spec, outcome in zip(specs, listed, strict=True)}
        logs = self._probe_logs()
        extra: dict[str, Any] = {}
        report = permission_report(outcomes, logs, self.namespace)
        if report is not None:
            extra["permissions"] = report
        unavailable = {
            name: str(KubeApiError(**o["error"])) for name, o in outcomes.items() if o.get("error")
        }
        if unavailable:
            extra["unavailable"] = unavailable
        return extra

    def _probe_logs(self) -> dict[str, str]:
        """Read one Running pod's log (kept for the checks): may the credential read logs?"""
        if self._log_sample is None:
            return {"status": "unknown", "namespace": self.namespace}
        name, container = self._log_sample
        try:
            self._log(self.namespace, name, container)
        except MissingPermission:
            return {"status": "denied", "namespace": self.namespace}
        except KubeApiError:
            return {"status": "unknown", "namespace": self.namespace}
        return {"status": "granted", "namespace": self.namespace}

    # -- reading --

    def version(self) -> dict[str, Any]:
        """/version of the API server (gitVersion, platform, ...), fetched once per run."""
        self.ensure()
        if self._version is None:
            data = _read_json(self._version_path)
            if data is None:
                with _locked(self._version_path):
                    data = _read_json(self._version_path)
                    if data is None:
                        data = json.loads(self._get("GET /version", "/version"))
                        _write_json(self._version_path, data)
            self._version = data
        return dict(self._version)

    @property
    def _version_path(self) -> Path:
        return self.snapshot_dir / "version.json"

    def list(self, kind: str, namespace: str | None = None) -> Objects:
        """Every object of a kind: in ``namespace`` (default: the table's), or ALL namespaces.

        Plain JSON dicts with ``kind`` and ``apiVersion`` filled in. Shared by the whole run:
        treat them as read-only. A kind the credential may not list raises MissingPermission
        (one line; the run's summary lists every missing permission).
        """
        self.ensure()
        spec = resolve_kind(kind)
        scope = "" if not spec.namespaced else (self.namespace if namespace is None else namespace)
        return list(self._kind(spec).view(scope))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object from the snapshot, or None if there is none by that name."""
        for obj in self.list(kind, namespace):
            if obj.get("metadata", {}).get("name") == name:
                return obj
        return None

    def pod_logs(
        self, name: str, namespace: str | None = None, container: str | None = None, tail: int = 100
    ) -> Lines:
        """The last ``tail`` lines of a pod's log (at most ``[kubernetes].log_lines``).

        Read once per run for each container and kept with the snapshot, so every check and
        worker that reads it shares one request. Without ``container``: the pod's default
        container (its kubectl.kubernetes.io/default-container annotation, or its only one).
        """
        self.ensure()
        ns = namespace or self.namespace
        lines = self._log(ns, name, container or self._default_container(ns, name))
        return lines[-tail:] if tail > 0 else []

    # -- the snapshot --

    def _snapshot_path(self, spec: Kind) -> Path:
        return self.snapshot_dir / f"{spec.name}.json"

    def _kind(self, spec: Kind) -> KindSnapshot:
        """The kind's snapshot: from memory, from the run's file, or listed now (then saved)."""
        if spec.name not in self._kinds:
            path = self._snapshot_path(spec)
            if not path.exists():
                self._ensure_listed(spec)
            data = _read_json(path)
            assert data is not None  # written above, or by another process before
            if spec.name not in self.stats:
                self.stats[spec.name] = ListStats(spec.name, str(data.get("scope")), "file")
                self.stats[spec.name].items = len(data["items"])
            self._kinds[spec.name] = KindSnapshot.from_file(spec, data)
        return self._kinds[spec.name]

    def _ensure_listed(self, spec: Kind) -> dict[str, Any]:
        """List the kind into its file unless someone did; the outcome (without the items)."""
        path = self._snapshot_path(spec)
        with _locked(path):
            if path.exists():  # another worker listed it meanwhile
                data = _read_json(path) or {}
                return {k: v for k, v in data.items() if k != "items"}
            return self._list_and_save(spec, path)

    def _list_and_save(self, spec: Kind, path: Path) -> dict[str, Any]:
        """One LIST of the kind across all namespaces. When RBAC refuses that, the namespace
        of the run alone (a RoleBinding may grant just that): one more LIST, only then."""
        scopes = [ALL, self.namespace] if spec.namespaced else [""]
        denied: dict[str, str] | None = None
        for scope in scopes:
            header: dict[str, Any] = {"kind": spec.name, "scope": scope, "listed_at": time.time()}
            if denied:
                header["denied"] = denied
            try:
                self.stats[spec.name] = self._list_to_file(spec, scope, path, header)
                return header
            except KubeApiError as exc:
                if exc.status != 403:
                    outcome = {"kind": spec.name, "scope": None, "error": _error_record(exc)}
                    _write_json(path, {**outcome, "items": []})
                    return outcome
                denied = denied or {"scope": scope, "message": exc.message}
        refused: dict[str, Any] = {"kind": spec.name, "scope": None, "denied": denied or {}}
        _write_json(path, {**refused, "items": []})
        return refused

    def _list_to_file(
        self, spec: Kind, scope: str, path: Path, header: Mapping[str, Any]
    ) -> ListStats:
        """All pages of one list, written to the file page by page (never all in memory);
        restarted from scratch when the continue token expires (410)."""
        stats = ListStats(spec.name, scope, "api")
        tmp = path.with_name(path.name + ".tmp")
        opening = json.dumps(header, separators=(",", ":"))[:-1] + ',"items":['
        for _ in range(MAX_LIST_RESTARTS + 1):
            count = 0
            try:
                with tmp.open("w", encoding="utf-8") as out:
                    out.write(opening)
                    for page in self._pages(spec, scope, stats):
                        if page:
                            text = json.dumps(page, separators=(",", ":"))[1:-1]
                            out.write(("," if count else "") + text)
                            count += len(page)
                    out.write("]}")
            except KubeApiError as exc:
                if exc.status != 410:
                    tmp.unlink(missing_ok=True)
                    raise
                stats.restarts += 1
                continue
            tmp.replace(path)  # readers never see a half-written list
            stats.items = count
            return stats
        tmp.unlink(missing_ok=True)
        raise KubeApiError(
            f"LIST {spec.name} {_scope_text(scope)}",
            410,
            "Expired",
            f"the list expired {stats.restarts} times in a row",
        )

    def _pages(self, spec: Kind, scope: str, stats: ListStats) -> Iterator[Objects]:
        path, path_params = spec.list_path(scope)
        what = f"LIST {spec.name} {_scope_text(scope)}"
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.table.page_size)]
            if token:
                query.append(("continue", token))
            started = time.perf_counter()
            raw = self._get(what, path, path_params=path_params, query=query)
            parsed, parsed_cpu = time.perf_counter(), time.thread_time()
            with _no_gc():
                page = json.loads(raw)
            stats.parse_seconds += time.perf_counter() - parsed
            stats.parse_cpu_seconds += time.thread_time() - parsed_cpu
            stats.fetch_seconds += parsed - started
            stats.pages += 1
            stats.bytes += len(raw)
            items = page.get("items") or []
            for item in items:
                _as_listed(spec, item)
            if spec.name == "pods" and self._log_sample is None:
                self._log_sample = _running_pod(items, self.namespace)
            yield items
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    # -- logs --

    def _default_container(self, namespace: str, pod: str) -> str | None:
        try:
            found = self.get("pods", pod, namespace)
        except (MissingPermission, KubeApiError):
            return None  # let the API server choose (or say a container must be named)
        return _default_container(found) if found else None

    def _log_path(self, namespace: str, pod: str, container: str | None) -> Path:
        safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in (namespace, pod, container or "_")]
        return self.snapshot_dir / "logs" / safe[0] / f"{safe[1]}.{safe[2]}.json"

    def _log(self, namespace: str, pod: str, container: str | None) -> Lines:
        path = self._log_path(namespace, pod, container)
        record = self._logs.get(path) or _read_json(path)
        if record is None:
            with _locked(path):
                record = _read_json(path)  # another worker may have read it meanwhile
                if record is None:
                    record = self._fetch_log(namespace, pod, container)
                    _write_json(path, record)
        self._logs[path] = record
        error = record.get("error")
        if error is None:
            lines: Lines = record["lines"]
            return lines
        if error["status"] == 403:
            raise MissingPermission(
                TARGET, f"may not get pods/log in {namespace} (403 Forbidden); {SEE_ALL}"
            )
        raise KubeApiError(**error)

    def _fetch_log(self, namespace: str, pod: str, container: str | None) -> dict[str, Any]:
        what = f"GET log of pod {namespace}/{pod}" + (
            f" container {container}" if container else ""
        )
        query: list[tuple[str, Any]] = [("tailLines", self.table.log_lines)]
        if container:
            query.append(("container", container))
        try:
            raw = self._get(
                what,
                "/api/v1/namespaces/{namespace}/pods/{name}/log",
                path_params={"namespace": namespace, "name": pod},
                query=query,
                accept="*/*",
            )
        except KubeApiError as exc:  # kept too: asked again, the answer would be the same
            return {"error": _error_record(exc)}
        return {"lines": raw.decode("utf-8", errors="replace").splitlines()}


def _error_record(exc: KubeApiError) -> dict[str, Any]:
    """An error answer as the snapshot keeps it (KubeApiError(**record) raises it again)."""
    return {"what": exc.what, "status": exc.status, "reason": exc.reason, "message": exc.message}


def _as_listed(spec: Kind, item: dict[str, Any]) -> None:
    """A list item as checks read it: kind and apiVersion filled in (the API server leaves
    them out of list items), managedFields dropped (no check reads them; they are about half
    of a real object), a Secret's values redacted."""
    item.setdefault("kind", spec.kind)
    item.setdefault("apiVersion", spec.api_version)
    meta = item.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if spec.kind == "Secret":
        redact_secret(item)


def _running_pod(items: Objects, namespace: str) -> tuple[str, str | None] | None:
    for pod in items:
        meta = pod.get("metadata") or {}
        if (
            meta.get("namespace") == namespace
            and (pod.get("status") or {}).get("phase") == "Running"
        ):
            return str(meta.get("name")), _default_container(pod)
    return None


def _default_container(pod: Mapping[str, Any]) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DEFAULT_CONTAINER):
        return str(annotations[DEFAULT_CONTAINER])
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("name")) if len(containers) == 1 else None


# --- permissions ------------------------------------------------------------------------


def permission_report(
    outcomes: Mapping[str, Mapping[str, Any]], logs: Mapping[str, str], namespace: str
) -> dict[str, Any] | None:
    """Everything the run may not read, in one message naming the verbs and resources to grant.

    ``outcomes``: each kind's list outcome (``scope`` listed, ``denied``); ``logs``: the pod log
    probe's ``status``. None when nothing is missing.
    """
    cluster_scoped, everywhere, partial, users = [], [], [], []
    for name, outcome in outcomes.items():
        denied = outcome.get("denied")
        if not denied:
            continue
        users.append(_user_in(str(denied.get("message", ""))))
        if not KINDS[name].namespaced:
            cluster_scoped.append(name)
        elif outcome.get("scope") is None:
            everywhere.append(name)
        else:
            partial.append(name)
    grants = []
    if everywhere:
        grants.append(f"list on {', '.join(everywhere)} in all namespaces")
    if partial:
        grants.append(
            f"list on {', '.join(partial)} in all namespaces (only {namespace} is granted)"
        )
    if cluster_scoped:
        grants.append(f"list on {', '.join(cluster_scoped)} (cluster-scoped)")
    if logs.get("status") == "denied":
        grants.append(f"get on pods/log in {logs.get('namespace', namespace)}")
    if not grants:
        return None
    user = next((u for u in users if u), "the credential")
    missing = [
        *(f"list {n} (all namespaces)" for n in [*everywhere, *partial]),
        *(f"list {n} (cluster-scoped)" for n in cluster_scoped),
        *(["get pods/log"] if logs.get("status") == "denied" else []),
    ]
    message = (
        f"{user} may not read everything the checks need: grant {'; '.join(grants)} "
        "(deploy/clusterrole.yaml grants exactly what a run needs)"
    )
    return {"user": user, "missing": missing, "message": message}


# --- fixture ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(vcci_context: RunContext) -> Iterator[Cluster]:
    """The run's cluster (the [kubernetes] table); skips when that table is absent."""
    table = vcci_context.target_table(TARGET)
    target = Cluster.from_context(table, vcci_context)
    try:
        target.ensure()
        yield target
    finally:
        target.close()


__all__ = [
    "ALL",
    "KINDS",
    "Cluster",
    "Kind",
    "KindSnapshot",
    "KubeAccessError",
    "KubeApiError",
    "ListStats",
    "MissingPermission",
    "ReadOnlyViolation",
    "TargetUnreachable",
    "check_configuration",
    "cluster",
    "permission_report",
    "read_only_api_client",
    "redact_secret",
    "resolve_kind",
]
