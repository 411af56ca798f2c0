"""pytest-vcci entry point: options, ini keys, markers, fixtures, and registering the parts.

Inert unless asked: when no ``--vcci-*``/``--checklist*`` option (or ini key) is given and no
collected test carries the checklist marker, nothing here changes the run.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist.marker import MARKER, MARKER_HELP
from pytest_vcci.checklist.smoke import SMOKE, SMOKE_HELP
from pytest_vcci.context import EVIDENCE_KEY, RUN_ACTIVE, RUN_KEY, SANDBOX_KEY, SIGNALS_KEY

TARGET_MODULES = ("kubernetes", "postgres", "redis", "aws", "api", "tls", "monitoring", "host")
ACTIVATING_OPTIONS = (
    "vcci_env",
    "vcci_config",
    "vcci_set",
    "vcci_report_dir",
    "vcci_gate",
    "vcci_strict",
    "vcci_attestations",
    "vcci_waivers",
    "vcci_sign_key",
    "vcci_history",
    "vcci_allow_intrusive",
    "vcci_sandbox",
    "vcci_checklist",
    "vcci_checklist_section",
    "vcci_suites",
    "vcci_smoke",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vcci", "GL-VCCI production readiness checklist (pytest-vcci)")
    group.addoption(
        "--vcci-env", metavar="NAME", help="environment to check: reads environments/NAME.toml"
    )
    group.addoption("--vcci-config", metavar="PATH", help="environment file to read (TOML)")
    group.addoption(
        "--vcci-set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override one environment-file key, e.g. postgres.dsn=... (repeatable)",
    )
    group.addoption(
        "--vcci-report-dir",
        metavar="DIR",
        help="where to write evidence.json, report.html, checklist.html, junit.xml "
        "(default: ini vcci_report_dir, else reports/)",
    )
    group.addoption(
        "--vcci-gate",
        metavar="SEVERITY",
        help="lowest severity whose failure blocks the release (exit 1): "
        "critical|high|medium|low (default: high)",
    )
    group.addoption(
        "--vcci-strict",
        action="store_true",
        default=None,
        help="unconfigured targets fail instead of skip; uncovered items block",
    )
    group.addoption(
        "--vcci-attestations",
        metavar="PATH",
        help="attestations file (TOML); default: [environment].attestations",
    )
    group.addoption(
        "--vcci-waivers",
        metavar="PATH",
        help="waivers file (TOML): accepted risks per item; default: [environment].waivers",
    )
    group.addoption(
        "--vcci-sign-key",
        metavar="PATH",
        help="Ed25519 private key (PEM) to sign the report directory's manifest.json",
    )
    group.addoption(
        "--vcci-history",
        metavar="DIR",
        help="keep each run in DIR/<environment>/<UTC timestamp>/ (with a 'latest' pointer); "
        "checklist.html shows each item's recent statuses",
    )
    group.addoption(
        "--vcci-allow-intrusive",
        action="store_true",
        default=None,
        help="also run checks marked intrusive (bounded load, test-tenant writes)",
    )
    group.addoption(
        "--vcci-sandbox",
        action="store_true",
        default=None,
        help="start the embedded local staging, check it, and tear it down",
    )
    group.addoption(
        "--checklist",
        dest="vcci_checklist",
        action="append",
        metavar="PATTERNS",
        help="run only tests of these checklist IDs, e.g. 3.2.*,1.1.1",
    )
    group.addoption(
        "--checklist-section",
        dest="vcci_checklist_section",
        action="append",
        metavar="N",
        help="run only tests of checklist section N",
    )
    group.addoption(
        "--vcci-suites",
        action="store_true",
        default=None,
        help="also collect the readiness suites shipped with pytest-vcci (the whole checklist); "
        "without path arguments, only them",
    )
    group.addoption(
        "--vcci-smoke",
        action="store_true",
        default=None,
        help="run only the quick validation's checks (tests marked smoke), as -m smoke",
    )
    parser.addini("vcci_env", "default environment name (as --vcci-env)")
    parser.addini("vcci_config", "default environment file (as --vcci-config)")
    parser.addini(
        "vcci_environments_dir", "where --vcci-env looks for NAME.toml", default="environments"
    )
    parser.addini("vcci_report_dir", "default report directory", default="reports")
    parser.addini("vcci_gate", "default gate severity", default="high")
    parser.addini(
        "vcci_waiver_max_days",
        "longest a waiver may last, in days from approved_on to expires_on",
        default="90",
    )


def requested(config: pytest.Config) -> bool:
    if any(config.getoption(name) for name in ACTIVATING_OPTIONS):
        return True
    return bool(config.getini("vcci_env") or config.getini("vcci_config"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}{MARKER_HELP.removeprefix(MARKER)}")
    config.addinivalue_line(
        "markers",
        "intrusive: the check sends load or writes test data; "
        "runs only with --vcci-allow-intrusive",
    )
    config.addinivalue_line("markers", SMOKE_HELP)
    if config.getoption("vcci_suites"):
        _collect_packaged_suites(config)
    if config.getoption("vcci_smoke"):
        # Exactly -m smoke (and-ed with any -m given): pytest's own selection, reported as
        # deselected the usual way.
        given = config.option.markexpr
        config.option.markexpr = f"({given}) and {SMOKE}" if given else SMOKE
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput and "vcci_run_id" in workerinput:
        config.stash[RUN_KEY] = {k: workerinput[k] for k in workerinput if k.startswith("vcci_")}
    else:
        run_id = uuid.uuid4().hex[:12]
        run_dir = Path(tempfile.gettempdir()) / f"pytest-vcci-{run_id}"
        config.stash[RUN_KEY] = {"vcci_run_id": run_id, "vcci_run_dir": str(run_dir)}
    for name in TARGET_MODULES:
        # Target modules import only pytest at load; their client libraries load on first use.
        try:
            module = importlib.import_module(f"pytest_vcci.targets.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pytest_vcci.targets.{name}":
                raise
            continue
        config.pluginmanager.register(module, f"vcci-target-{name}")
    if requested(config):
        from pytest_vcci.activation import activate

        activate(config, config.stash[RUN_KEY])
    else:
        config.pluginmanager.register(MarkerWatch(config), "vcci-marker-watch")


def _collect_packaged_suites(config: pytest.Config) -> None:
    """Add the packaged suites to what this run collects. Paths given on the command line run
    alongside them; with none, the suites replace the default (the current directory or
    testpaths), so an unrelated project's tests never join a readiness run."""
    from pytest_vcci.checklist.locate import suite_directories

    found = suite_directories()
    if not found:
        raise pytest.UsageError(
            "--vcci-suites: the readiness suites are not installed "
            "(expected the package pytest_vcci.suites); reinstall pytest-vcci"
        )
    suites = str(found[0])
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [suites]
    elif not any(Path(arg).resolve() == found[0] for arg in config.args):
        config.args.append(suites)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: workers share the run id, run directory and sandbox."""
    node.workerinput.update(node.config.stash[RUN_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(RUN_ACTIVE, False) or SANDBOX_KEY in config.stash:
        from pytest_vcci.activation import deactivate

        deactivate(config)
    if not hasattr(config, "workerinput") and RUN_KEY in config.stash:
        shutil.rmtree(config.stash[RUN_KEY]["vcci_run_dir"], ignore_errors=True)
    if SIGNALS_KEY in config.stash:
        # Held until now: a signal during teardown must not leave servers or files behind.
        config.stash[SIGNALS_KEY].restore()


class MarkerWatch:
    """Activates the plugin late when a run names no option but collects checklist tests.

    Without xdist that shows at collection. An xdist controller collects nothing itself: it
    learns from the first test report a worker marked as a checklist test, and replays the
    reports it saw before that, so no result is lost.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: pytest.Session | None = None
        # Reports are kept only until this process's collection shows whether it must act.
        self.seen: list[pytest.TestReport] | None = []

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        self.seen = None
        if any(item.get_closest_marker(MARKER) for item in items):
            from pytest_vcci.activation import activate

            activate(self.config, self.config.stash[RUN_KEY], session=session)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.seen is None or self.config.stash.get(RUN_ACTIVE, False):
            return
        self.seen.append(report)
        if getattr(report, "vcci", None) is not None:
            from pytest_vcci.activation import activate, replay

            activate(self.config, self.config.stash[RUN_KEY], session=self.session)
            replay(self.config, self.seen)
            self.seen = None


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, Any, Any]:
    """An unknown or malformed checklist ID is a collection error naming file and line."""
    result = yield
    produced = result if isinstance(result, list) else [result]
    for item in produced:
        if isinstance(item, pytest.Item) and item.get_closest_marker(MARKER):
            from pytest_vcci.checklist import load_catalog
            from pytest_vcci.checklist.marker import marker_problem, where

            problem = marker_problem(item, load_catalog())
            if problem:
                raise collector.CollectError(f"{where(item)}: {item.name}: {problem}")
    return result


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vcci_context(request: pytest.FixtureRequest) -> Any:
    """The run's RunContext: settings, redactor, shared run directory, target gate."""
    from pytest_vcci.context import get_context

    return get_context(request.config)


@pytest.fixture(scope="session")
def vcci_collected(request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Checklist ID -> node IDs of the tests this run selected for it (12.2.2: is the report
    complete?). Every xdist worker collects the whole session, so each sees the full set."""
    from pytest_vcci.checklist.marker import marker_ids

    collected: dict[str, list[str]] = {}
    for item in request.session.items:
        for item_id in marker_ids(item):
            collected.setdefault(item_id, []).append(item.nodeid)
    return collected


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Any:
    """Record observations (name, observed, expected, passed) and small artefacts."""
    from pytest_vcci.context import CONTEXT_KEY
    from pytest_vcci.evidence.recorder import Evidence
    from pytest_vcci.evidence.redaction import Redactor

    context = request.config.stash.get(CONTEXT_KEY, None)
    recorder = (
        Evidence(context.redactor, strict=context.strict) if context else Evidence(Redactor())
    )
    request.node.stash[EVIDENCE_KEY] = recorder
    return recorder


@pytest.fixture
def attest(request: pytest.FixtureRequest, evidence: Any) -> Callable[[str], Any]:
    """``attest("10.2.1")``: pass only on a valid attestation record for the item."""
    from pytest_vcci.context import attestations_for

    records = attestations_for(request.config)

    def check(item_id: str) -> Any:
        verdict = records.check(item_id)
        if verdict.record is not None:
            evidence.record(
                "attestation",
                verdict.record.describe(),
                "a valid, unexpired record",
                passed=verdict.valid,
                where=records.source,
            )
        if not verdict.valid:
            pytest.fail(str(verdict.problem), pytrace=False)
        record = verdict.record.model_dump(mode="json")  # type: ignore[union-attr]
        evidence.attestations.append(record)
        return verdict.record

    return check
