"""Staging's steady workload: live counters continue the backfilled history without a reset."""

from __future__ import annotations

import time

from pytest_vcci.sandbox.monitoring import openmetrics
from pytest_vcci.sandbox.sample_api.workload import (
    WorkerCollector,
    Workload,
    steady_calculations,
    steady_suppliers,
)


def series(families: list, name: str) -> dict:
    return {
        tuple(sorted(labels.items())): points
        for family, _, found in families
        for sample, labels, points in found
        if sample == name
    }


def test_rates_meet_the_checklist() -> None:
    workload = Workload(started=0.0)
    assert workload.suppliers(3600) >= 10_000  # 7.1.3: suppliers per hour
    assert sum(workload.calculations(86_400, c) for c in ("1", "4", "6")) >= 1_000_000


def test_live_counter_continues_the_history() -> None:
    now = time.time()
    workload = Workload(started=now - 6 * 3600)
    history = workload.history(end=now, seconds=600, step=30)
    (points,) = series(history, "vcci_suppliers_processed_total").values()
    assert len(points) == 21
    assert points[-1][0] == now
    live = steady_suppliers(workload)
    live.inc(5)  # a real request adds to the steady count
    (family,) = live.collect()
    value = family.samples[0].value
    assert points[-1][1] + 5 <= value < points[-1][1] + 5 + workload.suppliers_per_second * 2


def test_calculations_by_category_and_worker_series() -> None:
    workload = Workload(started=time.time() - 3600)
    calculations = steady_calculations(workload)
    calculations.labels(category="4").inc()
    (family,) = calculations.collect()
    assert {s.labels["category"] for s in family.samples} == {"1", "4", "6"}
    tasks, wait = WorkerCollector(workload).collect()
    failed = [s for s in tasks.samples if s.labels["status"] == "failed"]
    assert [s.value for s in failed] == [0.0]
    buckets = [s for s in wait.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf"
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)


def test_openmetrics_for_promtool() -> None:
    history = Workload(started=0.0).history(end=1000.0, seconds=60, step=30)
    text = openmetrics(history, {"job": "vcci-api", "instance": "127.0.0.1:9"})
    assert text.endswith("# EOF\n")
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert (
        'vcci_suppliers_processed_total{job="vcci-api",instance="127.0.0.1:9"} 3500.0 1000.000'
    ) in text
