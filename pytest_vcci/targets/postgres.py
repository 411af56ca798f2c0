"""The ``db`` target: PostgreSQL through psycopg 3, read-only, bounded in time.

Read-only in three layers:
1. before anything is sent, a statement must be one read (SELECT, WITH, SHOW, EXPLAIN, VALUES,
   TABLE) and must not call a function with side effects (``set_config`` could switch the
   session back to read-write; ``pg_terminate_backend`` would disturb the application);
2. the session starts with ``default_transaction_read_only=on``, so the server itself refuses a
   write that passed step 1 (a writable CTE, a volatile function);
3. the server's refusal (SQLSTATE 25006) is reported as a ReadOnlyViolation.

Bounded time: ``connect_timeout`` covers connecting (TCP, TLS, auth), ``statement_timeout`` is
set on the session, and a watchdog shuts the socket if the server sends nothing for
``read_timeout`` seconds (a hung server, not a slow query: that one is cancelled server-side).

What cannot be read is said, not thrown: every error the server answers a read with (a missing
privilege, table, column, function, setting or schema, an extension not loaded, a statement
timeout) becomes an ``Unobservable`` carrying one sentence: what could not be read, why, and
what would let it be (``setting ssl_min_protocol_version: the role vcci_app lacks
pg_read_all_settings``). The run records it as the test's observation. What PostgreSQL hides
rather than refuses (the statistics of other roles' sessions show NULL without
pg_read_all_stats) is asked for with ``needs=``, so a hidden value is never read as a fact.

A connection pooler (PgBouncer, ``[postgres].pgbouncer_dsn``) refuses the ``options`` startup
parameter, so through it every call is its own ``BEGIN READ ONLY`` transaction that sets
``statement_timeout`` locally (which works in every pool mode), under the same watchdog: a
pooler that waits for a frozen server costs one ``read_timeout``, not its own
``query_wait_timeout``.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable, Unobservable, one_line

if TYPE_CHECKING:
    import psycopg

    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import PostgresTable
    from pytest_vcci.targets.base import TargetGate

T = TypeVar("T")
TARGET = "postgres"
APPLICATION_NAME = "pytest-vcci"
READ_STATEMENTS = ("select", "with", "show", "explain", "values", "table")
# Functions that change something although a read-only transaction lets them run.
SIDE_EFFECT_FUNCTIONS = re.compile(
    r"\b(set_config|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_switch_wal|pg_create_restore_point|pg_promote|pg_wal_replay_(?:pause|resume)"
    r"|pg_stat_reset\w*|pg_stat_statements_reset|pg_(?:try_)?advisory_\w*|pg_notify"
    r"|lo_\w+|dblink\w*|pg_(?:create|drop|copy)_\w*replication_slot|pg_replication_origin_\w+"
    r"|pg_file_\w+|pg_logical_emit_message|txid_current|pg_current_xact_id)\s*\("
)
# Comments, literals and quoted identifiers, so keywords are only looked for in the code.
# Plain '...' strings take no backslash escapes (standard_conforming_strings is forced on).
# An E or $ that continues a name (date'...', foo$x$) does not open a literal: the server reads
# those as a name and a plain string, so the guard must too or it could be fooled.
_LEXEMES = re.compile(
    r"--[^\n]*|/\*.*?\*/"
    r"|(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'"
    r"|\"((?:[^\"]|\"\")*)\""
    r"|(?<![\w$])\$([A-Za-z_][A-Za-z_0-9]*|)\$.*?\$\2\$",
    re.S,
)


# What each kind of privilege error lacks: "permission denied for <kind> <name>".
_PRIVILEGE_OF_KIND = {
    "schema": "USAGE",
    "function": "EXECUTE",
    "procedure": "EXECUTE",
    "database": "CONNECT",
}
_DENIED = re.compile(
    r"permission denied for (table|view|materialized view|foreign table|sequence|relation"
    r"|schema|function|procedure|database|column|large object) (.+)$"
)
_PRIVILEGES_OF = re.compile(r"privileges of (\w+) to examine \"([^\"]+)\"")
_QUOTED = re.compile(r'"([^"]+)"')


# --- the statement guard ------------------------------------------------------------------


def _code_only(sql: str) -> str:
    """The statement without comments and literals; quoted identifiers keep their name."""

    def keep(match: re.Match[str]) -> str:
        if match.group(1) is not None:  # "Quoted" names still name functions
            return f" {match.group(1).replace(chr(34) * 2, chr(34))} "
        return " '' " if match.group(0)[0] in "'eE$" else " "

    return _LEXEMES.sub(keep, sql).lower()


def check_statement(sql: str) -> None:
    """Refuse (before it is sent) anything but a single read statement."""
    if re.search(r"(?i)\bu&[\"']", sql):
        raise ReadOnlyViolation(TARGET, "a unicode-escaped name or string (U&...)")
    code = _code_only(sql).strip()
    if ";" in code.rstrip("; \t\n"):
        raise ReadOnlyViolation(TARGET, "more than one statement in a call")
    first = re.match(r"[\s(]*([a-z_]+)", code)
    keyword = first.group(1) if first else ""
    if keyword not in READ_STATEMENTS:
        shown = keyword.upper() or "an empty statement"
        raise ReadOnlyViolation(
            TARGET, f"{shown} (only {', '.join(READ_STATEMENTS).upper()} are sent)"
        )
    called = SIDE_EFFECT_FUNCTIONS.search(code)
    if called:
        raise ReadOnlyViolation(TARGET, f"{called.group(1)}() (it has side effects)")
    if re.search(r"\bread\s+write\b", code):
        raise ReadOnlyViolation(TARGET, "READ WRITE")


# --- connection parameters ----------------------------------------------------------------


def dsn_params(dsn: str) -> dict[str, Any]:
    """A libpq URL or key=value DSN as a dict (host, port, dbname, user, sslmode, ...)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params: dict[str, Any] = conninfo_to_dict(dsn)
    except ProgrammingError:
        # libpq's message quotes the DSN, password included: say where, not what.
        raise ValueError("[postgres] DSN is not a valid libpq URL or key=value string") from None
    return params


def dsn_where(dsn: str) -> str:
    """user@host:port/db of a DSN: where it points, never the password."""
    p = dsn_params(dsn)
    user = f"{p['user']}@" if p.get("user") else ""
    return f"{user}{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def connection_params(dsn: str, table: PostgresTable, *, pooled: bool = False) -> dict[str, Any]:
    """The DSN's own parameters (sslmode, ...) plus ours: timeouts, read-only, our name.

    ``pooled``: no startup ``options`` (a pooler refuses them); each call sets them instead.
    """
    params = dsn_params(dsn)
    if not pooled:
        forced = (
            f"-c default_transaction_read_only=on -c statement_timeout="
            f"{table.statement_timeout_ms} -c standard_conforming_strings=on"
        )
        # Ours come last: the server applies -c options in order, so they win over the DSN's.
        params["options"] = f"{params['options']} {forced}" if params.get("options") else forced
    params["connect_timeout"] = max(2, math.ceil(table.connect_timeout))
    params["application_name"] = APPLICATION_NAME
    return params


# --- the target ---------------------------------------------------------------------------


class Database:
    """One PostgreSQL server (primary or replica), reached read-only."""

    def __init__(
        self,
        table: PostgresTable,
        gate: TargetGate,
        *,
        dsn: str | None = None,
        target: str = TARGET,
        pooled: bool = False,
    ) -> None:
        self.table = table
        self.gate = gate
        self.target = target
        self.pooled = pooled
        self._params = connection_params(dsn or table.dsn, table, pooled=pooled)
        self._conn: psycopg.Connection[Any] | None = None
        self._replicas: list[Database] | None = None
        self._pooler: Database | None = None
        self._lock = threading.Lock()
        self._has_role: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"<Database {self.describe()}>"

    def describe(self) -> str:
        """user@host:port/db (sslmode): where it points, never the password."""
        p = self._params
        user = f"{p['user']}@" if p.get("user") else ""
        where = f"{user}{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"
        return f"{self.target} {where} (sslmode={p.get('sslmode', 'prefer')})"

    # --- lifecycle ------------------------------------------------------------------------

    def ensure(self) -> Database:
        """Probe once per run (all workers); TargetUnreachable if it is down."""
        self.gate.ensure(self.target, self._probe)
        return self

    def _probe(self) -> None:
        fired = threading.Event()
        try:
            conn = self._connection()
            with _Watchdog(conn, self.table.read_timeout, fired):
                conn.execute("SELECT 1")
        except Exception as exc:
            self._disconnect()
            if fired.is_set():
                raise TimeoutError(self._silence()) from None
            raise _scrubbed(exc, self._params.get("password")) from None

    def _silence(self) -> str:
        return f"no answer within read_timeout={self.table.read_timeout:g}s"

    def close(self) -> None:
        self._disconnect()
        for replica in self._replicas or []:
            replica.close()
        if self._pooler is not None:
            self._pooler.close()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            # Autocommit: every statement is its own (read-only) transaction. Through a pooler
            # in transaction mode, a statement psycopg prepared on one server connection would
            # be missing on the next: nothing is prepared there.
            self._conn = psycopg.connect(
                **self._params, autocommit=True, prepare_threshold=None if self.pooled else 5
            )
        return self._conn

    # --- queries --------------------------------------------------------------------------

    def rows(
        self, sql: str, params: Any = None, *, about: str | None = None, needs: str | None = None
    ) -> list[dict[str, Any]]:
        """The rows of one read. ``about`` names what is read, for the sentence if it cannot
        be; ``needs`` a predefined role without which PostgreSQL hides the answer (NULLs)."""
        from psycopg.rows import dict_row

        check_statement(sql)
        if needs:
            self.require_role(needs, about or _statement(sql))

        def fetch(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cursor:
                return cursor.execute(sql.encode(), params).fetchall()

        return self._call(fetch, about or _statement(sql))

    def value(
        self, sql: str, params: Any = None, *, about: str | None = None, needs: str | None = None
    ) -> Any:
        """The first column of the first row (None when there is no row)."""
        check_statement(sql)
        if needs:
            self.require_role(needs, about or _statement(sql))
        row = self._call(
            lambda conn: conn.execute(sql.encode(), params).fetchone(), about or _statement(sql)
        )
        return row[0] if row else None

    def setting(self, name: str) -> str:
        """A server setting as SHOW prints it (with its unit: '64MB')."""
        value = self.value("SELECT current_setting(%s)", (name,), about=f"setting {name}")
        return str(value)

    def setting_row(self, name: str) -> dict[str, Any]:
        """A setting's pg_settings row (setting, unit, ...). pg_settings leaves out what the
        role may not read, so a missing row is asked again through current_setting(), whose
        refusal says why (a privilege, or no such setting)."""
        rows = self.rows(
            "SELECT * FROM pg_settings WHERE name = %s", (name,), about=f"setting {name}"
        )
        if not rows:
            self.setting(name)  # raises Unobservable naming the privilege or the missing setting
            raise Unobservable(
                self.target,
                f"setting {name}",
                "pg_settings has no row for it",
                "a row in pg_settings",
                self.describe(),
            )
        return rows[0]

    def role(self) -> str:
        """The role this session runs as (the DSN's user, or libpq's default)."""
        user: str = self._call(lambda conn: conn.info.user, "the session's role")
        return user

    def require_role(self, role: str, to_read: str) -> None:
        """Unobservable unless this session has the privileges of ``role`` (e.g.
        pg_read_all_stats): PostgreSQL does not refuse a statistics view to a role without
        it, it shows NULL, which a check must not read as "not streaming"."""
        if role not in self._has_role:
            held = self.value(
                "SELECT pg_has_role(current_user, %s, 'USAGE')", (role,), about=f"role {role}"
            )
            self._has_role[role] = bool(held)
        if not self._has_role[role]:
            user = self.role()
            raise Unobservable(
                self.target,
                to_read,
                f"the role {user} lacks {role} (without it PostgreSQL hides other roles' statistics)",
                f"readable: grant {role} to {user}, or attest",
                self.describe(),
            )

    def server_version(self) -> int:
        """server_version_num, e.g. 150008 for 15.8."""
        version: int = self._call(lambda conn: conn.info.server_version, "server_version")
        return version

    def tls(self) -> dict[str, Any]:
        """This session's TLS as the server sees it: ssl, version, cipher, bits."""
        rows = self.rows(
            "SELECT ssl, version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            about="this session's TLS (pg_stat_ssl)",
        )
        return rows[0] if rows else {"ssl": False, "version": None, "cipher": None, "bits": None}

    def session_encrypted(self) -> bool:
        """Whether this client's own connection uses TLS (to a pooler: client to pooler)."""
        encrypted: bool = self._call(
            lambda conn: bool(conn.pgconn.ssl_in_use), "this session's TLS"
        )
        return encrypted

    def pooler(self) -> Database | None:
        """The connection pooler in front of this server ([postgres].pgbouncer_dsn), if set."""
        if self._pooler is None and self.table.pgbouncer_dsn:
            self._pooler = Database(
                self.table, self.gate, dsn=self.table.pgbouncer_dsn, target="pgbouncer", pooled=True
            )
        return self._pooler

    def plaintext_refusal(self, dsn: str) -> str | None:
        """Try ``dsn`` (one without TLS): None if the server accepts it (closed at once), else
        the server's refusal (``FATAL: no pg_hba.conf entry ... no encryption``). A server that
        cannot be reached raises TargetUnreachable naming the DSN's server, within
        connect_timeout."""
        import psycopg

        self.gate.check(self.target)
        params = connection_params(dsn, self.table)
        try:
            psycopg.connect(**params).close()
        except psycopg.OperationalError as exc:
            # libpq: 'connection to server at "h", port p failed: <why>'
            text = " ".join(str(exc).split()).rsplit("failed: ", 1)[-1]
            text = str(_scrubbed(RuntimeError(text), params.get("password")))
            if re.search(r"(?i)timeout expired|connection refused|could not translate", text):
                # Not marked down for the run: this DSN may point elsewhere than the primary.
                where = f"{self.target} {dsn_where(dsn)} (sslmode={params.get('sslmode', '')})"
                raise TargetUnreachable(where, f"OperationalError: {text[:200]}") from None
            return text[:300]
        return None

    def replicas(self) -> list[Database]:
        """One Database per configured replica DSN (each with its own fail-fast state)."""
        if self._replicas is None:
            self._replicas = [
                Database(self.table, self.gate, dsn=dsn, target=f"{self.target}-replica-{n}")
                for n, dsn in enumerate(self.table.replicas, start=1)
            ]
        return self._replicas

    # --- the one way to the server --------------------------------------------------------

    def _call(self, work: Callable[[psycopg.Connection[Any]], T], about: str) -> T:
        import psycopg

        self.gate.check(self.target)
        with self._lock:
            fired = threading.Event()
            try:
                conn = self._connection()
                with _Watchdog(conn, self.table.read_timeout, fired):
                    return self._in_pool_transaction(conn, work) if self.pooled else work(conn)
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                raise ReadOnlyViolation(
                    self.target, f"a write: the server said {one_line(exc)}"
                ) from None
            except psycopg.OperationalError as exc:
                if not (fired.is_set() or self._conn is None or self._conn.broken):
                    # e.g. statement_timeout: this query, not the server
                    raise self._unobservable(exc, about) from None
                self._disconnect()
                cause = (
                    f"TimeoutError: {self._silence()}"
                    if fired.is_set()
                    else one_line(_scrubbed(exc, self._params.get("password")))
                )
                self.gate.mark_down(self.target, cause)
                raise TargetUnreachable(self.target, cause) from None
            except psycopg.Error as exc:
                raise self._unobservable(exc, about) from None

    def _unobservable(self, exc: psycopg.Error, about: str) -> Unobservable:
        """The server's refusal of a read as one sentence (the lock is held: no new query)."""
        conn = self._conn
        user = conn.info.user if conn is not None and not conn.closed else self._params.get("user")
        database = conn.info.dbname if conn is not None and not conn.closed else "?"
        what, why, expected = explain(
            exc,
            about=about,
            role=str(user or "?"),
            database=database,
            statement_timeout_ms=self.table.statement_timeout_ms,
        )
        return Unobservable(self.target, what, why, expected, self.describe())

    def _in_pool_transaction(
        self, conn: psycopg.Connection[Any], work: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        """``work`` in a read-only transaction with our statement timeout, set locally: what
        the startup options do on a direct connection, in a form every pool mode keeps."""
        conn.read_only = True  # psycopg opens the transaction with BEGIN READ ONLY
        with conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {int(self.table.statement_timeout_ms)}")
            return work(conn)


def _statement(sql: str) -> str:
    """A statement as a short name for what it reads: 'the result of SELECT ... FROM x'."""
    text = " ".join(sql.split())
    return f"the result of {text if len(text) <= 80 else text[:77] + '...'}"


def explain(
    exc: Exception, *, about: str, role: str, database: str, statement_timeout_ms: int
) -> tuple[str, str, str]:
    """(what could not be read, why, what would let it be read) for a server's error."""
    diag = getattr(exc, "diag", None)
    primary = str(getattr(diag, "message_primary", None) or exc).strip().splitlines()[0]
    state = getattr(exc, "sqlstate", None) or ""
    quoted = _QUOTED.search(primary)
    name = quoted.group(1) if quoted else None
    if state == "42501":  # insufficient privilege
        needs = _PRIVILEGES_OF.search(primary)
        if needs:
            grant, setting = needs.groups()
            why = f"the role {role} lacks {grant}"
            return f"setting {setting}", why, f"readable: grant {grant} to {role}, or attest"
        denied = _DENIED.search(primary)
        if denied:
            kind, obj = denied.groups()
            privilege = _PRIVILEGE_OF_KIND.get(kind, "SELECT")
            return (
                f"{kind} {obj}",
                f"the role {role} lacks {privilege} on it",
                f"readable: grant {privilege} on {kind} {obj} to {role}, or attest",
            )
        return (
            about,
            f"the role {role} lacks a privilege: {primary}",
            f"readable: grant it to {role}, or attest",
        )
    missing = {
        "42P01": ("table", f"no such table in database {database} (for role {role})"),
        "42703": ("column", "no such column in the table the check reads"),
        "3F000": ("schema", f"no such schema in database {database}"),
    }
    if state in missing and name:
        kind, why = missing[state]
        return f"{kind} {name}", why, "present"
    if state == "42883":  # undefined function: its name and argument types
        function = primary.removeprefix("function ").removesuffix(" does not exist")
        why = "no such function here (the extension that provides it may be missing)"
        return f"function {function}", why, "present"
    if state == "42704" and name and primary.startswith("unrecognized configuration parameter"):
        return f"setting {name}", "this server has no such setting", "present"
    if state == "57014":  # query_canceled: statement_timeout
        return (
            about,
            f"it did not finish within statement_timeout={statement_timeout_ms} ms "
            "(the server cancelled it)",
            "an answer within [postgres].statement_timeout_ms",
        )
    if state == "55000":  # object not in prerequisite state: an extension not preloaded
        return about, f"the server cannot answer it in its present state: {primary}", "readable"
    if not state:  # refused before it reached the server (psycopg)
        return about, f"the driver refused the statement: {primary}", "readable"
    return about, f"the server refused the statement: {primary} (SQLSTATE {state})", "readable"


def _scrubbed(exc: BaseException, secret: str | None) -> BaseException:
    """The same error without the password in its text (libpq does not put it there, but a
    DSN or a driver might)."""
    text = str(exc)
    if not secret or secret not in text:
        return exc
    try:
        return type(exc)(text.replace(secret, "[REDACTED]"))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {text.replace(secret, '[REDACTED]')}")


class _Watchdog:
    """Shut the socket if the server has not answered after ``seconds`` (a hung server)."""

    def __init__(
        self, conn: psycopg.Connection[Any], seconds: float, fired: threading.Event
    ) -> None:
        self._timer = threading.Timer(seconds, self._fire, (conn, fired))
        self._timer.daemon = True

    @staticmethod
    def _fire(conn: psycopg.Connection[Any], fired: threading.Event) -> None:
        fired.set()
        try:
            # shutdown() acts on the socket itself, so libpq's blocked read returns at once.
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

    def __enter__(self) -> None:
        self._timer.start()

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


# --- fixture ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def db(vcci_context: RunContext) -> Iterator[Database]:
    """The environment's PostgreSQL primary, read-only; skips when [postgres] is absent."""
    table = vcci_context.target_table("postgres")
    database = Database(table, vcci_context.gate)
    try:
        yield database.ensure()
    finally:
        database.close()
