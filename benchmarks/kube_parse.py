"""Listing 10,000 pods: how long the parse takes (target: CPU time under 1.0 s).

Starts the Kubernetes API emulator with 10,000 extra pods (real-shaped: managedFields, token
volumes, defaults), lists them through the cluster target (one list of every namespace's pods,
21 pages of 500) RUNS times, each time as a fresh run (so nothing comes from the run's
snapshot), and prints per run the pages, bytes, json.loads wall and CPU time, fetch time and
the list's total, then the medians. CPU time is the figure to compare: it is the parse's
own cost, steady when other jobs share the machine; wall times are printed for context.

    .venv/bin/python benchmarks/kube_parse.py [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_vcci.sandbox.kube import KubeComponent
from pytest_vcci.settings import KubernetesTable
from pytest_vcci.targets.base import TargetGate
from pytest_vcci.targets.kubernetes import Cluster

PODS = 10_000
NAMESPACE = "vcci-scale"
TARGET_CPU_SECONDS = 1.0


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = KubeComponent(workdir=work / "kube", extra_pods=PODS)
        big.start()
        try:
            cpu, parse, total = [], [], []
            for n in range(runs):
                table = KubernetesTable(server=big.server, token=big.token, namespace=NAMESPACE)
                run_dir = work / f"run-{n}"
                cluster = Cluster(table, TargetGate(run_dir / "targets"), run_dir)
                cluster.ensure()
                began = time.perf_counter()
                pods = cluster.list("pods", NAMESPACE)
                total.append(time.perf_counter() - began)
                stats = cluster.stats["pods"]
                cluster.close()
                assert len(pods) == PODS, len(pods)
                cpu.append(stats.parse_cpu_seconds)
                parse.append(stats.parse_seconds)
                print(
                    f"run {n + 1}: {len(pods)} pods, {stats.pages} pages, "
                    f"{stats.bytes / 1e6:.1f} MB; parse {stats.parse_seconds:.3f} s "
                    f"(CPU {stats.parse_cpu_seconds:.3f} s), fetch {stats.fetch_seconds:.3f} s, "
                    f"list total {total[-1]:.3f} s"
                )
        finally:
            big.stop()
    print(
        f"median of {runs}: parse CPU {statistics.median(cpu):.3f} s "
        f"(target < {TARGET_CPU_SECONDS:.1f} s), parse wall {statistics.median(parse):.3f} s, "
        f"list total {statistics.median(total):.3f} s"
    )


if __name__ == "__main__":
    main()
