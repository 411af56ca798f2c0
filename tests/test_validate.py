"""`vcci validate`, the quick validation: the seed's checks, the exit codes 0 / 1 / 2 (4 for usage
errors), the --json shape, and a colour table only on a terminal without NO_COLOR.

Each run is the real command in a subprocess from an empty directory; the exit-code runs check a
sandbox of the components the quick validation reaches.
"""

from __future__ import annotations

import ast
import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist.locate import suite_directories
from pytest_vcci.checklist.smoke import SEED_CHECKS
from pytest_vcci.sandbox import Sandbox

VCCI = [sys.executable, "-m", "pytest_vcci.cli"]
# What the 14 checks reach: the cluster, PostgreSQL, Redis, the API (and its TLS), Prometheus.
COMPONENTS = ("api", "kubernetes", "postgres", "redis", "monitoring")
ESCAPE = "\x1b["


def validate(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VCCI, "validate", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def by_check(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["category"], c["check"]): c for c in data["checks"]}


# --- the checks ---------------------------------------------------------------------------------


def smoke_marks() -> list[tuple[str, str, list[str]]]:
    """(category, check, checklist IDs) of every smoke-marked test in the packaged suites."""
    found = []
    for path in sorted(suite_directories()[0].glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            marks = {
                d.func.attr: [a.value for a in d.args if isinstance(a, ast.Constant)]
                for d in node.decorator_list
                if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
            }
            if "smoke" in marks:
                found.append((*marks["smoke"], marks.get("checklist", [])))
    return found


def test_the_suites_mark_each_of_the_seeds_checks_once_with_its_checklist_id() -> None:
    marks = smoke_marks()
    assert sorted((c, k) for c, k, _ in marks) == sorted(SEED_CHECKS)
    assert all(ids for _, _, ids in marks), marks  # every smoke check keeps its checklist ID
    per_category = {c: sum(1 for k, _ in SEED_CHECKS if k == c) for c, _ in SEED_CHECKS}
    assert per_category == {
        "infrastructure": 4,
        "database": 3,
        "cache": 1,
        "api": 3,
        "security": 2,
        "monitoring": 1,
    }


# --- against the sandbox --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    sandbox = Sandbox(tmp_path_factory.mktemp("validate") / "sandbox", only=COMPONENTS)
    try:
        env_file = sandbox.up()
        yield env_file, sandbox.env_vars()
    finally:
        sandbox.down()


def test_all_checks_pass_exit_0_and_the_json_shape(
    staging: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    env_file, variables = staging
    proc = validate(tmp_path, "--config", str(env_file), "--json", env=variables)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = as_json(proc)  # nothing but the JSON on stdout
    assert data["schema"] == "pytest-vcci/validate/v1"
    assert (data["verdict"], data["exit_status"], data["gate"]) == ("ready", 0, "high")
    assert data["environment"] == "sandbox"
    assert data["summary"] == {
        "checks": 14,
        "passed": 14,
        "critical": 0,
        "warnings": 0,
        "waived": 0,
    }
    assert [(c["category"], c["check"]) for c in data["checks"]] == list(SEED_CHECKS)
    for check in data["checks"]:
        assert set(check) == {
            "category", "check", "items", "severity", "status", "level", "message", "seconds", "tests",
        }  # fmt: skip
        assert check["items"]
        assert check["status"] == "passed"
        assert check["level"] == "ok"
        assert all(t["outcome"] == "passed" for t in check["tests"]), check
    assert by_check(data)[("database", "migrations at head")]["items"] == ["2.1.2"]
    assert all(t["reachable"] for t in data["targets"].values())
    assert (Path(data["reports"]) / "evidence.json").is_file()
    assert data["seconds"] < 60  # bounded; the goal (< 10 s) is measured in benchmarks/validate.py


def test_a_critical_failure_blocks_exit_1(
    staging: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """1.1.2 (critical) asks for PostgreSQL 99: the connectivity check fails at the gate."""
    env_file, variables = staging
    proc = validate(
        tmp_path,
        "--config",
        str(env_file),
        "--vcci-set",
        'thresholds."1.1.2".min_version="99"',
        env=variables,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("database  "))
    assert "connectivity" in row
    assert "1.1.2" in row
    assert "critical" in row
    assert "FAIL" in row
    assert "observed" in row
    assert "expected >= 99" in row
    assert (
        "BLOCKED: 1 critical failure(s) (database: connectivity); deployment blocked (exit 1)"
        in proc.stdout
    )


def test_only_warnings_exit_2(staging: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Gate critical: a failed high check (1.1.1) is a warning, not a block."""
    env_file, variables = staging
    proc = validate(
        tmp_path,
        "--config",
        str(env_file),
        "--gate",
        "critical",
        "--json",
        "--vcci-set",
        'thresholds."1.1.1".min_version="9.99"',
        env=variables,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    data = as_json(proc)
    assert (data["verdict"], data["exit_status"], data["gate"]) == (
        "ready_with_warnings",
        2,
        "critical",
    )
    cluster = by_check(data)[("infrastructure", "cluster")]
    assert (cluster["status"], cluster["level"], cluster["severity"]) == (
        "failed",
        "warning",
        "high",
    )
    assert data["summary"]["warnings"] == 1
    assert data["summary"]["passed"] == 13


# --- without a sandbox ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_target_is_a_critical_failure(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text(
        f'[environment]\nname = "down"\n[postgres]\ndsn = "postgresql://u:pw@127.0.0.1:{closed_port()}/db"\n'
    )
    proc = validate(tmp_path, "--config", str(env_file), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = as_json(proc)
    database = [c for c in data["checks"] if c["category"] == "database"]
    assert [c["status"] for c in database] == ["error", "error", "error"]
    assert all(
        c["level"] == "critical" and "postgres unreachable" in c["message"] for c in database
    )
    # the targets it was not given are skipped: warnings, listed as such
    assert by_check(data)[("cache", "Redis connectivity")]["level"] == "warning"
    assert data["targets"]["postgres"]["reachable"] is False


def test_your_own_smoke_checks_run_alongside(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_mine.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.smoke\n"
        '@pytest.mark.checklist("3.2.4")\n'
        "def test_queue_drained(evidence):\n"
        '    evidence.check("queue depth", 12, 0, False, where="queue jobs")\n'
    )
    env_file = tmp_path / "env.toml"
    env_file.write_text('[environment]\nname = "mine"\n')
    proc = validate(tmp_path, "--config", str(env_file), "checks", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    mine = by_check(as_json(proc))[("other", "test_queue_drained")]
    assert (mine["status"], mine["level"], mine["items"]) == ("failed", "critical", ["3.2.4"])
    assert "queue jobs: queue depth: observed 12, expected 0" in mine["message"]


def test_nothing_configured_gives_warnings_and_strict_blocks(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[environment]\nname = "empty"\n')
    proc = validate(tmp_path, "--config", str(env_file), "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    data = as_json(proc)
    assert {c["status"] for c in data["checks"]} == {"skipped"}
    assert "not configured" in data["checks"][0]["message"]
    strict = validate(tmp_path, "--config", str(env_file), "--strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "name the environment: --env NAME or --config PATH"),
        (("--config", "missing.toml"), "missing.toml: environment file not found"),
        (("--env", "nowhere"), "nowhere"),
    ],
)
def test_usage_errors_exit_4_on_one_line(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    proc = validate(tmp_path, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("vcci validate: ")
    assert says in line
    assert "Traceback" not in proc.stderr


# --- colour ---------------------------------------------------------------------------------------


def on_a_terminal(cwd: Path, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``vcci validate`` with a pseudo-terminal as stdout; (exit status, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*VCCI, "validate", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode()


def test_colour_only_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[environment]\nname = "colours"\n')
    args = ("--config", str(env_file))
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    status, shown = on_a_terminal(tmp_path, *args, env={**base, "NO_COLOR": ""})
    assert status == 2
    assert f"{ESCAPE}33mSKIP" in shown  # warnings in yellow
    assert f"{ESCAPE}33mWARNINGS: 14 warning(s)" in shown
    status, shown = on_a_terminal(tmp_path, *args, env={**base, "NO_COLOR": "1"})
    assert status == 2
    assert "SKIP" in shown
    assert ESCAPE not in shown
    piped = validate(tmp_path, *args)
    assert piped.returncode == 2
    assert "SKIP" in piped.stdout
    assert ESCAPE not in piped.stdout
    forced = validate(tmp_path, *args, "--color", "always")
    assert f"{ESCAPE}33mSKIP" in forced.stdout


# --- the same through pytest ----------------------------------------------------------------------

MIXED = """
import pytest

@pytest.mark.smoke("database", "connectivity")
@pytest.mark.checklist("1.1.2")
def test_quick(evidence):
    evidence.check("answers", True, True, True)

@pytest.mark.checklist("1.1.3")
def test_slow(evidence):
    evidence.check("answers", True, True, True)
"""


@pytest.mark.parametrize("selection", [["--vcci-smoke"], ["-m", "smoke"]])
def test_pytest_selects_the_smoke_checks(pytester: pytest.Pytester, selection: list[str]) -> None:
    pytester.makepyfile(test_checks=MIXED)
    result = pytester.runpytest(*selection, "-p", "no:cacheprovider", "--vcci-report-dir", "out")
    result.assert_outcomes(passed=1, deselected=1)
    evidence = json.loads((pytester.path / "out" / "evidence.json").read_text())
    (test,) = evidence["tests"]
    assert test["nodeid"] == "test_checks.py::test_quick"
    assert test["smoke"] == {"category": "database", "check": "connectivity"}
