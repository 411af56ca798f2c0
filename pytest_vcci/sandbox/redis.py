"""A real Redis 7 for the sandbox: a standalone server and a 3-shard cluster, both over TLS.

The standalone server stands in for the session store (checklist 4.2.4: ``session:<uuid>``
keys with TTLs of at most 8 hours) and the cache (7.2.3: a warm hit rate); the cluster stands
in for 1.1.3 (3 masters, a replica each, AOF, allkeys-lru). Options build broken variants.

Two users on every server: ``default`` (requirepass; the admin password, for seeding and tests
only) and ``vcci`` (the application's ACL user, the one ``env_tables()`` names).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component, SandboxError, free_port, require_binary, wait_until
from pytest_vcci.sandbox.postgres import write_self_signed_cert

PASSWORD_VAR = "VCCI_SANDBOX_REDIS_PASSWORD"
PACKAGE = "redis-server"
SESSION_TTL_MAX = 8 * 3600


@dataclass
class RedisComponent(Component):
    """A standalone Redis and a 6-node Redis cluster on 127.0.0.1 (free ports)."""

    name: str = "redis"
    tls: bool = True
    auth: bool = True  # False: the default user needs no password (a broken variant, 4.1.2)
    appendonly: bool = True
    maxmemory: str = "16gb"  # a limit, not an allocation: only what is stored is used
    maxmemory_policy: str = "allkeys-lru"
    cluster: bool = True
    cluster_masters: int = 3
    sessions: int = 200
    cache_keys: int = 300
    app_user: str = "vcci"
    # Filled by start().
    port: int = 0
    cluster_ports: list[int] = field(default_factory=list)
    password: str = field(default="", repr=False)
    admin_password: str = field(default="", repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self.password = self.password or secrets.token_urlsafe(24)
        self.admin_password = self.admin_password or secrets.token_urlsafe(24)
        if self.tls:
            self.tls_dir.mkdir(parents=True, exist_ok=True)
            write_self_signed_cert(self.cert_path, self.key_path)
        self.port = self._launch("standalone", cluster=False)
        self._seed_standalone()
        self.timings["standalone"] = round(time.monotonic() - began, 3)
        if self.cluster:
            self.cluster_ports = [
                self._launch(f"cluster-{i + 1}", cluster=True)
                for i in range(self.cluster_masters * 2)
            ]
            self._create_cluster()
            self._seed_cluster()
        self.timings["total"] = round(time.monotonic() - began, 3)

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "redis" / "tls"

    @property
    def cert_path(self) -> Path:
        return self.tls_dir / "redis.crt"

    @property
    def key_path(self) -> Path:
        return self.tls_dir / "redis.key"

    # --- environment file -----------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "rediss" if self.tls else "redis"

    def url(
        self,
        port: int | None = None,
        *,
        secret: str | None = None,
        db: int | None = 0,
        user: str | None = None,
    ) -> str:
        """The application's URL; ``secret`` replaces the password (e.g. a ${VAR})."""
        password = self.password if secret is None else secret
        who = f"{user or self.app_user}:{password}@" if password else ""
        path = f"/{db}" if db is not None else ""
        return f"{self.scheme}://{who}127.0.0.1:{port or self.port}{path}"

    def env_tables(self) -> dict[str, dict[str, Any]]:
        ref = f"${{{PASSWORD_VAR}}}"
        table: dict[str, Any] = {
            "url": self.url(secret=ref),
            "unauthenticated_url": self.url(secret=""),
        }
        if self.cluster_ports:
            table["cluster_url"] = self.url(self.cluster_ports[0], secret=ref, db=None)
        if self.tls:
            table["ca_bundle"] = str(self.cert_path)
        return {"redis": table}

    def env_vars(self) -> dict[str, str]:
        return {PASSWORD_VAR: self.password}

    # --- admin access (tests and seeding only) --------------------------------------------

    def admin(self, port: int | None = None) -> Any:
        """A plain redis-py client as the ``default`` (admin) user; close it."""
        import redis

        kwargs: dict[str, Any] = (
            {"ssl": True, "ssl_ca_certs": str(self.cert_path)} if self.tls else {}
        )
        password = self.admin_password if self.auth else None
        return redis.Redis(
            host="127.0.0.1",
            port=port or self.port,
            password=password,
            socket_connect_timeout=3,
            socket_timeout=10,
            decode_responses=True,
            **kwargs,
        )

    # --- steps ----------------------------------------------------------------------------

    def _config(self, directory: Path, port: int, *, cluster: bool) -> str:
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"dir {directory}",
            "daemonize no",
            'logfile ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"maxmemory {self.maxmemory}",
            f"maxmemory-policy {self.maxmemory_policy}",
            f"user {self.app_user} on >{self.password} ~* &* +@all",
        ]
        if self.auth:
            lines.append(f"requirepass {self.admin_password}")
        if self.tls:
            lines += [
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {self.cert_path}",
                f"tls-key-file {self.key_path}",
                f"tls-ca-cert-file {self.cert_path}",
                "tls-auth-clients no",
                'tls-protocols "TLSv1.2 TLSv1.3"',
            ]
        else:
            lines.append(f"port {port}")
        if cluster:
            # The bus port defaults to port+10000, which may not exist or be free.
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 5000",
                f"cluster-port {free_port()}",
                # Replicas sync at once instead of waiting 5 s for more of them.
                "repl-diskless-sync-delay 0",
            ]
            if self.auth:
                lines.append(f"masterauth {self.admin_password}")
            if self.tls:
                lines += ["tls-cluster yes", "tls-replication yes"]
        return "\n".join(lines) + "\n"

    def _launch(self, label: str, *, cluster: bool) -> int:
        binary = require_binary("redis-server", PACKAGE)
        directory = self.workdir / "redis" / label
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = directory / "redis.conf"
        conf.write_text(self._config(directory, port, cluster=cluster))
        conf.chmod(0o600)  # it holds the passwords
        log = f"redis-{label}.log"
        proc = self.spawn([binary, str(conf)], log)
        wait_until(
            lambda: self._pings(port),
            f"redis ({label})",
            timeout=20,
            proc=proc,
            log=self.log_path(log),
        )
        return port

    def _pings(self, port: int) -> bool:
        with self.admin(port) as client:
            return bool(client.ping())

    def _seed_standalone(self) -> None:
        rng = random.Random(7)
        with self.admin() as client:
            pipe = client.pipeline(transaction=False)
            for _ in range(self.sessions):
                session = {"user_id": str(uuid.UUID(int=rng.getrandbits(128))), "tenant": "t1"}
                pipe.set(
                    f"session:{uuid.uuid4()}",
                    json.dumps(session),
                    ex=rng.randint(600, SESSION_TTL_MAX),
                )
            for n in range(self.cache_keys):
                pipe.set(
                    f"cache:emission_factor:{n}",
                    json.dumps({"co2e": n / 10}),
                    ex=rng.randint(300, 3600),
                )
            pipe.execute()
            self._warm(client)

    def _warm(self, client: Any) -> None:
        """Reads like the application's: hits with a few misses (hit rate ~98%)."""
        pipe = client.pipeline(transaction=False)
        for n in range(490):
            pipe.get(f"cache:emission_factor:{n % max(self.cache_keys, 1)}")
        for n in range(10):
            pipe.get(f"cache:missing:{n}")
        pipe.execute()

    def _create_cluster(self) -> None:
        command = [
            require_binary("redis-cli", "redis-tools"),
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in self.cluster_ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ]
        if self.tls:
            command += ["--tls", "--cacert", str(self.cert_path)]
        # REDISCLI_AUTH keeps the password off the command line (and out of `ps`).
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "REDISCLI_AUTH": self.admin_password} if self.auth else None,
            stdin=subprocess.DEVNULL,
        )
        log = self.log_path("redis-cluster-create.log")
        log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SandboxError(f"redis-cli --cluster create failed ({done.returncode}); see {log}")
        wait_until(self._cluster_ready, "redis cluster", timeout=30, log=log)

    def _cluster_ready(self) -> bool:
        for port in self.cluster_ports:
            with self.admin(port) as client:
                info = client.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info["cluster_known_nodes"]) != len(
                    self.cluster_ports
                ):
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
                # What the checks read: every node "online" in CLUSTER SHARDS as this node sees
                # it (a replica shows "loading" until its sync has gossiped round).
                if _shard_health(client.execute_command("CLUSTER", "SHARDS")) != ["online"] * len(
                    self.cluster_ports
                ):
                    return False
        return True

    def _seed_cluster(self) -> None:
        from redis.cluster import RedisCluster

        kwargs: dict[str, Any] = (
            {"ssl": True, "ssl_ca_certs": str(self.cert_path)} if self.tls else {}
        )
        client = RedisCluster(
            host="127.0.0.1",
            port=self.cluster_ports[0],
            password=self.admin_password if self.auth else None,
            decode_responses=True,
            socket_connect_timeout=3,
            socket_timeout=10,
            **kwargs,
        )
        try:
            for _ in range(50):
                client.set(f"session:{uuid.uuid4()}", "{}", ex=SESSION_TTL_MAX)
        finally:
            client.close()


def _shard_health(shards: Any) -> list[str]:
    """The health of every node in a CLUSTER SHARDS answer (RESP2 flat pairs or RESP3 maps)."""

    def pairs(value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {_text(k): v for k, v in value.items()}
        return {_text(value[i]): value[i + 1] for i in range(0, len(value) - 1, 2)}

    return [
        _text(pairs(node).get("health"))
        for shard in shards or []
        for node in pairs(shard).get("nodes") or []
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
