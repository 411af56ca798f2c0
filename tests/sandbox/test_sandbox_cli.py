"""`vcci sandbox up|env|down` as a user runs them: separate processes, state on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VCCI = [sys.executable, "-m", "pytest_vcci.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VCCI, *args], capture_output=True, text=True, timeout=300)


def alive(text: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_up_env_down(tmp_path: Path) -> None:
    workdir = tmp_path / "sbx"
    up = run("sandbox", "up", "--dir", str(workdir), "--only", "api,kubernetes")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "environment file:" in up.stdout
        env_file = workdir / "environment.toml"
        text = env_file.read_text()
        assert "[kubernetes]" in text
        assert "[api]" in text
        assert "${VCCI_SANDBOX_KUBE_TOKEN}" in text  # secrets stay out of the file
        assert (workdir / "secrets.env").stat().st_mode & 0o077 == 0
        assert alive(str(workdir)), "the sandbox processes should be running"

        again = run("sandbox", "up", "--dir", str(workdir), "--only", "api")
        assert again.returncode == 1
        assert "already running" in again.stderr

        env = run("sandbox", "env", "--dir", str(workdir))
        assert env.returncode == 0
        assert "export VCCI_SANDBOX_KUBE_TOKEN=" in env.stdout
        assert str(env_file) in env.stdout
    finally:
        down = run("sandbox", "down", "--dir", str(workdir))
    assert down.returncode == 0
    assert "stopped: " in down.stdout
    assert alive(str(workdir)) == []
    assert run("sandbox", "env", "--dir", str(workdir)).returncode == 1


def test_down_without_a_sandbox_says_so(tmp_path: Path) -> None:
    down = run("sandbox", "down", "--dir", str(tmp_path))
    assert down.returncode == 0
    assert "no sandbox running" in down.stdout


def test_unknown_component_is_an_error(tmp_path: Path) -> None:
    up = run("sandbox", "up", "--dir", str(tmp_path / "x"), "--only", "nosuch")
    assert up.returncode == 2
    assert "nosuch" in up.stderr
