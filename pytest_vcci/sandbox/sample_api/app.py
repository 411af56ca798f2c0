"""The sample GL-VCCI API as a plain function of a request: routing, auth, CORS, limits, logs.

Kept apart from the HTTP server so every rule here reads as one small method.
"""

from __future__ import annotations

import json
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from pytest_vcci.sandbox.sample_api import docs
from pytest_vcci.sandbox.sample_api.auth import Authenticator, AuthError, Principal, TokenService
from pytest_vcci.sandbox.sample_api.config import (
    CORS_HEADERS,
    CORS_METHODS,
    FACTOR_PROVIDERS,
    INTEGRATIONS,
    ROLE_DESCRIPTIONS,
    ROLE_PERMISSIONS,
    VERSION,
    ApiConfig,
)
from pytest_vcci.sandbox.sample_api.state import (
    AuditTrail,
    JsonLog,
    Metrics,
    RateLimiter,
    SupplierStore,
    WorkStore,
    mask_email,
    now_rfc3339,
)

MAX_SIMULATED_LATENCY_MS = 5000.0
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_ip: str
    request_id: str = ""
    route: str = "unmatched"
    principal: Principal | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def build(
        cls, method: str, target: str, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> Request:
        path, _, query = target.partition("?")
        lowered = {k.lower(): v for k, v in headers.items()}
        incoming = lowered.get("x-request-id", "")
        # Honour a caller's request ID only if it is a safe token; it goes into logs verbatim.
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        return cls(
            method.upper(), path or "/", parse_qs(query), lowered, body, client_ip, request_id
        )

    def json(self) -> Any:
        """The JSON body; BadRequest (a generic 400) if it is not valid JSON."""
        try:
            return (
                json.loads(self.body.decode("utf-8"), parse_constant=_no_constant)
                if self.body
                else {}
            )
        # NaN/Infinity are not JSON; a body nested thousands deep exhausts the parser's stack.
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadRequest("Request body is not valid JSON") from None

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        """A whole-number query parameter in [low, high]; BadRequest naming it otherwise."""
        raw = (self.query.get(name) or [""])[0].strip()
        if not raw:
            return default
        if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
            raise BadRequest(f"Query parameter {name} must be a whole number from {low} to {high}")
        return int(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """A 400 whose message is safe to show (no internals)."""


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, "application/json", dict(headers or {}))


def error(
    status: int,
    code: str,
    message: str,
    request: Request,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    data = {"error": code, "message": message, "request_id": request.request_id, **extra}
    return json_response(status, data, headers)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str
    summary: str
    tag: str
    auth: bool = False
    permission: str | None = None
    status: int = 200
    body: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")

    @property
    def rate_limited(self) -> bool:
        return self.template.startswith("/api/")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", "frontend", "Frontend page", "frontend"),
    Route("GET", "/static/app.js", "app_js", "Frontend script", "frontend"),
    Route("GET", "/health/live", "live", "Liveness probe", "health"),
    Route("GET", "/health/ready", "ready", "Readiness probe with component checks", "health"),
    Route("GET", "/metrics", "prometheus", "Prometheus metrics", "observability"),
    Route("GET", "/openapi.json", "openapi", "This OpenAPI document", "docs"),
    Route("GET", "/docs", "docs_page", "API documentation (HTML)", "docs"),
    Route("GET", "/.well-known/openid-configuration", "oidc", "OIDC discovery", "auth"),
    Route("GET", "/.well-known/jwks.json", "jwks", "Token signing keys", "auth"),
    Route(
        "GET",
        "/integrations/{integration}/health",
        "integration_health",
        "ERP connector health (sap, oracle, workday)",
        "integrations",
    ),
    Route(
        "GET",
        "/factors/{provider}/health",
        "factor_health",
        "Emission factor provider health (ecoinvent, desnz, epa, proxy)",
        "integrations",
    ),
    Route(
        "POST",
        "/api/v1/auth/token",
        "token",
        "Issue access (1 h) and refresh (7 d) tokens",
        "auth",
        body=True,
    ),
    Route("POST", "/api/v1/auth/refresh", "refresh", "Exchange a refresh token", "auth", body=True),
    Route("GET", "/api/v1/me", "me", "The authenticated principal", "auth", auth=True),
    Route(
        "GET",
        "/api/v1/roles",
        "roles",
        "The six RBAC roles",
        "auth",
        auth=True,
        permission="roles:read",
    ),
    Route(
        "GET",
        "/api/v1/tenants/{tenant}/suppliers",
        "tenant_suppliers",
        "Suppliers of one tenant (own tenant only)",
        "suppliers",
        auth=True,
        permission="suppliers:read",
    ),
    Route(
        "GET",
        "/api/v1/suppliers",
        "list_suppliers",
        "Suppliers of the caller's tenant",
        "suppliers",
        auth=True,
        permission="suppliers:read",
    ),
    Route(
        "POST",
        "/api/v1/suppliers",
        "create_supplier",
        "Create a supplier",
        "suppliers",
        auth=True,
        permission="suppliers:write",
        status=201,
        body=True,
    ),
    Route(
        "DELETE",
        "/api/v1/suppliers/{supplier_id}",
        "delete_supplier",
        "Delete a supplier",
        "suppliers",
        auth=True,
        permission="suppliers:delete",
        status=204,
    ),
    Route(
        "POST",
        "/api/v1/calculations",
        "calculate",
        "Scope 3 calculation (category 1, 4 or 6)",
        "calculations",
        auth=True,
        permission="calculations:run",
        body=True,
    ),
    Route(
        "POST",
        "/api/v1/ingestions",
        "ingest",
        "Upload activity data (JSON, CSV or Excel .xlsx)",
        "calculations",
        auth=True,
        permission="data:ingest",
        status=202,
        body=True,
    ),
    Route(
        "POST",
        "/api/v1/reports",
        "create_report",
        "Generate a report",
        "calculations",
        auth=True,
        permission="reports:generate",
        status=201,
        body=True,
    ),
    Route(
        "GET",
        "/api/v1/ingestions",
        "list_ingestions",
        "Uploads of the caller's tenant",
        "calculations",
        auth=True,
        permission="data:ingest",
    ),
    Route(
        "DELETE",
        "/api/v1/ingestions/{record_id}",
        "delete_ingestion",
        "Withdraw an upload",
        "calculations",
        auth=True,
        permission="data:ingest",
        status=204,
    ),
    Route(
        "GET",
        "/api/v1/calculations",
        "list_calculations",
        "Calculations of the caller's tenant",
        "calculations",
        auth=True,
        permission="calculations:run",
    ),
    Route(
        "DELETE",
        "/api/v1/calculations/{record_id}",
        "delete_calculation",
        "Delete a calculation (its emissions leave the tenant's total)",
        "calculations",
        auth=True,
        permission="calculations:run",
        status=204,
    ),
    Route(
        "GET",
        "/api/v1/reports",
        "list_reports",
        "Reports of the caller's tenant",
        "calculations",
        auth=True,
        permission="reports:generate",
    ),
    Route(
        "DELETE",
        "/api/v1/reports/{record_id}",
        "delete_report",
        "Delete a report",
        "calculations",
        auth=True,
        permission="reports:generate",
        status=204,
    ),
    Route(
        "GET",
        "/api/v1/audit/events",
        "audit_events",
        "Recent audit events",
        "audit",
        auth=True,
        permission="audit:read",
    ),
)

# kgCO2e per unit, rounded public averages: enough for a stand-in, not for reporting.
FACTORS: Mapping[int, tuple[str, Mapping[str, float], str]] = MappingProxyType(
    {
        1: ("spend_usd", MappingProxyType({"default": 0.35}), "kgCO2e/USD"),
        4: (
            "tonne_km",
            MappingProxyType({"road": 0.105, "rail": 0.028, "sea": 0.016, "air": 1.13}),
            "kgCO2e/tkm",
        ),
        6: (
            "distance_km",
            MappingProxyType({"air": 0.15, "rail": 0.035, "car": 0.17}),
            "kgCO2e/km",
        ),
    }
)

Handler = Callable[..., Response]


class App:
    """One instance per server process; all state lives here."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.tokens = TokenService(config.jwt)
        self.auth = Authenticator(config, self.tokens)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window)
        self.suppliers = SupplierStore(config.tenants)
        self.work = WorkStore()
        self.audit = AuditTrail()
        self.metrics = Metrics(config)
        self.log = JsonLog(config.access_log)
        self.started = time.time()
        self.emissions: dict[str, float] = {t: 0.0 for t in config.tenants}
        self.openapi_doc = docs.openapi_document(config, ROUTES)

    # --- the request pipeline ---------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            response = self.dispatch(request)
        except BadRequest as exc:
            response = error(400, "bad_request", str(exc), request)
        except Exception:
            # The trace goes to the log (5.2.2) and never to the client (6.2.3).
            self.log.write(
                {
                    "level": "error",
                    "event": "unhandled_exception",
                    "request_id": request.request_id,
                    "path": request.path,
                    "exception": traceback.format_exc(),
                }
            )
            response = error(
                500,
                "internal_error",
                "An internal error occurred; quote the request ID to support",
                request,
            )
        self.finish(request, response)
        return response

    def dispatch(self, request: Request) -> Response:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return self.preflight(request)
        route, params, allowed = self.match(request)
        if route is None:
            if allowed:
                if request.method == "OPTIONS":
                    return Response(
                        204, headers={"Allow": ", ".join(sorted({*allowed, "OPTIONS"}))}
                    )
                return error(
                    405,
                    "method_not_allowed",
                    "Method not allowed",
                    request,
                    {"Allow": ", ".join(sorted(allowed))},
                )
            return error(404, "not_found", "No such resource", request)
        request.route = route.template
        limit_headers: dict[str, str] = {}
        if route.rate_limited:
            decision = self.limiter.hit(request.client_ip)
            limit_headers = decision.headers()
            if not decision.allowed:
                return error(
                    429, "rate_limited", "Too many requests; retry later", request, limit_headers
                )
        response = self.authorised_call(route, request, params)
        response.headers.update(limit_headers)
        return response

    def match(self, request: Request) -> tuple[Route | None, dict[str, str], set[str]]:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: set[str] = set()
        for route in ROUTES:
            found = route.pattern.match(request.path)
            if found:
                allowed.add(route.method)
                if route.method == method:
                    return route, found.groupdict(), allowed
        return None, {}, allowed

    def authorised_call(self, route: Route, request: Request, params: dict[str, str]) -> Response:
        handler: Handler = getattr(self, route.handler)
        if not route.auth:
            return handler(request, **params)
        try:
            principal = self.auth.authenticate(request.headers)
        except AuthError as exc:
            challenge = f'Bearer realm="vcci", error="{exc.code}"'
            return error(401, exc.code, exc.message, request, {"WWW-Authenticate": challenge})
        request.principal = principal
        if route.permission and not principal.can(route.permission):
            self.audit_event(request, "authz.denied", "denied", permission=route.permission)
            return error(403, "forbidden", "Your role does not allow this", request)
        return handler(request, principal, **params)

    def finish(self, request: Request, response: Response) -> None:
        response.headers.update(self.cors_headers(request))
        response.headers.update(
            {
                "X-Request-ID": request.request_id,
                "X-Content-Type-Options": "nosniff",
                "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
                "Cache-Control": response.headers.get("Cache-Control", "no-store"),
            }
        )
        elapsed = time.perf_counter() - request.started
        self.metrics.observe(request.method, request.route, response.status, elapsed)
        principal = request.principal
        self.log.write(
            {
                "level": "info",
                "event": "http_request",
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "route": request.route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 3),
                "client_ip": request.client_ip,
                "user_agent": request.headers.get("user-agent"),
                "tenant": principal.tenant if principal else None,
                "user": mask_email(principal.subject) if principal else None,
            }
        )

    # --- CORS (4.1.5) -------------------------------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        # "*" reflects any Origin with credentials allowed: the misconfiguration 4.1.5 must catch.
        return origin is not None and (
            origin in self.config.cors_origins or "*" in self.config.cors_origins
        )

    def cors_headers(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or not self.origin_allowed(origin):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": "X-Request-ID, X-RateLimit-Limit, "
            "X-RateLimit-Remaining, X-RateLimit-Reset",
            "Vary": "Origin",
        }

    def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin", "")
        method = request.headers.get("access-control-request-method", "").upper()
        if not self.origin_allowed(origin) or method not in CORS_METHODS:
            # No Access-Control-Allow-Origin: the browser blocks the real request.
            return error(403, "cors_denied", "Origin or method not allowed", request)
        return Response(
            204,
            headers={
                "Access-Control-Allow-Methods": ", ".join(CORS_METHODS),
                "Access-Control-Allow-Headers": ", ".join(CORS_HEADERS),
                "Access-Control-Max-Age": "600",
            },
        )

    # --- public pages and probes --------------------------------------------------------------

    def frontend(self, request: Request) -> Response:
        return Response(
            200,
            docs.FRONTEND_HTML.encode(),
            "text/html; charset=utf-8",
            {"Cache-Control": "no-cache"},
        )

    def app_js(self, request: Request) -> Response:
        return Response(
            200,
            docs.APP_JS.encode(),
            "application/javascript; charset=utf-8",
            {"Cache-Control": "public, max-age=3600"},
        )

    def live(self, request: Request) -> Response:
        return json_response(
            200,
            {
                "status": "ok",
                "version": VERSION,
                "uptime_seconds": round(time.time() - self.started, 3),
            },
        )

    def ready(self, request: Request) -> Response:
        checks = {}
        for component in ("database", "redis", "workers", "object_storage"):
            status = self.config.status_of(component)
            checks[component] = {
                "status": status,
                "latency_ms": self.simulate_latency(component, default=1.0),
            }
        ok = all(c["status"] == "ok" for c in checks.values())
        return json_response(
            200 if ok else 503,
            {"status": "ok" if ok else "unavailable", "version": VERSION, "checks": checks},
        )

    def prometheus(self, request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(200, body, content_type)

    def openapi(self, request: Request) -> Response:
        return json_response(200, self.openapi_doc)

    def docs_page(self, request: Request) -> Response:
        return Response(200, docs.docs_html(self.openapi_doc).encode(), "text/html; charset=utf-8")

    def oidc(self, request: Request) -> Response:
        return json_response(200, docs.oidc_document(self.config))

    def jwks(self, request: Request) -> Response:
        return json_response(200, self.tokens.jwks())

    def integration_health(self, request: Request, integration: str) -> Response:
        if integration not in INTEGRATIONS:
            return error(404, "not_found", "No such integration", request)
        return self.dependency_health(
            integration,
            INTEGRATIONS[integration],
            {"tenant": "vcci-test", "last_sync": now_rfc3339()},
        )

    def factor_health(self, request: Request, provider: str) -> Response:
        if provider not in FACTOR_PROVIDERS:
            return error(404, "not_found", "No such emission factor provider", request)
        return self.dependency_health(provider, FACTOR_PROVIDERS[provider], {})

    def dependency_health(self, key: str, name: str, extra: dict[str, Any]) -> Response:
        status = self.config.status_of(key)
        latency = self.simulate_latency(key, default=0.0)
        return json_response(
            200 if status == "ok" else 503,
            {"name": name, "status": status, "latency_ms": latency, **extra},
        )

    def simulate_latency(self, key: str, default: float) -> float:
        latency = min(float(self.config.latency_ms.get(key, default)), MAX_SIMULATED_LATENCY_MS)
        if key in self.config.latency_ms:
            time.sleep(latency / 1000)
        return latency

    # --- auth ---------------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        form = self.credentials(request)
        principal = self.auth.login(form.get("username", ""), form.get("password", ""))
        tenant = self.config.users.get(form.get("username", ""), {}).get("tenant")
        if principal is None:
            self.audit_event(
                request, "auth.login", "failure", actor=form.get("username"), tenant=tenant
            )
            return error(401, "invalid_grant", "Invalid username or password", request)
        self.audit_event(
            request,
            "auth.login",
            "success",
            actor=principal.subject,
            tenant=principal.tenant,
            role=principal.role,
        )
        return json_response(200, self.token_pair(principal), {"Cache-Control": "no-store"})

    def credentials(self, request: Request) -> dict[str, str]:
        """OAuth2 password grant as a form, or the same fields as JSON."""
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        data = request.json()
        if not isinstance(data, dict):
            raise BadRequest("Expected a JSON object")
        return {k: str(v) for k, v in data.items()}

    def token_pair(self, principal: Principal) -> dict[str, Any]:
        jwt = self.config.jwt
        return {
            "access_token": self.tokens.issue(principal.subject, principal.tenant, principal.role),
            "token_type": "Bearer",
            "expires_in": jwt.access_ttl,
            "refresh_token": self.tokens.issue(
                principal.subject, principal.tenant, principal.role, kind="refresh"
            ),
            "refresh_expires_in": jwt.refresh_ttl,
        }

    def refresh(self, request: Request) -> Response:
        token = self.credentials(request).get("refresh_token", "")
        try:
            claims = self.tokens.verify(token, kind="refresh")
        except AuthError as exc:
            self.audit_event(request, "auth.refresh", "failure")
            return error(401, exc.code, exc.message, request)
        principal = Principal(str(claims["sub"]), str(claims["tenant"]), str(claims["role"]), "jwt")
        self.audit_event(
            request, "auth.refresh", "success", actor=principal.subject, tenant=principal.tenant
        )
        return json_response(200, self.token_pair(principal), {"Cache-Control": "no-store"})

    def me(self, request: Request, principal: Principal) -> Response:
        return json_response(
            200,
            {
                "subject": principal.subject,
                "tenant": principal.tenant,
                "role": principal.role,
                "auth": principal.via,
                "permissions": list(ROLE_PERMISSIONS[principal.role]),
            },
        )

    def roles(self, request: Request, principal: Principal) -> Response:
        roles = [
            {"name": name, "description": ROLE_DESCRIPTIONS[name], "permissions": list(perms)}
            for name, perms in ROLE_PERMISSIONS.items()
        ]
        return json_response(200, {"roles": roles})

    def audit_event(
        self,
        request: Request,
        kind: str,
        outcome: str,
        *,
        actor: str | None = None,
        tenant: str | None = None,
        **detail: Any,
    ) -> None:
        principal = request.principal
        self.audit.record(
            kind,
            outcome,
            actor=actor or (principal.subject if principal else None),
            tenant=tenant or (principal.tenant if principal else None),
            request_id=request.request_id,
            client_ip=request.client_ip,
            **detail,
        )

    def audit_events(self, request: Request, principal: Principal) -> Response:
        if self.config.validates_input:
            limit = request.int_param("limit", 50, 1, 500)
        else:  # the broken variant: int("abc") escapes as an unhandled error (a 500)
            limit = min(int((request.query.get("limit") or ["50"])[0] or 50), 500)
        kinds = request.query.get("type")
        kind = kinds[0] if kinds else None
        return json_response(200, {"events": self.audit.recent(principal.tenant, limit, kind)})

    # --- tenant data --------------------------------------------------------------------------

    def tenant_suppliers(self, request: Request, principal: Principal, tenant: str) -> Response:
        if tenant != principal.tenant and self.config.tenant_isolation:
            # 403 for other and unknown tenants alike: the answer must not reveal which exist.
            self.audit_event(request, "authz.denied", "denied", requested_tenant=tenant)
            return error(403, "forbidden", "Access to this tenant is not allowed", request)
        return json_response(200, {"tenant": tenant, "suppliers": self.suppliers.list(tenant)})

    def list_suppliers(self, request: Request, principal: Principal) -> Response:
        return json_response(
            200, {"tenant": principal.tenant, "suppliers": self.suppliers.list(principal.tenant)}
        )

    def create_supplier(self, request: Request, principal: Principal) -> Response:
        data = request.json()
        problems = supplier_problems(data)
        if problems:
            return error(
                422, "validation_error", "The supplier is not valid", request, fields=problems
            )
        fields = {k: data[k] for k in ("name", "country", "spend_usd") if k in data}
        supplier = self.suppliers.create(principal.tenant, fields)
        self.metrics.suppliers_processed.inc()
        self.audit_event(request, "supplier.created", "success", supplier_id=supplier["id"])
        return json_response(201, supplier, {"Location": f"/api/v1/suppliers/{supplier['id']}"})

    def delete_supplier(self, request: Request, principal: Principal, supplier_id: str) -> Response:
        if not self.suppliers.delete(principal.tenant, supplier_id):
            return error(404, "not_found", "No such supplier", request)
        self.audit_event(request, "supplier.deleted", "success", supplier_id=supplier_id)
        return Response(204)

    def calculate(self, request: Request, principal: Principal) -> Response:
        started = time.perf_counter()
        data = request.json()
        result = calculation(data)
        if isinstance(result, str):
            return error(422, "validation_error", result, request)
        category, quantity, factor, unit = result
        emissions = round(quantity * factor, 6)
        self.emissions[principal.tenant] = self.emissions.get(principal.tenant, 0.0) + emissions
        self.metrics.calculations.labels(category=str(category)).inc()
        calculation_id = f"calc_{uuid.uuid4().hex[:12]}"
        self.work.add(
            principal.tenant,
            "calculations",
            {"id": calculation_id, "category": category, "emissions_kgco2e": emissions},
        )
        return json_response(
            200,
            {
                "calculation_id": calculation_id,
                "category": category,
                "emissions_kgco2e": emissions,
                "factor": {"value": factor, "unit": unit, "source": self.factor_source()},
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )

    def factor_source(self) -> str:
        """The first healthy provider; proxy factors when all are down (9.1.2's fallback)."""
        for provider in ("ecoinvent", "desnz", "epa"):
            if self.config.status_of(provider) == "ok":
                return provider
        return "proxy"

    def ingest(self, request: Request, principal: Principal) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("text/csv"):
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("A CSV upload must be UTF-8 text") from None
            lines = [ln for ln in text.splitlines() if ln.strip()]
            records = max(0, len(lines) - 1)  # minus the header row
        elif content_type.startswith(XLSX):
            records = max(0, xlsx_rows(request.body) - 1)
        else:
            data = request.json()
            if not isinstance(data, list):
                raise BadRequest("Expected a JSON array of records, text/csv or an .xlsx workbook")
            records = len(data)
        self.metrics.ingestion_bytes.inc(len(request.body))
        self.metrics.suppliers_processed.inc(records)
        ingestion_id = f"ing_{uuid.uuid4().hex[:12]}"
        self.work.add(
            principal.tenant,
            "ingestions",
            {"id": ingestion_id, "records": records, "bytes": len(request.body)},
        )
        self.audit_event(
            request, "data.ingested", "success", records=records, ingestion_id=ingestion_id
        )
        return json_response(
            202,
            {
                "ingestion_id": ingestion_id,
                "records": records,
                "bytes": len(request.body),
            },
            {"Location": f"/api/v1/ingestions/{ingestion_id}"},
        )

    def create_report(self, request: Request, principal: Principal) -> Response:
        data = request.json()
        if not isinstance(data, dict):
            raise BadRequest("Expected a JSON object")
        self.metrics.reports.inc()
        report = {
            "id": f"rep_{uuid.uuid4().hex[:12]}",
            "status": "completed",
            "type": str(data.get("type", "scope3_summary")),
            "tenant": principal.tenant,
            "total_emissions_kgco2e": round(self.emissions.get(principal.tenant, 0.0), 6),
        }
        self.work.add(principal.tenant, "reports", report)
        self.audit_event(request, "report.generated", "success", report_id=report["id"])
        body = {"report_id": report["id"], **{k: v for k, v in report.items() if k != "id"}}
        return json_response(201, body, {"Location": f"/api/v1/reports/{report['id']}"})

    # --- what a tenant made, listed and deleted again -----------------------------------------

    def listed(self, principal: Principal, kind: str) -> Response:
        return json_response(
            200, {"tenant": principal.tenant, kind: self.work.list(principal.tenant, kind)}
        )

    def deleted(
        self, request: Request, principal: Principal, kind: str, record_id: str
    ) -> Response:
        record = self.work.delete(principal.tenant, kind, record_id)
        if record is None:
            return error(404, "not_found", "No such record", request)
        if kind == "calculations":
            # Its emissions leave the tenant's total, so later reports do not count them.
            total = self.emissions.get(principal.tenant, 0.0) - record["emissions_kgco2e"]
            self.emissions[principal.tenant] = round(max(0.0, total), 6)
        self.audit_event(request, f"{kind.removesuffix('s')}.deleted", "success", id=record_id)
        return Response(204)

    def list_ingestions(self, request: Request, principal: Principal) -> Response:
        return self.listed(principal, "ingestions")

    def delete_ingestion(self, request: Request, principal: Principal, record_id: str) -> Response:
        return self.deleted(request, principal, "ingestions", record_id)

    def list_calculations(self, request: Request, principal: Principal) -> Response:
        return self.listed(principal, "calculations")

    def delete_calculation(
        self, request: Request, principal: Principal, record_id: str
    ) -> Response:
        return self.deleted(request, principal, "calculations", record_id)

    def list_reports(self, request: Request, principal: Principal) -> Response:
        return self.listed(principal, "reports")

    def delete_report(self, request: Request, principal: Principal, record_id: str) -> Response:
        return self.deleted(request, principal, "reports", record_id)


def xlsx_rows(body: bytes) -> int:
    """Rows of an Excel workbook's first worksheet (an .xlsx is a zip of SpreadsheetML)."""
    import io
    import zipfile
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(io.BytesIO(body)) as book:
            sheet = book.read("xl/worksheets/sheet1.xml")
        root = ElementTree.fromstring(sheet)
    # A damaged or exotic zip fails in many ways (zlib.error, NotImplementedError, ...): every
    # one of them is the client's bad upload, never a server error.
    except Exception:
        raise BadRequest("Not an Excel workbook (.xlsx) with a first worksheet") from None
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    return sum(1 for row in root.iter(f"{main}row") if len(row))


def supplier_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["body: expected a JSON object"]
    problems = []
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        problems.append("name: a string of 1 to 200 characters is required")
    country = data.get("country")
    if country is not None and not (
        isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)
    ):
        problems.append("country: an ISO 3166 alpha-2 code")
    spend = data.get("spend_usd")
    if spend is not None and (
        isinstance(spend, bool) or not isinstance(spend, int | float) or spend < 0
    ):
        problems.append("spend_usd: a number >= 0")
    return problems


def calculation(data: Any) -> tuple[int, float, float, str] | str:
    """(category, quantity, factor, unit) for a calculation request, or what is wrong with it."""
    if not isinstance(data, dict):
        return "Expected a JSON object"
    category = data.get("category")
    if isinstance(category, bool) or not isinstance(category, int) or category not in FACTORS:
        return "category must be 1, 4 or 6"
    field_name, factors, unit = FACTORS[category]
    quantity = data.get(field_name)
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity < 0:
        return f"{field_name} must be a number >= 0"
    mode = str(data.get("mode", "default" if "default" in factors else next(iter(factors))))
    if mode not in factors:
        return f"mode must be one of {', '.join(factors)}"
    return category, float(quantity), factors[mode], unit
