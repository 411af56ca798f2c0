"""Where targets live: what a well-formed URL, PostgreSQL DSN, host name and endpoint are.

Each ``*_problem`` function says what is wrong with a value, or None. The messages never
repeat the value or any part a parser took from it: a URL or DSN may hold a password, and a
password with a ``/`` or ``@`` in it makes a parser see it as a host or a port.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

HTTP_SCHEMES = ("http", "https")
REDIS_SCHEMES = ("redis", "rediss")
POSTGRES_SCHEMES = ("postgresql", "postgres")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# libpq errors that name an option, not a piece of the value: safe to repeat.
_LIBPQ_NAMED = re.compile(r'(invalid connection option|invalid URI query parameter:?) "([a-z_]+)"')
PORT_RANGE = "a number from 1 to 65535"


def host_problem(host: str) -> str | None:
    """A DNS name (RFC 1123 labels, ``_`` allowed) or an IP address; None when well-formed."""
    if not host:
        return "no host"
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return None
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "the host is not a well-formed host name or IP address"
    if all(label.isdigit() for label in labels):
        return "the host is not a valid IP address"
    return None


def port_problem(text: str) -> str | None:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        return f"the port is not {PORT_RANGE}"
    return None


def _expected(schemes: tuple[str, ...]) -> str:
    return " or ".join(f"{s}://" for s in schemes)


def url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    """A URL with one of ``schemes``, a well-formed host and, if given, a valid port."""
    match = _SCHEME.match(value)
    if match is None:
        return f"expected a URL starting with {_expected(schemes)} (no scheme)"
    if match.group(1).lower() not in schemes:
        return f"expected a URL starting with {_expected(schemes)} (scheme {match.group(1)}://)"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"not a valid URL: the host or port is malformed (port: {PORT_RANGE})"
    if not parts.hostname:
        return "no host in the URL"
    problem = host_problem(parts.hostname)
    if problem is None and port == 0:
        problem = f"the port is not {PORT_RANGE}"
    return problem


def http_url_problem(value: str) -> str | None:
    return url_problem(value, HTTP_SCHEMES)


def redis_url_problem(value: str) -> str | None:
    """``redis://`` or ``rediss://``, a host, and a database number as the path if any."""
    problem = url_problem(value, REDIS_SCHEMES)
    if problem is None:
        path = urlsplit(value).path
        if path not in ("", "/") and not path[1:].isdigit():
            problem = "the path must be a database number, e.g. /0"
    return problem


def postgres_dsn_problem(value: str) -> str | None:
    """A libpq connection string: ``postgresql://...`` or ``key=value`` pairs, parsed by libpq
    itself, with a host, valid ports and a known sslmode."""
    match = _SCHEME.match(value)
    if match is not None and match.group(1).lower() not in POSTGRES_SCHEMES:
        return (
            f"expected a DSN starting with {_expected(POSTGRES_SCHEMES)} or libpq "
            f"key=value pairs (scheme {match.group(1)}://)"
        )
    # psycopg (libpq's own parser) loads only in runs whose environment has a database.
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(value)
    except Exception as exc:  # psycopg.Error; any failure to parse means "not a DSN"
        named = _LIBPQ_NAMED.search(str(exc))
        detail = f'{named.group(1)} "{named.group(2)}"' if named else "libpq cannot parse it"
        return (
            f"not a valid PostgreSQL DSN ({detail}); expected postgresql://USER@HOST:PORT/DB "
            "or key=value pairs such as host=... dbname=..."
        )
    return _conninfo_problem({k: str(v) for k, v in params.items()})


def _conninfo_problem(params: dict[str, str]) -> str | None:
    hosts = [h for h in params.get("host", "").split(",")]
    if not any(hosts) and not params.get("hostaddr"):
        return "no host (expected postgresql://USER@HOST:PORT/DB or host=...)"
    for host in hosts:
        # An absolute path is a Unix-socket directory.
        problem = None if host.startswith("/") or not host else host_problem(host)
        if problem:
            return problem
    ports = [p for p in params.get("port", "").split(",") if p]
    for port in ports:
        if port_problem(port):
            return f"the port is not {PORT_RANGE}"
    if len(ports) > 1 and len(ports) != len(hosts):
        return f"{len(ports)} ports for {len(hosts)} hosts (give one port, or one per host)"
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        return f"sslmode is not one of {', '.join(SSLMODES)}"
    return None


def endpoint_problem(value: str) -> str | None:
    """``host``, ``host:port``, ``[v6]:port`` or ``https://host:port/``."""
    text = value.strip()
    if not text:
        return "empty endpoint (expected host:port)"
    if "://" in text:
        return url_problem(text, HTTP_SCHEMES)
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError:
        return f"expected host:port (port: {PORT_RANGE})"
    if parts.path or parts.query or parts.fragment or parts.username:
        return "expected host:port"
    problem = host_problem(parts.hostname or "")
    if problem is None and port == 0:
        problem = f"the port is not {PORT_RANGE}"
    return problem


def ip_problem(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "expected an IP address, e.g. 10.0.0.2"
    return None


def region_problem(value: str) -> str | None:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", value):
        return "expected an AWS region name, e.g. eu-west-1"
    return None


def path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return "expected a path starting with /, e.g. /health/ready"
    return None
