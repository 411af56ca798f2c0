"""The ``db`` target through PgBouncer (transaction pooling, TLS, SCRAM) in front of a real
PostgreSQL 15, and what happens when the server behind the pooler freezes (SIGSTOP).

A frozen PostgreSQL leaves PgBouncer answering: it accepts the client, then queues the query
until its own query_wait_timeout (120 s by default). The guarded client must end the wait at
its read_timeout instead, with that as the root cause, and fail fast afterwards. The proofs are
outcomes and causes, never wall-clock figures (benchmarks/frozen_server.py has those).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_vcci.context import RunContext
from pytest_vcci.sandbox.base import signal_tree
from pytest_vcci.sandbox.postgres import PostgresComponent
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable
from pytest_vcci.targets.postgres import Database

ContextFactory = Callable[..., RunContext]
SUITES = Path(__file__).resolve().parents[2] / "suites"


@pytest.fixture(scope="module")
def pooled_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresComponent]:
    component = PostgresComponent(
        workdir=tmp_path_factory.mktemp("pg-pooled"), seed=False, replicas=0, pgbouncer=True
    )
    component.start()
    try:
        yield component
    finally:
        signal_tree(component.pids, signal.SIGCONT)  # never leave it frozen
        component.stop()


@contextmanager
def frozen(component: PostgresComponent) -> Iterator[None]:
    """The primary and every backend of it stopped (SIGSTOP): it holds its sockets open and
    answers nothing, as a hung server does. PgBouncer (a process of its own) runs on."""
    primary = component.pids[:1]
    signal_tree(primary, signal.SIGSTOP)
    try:
        yield
    finally:
        signal_tree(primary, signal.SIGCONT)


def pooler(context: RunContext) -> Database:
    pooled = Database(context.settings.require("postgres"), context.gate).pooler()
    assert pooled is not None
    return pooled


def test_the_pooler_answers_read_only_with_our_statement_timeout(
    pooled_pg: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    through = pooler(sandbox_run_context(pooled_pg, postgres={"statement_timeout_ms": 4321}))
    assert through.describe() == (
        f"pgbouncer vcci_app@127.0.0.1:{pooled_pg.pgbouncer_port}/vcci_staging (sslmode=require)"
    )
    for _ in range(8):  # past psycopg's prepare threshold: nothing is prepared via the pooler
        row = through.rows(
            "SELECT inet_server_port() AS port, current_setting('transaction_read_only') AS ro,"
            " current_setting('statement_timeout') AS timeout"
        )[0]
    assert row == {"port": pooled_pg.port, "ro": "on", "timeout": "4321ms"}
    assert through.session_encrypted() is True
    # The server itself refuses a write the statement guard let through (SELECT INTO).
    with pytest.raises(ReadOnlyViolation, match="pgbouncer refused a write"):
        through.rows("SELECT 1 AS a INTO nope")


def test_a_frozen_server_behind_the_pooler_is_a_timeout_root_cause(
    pooled_pg: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    context = sandbox_run_context(pooled_pg, postgres={"connect_timeout": 2, "read_timeout": 2})
    through = pooler(context)
    assert through.value("SELECT 1") == 1  # connected and answering before the freeze
    with frozen(pooled_pg):
        with pytest.raises(TargetUnreachable) as first:
            through.value("SELECT 2")
        # The watchdog's words: the client's read_timeout ended the wait, not PgBouncer's
        # query_wait_timeout.
        assert str(first.value) == (
            "pgbouncer unreachable: TimeoutError: no answer within read_timeout=2s"
        )
        with pytest.raises(TargetUnreachable) as second:  # marked down: nothing more waits
            pooler(context).value("SELECT 3")
    assert str(second.value) == str(first.value)


def test_a_run_whose_database_freezes_ends_with_the_timeout_as_root_cause(
    pooled_pg: PostgresComponent, tmp_path: Path
) -> None:
    # The readiness suite's own PgBouncer check in a real run: the primary answers the
    # preflight probe, then freezes as the test starts.
    (tmp_path / "freeze_at_setup.py").write_text(
        textwrap.dedent(
            """
            import os, signal
            from pytest_vcci.sandbox.base import signal_tree

            def pytest_runtest_setup(item):
                signal_tree([int(os.environ["FREEZE_PID"])], signal.SIGSTOP)
            """
        )
    )
    tables = {key: value for key, value in pooled_pg.env_tables()["postgres"].items()}
    env_file = tmp_path / "environment.toml"
    env_file.write_text(
        "[environment]\nname = 'frozen'\n[postgres]\n"
        + "".join(f"{key} = {_toml(value)}\n" for key, value in tables.items())
        + "connect_timeout = 2\nread_timeout = 3\n"
    )
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(SUITES / "test_01_pre_deployment.py"),
                "-k",
                "test_pgbouncer_answers",
                "--vcci-config",
                str(env_file),
                "--vcci-report-dir",
                str(tmp_path / "reports"),
                "-p",
                "no:cacheprovider",
                "-p",
                "freeze_at_setup",
                "-q",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,  # a guard for this test only: the run itself must end on its own
            env={
                **os.environ,
                **pooled_pg.env_vars(),
                "FREEZE_PID": str(pooled_pg.pids[0]),
                "PYTHONPATH": str(tmp_path),
            },
        )
    finally:
        signal_tree(pooled_pg.pids[:1], signal.SIGCONT)
    output = done.stdout + done.stderr
    assert "1 failed" in output, output[-3000:]
    assert "pgbouncer unreachable: TimeoutError: no answer within read_timeout=3s" in output


def _toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
