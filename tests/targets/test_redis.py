"""The ``cache`` target against real Redis 7 servers (standalone over TLS, 6-node cluster).

Proofs use the servers' own counters, read as the admin user: ``INFO commandstats`` says
which commands ever ran, DBSIZE how many keys there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from support_net import BlackHole

from pytest_vcci.context import RunContext
from pytest_vcci.sandbox.redis import RedisComponent
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable
from pytest_vcci.targets.redis import Cache, check_command

ContextFactory = Callable[..., RunContext]


# `cache` is the target's own session fixture (the plugin registers pytest_vcci.targets.redis);
# this module gives it the context the plugin would build from the sandbox's environment.
@pytest.fixture(scope="session")
def vcci_context(redis_sandbox: RedisComponent, sandbox_run_context: ContextFactory) -> RunContext:
    return sandbox_run_context(redis_sandbox)


def command_stats(component: RedisComponent, port: int | None = None) -> dict[str, int]:
    """calls per command, from the server's INFO commandstats (as the admin user)."""
    with component.admin(port) as admin:
        stats = admin.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def server_state(component: RedisComponent) -> dict[str, Any]:
    """What a write would change: DBSIZE, the policy, and every command's calls, rejected and
    failed calls (but those of the reads this proof makes itself)."""
    with component.admin() as admin:
        stats = admin.info("commandstats")
        dbsize = admin.dbsize()
        policy = admin.config_get("maxmemory-policy")
    ours = {
        "info",
        "auth",
        "hello",
        "client|setinfo",
        "client|setname",
        "dbsize",
        "config|get",
        "ping",
    }
    commands = {
        name.removeprefix("cmdstat_"): (
            value["calls"],
            value.get("rejected_calls"),
            value.get("failed_calls"),
        )
        for name, value in stats.items()
    }
    return {
        "dbsize": dbsize,
        "policy": policy,
        "commands": {k: v for k, v in commands.items() if k not in ours},
    }


def cluster_set_calls(component: RedisComponent) -> int:
    return sum(command_stats(component, port).get("set", 0) for port in component.cluster_ports)


# --- normal use -------------------------------------------------------------------------------


def test_info_and_config_of_the_standalone_server(cache: Cache) -> None:
    assert cache.ping() is True
    server = cache.info("server")
    assert str(server["redis_version"]).startswith("7.")
    assert cache.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert cache.config_get("appendonly") == {"appendonly": "yes"}
    assert int(cache.config_get("maxmemory")["maxmemory"]) == 16 * 1024**3
    assert cache.config("appendonly") == "yes"
    assert cache.config("maxmemory-policy") == "allkeys-lru"
    assert cache.config("no-such-parameter") is None
    with pytest.raises(ValueError, match="a parameter name, not a pattern"):
        cache.config("maxmemory*")
    assert cache.info("persistence")["aof_enabled"] == 1
    assert cache.command("DBSIZE") == 500
    stats = cache.info("stats")
    hits, misses = stats["keyspace_hits"], stats["keyspace_misses"]
    assert hits / (hits + misses) > 0.95


def test_scan_ttls_sees_sessions_expiring_within_8_hours(cache: Cache) -> None:
    sessions = cache.scan_ttls("session:*", count_limit=1000)
    assert len(sessions) == 200
    assert all(0 < ttl <= 8 * 3600 for ttl in sessions.values())
    assert all(len(key) == len("session:") + 36 for key in sessions)
    assert len(cache.scan_ttls("cache:*", count_limit=50)) == 50


def test_the_connection_is_tls_and_a_plain_client_gets_nothing(
    cache: Cache, redis_sandbox: RedisComponent
) -> None:
    assert cache.table.url.startswith("rediss://")
    assert cache.ping() is True
    # The server has no plain-text port: a client that does not speak TLS cannot talk to it.
    plain = redis.Redis(
        host="127.0.0.1",
        port=redis_sandbox.port,
        socket_timeout=2,
        socket_connect_timeout=2,
        password=redis_sandbox.password,
        username="vcci",
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    plain.close()


def test_requires_auth(
    cache: Cache, sandbox_run_context: ContextFactory, redis_sandbox: RedisComponent
) -> None:
    assert cache.requires_auth() is True
    # An open server (requirepass gone) is told apart: the check can fail.
    open_server = RedisComponent(
        workdir=redis_sandbox.workdir / "open", cluster=False, tls=False, sessions=0, cache_keys=0
    )
    open_server.start()
    try:
        with open_server.admin() as admin:
            admin.config_set("requirepass", "")
        context = sandbox_run_context(open_server)
        assert Cache(context.settings.require("redis"), context.gate).requires_auth() is False
    finally:
        open_server.stop()


def test_cluster_helpers(cache: Cache) -> None:
    info = cache.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_size"]) == 3
    assert int(info["cluster_known_nodes"]) == 6
    shards = cache.cluster_shards()
    assert len(shards) == 3
    for shard in shards:
        roles = sorted(node["role"] for node in shard["nodes"])
        assert roles == ["master", "replica"]
        assert all(node["health"] == "online" for node in shard["nodes"])
    config = cache.cluster_nodes_config("appendonly")
    assert len(config) == 6
    assert {c["appendonly"] for c in config.values()} == {"yes"}
    policies = cache.cluster_nodes_config("maxmemory-policy")
    assert {c["maxmemory-policy"] for c in policies.values()} == {"allkeys-lru"}
    roles = [i["role"] for i in cache.cluster_nodes_info("replication").values()]
    assert sorted(roles) == ["master"] * 3 + ["slave"] * 3


# --- the read-only guard ----------------------------------------------------------------------

REFUSED = [
    ("SET", "session:guard", "x"),
    ("DEL", "cache:emission_factor:1"),
    ("FLUSHALL",),
    ("FLUSHDB", "ASYNC"),
    ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
    ("config set", "maxmemory-policy", "noeviction"),
    (b"FLUSHALL",),
    ("CONFIG", "RESETSTAT"),
    ("CONFIG", "REWRITE"),
    ("EXPIRE", "cache:emission_factor:2", "1"),
    ("EVAL", "return redis.call('FLUSHALL')", "0"),
    ("FCALL", "f", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("SLOWLOG", "RESET"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("ACL", "SETUSER", "vcci", "off"),
    ("DEBUG", "SLEEP", "0"),
    ("GET", "cache:emission_factor:3"),  # a read, but of values: not on the list
    ("CLUSTER", "RESET"),
    ("",),
]


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(map(str, a)) or "empty")
def test_guard_refuses_commands_that_are_not_reads(
    cache: Cache, redis_sandbox: RedisComponent, args: tuple[Any, ...]
) -> None:
    before = server_state(redis_sandbox)
    with pytest.raises(ReadOnlyViolation, match="read-only guard: redis refused"):
        cache.command(*args)
    assert server_state(redis_sandbox) == before
    assert "flushall" not in before["commands"]
    assert cache.ping()


def test_guard_covers_pipelines_and_transactions(
    cache: Cache, redis_sandbox: RedisComponent
) -> None:
    before = server_state(redis_sandbox)
    pings = command_stats(redis_sandbox).get("ping", 0)
    for transaction in (False, True):
        pipe = cache.client.pipeline(transaction=transaction)
        pipe.ping()
        pipe.set("session:guard", "x")
        pipe.flushall()
        with pytest.raises(ReadOnlyViolation):
            pipe.execute()
    # Packed together, refused together: not even the PING in front was sent.
    assert command_stats(redis_sandbox).get("ping", 0) == pings
    assert server_state(redis_sandbox) == before


def test_guard_covers_the_cluster_client(cache: Cache, redis_sandbox: RedisComponent) -> None:
    before = cluster_set_calls(redis_sandbox)
    assert before > 0  # the sandbox seeded it with SET: the counter is live
    with pytest.raises(ReadOnlyViolation):
        cache.cluster.set("session:guard", "x")
    with pytest.raises(ReadOnlyViolation):
        cache.cluster.flushall()
    with pytest.raises(ReadOnlyViolation):
        cache.cluster.config_set("appendonly", "no")
    pipe = cache.cluster.pipeline()
    pipe.set("a", 1)
    with pytest.raises(ReadOnlyViolation):
        pipe.execute()
    assert cluster_set_calls(redis_sandbox) == before
    assert {c["appendonly"] for c in cache.cluster_nodes_config("appendonly").values()} == {"yes"}


def test_the_counters_do_see_a_write(redis_sandbox: RedisComponent) -> None:
    """The control: the same proof notices a write that is not guarded."""
    before = server_state(redis_sandbox)
    with redis_sandbox.admin() as admin:
        admin.set("control:write", "1", ex=5)
        admin.delete("control:write")
    assert server_state(redis_sandbox) != before


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("INFO", "stats"),
        ("CONFIG", "GET", "*"),
        ("config get", "maxmemory"),
        ("CLUSTER", "INFO"),
        ("MEMORY", "STATS"),
        ("SLOWLOG", "GET", "5"),
        ("LATENCY", "LATEST"),
        ("COMMAND", "COUNT"),
        ("CLIENT", "INFO"),
        ("TTL", "x"),
        ("SCAN", "0"),
    ],
)
def test_guard_lets_reads_through(args: tuple[str, ...]) -> None:
    check_command(args)


# --- fail fast --------------------------------------------------------------------------------


def _cache(context: RunContext) -> Cache:
    return Cache(context.settings.require("redis"), context.gate)


def _url(redis_sandbox: RedisComponent, port: int, scheme: str = "rediss") -> str:
    return f"{scheme}://vcci:{redis_sandbox.password}@127.0.0.1:{port}/0"


def test_fails_fast_when_nothing_listens(
    redis_sandbox: RedisComponent, closed_port: int, sandbox_run_context: ContextFactory
) -> None:
    context = sandbox_run_context(
        redis={"url": _url(redis_sandbox, closed_port), "connect_timeout": 1}
    )
    with pytest.raises(TargetUnreachable, match="Connection refused") as first:
        _cache(context).ensure()
    # Now something listens there: a later use that tried again would reach it.
    with BlackHole(closed_port) as server:
        with pytest.raises(TargetUnreachable) as second:
            _cache(context).info()
        assert server.connections() == 0  # the run knows it is down: nothing was sent
    assert str(second.value) == str(first.value)
    assert redis_sandbox.password not in str(first.value) + repr(first.value)


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_fails_fast_when_the_server_never_answers(
    redis_sandbox: RedisComponent, scheme: str, sandbox_run_context: ContextFactory
) -> None:
    with BlackHole() as server:
        connect_timeout, read_timeout = 1, 60
        context = sandbox_run_context(
            redis={
                "url": _url(redis_sandbox, server.port, scheme),
                "ca_bundle": str(redis_sandbox.cert_path),
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
            }
        )
        cache = _cache(context)
        began = time.monotonic()
        with pytest.raises(TargetUnreachable, match=r"(?i)timeout") as first:
            cache.ensure()
        # redis-py says "Timeout reading from socket" for a silent AUTH/HELLO whichever timeout
        # was set, so one loose bound (far below read_timeout, far above connect_timeout on a
        # loaded machine) shows the connect timeout bounds TCP, TLS and AUTH alike.
        assert time.monotonic() - began < 10 * connect_timeout + 5 < read_timeout
        assert server.connections() == 1
        with pytest.raises(TargetUnreachable) as second:
            cache.config_get("*")
        assert server.connections() == 1  # no new connection attempt
    assert str(second.value) == str(first.value)


def test_a_stopped_server_is_detected_once(
    tmp_path_factory: pytest.TempPathFactory, sandbox_run_context: ContextFactory
) -> None:
    small = RedisComponent(workdir=tmp_path_factory.mktemp("redis-stopped"), cluster=False)
    small.start()
    try:
        cache = _cache(sandbox_run_context(small, redis={"connect_timeout": 1}))
        assert cache.ensure().ping()
    finally:
        small.stop()
    with pytest.raises(TargetUnreachable) as first:
        cache.info()
    with BlackHole(small.port) as server:  # the port takes connections again
        with pytest.raises(TargetUnreachable) as second:
            cache.scan_ttls("session:*", 10)
        assert server.connections() == 0  # marked down: nothing was sent
    assert str(second.value) == str(first.value)
    assert small.password not in str(first.value)


def test_an_unreachable_cluster_fails_fast(
    redis_sandbox: RedisComponent, closed_port: int, sandbox_run_context: ContextFactory
) -> None:
    context = sandbox_run_context(
        redis_sandbox,
        redis={
            "cluster_url": _url(redis_sandbox, closed_port).removesuffix("/0"),
            "connect_timeout": 1,
        },
    )
    cache = _cache(context)
    with pytest.raises(TargetUnreachable, match="redis-cluster unreachable") as first:
        cache.cluster_info()
    assert "Connection refused" in str(first.value)  # refused at once, not a timeout
    with BlackHole(closed_port) as server:
        with pytest.raises(TargetUnreachable) as second:
            cache.cluster_shards()
        assert server.connections() == 0  # marked down: nothing was sent
    assert str(second.value) == str(first.value)
    assert redis_sandbox.password not in str(first.value)
    assert cache.ping()  # the standalone server is a separate target and still up


# --- secrets ----------------------------------------------------------------------------------


def test_passwords_never_appear(
    cache: Cache, redis_sandbox: RedisComponent, sandbox_run_context: ContextFactory
) -> None:
    secret = redis_sandbox.password
    for text in (cache.describe(), repr(cache), repr(redis_sandbox)):
        assert secret not in text
        assert redis_sandbox.admin_password not in text
    assert cache.describe() == (
        f"redis rediss://vcci@127.0.0.1:{redis_sandbox.port}/0, cluster "
        f"rediss://vcci@127.0.0.1:{redis_sandbox.cluster_ports[0]}"
    )
    with pytest.raises(ReadOnlyViolation) as refused:
        cache.command("ACL", "SETUSER", "vcci", f">{secret}")
    assert secret not in str(refused.value)
    wrong = _url(redis_sandbox, redis_sandbox.port).replace(secret, "not-the-password-1234")
    context = sandbox_run_context(redis_sandbox, redis={"url": wrong})
    with pytest.raises(TargetUnreachable, match="AuthenticationError") as denied:
        _cache(context).ensure()
    assert "not-the-password-1234" not in str(denied.value)


def test_env_tables_hold_references_not_secrets(redis_sandbox: RedisComponent) -> None:
    table = redis_sandbox.env_tables()["redis"]
    text = repr(table)
    assert redis_sandbox.password not in text
    assert redis_sandbox.admin_password not in text
    assert table["url"] == (
        f"rediss://vcci:${{VCCI_SANDBOX_REDIS_PASSWORD}}@127.0.0.1:{redis_sandbox.port}/0"
    )
    assert table["unauthenticated_url"] == f"rediss://127.0.0.1:{redis_sandbox.port}/0"
    assert table["cluster_url"].startswith("rediss://vcci:${VCCI_SANDBOX_REDIS_PASSWORD}@")
    assert redis_sandbox.env_vars() == {"VCCI_SANDBOX_REDIS_PASSWORD": redis_sandbox.password}


# --- broken variants --------------------------------------------------------------------------


def test_broken_variant_options(
    tmp_path_factory: pytest.TempPathFactory, sandbox_run_context: ContextFactory
) -> None:
    broken = RedisComponent(
        workdir=tmp_path_factory.mktemp("redis-broken"),
        appendonly=False,
        maxmemory_policy="noeviction",
        maxmemory="256mb",
        tls=False,
        cluster=False,
    )
    broken.start()
    try:
        context = sandbox_run_context(broken)
        cache = _cache(context).ensure()
        assert cache.table.url.startswith("redis://")
        assert "cluster_url" not in broken.env_tables()["redis"]
        assert cache.config_get("appendonly") == {"appendonly": "no"}
        assert cache.info("persistence")["aof_enabled"] == 0
        assert cache.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert int(cache.config_get("maxmemory")["maxmemory"]) == 256 * 1024**2
        assert cache.requires_auth() is True
        with pytest.raises(ValueError, match="cluster_url is not configured"):
            cache.cluster_info()
        cache.close()
    finally:
        broken.stop()
