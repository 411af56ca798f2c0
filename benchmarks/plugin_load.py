"""How much loading pytest-vcci adds to a pytest start (target: under 100 ms).

Runs `pytest --collect-only` on one trivial test N times with the plugin and N times with
`-p no:vcci`, alternating, and prints the medians and their difference. Also prints which client
libraries got imported (none should: they load on first use of a target).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15


# As an installed package runs: byte-compiled once (this machine's shell sets
# PYTHONDONTWRITEBYTECODE, which would recompile every module on every start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(args: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - began


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "test_x.py").write_text("def test_x():\n    pass\n")
        base = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
        with_plugin, without = [], []
        timed(base, cwd)  # warm-up: writes the bytecode caches
        for _ in range(RUNS):
            with_plugin.append(timed(base, cwd))
            without.append(timed([*base, "-p", "no:vcci"], cwd))
        probe = (
            "import sys, pytest; pytest.main(['-q', '--collect-only', '-p', 'no:cacheprovider']);"
            "print(sorted(m for m in ('kubernetes','boto3','botocore','psycopg','redis','requests')"
            " if m in sys.modules))"
        )
        imported = (
            subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"pytest start with pytest-vcci:    median {a * 1000:7.1f} ms over {RUNS} runs")
    print(f"pytest start without (-p no:vcci): median {b * 1000:7.1f} ms over {RUNS} runs")
    print(f"added by the plugin:               {(a - b) * 1000:7.1f} ms")
    print(f"client libraries imported at start: {imported}")


if __name__ == "__main__":
    main()
