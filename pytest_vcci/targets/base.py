"""What every target shares: the read-only guard error and the run-wide fail-fast gate.

Fail fast: the first time a target is used in a run, one probe checks it can be reached, under
a lock shared by all xdist workers. Its outcome is written to the run directory, so every later
test (on any worker) that needs a target that is down errors at once with the same one-line root
cause instead of waiting for its own timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ReadOnlyViolation(Exception):
    """A check tried to change what it checks; refused before anything left the process."""

    def __init__(self, target: str, what: str) -> None:
        self.target = target
        self.what = what
        super().__init__(
            f"read-only guard: {target} refused {what} (pytest-vcci never changes what it checks)"
        )


class TargetError(Exception):
    """A target cannot serve a check. The message is one line saying why; a test that meets
    one shows that line, not a traceback (the root cause is in the run's summary)."""

    def __init__(self, target: str, cause: str, message: str) -> None:
        self.target = target
        self.cause = cause
        super().__init__(message)


class Unobservable(Exception):
    """What a check set out to read could not be read: a missing privilege or object, a
    statement timeout. Not a fact about the criterion: the run records it as a failed
    observation of the test (what could not be observed, why, what would let it be), in one
    place (session.py), and the test fails with that sentence instead of a traceback."""

    def __init__(self, target: str, what: str, why: str, expected: str, where: str = "") -> None:
        self.target = target
        self.what = what  # "setting ssl_min_protocol_version", "table audit_log"
        self.why = why  # "the role vcci_app lacks pg_read_all_settings"
        self.expected = expected  # "readable: grant pg_read_all_settings to vcci_app, or attest"
        self.where = where or target
        super().__init__(f"{self.where}: cannot read {what}: {why} (expected {expected})")


class TargetUnreachable(TargetError):
    """A target is down for this run; the message is the one-line root cause."""

    def __init__(self, target: str, cause: str) -> None:
        super().__init__(target, cause, f"{target} unreachable: {cause}")


class MissingPermission(TargetError):
    """The credential may not read what a check needs (RBAC, IAM): that check fails at once,
    the others run. The run's summary lists every missing permission together."""

    def __init__(self, target: str, cause: str) -> None:
        super().__init__(target, cause, f"{target}: {cause}")


def one_line(exc: BaseException) -> str:
    """An exception as one short line: type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"\s+", " ", text)
    if len(text) > 300:
        # Marked as cut, the way pytest shortens a repr: redaction then masks a secret's head.
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TargetGate:
    """Remembers, for the whole run and all workers, which targets are down and why."""

    def __init__(self, state_dir: Path, redact: Callable[[str], str] | None = None) -> None:
        self.state_dir = state_dir
        # Causes come from the clients' own error texts (an echoed header, a URL): masked
        # before they are written to the shared state and shown in every test of the target.
        self._redact = redact or (lambda text: text)
        state_dir.mkdir(parents=True, exist_ok=True)

    def _state(self, target: str) -> Path:
        return self.state_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', target)}.json"

    def _read(self, target: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads(self._state(target).read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def check(self, target: str) -> None:
        """Raise TargetUnreachable at once if the target is known to be down."""
        state = self._read(target)
        if state is not None and not state.get("ok"):
            raise TargetUnreachable(target, str(state.get("cause")))

    def mark_down(self, target: str, cause: str) -> None:
        path = self._state(target)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ok": False, "cause": self._redact(cause)}))
        tmp.replace(path)

    def ensure(self, target: str, probe: Callable[[], object]) -> None:
        """Probe the target once per run (across workers); raise if it is down."""
        state = self._read(target)
        if state is None:
            from filelock import FileLock  # imported on first use: keeps plugin start fast

            with FileLock(str(self._state(target)) + ".lock"):
                state = self._read(target)
                if state is None:
                    try:
                        probe()
                        state = {"ok": True}
                    except Exception as exc:
                        state = {"ok": False, "cause": self._redact(one_line(exc))}
                    path = self._state(target)
                    path.write_text(json.dumps(state))
        if not state.get("ok"):
            raise TargetUnreachable(target, str(state.get("cause")))

    @contextmanager
    def watch(self, target: str, *errors: type[BaseException]) -> Iterator[None]:
        """Check the target is up; a connection-level error inside marks it down for the run."""
        self.check(target)
        try:
            yield
        except errors as exc:
            cause = self._redact(one_line(exc))
            self.mark_down(target, cause)
            raise TargetUnreachable(target, cause) from exc
