"""The environment file: TOML + ``${VAR}`` interpolation + CLI overrides -> one typed Settings.

Every error is a :class:`SettingsError` whose text names the file, the table, the key and what
was expected, so the plugin can print it as one line and exit with a usage error.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from pytest_vcci import addresses

Scalar = str | int | float | bool


class SettingsError(Exception):
    """A usage error in the environment file, attestations file or command line."""

    def __init__(self, source: str, location: str, message: str) -> None:
        self.source = source
        self.location = location
        self.message = message
        where = f"{source}: {location}" if location else source
        super().__init__(f"{where}: {message}")


class TargetNotConfigured(Exception):
    """A test needs a target whose table is absent from the environment file."""

    def __init__(self, table: str, source: str) -> None:
        self.table = table
        super().__init__(f"[{table}] is not configured in {source}")


# --- values that name where a target lives -------------------------------------------------


def _checked(kind: str, problem: Callable[[str], str | None]) -> AfterValidator:
    """A validator whose error is ``problem``'s message alone: it never repeats the value."""

    def check(value: str) -> str:
        message = problem(value)
        if message is not None:
            raise PydanticCustomError(f"vcci_{kind}", message)
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, _checked("url", addresses.http_url_problem)]
RedisUrl = Annotated[str, _checked("url", addresses.redis_url_problem)]
PostgresDsn = Annotated[str, _checked("dsn", addresses.postgres_dsn_problem)]
HostName = Annotated[str, _checked("host", addresses.host_problem)]
Endpoint = Annotated[str, _checked("endpoint", addresses.endpoint_problem)]
IpAddress = Annotated[str, _checked("ip", addresses.ip_problem)]
AwsRegion = Annotated[str, _checked("region", addresses.region_problem)]
UrlPath = Annotated[str, _checked("path", addresses.path_problem)]


# --- tables -------------------------------------------------------------------------------


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys whose values are secrets in full (redacted wherever they appear).
    secret_keys: ClassVar[tuple[str, ...]] = ()
    # Keys that hold URLs or DSNs whose password part is a secret.
    url_keys: ClassVar[tuple[str, ...]] = ()


class EnvironmentTable(Table):
    name: str = Field(min_length=1)
    description: str = ""
    production: bool = False
    attestations: str | None = Field(None, description="attestations TOML, relative to this file")
    waivers: str | None = Field(None, description="waivers TOML, relative to this file")


class Timeouts(Table):
    connect_timeout: float = Field(5.0, gt=0, le=300)
    read_timeout: float = Field(15.0, gt=0, le=600)


class KubernetesTable(Timeouts):
    """How to reach the cluster: ``server`` + ``token`` (or ``anonymous = true``), a kubeconfig
    (+ context), or ``in_cluster``. Checked again when the plugin activates (see
    targets.kubernetes.check_configuration): a credential-less server or in_cluster outside a
    pod is a usage error."""

    secret_keys = ("token",)
    url_keys = ("server",)
    server: HttpUrl | None = None
    token: str | None = None
    anonymous: bool = Field(False, description="talk to server without a credential, on purpose")
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    ca_bundle: str | None = None
    verify_tls: bool = True
    namespace: str = "default"
    page_size: int = Field(500, ge=1, le=10000)
    log_lines: int = Field(500, ge=1, le=100000, description="log lines read per container")


class PostgresTable(Timeouts):
    url_keys = ("dsn", "replicas", "pgbouncer_dsn", "non_tls_dsn")
    dsn: PostgresDsn
    replicas: list[PostgresDsn] = []
    pgbouncer_dsn: PostgresDsn | None = None
    statement_timeout_ms: int = Field(10000, ge=1)
    ram: str | None = Field(None, description="instance RAM, e.g. '16GB', for memory-ratio checks")
    non_tls_dsn: PostgresDsn | None = Field(
        None, description="a DSN without TLS that must be refused"
    )


class RedisTable(Timeouts):
    url_keys = ("url", "cluster_url", "unauthenticated_url")
    url: RedisUrl
    cluster_url: RedisUrl | None = None
    ca_bundle: str | None = None
    unauthenticated_url: RedisUrl | None = Field(None, description="must be refused with NOAUTH")


class AwsTable(Timeouts):
    secret_keys = ("secret_access_key", "session_token")
    url_keys = ("endpoint_url",)
    region: AwsRegion
    profile: str | None = None
    endpoint_url: HttpUrl | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    max_attempts: int = Field(2, ge=1, le=10)


class HttpTable(Timeouts):
    secret_keys = ("token", "api_key")
    url_keys = ("url",)
    url: HttpUrl
    token: str | None = None
    api_key: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True


class ApiTable(Timeouts):
    secret_keys = ("token", "api_key")
    url_keys = ("base_url",)
    base_url: HttpUrl
    ca_bundle: str | None = None
    verify_tls: bool = True
    token: str | None = None
    api_key: str | None = None
    api_key_header: str = "X-API-Key"
    retries: int = Field(0, ge=0, le=5)


class TlsTable(Timeouts):
    endpoints: list[Endpoint] = []
    ca_bundle: str | None = None


class HostTable(Table):
    url_keys = ("backend",)  # testinfra: winrm://user:password@host
    backend: str = "local://"
    resolver: IpAddress | None = Field(
        None, description="DNS server address for resolve(); None: system"
    )
    resolver_port: int = Field(53, ge=1, le=65535)
    dns_timeout: float = Field(5.0, gt=0, le=60)


class SmtpTable(Timeouts):
    """The outgoing mail server (9.1.3): reachability and STARTTLS only, nothing is sent."""

    host: HostName
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    sending_domain: str | None = Field(None, description="domain whose SPF/DKIM/DMARC to check")
    dkim_selector: str = "default"
    ca_bundle: str | None = Field(None, description="CA bundle to verify the STARTTLS certificate")


class ReportsTable(Table):
    """External reports the suites ingest (paths relative to the environment file)."""

    trivy: list[str] = []
    zap: str | None = None
    locust: str | None = Field(None, description="Locust --csv stats file (*_stats.csv)")
    k6: str | None = Field(None, description="k6 --summary-export JSON")
    max_age_hours: float = Field(168.0, gt=0, description="older reports fail as stale")


class DocsTable(Table):
    """Where documentation, runbooks and versioned manifests live (10.1.x, 8.1.3, 8.2.3)."""

    url_keys = ("url", "manifests_repository")  # https://user:token@host/...

    directory: str | None = None
    url: HttpUrl | None = None
    manifests_repository: str | None = Field(None, description="git checkout of the manifests")


class PerformanceTable(Table):
    """Bounds for the intrusive load probes (7.1.x, 11.1.3)."""

    api_endpoints: list[UrlPath] = ["/health/ready"]
    api_requests: int = Field(200, ge=1, le=100000)
    api_concurrency: int = Field(10, ge=1, le=500)
    db_queries: list[str] = ["SELECT 1"]
    db_iterations: int = Field(200, ge=1, le=100000)
    db_concurrency: int = Field(4, ge=1, le=64)
    max_seconds: float = Field(60.0, gt=0, le=3600)
    window: str = Field("1h", description="PromQL range for latency/error-rate queries")


TABLES: dict[str, type[Table]] = {
    "environment": EnvironmentTable,
    "kubernetes": KubernetesTable,
    "postgres": PostgresTable,
    "redis": RedisTable,
    "aws": AwsTable,
    "api": ApiTable,
    "tls": TlsTable,
    "prometheus": HttpTable,
    "alertmanager": HttpTable,
    "grafana": HttpTable,
    "host": HostTable,
    "smtp": SmtpTable,
    "reports": ReportsTable,
    "docs": DocsTable,
    "performance": PerformanceTable,
}
OTHER_TABLES = ("thresholds", "expect")


# --- Settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything a run knows about its environment, validated."""

    source: str
    environment: EnvironmentTable
    tables: Mapping[str, Table] = field(default_factory=dict)
    thresholds: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)
    expect: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.environment.name

    @property
    def base_dir(self) -> Path:
        return Path(self.source).parent if self.source != "<defaults>" else Path.cwd()

    def table(self, name: str) -> Any | None:
        return self.tables.get(name)

    def require(self, name: str) -> Any:
        """The table for a target, or TargetNotConfigured naming it."""
        table = self.tables.get(name)
        if table is None:
            raise TargetNotConfigured(name, self.source)
        return table

    def threshold(self, item_id: str, name: str) -> Any:
        """The environment's value for an item's threshold, else the catalog default."""
        override = self.thresholds.get(item_id, {})
        if name in override:
            return override[name]
        from pytest_vcci.checklist import load_catalog

        defaults = load_catalog().get(item_id).thresholds
        if name not in defaults:
            raise KeyError(f"checklist item {item_id} has no threshold {name!r}")
        return defaults[name]

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def secrets(self) -> list[str]:
        """Every secret value the settings hold, for central redaction."""
        found: list[str] = []
        for table in self.tables.values():
            found.extend(_table_secrets(table))
        return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)

    def usernames(self) -> list[str]:
        """The user names in the settings' URLs and DSNs: redaction masks ``user:password``
        in base64 too (HTTP Basic credentials)."""
        found = {unquote(user) for table in self.tables.values() for user in _table_users(table)}
        return sorted(found)


def _table_urls(table: Table) -> Iterator[str]:
    for key in table.url_keys:
        value = getattr(table, key, None)
        for url in value if isinstance(value, list) else [value]:
            if url:
                yield str(url)


def _table_secrets(table: Table) -> Iterator[str]:
    for key in table.secret_keys:
        value = getattr(table, key, None)
        if value:
            yield str(value)
    for url in _table_urls(table):
        yield from url_secrets(url)


def _table_users(table: Table) -> Iterator[str]:
    for url in _table_urls(table):
        try:
            user = urlsplit(url).username
        except ValueError:
            continue
        if user:
            yield user


_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def url_secrets(url: str) -> Iterator[str]:
    """Passwords in a URL (scheme://user:pw@host) or a libpq key=value DSN."""
    match = _CONNINFO_PASSWORD.search(url)
    if match:
        value = match.group(1)
        if value.startswith("'"):
            yield value[1:-1]  # as written, and as libpq reads it (\' and \\ unescaped)
            yield re.sub(r"\\(.)", r"\1", value[1:-1])
        else:
            yield value
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        yield parts.password
        yield unquote(parts.password)
    for param in parts.query.split("&"):
        key, _, value = param.partition("=")
        if key.lower() in {"password", "token", "api_key", "apikey", "secret"} and value:
            yield value
            yield unquote(value)


# --- loading ------------------------------------------------------------------------------

_VAR = re.compile(r"\$(\$)?\{([^}]*)\}")


def interpolate(value: Any, source: str, location: str, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` from the process environment; ``$${`` is a literal ``${``."""
    if isinstance(value, dict):
        return {k: interpolate(v, source, _join(location, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, source, f"{location}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        name = match.group(2)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SettingsError(source, location, f"bad variable reference ${{{name}}}")
        if name not in env:
            raise SettingsError(
                source,
                location,
                f"environment variable {name} is not set (referenced as ${{{name}}})",
            )
        return env[name]

    return _VAR.sub(replace, value)


def _join(location: str, key: str) -> str:
    return f"{location}.{key}" if location else f"[{key}]"


_KEY_PATH = re.compile(r'(?:"[^"]*"|[^".=\s]+)(?:\.(?:"[^"]*"|[^".=\s]+))+')


_EXAMPLE = "e.g. postgres.statement_timeout_ms=5000"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``postgres.dsn=...`` or ``thresholds."3.2.4".backend_replicas=4`` -> (path, value).

    Errors name the key path only: the value may be a secret."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise SettingsError("--vcci-set", "", f"expected TABLE.KEY=VALUE (no '='), {_EXAMPLE}")
    if not _KEY_PATH.fullmatch(key):
        shown = repr(key) if re.fullmatch(r'[\w."*-]*', key) else "<not shown>"
        raise SettingsError("--vcci-set", "", f"key {shown}: expected TABLE.KEY=VALUE, {_EXAMPLE}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    path = [p.strip('"') for p in re.findall(r'"[^"]*"|[^.]+', key)]
    return path, value


def _override_location(path: list[str]) -> str:
    """Where an override lands, written as errors write it: ``[redis].url``."""
    if path[0] == "thresholds" and len(path) > 1:
        return ".".join([f'[thresholds."{path[1]}"]', *path[2:]])
    return ".".join([f"[{path[0]}]", *path[1:]])


def load_settings(
    path: str | os.PathLike[str] | None,
    overrides: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read, interpolate, override and validate an environment file (None: defaults only).

    An error about a key that ``--vcci-set`` gave names ``--vcci-set``, not the file."""
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {"environment": {"name": "default"}}
    if path is not None:
        raw = read_toml(Path(path))
    overridden: list[str] = []  # locations that --vcci-set gave or created
    for text in overrides or []:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            if key not in node:
                overridden.append(_override_location(keys[: depth + 1]))
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                where = _override_location(keys[: depth + 1])
                raise SettingsError("--vcci-set", where, "is not a table, so it has no keys")
        node[keys[-1]] = value
        overridden.append(_override_location(keys))
    try:
        return build_settings(interpolate(raw, source, "", env), source)
    except SettingsError as exc:
        if exc.source == source and any(_within(exc.location, o) for o in overridden):
            raise SettingsError("--vcci-set", exc.location, exc.message) from None
        raise


def _within(location: str, overridden: str) -> bool:
    return location == overridden or location.startswith((overridden + ".", overridden + "["))


def read_toml(path: Path, what: str = "environment file") -> dict[str, Any]:
    """A TOML file's tables; what goes wrong reading it is a SettingsError naming ``what``."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(str(path), "", f"{what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            str(path), "", f"not valid TOML: not UTF-8 (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise SettingsError(str(path), "", f"cannot read: {exc.strerror}") from None


def build_settings(raw: Mapping[str, Any], source: str) -> Settings:
    unknown = sorted(set(raw) - set(TABLES) - set(OTHER_TABLES))
    if unknown:
        known = ", ".join(sorted([*TABLES, *OTHER_TABLES]))
        raise SettingsError(source, f"[{unknown[0]}]", f"unknown table (expected one of: {known})")
    if "environment" not in raw:
        raise SettingsError(source, "[environment]", "missing table (it needs at least name = ...)")
    tables: dict[str, Table] = {}
    for name, model in TABLES.items():
        if name in raw:
            tables[name] = _validate_table(model, name, raw[name], source)
    environment = tables.pop("environment")
    assert isinstance(environment, EnvironmentTable)
    thresholds = _validate_thresholds(raw.get("thresholds", {}), source)
    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        raise SettingsError(source, "[expect]", "expected a table")
    return Settings(source, environment, tables, thresholds, expect)


def _validate_table(model: type[Table], name: str, data: Any, source: str) -> Table:
    if not isinstance(data, dict):
        raise SettingsError(source, f"[{name}]", f"expected a table, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = first_error(exc)
        secret = bool(error["loc"]) and str(error["loc"][0]) in (
            *model.secret_keys,
            *model.url_keys,
        )
        message = explain(error, list(model.model_fields), secret=secret)
        raise SettingsError(source, f"[{name}].{location(error['loc'])}", message) from None


def first_error(exc: ValidationError) -> ErrorDetails:
    """The error to report: an unknown key first (a misspelt key also makes the intended one
    missing, and the misspelling is what the user must fix), then pydantic's order."""
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    return (unknown or errors)[0]


def location(loc: tuple[int | str, ...]) -> str:
    """``("replicas", 0)`` -> ``replicas[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def explain(error: ErrorDetails, known: list[str], *, secret: bool = False) -> str:
    """What is wrong and what was expected, in words; a secret's value is never repeated."""
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown key{hint} (expected one of: {', '.join(known)})"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"].startswith("vcci_"):
        return error["msg"]  # our own validators' messages name no part of the value
    value = error.get("input")
    shown = f"got {type_name(value)}" if secret else f"got {value!r}"
    return f"{error['msg']} ({shown})"


def type_name(value: Any) -> str:
    """What kind of TOML value this is: said instead of a value that may be a secret."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        ((dt.date, dt.time), "a date or time"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), "a value")


def _validate_thresholds(data: Any, source: str) -> dict[str, dict[str, Scalar]]:
    from pytest_vcci.checklist import load_catalog

    if not isinstance(data, dict):
        raise SettingsError(source, "[thresholds]", "expected a table of item IDs")
    catalog = load_catalog()
    result: dict[str, dict[str, Scalar]] = {}
    for item_id, values in data.items():
        where = f'[thresholds."{item_id}"]'
        if item_id not in catalog:
            raise SettingsError(source, where, "unknown checklist item ID")
        if not isinstance(values, dict):
            raise SettingsError(source, where, "expected a table of threshold names")
        defaults = catalog.get(item_id).thresholds
        for key, value in values.items():
            if key not in defaults:
                known = ", ".join(defaults) or "none"
                raise SettingsError(
                    source, f"{where}.{key}", f"unknown threshold (item has: {known})"
                )
            _check_type(source, f"{where}.{key}", defaults[key], value)
        result[item_id] = dict(values)
    return result


def _check_type(source: str, where: str, default: Any, value: Any) -> None:
    numeric = (int, float)
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) == isinstance(default, bool)
    elif isinstance(default, numeric):
        ok = isinstance(value, numeric)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise SettingsError(
            source, where, f"expected {type(default).__name__} like {default!r}, got {value!r}"
        )


def find_environment_file(name: str, directory: str | os.PathLike[str]) -> Path:
    path = Path(directory) / f"{name}.toml"
    if not path.is_file():
        available = (
            sorted(p.stem for p in Path(directory).glob("*.toml"))
            if Path(directory).is_dir()
            else []
        )
        hint = f" (available: {', '.join(available)})" if available else ""
        raise SettingsError(str(path), "", f"no environment named {name!r}{hint}")
    return path
