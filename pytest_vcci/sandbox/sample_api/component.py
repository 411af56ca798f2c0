"""SampleApiComponent: local PKI + the sample API as a child process, and its environment tables."""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component, SandboxError, free_port, port_open, wait_until
from pytest_vcci.sandbox.pki import LocalCA, key_pem, new_key, write_private

# The names the staging load balancer's certificate covers (1.2.1: wildcard for *.vcci.greenlang.io).
HOSTNAMES = ("api.staging.vcci.greenlang.io", "*.vcci.greenlang.io", "localhost", "127.0.0.1")
TEST_TENANT = "vcci-test"
# With `workload`, staging has been working this long when the sandbox starts (7.1.3).
WORKLOAD_HOURS = 6


@dataclass(frozen=True)
class SandboxUser:
    """The configured test user: POST its credentials to /api/v1/auth/token for a token pair."""

    username: str
    password: str = field(repr=False)
    tenant: str = TEST_TENANT
    role: str = "Admin"


@dataclass
class SampleApiComponent(Component):
    """The sample API on 127.0.0.1 with a fresh local PKI, secrets and signing key per start."""

    name: str = "api"
    port: int = 0
    metrics_port: int = 0  # plain-HTTP /metrics for Prometheus (it does not trust the private CA)
    tls_min: str = "1.2"
    tls_max: str = "1.3"
    jwt_algorithm: str = "RS256"
    rate_limit: int = 100
    cert_days: int = 120  # > 90 days: a fresh sandbox passes the expiry checks
    hostnames: tuple[str, ...] = HOSTNAMES
    overrides: dict[str, Any] = field(default_factory=dict)  # merged into the server's config
    # Staging's steady worker load (workload.py) since workload_started (0: WORKLOAD_HOURS
    # before start()), and its recent past for a Prometheus backfill (history()).
    workload: bool = False
    workload_started: float = 0.0
    # What the emission factor providers take to answer, as the API measures it (9.1.2).
    factor_latency_ms: dict[str, float] = field(default_factory=dict)

    # --- paths ------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self.workdir / self.name

    @property
    def config_path(self) -> Path:
        return self.directory / "config.json"

    @property
    def ca_bundle(self) -> Path:
        return self.workdir / "pki" / "ca" / "ca-bundle.pem"

    @property
    def access_log(self) -> Path:
        return self.log_path(f"{self.name}-access.log")

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.port = self.port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        if self.workload:
            self.workload_started = self.workload_started or time.time() - WORKLOAD_HOURS * 3600
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = LocalCA.create(self.workdir / "pki")
        leaf = ca.issue(self.name, self.hostnames, days=self.cert_days)
        write_private(self.config_path, json.dumps(self._config()).encode())
        argv = [
            sys.executable,
            "-m",
            "pytest_vcci.sandbox.sample_api",
            "--port",
            str(self.port),
            "--cert",
            str(leaf.fullchain),
            "--key",
            str(leaf.key),
            "--config",
            str(self.config_path),
            "--tls-min",
            self.tls_min,
            "--tls-max",
            self.tls_max,
            "--metrics-port",
            str(self.metrics_port),
        ]
        proc = self.spawn(argv, f"{self.name}.log")
        try:
            wait_until(
                self.is_live,
                "sample API",
                timeout=30,
                proc=proc,
                log=self.log_path(f"{self.name}.log"),
            )
        except SandboxError:
            self.stop()
            raise

    def _config(self) -> dict[str, Any]:
        jwt: dict[str, Any] = {"algorithm": self.jwt_algorithm, "issuer": self.base_url}
        if self.jwt_algorithm == "RS256":
            private, public = self.directory / "jwt-signing.key", self.directory / "jwt-signing.pub"
            key = new_key("rsa")
            write_private(private, key_pem(key))
            from cryptography.hazmat.primitives import serialization

            public.write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            jwt.update(private_key=str(private), public_key=str(public))
        else:
            jwt["secret"] = secrets.token_urlsafe(48)
        config: dict[str, Any] = {
            "jwt": jwt,
            "users": {
                "qa-bot@vcci.greenlang.io": {
                    "password": secrets.token_urlsafe(24),
                    "tenant": TEST_TENANT,
                    "role": "Admin",
                }
            },
            # A read-only CI credential: reads data and the audit trail, changes nothing.
            "api_keys": {
                f"vcci_{secrets.token_urlsafe(32)}": {
                    "name": "readiness-ci",
                    "tenant": TEST_TENANT,
                    "role": "Auditor",
                }
            },
            "rate_limit": self.rate_limit,
            "access_log": str(self.access_log),
        }
        if self.workload_started:
            config["simulated"] = {"workload_started": self.workload_started}
        if self.factor_latency_ms:
            config["latency_ms"] = dict(self.factor_latency_ms)
        return {**config, **self.overrides}

    # --- load and its history (7.1.x) -------------------------------------------------------

    def history(self, end: float | None = None) -> list[Any]:
        """The last hour of this API's metrics for a Prometheus backfill (see workload.py);
        empty without ``workload``."""
        from pytest_vcci.sandbox.sample_api.workload import Workload

        if not self.workload_started:
            return []
        return Workload(self.workload_started).history(time.time() if end is None else end)

    def stored_config(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.config_path.read_text())
            return data
        except FileNotFoundError:
            raise SandboxError(
                f"{self.config_path} is missing: start the sample API first"
            ) from None

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the sandbox CA (legacy versions too, if served)."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        if self.tls_max in ("1.0", "1.1"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        return context

    def is_live(self) -> bool:
        """Both ports answer: /health/live over HTTPS and the plain scrape port."""
        return self._https_live() and port_open(self.metrics_port)

    def _https_live(self) -> bool:
        import http.client

        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.client_context(), timeout=2
        )
        try:
            conn.request("GET", "/health/live")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    # --- credentials ------------------------------------------------------------------------

    @property
    def test_user(self) -> SandboxUser:
        username, entry = next(iter(self.stored_config()["users"].items()))
        return SandboxUser(username, entry["password"], entry["tenant"], entry["role"])

    @property
    def api_key(self) -> str:
        return str(next(iter(self.stored_config()["api_keys"])))

    def mint_token(
        self,
        *,
        subject: str | None = None,
        tenant: str = TEST_TENANT,
        role: str = "Admin",
        lifetime: int | None = None,
        now: float | None = None,
        kind: str = "access",
    ) -> str:
        """A token signed with the server's own key, as /api/v1/auth/token would issue it."""
        from pytest_vcci.sandbox.sample_api.auth import TokenService
        from pytest_vcci.sandbox.sample_api.config import JwtConfig

        tokens = TokenService(JwtConfig(**self.stored_config()["jwt"]))
        return tokens.issue(
            subject or self.test_user.username, tenant, role, kind=kind, lifetime=lifetime, now=now
        )

    def scrape_targets(self) -> list[str]:
        """What Prometheus scrapes (the sandbox orchestrator passes it to monitoring)."""
        return [f"http://127.0.0.1:{self.metrics_port}/metrics"]

    # --- environment ------------------------------------------------------------------------

    def env_tables(self) -> dict[str, dict[str, Any]]:
        ca_bundle = str(self.ca_bundle)
        return {
            "api": {
                "base_url": self.base_url,
                "ca_bundle": ca_bundle,
                "token": "${VCCI_SANDBOX_API_TOKEN}",
                "api_key": "${VCCI_SANDBOX_API_KEY}",
            },
            "tls": {"endpoints": [f"127.0.0.1:{self.port}"], "ca_bundle": ca_bundle},
            # The bounded load probe of 7.1.1: read endpoints outside the /api rate limit.
            "performance": {
                "api_endpoints": ["/health/ready", "/health/live", "/openapi.json"],
                "api_requests": 200,
                "api_concurrency": 10,
                "max_seconds": 60,
            },
        }

    def expect(self) -> dict[str, Any]:
        """Names the suites look for, for the environment file's [expect] table."""
        return {
            "api": {
                "server_name": self.hostnames[0],
                "wildcard": "*.vcci.greenlang.io",
                "test_tenant": TEST_TENANT,
                "other_tenant": "tenant-a",  # a tenant the configured credentials must not read
                "cors_origin": "https://vcci.greenlang.io",
                "integrations": ["sap", "oracle", "workday"],
                "factor_providers": ["ecoinvent", "desnz", "epa"],
                # Where calculations take factors from when every provider is down (9.1.2).
                "fallback_factor_provider": "proxy",
                # Custom business metrics its /metrics exposes (4.2.2).
                "business_metrics": [
                    "vcci_emissions_calculations_total",
                    "vcci_suppliers_processed_total",
                    "vcci_reports_generated_total",
                    "vcci_ingestion_bytes_total",
                    "vcci_active_tenants",
                ],
            }
        }

    def env_vars(self) -> dict[str, str]:
        # The token is minted now and lives 1 h (4.2.4); call env_vars() again for a fresh one.
        return {"VCCI_SANDBOX_API_KEY": self.api_key, "VCCI_SANDBOX_API_TOKEN": self.mint_token()}
