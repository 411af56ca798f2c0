"""``vcci exporter``: the readiness checklist on a schedule, served as Prometheus metrics.

Every ``--interval`` it runs the whole checklist (the packaged suites, read-only: intrusive checks
never run) in a pytest subprocess, keeps the run's evidence bundle in the history
(``--vcci-history``), and serves the last complete result on ``/metrics``:

- ``vcci_item_status{id,section,severity,automation,status} 1``: one series per item, its status
  as a label (passed, failed, error, skipped, not_covered, attested, waived), so an alert reads
  ``vcci_item_status{severity="critical",status=~"failed|error"} == 1``;
- ``vcci_run_verdict{verdict} 1`` and ``vcci_run_exit_status``;
- ``vcci_run_timestamp_seconds`` (when the last complete run finished), ``vcci_run_duration_seconds``;
- ``vcci_target_up{target}``: 1 when the run reached the target, else 0;
- ``vcci_run_interval_seconds``, ``vcci_run_in_progress``, ``vcci_runs_total{outcome}``
  (completed, failed: the run gave no evidence, timeout), ``vcci_run_info{environment,run_id,gate,version}``.

One run at a time: runs start from one loop, each after the last ended (a run longer than the
interval delays the next, never overlaps it). A run that fails or times out leaves the last
complete result in place, and the exporter carries on. SIGTERM (or Ctrl-C) stops the run in
progress and the server, exit 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.history import LATEST, environment_dir, resolve_latest
from pytest_vcci.settings import SettingsError, find_environment_file, load_settings

EXIT_OK = 0
EXIT_USAGE = 4
DEFAULT_PORT = 9464
DEFAULT_KEEP = 192  # two days of runs at 15 minutes
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_OUTCOMES = ("completed", "failed", "timeout")


def parse_duration(text: str) -> float:
    """``15m``, ``1h30m``, ``90s``, ``1d`` -> seconds (Prometheus' units, whole numbers)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h30m or 1d")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds < 1:
        raise ValueError(f"{text!r}: a duration must be at least 1s")
    return float(seconds)


# --- what is served -------------------------------------------------------------------------------


@dataclass
class State:
    """The last complete result and the exporter's own counters; replaced, never edited in
    place, so a scrape sees one run whole."""

    interval: float
    result: dict[str, Any] | None = None
    in_progress: bool = False
    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))


class ReadinessCollector:
    """A prometheus_client collector over the exporter's current State."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Any]:
        # prometheus_client is imported by the exporter only (no other command needs it).
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self.exporter.state
        yield GaugeMetricFamily(
            "vcci_run_interval_seconds", "Seconds between readiness runs", value=state.interval
        )
        yield GaugeMetricFamily(
            "vcci_run_in_progress",
            "1 while a readiness run is in progress",
            value=1 if state.in_progress else 0,
        )
        runs = CounterMetricFamily(
            "vcci_runs",
            "Readiness runs by outcome (completed, failed, timeout)",
            labels=["outcome"],
        )
        for outcome in _OUTCOMES:
            runs.add_metric([outcome], state.runs[outcome])
        yield runs
        if state.result is not None:
            yield from _result_metrics(state.result, GaugeMetricFamily)


def _result_metrics(result: dict[str, Any], gauge: Any) -> Iterator[Any]:
    run = result["run"]
    info = gauge(
        "vcci_run_info",
        "The last complete readiness run",
        labels=["environment", "run_id", "gate", "version"],
    )
    info.add_metric([run["environment"], run["id"], run["gate"], run["tool"]["version"]], 1)
    yield info
    verdict = gauge(
        "vcci_run_verdict",
        "Verdict of the last complete run (ready, ready_with_warnings, blocked, incomplete)",
        labels=["verdict"],
    )
    verdict.add_metric([run["verdict"]], 1)
    yield verdict
    yield gauge(
        "vcci_run_exit_status", "Exit status of the last complete run", value=run["exit_status"]
    )
    finished, started = _epoch(run["finished_at"]), _epoch(run["started_at"])
    yield gauge(
        "vcci_run_timestamp_seconds",
        "When the last complete run finished (Unix time)",
        value=finished,
    )
    yield gauge(
        "vcci_run_duration_seconds", "How long the last complete run took", value=finished - started
    )
    up = gauge(
        "vcci_target_up", "1 when the last run reached the target, else 0", labels=["target"]
    )
    for target, probe in sorted(run.get("targets", {}).items()):
        up.add_metric([target], 1 if probe.get("reachable") else 0)
    yield up
    status = gauge(
        "vcci_item_status",
        "Each checklist item's status in the last complete run (the series with value 1)",
        labels=["id", "section", "severity", "automation", "status"],
    )
    for item in result["items"]:
        status.add_metric(
            [
                item["id"],
                str(item["section"]),
                item["severity"],
                item["automation"],
                item["status"],
            ],
            1,
        )
    yield status


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# --- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    environment: list[str]  # ["--vcci-env", NAME] or ["--vcci-config", PATH]
    name: str  # the environment's name, as the history files it
    interval: float
    history: Path
    keep: int
    run_timeout: float
    pytest_args: list[str]
    work: Path  # where runs write their reports before the history keeps them
    port: int = DEFAULT_PORT
    address: str = "0.0.0.0"


class Exporter:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.state = State(options.interval, result=_latest_result(options))
        self._one_run = threading.Lock()  # never two checklist runs at once
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def command(self, report_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            "--vcci-suites",
            *self.options.environment,
            "--vcci-report-dir",
            str(report_dir),
            "--vcci-history",
            str(self.options.history),
            "-p",
            "no:cacheprovider",
            "-q",
            *self.options.pytest_args,
        ]

    def run_once(self) -> str:
        """One checklist run; its outcome (completed, failed, timeout), or "busy" when another
        run holds the lock."""
        if not self._one_run.acquire(blocking=False):
            return "busy"
        try:
            self._set(in_progress=True)
            outcome, result, detail = self._run()
            if self._stop.is_set() and result is None:
                outcome, detail = "stopped", "stopped by SIGTERM before it finished"
            runs = dict(self.state.runs)
            if outcome in runs:  # a run stopped at shutdown counts for nothing
                runs[outcome] += 1
            self._set(in_progress=False, runs=runs, **({"result": result} if result else {}))
            _log(f"run {outcome}: {detail}")
            prune(self.options.history, self.options.name, self.options.keep)
            return outcome
        finally:
            self._one_run.release()

    def _set(self, **changes: Any) -> None:
        current = self.state
        self.state = State(
            interval=current.interval,
            result=changes.get("result", current.result),
            in_progress=changes.get("in_progress", current.in_progress),
            runs=changes.get("runs", current.runs),
        )

    def _run(self) -> tuple[str, dict[str, Any] | None, str]:
        self.options.work.mkdir(parents=True, exist_ok=True)
        report_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.options.work))
        log = self.options.work / "last-run.log"
        began = time.monotonic()
        try:
            with log.open("wb") as out:
                self._child = subprocess.Popen(
                    self.command(report_dir),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its xdist workers stop with it
                )
                try:
                    status = self._wait(self._child, began)
                finally:
                    self._child = None
            if status is None:
                return "timeout", None, f"stopped after {self.options.run_timeout:.0f} s"
            evidence = report_dir / "evidence.json"
            if not evidence.is_file():
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                return "failed", None, f"pytest exit {status}, no evidence: {tail[:400]}"
            result = json.loads(evidence.read_text(encoding="utf-8"))
            run = result["run"]
            seconds = time.monotonic() - began
            return "completed", result, f"{run['verdict']} in {seconds:.1f} s (run {run['id']})"
        finally:
            shutil.rmtree(report_dir, ignore_errors=True)

    def _wait(self, child: subprocess.Popen[bytes], began: float) -> int | None:
        """The run's exit status; None when it outlasted --run-timeout (it is stopped then).
        On SIGTERM the run is stopped too, and its status returned."""
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if self._stop.is_set():
                    _stop_child(child)
                    return child.wait()
                if time.monotonic() - began > self.options.run_timeout:
                    _stop_child(child)
                    return None

    def loop(self) -> None:
        """Run now, then every interval after the last start (later when a run overran)."""
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.run_once()
            except Exception as exc:  # the exporter outlives any one run going wrong
                _log(f"run failed: {type(exc).__name__}: {exc}")
                self._set(in_progress=False)
            self._stop.wait(max(0.0, self.options.interval - (time.monotonic() - began)))

    def stop(self) -> None:
        """From the signal handler: only a flag; the loop stops the run in progress."""
        self._stop.set()


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the run's process group, SIGKILL if it has not ended in 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _latest_result(options: Options) -> dict[str, Any] | None:
    """The last complete run the history holds, so a restarted exporter serves it at once."""
    latest = environment_dir(options.history, options.name) / LATEST
    if not latest.exists():
        return None
    try:
        evidence = resolve_latest(latest) / "evidence.json"
        result: dict[str, Any] = json.loads(evidence.read_text(encoding="utf-8"))
        return result
    except (OSError, ValueError):
        return None


def prune(history: Path, environment: str, keep: int) -> list[Path]:
    """Delete the oldest runs beyond ``keep`` (never the one ``latest`` points at)."""
    env_dir = environment_dir(history, environment)
    if keep <= 0 or not env_dir.is_dir():
        return []
    latest = env_dir / LATEST
    current = resolve_latest(latest).resolve() if latest.exists() else None
    runs = sorted(
        p for p in env_dir.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:1].isdigit()
    )
    removed = [p for p in runs[: max(0, len(runs) - keep)] if p.resolve() != current]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} vcci exporter: {message}", file=sys.stderr, flush=True)


# --- the command -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcci exporter",
        description="Run the readiness checklist (read-only) every interval and serve the last "
        "complete result as Prometheus metrics. Other arguments go to pytest (e.g. -n 2, "
        "--vcci-gate critical, a directory of your own checks).",
        allow_abbrev=False,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", metavar="NAME", help="read environments/NAME.toml")
    where.add_argument("--config", metavar="PATH", help="read this environment file")
    parser.add_argument(
        "--interval", required=True, metavar="DURATION", help="time between runs: 90s, 15m, 1h"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--address", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    parser.add_argument(
        "--history",
        default="history",
        metavar="DIR",
        help="keep each run's evidence bundle in DIR/<environment>/ (--vcci-history; default history)",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help=f"keep the last N runs in the history, 0 for all (default {DEFAULT_KEEP})",
    )
    parser.add_argument(
        "--run-timeout",
        default="30m",
        metavar="DURATION",
        help="stop a run that takes longer (default 30m)",
    )
    return parser


def options_from(argv: Sequence[str]) -> Options:
    """Parse and check the command line; a usage problem raises SettingsError naming it."""
    args, rest = _parser().parse_known_args(list(argv))
    refused = [a for a in rest if a.split("=")[0] in ("--vcci-allow-intrusive", "--vcci-history")]
    if refused:
        raise SettingsError(
            refused[0].split("=")[0],
            "",
            "not for the exporter: it runs read-only and keeps the history itself (--history)",
        )
    try:
        interval = parse_duration(args.interval)
        run_timeout = parse_duration(args.run_timeout)
    except ValueError as exc:
        raise SettingsError("--interval/--run-timeout", "", str(exc)) from None
    path = Path(args.config) if args.config else find_environment_file(args.env, "environments")
    settings = load_settings(path)  # checked now: a bad file stops the exporter before it serves
    history = Path(args.history).resolve()
    return Options(
        environment=["--vcci-config", str(path.resolve())],
        name=settings.name,
        interval=interval,
        history=history,
        keep=args.keep,
        run_timeout=run_timeout,
        pytest_args=rest,
        work=history / f".exporter-{settings.name}",
        port=args.port,
        address=args.address,
    )


def run_exporter(argv: Sequence[str]) -> int:
    try:
        options = options_from(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    except SettingsError as exc:
        print(f"vcci exporter: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    exporter = Exporter(options)
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(ReadinessCollector(exporter))
    try:
        server, thread = start_http_server(options.port, options.address, registry=registry)
    except OSError as exc:
        print(f"vcci exporter: error: --port {options.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: exporter.stop())
    _log(
        f"serving http://{options.address}:{server.server_port}/metrics; {options.name} every "
        f"{options.interval:.0f} s, history {options.history}"
    )
    try:
        exporter.loop()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    _log("stopped")
    return EXIT_OK
