"""The run's shared state: every stash key, the RunContext, and the accessors over them.

Everything a run keeps lives in ``config.stash`` (never in module globals) under the keys
below. This module sits at the bottom of the plugin's import graph: at load it imports only
pytest, the evidence recorder and the signal guard (plugin.py imports it in every pytest run,
so it stays light), and nothing of plugin, activation or session, so any module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vcci.evidence.recorder import Evidence
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.signals import SignalGuard

if TYPE_CHECKING:
    from pytest_vcci.attestations import Attestations
    from pytest_vcci.settings import Settings
    from pytest_vcci.targets.base import TargetGate
    from pytest_vcci.waivers import Waivers


@dataclass
class RunContext:
    """What every fixture and hook of one run shares; one per process (controller or worker)."""

    settings: Settings
    redactor: Redactor
    run_id: str
    run_dir: Path  # shared by the controller and all xdist workers of this run
    strict: bool = False
    allow_intrusive: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def gate(self) -> TargetGate:
        # targets.base loads filelock machinery; only runs that reach a target need it.
        from pytest_vcci.targets.base import TargetGate

        if "gate" not in self.extras:
            self.extras["gate"] = TargetGate(self.run_dir / "targets", self.redactor)
        gate: TargetGate = self.extras["gate"]
        return gate

    def target_table(self, name: str) -> Any:
        """The target's settings table; skip (or fail under --vcci-strict) when absent."""
        # settings (pydantic) is loaded by now; imported here to keep this module light.
        from pytest_vcci.settings import TargetNotConfigured

        try:
            return self.settings.require(name)
        except TargetNotConfigured as exc:
            reason = f"{exc} (target not configured)"
            if self.strict:
                pytest.fail(f"{reason}; --vcci-strict makes this a failure", pytrace=False)
            pytest.skip(reason)


# --- stash keys -------------------------------------------------------------------------

#: Run id and shared run directory, handed by the xdist controller to its workers.
RUN_KEY = pytest.StashKey[dict[str, str]]()
#: True once the plugin is active in this process (it then deactivates at unconfigure).
RUN_ACTIVE = pytest.StashKey[bool]()
CONTEXT_KEY = pytest.StashKey[RunContext]()
ATTESTATIONS_KEY = pytest.StashKey["Attestations"]()
WAIVERS_KEY = pytest.StashKey["Waivers"]()
SIGN_KEY = pytest.StashKey[Any]()  # the Ed25519 private key of --vcci-sign-key
SANDBOX_KEY = pytest.StashKey[Any]()  # the Sandbox that --vcci-sandbox started
LATE_HTML_KEY = pytest.StashKey[Any]()  # pytest-html's report when activated late
#: The run's log record redaction (installed at activation, removed at deactivation).
LOG_REDACTION_KEY = pytest.StashKey[Any]()
SIGNALS_KEY = pytest.StashKey[SignalGuard]()  # SIGTERM/SIGINT handling of an active run
#: On an item: the test's evidence recorder.
EVIDENCE_KEY = pytest.StashKey[Evidence]()
#: On an intrusive item under xdist: the run-wide lock it holds while it runs.
INTRUSIVE_LOCK_KEY = pytest.StashKey[Any]()

#: pytest-html writes here, in the run directory (never in the report directory, so a failed
#: or interrupted run leaves nothing half-written there); the controller redacts it and
#: stages it as report.html.
HTML_PARTIAL = "report.html.partial"


# --- accessors --------------------------------------------------------------------------


def get_context(config: pytest.Config) -> RunContext:
    try:
        return config.stash[CONTEXT_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-vcci is not active in this run: pass --vcci-env, --vcci-config or --vcci-sandbox"
        ) from None


def attestations_for(config: pytest.Config) -> Attestations:
    try:
        return config.stash[ATTESTATIONS_KEY]
    except KeyError:
        from pytest_vcci.attestations import Attestations  # pydantic: only when asked

        return Attestations([], "<pytest-vcci not active>")


def waivers_for(config: pytest.Config) -> Waivers:
    try:
        return config.stash[WAIVERS_KEY]
    except KeyError:
        from pytest_vcci.waivers import Waivers  # pydantic: only when asked

        return Waivers([], "<pytest-vcci not active>")


def report_dir(config: pytest.Config) -> Path:
    value = config.getoption("vcci_report_dir") or config.getini("vcci_report_dir") or "reports"
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path
