"""The monitoring targets: Prometheus, Alertmanager and Grafana over their HTTP APIs.

Read-only by construction: every request is a GET (Prometheus's query endpoints accept GET
too). Every request has a connect and a read timeout; a connection that fails marks the target
down for the run (fail fast). A non-2xx or non-JSON answer raises :class:`MonitoringError`
naming the URL (never the token, which travels in a header) and the status.

``requests`` and ``yaml`` are imported on first use: this module is loaded into every pytest run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from pytest_vcci.targets.base import TargetUnreachable, one_line

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import HttpTable
    from pytest_vcci.targets.base import TargetGate

Value = str | int | float | bool
Params = Mapping[str, Value | Sequence[str] | None]


class MonitoringError(Exception):
    """A monitoring API answered, but not with what its API promises."""

    def __init__(self, target: str, url: str, status: int | None, detail: str) -> None:
        self.target = target
        self.url = url
        self.status = status
        where = f"{url} answered HTTP {status}" if status is not None else url
        super().__init__(f"{target}: {where}: {detail}")


def _safe_url(url: str) -> str:
    """A URL without user info or query string (where a password or token could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _connection_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.ConnectionError, requests.Timeout)


class HttpTarget:
    """GET-only JSON client for one monitoring service, from an ``HttpTable``."""

    kind = "http"

    def __init__(
        self, table: HttpTable, gate: TargetGate | None = None, name: str | None = None
    ) -> None:
        self.table = table
        self.gate = gate
        self.name = name or self.kind
        self._http: Any = None
        self._probing = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={_safe_url(self.table.url)!r})"

    def describe(self) -> dict[str, Any]:
        """What this target is, for evidence: never a token."""
        table = self.table
        return {
            "url": _safe_url(table.url),
            "auth": "bearer" if self._token() else "none",
            "ca_bundle": table.ca_bundle,
            "verify_tls": table.verify_tls,
            "connect_timeout": table.connect_timeout,
            "read_timeout": table.read_timeout,
        }

    def _token(self) -> str | None:
        # Grafana API keys and service-account tokens are bearer tokens too.
        return self.table.token or self.table.api_key

    def _session(self) -> Any:
        if self._http is None:
            import requests

            session = requests.Session()
            session.headers["Accept"] = "application/json"
            session.headers["User-Agent"] = "pytest-vcci"
            token = self._token()
            if token:
                session.headers["Authorization"] = f"Bearer {token}"
            session.verify = self.table.ca_bundle or self.table.verify_tls
            session.trust_env = False  # no proxy from the environment: talk to the target
            self._http = session
        return self._http

    def url(self, path: str) -> str:
        return self.table.url.rstrip("/") + "/" + path.lstrip("/")

    def get(self, path: str, params: Params | None = None) -> Any:
        """GET ``path`` and return the decoded JSON body."""
        url = self.url(path)
        # The reachability probe waits no longer than a connect: a server that accepts and
        # never answers must not cost a full read timeout before every test knows it is down.
        read = self.table.connect_timeout if self._probing else self.table.read_timeout
        timeout = (self.table.connect_timeout, read)
        with self.watch():
            response = self._session().get(url, params=_clean(params), timeout=timeout)
        if not 200 <= response.status_code < 300:
            raise MonitoringError(
                self.name, _safe_url(url), response.status_code, _brief(response.text)
            )
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise MonitoringError(
                self.name,
                _safe_url(url),
                response.status_code,
                f"not JSON ({kind}): {_brief(response.text)}",
            ) from None

    def anonymous_status(self, path: str) -> int:
        """The HTTP status of a GET of ``path`` sent without credentials (is it refused?)."""
        import requests

        url = self.url(path)
        with self.watch():
            response = requests.get(
                url,
                timeout=(self.table.connect_timeout, self.table.read_timeout),
                verify=self.table.ca_bundle or self.table.verify_tls,
                headers={"User-Agent": "pytest-vcci"},
                allow_redirects=False,
            )
        response.close()
        return int(response.status_code)

    @contextmanager
    def watch(self) -> Iterator[None]:
        """A connection that fails marks this target down for the run."""
        if self.gate is None:
            try:
                yield
            except _connection_errors() as exc:
                raise TargetUnreachable(self.name, _safe_error(exc)) from exc
            return
        self.gate.check(self.name)
        try:
            yield
        except _connection_errors() as exc:
            cause = _safe_error(exc)
            self.gate.mark_down(self.name, cause)
            raise TargetUnreachable(self.name, cause) from exc

    def probe(self) -> object:
        raise NotImplementedError

    def ensure(self) -> None:
        """Probe once per run (across xdist workers); raise TargetUnreachable if down."""
        if self.gate is None:
            self._probe_or_raise()
        else:
            self.gate.ensure(self.name, self._probe_or_raise)

    def _probe_or_raise(self) -> None:
        self._probing = True
        try:
            self.probe()
        except MonitoringError as exc:
            raise TargetUnreachable(self.name, str(exc)) from None
        finally:
            self._probing = False


def _clean(params: Params | None) -> dict[str, str | list[str]] | None:
    """Query parameters as strings (booleans as true/false; lists repeat the key)."""
    if params is None:
        return None
    cleaned: dict[str, str | list[str]] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            cleaned[key] = str(value).lower()
        elif isinstance(value, str | int | float):
            cleaned[key] = str(value)
        elif value is not None:
            cleaned[key] = [str(v) for v in value]
    return cleaned


def _brief(text: str) -> str:
    return " ".join(text.split())[:200] or "(empty body)"


def _safe_error(exc: BaseException) -> str:
    """One line, with any URL in it reduced to scheme://host:port/path."""
    return re.sub(r"https?://[^\s'\"]+", lambda m: _safe_url(m.group(0)), one_line(exc))


def _timestamp(value: datetime | float | str) -> str:
    if isinstance(value, datetime):
        return str(value.timestamp())
    return str(value)


# --- Prometheus ---------------------------------------------------------------------------


class Prometheus(HttpTarget):
    """Prometheus HTTP API v1 (https://prometheus.io/docs/prometheus/latest/querying/api/)."""

    kind = "prometheus"

    def api(self, path: str, params: Params | None = None) -> Any:
        """``data`` of a ``/api/v1/...`` answer; ``status: error`` raises MonitoringError."""
        body = self.get(f"/api/v1/{path}", params)
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error", body) if isinstance(body, dict) else body
            raise MonitoringError(
                self.name, _safe_url(self.url(f"/api/v1/{path}")), None, f"API error: {detail}"
            )
        return body.get("data")

    def probe(self) -> object:
        return self.buildinfo()

    def query(self, expr: str, time: datetime | float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector (a scalar/string comes back as one sample)."""
        params = {"query": expr, "time": _timestamp(time) if time is not None else None}
        data = self.api("query", params)
        result = data.get("result", [])
        if data.get("resultType") in {"scalar", "string"}:
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_range(
        self, expr: str, start: datetime | float, end: datetime | float, step: str | float
    ) -> list[dict[str, Any]]:
        data = self.api(
            "query_range",
            {"query": expr, "start": _timestamp(start), "end": _timestamp(end), "step": step},
        )
        return list(data.get("result", []))

    def rules(self, rule_type: str | None = None) -> list[dict[str, Any]]:
        """Rule groups (``rule_type``: ``alert`` or ``record`` to filter)."""
        return list(self.api("rules", {"type": rule_type})["groups"])

    def alert_rules(self) -> dict[str, dict[str, Any]]:
        """Every alerting rule by name (convenience over rules())."""
        return {rule["name"]: rule for group in self.rules("alert") for rule in group["rules"]}

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """Scrape targets (``active`` or ``dropped``)."""
        data = self.api("targets", {"state": state})
        return list(data.get(f"{state}Targets", []))

    def flags(self) -> dict[str, str]:
        return dict(self.api("status/flags"))

    def config(self) -> dict[str, Any]:
        """The running configuration, parsed (Prometheus serves it as YAML text)."""
        import yaml

        parsed = yaml.safe_load(self.api("status/config")["yaml"])
        return parsed if isinstance(parsed, dict) else {}

    def runtimeinfo(self) -> dict[str, Any]:
        return dict(self.api("status/runtimeinfo"))

    def buildinfo(self) -> dict[str, Any]:
        return dict(self.api("status/buildinfo"))


# --- Alertmanager -------------------------------------------------------------------------


class Alertmanager(HttpTarget):
    """Alertmanager API v2 (https://github.com/prometheus/alertmanager/blob/main/api/v2)."""

    kind = "alertmanager"

    def probe(self) -> object:
        return self.status()

    def status(self) -> dict[str, Any]:
        """Cluster, version and config; ``config["parsed"]`` is the YAML config as a dict.

        Alertmanager itself shows secret fields (keys, tokens, Slack URLs) as ``<secret>``.
        """
        import yaml

        status: dict[str, Any] = dict(self.get("/api/v2/status"))
        config = dict(status.get("config") or {})
        config["parsed"] = yaml.safe_load(config.get("original") or "") or {}
        status["config"] = config
        return status

    def config(self) -> dict[str, Any]:
        parsed: dict[str, Any] = self.status()["config"]["parsed"]
        return parsed

    def receivers(self) -> list[str]:
        return [str(r["name"]) for r in self.get("/api/v2/receivers")]

    def alerts(
        self,
        active: bool = True,
        silenced: bool = False,
        inhibited: bool = False,
        matchers: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Alerts held by Alertmanager; ``matchers`` like ``alertname="Watchdog"``."""
        params: Params = {
            "active": active,
            "silenced": silenced,
            "inhibited": inhibited,
            "filter": list(matchers) or None,
        }
        return list(self.get("/api/v2/alerts", params))


# --- Grafana ------------------------------------------------------------------------------


class Grafana(HttpTarget):
    """Grafana HTTP API (a service-account token or API key as ``token``)."""

    kind = "grafana"

    def probe(self) -> object:
        return self.health()

    def health(self) -> dict[str, Any]:
        """``/api/health``: version and ``database: ok`` (needs no token)."""
        return dict(self.get("/api/health"))

    def datasources(self) -> list[dict[str, Any]]:
        return list(self.get("/api/datasources"))

    def dashboard(self, uid: str) -> dict[str, Any]:
        """The dashboard model and its meta (``{"dashboard": ..., "meta": ...}``)."""
        return dict(self.get(f"/api/dashboards/uid/{quote(uid, safe='')}"))

    def frontend_settings(self) -> dict[str, Any]:
        return dict(self.get("/api/frontend/settings"))

    def alerting_enabled(self) -> bool:
        """Grafana Alerting (unified, Grafana 8+) or legacy alerting switched on."""
        settings = self.frontend_settings()
        return bool(settings.get("unifiedAlertingEnabled") or settings.get("alertingEnabled"))


# --- fixtures -----------------------------------------------------------------------------


def _build(context: RunContext, cls: type[HttpTarget], table_name: str) -> Any:
    table: HttpTable = context.target_table(table_name)
    target = cls(table, gate=context.gate, name=table_name)
    target.ensure()
    return target


@pytest.fixture(scope="session")
def prometheus(vcci_context: RunContext) -> Prometheus:
    """Read-only Prometheus API of the run's ``[prometheus]`` table."""
    target: Prometheus = _build(vcci_context, Prometheus, "prometheus")
    return target


@pytest.fixture(scope="session")
def alertmanager(vcci_context: RunContext) -> Alertmanager:
    """Read-only Alertmanager API of the run's ``[alertmanager]`` table."""
    target: Alertmanager = _build(vcci_context, Alertmanager, "alertmanager")
    return target


@pytest.fixture(scope="session")
def grafana(vcci_context: RunContext) -> Grafana:
    """Read-only Grafana API of the run's ``[grafana]`` table."""
    target: Grafana = _build(vcci_context, Grafana, "grafana")
    return target


__all__ = [
    "Alertmanager",
    "Grafana",
    "HttpTarget",
    "MonitoringError",
    "Prometheus",
    "alertmanager",
    "grafana",
    "prometheus",
]
