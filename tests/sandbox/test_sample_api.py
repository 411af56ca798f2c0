"""The sample GL-VCCI API, over real HTTPS, as the suites will see it.

One server per module (a child process on loopback, stopped at the end); a few config-driven
behaviours (a component down, a slow provider) are checked on the app object in-process.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import ssl
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from pytest_vcci.sandbox.pki import new_key
from pytest_vcci.sandbox.sample_api import SampleApiComponent
from pytest_vcci.sandbox.sample_api import app as sample_api_app
from pytest_vcci.sandbox.sample_api.app import XLSX as XLSX_TYPE
from pytest_vcci.sandbox.sample_api.app import App, Request
from pytest_vcci.sandbox.sample_api.config import ApiConfig, JwtConfig
from pytest_vcci.targets import tls as tls_target

ORIGIN = "https://vcci.greenlang.io"
LEAKS = re.compile(r"Traceback|File \"|\.py\b|SELECT |INSERT |psycopg|sqlalchemy", re.I)

# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleApiComponent]:
    component = SampleApiComponent(workdir=tmp_path_factory.mktemp("sample-api"))
    component.start()
    yield component
    component.stop()


class Client:
    """requests with the sandbox CA and a timeout on every call (verify is passed per call:
    REQUESTS_CA_BUNDLE in the environment would override a session-level setting)."""

    def __init__(self, component: SampleApiComponent) -> None:
        self.component = component
        self.session = requests.Session()

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (2, 10))
        kwargs.setdefault("verify", str(self.component.ca_bundle))
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.component.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self("GET", path, **kwargs)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client(sample_api: SampleApiComponent) -> Iterator[Client]:
    c = Client(sample_api)
    yield c
    c.session.close()


@pytest.fixture(scope="module")
def admin(sample_api: SampleApiComponent, client: Client) -> dict[str, str]:
    return client.bearer(sample_api.mint_token())


def assert_safe_error(response: requests.Response, status: int, code: str | None = None) -> None:
    """An error a client may see: JSON, generic, with a request ID, nothing internal."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) >= {"error", "message", "request_id"}
    assert body["request_id"] == response.headers["X-Request-ID"]
    if code:
        assert body["error"] == code
    assert not LEAKS.search(response.text), response.text


def log_records(component: SampleApiComponent) -> list[dict[str, Any]]:
    return [json.loads(line) for line in component.access_log.read_text().splitlines()]


# --- the component ---------------------------------------------------------------------------


def test_env_tables_reference_secrets_by_variable(sample_api: SampleApiComponent) -> None:
    tables = sample_api.env_tables()
    assert tables["api"]["base_url"] == f"https://127.0.0.1:{sample_api.port}"
    assert tables["api"]["token"] == "${VCCI_SANDBOX_API_TOKEN}"
    assert tables["api"]["api_key"] == "${VCCI_SANDBOX_API_KEY}"
    assert tables["tls"] == {
        "endpoints": [f"127.0.0.1:{sample_api.port}"],
        "ca_bundle": str(sample_api.ca_bundle),
    }
    secrets = sample_api.env_vars()
    assert set(secrets) == {"VCCI_SANDBOX_API_TOKEN", "VCCI_SANDBOX_API_KEY"}
    assert not any(value in json.dumps(tables) for value in secrets.values())
    # The server config holds the secrets: owner-only, like the private keys.
    assert stat.S_IMODE(os.stat(sample_api.config_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sample_api.workdir / "pki" / "api" / "key.pem").st_mode) == 0o600


def test_certificate_is_the_staging_wildcard_with_90_plus_days(
    sample_api: SampleApiComponent,
) -> None:
    report = tls_target.inspect(
        "127.0.0.1",
        sample_api.port,
        "api.staging.vcci.greenlang.io",
        str(sample_api.ca_bundle),
        timeout=3,
        versions=(),
    )
    assert report.verified, report.verify_error
    assert report.chain_complete
    assert report.covers("api.staging.vcci.greenlang.io")
    assert report.covers("grafana.vcci.greenlang.io")
    assert report.days_to_expiry is not None
    assert report.days_to_expiry > 90


def test_component_stop_ends_the_server(tmp_path: Path) -> None:
    component = SampleApiComponent(workdir=tmp_path, jwt_algorithm="HS256")
    component.start()
    pids = list(component.pids)
    token = requests.post(
        component.base_url + "/api/v1/auth/token",
        timeout=5,
        verify=str(component.ca_bundle),
        json={"username": component.test_user.username, "password": component.test_user.password},
    ).json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    me = requests.get(
        component.base_url + "/api/v1/me",
        timeout=5,
        verify=str(component.ca_bundle),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert me.json()["auth"] == "jwt"
    jwks = requests.get(
        component.base_url + "/.well-known/jwks.json", timeout=5, verify=str(component.ca_bundle)
    ).json()
    assert jwks == {"keys": []}  # an HS256 secret is never published
    component.stop()
    assert pids
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    with pytest.raises(OSError):
        component.is_live()


# --- health, metrics, pages ------------------------------------------------------------------


def test_liveness_and_readiness(client: Client) -> None:
    live = client.get("/health/live")
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert {"database", "redis", "workers"} <= set(checks)
    assert all(c["status"] == "ok" for c in checks.values())


def test_integration_and_factor_provider_health(client: Client) -> None:
    for path in (
        "/integrations/sap/health",
        "/integrations/oracle/health",
        "/integrations/workday/health",
        "/factors/ecoinvent/health",
        "/factors/desnz/health",
        "/factors/epa/health",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json()["status"] == "ok"
    assert client.get("/integrations/sap/health").json()["name"] == "SAP S/4HANA"
    assert_safe_error(client.get("/integrations/netsuite/health"), 404, "not_found")


def test_metrics_expose_operational_and_business_series(client: Client) -> None:
    client.get("/health/live")
    text = client.get("/metrics").text
    assert re.search(
        r'^http_requests_total\{[^}]*route="/health/live"[^}]*status="200"\} [1-9]', text, re.M
    )
    assert "http_request_duration_seconds_bucket{" in text
    for name in (
        "db_pool_connections_active",
        "db_pool_connections_max",
        "redis_memory_used_bytes",
        "worker_queue_depth",
        "vcci_active_tenants",
        "vcci_suppliers_processed_total",
        "vcci_emissions_calculations_total",
        "vcci_ingestion_bytes_total",
        "vcci_reports_generated_total",
    ):
        assert re.search(rf"^{name}(\{{[^}}]*\}})? ", text, re.M), name
    assert "_created" not in text


def test_plain_http_scrape_port_serves_metrics_only(sample_api: SampleApiComponent) -> None:
    (target,) = sample_api.scrape_targets()
    assert target == f"http://127.0.0.1:{sample_api.metrics_port}/metrics"
    scraped = requests.get(target, timeout=5)
    assert scraped.status_code == 200
    assert "vcci_active_tenants 3.0" in scraped.text
    base = target.removesuffix("/metrics")
    assert requests.get(base + "/api/v1/suppliers", timeout=5).status_code == 404


def test_expectations_for_the_suites(sample_api: SampleApiComponent) -> None:
    expected = sample_api.expect()["api"]
    assert expected["server_name"] == "api.staging.vcci.greenlang.io"
    assert expected["test_tenant"] == sample_api.test_user.tenant
    assert expected["other_tenant"] != expected["test_tenant"]


def test_frontend_page_and_asset(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("application/javascript")
    assert "fetch(" in script.text


def test_openapi_is_valid_and_documents_rate_limits(client: Client) -> None:
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").json()
    validate(document)
    assert document["openapi"].startswith("3.0")
    assert "100 requests per 60 seconds" in document["info"]["description"]
    assert document["info"]["x-ratelimit"]["limit"] == 100
    operation = document["paths"]["/api/v1/suppliers"]["get"]
    assert "429" in operation["responses"]
    assert "X-RateLimit-Remaining" in operation["responses"]["200"]["headers"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    assert "/api/v1/calculations" in docs.text


def test_oidc_discovery_matches_the_tokens(sample_api: SampleApiComponent, client: Client) -> None:
    discovery = client.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == sample_api.base_url
    assert discovery["token_endpoint"] == sample_api.base_url + "/api/v1/auth/token"
    jwks = client.get(discovery["jwks_uri"].removeprefix(sample_api.base_url)).json()
    token = sample_api.mint_token()
    (key,) = jwks["keys"]
    assert key["kid"] == jwt.get_unverified_header(token)["kid"]
    public = jwt.algorithms.RSAAlgorithm.from_jwk(key)
    claims = jwt.decode(
        token, public, algorithms=["RS256"], audience="vcci-api", issuer=discovery["issuer"]
    )
    assert claims["tenant"] == "vcci-test"


# --- CORS ------------------------------------------------------------------------------------


def test_cors_preflight_from_the_allowed_origin(client: Client) -> None:
    response = client(
        "OPTIONS",
        "/api/v1/suppliers",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "DELETE", "PATCH"}


def test_cors_other_origin_gets_no_allow_origin(client: Client, admin: dict[str, str]) -> None:
    preflight = client(
        "OPTIONS",
        "/api/v1/suppliers",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    actual = client.get("/api/v1/suppliers", headers={"Origin": "https://evil.example", **admin})
    assert "Access-Control-Allow-Origin" not in actual.headers
    allowed = client.get("/api/v1/suppliers", headers={"Origin": ORIGIN, **admin})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN


# --- authentication --------------------------------------------------------------------------


def test_valid_jwt_and_api_key(
    sample_api: SampleApiComponent, client: Client, admin: dict[str, str]
) -> None:
    me = client.get("/api/v1/me", headers=admin).json()
    assert me == {
        **me,
        "subject": "qa-bot@vcci.greenlang.io",
        "tenant": "vcci-test",
        "role": "Admin",
        "auth": "jwt",
    }
    by_key = client.get("/api/v1/me", headers={"X-API-Key": sample_api.api_key}).json()
    assert by_key["auth"] == "api_key"
    assert by_key["role"] == "Auditor"


def other_rsa_token(sample_api: SampleApiComponent) -> str:
    claims = jwt.decode(sample_api.mint_token(), options={"verify_signature": False})
    return jwt.encode(claims, new_key("rsa"), algorithm="RS256", headers={"kid": "vcci-sandbox-1"})


def hs256_with_public_key(sample_api: SampleApiComponent) -> str:
    """The classic algorithm-confusion forgery: HS256 keyed with the server's public key."""
    claims = jwt.decode(sample_api.mint_token(), options={"verify_signature": False})
    public = (sample_api.directory / "jwt-signing.pub").read_bytes()
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        import base64

        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("expired", "token_expired"),
        ("malformed", "invalid_token"),
        ("wrong-key", "invalid_token"),
        ("alg-confusion", "invalid_token"),
        ("refresh-as-access", "invalid_token"),
        ("not-bearer", "invalid_token"),
        ("none", "authentication_required"),
    ],
)
def test_bad_tokens_get_a_clean_401(
    sample_api: SampleApiComponent, client: Client, kind: str, code: str
) -> None:
    tokens = {
        "expired": lambda: sample_api.mint_token(now=time.time() - 7200),
        "malformed": lambda: "not.a.jwt",
        "wrong-key": lambda: other_rsa_token(sample_api),
        "alg-confusion": lambda: hs256_with_public_key(sample_api),
        "refresh-as-access": lambda: sample_api.mint_token(kind="refresh"),
    }
    headers = {}
    if kind in tokens:
        headers = client.bearer(tokens[kind]())
    elif kind == "not-bearer":
        headers = {"Authorization": "Basic cWE6cWE="}
    response = client.get("/api/v1/me", headers=headers)
    assert_safe_error(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_wrong_api_key_is_401_and_a_bad_token_is_not_rescued_by_a_key(
    sample_api: SampleApiComponent, client: Client
) -> None:
    assert_safe_error(
        client.get("/api/v1/me", headers={"X-API-Key": "vcci_wrong"}), 401, "invalid_api_key"
    )
    both = client.get(
        "/api/v1/me", headers={"X-API-Key": sample_api.api_key, "Authorization": "Bearer not.a.jwt"}
    )
    assert_safe_error(both, 401, "invalid_token")


def test_token_endpoint_issues_1h_access_and_7d_refresh(
    sample_api: SampleApiComponent, client: Client
) -> None:
    user = sample_api.test_user
    issued = client(
        "POST", "/api/v1/auth/token", json={"username": user.username, "password": user.password}
    )
    assert issued.status_code == 200
    assert issued.headers["Cache-Control"] == "no-store"
    pair = issued.json()
    access = jwt.decode(pair["access_token"], options={"verify_signature": False})
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 3600 == pair["expires_in"]
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert client.get("/api/v1/me", headers=client.bearer(pair["access_token"])).status_code == 200
    renewed = client("POST", "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200
    assert (
        client.get("/api/v1/me", headers=client.bearer(renewed.json()["access_token"])).status_code
        == 200
    )
    # An access token cannot be used to refresh.
    assert_safe_error(
        client("POST", "/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]}),
        401,
        "invalid_token",
    )


def test_token_endpoint_accepts_the_oauth2_form(
    sample_api: SampleApiComponent, client: Client
) -> None:
    user = sample_api.test_user
    form = {"grant_type": "password", "username": user.username, "password": user.password}
    assert client("POST", "/api/v1/auth/token", data=form).status_code == 200


def test_failed_and_successful_logins_are_audited(
    sample_api: SampleApiComponent, client: Client, admin: dict[str, str]
) -> None:
    user = sample_api.test_user
    denied = client(
        "POST", "/api/v1/auth/token", json={"username": user.username, "password": "wrong"}
    )
    assert_safe_error(denied, 401, "invalid_grant")
    ok = client(
        "POST", "/api/v1/auth/token", json={"username": user.username, "password": user.password}
    )
    events = client.get("/api/v1/audit/events?type=auth.login", headers=admin).json()["events"]
    by_request = {e["request_id"]: e for e in events}
    assert by_request[denied.headers["X-Request-ID"]]["outcome"] == "failure"
    assert by_request[ok.headers["X-Request-ID"]]["outcome"] == "success"
    assert by_request[ok.headers["X-Request-ID"]]["actor"] == user.username


# --- authorisation ---------------------------------------------------------------------------


def test_six_roles(client: Client, admin: dict[str, str]) -> None:
    roles = client.get("/api/v1/roles", headers=admin).json()["roles"]
    assert [r["name"] for r in roles] == [
        "Admin",
        "Manager",
        "Analyst",
        "Supplier",
        "Auditor",
        "Guest",
    ]


def test_tenant_isolation(
    sample_api: SampleApiComponent, client: Client, admin: dict[str, str]
) -> None:
    own = client.get("/api/v1/tenants/vcci-test/suppliers", headers=admin)
    assert own.status_code == 200
    assert {s["tenant"] for s in own.json()["suppliers"]} == {"vcci-test"}
    tenant_a = client.bearer(sample_api.mint_token(subject="a@tenant-a.example", tenant="tenant-a"))
    assert client.get("/api/v1/tenants/tenant-a/suppliers", headers=tenant_a).status_code == 200
    assert_safe_error(
        client.get("/api/v1/tenants/tenant-b/suppliers", headers=tenant_a), 403, "forbidden"
    )
    # An unknown tenant looks the same as someone else's: no existence oracle.
    assert_safe_error(client.get("/api/v1/tenants/nope/suppliers", headers=tenant_a), 403)
    # The API key's Auditor in vcci-test cannot read tenant-a either.
    assert_safe_error(
        client.get("/api/v1/tenants/tenant-a/suppliers", headers={"X-API-Key": sample_api.api_key}),
        403,
    )
    denied = client.get("/api/v1/audit/events?type=authz.denied", headers=admin).json()["events"]
    assert any(e.get("requested_tenant") == "tenant-a" for e in denied)


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("Guest", "/api/v1/suppliers", 403),
        ("Supplier", "/api/v1/audit/events", 403),
        ("Analyst", "/api/v1/audit/events", 403),
        ("Auditor", "/api/v1/audit/events", 200),
        ("Guest", "/api/v1/roles", 200),
    ],
)
def test_permission_boundaries(
    sample_api: SampleApiComponent, client: Client, role: str, path: str, status: int
) -> None:
    headers = client.bearer(sample_api.mint_token(role=role))
    assert client.get(path, headers=headers).status_code == status


def test_auditor_cannot_write(sample_api: SampleApiComponent, client: Client) -> None:
    response = client(
        "POST", "/api/v1/suppliers", json={"name": "x"}, headers={"X-API-Key": sample_api.api_key}
    )
    assert_safe_error(response, 403, "forbidden")


# --- errors and logs -------------------------------------------------------------------------


def test_malformed_json_is_a_generic_400(client: Client, admin: dict[str, str]) -> None:
    response = client(
        "POST",
        "/api/v1/calculations",
        data=b'{"category": 1, "spend_usd": ',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_safe_error(response, 400, "bad_request")
    assert response.json()["message"] == "Request body is not valid JSON"


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Invalid input of every kind: the client's mistake, answered 4xx, never a server error (5xx
# answers are what 6.2.3 fails and what 7.1.1's error rate counts).
INVALID_INPUT: dict[str, tuple[str, str, bytes, str]] = {
    "non-numeric limit": ("GET", "/api/v1/audit/events?limit=not-a-number", b"", ""),
    "negative limit": ("GET", "/api/v1/audit/events?limit=-5", b"", ""),
    "huge limit": ("GET", "/api/v1/audit/events?limit=99999999999999999999", b"", ""),
    "limit with a NUL": ("GET", "/api/v1/audit/events?limit=%00", b"", ""),
    "SQL in a path segment": ("GET", "/api/v1/tenants/x'%20OR%20'1'='1/suppliers", b"", ""),
    "dot-dot and NUL path": ("GET", "/api/v1/%2e%2e/%00", b"", ""),
    "unknown record": ("DELETE", "/api/v1/reports/..%2f..%2fetc", b"", ""),
    "JSON cut short": ("POST", "/api/v1/calculations", b'{"category": 1, ', "application/json"),
    "JSON NaN": (
        "POST",
        "/api/v1/calculations",
        b'{"category":1,"spend_usd":NaN}',
        "application/json",
    ),
    "JSON Infinity": (
        "POST",
        "/api/v1/suppliers",
        b'{"name":"x","spend_usd":Infinity}',
        "application/json",
    ),
    "JSON nested 100,000 deep": ("POST", "/api/v1/reports", deep_json(100_000), "application/json"),
    "not UTF-8": ("POST", "/api/v1/suppliers", b"\xff\xfe{", "application/json"),
    "JSON array for an object": ("POST", "/api/v1/reports", b"[1, 2]", "application/json"),
    "CSV of binary": ("POST", "/api/v1/ingestions", bytes(range(256)), "text/csv"),
    "a zip that is no workbook": ("POST", "/api/v1/ingestions", b"PK\x03\x04broken", XLSX_TYPE),
    "form of garbage": (
        "POST",
        "/api/v1/auth/token",
        b"%%%=&&==",
        "application/x-www-form-urlencoded",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_INPUT))
def test_invalid_input_is_answered_4xx_never_5xx(
    client: Client, admin: dict[str, str], case: str
) -> None:
    method, path, body, content_type = INVALID_INPUT[case]
    headers = {**admin, **({"Content-Type": content_type} if content_type else {})}
    response = client(method, path, data=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert not LEAKS.search(response.text), response.text


def test_invalid_limit_names_the_parameter(client: Client, admin: dict[str, str]) -> None:
    response = client.get("/api/v1/audit/events?limit=not-a-number", headers=admin)
    assert_safe_error(response, 400, "bad_request")
    assert response.json()["message"] == (
        "Query parameter limit must be a whole number from 1 to 500"
    )
    assert client.get("/api/v1/audit/events?limit=2", headers=admin).status_code == 200


def test_without_input_validation_a_bad_limit_is_a_500() -> None:
    # The broken variant 6.2.3 must catch: the same request escapes as an unhandled error.
    app = in_process(validates_input=False)
    token = app.tokens.issue("qa@x", "vcci-test", "Admin")
    response = call(app, "GET", "/api/v1/audit/events?limit=abc", Authorization=f"Bearer {token}")
    assert response.status == 500
    assert b"Traceback" not in response.body


def test_unknown_path_and_method(client: Client) -> None:
    assert_safe_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    wrong = client("PUT", "/health/live")
    assert_safe_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "GET"


def test_access_log_is_json_with_request_ids(
    sample_api: SampleApiComponent, client: Client, admin: dict[str, str]
) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    response = client.get("/api/v1/suppliers", headers={**admin, "X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    generated = client.get("/health/live").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    records = log_records(sample_api)  # every line parses as JSON
    (mine,) = [r for r in records if r.get("request_id") == request_id]
    assert mine == {
        **mine,
        "method": "GET",
        "path": "/api/v1/suppliers",
        "status": 200,
        "tenant": "vcci-test",
        "user": "q***@vcci.greenlang.io",
    }
    assert any(r.get("request_id") == generated for r in records)
    assert all(r.get("request_id") for r in records if r["event"] == "http_request")
    text = sample_api.access_log.read_text()
    assert admin["Authorization"].split()[1] not in text
    assert sample_api.api_key not in text


def test_unsafe_request_id_is_replaced(client: Client) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": 'x" injected\\'})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


# --- rate limiting ---------------------------------------------------------------------------


def burst(
    component: SampleApiComponent, source_ip: str, count: int, headers: dict[str, str]
) -> list[tuple[int, dict[str, str]]]:
    """``count`` GETs on one keep-alive connection from ``source_ip`` (any 127.x is loopback)."""
    context = ssl.create_default_context(cafile=str(component.ca_bundle))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", component.port, context=context, timeout=5, source_address=(source_ip, 0)
    )
    results = []
    try:
        for _ in range(count):
            conn.request("GET", "/api/v1/roles", headers=headers)
            response = conn.getresponse()
            response.read()
            results.append((response.status, dict(response.getheaders())))
    finally:
        conn.close()
    return results


def test_rate_limit_per_ip(
    sample_api: SampleApiComponent, client: Client, admin: dict[str, str]
) -> None:
    results = burst(sample_api, "127.0.0.2", 102, admin)
    statuses = [status for status, _ in results]
    assert statuses[:100] == [200] * 100
    assert statuses[100:] == [429, 429]
    first, last_ok, limited = results[0][1], results[99][1], results[100][1]
    assert first["X-RateLimit-Limit"] == "100"
    assert first["X-RateLimit-Remaining"] == "99"
    assert last_ok["X-RateLimit-Remaining"] == "0"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert 0 < int(limited["X-RateLimit-Reset"]) <= 60
    # Another client IP has its own budget.
    assert client.get("/api/v1/roles", headers=admin).status_code == 200
    assert burst(sample_api, "127.0.0.3", 1, admin)[0][0] == 200


# --- end-to-end workflows (section 9) --------------------------------------------------------


def test_supplier_create_list_delete(client: Client, admin: dict[str, str]) -> None:
    def processed() -> float:
        text = client.get("/metrics").text
        return float(re.search(r"^vcci_suppliers_processed_total (\S+)", text, re.M).group(1))

    before = processed()
    created = client(
        "POST",
        "/api/v1/suppliers",
        headers=admin,
        json={"name": "E2E Steel GmbH", "country": "DE", "spend_usd": 1250.5},
    )
    assert created.status_code == 201
    supplier = created.json()
    assert created.headers["Location"] == f"/api/v1/suppliers/{supplier['id']}"
    listed = client.get("/api/v1/suppliers", headers=admin).json()["suppliers"]
    assert supplier["id"] in {s["id"] for s in listed}
    assert processed() == before + 1
    assert client("DELETE", f"/api/v1/suppliers/{supplier['id']}", headers=admin).status_code == 204
    listed = client.get("/api/v1/suppliers", headers=admin).json()["suppliers"]
    assert supplier["id"] not in {s["id"] for s in listed}
    assert_safe_error(client("DELETE", f"/api/v1/suppliers/{supplier['id']}", headers=admin), 404)


def test_invalid_supplier_is_422_with_field_errors(client: Client, admin: dict[str, str]) -> None:
    response = client(
        "POST",
        "/api/v1/suppliers",
        headers=admin,
        json={"name": "", "country": "Germany", "spend_usd": -1},
    )
    assert_safe_error(response, 422, "validation_error")
    assert len(response.json()["fields"]) == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"category": 1, "spend_usd": 1000}, 350.0),
        ({"category": 4, "tonne_km": 1000, "mode": "rail"}, 28.0),
        ({"category": 6, "distance_km": 1000, "mode": "air"}, 150.0),
    ],
)
def test_calculations_are_answered_and_counted(
    client: Client, admin: dict[str, str], body: dict[str, Any], expected: float
) -> None:
    response = client("POST", "/api/v1/calculations", headers=admin, json=body)
    assert response.status_code == 200
    assert response.json()["emissions_kgco2e"] == pytest.approx(expected)
    assert response.json()["factor"]["source"] == "ecoinvent"
    text = client.get("/metrics").text
    assert re.search(
        rf'^vcci_emissions_calculations_total\{{category="{body["category"]}"\}} '
        r"[1-9]",
        text,
        re.M,
    )


def test_bad_calculation_is_422(client: Client, admin: dict[str, str]) -> None:
    assert_safe_error(
        client("POST", "/api/v1/calculations", headers=admin, json={"category": 2, "spend_usd": 5}),
        422,
        "validation_error",
    )


def test_ingestions_calculations_and_reports_can_be_deleted(
    client: Client, admin: dict[str, str]
) -> None:
    def ids(kind: str) -> set[str]:
        listed = client.get(f"/api/v1/{kind}", headers=admin)
        assert listed.status_code == 200
        return {r["id"] for r in listed.json()[kind]}

    def total() -> float:
        made = client("POST", "/api/v1/reports", headers=admin, json={})
        assert client("DELETE", made.headers["Location"], headers=admin).status_code == 204
        return float(made.json()["total_emissions_kgco2e"])

    before = total()
    ingested = client("POST", "/api/v1/ingestions", headers=admin, json=[{"a": 1}])
    calculated = client(
        "POST", "/api/v1/calculations", headers=admin, json={"category": 1, "spend_usd": 1000}
    )
    reported = client("POST", "/api/v1/reports", headers=admin, json={})
    made = {
        "ingestions": ingested.json()["ingestion_id"],
        "calculations": calculated.json()["calculation_id"],
        "reports": reported.json()["report_id"],
    }
    assert ingested.headers["Location"] == f"/api/v1/ingestions/{made['ingestions']}"
    assert total() == pytest.approx(before + 350.0)
    for kind, record in made.items():
        assert record in ids(kind)
        assert client("DELETE", f"/api/v1/{kind}/{record}", headers=admin).status_code == 204
        assert record not in ids(kind)
        assert_safe_error(client("DELETE", f"/api/v1/{kind}/{record}", headers=admin), 404)
    assert total() == pytest.approx(before)  # the deleted calculation left the total
    events = client.get("/api/v1/audit/events?limit=20", headers=admin).json()["events"]
    kinds = {e["type"] for e in events}
    # The audit trail keeps the record of what was made and deleted.
    assert {"data.ingested", "ingestion.deleted", "calculation.deleted", "report.deleted"} <= kinds


def test_ingestion_and_report_feed_the_business_metrics(
    client: Client, admin: dict[str, str]
) -> None:
    csv = b"supplier,spend_usd\nA,10\nB,20\n"
    ingested = client(
        "POST", "/api/v1/ingestions", data=csv, headers={**admin, "Content-Type": "text/csv"}
    )
    assert ingested.status_code == 202
    assert ingested.json()["records"] == 2
    report = client("POST", "/api/v1/reports", headers=admin, json={"type": "scope3_summary"})
    assert report.status_code == 201
    assert report.json()["status"] == "completed"
    text = client.get("/metrics").text
    assert re.search(r"^vcci_ingestion_bytes_total (\d+)", text, re.M).group(1) != "0"
    assert re.search(r"^vcci_reports_generated_total [1-9]", text, re.M)


# --- configuration-driven behaviour, in-process ----------------------------------------------


def in_process(**config: Any) -> App:
    return App(ApiConfig(jwt=JwtConfig(secret="s" * 48), **config))


def call(app: App, method: str, path: str, body: Any = None, **headers: str) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    return app.handle(Request.build(method, path, headers, data, "127.0.0.1"))


def test_a_component_down_makes_readiness_503() -> None:
    response = call(in_process(health={"redis": "down"}), "GET", "/health/ready")
    assert response.status == 503
    body = json.loads(response.body)
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "down"


def test_factor_providers_down_fall_back_to_proxy_factors() -> None:
    app = in_process(health={"ecoinvent": "down", "desnz": "down", "epa": "down"})
    token = app.tokens.issue("qa@x", "vcci-test", "Analyst")
    response = call(
        app,
        "POST",
        "/api/v1/calculations",
        {"category": 1, "spend_usd": 10},
        Authorization=f"Bearer {token}",
    )
    assert json.loads(response.body)["factor"]["source"] == "proxy"
    assert call(app, "GET", "/factors/ecoinvent/health").status == 503


class RecordedSleep:
    """Stands in for a module's ``time``: sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_simulated_provider_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = RecordedSleep()
    monkeypatch.setattr(sample_api_app, "time", clock)
    app = in_process(latency_ms={"desnz": 150})
    response = call(app, "GET", "/factors/desnz/health")
    assert json.loads(response.body)["latency_ms"] == 150
    assert clock.slept == [0.15]  # the answer waited the configured 150 ms
    call(app, "GET", "/factors/epa/health")  # no latency configured: answered at once
    assert clock.slept == [0.15]


def test_unhandled_errors_are_logged_with_trace_but_answered_generically(tmp_path: Path) -> None:
    app = App(ApiConfig(jwt=JwtConfig(secret="s" * 48), access_log=str(tmp_path / "log.jsonl")))

    def broken(request: Request) -> Any:
        raise RuntimeError("db password=hunter2 at SELECT * FROM suppliers")

    app.live = broken  # type: ignore[method-assign]
    response = call(app, "GET", "/health/live")
    assert response.status == 500
    assert b"hunter2" not in response.body
    assert b"Traceback" not in response.body
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    (failure,) = [r for r in records if r["event"] == "unhandled_exception"]
    assert "RuntimeError" in failure["exception"]  # 5.2.2: stack traces are captured in logs
    assert failure["request_id"] == response.headers["X-Request-ID"]


def test_config_rejects_unknown_keys_and_roles() -> None:
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        ApiConfig.from_mapping({"jwt": {"secret": "x" * 48}, "colour": "green"})
    with pytest.raises(ValueError, match="unknown role 'Owner'"):
        ApiConfig.from_mapping(
            {
                "jwt": {"secret": "x" * 48},
                "users": {"u": {"password": "p", "tenant": "vcci-test", "role": "Owner"}},
            }
        )


def test_certificate_validity_is_what_the_component_asked_for(
    sample_api: SampleApiComponent,
) -> None:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(
        (sample_api.workdir / "pki" / "api" / "cert.pem").read_bytes()
    )
    days = (leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert days == sample_api.cert_days - 1
