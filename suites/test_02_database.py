"""Checklist section 2: database preparation.

What is read, and from where:

- PostgreSQL (``db``, read-only): the database's name, encoding, collation and extensions;
  ``alembic_version``; indexes and partitions from the system catalogs; reference-data row
  counts; server settings. Table names come from ``[expect.postgres]``; the column names read
  (``version_num``, ``source``, ``system``, ``gas``/``gwp100``) are the GL-VCCI schema's.
- Kubernetes (``cluster``): the application ConfigMap (connection pool sizes), the
  deployments using the database (their replicas), the partition-maintenance CronJob.
- Prometheus: the alert rules for connections, replication lag and disk space.
- AWS (``cloud``): the RDS instance's backups, encryption and monitoring, and its instance
  class (for its RAM when ``[postgres].ram`` is not set).

Sizes follow PostgreSQL's convention: ``16GB`` means 16 GiB. Partition bounds are compared
in UTC (a quarter starts at 00:00 UTC on its first day).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

# What counts as one of the checklist's "47 indexes": an index in schema public that is not
# the per-partition copy PostgreSQL makes of an index on a partitioned table (those are
# implied by their parent index, and their number grows with every new partition).
INDEX_COUNT_SQL = (
    "SELECT count(*) FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid "
    "JOIN pg_namespace n ON n.oid = i.relnamespace "
    "WHERE n.nspname = 'public' AND NOT i.relispartition"
)
# Columns of the application's own tables (partitions are covered by their parent).
COLUMNS_OF_TYPE_SQL = (
    "SELECT c.relname AS table, a.attname AS column FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = %s::regtype "
    "ORDER BY 1, 2"
)
# Index access method, table, the columns it covers, its predicate and its definition.
INDEXES_SQL = (
    "SELECT i.relname AS index, t.relname AS table, am.amname AS method, "
    "pg_get_expr(x.indpred, x.indrelid) AS predicate, pg_get_indexdef(i.oid) AS definition, "
    "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = t.oid "
    "      AND a.attnum = ANY(x.indkey::int2[]) ORDER BY a.attnum)::text[] AS columns "
    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am am ON am.oid = i.relam "
    "JOIN pg_namespace n ON n.oid = i.relnamespace "
    "WHERE n.nspname = 'public' AND NOT i.relispartition ORDER BY 1"
)
PARTITIONS_SQL = (
    "SELECT c.relname AS partition, pg_get_expr(c.relpartbound, c.oid) AS bound "
    "FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
    "WHERE h.inhparent = to_regclass(%s) ORDER BY 1"
)
PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]?i?B)?\s*$")
_UNITS = {"": 1, "B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
MIB = 1024**2


# --- helpers ------------------------------------------------------------------------------


def ident(name: str) -> str:
    """A (possibly schema-qualified) table name as a quoted SQL identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def size_bytes(text: str) -> int:
    """'16GB', '16 GiB', '8kB', '12288' (bytes) -> bytes, PostgreSQL's 1024-based units."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (expected e.g. '16GB')")
    number, unit = float(match.group(1)), (match.group(2) or "").replace("iB", "B")
    return int(number * _UNITS[unit])


def setting_bytes(db: Any, name: str) -> int:
    """A memory setting in bytes (pg_settings gives a number of its unit, e.g. 16384 x 8kB)."""
    row = db.setting_row(name)
    unit = row["unit"] or "B"
    count, base = re.fullmatch(r"(\d*)(\w+)", unit).groups()  # type: ignore[union-attr]
    return int(row["setting"]) * int(count or 1) * _UNITS[base]


def show(size: int) -> str:
    """Bytes as PostgreSQL would show them (the largest exact unit)."""
    for unit in ("TB", "GB", "MB", "kB"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}B"


def same_name(a: str, b: str) -> bool:
    """Encoding/locale names compare loosely: UTF8 = UTF-8, en_US.utf8 = en_US.UTF-8."""
    return a.lower().replace("-", "") == b.lower().replace("-", "")


def period_start(day: dt.date, months: int, offset: int = 0) -> dt.date:
    """The first day of the period (months long, aligned to the year) ``offset`` periods on."""
    index = (day.year * 12 + day.month - 1) // months * months + offset * months
    return dt.date(index // 12, index % 12 + 1, 1)


def as_datetime(text: str) -> dt.datetime:
    """A partition bound literal ('2026-10-01' or '2026-10-01 00:00:00+00') as UTC."""
    if text in ("MINVALUE", "MAXVALUE"):
        return dt.datetime.min if text == "MINVALUE" else dt.datetime.max
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def range_bounds(bound: str) -> tuple[dt.datetime, dt.datetime] | None:
    """FOR VALUES FROM ('a') TO ('b') -> (a, b); None for DEFAULT or multi-column bounds."""
    match = re.fullmatch(r"FOR VALUES FROM \((.+?)\) TO \((.+?)\)", bound)
    if not match or "," in match.group(1):
        return None
    low, high = (part.strip().strip("'") for part in match.groups())
    return as_datetime(low), as_datetime(high)


def container_env(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return [env for c in containers or [] for env in c.get("env") or []]


# --- 2.1.1 Database created and initialized --------------------------------------------------


@pytest.mark.checklist("2.1.1")
def test_database_name(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """The application's database has the expected name (vcci_production in production)."""
    name = db.value("SELECT current_database()")
    want = threshold("2.1.1", "database")
    evidence.check("database name", name, want, name == want, where=db.describe())


@pytest.mark.checklist("2.1.1")
def test_encoding_and_collation(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """The database's character set is UTF-8 and its collation en_US.UTF-8."""
    row = db.rows(
        "SELECT datname, pg_encoding_to_char(encoding) AS encoding, datcollate "
        "FROM pg_database WHERE datname = current_database()"
    )[0]
    where = f"database {row['datname']}"
    encoding, collation = threshold("2.1.1", "encoding"), threshold("2.1.1", "collation")
    evidence.check(
        "encoding", row["encoding"], encoding, same_name(row["encoding"], encoding), where=where
    )
    evidence.check(
        "collation",
        row["datcollate"],
        collation,
        same_name(row["datcollate"], collation),
        where=where,
    )


@pytest.mark.checklist("2.1.1")
def test_extensions_installed(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """The extensions pgcrypto, uuid-ossp, pg_trgm and btree_gin are installed in the database."""
    installed = {
        r["extname"]: r["extversion"]
        for r in db.rows("SELECT extname, extversion FROM pg_extension")
    }
    where = f"database {db.value('SELECT current_database()')}"
    for name in threshold("2.1.1", "extensions"):
        have = f"version {installed[name]}" if name in installed else "not installed"
        evidence.check(f"extension {name}", have, "installed", name in installed, where=where)


# --- 2.1.2 Alembic migration history verified ------------------------------------------------


@pytest.mark.smoke("database", "migrations at head")
@pytest.mark.checklist("2.1.2")
def test_alembic_at_release_head(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """alembic_version holds exactly one row, the release's migration head: none pending."""
    table = threshold("2.1.2", "version_table")
    head = expect("postgres", "alembic_head")
    where = f"table {table} in {db.describe()}"
    exists = db.value("SELECT to_regclass(%s) IS NOT NULL", (table,))
    evidence.require(
        "version table", "present" if exists else "missing", "present", exists, where=where
    )
    versions = [r["version_num"] for r in db.rows(f"SELECT version_num FROM {ident(table)}")]
    evidence.check("rows", len(versions), 1, len(versions) == 1, where=where)
    evidence.check("migration head", versions, [head], versions == [head], where=where)


# --- 2.1.3 Database indexes created ----------------------------------------------------------


@pytest.fixture(scope="module")
def indexes(db: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = db.rows(INDEXES_SQL)
    return rows


@pytest.mark.checklist("2.1.3")
def test_index_count(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Schema public has at least the 47 indexes of database/indexes.sql (partition copies aside)."""
    count = db.value(INDEX_COUNT_SQL)
    want = threshold("2.1.3", "index_count")
    evidence.check(
        "indexes", count, f">= {want}", count >= want, where=f"schema public of {db.describe()}"
    )


@pytest.mark.checklist("2.1.3")
def test_partial_indexes_for_active_records(
    db: Any, indexes: list[dict[str, Any]], evidence: Any
) -> None:
    """Every table with an is_active-style flag has a partial index on its active rows."""
    flags = db.rows(COLUMNS_OF_TYPE_SQL, ("boolean",))
    flags = [f for f in flags if "active" in f["column"]]
    evidence.require(
        "tables with an active flag", len(flags), ">= 1", bool(flags), where="schema public"
    )
    for flag in flags:
        partial = [
            i["index"]
            for i in indexes
            if i["table"] == flag["table"]
            and i["predicate"]
            and re.search(rf"\b{flag['column']}\b", i["predicate"])
        ]
        evidence.check(
            f"partial index on {flag['column']}",
            partial or "none",
            "at least one",
            bool(partial),
            where=f"table {flag['table']}",
        )


@pytest.mark.checklist("2.1.3")
def test_gin_indexes_on_jsonb_columns(
    db: Any, indexes: list[dict[str, Any]], evidence: Any
) -> None:
    """Every JSONB column of the application's tables has a GIN index."""
    columns = db.rows(COLUMNS_OF_TYPE_SQL, ("jsonb",))
    evidence.require("JSONB columns", len(columns), ">= 1", bool(columns), where="schema public")
    for column in columns:
        gin = [
            i["index"]
            for i in indexes
            if i["table"] == column["table"]
            and i["method"] == "gin"
            and column["column"] in i["columns"]
        ]
        evidence.check(
            f"GIN index on {column['column']}",
            gin or "none",
            "at least one",
            bool(gin),
            where=f"table {column['table']}",
        )


@pytest.mark.checklist("2.1.3")
def test_full_text_search_indexes(db: Any, indexes: list[dict[str, Any]], evidence: Any) -> None:
    """Full-text search is indexed: every tsvector column has a GIN or GiST index."""
    columns = db.rows(COLUMNS_OF_TYPE_SQL, ("tsvector",))
    on_expressions = [
        i["index"]
        for i in indexes
        if i["method"] in ("gin", "gist") and "to_tsvector" in i["definition"]
    ]
    total = len(columns) + len(on_expressions)
    evidence.require(
        "full-text search indexes or tsvector columns",
        total,
        ">= 1",
        total > 0,
        where="schema public",
    )
    for column in columns:
        found = [
            i["index"]
            for i in indexes
            if i["table"] == column["table"]
            and i["method"] in ("gin", "gist")
            and column["column"] in i["columns"]
        ]
        evidence.check(
            f"full-text index on {column['column']}",
            found or "none",
            "a GIN or GiST index",
            bool(found),
            where=f"table {column['table']}",
        )
    if on_expressions:
        evidence.record("full-text indexes on to_tsvector() expressions", on_expressions)


# --- 2.1.4 Database partitions created -------------------------------------------------------


def check_partitions(db: Any, evidence: Any, table: str, key: str, interval: str) -> None:
    """RANGE partitioned by ``key``; partitions of one ``interval`` for now and the next one."""
    definition = db.value("SELECT pg_get_partkeydef(to_regclass(%s))", (table,))
    where = f"table {table}"
    evidence.require(
        "partitioned by",
        definition or "not partitioned",
        f"RANGE ({key})",
        definition == f"RANGE ({key})",
        where=where,
    )
    bounds = {r["partition"]: range_bounds(r["bound"]) for r in db.rows(PARTITIONS_SQL, (table,))}
    months = PERIOD_MONTHS[interval]
    today = dt.datetime.now(dt.UTC).date()
    for label, offset in (("current", 0), ("next", 1)):
        start, end = period_start(today, months, offset), period_start(today, months, offset + 1)
        moment = dt.datetime.combine(start, dt.time())
        covering = [
            (name, span) for name, span in bounds.items() if span and span[0] <= moment < span[1]
        ]
        want = f"a partition for [{start}, {end})"
        if not covering:
            evidence.check(f"{label} {interval}", "no partition", want, False, where=where)
            continue
        name, (low, high) = covering[0]
        exact = (low.date(), high.date()) == (start, end) and low.time() == high.time() == dt.time()
        evidence.check(
            f"{label} {interval}", f"{name} [{low.date()}, {high.date()})", want, exact, where=where
        )


@pytest.mark.checklist("2.1.4")
def test_emissions_partitioned_by_quarter(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """Emissions are range-partitioned by reporting_period, with this and next quarter's partitions."""
    spec = expect("postgres", "partitions", "emissions")
    interval = threshold("2.1.4", "emissions_partition_interval")
    check_partitions(db, evidence, spec["table"], spec["key"], interval)


@pytest.mark.checklist("2.1.4")
def test_audit_log_partitioned_by_month(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """Audit logs are range-partitioned by month, with this and next month's partitions."""
    spec = expect("postgres", "partitions", "audit_log")
    interval = threshold("2.1.4", "audit_log_partition_interval")
    check_partitions(db, evidence, spec["table"], spec["key"], interval)


@pytest.mark.checklist("2.1.4")
def test_partition_maintenance_scheduled(
    cluster: Any, namespace: str, expect: Callable[..., Any], evidence: Any
) -> None:
    """A CronJob that creates upcoming partitions is scheduled and not suspended."""
    name = expect("kubernetes", "partition_maintenance_cronjob")
    job = cluster.get("cronjobs", name, namespace)
    where = f"cronjob {namespace}/{name}"
    evidence.require(
        "cronjob", "present" if job else "missing", "present", job is not None, where=where
    )
    spec = job["spec"]  # type: ignore[index]
    evidence.check("schedule", spec.get("schedule"), "set", bool(spec.get("schedule")), where=where)
    evidence.check(
        "suspend", spec.get("suspend", False), False, not spec.get("suspend"), where=where
    )
    evidence.record(
        "last successful run",
        job.get("status", {}).get("lastSuccessfulTime"),  # type: ignore[union-attr]
        where=where,
    )


# --- 2.2.1 Reference data loaded -------------------------------------------------------------


def reference_table(db: Any, expect: Callable[..., Any], role: str, evidence: Any) -> str:
    table: str = expect("postgres", "reference_tables", role)
    exists = db.value("SELECT to_regclass(%s) IS NOT NULL", (table,))
    evidence.require(
        "table", "present" if exists else "missing", "present", exists, where=f"table {table}"
    )
    return table


def check_grouped_count(
    db: Any, evidence: Any, table: str, column: str, minimum: int, groups: list[str]
) -> None:
    rows = db.rows(
        f"SELECT {ident(column)} AS name, count(*) AS n FROM {ident(table)} GROUP BY 1 ORDER BY 1"
    )
    counts = {str(r["name"]): r["n"] for r in rows}
    total = sum(counts.values())
    where = f"table {table}"
    evidence.check("rows", total, f">= {minimum}", total >= minimum, where=where)
    for group in groups:
        have = counts.get(group, 0)
        evidence.check(f"{column} {group}", have, ">= 1", have > 0, where=where)


@pytest.mark.checklist("2.2.1")
def test_emission_factors_loaded(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """At least 150,000 emission factors are loaded, from each of Ecoinvent, DESNZ and EPA."""
    table = reference_table(db, expect, "emission_factors", evidence)
    check_grouped_count(
        db,
        evidence,
        table,
        "source",
        threshold("2.2.1", "emission_factors_min"),
        threshold("2.2.1", "emission_factor_sources"),
    )


@pytest.mark.checklist("2.2.1")
def test_industry_codes_loaded(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """At least 10,000 industry codes are loaded, from both NAICS and ISIC."""
    table = reference_table(db, expect, "industry_codes", evidence)
    check_grouped_count(
        db,
        evidence,
        table,
        "system",
        threshold("2.2.1", "industry_codes_min"),
        threshold("2.2.1", "industry_code_systems"),
    )


@pytest.mark.checklist("2.2.1")
def test_country_and_currency_codes_loaded(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """The ISO 3166 country codes (249) and the ISO 4217 currency codes are loaded."""
    for role, minimum in (("countries", "countries_min"), ("currencies", "currencies_min")):
        table = reference_table(db, expect, role, evidence)
        count = db.value(f"SELECT count(*) FROM {ident(table)}")
        want = threshold("2.2.1", minimum)
        evidence.check("rows", count, f">= {want}", count >= want, where=f"table {table}")


@pytest.mark.checklist("2.2.1")
def test_gwp_values_are_ar6(
    db: Any, threshold: Callable[..., Any], expect: Callable[..., Any], evidence: Any
) -> None:
    """The GWP table holds IPCC AR6 100-year values (CO2 = 1, N2O = 273)."""
    table = reference_table(db, expect, "gwp_values", evidence)
    values = {
        r["gas"]: float(r["gwp100"]) for r in db.rows(f"SELECT gas, gwp100 FROM {ident(table)}")
    }
    where = f"table {table}"
    n2o = threshold("2.2.1", "gwp100_n2o")
    evidence.check("GWP100 CO2", values.get("CO2"), 1, values.get("CO2") == 1, where=where)
    evidence.check("GWP100 N2O", values.get("N2O"), n2o, values.get("N2O") == n2o, where=where)
    methane = sorted(gas for gas in values if gas.startswith("CH4"))
    evidence.check("CH4 entries", methane or "none", "at least one", bool(methane), where=where)


# --- 2.2.2 Database performance tuned --------------------------------------------------------


@pytest.fixture(scope="module")
def instance_ram(
    vcci_context: Any, request: pytest.FixtureRequest, expect: Callable[..., Any]
) -> tuple[int, str]:
    """(bytes, where it came from): [postgres].ram, else the RDS instance class's memory."""
    table = vcci_context.target_table("postgres")
    if table.ram:
        return size_bytes(table.ram), f"[postgres].ram = {table.ram}"
    if vcci_context.settings.table("aws") is None:
        pytest.skip("instance RAM unknown: set [postgres].ram or configure [aws] (RDS class)")
    cloud = request.getfixturevalue("cloud")
    name = expect("aws", "db_instance")
    instance = cloud.call("rds", "describe_db_instances", DBInstanceIdentifier=name)["DBInstances"][
        0
    ]
    klass = instance["DBInstanceClass"]
    kind = cloud.call("ec2", "describe_instance_types", InstanceTypes=[klass.removeprefix("db.")])[
        "InstanceTypes"
    ][0]
    return kind["MemoryInfo"]["SizeInMiB"] * MIB, f"RDS {name} ({klass})"


def check_ratio(
    db: Any, evidence: Any, setting: str, ram: tuple[int, str], ratio: float, tolerance: float
) -> None:
    size, source = ram
    have = setting_bytes(db, setting)
    observed = have / size
    ok = abs(observed - ratio) <= ratio * tolerance
    evidence.check(
        setting,
        f"{show(have)} ({observed:.1%} of {show(size)})",
        f"{ratio:.0%} of RAM (+/- {tolerance:.0%}): {show(int(size * ratio))}",
        ok,
        where=f"{db.describe()}, RAM from {source}",
    )


@pytest.mark.checklist("2.2.2")
def test_shared_buffers_quarter_of_ram(
    db: Any, instance_ram: tuple[int, str], threshold: Callable[..., Any], evidence: Any
) -> None:
    """shared_buffers is 25 % of the instance's RAM."""
    check_ratio(
        db,
        evidence,
        "shared_buffers",
        instance_ram,
        threshold("2.2.2", "shared_buffers_ratio"),
        threshold("2.2.2", "memory_ratio_tolerance"),
    )


@pytest.mark.checklist("2.2.2")
def test_effective_cache_size_three_quarters_of_ram(
    db: Any, instance_ram: tuple[int, str], threshold: Callable[..., Any], evidence: Any
) -> None:
    """effective_cache_size is 75 % of the instance's RAM."""
    check_ratio(
        db,
        evidence,
        "effective_cache_size",
        instance_ram,
        threshold("2.2.2", "effective_cache_size_ratio"),
        threshold("2.2.2", "memory_ratio_tolerance"),
    )


@pytest.mark.checklist("2.2.2")
def test_work_mem_settings(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """work_mem is 64MB and maintenance_work_mem 2GB."""
    for setting, name in (
        ("work_mem", "work_mem_mb"),
        ("maintenance_work_mem", "maintenance_work_mem_mb"),
    ):
        have, want = setting_bytes(db, setting), threshold("2.2.2", name) * MIB
        evidence.check(setting, show(have), show(want), have == want, where=db.describe())


@pytest.mark.checklist("2.2.2")
def test_autovacuum_scale_factor(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Autovacuum is on with autovacuum_vacuum_scale_factor 0.05."""
    enabled = db.setting("autovacuum")
    factor = float(db.setting("autovacuum_vacuum_scale_factor"))
    want = threshold("2.2.2", "autovacuum_vacuum_scale_factor")
    evidence.check("autovacuum", enabled, "on", enabled == "on", where=db.describe())
    evidence.check(
        "autovacuum_vacuum_scale_factor",
        factor,
        want,
        math.isclose(factor, want),
        where=db.describe(),
    )


def pool_per_pod(database: dict[str, Any]) -> tuple[int | None, int | None]:
    """(min, max) connections of one pod's pool: pool_min/pool_max, or SQLAlchemy's
    pool_size (kept open) and pool_size + max_overflow (at most)."""
    low = database.get("pool_min", database.get("pool_size"))
    high = database.get("pool_max")
    if high is None and database.get("pool_size") is not None:
        high = database["pool_size"] + database.get("max_overflow", 0)
    return low, high


@pytest.fixture(scope="module")
def database_config(
    app_configmap: tuple[dict[str, Any] | None, str],
) -> tuple[dict[str, Any] | None, str]:
    config, where = app_configmap
    return (None if config is None else config.get("database") or {}), where


@pytest.mark.checklist("2.2.2")
def test_connection_pool_sized(
    database_config: tuple[dict[str, Any] | None, str], threshold: Callable[..., Any], evidence: Any
) -> None:
    """Each pod's connection pool keeps at least 10 and opens at most 100 connections."""
    config, where = database_config
    evidence.require(
        "configmap",
        "present" if config is not None else "missing",
        "present",
        config is not None,
        where=where,
    )
    low, high = pool_per_pod(config or {})
    want_low, want_high = threshold("2.2.2", "pool_min"), threshold("2.2.2", "pool_max")
    evidence.check(
        "pool min per pod",
        low,
        f">= {want_low}",
        low is not None and low >= want_low,
        where=f"{where}: database",
    )
    evidence.check(
        "pool max per pod",
        high,
        f"<= {want_high}",
        high is not None and high <= want_high,
        where=f"{where}: database",
    )


@pytest.mark.checklist("2.2.2")
def test_max_connections_cover_the_pools(
    db: Any,
    cluster: Any,
    namespace: str,
    expect: Callable[..., Any],
    database_config: tuple[dict[str, Any] | None, str],
    evidence: Any,
) -> None:
    """max_connections has room for every application pod's full pool."""
    config, where = database_config
    evidence.require(
        "configmap",
        "present" if config is not None else "missing",
        "present",
        config is not None,
        where=where,
    )
    _, per_pod = pool_per_pod(config or {})
    evidence.require("pool max per pod", per_pod, "set", per_pod is not None, where=where)
    pods = {}
    for name in expect("kubernetes", "app_deployments"):
        deployment = cluster.get("deployments", name, namespace)
        if deployment and any(e.get("name") == "DATABASE_URL" for e in container_env(deployment)):
            pods[name] = deployment["spec"].get("replicas", 1)
    needed = sum(pods.values()) * per_pod  # type: ignore[operator]
    reserved = int(db.setting("superuser_reserved_connections"))
    usable = int(db.setting("max_connections")) - reserved
    evidence.record("pods using the database", pods, where=f"namespace {namespace}")
    evidence.check(
        "max_connections - superuser_reserved_connections",
        usable,
        f">= {needed} ({sum(pods.values())} pods x {per_pod})",
        usable >= needed,
        where=db.describe(),
    )


# --- 2.2.3 Database monitoring configured ----------------------------------------------------


@pytest.mark.checklist("2.2.3")
def test_slow_query_log(db: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """Statements slower than 1 second are logged (log_min_duration_statement)."""
    value = int(db.setting_row("log_min_duration_statement")["setting"])
    want = threshold("2.2.3", "slow_query_ms")
    observed = "disabled" if value < 0 else f"{value} ms"
    evidence.check(
        "log_min_duration_statement",
        observed,
        f"<= {want} ms",
        0 <= value <= want,
        where=db.describe(),
    )


_COMPARISON = re.compile(r"(>=|<=|>|<)\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*\)*\s*$", re.I)
_DATABASE = re.compile(r"(?i)database|postgres|\bdb\b|rds|\bpg_")


def alert_threshold(rule: dict[str, Any]) -> tuple[str, float] | None:
    """(comparison, number) at the end of an alert expression, e.g. ('>', 80.0)."""
    match = _COMPARISON.search(rule.get("query", ""))
    return (match.group(1), float(match.group(2))) if match else None


def database_alerts(prometheus: Any, metric: re.Pattern[str]) -> list[dict[str, Any]]:
    """Alert rules about the database whose expression uses a matching metric."""
    found = []
    for group in prometheus.rules("alert"):
        for rule in group["rules"]:
            text = f"{group['name']} {rule['name']} {rule.get('query', '')}"
            if metric.search(rule.get("query", "")) and _DATABASE.search(text):
                found.append(rule)
    return found


def check_alert(
    prometheus: Any,
    evidence: Any,
    what: str,
    metric: re.Pattern[str],
    limit: float,
    to_value: Callable[[str, float, str], float | None],
) -> None:
    """Some alert rule on ``metric`` fires at or below ``limit`` (in the checklist's unit)."""
    rules = database_alerts(prometheus, metric)
    seen = {}
    for rule in rules:
        parsed = alert_threshold(rule)
        value = to_value(*parsed, rule["query"]) if parsed else None
        seen[rule["name"]] = value
    good = [name for name, value in seen.items() if value is not None and value <= limit]
    evidence.check(
        what,
        seen or "no alert rule",
        f"a rule firing at <= {limit:g}",
        bool(good),
        where=f"prometheus {prometheus.describe()['url']} alert rules",
    )


def percent(op: str, value: float, query: str) -> float | None:
    """A 'used' percentage: '> 80', '> 0.8', or '< 20' on free/available space."""
    pct = value * 100 if value <= 1 else value
    if op in ("<", "<="):
        return 100 - pct if re.search(r"(?i)avail|free", query) else None
    return pct


@pytest.mark.checklist("2.2.3")
def test_connection_count_alert(
    prometheus: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """An alert rule fires when database connections exceed 80 % of max_connections."""
    check_alert(
        prometheus,
        evidence,
        "connection count alert",
        re.compile(r"(?i)numbackends|max_connections|connections"),
        threshold("2.2.3", "connection_alert_percent"),
        percent,
    )


@pytest.mark.checklist("2.2.3")
def test_replication_lag_alert(
    prometheus: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """An alert rule fires when replication lag exceeds 5 seconds."""

    def seconds(op: str, value: float, query: str) -> float | None:
        return value if op in (">", ">=") else None

    check_alert(
        prometheus,
        evidence,
        "replication lag alert",
        re.compile(r"(?i)replication_lag|replica_?lag|lag_seconds"),
        threshold("2.2.3", "replication_lag_alert_seconds"),
        seconds,
    )


@pytest.mark.checklist("2.2.3")
def test_disk_space_alert(prometheus: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """An alert rule fires when the database's disk is more than 80 % used."""
    check_alert(
        prometheus,
        evidence,
        "disk space alert",
        re.compile(r"(?i)filesystem|disk|storage|volume"),
        threshold("2.2.3", "disk_alert_percent"),
        percent,
    )


def rds_instance(cloud: Any, expect: Callable[..., Any], evidence: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    name = expect("aws", "db_instance")
    try:
        found = cloud.call("rds", "describe_db_instances", DBInstanceIdentifier=name)
    except ClientError as exc:
        evidence.require(
            "instance", exc.response["Error"]["Code"], "found", False, where=f"RDS instance {name}"
        )
    instance: dict[str, Any] = found["DBInstances"][0]
    return instance


@pytest.mark.checklist("2.2.3")
def test_cloudwatch_metrics_enabled(cloud: Any, expect: Callable[..., Any], evidence: Any) -> None:
    """The RDS instance sends enhanced monitoring metrics and its PostgreSQL log to CloudWatch."""
    instance = rds_instance(cloud, expect, evidence)
    where = f"RDS instance {instance['DBInstanceIdentifier']}"
    interval = instance.get("MonitoringInterval", 0)
    exports = instance.get("EnabledCloudwatchLogsExports", [])
    evidence.check(
        "enhanced monitoring interval", f"{interval} s", "> 0 s", interval > 0, where=where
    )
    evidence.check(
        "CloudWatch log exports",
        exports,
        "includes postgresql",
        "postgresql" in exports,
        where=where,
    )


# --- 2.2.4 Database backup verified ----------------------------------------------------------


@pytest.mark.checklist("2.2.4")
def test_backup_retention(
    cloud: Any, expect: Callable[..., Any], threshold: Callable[..., Any], evidence: Any
) -> None:
    """Automated backups are kept for 30 days."""
    instance = rds_instance(cloud, expect, evidence)
    days = instance.get("BackupRetentionPeriod", 0)
    want = threshold("2.2.4", "backup_retention_days")
    evidence.check(
        "backup retention",
        f"{days} days",
        f">= {want} days",
        days >= want,
        where=f"RDS instance {instance['DBInstanceIdentifier']}",
    )


@pytest.mark.checklist("2.2.4")
def test_backup_window(
    cloud: Any, expect: Callable[..., Any], threshold: Callable[..., Any], evidence: Any
) -> None:
    """The daily automated backup window starts at 02:00 UTC."""
    instance = rds_instance(cloud, expect, evidence)
    window = instance.get("PreferredBackupWindow") or "none"
    start = threshold("2.2.4", "backup_window_start")
    zone = threshold("2.2.4", "backup_timezone")
    # RDS backup windows are always given in UTC.
    evidence.check(
        "backup window",
        f"{window} UTC",
        f"starting {start} {zone}",
        zone == "UTC" and window.startswith(f"{start}-"),
        where=f"RDS instance {instance['DBInstanceIdentifier']}",
    )


@pytest.mark.checklist("2.2.4")
def test_point_in_time_recovery_current(
    cloud: Any, expect: Callable[..., Any], threshold: Callable[..., Any], evidence: Any
) -> None:
    """The latest restorable time (point-in-time recovery) is within the last 15 minutes."""
    instance = rds_instance(cloud, expect, evidence)
    latest = instance.get("LatestRestorableTime")
    where = f"RDS instance {instance['DBInstanceIdentifier']}"
    evidence.require("latest restorable time", latest, "set", latest is not None, where=where)
    age = (dt.datetime.now(dt.UTC) - latest).total_seconds() / 60
    limit = threshold("2.2.4", "restorable_within_minutes")
    evidence.check(
        "latest restorable time",
        f"{latest.isoformat()} ({age:.1f} min ago)",
        f"<= {limit} min ago",
        age <= limit,
        where=where,
    )


@pytest.mark.checklist("2.2.4")
def test_backups_encrypted(cloud: Any, expect: Callable[..., Any], evidence: Any) -> None:
    """The instance's storage and its snapshots are encrypted with a KMS key."""
    instance = rds_instance(cloud, expect, evidence)
    name = instance["DBInstanceIdentifier"]
    evidence.check(
        "storage encrypted",
        instance.get("StorageEncrypted", False),
        True,
        bool(instance.get("StorageEncrypted")),
        where=f"RDS instance {name}",
    )
    evidence.check(
        "KMS key",
        instance.get("KmsKeyId") or "none",
        "set",
        bool(instance.get("KmsKeyId")),
        where=f"RDS instance {name}",
    )
    snapshots = cloud.paginate(
        "rds", "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=name
    )
    evidence.check(
        "snapshots", len(snapshots), ">= 1", bool(snapshots), where=f"RDS instance {name}"
    )
    for snapshot in snapshots:
        evidence.check(
            "encrypted",
            snapshot.get("Encrypted", False),
            True,
            bool(snapshot.get("Encrypted")),
            where=f"RDS snapshot {snapshot['DBSnapshotIdentifier']}",
        )


@pytest.mark.checklist("2.2.4")
def test_restore_tested_and_documented(attest: Callable[[str], Any]) -> None:
    """Attested: a point-in-time restore was tested and the restore procedure is documented."""
    attest("2.2.4")
