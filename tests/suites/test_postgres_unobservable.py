"""The PostgreSQL checks against roles and a database built without looking at the checks.

What a role may not read, or what is not there, is an observation naming what could not be
read, why and what would let it be read; never a raw error. And the least-privilege account
the README documents reads everything the checks read: with it, every database check decides
as it does with the sandbox's own application role (which has pg_monitor).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from variants import failed_tests, run_pytester

from pytest_vcci.sandbox.postgres import PASSWORD_VAR, PostgresComponent

SUITES = Path(__file__).resolve().parents[2] / "suites"
MODULES = tuple(
    SUITES / name
    for name in (
        "test_01_pre_deployment.py",
        "test_02_database.py",
        "test_04_configuration.py",
        "test_06_security.py",
        "test_07_performance.py",
        "test_11_final_validation.py",
    )
)
SECTIONS = ("1.", "2.", "4.", "6.", "7.", "11.")


def database_checks() -> list[str]:
    """The suite functions that read PostgreSQL: those taking the ``db`` fixture."""
    names = []
    for module in MODULES:
        for node in ast.parse(module.read_text()).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if "db" in [a.arg for a in node.args.args]:
                names.append(node.name)
    return names


UNPRIVILEGED = "vcci_app_unprivileged"  # an application role: data, no monitoring roles
DOCUMENTED = "vcci_readiness"  # exactly what README's "Least-privilege accounts" grants
# README "Least-privilege accounts", PostgreSQL: keep the two in step.
DOCUMENTED_GRANTS = """
GRANT CONNECT ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON alembic_version, emission_factors, industry_codes, countries, currencies,
    gwp_values, audit_log TO {role};
GRANT SELECT ON suppliers, tenants, emissions TO {role};
GRANT pg_read_all_settings, pg_read_all_stats TO {role};
"""


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresComponent]:
    """A primary and a streaming replica, small reference data, and three extra things: a
    role without monitoring roles, the documented least-privilege role, and a database
    without the audit table."""
    from psycopg import sql

    pg = PostgresComponent(
        workdir=tmp_path_factory.mktemp("pg-roles"), emission_factors=2000, industry_codes=200
    )
    pg.start()
    try:
        with pg.superuser() as conn:
            for role in (UNPRIVILEGED, DOCUMENTED):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(pg.password)
                    )
                )
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(UNPRIVILEGED)
                )
            )
            conn.execute(DOCUMENTED_GRANTS.format(database=pg.database, role=DOCUMENTED).encode())
        with pg.superuser(dbname="postgres") as conn:
            conn.execute("CREATE DATABASE vcci_bare")
        yield pg
    finally:
        pg.stop()


def tables(pg: PostgresComponent, role: str, database: str | None = None) -> dict[str, Any]:
    """The sandbox's environment for PostgreSQL, connecting as ``role`` (to ``database``)."""
    env = pg.env_tables()

    def as_role(dsn: str) -> str:
        dsn = dsn.replace(f"//{pg.app_user}:", f"//{role}:", 1)
        return dsn.replace(f"/{pg.database}?", f"/{database}?", 1) if database else dsn

    postgres = env["postgres"]
    postgres["dsn"] = as_role(postgres["dsn"])
    postgres["non_tls_dsn"] = as_role(postgres["non_tls_dsn"])
    postgres["replicas"] = [as_role(dsn) for dsn in postgres["replicas"]]
    return {
        "environment": {"name": f"postgres as {role}"},
        **env,
        "expect": pg.expect(),
        "thresholds": pg.thresholds(),
    }


def run(pytester: pytest.Pytester, pg: PostgresComponent, role: str, **kw: Any) -> dict[str, Any]:
    return run_pytester(
        pytester,
        MODULES,
        tables(pg, role, **kw),
        {PASSWORD_VAR: pg.password},
        SECTIONS,
        "-k",
        " or ".join(database_checks()),
    )


def observations(items: dict[str, Any], item_id: str) -> list[dict[str, Any]]:
    return [o for t in items[item_id]["tests"] for o in t.get("observations", [])]


def observation(items: dict[str, Any], item_id: str, name: str) -> dict[str, Any]:
    found = [o for o in observations(items, item_id) if o["name"] == name]
    assert len(found) == 1, (name, observations(items, item_id))
    return found[0]


def cannot_read(items: dict[str, Any]) -> list[str]:
    return [
        f"{item_id} {o['name']}: {o['observed']}"
        for item_id in items
        for o in observations(items, item_id)
        if str(o["observed"]).startswith("cannot read")
    ]


def outcomes(items: dict[str, Any]) -> dict[str, str]:
    return {t["nodeid"]: t["outcome"] for item in items.values() for t in item["tests"]}


def test_unprivileged_role_gets_observations_not_errors(
    pytester: pytest.Pytester, staging: PostgresComponent
) -> None:
    items = run(pytester, staging, UNPRIVILEGED)
    where = f"postgres {UNPRIVILEGED}@127.0.0.1:{staging.port}/{staging.database} (sslmode=require)"
    # 6.2.2: what every role may read is still decided; the setting says why it is not.
    assert items["6.2.2"]["status"] == "failed"
    assert failed_tests(items["6.2.2"]) == {"test_postgres_tls"}
    assert observation(items, "6.2.2", "setting ssl_min_protocol_version") == {
        **observation(items, "6.2.2", "setting ssl_min_protocol_version"),
        "observed": f"cannot read: the role {UNPRIVILEGED} lacks pg_read_all_settings",
        "expected": f"readable: grant pg_read_all_settings to {UNPRIVILEGED}, or attest",
        "passed": False,
        "where": where,
    }
    assert observation(items, "6.2.2", "ssl")["passed"] is True
    assert observation(items, "6.2.2", "this session's TLS")["passed"] is True
    message = next(
        t["message"] for t in items["6.2.2"]["tests"] if t["nodeid"].endswith("test_postgres_tls")
    )
    assert message == (
        f"{where}: setting ssl_min_protocol_version: observed cannot read: the role "
        f"{UNPRIVILEGED} lacks pg_read_all_settings, expected readable: grant "
        f"pg_read_all_settings to {UNPRIVILEGED}, or attest"
    )
    # 1.1.2 and 7.2.2: the replica streams, but this role would read its state as NULL.
    hidden = (
        f"cannot read: the role {UNPRIVILEGED} lacks pg_read_all_stats "
        "(without it PostgreSQL hides other roles' statistics)"
    )
    for item_id in ("1.1.2", "7.2.2"):
        assert observation(items, item_id, "pg_stat_replication.state")["observed"] == hidden
    assert "test_streaming_read_replicas" in failed_tests(items["1.1.2"])
    # Nothing else is a raw exception: every failed database test says what it could not read.
    for item in items.values():
        for test in item["tests"]:
            if test["outcome"] in ("failed", "error"):
                assert "Error" not in (test["message"] or ""), test


def test_a_database_without_the_audit_table_says_so(
    pytester: pytest.Pytester, staging: PostgresComponent
) -> None:
    items = run(pytester, staging, DOCUMENTED, database="vcci_bare")
    assert items["6.3.1"]["status"] == "failed"
    audit = observation(items, "6.3.1", "table audit_log")
    assert (audit["observed"], audit["expected"], audit["passed"]) == (
        f"cannot read: no such table in database vcci_bare (for role {DOCUMENTED})",
        "present",
        False,
    )


def test_the_documented_least_privilege_role_reads_everything(
    pytester: pytest.Pytester, staging: PostgresComponent
) -> None:
    """README's grants are enough: no "cannot read", and every database check decides as it
    does for the application role (pg_monitor, owner of the database)."""
    documented = run(pytester, staging, DOCUMENTED)
    assert cannot_read(documented) == []
    application = run(pytester, staging, staging.app_user)
    assert outcomes(documented) == outcomes(application)
    decided = [n for n, o in outcomes(documented).items() if o in ("passed", "failed")]
    assert any(n.endswith("test_postgres_tls") for n in decided)
    assert any(n.endswith("test_recent_audit_events") for n in decided)
    assert any(n.endswith("test_replication_lag") for n in decided)
