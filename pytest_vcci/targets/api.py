"""The ``api`` target: a read-only HTTP client for the GL-VCCI API (requests underneath).

Reads (GET, HEAD, OPTIONS) go through; writes raise ReadOnlyViolation before anything leaves
the process, unless the test asks for ``api.intrusive()`` and the run allows it
(``--vcci-allow-intrusive``), as the end-to-end workflows of section 9 need. Every call has a
(connect, read) timeout, redirects are not followed (a check sees what the server said, and
credentials never follow a redirect elsewhere), and the first connection-level failure marks
the API down for the whole run, so later tests fail at once with the same cause.

``requests`` is imported inside functions: this module is registered as a plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pytest_vcci.evidence.redaction import MASK
from pytest_vcci.targets.base import ReadOnlyViolation

if TYPE_CHECKING:
    import requests

    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import ApiTable
    from pytest_vcci.targets.base import TargetGate

TARGET = "api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie"}
)


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate; the secret never shows in repr or describe()."""

    kind: str  # "bearer", "api_key" or "anonymous"
    secret: str | None = field(default=None, repr=False)
    header: str = "Authorization"

    @classmethod
    def from_table(cls, table: ApiTable) -> Credentials:
        # A configured token wins over an API key: it carries the tenant and role claims.
        if table.token:
            return cls("bearer", table.token)
        if table.api_key:
            return cls("api_key", table.api_key, table.api_key_header)
        return cls("anonymous")

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer" and self.secret:
            return {"Authorization": f"Bearer {self.secret}"}
        if self.kind == "api_key" and self.secret:
            return {self.header: self.secret}
        return {}

    def describe(self) -> str:
        return {"bearer": "bearer token", "api_key": f"API key ({self.header})"}.get(
            self.kind, "anonymous"
        )


def safe_url(url: str) -> str:
    """The URL without a user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def redacted_headers(source: Any, extra: Iterable[str] = ()) -> dict[str, str]:
    """Headers of a request (or response, or mapping) with credential values replaced, for evidence."""
    headers: Mapping[str, Any] = getattr(source, "headers", source)
    sensitive = SENSITIVE_HEADERS | {name.lower() for name in extra}
    return {
        name: MASK if name.lower() in sensitive else str(value) for name, value in headers.items()
    }


class Api:
    """A read-only session on one API from an [api] table."""

    def __init__(
        self,
        table: ApiTable,
        *,
        ca_bundle: str | None = None,
        gate: TargetGate | None = None,
        allow_intrusive: bool = False,
        credentials: Credentials | None = None,
        writable: bool = False,
    ) -> None:
        self.table = table
        self.base_url = table.base_url.rstrip("/")
        # A CA bundle path, or True/False; passed on every call because requests lets
        # REQUESTS_CA_BUNDLE override a session-level setting.
        self.verify: str | bool = ca_bundle if ca_bundle else table.verify_tls
        self.gate = gate
        self.allow_intrusive = allow_intrusive
        self.credentials = credentials if credentials is not None else Credentials.from_table(table)
        self.writable = writable
        self._session: requests.Session | None = None
        self._variants: list[Api] = []

    # --- variants ---------------------------------------------------------------------------

    def _variant(self, **changes: Any) -> Api:
        options: dict[str, Any] = {
            "gate": self.gate,
            "allow_intrusive": self.allow_intrusive,
            "credentials": self.credentials,
            "writable": self.writable,
            **changes,
        }
        variant = Api(self.table, **options)
        variant.verify = self.verify
        # Its own session: cookies one identity received must not be sent by another.
        self._variants.append(variant)
        return variant

    def anonymous(self) -> Api:
        """The same API without credentials (does an endpoint refuse anonymous callers?)."""
        return self._variant(credentials=Credentials("anonymous"))

    def with_token(self, token: str) -> Api:
        """The same API with an explicit bearer token (expired, forged, other tenant, ...)."""
        return self._variant(credentials=Credentials("bearer", token))

    def with_api_key(self, key: str | None = None) -> Api:
        """The same API authenticated by API key (the configured one if ``key`` is None)."""
        key = key if key is not None else self.table.api_key
        if not key:
            raise ValueError("[api].api_key is not configured")
        return self._variant(credentials=Credentials("api_key", key, self.table.api_key_header))

    def intrusive(self) -> Api:
        """A variant that may write; only under --vcci-allow-intrusive."""
        if not self.allow_intrusive:
            raise ReadOnlyViolation(
                TARGET, "an intrusive session (writes need --vcci-allow-intrusive)"
            )
        return self._variant(writable=True)

    # --- calls ------------------------------------------------------------------------------

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.table.connect_timeout, self.table.read_timeout)

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = _new_session(self.table.retries)
        return self._session

    def url(self, path: str) -> str:
        if "://" in path:
            # Credentials go to the configured API only.
            if path != self.base_url and not path.startswith(self.base_url + "/"):
                raise ValueError(
                    f"{safe_url(path)} is not under [api].base_url {safe_url(self.base_url)}"
                )
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        method = method.upper()
        url = self.url(path)
        if method not in SAFE_METHODS and not self.writable:
            what = f"{method} {urlsplit(url).path or '/'} (writes need api.intrusive() under --vcci-allow-intrusive)"
            raise ReadOnlyViolation(TARGET, what)
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout  # never unbounded
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("allow_redirects", False)
        kwargs["headers"] = {**self.credentials.headers(), **(kwargs.get("headers") or {})}
        if self.gate is None:
            return self.session.request(method, url, **kwargs)
        self.gate.ensure(TARGET, self.probe)
        with self.gate.watch(TARGET, *connection_errors()):
            return self.session.request(method, url, **kwargs)

    def probe(self) -> None:
        """Reachability only: any HTTP answer (even 401 or 404) means the API is up.

        Both timeouts are the connect timeout: a server that accepts connections but never
        answers costs the run one connect timeout, not a full read timeout.
        """
        connect = self.table.connect_timeout
        self.session.get(
            self.base_url, timeout=(connect, connect), verify=self.verify, allow_redirects=False
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("OPTIONS", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # --- evidence ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What this client is, for reports: never a token or key."""
        return {
            "target": TARGET,
            "base_url": safe_url(self.base_url),
            "auth": self.credentials.describe(),
            "verify": self.verify,
            "connect_timeout": self.table.connect_timeout,
            "read_timeout": self.table.read_timeout,
            "retries": self.table.retries,
            "writable": self.writable,
        }

    def evidence(self, response: requests.Response) -> dict[str, Any]:
        """One exchange as plain JSON, credentials redacted."""
        request = response.request
        extra = [self.table.api_key_header]
        return {
            "request": {
                "method": request.method,
                "url": safe_url(str(request.url)),
                "headers": redacted_headers(request, extra),
            },
            "response": {
                "status": response.status_code,
                "elapsed_ms": round(response.elapsed.total_seconds() * 1000, 3),
                "headers": redacted_headers(response, extra),
            },
        }

    def __repr__(self) -> str:
        mode = "intrusive" if self.writable else "read-only"
        return f"<Api {safe_url(self.base_url)} {self.credentials.describe()} {mode}>"

    def close(self) -> None:
        for variant in self._variants:
            variant.close()
        self._variants.clear()
        if self._session is not None:
            self._session.close()
            self._session = None


def connection_errors() -> tuple[type[BaseException], ...]:
    """What means "the API is down" (SSLError is a ConnectionError; so is ConnectTimeout)."""
    import requests

    return (requests.ConnectionError, requests.Timeout)


def _new_session(retries: int) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from pytest_vcci import __version__

    session = requests.Session()
    # Retries (0 by default) only for reads: a write must never be sent twice by accident.
    retry = Retry(
        total=retries,
        allowed_methods=SAFE_METHODS,
        status=0,
        redirect=0,
        raise_on_status=False,
        backoff_factor=0.2,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"pytest-vcci/{__version__}"
    return session


def api_client(context: RunContext) -> Api:
    """The client for the run's [api] table (skips if it is absent)."""
    table: ApiTable = context.target_table("api")
    ca_bundle = str(context.settings.resolve_path(table.ca_bundle)) if table.ca_bundle else None
    return Api(
        table, ca_bundle=ca_bundle, gate=context.gate, allow_intrusive=context.allow_intrusive
    )


@pytest.fixture(scope="session")
def api(vcci_context: RunContext) -> Iterator[Api]:
    """The environment's API, read-only: GET/HEAD/OPTIONS, with the configured credentials."""
    client = api_client(vcci_context)
    yield client
    client.close()
