"""SIGTERM and SIGINT: stop the run, keep the reports.

SIGTERM (what Kubernetes sends a Job's pod at its deadline or on eviction) is made to behave
like Ctrl-C: it raises :class:`Stopped`, a KeyboardInterrupt, so pytest stops the run, the
workers are shut down, and the reports are written with the verdict ``incomplete``.

Once the tests are over (the run ended or was stopped) both signals are *held*: recorded, not
raised, until the run has written its reports and cleaned up. A signal that arrives then cannot
cut a report in half, leave workers or temporary directories behind, or stop the sandbox's
teardown; the run counts as interrupted if its reports were not yet in place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal other than Ctrl-C."""


class SignalGuard:
    """Per process: SIGTERM raises Stopped; after the tests, SIGINT and SIGTERM are held."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.holding = False
        self.held: list[str] = []  # names of the signals that arrived while holding

    @staticmethod
    def _can_install() -> bool:
        # Python runs signal handlers in the main thread only, and only it may install them.
        return threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        """SIGTERM stops the run as Ctrl-C does (unless whoever started us ignores it)."""
        if not self._can_install() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
            return
        self.previous.setdefault(signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        raise Stopped(f"{signal.Signals(signum).name}: the run was stopped")

    def hold(self) -> None:
        """From now on a SIGINT or SIGTERM is recorded, not raised (see the module docs)."""
        if self.holding or not self._can_install():
            return
        self.holding = True
        for signum in _HANDLED:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN or current is None:
                continue
            self.previous.setdefault(signum, current)
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.held.append(signal.Signals(signum).name)

    def restore(self) -> None:
        """Give back the handlers found at install time (in-process pytest runs nest).

        Not when a signal already came while holding: something is stopping this process,
        and one more signal between here and its exit must not kill it with a status other
        than the one its reports give. Those are then ignored outright (SIG_IGN: Python's
        own shutdown resets its handlers to the default, but leaves an ignored one alone)."""
        if not self._can_install():
            return
        if self.held:
            for signum in self.previous:
                signal.signal(signum, signal.SIG_IGN)
            return
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
        self.holding = False

    # --- hooks: when the tests are over, hold ---------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            self.hold()

    def pytest_keyboard_interrupt(self) -> None:
        self.hold()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        self.hold()
        return (yield)
