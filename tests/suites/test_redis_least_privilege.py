"""The Redis ACL the README documents is enough: every Redis check, run as that user, decides as
it does for the application's user (which may run every command)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from variants import run_pytester

from pytest_vcci.sandbox.base import wait_until
from pytest_vcci.sandbox.redis import PASSWORD_VAR, RedisComponent

SUITES = Path(__file__).resolve().parents[2] / "suites"
MODULES = tuple(sorted(SUITES.glob("test_*.py")))
USER = "vcci-readiness"
# README "Least-privilege accounts", Redis: keep the two in step (tests/test_least_privilege.py).
ACL = (
    "on resetkeys %R~* resetchannels -@all +ping +info +config|get +scan +ttl +command "
    "+cluster|info +cluster|shards +cluster|slots"
)


def redis_checks() -> list[str]:
    """The suite functions that read Redis: those taking the ``cache`` fixture."""
    names = []
    for module in MODULES:
        for node in ast.parse(module.read_text()).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if "cache" in [a.arg for a in node.args.args]:
                names.append(node.name)
    return names


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(value: Any) -> dict[str, Any]:
    """A RESP2 [key, value, ...] list or a dict, with text keys."""
    items = zip(value[::2], value[1::2], strict=True) if isinstance(value, list) else value.items()
    return {_text(k): v for k, v in items}


def every_node_online(redis: RedisComponent) -> bool:
    """CLUSTER SHARDS, as the checks read it, shows every node online."""
    with redis.admin(redis.cluster_ports[0]) as admin:
        shards = admin.execute_command("CLUSTER", "SHARDS")
    health = [
        _text(_pairs(node).get("health"))
        for shard in shards
        for node in _pairs(shard).get("nodes", [])
    ]
    return len(health) == len(redis.cluster_ports) and set(health) == {"online"}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisComponent]:
    component = RedisComponent(workdir=tmp_path_factory.mktemp("redis-acl"))
    try:
        component.start()
        for port in [component.port, *component.cluster_ports]:
            with component.admin(port) as admin:
                admin.execute_command(
                    "ACL", "SETUSER", USER, f">{component.password}", *ACL.split()
                )
        # Both runs must see the same cluster: on a loaded machine a replica can still be
        # "loading" in CLUSTER SHARDS when start() returns, and 1.1.3 rightly fails then.
        wait_until(lambda: every_node_online(component), "redis cluster shards online")
        yield component
    finally:
        component.stop()


def outcomes(pytester: pytest.Pytester, redis: RedisComponent, user: str) -> dict[str, str]:
    wait_until(lambda: every_node_online(redis), "redis cluster shards online")
    env = redis.env_tables()
    for key in ("url", "cluster_url"):
        env["redis"][key] = env["redis"][key].replace(f"//{redis.app_user}:", f"//{user}:", 1)
    items = run_pytester(
        pytester,
        MODULES,
        {"environment": {"name": f"redis as {user}"}, **env},
        {PASSWORD_VAR: redis.password},
        ("1.", "4.", "6.", "7."),
        "-k",
        " or ".join(redis_checks()),
    )
    return {t["nodeid"]: t["outcome"] for item in items.values() for t in item["tests"]}


def test_the_documented_acl_reads_everything_the_checks_read(
    pytester: pytest.Pytester, redis: RedisComponent
) -> None:
    documented = outcomes(pytester, redis, USER)
    application = outcomes(pytester, redis, redis.app_user)
    assert documented == application
    decided = [n for n, outcome in documented.items() if outcome in ("passed", "failed")]
    assert len(decided) >= 10, documented
    assert any(n.endswith("test_redis_cluster_shards") for n in decided)  # the cluster too
