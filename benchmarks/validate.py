"""The quick validation's wall time: `vcci validate` against a running sandbox, and against the
same environment with every target hanging (accepts connections, never answers).

Goals: under 10 s against the running sandbox, under 15 s when every target hangs. Prints
min/median/max of RUNS runs of each, wall time of the whole `vcci validate` command.

    .venv/bin/python benchmarks/validate.py [--runs 5] [--sandbox-dir DIR]

Without --sandbox-dir it starts a sandbox of its own (and stops it); with it, it uses the one
`vcci sandbox up --dir DIR` keeps running. The hanging variant is the sandbox's environment file
with every 127.0.0.1:PORT replaced by a listener that accepts and never answers, default
timeouts.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VCCI = [sys.executable, "-c", "import sys; from pytest_vcci.cli import main; sys.exit(main())"]


def black_hole() -> int:
    """A listener that accepts every connection and never reads or writes; its port."""
    server = socket.create_server(("127.0.0.1", 0), backlog=512)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    port: int = server.getsockname()[1]
    return port


def hanging(env_text: str) -> str:
    """The environment file with each target port replaced by a black hole (one per port)."""
    holes: dict[str, int] = {}

    def swap(match: re.Match[str]) -> str:
        port = match.group(1)
        holes.setdefault(port, black_hole())
        return f"127.0.0.1:{holes[port]}"

    return re.sub(r"127\.0\.0\.1:(\d+)", swap, env_text)


def timed(env_file: Path, work: Path, env: dict[str, str]) -> tuple[float, int, str]:
    began = time.monotonic()
    proc = subprocess.run(
        [*VCCI, "validate", "--config", str(env_file), "--report-dir", str(work / "reports")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    return time.monotonic() - began, proc.returncode, proc.stdout.strip().splitlines()[-2]


def measure(
    label: str, env_file: Path, work: Path, env: dict[str, str], runs: int, goal: float
) -> None:
    results = [timed(env_file, work, env) for _ in range(runs)]
    walls = [r[0] for r in results]
    print(
        f"{label:<26} min {min(walls):5.1f} s  median {statistics.median(walls):5.1f} s  "
        f"max {max(walls):5.1f} s  (goal < {goal:.0f} s, {runs} runs) exit {results[-1][1]}"
    )
    print(f"{'':<26} {results[-1][2][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sandbox-dir", type=Path)
    ns = parser.parse_args()
    sandbox = None
    if ns.sandbox_dir is None:
        from pytest_vcci.sandbox import Sandbox

        sandbox = Sandbox(Path(tempfile.mkdtemp(prefix="vcci-bench-")) / "sandbox")
        env_file = sandbox.up()
        variables = sandbox.env_vars()
    else:
        env_file = ns.sandbox_dir / "environment.toml"
        lines = (ns.sandbox_dir / "secrets.env").read_text().splitlines()
        variables = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    env = {**os.environ, **variables}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            measure("running sandbox", env_file, work, env, ns.runs, 10)
            hang_file = work / "hanging.toml"
            hang_file.write_text(hanging(env_file.read_text()))
            measure("every target hanging", hang_file, work, env, ns.runs, 15)
    finally:
        if sandbox is not None:
            sandbox.down()


if __name__ == "__main__":
    main()
