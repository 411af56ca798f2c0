"""The ``cluster`` target: a read-only, run-wide snapshot of a Kubernetes cluster.

Checks never talk to the API server themselves. They ask ``cluster.list("deployments")`` and
read plain JSON dicts (what ``kubectl get -o json`` shows). Each (kind, namespace) is listed
once per run, paginated, and shared by every test and every xdist worker through a JSON file
under ``run_dir/kube-snapshot`` (a file lock per list, so two workers never both list). The cost
of a run grows with the number of kinds, not with tests times objects.

Guards, in one place:

- GET only: the API client refuses any other verb (and exec/attach/portforward, which are
  writes in RBAC terms) before a byte leaves the process.
- Secret values never leave: ``list("secrets")`` keeps the keys and replaces every value with
  ``[REDACTED]`` before anything is cached, written or returned.
- Bounded time: every call has (connect, read) timeouts and no retries; the first use probes
  ``/version`` through the run's TargetGate, and a connection-level failure (refused, timed
  out, 401, TLS) marks the target down so every later test errors at once with that cause.

Requests go through the client's generic ``param_serialize``/``call_api`` and come back as raw
bytes for ``json.loads``: no typed models, which would make 10,000 pods cost seconds. The
``kubernetes`` package takes about a second to import, so it is imported inside functions:
loading this module (and the plugin) stays cheap.
"""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pytest

from pytest_vcci.targets.base import ReadOnlyViolation, TargetGate, TargetUnreachable

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import KubernetesTable

TARGET: Final = "kubernetes"
ALL: Final = "*"  # namespace argument: every namespace
REDACTED: Final = "[REDACTED]"
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
MAX_LIST_RESTARTS: Final = 3
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


# --- errors -----------------------------------------------------------------------------


class KubeApiError(Exception):
    """The API server answered with an error Status; the message says where and why."""

    def __init__(self, what: str, status: int, reason: str, message: str) -> None:
        self.status, self.reason = status, reason
        detail = f": {message}" if message and message != reason else ""
        super().__init__(f"{what}: {status} {reason}{detail}")


class KubeAccessError(KubeApiError):
    """401 or a TLS failure: every later call would fail the same way."""


def _api_error(what: str, status: int, reason: str, body: bytes | str | None) -> KubeApiError:
    """A one-line error from an error answer (the API server sends a Status object)."""
    if status == 0:  # the client reports TLS failures as status 0, reason "SSLError\n..."
        return KubeAccessError(what, 0, "TLS error", " ".join(reason.split()))
    message = ""
    try:
        answer = json.loads(body or b"{}")
        reason = str(answer.get("reason") or reason)
        message = str(answer.get("message") or "")
    except (ValueError, AttributeError, TypeError):
        pass
    # 401 (bad or expired credentials) fails every call alike; 403 is one kind RBAC does not
    # grant (a read-only role without Secrets), so only that check fails.
    cls = KubeAccessError if status == 401 else KubeApiError
    return cls(what, status, reason, message)


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
    """How one (kind, namespace) list was obtained. parse_* is json.loads alone: wall time,
    and CPU time of this thread (what the parse costs, whatever else the machine is doing)."""

    kind: str
    namespace: str
    source: str  # "api", "file" (another worker listed it) or "all-namespaces"
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


def _read_snapshot(path: Path) -> Objects | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    with _no_gc():
        data = json.loads(raw)
    items: Objects = data["items"]
    return items


def _write_snapshot(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(path)  # readers never see a half-written file


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
        self.stats: dict[tuple[str, str], ListStats] = {}
        self._base_dir = base_dir or Path.cwd()
        self._source = source
        self._client: Any = None
        self._memory: dict[tuple[str, str], Objects] = {}
        self._version: dict[str, Any] | None = None

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
        """GET /version outside gate.watch: gate.ensure records this probe's own error."""
        connect = self.table.connect_timeout
        # No longer than a connect: a server that accepts and never answers must not cost a
        # full read timeout before every test knows it is down.
        raw = self._send("GET /version", "/version", timeout=(connect, connect))
        self._version = json.loads(raw)

    def ensure(self) -> None:
        """Probe once per run (all workers); raise TargetUnreachable if the cluster is down."""
        self._connect()  # first: a configuration error is a usage error, not "cluster down"
        self.gate.ensure(TARGET, self._probe)

    # -- reading --

    def version(self) -> dict[str, Any]:
        """/version of the API server (gitVersion, platform, ...), fetched once."""
        self.ensure()
        if self._version is None:
            self._version = json.loads(self._get("GET /version", "/version"))
        return dict(self._version)

    def list(self, kind: str, namespace: str | None = None) -> Objects:
        """Every object of a kind: in ``namespace`` (default: the table's), or ALL namespaces.

        Plain JSON dicts with ``kind`` and ``apiVersion`` filled in. Shared by the whole run:
        treat them as read-only.
        """
        self.ensure()
        spec = resolve_kind(kind)
        scope = self._scope(spec, namespace)
        key = (spec.name, scope)
        if key not in self._memory:
            items = self._from_all_namespaces(spec, scope)
            self._memory[key] = items if items is not None else self._snapshot(spec, scope)
        return list(self._memory[key])

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object from the snapshot, or None if there is none by that name."""
        for obj in self.list(kind, namespace):
            if obj.get("metadata", {}).get("name") == name:
                return obj
        return None

    def pod_logs(
        self, name: str, namespace: str | None = None, container: str | None = None, tail: int = 100
    ) -> Lines:
        """The last ``tail`` lines of a pod's log (fetched each time, never cached)."""
        self.ensure()
        ns = namespace or self.namespace
        query: list[tuple[str, Any]] = [("tailLines", tail)]
        if container:
            query.append(("container", container))
        raw = self._get(
            f"GET log of pod {ns}/{name}",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            path_params={"namespace": ns, "name": name},
            query=query,
            accept="*/*",
        )
        return raw.decode("utf-8", errors="replace").splitlines()

    # -- the snapshot --

    def _scope(self, spec: Kind, namespace: str | None) -> str:
        if not spec.namespaced:
            return ""
        return self.namespace if namespace is None else namespace

    def _snapshot_path(self, spec: Kind, scope: str) -> Path:
        label = {"": "_cluster", ALL: "_all"}.get(scope, scope)
        return self.snapshot_dir / f"{spec.name}.{label}.json"

    def _from_all_namespaces(self, spec: Kind, scope: str) -> Objects | None:
        """A namespace's objects, filtered from an all-namespaces list that already exists."""
        if scope in ("", ALL):
            return None
        everything = self._memory.get((spec.name, ALL))
        if everything is None:
            everything = _read_snapshot(self._snapshot_path(spec, ALL))
        if everything is None:
            return None
        self.stats[(spec.name, scope)] = ListStats(spec.name, scope, "all-namespaces")
        return [o for o in everything if o.get("metadata", {}).get("namespace") == scope]

    def _snapshot(self, spec: Kind, scope: str) -> Objects:
        """The list from the run's snapshot file; the first worker to need it lists it."""
        from filelock import FileLock

        path = self._snapshot_path(spec, scope)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        items = _read_snapshot(path)
        if items is None:
            with FileLock(f"{path}.lock"):
                items = _read_snapshot(path)  # another worker may have listed it meanwhile
                if items is None:
                    return self._list_and_save(spec, scope, path)
        self.stats[(spec.name, scope)] = ListStats(spec.name, scope, "file", len(items))
        return items

    def _list_and_save(self, spec: Kind, scope: str, path: Path) -> Objects:
        items, stats = self._list_from_api(spec, scope)
        snapshot = {"kind": spec.name, "namespace": scope, "listed_at": time.time()}
        _write_snapshot(path, {**snapshot, "items": items})
        self.stats[(spec.name, scope)] = stats
        return items

    def _list_from_api(self, spec: Kind, scope: str) -> tuple[Objects, ListStats]:
        """All pages of one list; restart from scratch when the continue token expires (410)."""
        stats = ListStats(spec.name, scope, "api")
        for _ in range(MAX_LIST_RESTARTS + 1):
            try:
                items = list(self._pages(spec, scope, stats))
            except KubeApiError as exc:
                if exc.status != 410:
                    raise
                stats.restarts += 1
                continue
            stats.items = len(items)
            return items, stats
        raise KubeApiError(
            f"LIST {spec.name} {scope or 'cluster'}",
            410,
            "Expired",
            f"the list expired {stats.restarts} times in a row",
        )

    def _pages(self, spec: Kind, scope: str, stats: ListStats) -> Iterator[dict[str, Any]]:
        path, path_params = spec.list_path(scope)
        what = f"LIST {spec.name} in {scope}" if scope else f"LIST {spec.name}"
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
            for item in page.get("items") or []:
                # The API server leaves these out of list items; checks want them.
                item.setdefault("kind", spec.kind)
                item.setdefault("apiVersion", spec.api_version)
                yield redact_secret(item) if spec.kind == "Secret" else item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return


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
    "KubeAccessError",
    "KubeApiError",
    "ListStats",
    "ReadOnlyViolation",
    "TargetUnreachable",
    "cluster",
    "read_only_api_client",
    "redact_secret",
    "resolve_kind",
]
