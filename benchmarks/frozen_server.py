"""Bounded time under a frozen server: what freezing one sandbox server mid-run adds to a run.

Starts the embedded sandbox once, times plain runs of every suite (`-n 2`), then, for each
server in turn, starts the same run, freezes the server (SIGSTOP to the process that
listens on its port and all its descendants: PostgreSQL's backends too) a little after the
run started, lets the run end on its own, and thaws the server. A frozen server keeps its
sockets open and answers nothing, the worst case for a client: connections are accepted by the
kernel and then nothing comes back. Target: at most 30 s added per server.

    .venv/bin/python benchmarks/frozen_server.py [--repeats 3] [--delay SECONDS] [--only a,b]

Prints, per server, the run's added wall time over a plain run made just before it (the
machine's load drifts), min/median/max over the repeats, and what the frozen run reported
(failed/errors: the checks that needed the server fail with its one root cause).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_vcci.sandbox import Sandbox
from pytest_vcci.sandbox.base import signal_tree

ROOT = Path(__file__).resolve().parents[1]

LIMIT_SECONDS = 30.0
RUN_CAP_SECONDS = 600.0  # a run still going after this is reported as hung


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


# Server -> its port, from the environment file's tables.
SERVERS: dict[str, Any] = {
    "postgres primary": lambda t: _port(t["postgres"]["dsn"]),
    "postgres replica": lambda t: _port(t["postgres"]["replicas"][0]),
    "pgbouncer": lambda t: _port(t["postgres"]["pgbouncer_dsn"]),
    "redis standalone": lambda t: _port(t["redis"]["url"]),
    "redis cluster node": lambda t: _port(t["redis"]["cluster_url"]),
    "prometheus": lambda t: _port(t["prometheus"]["url"]),
    "alertmanager": lambda t: _port(t["alertmanager"]["url"]),
    "moto (aws)": lambda t: _port(t["aws"]["endpoint_url"]),
    "sample api": lambda t: _port(t["api"]["base_url"]),
    "kubernetes emulator": lambda t: _port(t["kubernetes"]["server"]),
    "smtp/dns": lambda t: int(t["smtp"]["port"]),
}


def listener(port: int) -> int:
    """The PID of the process listening on TCP ``port`` on loopback."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"pid=(\d+)", out)
    if not found:
        raise SystemExit(f"nothing listens on port {port} (is ss allowed to show processes?)")
    return int(found.group(1))


def run_suites(
    env_file: Path, env: dict[str, str], work: Path, freeze: list[int] | None, delay: float
) -> dict[str, Any]:
    """One run of every suite; ``freeze`` (a process tree) is stopped ``delay`` s after start."""
    reports = work / f"reports-{time.monotonic_ns()}"
    began = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "suites"),
            "--vcci-config",
            str(env_file),
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "--vcci-report-dir",
            str(reports),
            "-q",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    frozen = False
    try:
        if freeze is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                signal_tree(freeze, signal.SIGSTOP)
                frozen = True
        try:
            proc.wait(timeout=RUN_CAP_SECONDS)
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            hung = True
        seconds = time.monotonic() - began
    finally:
        if freeze is not None:
            signal_tree(freeze, signal.SIGCONT)
        if proc.poll() is None:  # interrupted: the run goes with the benchmark
            proc.kill()
            proc.wait()
    outcome: dict[str, Any] = {"seconds": seconds, "hung": hung, "froze": frozen}
    evidence = reports / "evidence.json"
    if evidence.exists():
        tests = json.loads(evidence.read_text())["tests"]
        outcome["failed"] = sum(1 for t in tests if t["outcome"] == "failed")
        outcome["errors"] = sum(1 for t in tests if t["outcome"] == "error")
    return outcome


def spread(values: list[float]) -> str:
    return f"{min(values):6.1f} {statistics.median(values):6.1f} {max(values):6.1f}"


def main() -> int:
    # SIGTERM too ends in the finally blocks: servers thawed, the run killed, the sandbox down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--delay", type=float, help="seconds after the start (default: 1/3 of a plain run)"
    )
    parser.add_argument("--only", help="comma list of servers (default: all)")
    args = parser.parse_args()
    chosen = [s for s in SERVERS if not args.only or s in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="vcci-frozen-") as tmp:
        work = Path(tmp)
        sandbox = Sandbox(work / "sandbox")
        try:
            env_file = sandbox.up()
            env = {**os.environ, **sandbox.env_vars()}
            tables = tomllib.loads(env_file.read_text())
            # Warm-up: the first run after start-up pays for caches and Prometheus' first scrapes.
            run_suites(env_file, env, work, None, 0)
            first = [run_suites(env_file, env, work, None, 0)["seconds"] for _ in range(2)]
            delay = args.delay if args.delay is not None else round(statistics.median(first) / 3, 1)
            print(
                f"sandbox up in {sandbox.timings['total']} s; plain run (-n 2) "
                f"{first[0]:.1f} s and {first[1]:.1f} s; freezing {delay} s after the start; "
                f"each frozen run is compared with a plain run just before it, {args.repeats} "
                "repeats",
                flush=True,
            )
            print(
                f"{'frozen server':<22} added s: min median    max   (limit {LIMIT_SECONDS:g})"
                "  plain s  failed/errors",
                flush=True,
            )
            worst = -math.inf
            plain_all: list[float] = list(first)
            for name in chosen:
                pid = listener(SERVERS[name](tables))
                added, plains, counts, hung = [], [], [], False
                for _ in range(args.repeats):
                    # Paired with a plain run just before: the machine's load drifts.
                    plain = run_suites(env_file, env, work, None, 0)["seconds"]
                    # The tree is read at each signal: backends come and go.
                    frozen = run_suites(env_file, env, work, [pid], delay)
                    time.sleep(3)  # let the thawed server settle (cluster gossip, replication)
                    added.append(frozen["seconds"] - plain)
                    plains.append(plain)
                    counts.append(f"{frozen.get('failed', '?')}/{frozen.get('errors', '?')}")
                    hung = hung or frozen["hung"]
                plain_all.extend(plains)
                worst = max(worst, *added)
                flags = (" OVER" if max(added) > LIMIT_SECONDS else "") + (" HUNG" if hung else "")
                print(
                    f"{name:<22} {spread(added)}{flags}  {statistics.median(plains):6.1f}   "
                    + ", ".join(counts),
                    flush=True,
                )
            print(f"plain runs: min/median/max {spread(plain_all)} s")
        finally:
            sandbox.down()
    print(
        f"worst added time: {worst:.1f} s ({'within' if worst <= LIMIT_SECONDS else 'OVER'} "
        f"the {LIMIT_SECONDS:g} s limit)"
    )
    return 0 if worst <= LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
