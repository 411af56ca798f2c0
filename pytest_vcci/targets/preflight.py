"""Preflight: probe every configured target at once, in parallel, before the first test.

Each probe is bounded by its target's connect timeout and records its outcome in the run's
TargetGate, so the fixtures (on every xdist worker) find the answer waiting. A run whose
targets all accept connections and never answer then costs one connect timeout in all, not one
per target, and the report says which targets were reachable.

A probe may return more to record in ``run.targets`` (the Kubernetes one lists every kind
once for the whole run and returns the permissions the credential lacks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_vcci.context import RunContext
from pytest_vcci.targets.base import TargetUnreachable, one_line


def _kubernetes(ctx: RunContext) -> dict[str, Any]:
    """Probe, then list every kind in parallel (workers only read the files): the run's
    permissions are known, and said once, before the first test."""
    from pytest_vcci.targets.kubernetes import Cluster

    cluster = Cluster.from_context(ctx.settings.require("kubernetes"), ctx)
    try:
        return cluster.prefetch()
    finally:
        cluster.close()


def _postgres(ctx: RunContext) -> None:
    from pytest_vcci.targets.postgres import Database

    Database(ctx.settings.require("postgres"), ctx.gate).ensure().close()


def _redis(ctx: RunContext) -> None:
    from pytest_vcci.targets.redis import Cache

    Cache(ctx.settings.require("redis"), ctx.gate).ensure().close()


def _aws(ctx: RunContext) -> None:
    from pytest_vcci.targets.aws import build_cloud

    build_cloud(ctx).ensure()


def _api(ctx: RunContext) -> None:
    from pytest_vcci.targets.api import api_client

    client = api_client(ctx)
    try:
        ctx.gate.ensure("api", client.probe)
    finally:
        client.close()


def _http(name: str) -> Callable[[RunContext], None]:
    def probe(ctx: RunContext) -> None:
        from pytest_vcci.targets import monitoring

        cls = {
            "prometheus": monitoring.Prometheus,
            "alertmanager": monitoring.Alertmanager,
            "grafana": monitoring.Grafana,
        }[name]
        cls(ctx.settings.require(name), gate=ctx.gate, name=name).ensure()

    return probe


def _tls(ctx: RunContext) -> None:
    """One handshake per endpoint (no verification: the inspection judges the chain later)."""
    import socket
    import ssl

    from pytest_vcci.targets.tls import parse_endpoint

    table = ctx.settings.require("tls")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    down = []
    for endpoint in table.endpoints:
        host, port = parse_endpoint(endpoint)

        def handshake(host: str = host, port: int = port) -> None:
            with socket.create_connection((host, port), timeout=table.connect_timeout) as sock:
                sock.settimeout(table.connect_timeout)
                try:
                    with context.wrap_socket(sock, server_hostname=host):
                        pass
                except ssl.SSLError:
                    # It answered in TLS (an alert: legacy protocols only, a curve this client
                    # does not offer): up. What it answered is the inspection's to judge.
                    pass

        try:
            ctx.gate.ensure(f"tls {host}:{port}", handshake)
        except TargetUnreachable as exc:
            down.append(str(exc))
    if down:
        raise TargetUnreachable("tls", "; ".join(down))


PROBES: dict[str, Callable[[RunContext], dict[str, Any] | None]] = {
    "kubernetes": _kubernetes,
    "postgres": _postgres,
    "redis": _redis,
    "aws": _aws,
    "api": _api,
    "tls": _tls,
    "prometheus": _http("prometheus"),
    "alertmanager": _http("alertmanager"),
    "grafana": _http("grafana"),
}


def preflight(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Probe every configured target concurrently; {target: {"reachable", "cause", "seconds"}}."""
    wanted = {name: probe for name, probe in PROBES.items() if ctx.settings.table(name) is not None}
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        futures = {name: pool.submit(_timed, probe, ctx) for name, probe in wanted.items()}
        return {name: future.result() for name, future in futures.items()}


def _timed(probe: Callable[[RunContext], dict[str, Any] | None], ctx: RunContext) -> dict[str, Any]:
    began = time.monotonic()
    try:
        extra = probe(ctx)
        outcome: dict[str, Any] = {"reachable": True, "cause": "", **(extra or {})}
    except TargetUnreachable as exc:
        outcome = {"reachable": False, "cause": exc.cause}
    except Exception as exc:  # a configuration problem: the fixture will report it in full
        outcome = {"reachable": None, "cause": one_line(exc)}
    outcome["seconds"] = round(time.monotonic() - began, 3)
    return outcome
