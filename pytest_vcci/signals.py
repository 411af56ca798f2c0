"""SIGTERM and SIGINT: stop the run, keep the reports.

SIGTERM (what Kubernetes sends a Job's pod at its deadline or on eviction) is made to behave
like Ctrl-C: it raises :class:`Stopped`, a KeyboardInterrupt, so pytest stops the run, the
workers are shut down, and the reports are written with the verdict ``incomplete``.

While the session starts (the targets are probed, xdist starts its workers) both signals are
*deferred*: pytest gives a session whose start was interrupted no sessionfinish, so no reports,
and xdist would leave the workers it was starting. The signal is raised when the start is over,
at collection, where pytest handles it fully.

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
        self.stops = False  # SIGTERM raises Stopped
        self.deferred: list[str] = []  # signals that arrived while the session started
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
        self.stops = True

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        raise Stopped(f"{signal.Signals(signum).name}: the run was stopped")

    def _record_signals(self) -> None:
        """SIGINT and SIGTERM are recorded, not raised (unless whoever started us ignores them)."""
        for signum in _HANDLED:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN or current is None:
                continue
            self.previous.setdefault(signum, current)
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        (self.held if self.holding else self.deferred).append(signal.Signals(signum).name)

    def defer(self) -> None:
        """Until resume(): a SIGINT or SIGTERM is recorded, then raised by raise_deferred()."""
        if self._can_install() and not self.holding:
            self._record_signals()

    def resume(self) -> None:
        if not self._can_install() or self.holding:
            return
        if signal.SIGINT in self.previous:
            signal.signal(signal.SIGINT, self.previous[signal.SIGINT])
        if self.stops:
            signal.signal(signal.SIGTERM, self._stop)

    def raise_deferred(self) -> None:
        if self.deferred:
            name = self.deferred[0]
            raise Stopped(f"{name}: the run was stopped") if name != "SIGINT" else KeyboardInterrupt

    def hold(self) -> None:
        """From now on a SIGINT or SIGTERM is recorded, not raised (see the module docs)."""
        if self.holding or not self._can_install():
            return
        self.holding = True
        self._record_signals()

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

    # --- hooks: defer while the session starts, hold once the tests are over -------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionstart(self) -> Generator[None, object, object]:
        self.defer()
        try:
            return (yield)
        finally:
            self.resume()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self) -> None:
        self.raise_deferred()

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
