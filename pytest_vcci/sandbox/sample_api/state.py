"""The sample API's in-memory state: rate limits, suppliers, audit trail, metrics, JSON logs."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import IO, Any

from pytest_vcci.sandbox.sample_api.config import ApiConfig


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    """A fixed window per client IP (the ingress rule of 3.2.6: 100 requests per minute)."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str, now: float | None = None) -> RateDecision:
        now = time.monotonic() if now is None else now
        with self._lock:
            start, count = self._windows.get(client, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            count += 1
            self._windows[client] = (start, count)
            if len(self._windows) > 10_000:
                self._prune(now)
        reset = max(1, math.ceil(start + self.window - now))
        return RateDecision(count <= self.limit, self.limit, max(0, self.limit - count), reset)

    def _prune(self, now: float) -> None:
        for client in [c for c, (s, _) in self._windows.items() if now - s >= self.window]:
            del self._windows[client]


class SupplierStore:
    """Suppliers per tenant, seeded with a few so reads have something to show."""

    def __init__(self, tenants: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {}
        for tenant in tenants:
            self._data[tenant] = {}
            for n, country in enumerate(("DE", "US", "IN"), start=1):
                self._add(
                    tenant,
                    {
                        "name": f"{tenant} supplier {n}",
                        "country": country,
                        "spend_usd": 100_000.0 * n,
                    },
                )

    def _add(self, tenant: str, fields: dict[str, Any]) -> dict[str, Any]:
        supplier = {
            "id": f"sup_{uuid.uuid4().hex[:12]}",
            "tenant": tenant,
            "created_at": now_rfc3339(),
            **fields,
        }
        self._data[tenant][supplier["id"]] = supplier
        return supplier

    def list(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._data.get(tenant, {}).values())

    def create(self, tenant: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return dict(self._add(tenant, fields))

    def delete(self, tenant: str, supplier_id: str) -> bool:
        with self._lock:
            return self._data.get(tenant, {}).pop(supplier_id, None) is not None


class WorkStore:
    """What a tenant's users made: ingestions, calculations and reports, by kind and ID.

    Each can be deleted again (a test tenant cleans up after itself); the audit trail keeps
    the record that they existed.
    """

    KINDS = ("ingestions", "calculations", "reports")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def add(self, tenant: str, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._data.setdefault((tenant, kind), {})[record["id"]] = record
        return record

    def list(self, tenant: str, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._data.get((tenant, kind), {}).values())

    def delete(self, tenant: str, kind: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._data.get((tenant, kind), {}).pop(record_id, None)


class AuditTrail:
    """Recent authentication, authorisation and data-change events (6.3.1)."""

    def __init__(self, size: int = 1000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        outcome: str,
        *,
        actor: str | None,
        tenant: str | None,
        request_id: str,
        client_ip: str,
        **detail: Any,
    ) -> None:
        event = {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "time": now_rfc3339(),
            "type": kind,
            "outcome": outcome,
            "actor": actor,
            "tenant": tenant,
            "client_ip": client_ip,
            "request_id": request_id,
            **detail,
        }
        with self._lock:
            self._events.append(event)

    def recent(self, tenant: str, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self._events)
        # Events without a tenant (failed logins for unknown users) are visible to every auditor.
        visible = [
            e
            for e in reversed(events)
            if e["tenant"] in (tenant, None) and (kind is None or e["type"] == kind)
        ]
        return visible[:limit]


class Metrics:
    """Prometheus metrics in a registry of this server's own (no process-global state)."""

    def __init__(self, config: ApiConfig) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
            registry=r,
        )
        sim = config.simulated
        Gauge("db_pool_connections_active", "Database pool connections in use", registry=r).set(
            sim.get("db_pool_active", 12)
        )
        Gauge("db_pool_connections_max", "Database pool size", registry=r).set(
            sim.get("db_pool_max", 100)
        )
        Gauge("redis_memory_used_bytes", "Redis memory used", registry=r).set(
            sim.get("redis_memory_used", 2 * 1024**3)
        )
        Gauge("redis_memory_max_bytes", "Redis maxmemory", registry=r).set(
            sim.get("redis_memory_max", 16 * 1024**3)
        )
        queue = Gauge("worker_queue_depth", "Tasks waiting per worker queue", ["queue"], registry=r)
        queue.labels(queue="default").set(sim.get("worker_queue_depth", 42))
        Gauge("vcci_active_tenants", "Tenants with activity", registry=r).set(len(config.tenants))
        # Staging's steady worker load since `workload_started` (7.1.3), plus real requests.
        from pytest_vcci.sandbox.sample_api import workload as wl

        started = sim.get("workload_started")
        steady = wl.Workload(float(started)) if started is not None else None
        self.suppliers_processed = wl.steady_suppliers(steady)
        self.calculations = wl.steady_calculations(steady)
        r.register(self.suppliers_processed)
        r.register(self.calculations)
        if steady is not None:
            r.register(wl.WorkerCollector(steady))
        self.ingestion_bytes = Counter(
            "vcci_ingestion_bytes_total", "Bytes of data ingested", registry=r
        )
        self.reports = Counter("vcci_reports_generated_total", "Reports generated", registry=r)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.duration.labels(method=method, route=route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class JsonLog:
    """One JSON object per line, flushed at once so a test (or a log shipper) sees it."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line = json.dumps({"ts": now_rfc3339(), **record}, separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def mask_email(value: str | None) -> str | None:
    """PII in logs is masked (5.2.2): keep the first letter and the domain."""
    if not value or "@" not in value:
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"
