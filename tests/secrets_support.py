"""Planted secrets: a distinct secret in every secret-holding setting, and a search for each of
them in every form an output could carry it.

Tests import it by name (pytest puts tests/ on sys.path for the test files in it). The forms are
computed here with the standard library, independently of pytest_vcci.evidence.redaction, so a
form the redactor forgets is a form these tests find.
"""

from __future__ import annotations

import base64
import html
import json
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

# Every character that repr, JSON, HTML or URL encoding changes.
HARD = "\\\"'%@:/#+="
# Non-ASCII: beyond latin-1 where the secret never travels in an HTTP header; latin-1 where it
# does (http.client sends header values as latin-1; anything beyond cannot be sent at all).
WIDE = "€ü"
LATIN1 = "üé"

# The settings that hold a secret, and whether it is sent in an HTTP header.
SECRET_SETTINGS: dict[str, bool] = {
    "postgres.dsn": False,
    "postgres.replicas[0]": False,
    "postgres.replicas[1]": False,
    "postgres.pgbouncer_dsn": False,
    "postgres.non_tls_dsn": False,
    "redis.url": False,
    "redis.cluster_url": False,
    "redis.unauthenticated_url": False,
    "api.token": True,
    "api.api_key": True,
    "api.base_url": True,  # HTTP Basic: user:password of the URL
    "aws.secret_access_key": False,
    "aws.session_token": True,  # X-Amz-Security-Token
    "kubernetes.token": True,
    "prometheus.token": True,
    "prometheus.api_key": True,
    "prometheus.url": True,
    "alertmanager.token": True,
    "alertmanager.api_key": True,
    "alertmanager.url": True,
    "grafana.token": True,
    "grafana.api_key": True,
    "grafana.url": True,
    "docs.url": True,
    "docs.manifests_repository": True,
    "host.backend": False,
}


def planted_secret(index: int, setting: str) -> str:
    """A distinct secret for ``setting``: its own tag, then every hard character."""
    tag = re.sub(r"[^a-z]", "", setting.split(".")[-1])[:6] + str(index)
    wide = LATIN1 if SECRET_SETTINGS[setting] else WIDE
    return f"Pl{index:02d}{tag}\\q{HARD}{wide}Z{index:02d}"


@dataclass
class PlantedEnvironment:
    """An environment file whose every secret-holding setting holds a planted secret."""

    tables: dict[str, Any]
    variables: dict[str, str]  # the ${VAR}s the tables refer to
    secrets: dict[str, str]  # setting -> the secret as the client uses it (decoded)
    users: list[str] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        import tomli_w

        path.write_text(tomli_w.dumps(self.tables), encoding="utf-8")
        return path

    def leaks(self, text: str) -> list[str]:
        """``setting (form)`` for every planted secret found in ``text``, in any form."""
        return leaks(text, self.secrets, self.users)

    def assert_no_leak(self, outputs: Mapping[str, str]) -> None:
        """No planted secret in any of ``outputs`` (name -> text), in any form."""
        assert_no_leak(outputs, self.secrets, self.users)


def leaks(text: str, secrets: Mapping[str, str], users: Iterable[str] = ()) -> list[str]:
    """``name (form)`` for every secret of ``secrets`` (name -> value) found in ``text``."""
    found = []
    for name, secret in secrets.items():
        for form_name, form in secret_forms(secret, users).items():
            if form in text:
                found.append(f"{name} ({form_name})")
    return found


def assert_no_leak(
    outputs: Mapping[str, str], secrets: Mapping[str, str], users: Iterable[str] = ()
) -> None:
    """No secret of ``secrets`` in any of ``outputs`` (name -> text), in any form."""
    users = list(users)
    found = {name: hits for name, text in outputs.items() if (hits := leaks(text, secrets, users))}
    assert not found, f"secrets leaked: {found}"


def plant(
    *,
    http_url: str,
    aws_url: str,
    closed_port: int,
    region: str = "eu-west-1",
) -> PlantedEnvironment:
    """Every secret-holding setting with a planted secret, passed as ``${VAR}``s.

    ``http_url``: where the HTTP targets (API, Kubernetes, monitoring, docs) point;
    ``aws_url``: an AWS endpoint (moto) that accepts any credentials, so botocore signs and sends;
    ``closed_port``: a port on 127.0.0.1 nothing listens on (PostgreSQL, Redis).
    """
    secrets = {s: planted_secret(i, s) for i, s in enumerate(SECRET_SETTINGS, start=1)}
    variables: dict[str, str] = {}

    def ref(setting: str, *, encoded: bool = False) -> str:
        name = "VCCI_PLANTED_" + re.sub(r"[^A-Z0-9]", "_", setting.upper())
        variables[name] = quote(secrets[setting], safe="") if encoded else secrets[setting]
        return "${" + name + "}"

    def url(setting: str, scheme_host: str, user: str, rest: str = "") -> str:
        scheme, _, host = scheme_host.partition("://")
        return f"{scheme}://{user}:{ref(setting, encoded=True)}@{host}{rest}"

    pg = f"postgresql://127.0.0.1:{closed_port}"
    redis = f"redis://127.0.0.1:{closed_port}"
    tables: dict[str, Any] = {
        "environment": {"name": "planted", "description": "every secret planted"},
        "postgres": {
            "dsn": url("postgres.dsn", pg, "vcci", "/vcci?sslmode=require"),
            "replicas": [
                url("postgres.replicas[0]", pg, "vcci_ro", "/vcci"),
                url("postgres.replicas[1]", pg, "vcci_ro2", "/vcci"),
            ],
            "pgbouncer_dsn": url("postgres.pgbouncer_dsn", pg, "bouncer", "/vcci"),
            "non_tls_dsn": url("postgres.non_tls_dsn", pg, "vcci", "/vcci?sslmode=disable"),
            "connect_timeout": 2.0,
        },
        "redis": {
            "url": url("redis.url", redis, "app", "/0"),
            "cluster_url": url("redis.cluster_url", redis, "cluster"),
            "unauthenticated_url": url("redis.unauthenticated_url", redis, "nobody", "/0"),
            "connect_timeout": 2.0,
        },
        "api": {
            "base_url": url("api.base_url", http_url, "apiuser"),
            "token": ref("api.token"),
            "api_key": ref("api.api_key"),
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        },
        "aws": {
            "region": region,
            "endpoint_url": aws_url,
            "access_key_id": "AKIAPLANTEDEXAMPLE01",
            "secret_access_key": ref("aws.secret_access_key"),
            "session_token": ref("aws.session_token"),
            # Generous: moto answers at once, but a loaded machine must not make it "down".
            "connect_timeout": 10.0,
            "read_timeout": 30.0,
            "max_attempts": 1,
        },
        "kubernetes": {
            "server": http_url,
            "token": ref("kubernetes.token"),
            "namespace": "vcci-staging",
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        },
        "docs": {
            "url": url("docs.url", http_url, "docs", "/docs/"),
            "manifests_repository": url(
                "docs.manifests_repository", "https://git.example", "git", "/vcci/manifests.git"
            ),
        },
        "host": {"backend": url("host.backend", f"winrm://127.0.0.1:{closed_port}", "admin")},
    }
    for name in ("prometheus", "alertmanager", "grafana"):
        tables[name] = {
            "url": url(f"{name}.url", http_url, name),
            "token": ref(f"{name}.token"),
            "api_key": ref(f"{name}.api_key"),
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
    users = ["vcci", "vcci_ro", "vcci_ro2", "bouncer", "app", "cluster", "nobody", "apiuser"]
    users += ["docs", "git", "admin", "prometheus", "alertmanager", "grafana"]
    return PlantedEnvironment(tables, variables, secrets, users)


# --- the forms a secret can take -----------------------------------------------------------


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _b64(text: str) -> dict[str, str]:
    """Base64 of the UTF-8 bytes, and of the latin-1 bytes (requests' HTTP Basic credentials)."""
    forms = {}
    for encoding in ("utf-8", "latin-1"):
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        standard = base64.b64encode(data).decode()
        urlsafe = base64.urlsafe_b64encode(data).decode()
        forms.update(
            {
                f"base64 ({encoding})": standard,
                f"base64 unpadded ({encoding})": standard.rstrip("="),
                f"urlsafe base64 ({encoding})": urlsafe,
                f"urlsafe base64 unpadded ({encoding})": urlsafe.rstrip("="),
            }
        )
    return forms


def secret_forms(secret: str, users: Iterable[str] = ()) -> dict[str, str]:
    """Form name -> ``secret`` in that form: raw, repr-escaped, JSON-escaped, HTML-escaped,
    URL-encoded, base64 (and ``user:secret`` in base64, as HTTP Basic carries it)."""
    forms = {
        "raw": secret,
        "repr": repr(secret)[1:-1],
        "ascii": ascii(secret)[1:-1],
        "bytes repr": repr(secret.encode())[2:-1],
        "json": json.dumps(secret)[1:-1],
        "json unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        "html": html.escape(secret),
        "html unquoted": html.escape(secret, quote=False),
        "html numeric": secret.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;"),
        "url": quote(secret, safe=""),
        "url path": quote(secret),
        "url plus": quote_plus(secret),
        "url lower hex": _lower_hex(quote(secret, safe="")),
        "url plus lower hex": _lower_hex(quote_plus(secret)),
    }
    forms.update(_b64(secret))
    for user in ("", *users):
        forms.update({f"{k} of {user}:secret": v for k, v in _b64(f"{user}:{secret}").items()})
    return forms


# --- servers that make clients send (and show back) what they carry -------------------------


class _Echo(BaseHTTPRequestHandler):
    """Refuses every request with 401 and echoes back its credentials, the way a careless
    server does: the clients' error texts then carry the secrets they sent."""

    def _answer(self) -> None:
        body = json.dumps(
            {
                "error": "unauthorized",
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "api_key": self.headers.get("X-API-Key"),
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def echo_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers 401 and echoes the credentials; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (empty: no resources); its URL. It takes any credentials,
    so botocore really signs and sends with the planted ones."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto loads a service on its first request (seconds on a loaded machine): load STS,
        # which the plugin's probe calls, before anything is timed.
        boto3.client(
            "sts",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id="AKIAWARMUP0000000000",
            aws_secret_access_key="warm-up",
        ).get_caller_identity()
        yield url
    finally:
        server.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
