"""Nothing lost (issue 10): signals at any moment, a report directory that cannot take files.

The signal tests run pytest for real (a subprocess with ``-n 2``) and send SIGINT or SIGTERM to
the controller at a known moment: while a target is being probed (a listener that accepts and
never answers: the probe's connection in its queue says the probe is under way), while tests
run (a test writes a marker file, then sleeps), and while the run finishes (a conftest's
sessionfinish writes a marker, then sleeps). Every run must end with exit status 2, a complete
bundle whose verdict is ``incomplete`` and that verifies against its manifest, no worker left
running and no run directory left in its TMPDIR.

The disk tests mount a small tmpfs (root only; skipped elsewhere) to make a real full disk and a
real read-only file system.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from plugin_support import files_under, output, write_env

from pytest_vcci.verify_cli import run_verify

BUNDLE = {
    "evidence.json",
    "checklist.html",
    "junit.xml",
    "report.html",
    "oscal-assessment-results.json",
    "controls-soc2.html",
    "controls-iso27001.html",
    "controls-nist80053.html",
    "manifest.json",
}
SUITE = """
import os, time
import pytest

@pytest.mark.checklist("3.2.4")
def test_done():
    pass

@pytest.mark.checklist("3.2.5")
def test_running():
    open(os.environ["VCCI_TEST_RUNNING"], "w").write("running")
    time.sleep(60)

@pytest.mark.checklist("3.2.6")
def test_also_running():
    time.sleep(60)
"""
# Runs inside the plugin's finishing phase (after the tests, before the reports are in place).
CONFTEST = """
import os, time

def pytest_sessionfinish(session):
    marker = os.environ.get("VCCI_TEST_FINISHING")
    if marker and not hasattr(session.config, "workerinput"):
        open(marker, "w").write("finishing")
        time.sleep(float(os.environ.get("VCCI_TEST_FINISH_SECONDS", "3")))
"""
ENV = '[environment]\nname = "signals"\n'


class Run:
    """pytest in a subprocess of its own, in its own session, with its own TMPDIR."""

    def __init__(self, project: Path, args: list[str], **env: str) -> None:
        self.project = project
        self.tmpdir = project / "tmp"
        self.tmpdir.mkdir()
        self.log = (project / "pytest.log").open("w")
        environ = {**os.environ, "TMPDIR": str(self.tmpdir), **env}
        environ.pop("PYTEST_XDIST_WORKER", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=project,
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A shell's background job starts with SIGINT ignored; the run under test must not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.workers: set[int] = set()

    def children(self) -> set[int]:
        found: set[int] = set()
        with suppress(OSError):
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                found.update(int(p) for p in (task / "children").read_text().split())
        self.workers |= found
        return found

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.children()
            assert self.proc.poll() is None, f"pytest ended before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.output()}"
            time.sleep(0.05)

    def send(self, signum: int) -> None:
        self.children()
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.children()
            assert time.monotonic() < deadline, f"pytest did not stop:\n{self.output()}"
            time.sleep(0.05)
        self.log.close()
        return self.proc.returncode

    def output(self) -> str:
        return (self.project / "pytest.log").read_text(errors="replace")


def is_worker(pid: int) -> bool:
    """An xdist worker (execnet's bootstrap), not some short-lived fork of the start-up."""
    with suppress(OSError):
        return b"sys.stdin.readline()" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def assert_incomplete_bundle(run: Run, status: int) -> dict[str, object]:
    """Exit 2, every report there and parseable, verdict incomplete, nothing left behind."""
    text = run.output()
    assert status == 2, text
    out = run.project / "out"
    names = {p.relative_to(out).as_posix() for p in files_under(out)}
    assert names == BUNDLE, text
    evidence = json.loads((out / "evidence.json").read_text())
    json.loads((out / "oscal-assessment-results.json").read_text())
    json.loads((out / "manifest.json").read_text())
    ET.parse(out / "junit.xml")
    for page in ("report.html", "checklist.html"):
        assert (out / page).read_text().rstrip().endswith("</html>"), page
    assert (evidence["run"]["verdict"], evidence["run"]["exit_status"]) == ("incomplete", 2)
    assert run_verify([str(out)]) == 0
    assert run.workers, "the run started no xdist worker"
    time.sleep(0.2)  # a killed worker is reaped by init a moment later
    assert [pid for pid in run.workers if alive(pid)] == []
    assert [p.name for p in run.tmpdir.iterdir() if p.name.startswith("pytest-vcci-")] == []
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    return evidence


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_signals=SUITE)
    pytester.makeconftest(CONFTEST)
    return pytester.path


def start(project: Path, *extra: str, **env: str) -> Run:
    markers = {
        "VCCI_TEST_RUNNING": str(project / "running"),
        "VCCI_TEST_FINISHING": str(project / "finishing"),
    }
    args = ["-n", "2", "--vcci-config", "env.toml", "--vcci-report-dir", "out", *extra]
    return Run(project, args, **markers, **env)


class Silent:
    """A listener that accepts connections and never answers (a hung target)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []

    def connections(self) -> int:
        with suppress(BlockingIOError):
            while True:
                self.held.append(self.sock.accept()[0])
        return len(self.held)

    def close(self) -> None:
        for sock in [*self.held, self.sock]:
            sock.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    listener = Silent()
    yield listener
    listener.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_targets_are_probed(project: Path, silent: Silent, signum: int) -> None:
    write_env_text(
        project,
        ENV + f'[api]\nbase_url = "http://127.0.0.1:{silent.port}"\nread_timeout = 4\n',
    )
    run = start(project)
    run.wait_until(lambda: silent.connections() > 0, "the probe of [api]")
    run.send(signum)
    evidence = assert_incomplete_bundle(run, run.finish())
    run_info = evidence["run"]
    assert isinstance(run_info, dict)
    # The probe ran to its timeout and says so; no test started.
    assert run_info["targets"]["api"]["reachable"] is False
    assert "timed out" in run_info["targets"]["api"]["cause"]
    assert not (project / "running").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_xdist_starts_its_workers(project: Path, signum: int) -> None:
    write_env_text(project, ENV)
    run = start(project)
    run.wait_until(lambda: any(map(is_worker, run.children())), "the first worker process")
    run.send(signum)
    assert_incomplete_bundle(run, run.finish())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_tests_run(project: Path, signum: int) -> None:
    write_env_text(project, ENV)
    run = start(project, VCCI_TEST_FINISH_SECONDS="0")
    run.wait_until((project / "running").exists, "a test to start")
    run.send(signum)
    evidence = assert_incomplete_bundle(run, run.finish())
    tests = {t["nodeid"]: t for t in evidence["tests"]}  # type: ignore[index]
    # The controller may not have heard of the running test yet (its worker's reports were
    # still on the way); if it had, the test did not pass.
    assert tests.get("test_signals.py::test_running", {"outcome": "error"})["outcome"] == "error"
    assert tests["test_signals.py::test_done"]["outcome"] == "passed"
    if signum == signal.SIGTERM:
        assert "Stopped: SIGTERM: the run was stopped" in run.output()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_run_finishes(project: Path, signum: int) -> None:
    """The tests are over, the reports not yet in place: the run counts as interrupted."""
    write_env_text(project, ENV)
    (project / "test_signals.py").write_text(
        "import pytest\n\n@pytest.mark.checklist('3.2.4')\ndef test_done():\n    pass\n"
    )
    run = start(project)
    run.wait_until((project / "finishing").exists, "the run to finish")
    run.send(signum)
    assert_incomplete_bundle(run, run.finish())


def test_a_second_signal_while_the_reports_are_written(project: Path) -> None:
    write_env_text(project, ENV)
    run = start(project)
    run.wait_until((project / "running").exists, "a test to start")
    run.send(signal.SIGTERM)
    run.wait_until((project / "finishing").exists, "the run to finish")
    run.send(signal.SIGINT)
    assert_incomplete_bundle(run, run.finish())
    assert "SIGINT arrived after" not in run.output()


def test_a_storm_of_signals_while_the_reports_are_written(project: Path) -> None:
    """Signals every few milliseconds from the end of the tests to the end of the process:
    whatever moment of the writing they hit, no report is cut short."""
    write_env_text(project, ENV)
    (project / "test_signals.py").write_text(
        "import pytest\n\n@pytest.mark.checklist('3.2.4')\ndef test_done():\n    pass\n"
    )
    run = start(project, VCCI_TEST_FINISH_SECONDS="0.2")
    run.wait_until((project / "finishing").exists, "the run to finish")
    sent = 0
    while run.proc.poll() is None:
        with suppress(ProcessLookupError):
            run.send(signal.SIGINT if sent % 2 else signal.SIGTERM)
            sent += 1
        time.sleep(0.005)
    assert sent > 10
    assert_incomplete_bundle(run, run.finish())


def write_env_text(project: Path, text: str) -> None:
    (project / "env.toml").write_text(text)


# --- the report directory ------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs: ``tmpfs(size="1m", ro=False)``; unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str = "1m", ro: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in files_under(directory)}


ONE_TEST = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas(evidence):
    evidence.check("replicas", 3, 3, True)
"""


@pytest.mark.parametrize("inside", [False, True], ids=["the-mount", "a-new-directory-in-it"])
def test_a_read_only_report_directory_is_a_usage_error(
    pytester: pytest.Pytester, tmpfs: Callable[..., Path], inside: bool
) -> None:
    out = tmpfs(ro=True) / "reports" if inside else tmpfs(ro=True)
    write_env(pytester, ENV)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--vcci-config", "env.toml", "--vcci-report-dir", str(out))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    what = f"cannot be created in {out.parent}" if inside else "is not writable"
    assert output(result).strip() == (
        f"ERROR: --vcci-report-dir: {out}: {what}: Read-only file system"
    )


def test_a_full_disk_keeps_the_previous_reports(
    pytester: pytest.Pytester, tmpfs: Callable[..., Path]
) -> None:
    out = tmpfs(size="1m") / "reports"
    write_env(pytester, ENV)
    pytester.makepyfile(ONE_TEST)
    args = ("--vcci-config", "env.toml", "--vcci-report-dir", str(out))
    assert pytester.runpytest(*args).ret == 0
    before = snapshot(out)
    fill(out.parent / "filler")

    result = pytester.runpytest(*args)

    assert result.ret == 6
    lines = [line for line in output(result).splitlines() if "NOT written" in line]
    assert lines == [
        f"reports NOT written: {out}/report.html: No space left on device; the previous "
        f"reports in {out} are unchanged (exit status 6)"
    ]
    # ONE_TEST names no catalog check, so its item is undecided: the verdict is not READY.
    assert re.search(r"verdict: [A-Z_]+ \(gate high, exit status 6\)", output(result))
    assert "Traceback" not in output(result)
    assert "Generated html report" not in output(result)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    assert run_verify([str(out)]) == 0


def test_a_report_directory_made_read_only_during_the_run_keeps_the_previous_reports(
    pytester: pytest.Pytester, tmpfs: Callable[..., Path]
) -> None:
    mount = tmpfs(size="4m")
    out = mount / "reports"
    write_env(pytester, ENV)
    pytester.makepyfile(
        ONE_TEST
        + f"""
import subprocess
import tempfile

@pytest.mark.checklist("3.2.5")
def test_remounts_the_report_directory_read_only():
    subprocess.run(["mount", "-o", "remount,ro", {str(mount)!r}], check=True)
"""
    )
    args = ("--vcci-config", "env.toml", "--vcci-report-dir", str(out))
    first = pytester.runpytest(*args, "-k", "not remounts")
    assert first.ret == 0
    before = snapshot(out)

    result = pytester.runpytest(*args)

    assert result.ret == 6
    result.stdout.fnmatch_lines(
        [
            f"reports NOT written: {out}/.vcci-staging-*: Read-only file system; "
            f"the previous reports in {out} are unchanged (exit status 6)"
        ]
    )
    assert snapshot(out) == before


def test_report_html_that_cannot_be_written_is_named_and_the_rest_is_kept(
    pytester: pytest.Pytester, tmpfs: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-html writes into the run's directory under TMPDIR; when that disk is full the
    other reports are still written, without a report.html of another run beside them."""
    full = tmpfs(size="64k")
    write_env(pytester, ENV)
    pytester.makepyfile(ONE_TEST)
    out = pytester.path / "out"
    out.mkdir()
    (out / "report.html").write_text("<html>an older run</html>\n")
    monkeypatch.setattr(tempfile, "tempdir", str(full))
    fill(full / "filler")

    result = pytester.runpytest("--vcci-config", "env.toml", "--vcci-report-dir", "out")

    assert result.ret == 6
    result.stdout.fnmatch_lines(
        [
            "reports: */out/checklist.html",
            "report.html NOT written: No space left on device; the other reports are"
            " (exit status 6)",
        ]
    )
    assert "Traceback" not in output(result)
    assert "Generated html report" not in output(result)
    assert sorted(p.name for p in out.iterdir()) == sorted(BUNDLE - {"report.html"})
    assert json.loads((out / "evidence.json").read_text())["run"]["exit_status"] == 6
    assert run_verify([str(out)]) == 0


def test_a_usage_error_during_the_session_writes_nothing(pytester: pytest.Pytester) -> None:
    write_env(pytester, ENV)
    pytester.makepyfile(ONE_TEST)
    pytester.makeconftest(
        "import pytest\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    raise pytest.UsageError('a plugin refuses this run')\n"
    )
    out = pytester.path / "out"
    out.mkdir()
    (out / "evidence.json").write_text('{"previous": true}\n')

    result = pytester.runpytest("--vcci-config", "env.toml", "--vcci-report-dir", "out")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [p.name for p in out.iterdir()] == ["evidence.json"]
    assert (out / "evidence.json").read_text() == '{"previous": true}\n'
