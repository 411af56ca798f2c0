"""The intrusive phase: with ``--vcci-allow-intrusive``, checks marked ``intrusive`` (bursts,
load probes, test-tenant writes) run after every read-only check, one at a time, so none of
them changes another check's outcome (a burst spends the API's rate limit, a load probe slows
every latency check running beside it).

- Every process orders the collected items read-only first, intrusive last.
- Without xdist that is the whole story. Under xdist the controller schedules with
  ``--dist load``, which hands out items in collection order (a scope- or file-based mode could
  queue a read-only test behind an intrusive one on the same worker, and they would wait for
  each other forever). Each intrusive test then waits, in its setup, on a barrier in the run
  directory that the controller opens once every read-only test has reported, and takes a
  run-wide lock, so intrusive tests never overlap.
- Should every live worker end up waiting while read-only tests are still unreported (a
  crashed worker, a run stopped early), the controller cancels the phase: the intrusive tests
  skip, saying why, instead of the run hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.context import INTRUSIVE_LOCK_KEY, RunContext

INTRUSIVE = "intrusive"
POLL_SECONDS = 0.1
# How long every live worker must have been waiting, with no test reported and no worker
# started or lost, before the phase is cancelled.
STUCK_SECONDS = 3.0
# --dist modes that could queue read-only work behind an intrusive test on one worker.
REORDERING_MODES = ("loadscope", "loadfile", "loadgroup", "worksteal")


def is_intrusive(item: pytest.Item) -> bool:
    return item.get_closest_marker(INTRUSIVE) is not None


class IntrusivePhase:
    """Registered (on the controller and every worker) when intrusive checks may run."""

    def __init__(self, config: pytest.Config, context: RunContext) -> None:
        self.config = config
        self.dir = context.run_dir / "intrusive"
        self.dir.mkdir(parents=True, exist_ok=True)
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.worker_id: str | None = workerinput["workerid"] if workerinput else None
        # Controller state (under xdist): what ran, who is alive, the collection.
        self.lock = threading.Lock()
        self.collected: list[str] | None = None
        self.intrusive: frozenset[str] | None = None  # from the plan the workers wrote
        self.collections = 0
        self.copies = 1  # --dist each runs every test on every worker
        self.finished: Counter[str] = Counter()
        self.live: set[str] = set()
        self.last_event = time.monotonic()
        self.stop = threading.Event()
        self.guard: threading.Thread | None = None

    # --- the barrier's files ------------------------------------------------------------------

    @property
    def opened(self) -> Path:
        return self.dir / "open"

    @property
    def cancelled(self) -> Path:
        return self.dir / "cancelled"

    @property
    def plan(self) -> Path:
        return self.dir / "plan.json"

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{self.worker_id or 'controller'}")
        tmp.write_text(text)
        tmp.replace(path)

    # --- every process: read-only first, intrusive last ----------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None]:
        result = yield  # after every other hook has selected and deselected
        items[:] = [i for i in items if not is_intrusive(i)] + [i for i in items if is_intrusive(i)]
        if self.worker_id is not None:
            # Before the worker reports its collection, so the controller finds the plan
            # waiting. Every worker collects the same: any copy will do.
            intrusive = [item.nodeid for item in items if is_intrusive(item)]
            self._write(self.plan, json.dumps({"intrusive": intrusive}))
        return result

    # --- worker: wait for the phase, then one intrusive test at a time -------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.worker_id is None or not is_intrusive(item):
            return
        reason = self._wait_for_phase()
        if reason is not None:
            pytest.skip(f"intrusive phase cancelled: {reason}")
        from filelock import FileLock  # the same run-wide lock machinery the gate uses

        lock = FileLock(str(self.dir / "one-at-a-time.lock"))
        lock.acquire()
        item.stash[INTRUSIVE_LOCK_KEY] = lock

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            lock = item.stash.get(INTRUSIVE_LOCK_KEY, None)
            if lock is not None:
                lock.release()

    def _wait_for_phase(self) -> str | None:
        """None once the phase is open; the reason if it was cancelled."""
        waiting = self.dir / f"waiting-{self.worker_id}"
        waiting.touch()
        try:
            while True:
                if self.opened.exists():
                    return None
                if self.cancelled.exists():
                    return self.cancelled.read_text() or "the run is stopping"
                time.sleep(POLL_SECONDS)
        finally:
            waiting.unlink(missing_ok=True)

    # --- controller (xdist): schedule in order, open the phase --------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        dist = config.getvalue("dist")
        if dist not in REORDERING_MODES:
            return None  # load keeps the order; each runs everything everywhere
        from xdist.scheduler import LoadScheduling

        return LoadScheduling(config, log)

    def pytest_report_header(self, config: pytest.Config) -> str:
        line = "vcci: intrusive checks run last, one at a time, after every read-only check"
        if config.pluginmanager.hasplugin("dsession") and config.getvalue("dist") in (
            REORDERING_MODES
        ):
            line += f" (scheduled with --dist load instead of --dist {config.getvalue('dist')})"
        return line

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        with self.lock:
            if self.collected is None:
                self.collected = list(ids)
            if self.config.getvalue("dist") == "each":
                self.copies = self.collections = self.collections + 1
        self._check()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_newgateway(self, gateway: Any) -> None:
        # From its start (a replacement for a crashed worker too): it will take work.
        with self.lock:
            self.live.add(gateway.id)
            self.last_event = time.monotonic()
        if self.guard is None:
            self.guard = threading.Thread(target=self._watch, name="vcci-intrusive", daemon=True)
            self.guard.start()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        with self.lock:
            self.live.discard(node.gateway.id)
            self.last_event = time.monotonic()
        self._check()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker_id is not None:
            return
        with self.lock:
            self.last_event = time.monotonic()
            if report.when in ("setup", "call"):
                return
            # "teardown" ends a test; xdist reports a test lost with a crashed worker as "???".
            self.finished[report.nodeid] += 1
        self._check()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.stop.set()
        if self.worker_id is None and not self.opened.exists():
            # The run is over (or stopping): no intrusive test may still be waiting for it.
            self._settle("the run ended before every read-only check had finished")

    def _pending_read_only(self) -> int | None:
        """How many read-only tests have not finished; None before the collection is known."""
        with self.lock:
            if self.collected is None:
                return None
            collected, finished, copies = self.collected, dict(self.finished), self.copies
        if self.intrusive is None:
            try:
                self.intrusive = frozenset(json.loads(self.plan.read_text())["intrusive"])
            except (FileNotFoundError, ValueError, KeyError):
                return None  # not written yet: nothing can be decided
        intrusive = self.intrusive
        return sum(1 for n in collected if n not in intrusive and finished.get(n, 0) < copies)

    def _check(self) -> None:
        if self.opened.exists() or self.cancelled.exists():
            return
        pending = self._pending_read_only()
        if pending == 0:
            self._write(self.opened, "")

    def _watch(self) -> None:
        """Cancel the phase if every live worker waits for read-only tests none can run (and
        nothing has happened for a while: a crashed worker's replacement may be on its way)."""
        while not self.stop.wait(POLL_SECONDS * 2):
            if self.opened.exists() or self.cancelled.exists():
                return
            waiting = {p.name.removeprefix("waiting-") for p in self.dir.glob("waiting-*")}
            with self.lock:
                quiet = time.monotonic() - self.last_event >= STUCK_SECONDS
                stuck = quiet and bool(self.live) and self.live <= waiting
            pending = self._pending_read_only()
            if stuck and pending:
                self._settle(
                    f"{pending} read-only check(s) had not finished when every worker was "
                    "waiting to start the intrusive phase (a worker crashed, or the run stopped)"
                )
                return

    def _settle(self, reason: str) -> None:
        if not self.opened.exists() and not self.cancelled.exists():
            self._write(self.cancelled, reason)
