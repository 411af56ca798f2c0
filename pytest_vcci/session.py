"""The stateful part of the plugin: one ``VcciSession`` per process, registered by plugin.py.

It validates and selects checklist-marked tests, carries evidence on test reports (so it survives
xdist), and on the controller builds the result model, applies the gate and writes the reports.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci import __version__
from pytest_vcci.checklist import load_catalog
from pytest_vcci.checklist.controls import FRAMEWORKS, load_controls
from pytest_vcci.checklist.marker import marker_ids
from pytest_vcci.checklist.smoke import smoke_check
from pytest_vcci.context import (
    EVIDENCE_KEY,
    HTML_PARTIAL,
    LOG_REDACTION_KEY,
    SANDBOX_KEY,
    SIGN_KEY,
    SIGNALS_KEY,
    RunContext,
    waivers_for,
)
from pytest_vcci.evidence.recorder import Evidence, utc_now
from pytest_vcci.gate import decide
from pytest_vcci.history import history_table, past_runs, record_run
from pytest_vcci.report import (
    checklist_html,
    controls_html,
    evidence_json,
    junit,
    manifest,
    oscal,
)
from pytest_vcci.report.controls import build_controls, page_name
from pytest_vcci.report.html_hooks import observations_extra
from pytest_vcci.report.model import TestRecord, build_items, section_table
from pytest_vcci.report.terminal import summary_lines
from pytest_vcci.report.write import Bundle, ReportWriteError
from pytest_vcci.targets.base import ReadOnlyViolation, TargetError, Unobservable
from pytest_vcci.targets.preflight import preflight

_STOPPED = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
#: The exit status of a run whose reports could not be written: its evidence is lost, so it
#: must neither pass (0) nor look like an ordinary blocked release (1).
REPORTS_NOT_WRITTEN = 6


class VcciSession:
    """Hooks of an active run. On xdist workers only the per-test hooks matter."""

    def __init__(
        self,
        config: pytest.Config,
        context: RunContext,
        report_dir: Path,
        gate: str,
        selection: set[str] | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self.report_dir = report_dir
        self.gate = gate
        self.selection = selection  # checklist IDs chosen by --checklist*, None: all
        self.is_worker = hasattr(config, "workerinput")
        self.started_at = utc_now()
        self.tests: dict[str, TestRecord] = {}
        self.interrupted = False
        self.targets: dict[str, dict[str, Any]] = {}
        self.result: dict[str, Any] | None = None
        self.recorded: Path | None = None  # this run's copy under --vcci-history
        self.write_error: ReportWriteError | None = None
        self.html_error: str | None = None
        self.history_error: str | None = None
        self.signals_seen = 0  # held signals already counted as interrupting the run

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        settings = self.context.settings
        lines = [
            f"vcci: environment {settings.name} ({settings.source}), gate {self.gate}, "
            f"reports in {self.report_dir}"
        ]
        sandbox = config.stash.get(SANDBOX_KEY, None)
        if sandbox is not None:
            parts = ", ".join(f"{k} {v}s" for k, v in sandbox.timings.items() if k != "total")
            lines.append(f"vcci: sandbox up in {sandbox.timings.get('total')}s ({parts})")
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._guard_log_handlers()  # live logging and --log-file are attached by now
        # Before xdist starts its workers: they find every target's state waiting.
        if self.is_worker or self.config.option.collectonly:
            return
        # A signal now waits until the probes are done (signals.py): they are bounded by their
        # timeouts, and their outcomes belong in the reports of a stopped run too.
        self.targets = preflight(self.context)

    # --- collection -------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if self.selection is None:
            return
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            (keep if self.selection.intersection(marker_ids(item)) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def _guard_log_handlers(self) -> None:
        logs = self.config.stash.get(LOG_REDACTION_KEY, None)
        if logs is not None:
            logs.guard_root()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Inside pytest's logging capture: its caplog and report handlers are attached now.
        self._guard_log_handlers()
        if item.get_closest_marker("intrusive") and not self.context.allow_intrusive:
            pytest.skip(
                "intrusive check (sends load or writes test data): "
                "run with --vcci-allow-intrusive to include it"
            )

    # --- nothing unredacted reaches a report or the console ---------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        _redact_report(self.config, report, self.context.redactor)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any) -> None:
        """Before the terminal reporter (or xdist) keeps the warning's text."""
        text = str(warning_message.message)
        masked = self.context.redactor(text)
        if masked != text:
            try:
                warning_message.message = type(warning_message.message)(masked)
            except Exception:  # a category whose constructor takes other arguments
                warning_message.message = Warning(masked)

    # --- evidence on reports ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        result = yield
        evidence = item.stash.get(EVIDENCE_KEY, None)
        if evidence is not None and evidence.failures():
            pytest.fail(evidence.failure_message(), pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and call.excinfo is not None and call.excinfo.errisinstance(TargetError):
            # A target that is down or a permission the run lacks: one line per test, not the
            # fixture's traceback (the root cause is said once, in the summary).
            report.longrepr = call.excinfo.getrepr(style="value", chain=False)
        redact = self.context.redactor
        if call.excinfo is not None and isinstance(
            call.excinfo.value, (Unobservable, ReadOnlyViolation)
        ):
            _as_observation(item, report, call.excinfo.value, redact)
        # Every report of an active run, checklist test or not: any test can reach the secrets.
        _redact_report(self.config, report, redact)
        ids = marker_ids(item)
        if not ids and EVIDENCE_KEY not in item.stash:
            return report
        payload: dict[str, Any] = {"checklist": ids, "message": _message(report, call, redact)}
        if item.get_closest_marker("intrusive"):
            payload["intrusive"] = True
        smoke = smoke_check(item)
        if smoke is not None:
            payload["smoke"] = {"category": smoke.category, "check": smoke.check}
        evidence = item.stash.get(EVIDENCE_KEY, None)
        if evidence is not None and (report.when == "call" or report.failed or report.skipped):
            payload.update(evidence.payload())
            evidence.observations, evidence.attachments, evidence.attestations = [], [], []
        report.vcci = payload  # type: ignore[attr-defined]
        if payload.get("observations") and self.config.pluginmanager.hasplugin("html"):
            report.extras = [*getattr(report, "extras", []), observations_extra(payload)]  # type: ignore[attr-defined]
        return report

    # --- controller: results, gate, reports ------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        record = self.tests.get(report.nodeid)
        if record is None:
            record = self.tests[report.nodeid] = TestRecord(report.nodeid)
        record.add(report)

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int
    ) -> Generator[None, None, None]:
        # The innermost wrapper: after every plain sessionfinish (pytest-html writes there)
        # and before the terminal reporter's wrapper prints the summary.
        try:
            result = yield
        except OSError as exc:
            if not self._html_is_ours():
                raise
            # pytest-html could not write report.html: the other reports still can be.
            self.html_error = exc.strerror or str(exc)
            result = None
        if self.is_worker or exitstatus == pytest.ExitCode.USAGE_ERROR:
            return result  # a usage error writes nothing: the previous reports stay as they are
        # A run that stopped early (interrupt, internal error, a signal while finishing) has no
        # verdict to give.
        interrupted = self.interrupted or exitstatus in _STOPPED or bool(self._held())
        self.signals_seen = len(self._held())
        self.result = self.build_result(int(session.exitstatus), interrupted)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = self.result["run"]["exit_status"]
        else:
            self.result["run"]["exit_status"] = int(session.exitstatus)
        self.write_reports(session)
        return result

    def _held(self) -> list[str]:
        guard = self.config.stash.get(SIGNALS_KEY, None)
        return guard.held if guard is not None else []

    def _html_is_ours(self) -> bool:
        """pytest-html writes report.html for us (not to a path the user chose with --html)."""
        path = getattr(self.config.option, "htmlpath", None)
        return path is not None and Path(path) == self.context.run_dir / HTML_PARTIAL

    def build_result(self, exitstatus: int, interrupted: bool) -> dict[str, Any]:
        catalog = load_catalog()
        if interrupted:
            for test in self.tests.values():
                test.interrupted()
        items = build_items(catalog, self.tests, strict=self.context.strict)
        tests = {t.nodeid: t.to_dict() for t in self.tests.values()}
        for item in items:
            item["tests"] = [tests[nodeid] for nodeid in item["tests"]]
        waivers = waivers_for(self.config)
        waived = waivers.apply(items)
        stray = sum(
            1 for t in self.tests.values() if not t.checklist and t.outcome in ("failed", "error")
        )
        verdict = decide(
            items,
            self.gate,
            strict=self.context.strict,
            interrupted=interrupted,
            stray_failures=stray,
        )
        run = self.run_info()
        run.update(
            verdict=verdict.verdict,
            exit_status=verdict.exit_status,
            blocking=verdict.blocking,
            warnings=verdict.warnings,
            waived=waived.applied,
            waiver_warnings=waived.warnings,
            stale_waivers=waived.stale,
            waivers={"source": waivers.source, "count": len(waivers), "max_days": waivers.max_days},
        )
        if interrupted:
            run["exit_status"] = int(pytest.ExitCode.INTERRUPTED)
        result = {
            "run": run,
            "sections": section_table(items),
            "items": items,
            "controls": build_controls(items, load_controls()),
            "tests": list(tests.values()),
        }
        history = self.history_dir()
        if history is not None:
            result["history"] = history_table(past_runs(history, run["environment"]), run, items)
        return result

    def history_dir(self) -> Path | None:
        value = self.config.getoption("vcci_history")
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else Path(self.config.invocation_params.dir) / path

    def run_info(self) -> dict[str, Any]:
        workers = getattr(self.config.option, "numprocesses", None)
        settings = self.context.settings
        return {
            "id": self.context.run_id,
            "environment": settings.name,
            "environment_file": settings.source,
            "started_at": self.started_at,
            "finished_at": utc_now(),
            "tool": {"name": "pytest-vcci", "version": __version__},
            "user": _user(),
            "host": socket.gethostname(),
            "cwd": str(Path.cwd()),
            "python": sys.version.split()[0],
            "pytest": pytest.__version__,
            "command": self.context.redactor(" ".join(self.config.invocation_params.args)),
            "workers": workers if isinstance(workers, int) else 0,
            "gate": self.gate,
            "strict": self.context.strict,
            "targets": self.targets,
            "catalog": {
                "items": len(load_catalog()),
                "claimed_items": load_catalog().claimed_items,
            },
        }

    def write_reports(self, session: pytest.Session) -> None:
        """Stage every report, then move them all into place; on failure the previous
        reports stay and the exit status says the evidence is lost."""
        assert self.result is not None
        bundle = Bundle(self.report_dir, self.context.run_id)
        try:
            bundle.open()
            self._stage(bundle)
            if len(self._held()) > self.signals_seen:
                # Stopped while the reports were written: they say so.
                self.signals_seen = len(self._held())
                self.result = self.build_result(int(pytest.ExitCode.INTERRUPTED), True)
                session.exitstatus = pytest.ExitCode.INTERRUPTED
                self._stage(bundle)
            bundle.publish(order=(manifest.SIGNATURE, manifest.MANIFEST))
        except ReportWriteError as exc:
            self.write_error = exc
        finally:
            bundle.discard()
        if self.write_error is not None or self.html_error is not None:
            self.result["run"]["exit_status"] = REPORTS_NOT_WRITTEN
            session.exitstatus = REPORTS_NOT_WRITTEN
            self._forget_html_report()
        if self.write_error is not None:
            return
        if "report.html" in bundle.names:
            _point_html_report_at(self.config, self.report_dir / "report.html")
        self._record_history()

    def _stage(self, bundle: Bundle) -> None:
        assert self.result is not None
        self._stage_html(bundle)
        if self.html_error is not None:
            self.result["run"]["exit_status"] = REPORTS_NOT_WRITTEN  # the bundle says so too
        # Redact once more at the last moment: nothing leaves unredacted, whatever a check did.
        result = self.context.redactor.data(self.result)
        bundle.write("evidence.json", evidence_json.render(result))
        bundle.write("checklist.html", checklist_html.render(result))
        for framework in FRAMEWORKS:
            bundle.write(page_name(framework), controls_html.render(result, framework))
        bundle.write("junit.xml", junit.render(result))
        bundle.write(oscal.FILENAME, oscal.render(result, bundle.staging))
        # Last: the manifest covers every file staged above and those already there.
        history = self.history_dir()
        exclude = [history] if history is not None else []
        sign_key = self.config.stash.get(SIGN_KEY, None)
        manifest.stage_manifest(bundle, result["run"], sign_key, exclude)

    def _stage_html(self, bundle: Bundle) -> None:
        """pytest-html's report, redacted; without one, the previous run's report.html goes
        too (a bundle never mixes two runs). A report the user placed with --html is theirs."""
        if self.config.pluginmanager.hasplugin("html") and not self._html_is_ours():
            return
        partial = self.context.run_dir / HTML_PARTIAL
        if self.html_error is None and partial.is_file():
            try:
                text = partial.read_text(encoding="utf-8")
            except OSError as exc:
                self.html_error = exc.strerror or str(exc)
            else:
                bundle.write("report.html", self.context.redactor(text))
                return
        elif self.html_error is None and self._html_is_ours():
            self.html_error = "pytest-html wrote nothing"
        bundle.remove("report.html")

    def _forget_html_report(self) -> None:
        """pytest-html would announce a report that is not there."""
        for plugin in self.config.pluginmanager.get_plugins():
            if type(plugin).__module__.startswith("pytest_html") and hasattr(plugin, "_report"):
                self.config.pluginmanager.unregister(plugin)

    def _record_history(self) -> None:
        history = self.history_dir()
        if history is None or self.result is None:
            return
        try:
            self.recorded = record_run(history, self.result["run"], self.report_dir)
        except OSError as exc:
            where = exc.filename or history
            self.history_error = f"{where}: {exc.strerror or exc}"

    # --- terminal ---------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or self.result is None:
            return
        run = self.result["run"]
        terminalreporter.write_sep("=", "GL-VCCI readiness", bold=True)
        redact = self.context.redactor  # root causes come from the targets' own error texts
        for line in summary_lines(self.result):
            terminalreporter.write_line(redact(line))
        color = {"ready": "green", "ready_with_warnings": "yellow"}.get(run["verdict"], "red")
        terminalreporter.write_line("")
        terminalreporter.write_line(
            f"verdict: {run['verdict'].upper()} (gate {run['gate']}, exit status {run['exit_status']})",
            **{color: True, "bold": True},
        )
        for line, markup in self._outcome_lines():
            terminalreporter.write_line(redact(line), **markup)
        for line in _evidence_lines(run, self.recorded):
            terminalreporter.write_line(redact(line), yellow=line.startswith(("waiver", "stale")))

    def _outcome_lines(self) -> list[tuple[str, dict[str, bool]]]:
        """Where the reports are, or the one line saying why they are not there."""
        red, yellow = {"red": True, "bold": True}, {"yellow": True}
        if self.write_error is not None:
            return [
                (
                    f"reports NOT written: {self.write_error}; the previous reports in "
                    f"{self.report_dir} are unchanged (exit status {REPORTS_NOT_WRITTEN})",
                    red,
                )
            ]
        lines: list[tuple[str, dict[str, bool]]] = [
            (f"reports: {self.report_dir / 'checklist.html'}", {})
        ]
        if self.html_error is not None:
            lines.append(
                (
                    f"report.html NOT written: {self.html_error}; the other reports are "
                    f"(exit status {REPORTS_NOT_WRITTEN})",
                    red,
                )
            )
        if self.history_error is not None:
            lines.append((f"history NOT recorded: {self.history_error}", yellow))
        late = self._held()[self.signals_seen :]
        if late:
            lines.append((f"{late[0]} arrived after the reports were written; they stand", yellow))
        return lines


def _evidence_lines(run: dict[str, Any], recorded: Path | None) -> list[str]:
    """Waivers applied, ignored or stale; where the run was kept."""
    lines = [f"waived: {', '.join(run['waived'])}"] if run.get("waived") else []
    lines.extend(f"waiver warning: {w}" for w in run.get("waiver_warnings", []))
    lines.extend(f"stale waiver: {s['message']}" for s in run.get("stale_waivers", []))
    if recorded is not None:
        lines.append(f"history: {recorded}")
    return lines


def _as_observation(
    item: pytest.Item,
    report: pytest.TestReport,
    exc: Unobservable | ReadOnlyViolation,
    redact: Any,
) -> None:
    """What a check could not read (or was refused, being a write) becomes its failed
    observation, and the failure says so in one sentence with the test's other failures."""
    evidence = item.stash.get(EVIDENCE_KEY, None)
    if evidence is None:
        evidence = item.stash[EVIDENCE_KEY] = Evidence(redact)
    if isinstance(exc, Unobservable):
        evidence.unobservable(exc.what, exc.why, exc.expected, exc.where)
    else:
        refused = f"refused {exc.what} (pytest-vcci never changes what it checks)"
        evidence.record("read-only guard", refused, "reads only", False, where=exc.target)
    report.longrepr = evidence.failure_message()


def _message(report: pytest.TestReport, call: pytest.CallInfo[None], redact: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(redact(str(report.longrepr[2]).removeprefix("Skipped: ")))
    if call.excinfo is not None and isinstance(
        call.excinfo.value, (Unobservable, ReadOnlyViolation)
    ):
        return str(redact(report.longreprtext))
    if call.excinfo is not None and report.failed:
        text = str(call.excinfo.value).strip() or call.excinfo.typename
        return str(redact(text))[:2000]  # masked first: a cut must not split a secret
    return ""


def _redact_report(
    config: pytest.Config, report: pytest.TestReport | pytest.CollectReport, redact: Any
) -> None:
    if isinstance(report.longrepr, tuple):
        path, line, reason = report.longrepr
        report.longrepr = (path, line, redact(reason))
    elif report.longrepr is not None:
        text = report.longreprtext
        if redact(text) != text:
            report.longrepr = _redacted_longrepr(config, report, redact)
    report.sections = [(title, redact(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport):
        xfail = getattr(report, "wasxfail", None)  # an xfail's reason, printed by -rx
        if isinstance(xfail, str):
            report.wasxfail = redact(xfail)
        # record_property(): pytest's own --junitxml writes these.
        report.user_properties = [
            (redact(str(name)), redact(value) if isinstance(value, str) else value)
            for name, value in report.user_properties
        ]


def _redacted_longrepr(
    config: pytest.Config, report: pytest.TestReport | pytest.CollectReport, redact: Any
) -> Any:
    """The failure with secrets masked, keeping its structure: a plain string would make the
    short test summary show the first line of the traceback instead of the error."""
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    if isinstance(data, dict) and isinstance(data.get("longrepr"), dict):
        data["longrepr"] = redact.data(data["longrepr"])
        clean = config.hook.pytest_report_from_serializable(config=config, data=data)
        if clean is not None and redact(clean.longreprtext) == clean.longreprtext:
            return clean.longrepr
    return redact(report.longreprtext)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER", "unknown")


def _point_html_report_at(config: pytest.Config, path: Path) -> None:
    """pytest-html announces the file it wrote; announce where it now is."""
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__module__.startswith("pytest_html") and hasattr(plugin, "_report_path"):
            plugin._report_path = path
