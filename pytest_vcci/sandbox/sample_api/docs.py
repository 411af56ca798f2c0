"""What the sample API publishes about itself: OpenAPI 3.0, /docs, OIDC discovery, the frontend."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_vcci.sandbox.sample_api.config import VERSION, ApiConfig

if TYPE_CHECKING:
    from pytest_vcci.sandbox.sample_api.app import Route

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def rate_limit_text(config: ApiConfig) -> str:
    return (
        f"Rate limits: {config.rate_limit} requests per {config.rate_window} seconds per client IP "
        "on /api/ paths. Every /api/ response carries X-RateLimit-Limit, X-RateLimit-Remaining "
        "and X-RateLimit-Reset (seconds until the window resets); beyond the limit the API "
        "answers 429 Too Many Requests with Retry-After."
    )


def openapi_document(config: ApiConfig, routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "GL-VCCI Scope 3 Carbon Intelligence API",
            "version": VERSION,
            "description": "Sandbox stand-in for the GL-VCCI API.\n\n" + rate_limit_text(config),
            "x-ratelimit": {
                "limit": config.rate_limit,
                "window_seconds": config.rate_window,
                "scope": "client-ip",
                "applies_to": "/api/",
                "headers": list(RATE_HEADERS),
            },
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": _components(),
    }


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route),
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}] if route.auth else [],
    }
    names = re.findall(r"\{(\w+)\}", route.template)
    if names:
        operation["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
    if route.body:
        operation["requestBody"] = _request_body(route)
    return operation


def _responses(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success"}
    if route.status != 204:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(route.status): ok}
    if route.body:
        responses["400"] = {"$ref": "#/components/responses/BadRequest"}
    if route.auth:
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
        responses["403"] = {"$ref": "#/components/responses/Forbidden"}
    if route.rate_limited:
        responses["429"] = {"$ref": "#/components/responses/TooManyRequests"}
        for response in responses.values():
            if "$ref" not in response:
                response["headers"] = {
                    h: {"$ref": f"#/components/headers/{h}"} for h in RATE_HEADERS
                }
    return responses


def _request_body(route: Route) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if route.handler == "token":
        fields = {
            "username": {"type": "string"},
            "password": {"type": "string", "format": "password"},
        }
        schema = {"type": "object", "required": ["username", "password"], "properties": fields}
        content = {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        }
    elif route.handler == "ingest":
        content = {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "text/csv": {"schema": {"type": "string"}},
        }
    return {"required": True, "content": content}


def _components() -> dict[str, Any]:
    error_schema = {
        "type": "object",
        "required": ["error", "message", "request_id"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "request_id": {"type": "string"},
        },
    }

    def error_response(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    too_many = error_response("Rate limit exceeded")
    too_many["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return {
        "schemas": {"Error": error_schema},
        "responses": {
            "BadRequest": error_response("Malformed request (for example, invalid JSON)"),
            "Unauthorized": error_response("Missing, expired or invalid credentials"),
            "Forbidden": error_response("Role or tenant not allowed"),
            "TooManyRequests": too_many,
        },
        "headers": {
            "X-RateLimit-Limit": {
                "description": "Requests allowed per window",
                "schema": {"type": "integer"},
            },
            "X-RateLimit-Remaining": {
                "description": "Requests left in this window",
                "schema": {"type": "integer"},
            },
            "X-RateLimit-Reset": {
                "description": "Seconds until the window resets",
                "schema": {"type": "integer"},
            },
        },
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    }


def docs_html(document: dict[str, Any]) -> str:
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(operation['summary'])}</td></tr>"
            )
    info = document["info"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(info['title'])} — API documentation</title></head><body>"
        f"<h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
        f"<p>{html.escape(info['description'])}</p>"
        '<p>Machine-readable specification: <a href="/openapi.json">/openapi.json</a></p>'
        "<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


def oidc_document(config: ApiConfig) -> dict[str, Any]:
    """OIDC discovery for the sandbox's token service (password and refresh grants only)."""
    issuer = config.jwt.issuer.rstrip("/")
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/api/v1/auth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [config.jwt.algorithm],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tenant", "role"],
    }


FRONTEND_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>GL-VCCI — Scope 3 Carbon Intelligence</title>
  <script src="/static/app.js" defer></script>
</head>
<body>
  <main id="app"><h1>GL-VCCI</h1><p id="status">Loading…</p></main>
</body>
</html>
"""

APP_JS = """"use strict";
// Shows the API's liveness on the landing page; the real frontend is a React app.
fetch("/health/live")
  .then((r) => r.json())
  .then((body) => { document.getElementById("status").textContent = "API " + body.status; })
  .catch(() => { document.getElementById("status").textContent = "API unreachable"; });
"""
