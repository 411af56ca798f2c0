"""The api target against the sample API over real HTTPS, configured the way a run is: an
environment file with ``${VAR}`` secrets, loaded by load_settings, wrapped in a RunContext.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support_net import BlackHole, never_answering

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.base import free_port
from pytest_vcci.sandbox.sample_api import SampleApiComponent
from pytest_vcci.settings import ApiTable, load_settings
from pytest_vcci.targets.api import Api, Credentials, api_client, redacted_headers
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable

WRITES = ("POST", "PUT", "PATCH", "DELETE")

# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleApiComponent]:
    # /factors/epa/health answers after 1.5 s: the read-timeout test needs one slow endpoint.
    component = SampleApiComponent(
        workdir=tmp_path_factory.mktemp("api-target"), overrides={"latency_ms": {"epa": 1500}}
    )
    component.start()
    yield component
    component.stop()


@pytest.fixture(scope="module")
def secrets(sample_api: SampleApiComponent) -> dict[str, str]:
    return sample_api.env_vars()


def write_env(directory: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """An environment file; TOML basic strings and arrays read JSON's spelling of them."""
    lines = ["[environment]", 'name = "sandbox"']
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = directory / "sandbox.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_context(
    directory: Path,
    tables: dict[str, dict[str, Any]],
    env: dict[str, str],
    *,
    allow_intrusive: bool = False,
    strict: bool = False,
) -> RunContext:
    directory.mkdir(parents=True, exist_ok=True)
    settings = load_settings(write_env(directory, tables), env=env)
    return RunContext(
        settings,
        Redactor(settings.secrets()),
        "run",
        directory / "run",
        strict=strict,
        allow_intrusive=allow_intrusive,
    )


def api_tables(component: SampleApiComponent, **api: Any) -> dict[str, dict[str, Any]]:
    tables = component.env_tables()
    tables["api"].update({"connect_timeout": 1, "read_timeout": 5, **api})
    return tables


@pytest.fixture
def context(tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]) -> RunContext:
    return make_context(tmp_path, api_tables(sample_api), secrets)


@pytest.fixture
def api(context: RunContext) -> Iterator[Api]:
    client = api_client(context)
    yield client
    client.close()


def log_lines(component: SampleApiComponent) -> list[dict[str, Any]]:
    return [json.loads(line) for line in component.access_log.read_text().splitlines()]


# --- authentication --------------------------------------------------------------------------


def test_configured_token_is_sent(api: Api, sample_api: SampleApiComponent) -> None:
    me = api.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["auth"] == "jwt"
    assert me.json()["subject"] == sample_api.test_user.username


def test_variants_authenticate_differently_and_leave_the_original_alone(api: Api) -> None:
    by_key = api.with_api_key().get("/api/v1/me")
    assert by_key.json()["auth"] == "api_key"
    assert by_key.json()["role"] == "Auditor"
    anonymous = api.anonymous().get("/api/v1/me")
    assert anonymous.status_code == 401
    assert "Authorization" not in anonymous.request.headers
    assert "X-API-Key" not in anonymous.request.headers
    forged = api.with_token("not.a.jwt").get("/api/v1/me")
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
    assert api.get("/api/v1/me").json()["auth"] == "jwt"


def test_api_key_only_table_uses_the_key(
    tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]
) -> None:
    tables = api_tables(sample_api)
    del tables["api"]["token"]
    client = api_client(make_context(tmp_path, tables, secrets))
    try:
        assert client.get("/api/v1/me").json()["auth"] == "api_key"
        assert client.describe()["auth"] == "API key (X-API-Key)"
    finally:
        client.close()


# --- the read-only guard ---------------------------------------------------------------------


def test_reads_go_through(api: Api) -> None:
    assert api.get("/health/live").status_code == 200
    assert api.head("/health/live").status_code == 200
    options = api.options("/api/v1/suppliers")
    assert options.status_code == 204
    assert "POST" in options.headers["Allow"]


@pytest.mark.parametrize("method", WRITES)
def test_writes_are_refused_before_anything_is_sent(
    api: Api, sample_api: SampleApiComponent, method: str
) -> None:
    api.get("/health/live")  # the gate's probe and the connection are already in place
    before = len(log_lines(sample_api))
    request_id = f"guard-{uuid.uuid4().hex}"
    with pytest.raises(ReadOnlyViolation) as refused:
        api.request(
            method,
            "/api/v1/suppliers/sup_guard",
            json={"name": "x"},
            headers={"X-Request-ID": request_id},
        )
    message = str(refused.value)
    assert f"{method} /api/v1/suppliers/sup_guard" in message
    assert "--vcci-allow-intrusive" in message
    # Nothing arrived: the server logged no request at all, and none with this request ID.
    after = log_lines(sample_api)
    assert len(after) == before
    assert not any(r.get("request_id") == request_id for r in after)


def test_the_log_would_show_a_request_that_arrived(
    api: Api, sample_api: SampleApiComponent
) -> None:
    """The control for the test above: the same evidence does see a request that is sent."""
    request_id = f"control-{uuid.uuid4().hex}"
    api.get("/api/v1/suppliers", headers={"X-Request-ID": request_id})
    assert any(r.get("request_id") == request_id for r in log_lines(sample_api))


def test_shortcut_write_methods_are_guarded_too(api: Api) -> None:
    for call in (api.post, api.put, api.patch, api.delete):
        with pytest.raises(ReadOnlyViolation):
            call("/api/v1/suppliers")


def test_intrusive_needs_the_run_to_allow_it(api: Api) -> None:
    with pytest.raises(ReadOnlyViolation, match="--vcci-allow-intrusive"):
        api.intrusive()


def test_intrusive_session_can_create_and_clean_up(
    tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]
) -> None:
    context = make_context(tmp_path, api_tables(sample_api), secrets, allow_intrusive=True)
    client = api_client(context)
    try:
        writer = client.intrusive()
        created = writer.post("/api/v1/suppliers", json={"name": "Intrusive Test Ltd"})
        assert created.status_code == 201
        supplier_id = created.json()["id"]
        assert writer.delete(f"/api/v1/suppliers/{supplier_id}").status_code == 204
        assert "intrusive" in repr(writer)
        with pytest.raises(ReadOnlyViolation):  # the original stays read-only
            client.post("/api/v1/suppliers", json={"name": "x"})
    finally:
        client.close()


# --- bounded time and fail fast --------------------------------------------------------------


def test_defaults_no_retries_and_both_timeouts(api: Api) -> None:
    adapter = api.session.get_adapter(api.base_url)
    assert adapter.max_retries.total == 0
    assert api.timeout == (1.0, 5.0)
    response = api.get("/health/live", timeout=None)  # None does not mean "wait forever"
    assert response.status_code == 200


def test_retries_only_for_reads(
    tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]
) -> None:
    client = api_client(make_context(tmp_path, api_tables(sample_api, retries=2), secrets))
    retry = client.session.get_adapter(client.base_url).max_retries
    assert retry.total == 2
    assert "POST" not in retry.allowed_methods
    client.close()


def test_read_timeout_bounds_a_slow_endpoint(
    tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]
) -> None:
    context = make_context(tmp_path, api_tables(sample_api, read_timeout=0.3), secrets)
    client = api_client(context)
    try:
        with pytest.raises(TargetUnreachable) as down:
            client.get("/factors/epa/health")  # answers after 1.5 s
        # urllib3's own words: the configured read timeout, not the answer, ended the wait.
        assert "ReadTimeout" in down.value.cause
        assert "(read timeout=0.3)" in down.value.cause
    finally:
        client.close()


def test_server_stopped_mid_run_fails_fast_with_one_cause(tmp_path: Path) -> None:
    component = SampleApiComponent(workdir=tmp_path / "sandbox", jwt_algorithm="HS256")
    component.start()
    context = make_context(tmp_path / "env", api_tables(component), component.env_vars())
    client = api_client(context)
    try:
        assert client.get("/health/live").status_code == 200
        component.stop()
        with pytest.raises(TargetUnreachable) as first:
            client.get("/health/live")
        assert first.value.target == "api"
        assert "ConnectionError" in first.value.cause
        with BlackHole(component.port) as server:  # the address takes connections again
            with pytest.raises(TargetUnreachable) as second:
                client.get("/api/v1/me")
            with pytest.raises(TargetUnreachable) as third:  # another worker's client
                api_client(context).get("/health/live")
            assert server.connections() == 0  # marked down for the run: nothing was sent
        assert second.value.cause == third.value.cause == first.value.cause
    finally:
        client.close()
        component.stop()


def test_server_down_from_the_start_is_probed_once(tmp_path: Path, secrets: dict[str, str]) -> None:
    port = free_port()  # nothing listens: a stopped server
    tables = {
        "api": {
            "base_url": f"https://127.0.0.1:{port}",
            "token": "${VCCI_SANDBOX_API_TOKEN}",
            "connect_timeout": 1,
            "read_timeout": 2,
        }
    }
    context = make_context(tmp_path, tables, secrets)
    with pytest.raises(TargetUnreachable) as first:
        api_client(context).get("/health/live")
    assert "Connection refused" in first.value.cause
    state = json.loads((context.run_dir / "targets" / "api.json").read_text())
    assert state == {"ok": False, "cause": first.value.cause}


def test_never_answering_socket_costs_one_connect_timeout(
    tmp_path: Path, secrets: dict[str, str]
) -> None:
    with never_answering() as port:
        tables = {
            "api": {
                "base_url": f"https://127.0.0.1:{port}",
                "token": "${VCCI_SANDBOX_API_TOKEN}",
                "connect_timeout": 0.5,
                "read_timeout": 5,
            }
        }
        context = make_context(tmp_path, tables, secrets)
        client = api_client(context)
        with pytest.raises(TargetUnreachable) as first:
            client.get("/health/live")
        # urllib3's own words: the connect timeout of the probe ended the wait.
        assert "ConnectTimeout" in first.value.cause
        assert "(connect timeout=0.5)" in first.value.cause
    # The full accept queue is gone: a new attempt would now be accepted, and counted.
    with BlackHole(port) as server:
        with pytest.raises(TargetUnreachable) as second:
            client.get("/api/v1/me")
        assert server.connections() == 0  # no new connection attempt
    assert second.value.cause == first.value.cause
    assert secrets["VCCI_SANDBOX_API_TOKEN"] not in str(first.value)


def test_silent_server_costs_one_connect_timeout_not_a_read_timeout(
    tmp_path: Path, secrets: dict[str, str]
) -> None:
    """The kernel accepts the connection; nothing ever answers the TLS ClientHello."""
    with BlackHole() as server:
        tables = {
            "api": {
                "base_url": f"https://127.0.0.1:{server.port}",
                "connect_timeout": 0.5,
                "read_timeout": 5,
            }
        }
        client = api_client(make_context(tmp_path, tables, secrets))
        with pytest.raises(TargetUnreachable) as down:
            client.get("/health/live")
        # urllib3's own words: the wait that ended was the connect timeout, not read_timeout=5.
        assert "timed out" in down.value.cause
        assert "(read timeout=0.5)" in down.value.cause
        assert server.connections() == 1  # the probe alone; the GET itself was never sent


def test_untrusted_certificate_is_a_clear_failure(
    tmp_path: Path, sample_api: SampleApiComponent, secrets: dict[str, str]
) -> None:
    tables = api_tables(sample_api)
    del tables["api"]["ca_bundle"]  # the sandbox CA is private: nothing else trusts it
    with pytest.raises(TargetUnreachable) as down:
        api_client(make_context(tmp_path, tables, secrets)).get("/health/live")
    assert "SSLError" in down.value.cause
    assert "certificate verify failed" in down.value.cause


# --- secrets never leave ---------------------------------------------------------------------


def test_token_and_key_never_in_describe_repr_or_errors(api: Api, secrets: dict[str, str]) -> None:
    token, key = secrets["VCCI_SANDBOX_API_TOKEN"], secrets["VCCI_SANDBOX_API_KEY"]
    with pytest.raises(ReadOnlyViolation) as refused:
        api.post("/api/v1/suppliers", json={})
    texts = [
        json.dumps(api.describe()),
        repr(api),
        repr(api.credentials),
        str(refused.value),
        repr(api.with_api_key()),
        json.dumps(api.with_api_key().describe()),
    ]
    for text in texts:
        assert token not in text
        assert key not in text
    assert api.describe() == {
        **api.describe(),
        "auth": "bearer token",
        "writable": False,
        "base_url": api.base_url,
    }


def test_evidence_redacts_credentials(api: Api, secrets: dict[str, str]) -> None:
    response = api.get("/api/v1/me", headers={"Cookie": "session=abc123"})
    evidence = api.evidence(response)
    assert evidence["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert evidence["request"]["headers"]["Cookie"] == "[REDACTED]"
    assert evidence["response"]["status"] == 200
    assert evidence["response"]["headers"]["X-Request-ID"]
    assert secrets["VCCI_SANDBOX_API_TOKEN"] not in json.dumps(evidence)
    keyed = api.with_api_key().get("/api/v1/me")
    assert api.evidence(keyed)["request"]["headers"]["X-API-Key"] == "[REDACTED]"


def test_redacted_headers_of_a_prepared_request_and_a_mapping() -> None:
    prepared = requests.Request(
        "GET",
        "https://api.example/x",
        headers={
            "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
            "X-API-Key": "vcci_secret",
            "Cookie": "a=b",
            "Accept": "application/json",
            "X-Tenant-Key": "t0k",
        },
    ).prepare()
    headers = redacted_headers(prepared, extra=["X-Tenant-Key"])
    assert headers["Authorization"] == headers["X-API-Key"] == headers["Cookie"] == "[REDACTED]"
    assert headers["X-Tenant-Key"] == "[REDACTED]"
    assert headers["Accept"] == "application/json"
    assert redacted_headers({"set-cookie": "s=1", "Server": "x"}) == {
        "set-cookie": "[REDACTED]",
        "Server": "x",
    }


def test_credentials_repr_hides_the_secret() -> None:
    assert "s3cr3t" not in repr(Credentials("bearer", "s3cr3t"))
    assert Credentials("bearer", "s3cr3t").headers() == {"Authorization": "Bearer s3cr3t"}


# --- URLs and configuration ------------------------------------------------------------------


def test_urls_stay_under_the_base_url() -> None:
    client = Api(ApiTable(base_url="https://api.example/v2/", token="t0ken-value"))
    assert client.url("/health/live") == "https://api.example/v2/health/live"
    assert client.url("health/live") == "https://api.example/v2/health/live"
    assert client.url("https://api.example/v2/x") == "https://api.example/v2/x"
    for elsewhere in ("https://evil.example/x", "https://api.example/v2x", "https://api.example/"):
        with pytest.raises(ValueError, match="not under"):
            client.url(elsewhere)


def test_password_in_base_url_is_not_described() -> None:
    client = Api(ApiTable(base_url="https://user:hunter2@api.example:8443"))
    assert "hunter2" not in json.dumps(client.describe())
    assert "hunter2" not in repr(client)
    assert client.describe()["base_url"] == "https://api.example:8443"


def test_missing_table_skips_and_strict_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"\[api\] is not configured"):
        api_client(make_context(tmp_path / "a", {}, {}))
    with pytest.raises(pytest.fail.Exception, match="--vcci-strict"):
        api_client(make_context(tmp_path / "b", {}, {}, strict=True))


def test_with_api_key_needs_a_key() -> None:
    with pytest.raises(ValueError, match=r"\[api\].api_key"):
        Api(ApiTable(base_url="https://api.example")).with_api_key()


def test_session_fixture_in_a_real_pytest_run(
    pytester: pytest.Pytester,
    tmp_path: Path,
    sample_api: SampleApiComponent,
    secrets: dict[str, str],
) -> None:
    env_path = write_env(tmp_path, api_tables(sample_api))
    pytester.makeconftest(
        textwrap.dedent(f"""
        import pytest
        from pytest_vcci.context import RunContext
        from pytest_vcci.evidence.redaction import Redactor
        from pytest_vcci.settings import load_settings
        from pytest_vcci.targets.api import api  # noqa: F401  (the fixture under test)

        @pytest.fixture(scope="session")
        def vcci_context(tmp_path_factory):
            settings = load_settings({str(env_path)!r}, env={secrets!r})
            return RunContext(settings, Redactor(settings.secrets()), "run",
                              tmp_path_factory.mktemp("run"))
    """)
    )
    pytester.makepyfile(
        textwrap.dedent("""
        import pytest
        from pytest_vcci.targets.base import ReadOnlyViolation

        def test_reads(api):
            assert api.get("/api/v1/me").json()["auth"] == "jwt"

        def test_writes(api):
            with pytest.raises(ReadOnlyViolation):
                api.post("/api/v1/suppliers", json={})

        def test_same_session_client(api, request):
            assert request.getfixturevalue("api") is api
    """)
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
