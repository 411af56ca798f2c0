"""Fail fast: a run where every target accepts connections and never answers.

Starts one "black hole" listener per target on 127.0.0.1 (accepts, never reads or writes),
points an environment file at them with the DEFAULT timeouts, generates TESTS_PER_TARGET
checks per target, runs them with `-n 2`, and prints the wall time and the outcomes.
Target: under 60 s whatever the number of tests (each target costs one probe timeout).

    .venv/bin/python benchmarks/fail_fast.py [TESTS_PER_TARGET]
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHECKS = {
    "cluster": "cluster.list('deployments')",
    "db": "db.value('SELECT 1')",
    "cache": "cache.info()",
    "cloud": "cloud.client('s3').list_buckets()",
    "api": "api.get('/health/ready')",
    "tls": "tls.inspect(tls.endpoints[0]) if hasattr(tls, 'endpoints') else tls.inspect()",
    "prometheus": "prometheus.flags()",
    "alertmanager": "alertmanager.status()",
    "grafana": "grafana.health()",
}


def black_hole() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # keep it open, say nothing

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def environment(ports: dict[str, int]) -> str:
    p = ports
    return f"""
[environment]
name = "black-holes"
[kubernetes]
server = "http://127.0.0.1:{p["cluster"]}"
token = "t0ken-black-hole"
[postgres]
dsn = "postgresql://vcci:pw-black-hole@127.0.0.1:{p["db"]}/vcci"
[redis]
url = "redis://vcci:pw-black-hole@127.0.0.1:{p["cache"]}/0"
[aws]
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:{p["cloud"]}"
access_key_id = "AKIABLACKHOLE0000000"
secret_access_key = "black-hole-secret-key-000000000000000000"
[api]
base_url = "https://127.0.0.1:{p["api"]}"
[tls]
endpoints = ["127.0.0.1:{p["tls"]}"]
[prometheus]
url = "http://127.0.0.1:{p["prometheus"]}"
[alertmanager]
url = "http://127.0.0.1:{p["alertmanager"]}"
[grafana]
url = "http://127.0.0.1:{p["grafana"]}"
"""


def tests(per_target: int) -> str:
    lines = ["import pytest", ""]
    for fixture, call in CHECKS.items():
        lines += [
            "@pytest.mark.checklist('1.1.1')",
            f"@pytest.mark.parametrize('n', range({per_target}))",
            f"def test_{fixture}({fixture}, n):",
            f"    {call}",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    per_target = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    holes = {name: black_hole() for name in CHECKS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "env.toml").write_text(environment({k: v[1] for k, v in holes.items()}))
        (work / "test_black_holes.py").write_text(tests(per_target))
        began = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-n",
                "2",
                "-q",
                "-p",
                "no:cacheprovider",
                "--vcci-config",
                "env.toml",
                "--vcci-report-dir",
                "out",
                "test_black_holes.py",
            ],
            cwd=work,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - began
        evidence = json.loads((work / "out" / "evidence.json").read_text())
    outcomes: dict[str, dict[str, int]] = {}
    for test in evidence["tests"]:
        target = test["nodeid"].split("::test_")[1].split("[")[0]
        outcomes.setdefault(target, {}).setdefault(test["outcome"], 0)
        outcomes[target][test["outcome"]] += 1
    print(
        f"{per_target * len(CHECKS)} tests against {len(CHECKS)} black-hole targets, -n 2, "
        f"default timeouts: {wall:.1f} s wall (target < 60 s), pytest exit {run.returncode}"
    )
    for target, counts in outcomes.items():
        mine = [t for t in evidence["tests"] if f"::test_{target}[" in t["nodeid"]]
        slowest = max(t["duration"] for t in mine)
        total = sum(t["duration"] for t in mine)
        print(
            f"  {target:<13} {counts} slowest {slowest:5.1f} s, all {total:5.1f} s: "
            f"{mine[0]['message'][:90]}"
        )


if __name__ == "__main__":
    main()
