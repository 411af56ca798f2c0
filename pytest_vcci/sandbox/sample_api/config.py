"""The sample API's configuration (one JSON document) and the fixed facts it serves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

VERSION = "2.0.0"

# The six roles of checklist item 6.1.2 and what each may do.
ROLE_PERMISSIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Admin": (
            "roles:read",
            "suppliers:read",
            "suppliers:write",
            "suppliers:delete",
            "calculations:run",
            "data:ingest",
            "reports:generate",
            "audit:read",
        ),
        "Manager": (
            "roles:read",
            "suppliers:read",
            "suppliers:write",
            "suppliers:delete",
            "calculations:run",
            "data:ingest",
            "reports:generate",
        ),
        "Analyst": (
            "roles:read",
            "suppliers:read",
            "calculations:run",
            "data:ingest",
            "reports:generate",
        ),
        "Supplier": ("roles:read", "suppliers:read", "data:ingest"),
        "Auditor": ("roles:read", "suppliers:read", "audit:read"),
        "Guest": ("roles:read",),
    }
)
ROLE_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "Admin": "Full control of a tenant, including users and audit logs",
        "Manager": "Manages suppliers, runs calculations and reports",
        "Analyst": "Runs calculations and reports on tenant data",
        "Supplier": "Uploads its own activity data",
        "Auditor": "Read-only access to data and audit logs",
        "Guest": "Read-only access to public reference information",
    }
)

INTEGRATIONS: Mapping[str, str] = MappingProxyType(
    {
        "sap": "SAP S/4HANA",
        "oracle": "Oracle Fusion",
        "workday": "Workday",
    }
)
FACTOR_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "ecoinvent": "Ecoinvent",
        "desnz": "DESNZ",
        "epa": "EPA",
        "proxy": "Proxy factors",
    }
)

CORS_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
CORS_HEADERS = ("Authorization", "Content-Type", "X-API-Key", "X-Request-ID")


@dataclass(frozen=True)
class JwtConfig:
    algorithm: str = "HS256"  # HS256 (secret) or RS256 (key files)
    secret: str | None = None
    private_key: str | None = None  # PEM file, RS256
    public_key: str | None = None  # PEM file, RS256
    key_id: str = "vcci-sandbox-1"
    issuer: str = "https://api.staging.vcci.greenlang.io"
    audience: str = "vcci-api"
    access_ttl: int = 3600  # 4.2.4: JWT expiration 1 hour
    refresh_ttl: int = 7 * 24 * 3600  # 4.2.4: refresh token 7 days


@dataclass(frozen=True)
class ApiConfig:
    jwt: JwtConfig = field(default_factory=JwtConfig)
    # username -> {"password", "tenant", "role"}
    users: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # API key -> {"name", "tenant", "role"}
    api_keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    tenants: tuple[str, ...] = ("vcci-test", "tenant-a", "tenant-b")
    cors_origins: tuple[str, ...] = ("https://vcci.greenlang.io",)
    rate_limit: int = 100  # 3.2.6 / 4.2.3: 100 requests per minute per client IP
    rate_window: int = 60
    # False: a tenant's token reads other tenants' data (a broken variant for 6.1.1).
    tenant_isolation: bool = True
    # False: a bad query parameter (limit=abc) escapes as an unhandled error, a 500 (a broken
    # variant for 6.2.3: a real API answers invalid input with 4xx, never 5xx).
    validates_input: bool = True
    access_log: str | None = None
    # Component or integration name -> "ok" | "down"; anything not named is "ok".
    health: Mapping[str, str] = field(default_factory=dict)
    # Simulated latency of a health endpoint in ms (bounded to 5 s), e.g. {"ecoinvent": 40}.
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    # Simulated operational gauges (db pool, redis memory, queue depth).
    simulated: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ApiConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"config: unknown key {unknown[0]!r} (expected one of {sorted(known)})"
            )
        values = dict(data)
        if "jwt" in values:
            values["jwt"] = JwtConfig(**values["jwt"])
        for key in ("tenants", "cors_origins"):
            if key in values:
                values[key] = tuple(values[key])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.jwt.algorithm not in ("HS256", "RS256"):
            raise ValueError(
                f"config: jwt.algorithm must be HS256 or RS256, got {self.jwt.algorithm!r}"
            )
        if self.jwt.algorithm == "HS256" and not self.jwt.secret:
            raise ValueError("config: jwt.secret is required for HS256")
        if self.jwt.algorithm == "RS256" and not (self.jwt.private_key and self.jwt.public_key):
            raise ValueError("config: jwt.private_key and jwt.public_key are required for RS256")
        # Keys and usernames are secrets or PII: the errors name only the bad value.
        for entry in [*self.users.values(), *self.api_keys.values()]:
            if entry.get("role") not in ROLE_PERMISSIONS:
                raise ValueError(f"config: unknown role {entry.get('role')!r}")
            if entry.get("tenant") not in self.tenants:
                raise ValueError(f"config: unknown tenant {entry.get('tenant')!r}")

    def status_of(self, name: str) -> str:
        return self.health.get(name, "ok")


def load_config(text_or_path: str) -> ApiConfig:
    """``--config`` takes inline JSON or the path of a JSON file."""
    text = text_or_path
    if not text_or_path.lstrip().startswith("{"):
        text = Path(text_or_path).read_text()
    return ApiConfig.from_mapping(json.loads(text))
