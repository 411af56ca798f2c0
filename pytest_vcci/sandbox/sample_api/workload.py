"""Staging's steady background workload, as the sample API's /metrics and Prometheus see it.

A fresh sandbox has no history, and Prometheus answers ``rate()`` only once a window holds two
scrapes (30 s apart). So the workers' counters grow at a steady rate from a start time in the
past (plus whatever real requests add), and the monitoring component backfills the last hour of
the same series, and of the API's request metrics, into Prometheus before it starts. Both use
this module, so the live scrapes continue the backfilled worker series without a reset.

The rates are staging's, from checklist section 7.1: about 12,600 suppliers an hour (> 10,000)
and 1.2 million calculations a day (> 1M); queue waits mostly under a second (p95 ~1.5 s < 5 s);
no failed tasks; API p95 ~0.2 s and p99 ~0.6 s (< 0.5 s, < 1 s) with no 5xx answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Labels = tuple[tuple[str, str], ...]
# One series of a backfill: (sample name, labels, [(timestamp, value), ...]).
Series = tuple[str, dict[str, str], list[tuple[float, float]]]

CALCULATION_SHARES: Mapping[str, float] = MappingProxyType({"1": 0.6, "4": 0.25, "6": 0.15})
QUEUE = "default"
# Queue wait (seconds): upper bound -> share of tasks that waited at most that long.
QUEUE_WAIT: tuple[tuple[float, float], ...] = (
    (0.1, 0.30),
    (0.25, 0.55),
    (0.5, 0.78),
    (1.0, 0.90),
    (2.5, 0.975),
    (5.0, 0.997),
    (10.0, 1.0),
    (30.0, 1.0),
)
QUEUE_WAIT_MEAN = 0.62
# The API's request mix: (method, route, status, share of requests).
REQUEST_MIX: tuple[tuple[str, str, str, float], ...] = (
    ("GET", "/api/v1/suppliers", "200", 0.38),
    ("POST", "/api/v1/calculations", "200", 0.30),
    ("GET", "/health/ready", "200", 0.15),
    ("GET", "/api/v1/me", "200", 0.10),
    ("POST", "/api/v1/ingestions", "202", 0.05),
    ("GET", "/api/v1/me", "401", 0.015),
    ("GET", "/unmatched", "404", 0.005),
)
REQUESTS_PER_SECOND = 24.0
# The API's histogram buckets (state.Metrics) -> share of requests at most that slow.
LATENCY: tuple[tuple[float, float], ...] = (
    (0.005, 0.05),
    (0.01, 0.20),
    (0.025, 0.52),
    (0.05, 0.74),
    (0.1, 0.88),
    (0.25, 0.962),
    (0.5, 0.988),
    (1.0, 0.997),
    (2.0, 0.9995),
    (5.0, 1.0),
)
LATENCY_MEAN = 0.058


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass(frozen=True)
class Workload:
    """The steady workload that began at ``started`` (epoch seconds)."""

    started: float
    suppliers_per_second: float = 3.5  # 12,600 an hour
    calculations_per_second: float = 14.0  # 1,209,600 a day

    def elapsed(self, at: float) -> float:
        return max(0.0, at - self.started)

    def suppliers(self, at: float) -> float:
        return self.suppliers_per_second * self.elapsed(at)

    def calculations(self, at: float, category: str) -> float:
        share = CALCULATION_SHARES.get(category, 0.0)
        return self.calculations_per_second * share * self.elapsed(at)

    def tasks(self, at: float) -> float:
        """Worker tasks done: one per supplier and one per calculation."""
        return (self.suppliers_per_second + self.calculations_per_second) * self.elapsed(at)

    def worker_series(self, at: float) -> list[tuple[str, str, str, dict[str, str], float]]:
        """(family, type, sample name, labels, value) of every simulated worker series."""
        tasks = self.tasks(at)
        rows: list[tuple[str, str, str, dict[str, str], float]] = [
            (
                "vcci_suppliers_processed",
                "counter",
                "vcci_suppliers_processed_total",
                {},
                self.suppliers(at),
            ),
        ]
        for category in CALCULATION_SHARES:
            rows.append(
                (
                    "vcci_emissions_calculations",
                    "counter",
                    "vcci_emissions_calculations_total",
                    {"category": category},
                    self.calculations(at, category),
                )
            )
        queue = {"queue": QUEUE}
        rows.append(
            (
                "vcci_worker_tasks",
                "counter",
                "vcci_worker_tasks_total",
                {**queue, "status": "succeeded"},
                tasks,
            )
        )
        rows.append(
            (
                "vcci_worker_tasks",
                "counter",
                "vcci_worker_tasks_total",
                {**queue, "status": "failed"},
                0.0,
            )
        )
        family = "vcci_worker_queue_wait_seconds"
        for bound, share in (*QUEUE_WAIT, (float("inf"), 1.0)):
            rows.append(
                (
                    family,
                    "histogram",
                    f"{family}_bucket",
                    {**queue, "le": _le(bound)},
                    round(tasks * share),
                )
            )
        rows.append((family, "histogram", f"{family}_count", queue, round(tasks)))
        rows.append((family, "histogram", f"{family}_sum", queue, tasks * QUEUE_WAIT_MEAN))
        return rows

    # --- backfill -------------------------------------------------------------------------

    def history(
        self, end: float, seconds: float = 3600, step: float = 30
    ) -> list[tuple[str, str, list[Series]]]:
        """The last ``seconds`` before ``end`` as (family, type, series) for a backfill.

        Worker series follow the same function as the live ones; the API's request series
        are a previous process's traffic (the live API's counters start again at zero, which
        ``rate()`` reads as a counter reset).
        """
        times = [end - seconds + step * i for i in range(int(seconds // step) + 1)]
        families: dict[str, tuple[str, dict[tuple[str, Labels], Series]]] = {}

        def add(
            family: str, kind: str, name: str, labels: dict[str, str], at: float, value: float
        ) -> None:
            _, series = families.setdefault(family, (kind, {}))
            key = (name, tuple(sorted(labels.items())))
            series.setdefault(key, (name, labels, []))[2].append((at, value))

        for at in times:
            for family, kind, name, labels, value in self.worker_series(at):
                add(family, kind, name, labels, at, value)
            requests = REQUESTS_PER_SECOND * (at - times[0] + step)
            for method, route, status, share in REQUEST_MIX:
                add(
                    "http_requests",
                    "counter",
                    "http_requests_total",
                    {"method": method, "route": route, "status": status},
                    at,
                    round(requests * share),
                )
            for method, route in dict.fromkeys((m, r) for m, r, _, _ in REQUEST_MIX):
                share = sum(s for m, r, _, s in REQUEST_MIX if (m, r) == (method, route))
                count = requests * share
                labels = {"method": method, "route": route}
                family = "http_request_duration_seconds"
                for bound, below in (*LATENCY, (float("inf"), 1.0)):
                    add(
                        family,
                        "histogram",
                        f"{family}_bucket",
                        {**labels, "le": _le(bound)},
                        at,
                        round(count * below),
                    )
                add(family, "histogram", f"{family}_count", labels, at, round(count))
                add(family, "histogram", f"{family}_sum", labels, at, count * LATENCY_MEAN)
        return [
            (family, kind, list(series.values())) for family, (kind, series) in families.items()
        ]


# --- live exposition ----------------------------------------------------------------------


@dataclass(eq=False)  # hashable by identity: a registry keys collectors by them
class SteadyCounter:
    """A counter that is the workload's value now plus real increments (``inc``, ``labels``).

    Stands in for a prometheus_client Counter the app increments; registered as a collector.
    """

    name: str  # without _total
    documentation: str
    steady: Any  # (at: float, labels: dict[str, str]) -> float
    labelnames: Sequence[str] = ()
    known: Sequence[dict[str, str]] = ({},)
    _real: dict[Labels, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def labels(self, **labels: str) -> _Child:
        return _Child(self, tuple(sorted(labels.items())))

    def inc(self, amount: float = 1.0) -> None:
        self._add((), amount)

    def _add(self, key: Labels, amount: float) -> None:
        with self._lock:
            self._real[key] = self._real.get(key, 0.0) + amount

    def collect(self) -> Iterator[Any]:
        import time

        from prometheus_client.core import CounterMetricFamily

        now = time.time()
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            real = dict(self._real)
        keys = dict.fromkeys([*(tuple(sorted(k.items())) for k in self.known), *real])
        for key in keys:
            labels = dict(key)
            family.add_metric(
                [labels[n] for n in self.labelnames], self.steady(now, labels) + real.get(key, 0.0)
            )
        yield family


@dataclass(frozen=True)
class _Child:
    parent: SteadyCounter
    key: Labels

    def inc(self, amount: float = 1.0) -> None:
        self.parent._add(self.key, amount)


@dataclass(frozen=True)
class WorkerCollector:
    """The workers' own series (tasks by status, queue wait histogram), from the workload."""

    workload: Workload

    def collect(self) -> Iterator[Any]:
        import time

        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        now = time.time()
        rows = self.workload.worker_series(now)
        tasks = CounterMetricFamily(
            "vcci_worker_tasks", "Worker tasks by queue and outcome", labels=["queue", "status"]
        )
        for family, _, _, labels, value in rows:
            if family == "vcci_worker_tasks":
                tasks.add_metric([labels["queue"], labels["status"]], value)
        yield tasks
        buckets = [
            (labels["le"], value)
            for family, _, name, labels, value in rows
            if name == "vcci_worker_queue_wait_seconds_bucket"
        ]
        total = next(v for _, _, name, _, v in rows if name == "vcci_worker_queue_wait_seconds_sum")
        wait = HistogramMetricFamily(
            "vcci_worker_queue_wait_seconds",
            "Time tasks waited in the queue before a worker took them",
            labels=["queue"],
        )
        wait.add_metric([QUEUE], buckets, total)
        yield wait


def steady_suppliers(workload: Workload | None) -> SteadyCounter:
    return SteadyCounter(
        "vcci_suppliers_processed",
        "Suppliers processed",
        lambda at, labels: workload.suppliers(at) if workload else 0.0,
    )


def steady_calculations(workload: Workload | None) -> SteadyCounter:
    return SteadyCounter(
        "vcci_emissions_calculations",
        "Emissions calculations by Scope 3 category",
        lambda at, labels: workload.calculations(at, labels["category"]) if workload else 0.0,
        labelnames=("category",),
        known=[{"category": c} for c in CALCULATION_SHARES],
    )
