"""`vcci exporter`: the checklist on a schedule as Prometheus metrics. One run at a time, the last
complete result served while a run is in progress, no exit on a target outage or a failed run,
a clean stop on SIGTERM, and deploy/prometheusrule.yaml's alerts firing in a real Prometheus.

The exporter runs as a subprocess, as in production. Its runs check a directory of one check
driven by a control file (pass or fail, hold the run in progress, crash), so a test decides what
a run sees and when it ends; the packaged suites are left out (--ignore-glob) to keep runs short,
and their 92 items are served all the same (not covered).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from plugin_support import passing_checks
from prometheus_client.parser import text_string_to_metric_families

from pytest_vcci.exporter import Exporter, Options, parse_duration, prune

ROOT = Path(__file__).resolve().parents[1]
CONTROLLED = """
import json, os, time
from pathlib import Path
import pytest

@pytest.mark.checklist("1.1.2")
def test_controlled(evidence):
    control = Path(os.environ["VCCI_TEST_CONTROL"])
    log = control.parent / "runs.log"
    with log.open("a") as out:
        out.write(f"start {time.time()} {os.getpid()}\\n")
    while (control.parent / "hold").exists():
        time.sleep(0.05)
    state = json.loads(control.read_text())
    if state.get("crash"):
        os._exit(3)
    with log.open("a") as out:
        out.write(f"end {time.time()} {os.getpid()}\\n")
    evidence.check("controlled", state["pass"], True, state["pass"], where="control file")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Running:
    """A `vcci exporter` subprocess and the files that drive its runs."""

    proc: subprocess.Popen[str]
    port: int
    work: Path

    def control(self, **state: Any) -> None:
        (self.work / "control.json").write_text(json.dumps(state))

    def hold(self, held: bool) -> None:
        hold = self.work / "hold"
        if held:
            hold.touch()
        else:
            hold.unlink(missing_ok=True)

    def held_run(self) -> tuple[str, float, int]:
        """Hold the runs; the run whose check is held (one that started after the hold: a run
        already past its check when the hold came finishes, and the next one is held)."""
        since = time.time()
        self.hold(True)
        return wait_for(
            lambda: [r for r in self.runs() if r[0] == "start" and r[1] > since][-1:],
            "a held run",
        )[0]

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """{sample name: [(labels, value)]} from one scrape."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    def value(self, name: str, **labels: str) -> float | None:
        for have, value in self.metrics().get(name, []):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        return None

    def runs(self) -> list[tuple[str, float, int]]:
        """("start"|"end", time, pid) for each run's check, in order."""
        log = self.work / "runs.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [(kind, float(at), int(pid)) for kind, at, pid in (line.split() for line in lines)]

    def log(self) -> str:
        return (self.work / "exporter.log").read_text()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:  # not serving yet
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def launch(*extra: str, interval: str = "2s", env_text: str | None = None) -> Running:
        (tmp_path / "checks").mkdir(exist_ok=True)
        (tmp_path / "checks" / "test_controlled.py").write_text(CONTROLLED)
        # 1.1.2's catalog checks, passing: the item is decided, and passes while
        # test_controlled (which decides nothing but can fail it) passes.
        (tmp_path / "checks" / "test_pass_1_1_2.py").write_text(passing_checks("1.1.2"))
        env_file = tmp_path / "env.toml"
        env_file.write_text(env_text or '[environment]\nname = "exporter-test"\n')
        port = free_port()
        running = Running(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_vcci.cli",
                    "exporter",
                    "--config",
                    str(env_file),
                    "--interval",
                    interval,
                    "--port",
                    str(port),
                    "--address",
                    "127.0.0.1",
                    "--history",
                    str(tmp_path / "history"),
                    "--ignore-glob=/*/suites/test_*.py",
                    str(tmp_path / "checks"),
                    *extra,
                ],
                cwd=tmp_path,
                env={**os.environ, "VCCI_TEST_CONTROL": str(tmp_path / "control.json")},
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / "exporter.log").open("w"),
                text=True,
            ),
            port,
            tmp_path,
        )
        running.control(**{"pass": True})
        started.append(running)
        return running

    yield launch
    for running in started:
        running.hold(False)
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            try:
                running.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                running.proc.kill()


def completed(running: Running) -> float:
    return running.value("vcci_runs_total", outcome="completed") or 0.0


# --- metrics ----------------------------------------------------------------------------------


def test_every_item_is_one_series_and_an_unreachable_target_is_down(
    start: Callable[..., Running],
) -> None:
    """A target that is down: the runs complete all the same, the target is reported down, its
    item errors, and the exporter keeps running and serving."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    running = start(
        env_text=f'[environment]\nname = "outage"\n[redis]\nurl = "redis://127.0.0.1:{closed}/0"\n',
        interval="1s",
    )
    wait_for(lambda: completed(running) >= 2, "two completed runs")
    samples = running.metrics()
    items = samples["vcci_item_status"]
    assert len(items) == 92  # one series per item: the status is a label
    assert len({labels["id"] for labels, _ in items}) == 92
    assert all(value == 1 for _, value in items)
    by_id = {labels["id"]: labels for labels, _ in items}
    assert by_id["1.1.2"] == {
        "id": "1.1.2",
        "section": "1",
        "severity": "critical",
        "automation": "automated",
        "status": "passed",
    }
    assert by_id["3.2.4"]["status"] == "not_covered"
    assert running.value("vcci_target_up", target="redis") == 0
    ((verdict, one),) = samples["vcci_run_verdict"]
    assert one == 1
    assert verdict["verdict"] == "ready"
    assert running.value("vcci_run_interval_seconds") == 1
    assert time.time() - (running.value("vcci_run_timestamp_seconds") or 0) < 120
    assert 0 < (running.value("vcci_run_duration_seconds") or 0) < 120
    assert running.proc.poll() is None
    assert "run completed: ready" in running.log()


def test_a_run_in_progress_keeps_the_last_complete_result(start: Callable[..., Running]) -> None:
    running = start()
    wait_for(lambda: completed(running) >= 1, "a completed run")
    running.control(**{"pass": False})
    held = running.held_run()
    assert running.value("vcci_run_in_progress") == 1
    first = running.value("vcci_run_timestamp_seconds")
    time.sleep(2.5)  # more than an interval: the held run is still the only one
    assert running.value("vcci_item_status", id="1.1.2", status="passed") == 1
    assert running.value("vcci_item_status", id="1.1.2", status="failed") is None
    assert running.value("vcci_run_timestamp_seconds") == first
    assert [r for r in running.runs() if r[0] == "start"][-1] == held
    running.hold(False)
    wait_for(
        lambda: running.value("vcci_item_status", id="1.1.2", status="failed") == 1,
        "the held run's result",
    )
    assert (running.value("vcci_run_timestamp_seconds") or 0) > (first or 0)
    assert running.value("vcci_item_status", id="1.1.2", status="passed") is None


def test_never_two_runs_at_once(start: Callable[..., Running]) -> None:
    """Runs that take longer than the interval follow one another, never overlap."""
    running = start(interval="1s")
    running.hold(True)
    wait_for(lambda: running.runs(), "the first run's check")
    time.sleep(3)  # three intervals while the first run is held
    assert [kind for kind, _, _ in running.runs()] == ["start"]
    running.hold(False)
    wait_for(lambda: completed(running) >= 3, "three completed runs")
    events = running.runs()
    kinds = [kind for kind, _, _ in events]
    assert kinds[: len(kinds) // 2 * 2] == ["start", "end"] * (len(kinds) // 2)
    times = [at for _, at, _ in events]
    assert times == sorted(times)


def test_a_run_lock_refuses_a_second_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock itself: a run asked for while one is in progress does not start."""
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_controlled.py").write_text(CONTROLLED)
    (tmp_path / "control.json").write_text('{"pass": true}')
    (tmp_path / "hold").touch()
    monkeypatch.setenv("VCCI_TEST_CONTROL", str(tmp_path / "control.json"))
    env_file = tmp_path / "env.toml"
    env_file.write_text('[environment]\nname = "lock"\n')
    exporter = Exporter(
        Options(
            environment=["--vcci-config", str(env_file)],
            name="lock",
            interval=1,
            history=tmp_path / "history",
            keep=0,
            run_timeout=300,
            pytest_args=["--ignore-glob=/*/suites/test_*.py", str(tmp_path / "checks")],
            work=tmp_path / "work",
        )
    )
    try:
        first: list[str] = []
        thread = threading.Thread(target=lambda: first.append(exporter.run_once()))
        thread.start()
        wait_for(lambda: (tmp_path / "runs.log").exists(), "the first run's check")
        assert exporter.run_once() == "busy"
        assert exporter.state.in_progress
        (tmp_path / "hold").unlink()
        thread.join(timeout=120)
        assert first == ["completed"]
        assert exporter.state.runs == {"completed": 1, "failed": 0, "timeout": 0}
        assert exporter.state.result is not None
    finally:
        (tmp_path / "hold").unlink(missing_ok=True)


def test_a_run_that_gives_no_evidence_keeps_the_last_result(start: Callable[..., Running]) -> None:
    running = start()
    wait_for(lambda: completed(running) >= 1, "a completed run")
    first = running.value("vcci_run_timestamp_seconds")
    running.control(crash=True)
    wait_for(lambda: (running.value("vcci_runs_total", outcome="failed") or 0) >= 2, "failed runs")
    assert running.value("vcci_run_timestamp_seconds") == first
    assert running.value("vcci_item_status", id="1.1.2", status="passed") == 1
    assert running.proc.poll() is None
    assert "run failed: pytest exit 3, no evidence" in running.log()
    running.control(**{"pass": True})
    wait_for(lambda: (running.value("vcci_run_timestamp_seconds") or 0) > (first or 0), "recovery")


def test_sigterm_stops_the_run_in_progress_and_exits_0(start: Callable[..., Running]) -> None:
    running = start()
    _, _, pid = running.held_run()
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the run's pytest is gone too
    assert running.log().rstrip().endswith("vcci exporter: stopped")


def test_history_keeps_each_runs_bundle(start: Callable[..., Running]) -> None:
    running = start(interval="1s")
    wait_for(lambda: completed(running) >= 2, "two completed runs")
    env_dir = running.work / "history" / "exporter-test"
    runs = [p for p in env_dir.iterdir() if p.name[0].isdigit()]
    assert len(runs) >= 2
    assert all(
        (run / "evidence.json").is_file() and (run / "manifest.json").is_file() for run in runs
    )
    assert (env_dir / "latest").is_symlink()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--vcci-allow-intrusive"], "--vcci-allow-intrusive: not for the exporter"),
        (["--interval", "15 minutes"], "'15 minutes' is not a duration"),
        (["--config", "missing.toml"], "missing.toml: environment file not found"),
    ],
)
def test_usage_errors_exit_4(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "env.toml").write_text('[environment]\nname = "x"\n')
    base = {"--config": "env.toml", "--interval": "15m"}
    for flag in ("--config", "--interval"):
        if flag in args:
            base.pop(flag)
    argv = [a for kv in base.items() for a in kv] + args
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_vcci.cli", "exporter", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert says in line


def test_durations() -> None:
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2s") == 2
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("15")
    with pytest.raises(ValueError, match="at least 1s"):
        parse_duration("0s")


def test_prune_keeps_the_newest_runs_and_latest(tmp_path: Path) -> None:
    env_dir = tmp_path / "staging"
    for name in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z"):
        (env_dir / name).mkdir(parents=True)
    (env_dir / "latest").symlink_to("20260101T000000Z")  # an old run still marked latest
    removed = prune(tmp_path, "staging", keep=2)
    assert [p.name for p in removed] == ["20260102T000000Z"]
    assert sorted(p.name for p in env_dir.iterdir()) == [
        "20260101T000000Z",
        "20260103T000000Z",
        "20260104T000000Z",
        "latest",
    ]


# --- the alerts ---------------------------------------------------------------------------------


def rules_file(directory: Path) -> Path:
    """deploy/prometheusrule.yaml's spec.groups, as a Prometheus rules file."""
    (rule,) = [
        d for d in yaml.safe_load_all((ROOT / "deploy" / "prometheusrule.yaml").read_text())
        if d["kind"] == "PrometheusRule"
    ]  # fmt: skip
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def test_the_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rules = rules_file(tmp_path)
    proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 rules found" in proc.stdout


def firing(prometheus: str) -> set[tuple[str, str]]:
    """(alertname, id or '') of every firing alert."""
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as answer:
        alerts = json.loads(answer.read())["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("id", ""))
        for a in alerts
        if a["state"] == "firing"
    }


def test_prometheus_fires_the_alerts(start: Callable[..., Running], tmp_path: Path) -> None:
    """A real Prometheus loads the rules, scrapes the exporter and fires: a critical item turns
    failed, then the last complete run grows older than two intervals."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    running = start(interval="5s")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file(directory))],
        "scrape_configs": [
            {"job_name": "vcci", "static_configs": [{"targets": [f"127.0.0.1:{running.port}"]}]}
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: completed(running) >= 1, "a completed run")
        wait_for(
            lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=5).status == 200, "prometheus"
        )
        time.sleep(3)  # a few scrapes and evaluations of a passing run
        assert not firing(url)
        running.control(**{"pass": False})
        wait_for(lambda: ("VcciCriticalItemFailed", "1.1.2") in firing(url), "the critical alert")
        running.hold(True)  # runs stop completing: after two intervals (10 s) the result is stale
        wait_for(lambda: ("VcciReadinessStale", "") in firing(url), "the staleness alert", 90)
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
