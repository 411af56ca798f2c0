"""What every sandbox component shares: free ports, child processes, readiness waits.

Every component runs its server(s) as child processes listening on 127.0.0.1 only, so the
sandbox can outlive the command that started it (``vcci sandbox up``) and be stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SandboxError(Exception):
    """The sandbox could not start; the message says what to do."""


def require_binary(binary: str, package: str, *, search: Sequence[str] = ()) -> str:
    """The path of a server binary, or an error giving the exact apt-get command."""
    for directory in search:
        candidate = Path(directory) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(binary)
    if found:
        return found
    raise SandboxError(
        f"{binary} not found: install it with `apt-get update && apt-get install -y {package}`"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until true; fail with the server's log tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"{what} exited with {proc.returncode}{_tail(log)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SandboxError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n  " + "\n  ".join(text)


@dataclass
class Component:
    """One part of the sandbox. Subclasses implement start(); stop() kills recorded processes."""

    name: str = "component"
    workdir: Path = field(default_factory=Path.cwd)
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        stop_pids(self.pids)
        self.pids.clear()

    def env_tables(self) -> dict[str, dict[str, Any]]:
        """Tables this component contributes to the environment file (secrets as ${VAR})."""
        return {}

    def env_vars(self) -> dict[str, str]:
        """Secret values behind the ${VAR} references of env_tables()."""
        return {}

    def spawn(
        self,
        argv: Sequence[str],
        log_name: str,
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child in its own session (so the sandbox survives Ctrl-C of a caller)."""
        log = self.workdir / "logs" / log_name
        log.parent.mkdir(parents=True, exist_ok=True)
        command = list(argv)
        if user and os.geteuid() == 0:
            command = ["runuser", "-u", user, "--", *command]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pids.append(proc.pid)
        return proc

    def log_path(self, log_name: str) -> Path:
        return self.workdir / "logs" / log_name


def stop_pids(pids: Sequence[int], timeout: float = 10.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``timeout``."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)


def process_tree(pids: Sequence[int]) -> list[int]:
    """``pids`` and all their descendants (from /proc). A process group is not enough:
    PostgreSQL's backends each start a session of their own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone since the listing
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def signal_tree(pids: Sequence[int], sig: int) -> None:
    """Send ``sig`` to ``pids`` and all their descendants (e.g. SIGSTOP to freeze a server)."""
    for pid in process_tree(pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
