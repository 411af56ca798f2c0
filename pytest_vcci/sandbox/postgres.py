"""A real PostgreSQL 15 for the sandbox: a TLS primary, a streaming replica, the VCCI schema.

The primary is shaped like checklist section 2 (UTF-8 database with the four extensions,
alembic head, 47 indexes, quarterly/monthly partitions, reference data, tuned settings) so
the suites have something true to check; options build the broken variants tests need.

The superuser is reachable only through a unix socket in a directory only the server's OS
user (and root) can enter; it is for seeding and for tests, never part of ``env_tables()``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import (
    Component,
    SandboxError,
    free_port,
    port_open,
    require_binary,
    wait_until,
)

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_PACKAGE = "postgresql"
PASSWORD_VAR = "VCCI_SANDBOX_PG_PASSWORD"
DEFAULT_EXTENSIONS = ("pgcrypto", "uuid-ossp", "pg_trgm", "btree_gin")
ALEMBIC_HEAD = "20251108_0047"
ISO_CODES = Path("/usr/share/iso-codes/json")
# AR6 (WG1, ch. 7 SM) 100-year global warming potentials.
GWP_AR6 = (
    ("CO2", "Carbon dioxide", 1),
    ("CH4-fossil", "Methane (fossil)", 29.8),
    ("CH4-non-fossil", "Methane (non-fossil)", 27.0),
    ("N2O", "Nitrous oxide", 273),
    ("SF6", "Sulphur hexafluoride", 25200),
    ("NF3", "Nitrogen trifluoride", 17400),
    ("HFC-134a", "1,1,1,2-Tetrafluoroethane", 1530),
    ("HFC-32", "Difluoromethane", 771),
    ("HFC-23", "Trifluoromethane", 14600),
    ("CF4", "Perfluoromethane (PFC-14)", 7380),
)
# Reads the application makes all day, each served by an index of the seeded schema.
APPLICATION_QUERIES = (
    "SELECT s.id, s.name, s.country_code FROM suppliers s JOIN tenants t ON t.id = s.tenant_id "
    "WHERE t.slug = 'tenant-7' AND s.is_active ORDER BY s.name LIMIT 50",
    "SELECT co2e_per_unit, unit, source FROM emission_factors "
    "WHERE activity = 'electricity 10' AND region = 'DE' AND is_active",
    "SELECT scope3_category, sum(co2e_kg) AS co2e_kg FROM emissions "
    "WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'tenant-3') "
    "AND reporting_period >= date_trunc('year', now())::date GROUP BY 1",
    "SELECT count(*) FROM audit_log WHERE event_type = 'auth.login_failed' "
    "AND occurred_at > now() - interval '1 day'",
    "SELECT code, title FROM industry_codes "
    "WHERE search @@ plainto_tsquery('english', 'steel') LIMIT 20",
)
# What `index_count` means: indexes in schema public that are not the per-partition copies
# PostgreSQL makes of an index on a partitioned table (those are implied by their parent).
INDEX_COUNT_SQL = (
    "SELECT count(*) FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid "
    "JOIN pg_namespace n ON n.oid = i.relnamespace "
    "WHERE n.nspname = 'public' AND NOT i.relispartition"
)


@dataclass
class PostgresComponent(Component):
    """PostgreSQL primary (+ replicas) on 127.0.0.1, seeded with the VCCI schema."""

    name: str = "postgres"
    database: str = "vcci_staging"
    app_user: str = "vcci_app"
    extensions: Sequence[str] = DEFAULT_EXTENSIONS
    replicas: int = 1
    pgbouncer: bool = False  # PgBouncer (TLS, SCRAM) in front of the primary (1.1.2)
    tls: bool = True
    seed: bool = True
    alembic_head: str = ALEMBIC_HEAD
    ram: str = "16GB"
    emission_factors: int = 150_000
    industry_codes: int = 12_000
    settings: Mapping[str, str] = field(default_factory=dict)  # postgresql.conf overrides
    os_user: str = "postgres"
    bin_dir: str = PG_BIN
    # Filled by start().
    port: int = 0
    replica_ports: list[int] = field(default_factory=list)
    pgbouncer_port: int = 0
    password: str = field(default="", repr=False)
    locale: str = ""
    data_root: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _temp_dirs: list[Path] = field(default_factory=list, init=False, repr=False)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self.password = self.password or secrets.token_urlsafe(24)
        self.locale = pick_locale()
        root = self._prepare_root()
        self._initdb(root / "primary")
        self._configure_primary(root / "primary")
        self.port = self._launch(root / "primary", "postgres-primary.log")
        self._mark("primary up", began)
        # Replicas first: copying an empty cluster is instant, and they then receive the
        # schema and data through streaming, while the primary builds them.
        for index in range(self.replicas):
            self.replica_ports.append(self._start_replica(index + 1))
        self._mark("replicas up", began)
        self._create_role_and_database()
        if self.seed:
            self._seed_schema(began)
        self._mark("seeded", began)
        self._wait_streaming()
        if self.pgbouncer:
            self.pgbouncer_port = self._start_pgbouncer()
            self._mark("pgbouncer up", began)
        self._mark("total", began)

    def stop(self) -> None:
        # A fast shutdown via pg_ctl first (replicas before the primary); signals mop up.
        if self.data_root is not None:
            for data in [*sorted(self.data_root.glob("replica*")), self.data_root / "primary"]:
                if (data / "postmaster.pid").exists():
                    self._run(
                        [
                            self._bin("pg_ctl"),
                            "stop",
                            "-D",
                            str(data),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            "10",
                        ],
                        check=False,
                    )
        super().stop()
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs.clear()

    def _mark(self, what: str, began: float) -> None:
        self.timings[what] = round(time.monotonic() - began, 3)

    # --- environment file -----------------------------------------------------------------

    def env_tables(self) -> dict[str, dict[str, Any]]:
        table: dict[str, Any] = {
            "dsn": self.dsn(self.port, secret=f"${{{PASSWORD_VAR}}}"),
            "replicas": [self.dsn(p, secret=f"${{{PASSWORD_VAR}}}") for p in self.replica_ports],
            "ram": self.ram,
        }
        if self.tls:
            table["non_tls_dsn"] = self.dsn(
                self.port, secret=f"${{{PASSWORD_VAR}}}", sslmode="disable"
            )
        if self.pgbouncer_port:
            table["pgbouncer_dsn"] = self.dsn(self.pgbouncer_port, secret=f"${{{PASSWORD_VAR}}}")
        tables = {"postgres": table}
        if self.seed:
            # The application's typical reads, for the query probes of 7.1.2 and 11.1.3.
            tables["performance"] = {
                "db_queries": list(APPLICATION_QUERIES),
                "db_iterations": 200,
                "db_concurrency": 4,
            }
        return tables

    def env_vars(self) -> dict[str, str]:
        return {PASSWORD_VAR: self.password}

    def expect(self) -> dict[str, Any]:
        """What the suites compare against, for the environment file's [expect] table."""
        return {
            "postgres": {
                "alembic_head": self.alembic_head,
                # Reference data (2.2.1): role -> table.
                "reference_tables": {
                    name: name
                    for name in (
                        "emission_factors",
                        "industry_codes",
                        "countries",
                        "currencies",
                        "gwp_values",
                    )
                },
                # Where the application records authentication and admin events (6.3.1).
                "audit_table": "audit_log",
                # Range-partitioned tables (2.1.4): quarterly emissions, monthly audit log.
                "partitions": {
                    "emissions": {"table": "emissions", "key": "reporting_period"},
                    "audit_log": {"table": "audit_log", "key": "occurred_at"},
                },
            }
        }

    def thresholds(self) -> dict[str, dict[str, Any]]:
        """Catalog thresholds this staging differs from by design ([thresholds] table)."""
        # The checklist names the production database; this one is the staging database.
        return {"2.1.1": {"database": self.database}}

    def dsn(
        self, port: int | None = None, *, secret: str | None = None, sslmode: str | None = None
    ) -> str:
        """The application's DSN; ``secret`` replaces the password (e.g. a ${VAR})."""
        mode = sslmode or ("require" if self.tls else "disable")
        password = self.password if secret is None else secret
        return (
            f"postgresql://{self.app_user}:{password}@127.0.0.1:{port or self.port}"
            f"/{self.database}?sslmode={mode}"
        )

    # --- superuser access (tests and seeding only) ----------------------------------------

    @property
    def socket_dir(self) -> Path:
        assert self.data_root is not None, "start() first"
        return self.data_root / "run"

    def superuser_conninfo(
        self, port: int | None = None, dbname: str | None = None, timeout: int = 5
    ) -> str:
        return (
            f"host={self.socket_dir} port={port or self.port} user=postgres "
            f"dbname={dbname or self.database} connect_timeout={timeout}"
        )

    def superuser(self, port: int | None = None, dbname: str | None = None) -> Any:
        """An autocommit superuser psycopg connection (close it)."""
        import psycopg

        return psycopg.connect(self.superuser_conninfo(port, dbname), autocommit=True)

    def superuser_value(self, sql: str, port: int | None = None, dbname: str | None = None) -> Any:
        with self.superuser(port, dbname) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

    # --- steps ----------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return require_binary(name, PG_PACKAGE, search=[self.bin_dir])

    def _as_server_user(self) -> bool:
        return os.geteuid() == 0

    def _run(self, argv: Sequence[str], *, check: bool = True) -> str:
        """A one-shot server tool, as the server's OS user when we are root."""
        command = list(argv)
        if self._as_server_user():
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise SandboxError(
                f"{Path(argv[0]).name} failed ({done.returncode}):\n  " + "\n  ".join(output)
            )
        return done.stdout

    def _give(self, path: Path) -> None:
        if self._as_server_user():
            shutil.chown(path, self.os_user, self.os_user)

    def _prepare_root(self) -> Path:
        """workdir/postgres if the server's user can reach it, else a private temp dir."""
        root = self.workdir / "postgres"
        root.mkdir(parents=True, exist_ok=True)
        self._give(root)
        if not self._reachable(root) or len(str(root / "run" / ".s.PGSQL.65535")) > 100:
            # e.g. pytest's tmp dirs are 0700 root; and unix socket paths are short.
            root = Path(tempfile.mkdtemp(prefix="vcci-pg-"))
            self._temp_dirs.append(root)
            self._give(root)
            (self.workdir / "postgres" / "DATA_ROOT").write_text(str(root) + "\n")
        (root / "run").mkdir(mode=0o700, exist_ok=True)
        self._give(root / "run")
        self.data_root = root
        return root

    def _reachable(self, path: Path) -> bool:
        if not self._as_server_user():
            return True
        done = subprocess.run(
            ["runuser", "-u", self.os_user, "--", "test", "-w", str(path)],
            check=False,
            capture_output=True,
        )
        return done.returncode == 0

    def _initdb(self, data: Path) -> None:
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                f"--locale={self.locale}",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ]
        )

    def _configure_primary(self, data: Path) -> None:
        if self.tls:
            write_self_signed_cert(data / "server.crt", data / "server.key", "127.0.0.1")
            for name in ("server.crt", "server.key"):
                self._give(data / name)
        conf = {**self._base_settings(), **self.settings}
        with (data / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- pytest-vcci sandbox ---\n")
            fh.writelines(f"{key} = {_conf_value(value)}\n" for key, value in conf.items())
        (data / "pg_hba.conf").write_text(self._hba())

    def _base_settings(self) -> dict[str, str]:
        return {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "cluster_name": "vcci-primary",
            # Room for every pool: 6 application pods x (pool_size 20 + max_overflow 10).
            "max_connections": "200",
            # Small real buffers; the ratio checks read `ram` from the environment file.
            "shared_buffers": "128MB",
            "effective_cache_size": "12GB",
            "work_mem": "64MB",
            "maintenance_work_mem": "2GB",
            "autovacuum_vacuum_scale_factor": "0.05",
            "log_min_duration_statement": "1000",
            "password_encryption": "scram-sha-256",
            "ssl": "on" if self.tls else "off",
            "ssl_cert_file": "server.crt",
            "ssl_key_file": "server.key",
            "ssl_min_protocol_version": "TLSv1.2",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "hot_standby": "on",
            "shared_preload_libraries": "pg_stat_statements",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }

    def _hba(self) -> str:
        method = "hostssl" if self.tls else "host"
        lines = [
            "# superuser and replication only over the private unix socket (dir mode 0700)",
            "local all postgres trust",
            "local replication postgres trust",
            # Any role with a password (the application's; tests add least-privilege ones).
            f"{method} all all 127.0.0.1/32 scram-sha-256",
        ]
        if self.tls:
            lines.append("hostnossl all all 127.0.0.1/32 reject")
        return "\n".join(lines) + "\n"

    def _launch(self, data: Path, log_name: str, port: int | None = None) -> int:
        port = port or free_port()
        proc = self.spawn(
            [self._bin("postgres"), "-D", str(data), "-p", str(port)], log_name, user=self.os_user
        )
        wait_until(
            lambda: self._answers(port),
            f"postgres ({data.name})",
            timeout=30,
            proc=proc,
            log=self.log_path(log_name),
        )
        return port

    def _answers(self, port: int) -> bool:
        import psycopg

        with psycopg.connect(self.superuser_conninfo(port, "postgres", timeout=2)) as conn:
            conn.execute("SELECT 1")
        return True

    def _create_role_and_database(self) -> None:
        from psycopg import sql

        with self.superuser(dbname="postgres") as conn:
            # The server only ever sees the SCRAM verifier, never the password itself.
            verifier = conn.pgconn.encrypt_password(
                self.password.encode(), self.app_user.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.app_user), sql.Literal(verifier)
                )
            )
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(self.app_user)))
            conn.execute(
                sql.SQL(
                    "CREATE DATABASE {} OWNER {} ENCODING 'UTF8' LOCALE {} TEMPLATE template0"
                ).format(
                    sql.Identifier(self.database),
                    sql.Identifier(self.app_user),
                    sql.Literal(self.locale),
                )
            )
        with self.superuser() as conn:
            for extension in [*self.extensions, "pg_stat_statements"]:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension))
                )

    def _seed_schema(self, began: float) -> None:
        script = schema_sql(
            today=dt.date.today(),
            alembic_head=self.alembic_head,
            app_user=self.app_user,
            emission_factors=self.emission_factors,
            industry_codes=self.industry_codes,
            trigram="pg_trgm" in self.extensions,
        )
        with self.superuser() as conn:
            conn.execute(reference_data_sql())
            conn.execute(script.encode())  # our own generated script, no parameters
            self._mark("schema and data", began)
            # Statistics now (catalogs included), so autovacuum has nothing left to analyze
            # later and the server's tuple counters stay still while tests compare them.
            conn.execute("ANALYZE")

    def _start_replica(self, number: int) -> int:
        assert self.data_root is not None
        data = self.data_root / f"replica{number}"
        self._run(
            [
                self._bin("pg_basebackup"),
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
            ]
        )
        port = free_port()
        with (data / "postgresql.auto.conf").open("a") as fh:
            # cluster_name becomes the walreceiver's application_name on the primary.
            fh.write(f"port = {port}\ncluster_name = 'vcci-replica-{number}'\n")
        return self._launch(data, f"postgres-replica{number}.log", port)

    def _start_pgbouncer(self) -> int:
        """PgBouncer in transaction mode: TLS both ways, SCRAM with the role's own verifier."""
        assert self.data_root is not None
        binary = require_binary("pgbouncer", "pgbouncer", search=["/usr/sbin"])
        directory = self.data_root / "pgbouncer"
        directory.mkdir(mode=0o700, exist_ok=True)
        self._give(directory)
        # The verifier, not the password: PgBouncer authenticates clients with it and then
        # logs in to the server with the client's SCRAM keys.
        verifier = self.superuser_value(
            f"SELECT rolpassword FROM pg_authid WHERE rolname = '{self.app_user}'",
            dbname="postgres",
        )
        users = directory / "userlist.txt"
        users.write_text(f'"{self.app_user}" "{verifier}"\n')
        data = self.data_root / "primary"
        port = free_port()
        ini = directory / "pgbouncer.ini"
        ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"{self.database} = host=127.0.0.1 port={self.port} dbname={self.database}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {port}",
                    "unix_socket_dir =",
                    "auth_type = scram-sha-256",
                    f"auth_file = {users}",
                    "pool_mode = transaction",
                    "max_client_conn = 1000",
                    "default_pool_size = 20",
                    "client_tls_sslmode = require",
                    f"client_tls_cert_file = {data / 'server.crt'}",
                    f"client_tls_key_file = {data / 'server.key'}",
                    "server_tls_sslmode = require",
                    "ignore_startup_parameters = extra_float_digits",
                ]
            )
            + "\n"
        )
        for path in (users, ini):
            path.chmod(0o600)
            self._give(path)
        # `-u` rather than runuser: PgBouncer drops root itself and then stops at once on SIGTERM.
        argv = (
            [binary, "-u", self.os_user, str(ini)] if self._as_server_user() else [binary, str(ini)]
        )
        proc = self.spawn(argv, "pgbouncer.log")
        wait_until(
            lambda: port_open(port),
            "pgbouncer",
            timeout=15,
            proc=proc,
            log=self.log_path("pgbouncer.log"),
        )
        return port

    def _wait_streaming(self) -> None:
        if not self.replicas:
            return
        # Streaming, and caught up: a replica's data is the primary's when start() returns.
        sql = (
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
            "AND replay_lsn >= pg_current_wal_insert_lsn()"
        )
        wait_until(
            lambda: self.superuser_value(sql, dbname="postgres") == self.replicas,
            "postgres replicas streaming",
            timeout=60,
            log=self.log_path("postgres-replica1.log"),
        )


# --- helpers ------------------------------------------------------------------------------


def pick_locale() -> str:
    """en_US.UTF-8 (what checklist 2.1.1 asks for) when installed, else C.UTF-8."""
    try:
        available = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, check=False
        ).stdout.split()
    except FileNotFoundError:
        available = []
    normalized = {name.lower().replace("-", "") for name in available}
    return "en_US.UTF-8" if "en_us.utf8" in normalized else "C.UTF-8"


def _conf_value(value: str) -> str:
    plain = re.fullmatch(r"\d+(\.\d+)?", value) or value in ("on", "off")
    return value if plain else "'" + value.replace("'", "''") + "'"


def write_self_signed_cert(
    cert_path: Path, key_path: Path, host: str = "127.0.0.1", days: int = 365
) -> None:
    """A self-signed server certificate (its own CA) for 127.0.0.1 and localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "pytest-vcci sandbox"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pytest-vcci"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


def _iso_codes(name: str, key: str) -> list[dict[str, str]]:
    path = ISO_CODES / name
    if not path.is_file():
        raise SandboxError(
            f"{path} not found: install it with `apt-get update && apt-get install -y iso-codes`"
        )
    rows: list[dict[str, str]] = json.loads(path.read_text())[key]
    return rows


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: Sequence[Sequence[object]]) -> str:
    return ",\n".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


def reference_data_sql() -> str:
    """ISO 3166 countries, ISO 4217 currencies and AR6 GWPs (tables created here)."""
    countries = [
        (c["alpha_2"], c["alpha_3"], c["numeric"], c["name"])
        for c in _iso_codes("iso_3166-1.json", "3166-1")
    ]
    currencies = [
        (c["alpha_3"], c["numeric"], c["name"]) for c in _iso_codes("iso_4217.json", "4217")
    ]
    return f"""
CREATE TABLE countries (code char(2) PRIMARY KEY, alpha3 char(3) NOT NULL UNIQUE,
  numeric_code char(3) NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE currencies (code char(3) PRIMARY KEY, numeric_code char(3) NOT NULL,
  name text NOT NULL);
CREATE INDEX currencies_numeric_code_idx ON currencies (numeric_code);
CREATE TABLE gwp_values (gas text PRIMARY KEY, name text NOT NULL, gwp100 numeric NOT NULL,
  source text NOT NULL DEFAULT 'IPCC AR6');
INSERT INTO countries VALUES {_values(countries)};
INSERT INTO currencies VALUES {_values(currencies)};
INSERT INTO gwp_values (gas, name, gwp100) VALUES {_values(GWP_AR6)};
"""


def _quarter_start(day: dt.date, offset: int) -> dt.date:
    index = day.year * 4 + (day.month - 1) // 3 + offset
    return dt.date(index // 4, index % 4 * 3 + 1, 1)


def _month_start(day: dt.date, offset: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + offset
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_sql(today: dt.date) -> str:
    """Quarterly emissions partitions (4 past, current, next); monthly audit_log (2, 1, 1)."""
    parts = []
    for offset in range(-4, 2):
        lo, hi = _quarter_start(today, offset), _quarter_start(today, offset + 1)
        parts.append(
            f"CREATE TABLE emissions_{lo.year}q{(lo.month - 1) // 3 + 1} PARTITION OF "
            f"emissions FOR VALUES FROM ('{lo}') TO ('{hi}');"
        )
    for offset in range(-2, 2):
        lo, hi = _month_start(today, offset), _month_start(today, offset + 1)
        parts.append(
            f"CREATE TABLE audit_log_{lo:%Y_%m} PARTITION OF audit_log "
            f"FOR VALUES FROM ('{lo}') TO ('{hi}');"
        )
    return "\n".join(parts)


def schema_sql(
    *,
    today: dt.date,
    alembic_head: str,
    app_user: str,
    emission_factors: int,
    industry_codes: int,
    trigram: bool,
) -> str:
    """The VCCI schema and its data in one script (data first, indexes after: faster)."""
    # Without pg_trgm (a broken variant) a btree stands in, so only 2.1.1 notices.
    trgm = "USING gin ({} gin_trgm_ops)" if trigram else "({})"
    oldest_quarter = _quarter_start(today, -4)
    return f"""
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO alembic_version VALUES ({_literal(alembic_head)});

CREATE TABLE industry_codes (id serial PRIMARY KEY, system text NOT NULL, code text NOT NULL,
  title text NOT NULL, parent_code text, is_active boolean NOT NULL DEFAULT true,
  search tsvector GENERATED ALWAYS AS (to_tsvector('english', title)) STORED,
  UNIQUE (system, code));
INSERT INTO industry_codes (system, code, title, parent_code, is_active)
SELECT CASE WHEN g % 2 = 0 THEN 'NAICS' ELSE 'ISIC' END,
       CASE WHEN g % 2 = 0 THEN (100000 + g)::text ELSE 'I' || lpad(g::text, 5, '0') END,
       (ARRAY['Manufacturing of','Wholesale of','Transport of','Services for','Mining of'])
         [1 + g % 5] || ' ' ||
       (ARRAY['steel','cement','textiles','electronics','chemicals','paper','food','plastics'])
         [1 + g % 8] || ' group ' || g,
       CASE WHEN g > 100 THEN (100000 + g % 100)::text END,
       g % 20 <> 0
FROM generate_series(1, {industry_codes}) g;

CREATE TABLE emission_factors (id bigserial PRIMARY KEY,
  factor_uuid uuid NOT NULL DEFAULT gen_random_uuid(), source text NOT NULL,
  activity text NOT NULL, region char(2), unit text NOT NULL,
  co2e_per_unit numeric(18, 6) NOT NULL, valid_from date NOT NULL, valid_to date,
  industry_code_id int, metadata jsonb NOT NULL DEFAULT '{{}}',
  is_active boolean NOT NULL DEFAULT true,
  search tsvector GENERATED ALWAYS AS (to_tsvector('english', activity || ' ' || unit)) STORED);
WITH c AS (SELECT array_agg(code ORDER BY code) AS codes FROM countries),
-- 90 metadata shapes built once and shared: building jsonb for every row is the slow part.
shapes AS (SELECT array_agg(jsonb_build_object(
    'dataset', (ARRAY['ecoinvent 3.10','DESNZ 2024','EPA 2024'])[1 + n % 3],
    'scope', 1 + n % 3, 'gases', jsonb_build_array('CO2','CH4','N2O'),
    'uncertainty', n / 100.0) ORDER BY n) AS metadata FROM generate_series(0, 89) n)
INSERT INTO emission_factors (source, activity, region, unit, co2e_per_unit, valid_from,
  valid_to, industry_code_id, metadata, is_active)
SELECT (ARRAY['Ecoinvent','DESNZ','EPA'])[1 + g % 3],
       (ARRAY['electricity','natural gas','diesel','road freight','air travel','steel',
              'cement','paper','waste to landfill','rail freight'])[1 + g % 10] || ' ' || g % 5000,
       c.codes[1 + g % cardinality(c.codes)],
       (ARRAY['kWh','m3','litre','tonne-km','passenger-km','kg'])[1 + g % 6],
       ((g * 7919) % 100000) / 1000.0,
       DATE '2020-01-01' + (g % 5) * 365,
       CASE WHEN g % 7 = 0 THEN DATE '2020-01-01' + (g % 5) * 365 + 364 END,
       1 + g % {industry_codes}, shapes.metadata[1 + g % 90], g % 25 <> 0
FROM generate_series(1, {emission_factors}) g, c, shapes;
-- Foreign keys after the load: one validating join instead of a trigger per row.
ALTER TABLE emission_factors ADD FOREIGN KEY (region) REFERENCES countries,
  ADD FOREIGN KEY (industry_code_id) REFERENCES industry_codes;

CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL,
  slug text NOT NULL UNIQUE, settings jsonb NOT NULL DEFAULT '{{}}',
  is_active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO tenants (name, slug, settings, is_active)
SELECT 'Tenant ' || g, 'tenant-' || g,
       jsonb_build_object('plan', (ARRAY['enterprise','growth'])[1 + g % 2], 'region', 'eu'),
       g % 10 <> 0
FROM generate_series(1, 25) g;

CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants, email text NOT NULL UNIQUE,
  role text NOT NULL, is_active boolean NOT NULL DEFAULT true, last_login_at timestamptz);
INSERT INTO users (tenant_id, email, role, is_active, last_login_at)
SELECT t.id, 'user' || g || '@tenant-' || (1 + g % 25) || '.example',
       (ARRAY['viewer','analyst','admin'])[1 + g % 3], g % 15 <> 0,
       now() - (g % 72) * interval '1 hour'
FROM generate_series(1, 500) g JOIN tenants t ON t.slug = 'tenant-' || (1 + g % 25);

CREATE TABLE suppliers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants, name text NOT NULL,
  country_code char(2) REFERENCES countries, attributes jsonb NOT NULL DEFAULT '{{}}',
  is_active boolean NOT NULL DEFAULT true,
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', name)) STORED);
WITH c AS (SELECT array_agg(code ORDER BY code) AS codes FROM countries)
INSERT INTO suppliers (tenant_id, name, country_code, attributes, is_active)
SELECT t.id, 'Supplier ' || g || ' ' || (ARRAY['GmbH','Ltd','Inc','SA','BV'])[1 + g % 5],
       c.codes[1 + g % cardinality(c.codes)],
       jsonb_build_object('tier', 1 + g % 3, 'spend_eur', g * 1000, 'sbti', g % 4 = 0),
       g % 12 <> 0
FROM generate_series(1, 5000) g JOIN tenants t ON t.slug = 'tenant-' || (1 + g % 25), c;

CREATE TABLE emissions (id uuid NOT NULL DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL,
  supplier_id uuid NOT NULL, reporting_period date NOT NULL, scope3_category smallint NOT NULL,
  emission_factor_id bigint, co2e_kg numeric(18, 3) NOT NULL, data jsonb NOT NULL DEFAULT '{{}}',
  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, reporting_period))
  PARTITION BY RANGE (reporting_period);
CREATE TABLE audit_log (id bigint GENERATED ALWAYS AS IDENTITY, occurred_at timestamptz NOT NULL,
  tenant_id uuid, actor text NOT NULL, event_type text NOT NULL, ip inet,
  details jsonb NOT NULL DEFAULT '{{}}', PRIMARY KEY (id, occurred_at))
  PARTITION BY RANGE (occurred_at);
{partition_sql(today)}
INSERT INTO emissions (tenant_id, supplier_id, reporting_period, scope3_category,
  emission_factor_id, co2e_kg, data)
SELECT s.tenant_id, s.id, DATE '{oldest_quarter}' + (g % 5) * interval '3 months',
       1 + g % 15, 1 + g % {emission_factors}, (g % 9973) * 1.5,
       jsonb_build_object('method', (ARRAY['spend','activity','supplier'])[1 + g % 3],
                          'quality', 1 + g % 5)
FROM generate_series(1, 20000) g
JOIN (SELECT id, tenant_id, row_number() OVER (ORDER BY id) AS n FROM suppliers) s
  ON s.n = 1 + g % 5000;
INSERT INTO audit_log (occurred_at, tenant_id, actor, event_type, ip, details)
SELECT now() - (g % 1440) * interval '7 minutes', u.tenant_id, u.email,
       (ARRAY['auth.login','auth.login','auth.login','auth.logout','auth.login_failed',
              'admin.role_change','admin.user_created','admin.settings_changed'])[1 + g % 8],
       ('10.0.' || g % 250 || '.' || (1 + g % 200))::inet,
       jsonb_build_object('user_agent', 'Mozilla/5.0', 'mfa', g % 3 <> 0)
FROM generate_series(1, 2000) g
JOIN (SELECT email, tenant_id, row_number() OVER (ORDER BY email) AS n FROM users) u
  ON u.n = 1 + g % 500;

-- Indexes: 47 in all with the primary keys and unique constraints above.
CREATE INDEX industry_codes_active_idx ON industry_codes (system, code) WHERE is_active;
CREATE INDEX industry_codes_search_idx ON industry_codes USING gin (search);
CREATE INDEX industry_codes_title_trgm_idx ON industry_codes {trgm.format("title")};
CREATE INDEX industry_codes_parent_idx ON industry_codes (parent_code);
CREATE UNIQUE INDEX emission_factors_uuid_idx ON emission_factors (factor_uuid);
CREATE INDEX emission_factors_source_activity_idx ON emission_factors (source, activity);
CREATE INDEX emission_factors_region_idx ON emission_factors (region);
CREATE INDEX emission_factors_active_idx ON emission_factors (activity, region) WHERE is_active;
CREATE INDEX emission_factors_metadata_idx ON emission_factors USING gin (metadata jsonb_path_ops);
CREATE INDEX emission_factors_search_idx ON emission_factors USING gin (search);
CREATE INDEX emission_factors_activity_trgm_idx ON emission_factors {trgm.format("activity")};
CREATE INDEX emission_factors_validity_idx ON emission_factors (valid_from, valid_to);
CREATE INDEX emission_factors_industry_idx ON emission_factors (industry_code_id);
CREATE INDEX tenants_active_idx ON tenants (slug) WHERE is_active;
CREATE INDEX tenants_settings_idx ON tenants USING gin (settings);
CREATE INDEX users_tenant_idx ON users (tenant_id);
CREATE INDEX users_active_idx ON users (tenant_id) WHERE is_active;
CREATE INDEX suppliers_tenant_idx ON suppliers (tenant_id);
CREATE INDEX suppliers_active_idx ON suppliers (tenant_id, name) WHERE is_active;
CREATE INDEX suppliers_attributes_idx ON suppliers USING gin (attributes);
CREATE INDEX suppliers_search_idx ON suppliers USING gin (search);
CREATE INDEX suppliers_name_trgm_idx ON suppliers {trgm.format("name")};
CREATE INDEX suppliers_country_idx ON suppliers (country_code);
CREATE INDEX emissions_tenant_period_idx ON emissions (tenant_id, reporting_period);
CREATE INDEX emissions_supplier_idx ON emissions (supplier_id);
CREATE INDEX emissions_data_idx ON emissions USING gin (data);
CREATE INDEX emissions_category_idx ON emissions (scope3_category);
CREATE INDEX audit_log_event_idx ON audit_log (event_type, occurred_at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor);
CREATE INDEX audit_log_details_idx ON audit_log USING gin (details);

GRANT USAGE, CREATE ON SCHEMA public TO "{app_user}";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{app_user}";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{app_user}";
"""
