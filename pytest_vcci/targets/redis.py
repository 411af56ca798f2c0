"""The ``cache`` target: Redis (standalone and cluster) through redis-py, read-only, bounded.

Read-only at the connection: every command a connection packs, whoever asked for it (a
helper, a pipeline, the cluster client's own discovery, redis-py's handshake), goes through
an allowlist first. Anything else (SET, DEL, FLUSHALL, CONFIG SET, EVAL, ...) raises
ReadOnlyViolation and no byte of it leaves the process. Even reading values (GET) is not on
the list: session values hold tokens, and the checks need TTLs, types and counters only.

Bounded time: no retries; connect_timeout bounds connecting (TCP, TLS, AUTH/HELLO);
read_timeout bounds every reply.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import pytest

from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable, one_line

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import RedisTable
    from pytest_vcci.targets.base import TargetGate

T = TypeVar("T")
TARGET = "redis"
ANY = None  # every subcommand of the command is a read
# Command -> the subcommands that only read (ANY: the command reads whatever follows).
READ_COMMANDS: dict[str, frozenset[str] | None] = {
    "PING": ANY,
    "ECHO": ANY,
    "INFO": ANY,
    "DBSIZE": ANY,
    "SCAN": ANY,
    "TTL": ANY,
    "PTTL": ANY,
    "EXPIRETIME": ANY,
    "PEXPIRETIME": ANY,
    "TYPE": ANY,
    "EXISTS": ANY,
    "ROLE": ANY,
    "TIME": ANY,
    "LASTSAVE": ANY,
    "CONFIG": frozenset({"GET"}),
    "CLUSTER": frozenset(
        {
            "INFO",
            "SHARDS",
            "NODES",
            "SLOTS",
            "MYID",
            "MYSHARDID",
            "REPLICAS",
            "KEYSLOT",
            "COUNTKEYSINSLOT",
            "LINKS",
        }
    ),
    "MEMORY": frozenset({"STATS", "USAGE", "DOCTOR"}),
    "SLOWLOG": frozenset({"GET", "LEN"}),
    "LATENCY": frozenset({"LATEST", "HISTORY", "DOCTOR"}),
    "COMMAND": frozenset({"", "COUNT", "INFO", "DOCS", "LIST", "GETKEYS"}),
    "CLIENT": frozenset(
        {
            "INFO",
            "GETNAME",
            "ID",
            "LIST",
            # Connection-local settings redis-py's handshake sends itself.
            "SETINFO",
            "SETNAME",
            "MAINT_NOTIFICATIONS",
        }
    ),
    # The rest of the handshake (and the cluster client's replica reads).
    "AUTH": ANY,
    "HELLO": ANY,
    "SELECT": ANY,
    "READONLY": ANY,
    # A transaction only groups commands that each passed this list.
    "MULTI": ANY,
    "EXEC": ANY,
    "DISCARD": ANY,
}


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def check_command(args: tuple[Any, ...], target: str = TARGET) -> None:
    """Refuse any command not on the read allowlist (before it is packed, so before it is sent)."""
    if not args:
        raise ReadOnlyViolation(target, "an empty command")
    # redis-py allows "CONFIG GET" as one argument and splits it the same way when packing.
    words = [*_text(args[0]).split(), *(_text(a) for a in args[1:2])]
    name = words[0].upper() if words else ""
    sub = words[1].upper() if len(words) > 1 else ""
    allowed = READ_COMMANDS.get(name, frozenset())
    if name not in READ_COMMANDS or (allowed is not ANY and sub not in allowed):
        shown = f"{name} {sub}" if name in READ_COMMANDS and sub else name
        raise ReadOnlyViolation(
            target, f"{shown or 'an empty command'} (not a read on the allowlist; nothing was sent)"
        )


class _GuardedPacker:
    """Wraps redis-py's command packer: the one place every command passes through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def pack(self, *args: Any) -> Any:
        check_command(args)
        return self._inner.pack(*args)


@functools.cache
def guarded_connection_classes() -> tuple[type[Any], type[Any]]:
    """(plain, TLS) redis-py Connection classes with the guard and a bounded handshake."""
    import redis

    class _Guard:
        def _construct_command_packer(self, packer: Any) -> Any:
            return _GuardedPacker(super()._construct_command_packer(packer))  # type: ignore[misc]

        def on_connect_check_health(self, check_health: bool = True) -> None:
            # AUTH/HELLO are part of connecting: bound them by the connect timeout.
            sock = self._sock  # type: ignore[attr-defined]
            sock.settimeout(self.socket_connect_timeout)  # type: ignore[attr-defined]
            try:
                super().on_connect_check_health(check_health)  # type: ignore[misc]
            finally:
                if self._sock is not None:  # type: ignore[attr-defined]
                    self._sock.settimeout(self.socket_timeout)  # type: ignore[attr-defined]

    class GuardedConnection(_Guard, redis.Connection):
        pass

    class GuardedSSLConnection(_Guard, redis.SSLConnection):
        def _wrap_socket_with_ssl(self, sock: Any) -> Any:
            # The TLS handshake is part of connecting too.
            sock.settimeout(self.socket_connect_timeout)
            return super()._wrap_socket_with_ssl(sock)

    return GuardedConnection, GuardedSSLConnection


def connection_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "cannot talk to the server" (not "the command failed")."""
    from redis.exceptions import ConnectionError, RedisClusterException, TimeoutError

    return ConnectionError, TimeoutError, RedisClusterException


def _where(url: str) -> tuple[str, str]:
    """(scheme://user@host:port/db without the password, the password or '')."""
    parts = urlsplit(url)
    user = f"{unquote(parts.username)}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return (
        f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}",
        unquote(parts.password or ""),
    )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def client_kwargs(url: str, table: RedisTable) -> dict[str, Any]:
    """Connection keyword arguments from a redis:// or rediss:// URL and the table."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"[redis] URL scheme must be redis or rediss, got {parts.scheme!r}")
    plain, tls = guarded_connection_classes()
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "socket_connect_timeout": table.connect_timeout,
        "socket_timeout": table.read_timeout,
        "decode_responses": True,
        "connection_class": tls if parts.scheme == "rediss" else plain,
        # One attempt: a target that is down is reported once, by the gate.
        "retry": Retry(NoBackoff(), 0),
    }
    if parts.scheme == "rediss":
        kwargs.update(ssl_ca_certs=table.ca_bundle, ssl_cert_reqs="required")
    return kwargs


class Cache:
    """The environment's Redis: the standalone ``url`` and, if set, the ``cluster_url``."""

    def __init__(self, table: RedisTable, gate: TargetGate, *, target: str = TARGET) -> None:
        self.table = table
        self.gate = gate
        self.target = target
        self.cluster_target = f"{target}-cluster"
        self._client: Redis | None = None
        self._cluster: RedisCluster | None = None
        self._secrets = [
            s for url in (table.url, table.cluster_url) if url for s in [_where(url)[1]] if s
        ]

    def __repr__(self) -> str:
        return f"<Cache {self.describe()}>"

    def describe(self) -> str:
        text = f"{self.target} {_where(self.table.url)[0]}"
        if self.table.cluster_url:
            text += f", cluster {_where(self.table.cluster_url)[0]}"
        return text

    # --- clients (guarded; use the helpers below for fail-fast) ---------------------------

    @property
    def client(self) -> Redis:
        if self._client is None:
            import redis

            kwargs = client_kwargs(self.table.url, self.table)
            db = urlsplit(self.table.url).path.strip("/") or "0"
            self._client = redis.Redis(
                connection_pool=redis.ConnectionPool(db=int(db), max_connections=8, **kwargs)
            )
        return self._client

    @property
    def cluster(self) -> RedisCluster:
        if not self.table.cluster_url:
            raise ValueError("[redis].cluster_url is not configured")
        if self._cluster is None:
            from redis.cluster import RedisCluster

            kwargs = client_kwargs(self.table.cluster_url, self.table)
            host, port, retry = kwargs.pop("host"), kwargs.pop("port"), kwargs.pop("retry")
            # redis-py's own rediss:// parsing would replace our connection class with its
            # unguarded SSLConnection, so the startup node goes in as redis:// and TLS comes
            # from connection_class and the ssl_* arguments.
            self._cluster = RedisCluster(url=f"redis://{host}:{port}", retry=retry, **kwargs)
        return self._cluster

    def ensure(self) -> Cache:
        """Probe the standalone server once per run (all workers)."""
        self.gate.ensure(self.target, lambda: self._probe(lambda: self.client.ping()))
        return self

    def _probe(self, ping: Callable[[], object]) -> None:
        try:
            ping()
        except Exception as exc:
            raise self._scrubbed(exc) from None

    def close(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    # --- helpers --------------------------------------------------------------------------

    def command(self, *args: Any) -> Any:
        """Any allowlisted read on the standalone server, e.g. ``command("MEMORY", "STATS")``."""
        return self._call(self.target, lambda: self.client.execute_command(*args))

    def ping(self) -> bool:
        return bool(self._call(self.target, lambda: self.client.ping()))

    def info(self, section: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.target, lambda: self.client.info(section))
        return result

    def config_get(self, pattern: str = "*") -> dict[str, str]:
        """Every parameter matching ``pattern`` (a glob, as CONFIG GET takes it) by name."""
        found = self._call(self.target, lambda: self.client.config_get(pattern))
        return {str(key): str(value) for key, value in found.items()}

    def config(self, name: str) -> str | None:
        """One parameter's value (``config("appendonly") -> "yes"``); None if the server has
        no parameter of that name. ``name`` is taken literally, never as a glob."""
        if any(c in name for c in "*?["):
            raise ValueError(f"config({name!r}): a parameter name, not a pattern (use config_get)")
        return self.config_get(name).get(name)

    def scan_ttls(self, match: str = "*", count_limit: int = 1000) -> dict[str, int]:
        """Up to ``count_limit`` keys matching ``match`` with their TTLs in seconds (-1: none)."""

        def work() -> dict[str, int]:
            keys: list[str] = []
            for key in self.client.scan_iter(match=match, count=min(count_limit, 1000)):
                keys.append(key)
                if len(keys) >= count_limit:
                    break
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.ttl(key)
            return dict(zip(keys, pipe.execute(), strict=True))

        return self._call(self.target, work)

    def requires_auth(self) -> bool:
        """Whether the server refuses a client without credentials (NOAUTH)."""
        import redis
        from redis.exceptions import AuthenticationError, ResponseError

        url = self.table.unauthenticated_url or _without_credentials(self.table.url)
        kwargs = client_kwargs(url, self.table)

        def attempt() -> bool:
            with redis.Redis(connection_pool=redis.ConnectionPool(**kwargs)) as anonymous:
                try:
                    anonymous.ping()
                except AuthenticationError:
                    return True
                except ResponseError as exc:
                    if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
                        return True
                    raise
            return False

        return self._call(self.target, attempt)

    def cluster_info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            self.cluster_target, lambda: self.cluster.cluster_info()
        )
        return result

    def cluster_shards(self) -> list[dict[str, Any]]:
        """CLUSTER SHARDS: one dict per shard, ``slots`` and ``nodes`` (role, health, ...)."""
        return self._call(self.cluster_target, lambda: _as_dicts(self.cluster.cluster_shards()))

    def cluster_nodes_config(self, pattern: str) -> dict[str, dict[str, str]]:
        """CONFIG GET on every node of the cluster, by ``host:port``."""
        return self._each_node(lambda node: self.cluster.config_get(pattern, target_nodes=node))

    def cluster_nodes_info(self, section: str | None = None) -> dict[str, dict[str, Any]]:
        """INFO on every node of the cluster, by ``host:port``."""
        return self._each_node(lambda node: self.cluster.info(section, target_nodes=node))

    def _each_node(self, work: Callable[[Any], Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return {node.name: work(node) for node in self.cluster.get_nodes()}

        return self._call(self.cluster_target, run)

    # --- the one way to the servers -------------------------------------------------------

    def _call(self, target: str, work: Callable[[], T]) -> T:
        self.gate.check(target)
        try:
            return work()
        except connection_errors() as exc:
            cause = one_line(self._scrubbed(exc))
            self.gate.mark_down(target, cause)
            raise TargetUnreachable(target, cause) from None

    def _scrubbed(self, exc: BaseException) -> BaseException:
        text = str(exc)
        leaked = [s for s in self._secrets if s in text]
        if not leaked:
            return exc
        for secret in leaked:
            text = text.replace(secret, "[REDACTED]")
        return RuntimeError(f"{type(exc).__name__}: {text}")


def _as_dicts(shards: Any) -> list[dict[str, Any]]:
    """CLUSTER SHARDS as plain dicts whatever the protocol version and redis-py parsing."""
    result = []
    for shard in shards:
        if isinstance(shard, list):  # RESP2 unparsed: [key, value, key, value, ...]
            shard = dict(zip(shard[::2], shard[1::2], strict=True))
        nodes = [
            dict(zip(n[::2], n[1::2], strict=True)) if isinstance(n, list) else dict(n)
            for n in shard.get("nodes", [])
        ]
        result.append({**shard, "nodes": nodes})
    return result


# --- fixture ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cache(vcci_context: RunContext) -> Iterator[Cache]:
    """The environment's Redis, read-only; skips when [redis] is absent."""
    table = vcci_context.target_table("redis")
    target = Cache(table, vcci_context.gate)
    try:
        yield target.ensure()
    finally:
        target.close()
