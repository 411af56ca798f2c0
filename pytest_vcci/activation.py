"""Turning the plugin on for a run: settings, sandbox, run context, reports, hooks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.attestations import Attestations, load_attestations
from pytest_vcci.checklist import load_catalog
from pytest_vcci.checklist.marker import parse_patterns, parse_sections, selected_ids
from pytest_vcci.context import (
    ATTESTATIONS_KEY,
    CONTEXT_KEY,
    HTML_PARTIAL,
    LATE_HTML_KEY,
    LOG_REDACTION_KEY,
    RUN_ACTIVE,
    SANDBOX_KEY,
    SIGN_KEY,
    SIGNALS_KEY,
    WAIVERS_KEY,
    RunContext,
    report_dir,
)
from pytest_vcci.evidence.log_redaction import LogRedaction
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.intrusive import IntrusivePhase
from pytest_vcci.report import html_hooks
from pytest_vcci.report.manifest import SigningError, load_private_key
from pytest_vcci.report.write import writable_dir_problem
from pytest_vcci.session import VcciSession
from pytest_vcci.settings import Settings, SettingsError, find_environment_file, load_settings
from pytest_vcci.signals import SignalGuard
from pytest_vcci.targets.kubernetes import check_configuration as check_kubernetes
from pytest_vcci.waivers import Waivers, load_waivers

GATES = ("critical", "high", "medium", "low")


def activate(
    config: pytest.Config, run: dict[str, str], session: pytest.Session | None = None
) -> None:
    """Load and validate everything the run needs; usage errors become exit status 4.

    Everything a user can get wrong is checked here, before the first test and before
    anything is written, so a usage error is one line and leaves the report directory as it
    was. The cheap checks come first: the sandbox takes half a minute to start."""
    if CONTEXT_KEY in config.stash:
        return
    is_worker = hasattr(config, "workerinput")
    guard = SignalGuard()
    guard.install()  # before the sandbox starts: a SIGTERM then still stops it cleanly
    config.stash[SIGNALS_KEY] = guard
    try:
        gate = _gate(config)
        selection = _selection(config)
        if not is_worker:
            _check_directories(config)
        if config.getoption("vcci_sandbox") and not is_worker:
            run["vcci_sandbox_env"] = str(_start_sandbox(config, Path(run["vcci_run_dir"])))
        settings = load_settings(_settings_path(config, run), config.getoption("vcci_set"))
        check_kubernetes(settings)  # what the file cannot show: no credential, not in a pod
        attestations = _load_attestations(config, settings)
        waivers = _load_waivers(config, settings)
        sign_key = None if is_worker else _load_sign_key(config)
        run_dir = _make_run_dir(Path(run["vcci_run_dir"]))
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    context = RunContext(
        settings=settings,
        redactor=Redactor(settings.secrets(), settings.usernames()),
        run_id=run["vcci_run_id"],
        run_dir=run_dir,
        strict=bool(config.getoption("vcci_strict")),
        allow_intrusive=bool(config.getoption("vcci_allow_intrusive")),
    )
    config.stash[CONTEXT_KEY] = context
    config.stash[ATTESTATIONS_KEY] = attestations
    config.stash[WAIVERS_KEY] = waivers
    if sign_key is not None:
        config.stash[SIGN_KEY] = sign_key
    config.stash[RUN_ACTIVE] = True
    # Before anything reaches a target: from here on no log record carries a known secret.
    logs = config.stash[LOG_REDACTION_KEY] = LogRedaction(context.redactor)
    logs.install()
    if not is_worker:
        config.pluginmanager.register(guard, "vcci-signals")
    _register(config, context, session, gate, selection)


def _gate(config: pytest.Config) -> str:
    given = config.getoption("vcci_gate")
    gate = str(given or config.getini("vcci_gate") or "high").strip()
    if gate not in GATES:
        source = "--vcci-gate" if given else "ini vcci_gate"
        raise SettingsError(source, "", f"{gate!r} is not one of {', '.join(GATES)}")
    return gate


def _selection(config: pytest.Config) -> set[str] | None:
    """The checklist IDs --checklist and --checklist-section choose (None: no selection)."""
    patterns = parse_patterns(config.getoption("vcci_checklist") or [])
    sections = parse_sections(config.getoption("vcci_checklist_section") or [])
    if not patterns and not sections:
        return None
    return selected_ids(load_catalog(), patterns, sections)


def _check_directories(config: pytest.Config) -> None:
    """The report directory (and --vcci-history) must take files: found now, not after the
    last test."""
    given = config.getoption("vcci_report_dir")
    out = report_dir(config)
    problem = writable_dir_problem(out)
    if problem is not None:
        source = "--vcci-report-dir" if given else "ini vcci_report_dir"
        raise SettingsError(source, str(out), problem)
    history = config.getoption("vcci_history")
    if history:
        path = Path(history)
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        problem = writable_dir_problem(path)
        if problem is not None:
            raise SettingsError("--vcci-history", str(path), problem)


def _make_run_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            "run directory", str(path), f"cannot be created: {exc.strerror} (set TMPDIR)"
        ) from None
    return path


def _settings_path(config: pytest.Config, run: dict[str, str]) -> Path | None:
    if run.get("vcci_sandbox_env"):
        return Path(run["vcci_sandbox_env"])
    path = config.getoption("vcci_config") or config.getini("vcci_config")
    if path:
        return _from_root(config, path) if not config.getoption("vcci_config") else Path(path)
    name = config.getoption("vcci_env") or config.getini("vcci_env")
    if name:
        return find_environment_file(
            name, _from_root(config, config.getini("vcci_environments_dir"))
        )
    return None


def _from_root(config: pytest.Config, value: str) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return config.rootpath / path


def _load_attestations(config: pytest.Config, settings: Settings) -> Attestations:
    given = config.getoption("vcci_attestations")
    path = Path(given) if given else None
    if path is None and settings.environment.attestations:
        path = settings.resolve_path(settings.environment.attestations)
    return load_attestations(path, set(load_catalog().ids))


def _load_waivers(config: pytest.Config, settings: Settings) -> Waivers:
    raw = str(config.getini("vcci_waiver_max_days")).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(
            "ini", "vcci_waiver_max_days", f"expected a whole number of days >= 1, got {raw!r}"
        )
    given = config.getoption("vcci_waivers")
    path = Path(given) if given else None
    if path is None and settings.environment.waivers:
        path = settings.resolve_path(settings.environment.waivers)
    return load_waivers(path, set(load_catalog().ids), int(raw))


def _load_sign_key(config: pytest.Config) -> Any:
    given = config.getoption("vcci_sign_key")
    if not given:
        return None
    try:
        return load_private_key(Path(given))
    except SigningError as exc:
        raise SettingsError("--vcci-sign-key", given, str(exc)) from None


def _register(
    config: pytest.Config,
    context: RunContext,
    session: pytest.Session | None,
    gate: str,
    selection: set[str] | None,
) -> None:
    out = report_dir(config)
    vcci = VcciSession(config, context, out, gate, selection)
    config.pluginmanager.register(vcci, "vcci-session")
    if context.allow_intrusive:
        config.pluginmanager.register(IntrusivePhase(config, context), "vcci-intrusive-phase")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(html_hooks, "vcci-html-hooks")
    if not hasattr(config, "workerinput"):
        _enable_html(config, context.run_dir, session)
    if session is not None:
        # Activated during collection: this hook call already started without us.
        vcci.pytest_collection_modifyitems(config, session.items)


def _enable_html(config: pytest.Config, run_dir: Path, session: pytest.Session | None) -> None:
    """Have pytest-html write a self-contained report into the run directory; it becomes
    report.html with the other reports, all moved into place together."""
    if not config.pluginmanager.hasplugin("html"):
        return
    if config.getoption("htmlpath", None):
        if session is not None:
            _add_columns_to_started_html(config)
        return
    config.option.htmlpath = str(run_dir / HTML_PARTIAL)
    config.option.self_contained_html = True
    if session is not None:
        # pytest-html set itself up in pytest_configure, before we knew; set it up now.
        # pytest-html's report classes, needed only when it must be started late.
        from pytest_html.plugin import _process_css, _read_template
        from pytest_html.report_data import ReportData
        from pytest_html.selfcontained_report import SelfContainedReport

        resources = Path(str(__import__("pytest_html").__file__)).parent / "resources"
        html = SelfContainedReport(
            config.option.htmlpath,
            config,
            ReportData(config),
            _read_template([resources]),
            _process_css(resources / "style.css", []),
        )
        config.pluginmanager.register(html, "html-report")
        html.pytest_sessionstart(session)
        config.stash[LATE_HTML_KEY] = html


def _add_columns_to_started_html(config: pytest.Config) -> None:
    """The user's own --html report built its table header at session start, before our
    Checklist column existed; add it there so the header matches the rows."""
    for plugin in config.pluginmanager.get_plugins():
        data: Any = getattr(plugin, "_report", None)
        if type(plugin).__module__.startswith("pytest_html") and hasattr(data, "table_header"):
            html_hooks.pytest_html_results_table_header(cells=data.table_header)


def replay(config: pytest.Config, reports: list[pytest.TestReport]) -> None:
    """Give reports seen before a late activation to the parts registered since."""
    receivers = [
        config.pluginmanager.get_plugin("vcci-session"),
        config.stash.get(LATE_HTML_KEY, None),
    ]
    for report in reports:
        for receiver in receivers:
            if receiver is not None:
                receiver.pytest_runtest_logreport(report=report)


def _start_sandbox(config: pytest.Config, run_dir: Path) -> Path:
    # The sandbox's modules (moto, servers) load only in runs that start it.
    from pytest_vcci.sandbox import Sandbox, SandboxError

    sandbox = Sandbox(run_dir / "sandbox")
    config.stash[SANDBOX_KEY] = sandbox
    try:
        env_file = sandbox.up()  # stops whatever started if any part fails
    except SandboxError as exc:
        raise pytest.UsageError(f"--vcci-sandbox: the sandbox could not start: {exc}") from None

    os.environ.update(sandbox.env_vars())
    return env_file


def deactivate(config: pytest.Config) -> None:
    logs = config.stash.get(LOG_REDACTION_KEY, None)
    if logs is not None:
        logs.uninstall()
    sandbox = config.stash.get(SANDBOX_KEY, None)
    if sandbox is not None:
        sandbox.down()
