"""Real servers for the target tests, started once per session and stopped at its end.

``pg_sandbox`` and ``redis_sandbox`` are the sandbox components the demo uses, so these tests
check the targets against the same servers the suites will see. Their start-up times are
printed in the terminal summary.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import pytest

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.base import Component
from pytest_vcci.sandbox.postgres import PostgresComponent
from pytest_vcci.sandbox.redis import RedisComponent
from pytest_vcci.settings import build_settings, interpolate

START_TIMES = pytest.StashKey[dict[str, str]]()
C = TypeVar("C", bound=Component)


def started(request: pytest.FixtureRequest, component: C, label: str) -> C:
    """Start a component, recording how long it took for the terminal summary."""
    began = time.monotonic()
    component.start()
    elapsed = time.monotonic() - began
    details = getattr(component, "timings", {})
    text = f"{elapsed:.1f}s" + (f" {details}" if details else "")
    request.config.stash.setdefault(START_TIMES, {})[label] = text
    return component


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    times = config.stash.get(START_TIMES, {})
    if times:
        terminalreporter.section("sandbox start-up times")
        for label, text in times.items():
            terminalreporter.write_line(f"{label}: {text}")


@pytest.fixture(scope="session")
def pg_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresComponent]:
    """PostgreSQL primary + streaming replica with the VCCI schema. log_statement=all lets
    the guard tests see, in the server's own log, which statements reached it."""
    component = PostgresComponent(
        workdir=tmp_path_factory.mktemp("pg-sandbox"), settings={"log_statement": "all"}
    )
    try:
        yield started(request, component, "postgres (primary + 1 replica, seeded)")
    finally:
        component.stop()


@pytest.fixture(scope="session")
def redis_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisComponent]:
    """Standalone Redis (TLS, ACL user, AOF) and a 3-master/3-replica cluster."""
    component = RedisComponent(workdir=tmp_path_factory.mktemp("redis-sandbox"))
    try:
        yield started(request, component, "redis (standalone + 6-node cluster)")
    finally:
        component.stop()


@pytest.fixture(scope="session")
def sandbox_run_context(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., RunContext]:
    """Build a RunContext from components' env_tables (as an environment file would hold
    them, ${VAR} references and all), with a fresh gate per call; keys override table keys."""

    def build(
        *components: Component, env: Mapping[str, str] | None = None, **overrides: Mapping[str, Any]
    ) -> RunContext:
        raw: dict[str, Any] = {"environment": {"name": "sandbox"}}
        variables: dict[str, str] = dict(env or {})
        for component in components:
            raw.update(component.env_tables())
            variables.update(component.env_vars())
        for table, values in overrides.items():
            raw[table] = {**raw.get(table, {}), **values}
        settings = build_settings(interpolate(raw, "sandbox", "", variables), "sandbox")
        run_dir = tmp_path_factory.mktemp("run")
        return RunContext(
            settings=settings, redactor=Redactor(settings.secrets()), run_id="t", run_dir=run_dir
        )

    return build


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connection refused, like a stopped server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
