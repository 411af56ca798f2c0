"""The ``db`` target against a real PostgreSQL 15 (primary + streaming replica, TLS).

Proofs use the server's own view: its log (log_statement=all shows which statements
arrived), its row counts and its pg_stat_database counters, read as the superuser.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from support_net import BlackHole

from pytest_vcci.context import RunContext
from pytest_vcci.sandbox.postgres import INDEX_COUNT_SQL, PostgresComponent
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable, Unobservable
from pytest_vcci.targets.postgres import (
    Database,
    check_statement,
    connection_params,
)

ContextFactory = Callable[..., RunContext]


# `db` is the target's own session fixture (the plugin registers pytest_vcci.targets.postgres);
# this module gives it the context the plugin would build from the sandbox's environment.
@pytest.fixture(scope="session")
def vcci_context(pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory) -> RunContext:
    """What the plugin would provide for an environment file made from the sandbox."""
    return sandbox_run_context(pg_sandbox)


def server_state(pg: PostgresComponent) -> dict[str, Any]:
    """What a write would change, as the superuser sees it."""
    with pg.superuser() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("""
            SELECT (SELECT count(*) FROM countries) AS countries,
                   (SELECT count(*) FROM emission_factors) AS emission_factors,
                   (SELECT version_num FROM alembic_version) AS alembic_head,
                   (SELECT count(*) FROM pg_class
                     WHERE relnamespace = 'public'::regnamespace) AS relations,
                   (SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database
                     WHERE datname = current_database()) AS tuples_written,
                   (SELECT string_agg(rolname || '=' || coalesce(array_to_string(setconfig, ','),
                     ''), ';') FROM pg_roles LEFT JOIN pg_db_role_setting ON setrole = oid
                     WHERE rolname = 'vcci_app') AS role_settings
        """).fetchone()
        assert row is not None
        names = [
            "countries",
            "emission_factors",
            "alembic_head",
            "relations",
            "tuples_written",
            "role_settings",
        ]
        return dict(zip(names, row, strict=True))


def server_log(pg: PostgresComponent) -> str:
    return pg.log_path("postgres-primary.log").read_text(errors="replace")


def wait_for_log(pg: PostgresComponent, marker: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in server_log(pg):
            return True
        time.sleep(0.05)
    return False


# --- the sandbox is what the checklist describes ----------------------------------------------


def test_sandbox_schema_is_shaped_like_the_checklist(
    db: Database, pg_sandbox: PostgresComponent
) -> None:
    assert db.server_version() >= 150000
    assert (
        db.value(
            "SELECT pg_encoding_to_char(encoding) FROM pg_database "
            "WHERE datname = current_database()"
        )
        == "UTF8"
    )
    assert (
        db.value("SELECT datcollate FROM pg_database WHERE datname = current_database()")
        == pg_sandbox.locale
    )
    extensions = {r["extname"] for r in db.rows("SELECT extname FROM pg_extension")}
    assert {"pgcrypto", "uuid-ossp", "pg_trgm", "btree_gin", "pg_stat_statements"} <= extensions
    assert db.value("SELECT version_num FROM alembic_version") == "20251108_0047"
    assert db.value(INDEX_COUNT_SQL) == 47
    counts = db.rows("""SELECT (SELECT count(*) FROM emission_factors) AS factors,
                               (SELECT count(*) FROM industry_codes) AS industries,
                               (SELECT count(*) FROM countries) AS countries,
                               (SELECT count(*) FROM currencies) AS currencies,
                               (SELECT count(*) FROM gwp_values) AS gases""")[0]
    assert counts["factors"] >= 150_000
    assert counts["industries"] >= 10_000
    assert counts["countries"] == 249
    assert 170 <= counts["currencies"] <= 190
    assert counts["gases"] >= 5
    # Partial, JSONB GIN and full-text indexes exist (2.1.3).
    indexdefs = [
        r["indexdef"]
        for r in db.rows("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
    ]
    assert any("WHERE is_active" in d for d in indexdefs)
    assert any("USING gin (metadata jsonb_path_ops)" in d for d in indexdefs)
    assert any("USING gin (search)" in d for d in indexdefs)


def test_partitions_cover_the_current_and_next_period(db: Database) -> None:
    today = dt.date.today()
    quarter = (today.month - 1) // 3
    this_quarter = dt.date(today.year, quarter * 3 + 1, 1)
    next_quarter = dt.date(today.year + (quarter == 3), (quarter + 1) % 4 * 3 + 1, 1)
    this_month = today.replace(day=1)
    next_month = (this_month + dt.timedelta(days=32)).replace(day=1)
    lower: dict[str, list[dt.date]] = {}
    for row in db.rows(r"""
            SELECT p.relname AS parent,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]
                     AS lower
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'p'"""):
        lower.setdefault(row["parent"], []).append(dt.date.fromisoformat(row["lower"][:10]))
    assert {this_quarter, next_quarter} <= set(lower["emissions"])
    assert len(lower["emissions"]) == 6
    assert {this_month, next_month} <= set(lower["audit_log"])
    assert db.value("SELECT pg_get_partkeydef('emissions'::regclass)") == "RANGE (reporting_period)"


# --- normal use of each helper ----------------------------------------------------------------


def test_helpers_read_values_rows_and_settings(db: Database) -> None:
    assert db.value("SELECT 40 + %s", (2,)) == 42
    assert db.value("SELECT 1 WHERE false") is None
    rows = db.rows(
        "SELECT code, name FROM countries WHERE code IN (%s, %s) ORDER BY code", ("DE", "FR")
    )
    assert rows == [{"code": "DE", "name": "Germany"}, {"code": "FR", "name": "France"}]
    assert db.setting("work_mem") == "64MB"
    assert db.setting("maintenance_work_mem") == "2GB"
    assert db.setting("autovacuum_vacuum_scale_factor") == "0.05"
    assert db.setting("log_min_duration_statement") == "1s"
    assert "pg_stat_statements" in db.setting("shared_preload_libraries")
    assert db.setting("ssl_min_protocol_version") == "TLSv1.2"


def test_session_is_read_only_bounded_and_named(db: Database) -> None:
    assert db.setting("default_transaction_read_only") == "on"
    assert db.setting("transaction_read_only") == "on"
    assert db.setting("statement_timeout") == "10s"
    assert db.setting("application_name") == "pytest-vcci"


def test_tls_reports_the_sessions_protocol_and_cipher(db: Database) -> None:
    tls = db.tls()
    assert tls["ssl"] is True
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["cipher"]
    assert tls["bits"] >= 128


def test_replicas_answer_and_stream_from_the_primary(db: Database) -> None:
    replicas = db.replicas()
    assert len(replicas) == 1
    replica = replicas[0]
    assert replica.value("SELECT pg_is_in_recovery()") is True
    assert replica.value("SELECT count(*) FROM emission_factors") >= 150_000
    assert replica.tls()["ssl"] is True
    streaming = db.rows("SELECT application_name, state FROM pg_stat_replication")
    assert streaming == [{"application_name": "vcci-replica-1", "state": "streaming"}]
    assert "replica-1" in replica.describe()
    assert replica.describe() != db.describe()


# --- the read-only guard ----------------------------------------------------------------------

REFUSED_BEFORE_SENDING = [
    "INSERT INTO countries VALUES ('ZZ', 'ZZZ', '999', 'Nowhere')",
    "UPDATE countries SET name = 'x' WHERE code = 'DE'",
    "DELETE FROM alembic_version",
    "CREATE TABLE guard_probe (id int)",
    "DROP TABLE countries",
    "TRUNCATE audit_log",
    "ALTER ROLE vcci_app SET default_transaction_read_only = off",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "DO $$BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); END$$",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT \"set_config\"('default_transaction_read_only', 'off', false)",
    "SELECT pg_catalog.set_config /* sneaky */ ('transaction_read_only', 'off', true)",
    "SELECT 1; SET default_transaction_read_only = off",
    # A name that ends in e, then a plain string ending in a backslash: not an E'' string.
    "SELECT date'\\' ; SET default_transaction_read_only = off; --'",
    # $x$ inside a name does not open a dollar quote.
    "SELECT 1 AS foo$x$; SET default_transaction_read_only = off; SELECT $x$",
    "SELECT U&\"set_config\"('default_transaction_read_only', 'off', false)",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT pg_advisory_lock(1)",
    "COPY countries FROM STDIN",
    "VACUUM countries",
    "LOCK TABLE countries",
    "WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE; COMMIT",
]


@pytest.mark.parametrize("statement", REFUSED_BEFORE_SENDING)
def test_guard_refuses_before_anything_is_sent(
    db: Database, pg_sandbox: PostgresComponent, statement: str
) -> None:
    marker = f"guard-probe-{uuid.uuid4().hex}"
    before = server_state(pg_sandbox)
    with pytest.raises(ReadOnlyViolation, match="read-only guard: postgres refused"):
        db.value(f"/* {marker} */ {statement}")
    # A harmless statement after it does reach the log: the log is a fair witness.
    db.value(f"/* {marker}-after */ SELECT 1")
    assert wait_for_log(pg_sandbox, f"{marker}-after */ SELECT 1")
    assert f"{marker} */" not in server_log(pg_sandbox)
    assert server_state(pg_sandbox) == before
    assert db.setting("default_transaction_read_only") == "on"


SERVER_REFUSES = [
    "WITH x AS (INSERT INTO countries VALUES ('ZZ', 'ZZZ', '999', 'Nowhere') RETURNING 1) "
    "SELECT * FROM x",
    "SELECT * INTO guard_probe FROM countries",
    "SELECT nextval('emission_factors_id_seq')",
    "SELECT * FROM countries WHERE code = 'DE' FOR UPDATE",
    "EXPLAIN ANALYZE WITH x AS (DELETE FROM alembic_version RETURNING 1) SELECT * FROM x",
]


@pytest.mark.parametrize("statement", SERVER_REFUSES)
def test_server_refuses_writes_hidden_in_reads(
    db: Database, pg_sandbox: PostgresComponent, statement: str
) -> None:
    marker = f"backstop-{uuid.uuid4().hex}"
    before = server_state(pg_sandbox)
    with pytest.raises(ReadOnlyViolation, match="read-only transaction"):
        db.rows(f"/* {marker} */ {statement}")
    assert wait_for_log(pg_sandbox, marker), "this one must have reached the server"
    assert server_state(pg_sandbox) == before
    assert db.value("SELECT 1") == 1  # the session is still usable


def test_session_options_alone_make_the_server_refuse_writes(
    pg_sandbox: PostgresComponent, vcci_context: RunContext
) -> None:
    """Without the client-side guard, the session the target opens still cannot write."""
    table = vcci_context.settings.require("postgres")
    before = server_state(pg_sandbox)
    with psycopg.connect(**connection_params(table.dsn, table), autocommit=True) as conn:
        for statement in (
            "INSERT INTO countries VALUES ('ZZ', 'ZZZ', '999', 'Nowhere')",
            "CREATE TABLE guard_probe (id int)",
            "DELETE FROM alembic_version",
        ):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(statement.encode())
    assert server_state(pg_sandbox) == before


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 'INSERT; DROP TABLE countries' AS text",
        "SELECT $$; SET default_transaction_read_only = off$$ AS text",
        "SELECT E'it\\'s; DELETE' AS text",
        "SELECT \"name\" FROM countries WHERE code = 'DE'",
        "  -- a comment first\n SELECT 1;",
        "(SELECT 1) UNION (SELECT 2)",
        "SHOW default_transaction_read_only",
        "EXPLAIN SELECT * FROM countries",
        "VALUES (1)",
        "TABLE gwp_values",
        "SELECT current_setting('transaction_read_only')",
        "SELECT date'2025-01-01'",
    ],
)
def test_guard_lets_reads_through(db: Database, statement: str) -> None:
    check_statement(statement)
    db.rows(statement)


# --- fail fast --------------------------------------------------------------------------------


def _database(context: RunContext) -> Database:
    return Database(context.settings.require("postgres"), context.gate)


def test_fails_fast_when_nothing_listens(
    pg_sandbox: PostgresComponent, closed_port: int, sandbox_run_context: ContextFactory
) -> None:
    dsn = pg_sandbox.dsn(closed_port)
    context = sandbox_run_context(postgres={"dsn": dsn, "connect_timeout": 2})
    with pytest.raises(TargetUnreachable, match="Connection refused") as first:
        _database(context).ensure()
    # Now something listens there: a later use that tried again would reach it.
    with BlackHole(closed_port) as server:
        with pytest.raises(TargetUnreachable) as second:
            _database(context).value("SELECT 1")
        assert server.connections() == 0  # the run knows it is down: nothing was sent
    assert str(second.value) == str(first.value)
    assert "\n" not in str(first.value)
    assert pg_sandbox.password not in str(first.value) + repr(first.value)


def test_fails_fast_when_the_server_never_answers(
    pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    with BlackHole() as server:
        context = sandbox_run_context(
            postgres={"dsn": pg_sandbox.dsn(server.port), "connect_timeout": 2}
        )
        database = _database(context)
        with pytest.raises(TargetUnreachable) as first:
            database.ensure()
        # libpq's own words: its connect_timeout (not a read timeout) ended the wait.
        assert "timeout expired" in str(first.value)
        assert server.connections() == 1
        with pytest.raises(TargetUnreachable) as second:
            database.rows("SELECT 1")
        assert server.connections() == 1  # no new connection attempt
    assert str(second.value) == str(first.value)


def test_a_stopped_server_is_detected_once(
    tmp_path_factory: pytest.TempPathFactory, sandbox_run_context: ContextFactory
) -> None:
    small = PostgresComponent(workdir=tmp_path_factory.mktemp("pg-stopped"), seed=False, replicas=0)
    small.start()
    try:
        database = _database(sandbox_run_context(small, postgres={"connect_timeout": 2}))
        assert database.ensure().value("SELECT 1") == 1
    finally:
        small.stop()
    with pytest.raises(TargetUnreachable) as first:  # the open session was shut down
        database.value("SELECT 1")
    with BlackHole(small.port) as server:  # the port takes connections again
        with pytest.raises(TargetUnreachable) as second:
            database.value("SELECT 2")
        assert server.connections() == 0  # marked down: nothing was sent
    assert str(second.value) == str(first.value)
    with pytest.raises(TargetUnreachable, match="Connection refused"):
        Database(database.table, sandbox_run_context().gate).ensure()


def test_a_hung_query_is_cut_at_the_read_timeout(
    pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    context = sandbox_run_context(
        pg_sandbox, postgres={"read_timeout": 1, "statement_timeout_ms": 60000}
    )
    database = _database(context)
    # Only the read-timeout watchdog says this: it fired and shut the socket, so the
    # 5 s sleep did not run its course (and statement_timeout, 60 s, played no part).
    with pytest.raises(TargetUnreachable, match="no answer within read_timeout=1s"):
        database.value("SELECT pg_sleep(5)")
    with pytest.raises(TargetUnreachable, match="read_timeout=1s"):
        database.value("SELECT 1")


def test_statement_timeout_cancels_the_query_not_the_target(
    pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    database = _database(sandbox_run_context(pg_sandbox, postgres={"statement_timeout_ms": 300}))
    # statement_timeout (not the read timeout) cancelled it: this query, not the target.
    with pytest.raises(Unobservable) as cancelled:
        database.value("SELECT pg_sleep(3)", about="the slow probe")
    assert (cancelled.value.what, cancelled.value.why) == (
        "the slow probe",
        "it did not finish within statement_timeout=300 ms (the server cancelled it)",
    )
    assert cancelled.value.expected == "an answer within [postgres].statement_timeout_ms"
    assert database.value("SELECT 1") == 1


# --- what cannot be read is said, not thrown --------------------------------------------------

UNPRIVILEGED = "vcci_unprivileged"


@pytest.fixture(scope="module")
def unprivileged(
    pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> Iterator[Database]:
    """A role that may connect and read one table: no pg_read_all_settings, no
    pg_read_all_stats (the 'unprivileged application role' of issue 11)."""
    from psycopg import sql

    with pg_sandbox.superuser() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(UNPRIVILEGED), sql.Literal(pg_sandbox.password)
            )
        )
        conn.execute(
            sql.SQL("GRANT SELECT ON countries TO {}").format(sql.Identifier(UNPRIVILEGED))
        )
    dsn = pg_sandbox.dsn().replace(f"{pg_sandbox.app_user}:", f"{UNPRIVILEGED}:", 1)
    database = _database(sandbox_run_context(postgres={"dsn": dsn}))
    yield database.ensure()
    database.close()


def test_a_missing_privilege_is_named_with_its_grant(unprivileged: Database) -> None:
    with pytest.raises(Unobservable) as refused:
        unprivileged.setting("ssl_min_protocol_version")
    assert (refused.value.what, refused.value.why, refused.value.expected) == (
        "setting ssl_min_protocol_version",
        f"the role {UNPRIVILEGED} lacks pg_read_all_settings",
        f"readable: grant pg_read_all_settings to {UNPRIVILEGED}, or attest",
    )
    assert refused.value.where == unprivileged.describe()
    assert str(refused.value) == (
        f"{unprivileged.describe()}: cannot read setting ssl_min_protocol_version: the role "
        f"{UNPRIVILEGED} lacks pg_read_all_settings (expected readable: grant "
        f"pg_read_all_settings to {UNPRIVILEGED}, or attest)"
    )
    with pytest.raises(Unobservable) as denied:
        unprivileged.rows("SELECT version_num FROM alembic_version")
    assert (denied.value.what, denied.value.why) == (
        "table alembic_version",
        f"the role {UNPRIVILEGED} lacks SELECT on it",
    )
    assert unprivileged.value("SELECT count(*) FROM countries") == 249  # what it may read


def test_pg_settings_hides_what_a_role_may_not_read_and_setting_row_says_why(
    unprivileged: Database, db: Database
) -> None:
    assert db.setting_row("ssl_min_protocol_version")["setting"] == "TLSv1.2"
    assert (
        unprivileged.rows("SELECT 1 FROM pg_settings WHERE name = 'ssl_min_protocol_version'") == []
    )  # PostgreSQL leaves the row out instead of refusing
    with pytest.raises(Unobservable, match="lacks pg_read_all_settings"):
        unprivileged.setting_row("ssl_min_protocol_version")
    with pytest.raises(Unobservable) as unknown:
        unprivileged.setting_row("no_such_setting")
    assert (unknown.value.what, unknown.value.why) == (
        "setting no_such_setting",
        "this server has no such setting",
    )
    assert unprivileged.setting_row("work_mem")["setting"] == "65536"  # readable by anyone


def test_statistics_hidden_from_a_role_are_not_read_as_facts(
    unprivileged: Database, db: Database
) -> None:
    """Without pg_read_all_stats the replica's state reads NULL: needs= refuses to go on."""
    sql = "SELECT application_name, state FROM pg_stat_replication"
    assert unprivileged.rows(sql) == [{"application_name": "vcci-replica-1", "state": None}]
    with pytest.raises(Unobservable) as hidden:
        unprivileged.rows(sql, about="pg_stat_replication.state", needs="pg_read_all_stats")
    assert (hidden.value.what, hidden.value.why, hidden.value.expected) == (
        "pg_stat_replication.state",
        f"the role {UNPRIVILEGED} lacks pg_read_all_stats "
        "(without it PostgreSQL hides other roles' statistics)",
        f"readable: grant pg_read_all_stats to {UNPRIVILEGED}, or attest",
    )
    # pg_monitor includes it: the application role reads the real state.
    rows = db.rows(sql, about="pg_stat_replication.state", needs="pg_read_all_stats")
    assert rows == [{"application_name": "vcci-replica-1", "state": "streaming"}]


@pytest.mark.parametrize(
    ("statement", "what", "why"),
    [
        (
            "SELECT * FROM audit_trail",
            "table audit_trail",
            "no such table in database vcci_staging (for role vcci_app)",
        ),
        (
            "SELECT occurred FROM audit_log",
            "column occurred",
            "no such column in the table the check reads",
        ),
        (
            "SELECT pg_stat_kcache()",
            "function pg_stat_kcache()",
            "no such function here (the extension that provides it may be missing)",
        ),
        (
            "SELECT * FROM reporting.audit_log",
            "table reporting.audit_log",
            "no such table in database vcci_staging (for role vcci_app)",
        ),
        (
            "SELECT 1/0",
            "the result of SELECT 1/0",
            "the server refused the statement: division by zero (SQLSTATE 22012)",
        ),
    ],
)
def test_a_missing_object_is_named(db: Database, statement: str, what: str, why: str) -> None:
    with pytest.raises(Unobservable) as missing:
        db.rows(statement)
    assert (missing.value.what, missing.value.why) == (what, why)
    assert db.value("SELECT 1") == 1  # the session goes on


# --- secrets ----------------------------------------------------------------------------------


def test_password_never_appears(
    db: Database, pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    secret = pg_sandbox.password
    assert secret not in db.describe()
    assert secret not in repr(db)
    assert db.describe() == (
        f"postgres vcci_app@127.0.0.1:{pg_sandbox.port}/vcci_staging (sslmode=require)"
    )
    for replica in db.replicas():
        assert secret not in replica.describe() + repr(replica)
    with pytest.raises(ReadOnlyViolation) as refused:
        db.value("INSERT INTO countries VALUES ('ZZ', 'ZZZ', '999', 'Nowhere')")
    assert secret not in str(refused.value)
    wrong = pg_sandbox.dsn(secret="not-the-password-1234")
    context = sandbox_run_context(postgres={"dsn": wrong})
    with pytest.raises(TargetUnreachable, match="password authentication failed") as denied:
        _database(context).ensure()
    assert "not-the-password-1234" not in str(denied.value)
    state = "".join(p.read_text() for p in (context.run_dir / "targets").glob("*.json"))
    assert "not-the-password-1234" not in state
    assert "password authentication failed" in state
    with pytest.raises(ValueError, match="not a valid libpq") as bad:
        connection_params(
            f"host=x password={secret} nonsense", context.settings.require("postgres")
        )
    assert secret not in str(bad.value)


def test_env_tables_hold_references_not_secrets(pg_sandbox: PostgresComponent) -> None:
    tables = pg_sandbox.env_tables()
    text = repr(tables)
    assert pg_sandbox.password not in text
    assert "${VCCI_SANDBOX_PG_PASSWORD}" in text
    assert tables["postgres"]["dsn"].endswith("/vcci_staging?sslmode=require")
    assert len(tables["postgres"]["replicas"]) == 1
    assert tables["postgres"]["ram"] == "16GB"
    assert "postgres@" not in text
    assert "host=" not in text
    assert pg_sandbox.env_vars() == {"VCCI_SANDBOX_PG_PASSWORD": pg_sandbox.password}
    assert pg_sandbox.password not in repr(pg_sandbox)


def test_non_tls_connections_are_refused(
    pg_sandbox: PostgresComponent, sandbox_run_context: ContextFactory
) -> None:
    table = sandbox_run_context(pg_sandbox).settings.require("postgres")
    context = sandbox_run_context(postgres={"dsn": table.non_tls_dsn})
    with pytest.raises(TargetUnreachable, match="no encryption"):
        _database(context).ensure()


def test_plaintext_refusal_is_the_servers_answer(
    db: Database,
    pg_sandbox: PostgresComponent,
    closed_port: int,
    sandbox_run_context: ContextFactory,
) -> None:
    table = sandbox_run_context(pg_sandbox).settings.require("postgres")
    refusal = db.plaintext_refusal(table.non_tls_dsn)
    assert refusal is not None
    assert refusal.startswith("FATAL:")
    assert "no encryption" in refusal
    assert pg_sandbox.password not in refusal
    # A server that is not there is not a refusal: the target is down, and says why.
    context = sandbox_run_context(pg_sandbox, postgres={"connect_timeout": 2})
    database = _database(context)
    with pytest.raises(TargetUnreachable, match="Connection refused"):
        database.plaintext_refusal(pg_sandbox.dsn(closed_port, sslmode="disable"))


# --- broken variants --------------------------------------------------------------------------


def test_broken_variant_options(
    tmp_path_factory: pytest.TempPathFactory, sandbox_run_context: ContextFactory
) -> None:
    broken = PostgresComponent(
        workdir=tmp_path_factory.mktemp("pg-broken"),
        replicas=0,
        tls=False,
        extensions=("pgcrypto",),
        alembic_head="20240101_0001",
        settings={"work_mem": "4MB"},
        emission_factors=1000,
    )
    broken.start()
    try:
        database = _database(sandbox_run_context(broken)).ensure()
        extensions = {r["extname"] for r in database.rows("SELECT extname FROM pg_extension")}
        assert "pgcrypto" in extensions
        assert not {"uuid-ossp", "pg_trgm", "btree_gin"} & extensions
        assert database.replicas() == []
        assert database.rows("SELECT * FROM pg_stat_replication") == []
        assert database.tls()["ssl"] is False
        assert database.setting("work_mem") == "4MB"
        assert database.value("SELECT version_num FROM alembic_version") == "20240101_0001"
        assert database.value("SELECT count(*) FROM emission_factors") == 1000
        assert database.value(INDEX_COUNT_SQL) == 47  # the index set does not depend on pg_trgm
        database.close()
    finally:
        broken.stop()
