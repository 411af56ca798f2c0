"""The run's shared state, kept in ``config.stash`` (never in module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.settings import Settings, TargetNotConfigured

if TYPE_CHECKING:
    from pytest_vcci.targets.base import TargetGate


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
        from pytest_vcci.targets.base import TargetGate

        if "gate" not in self.extras:
            self.extras["gate"] = TargetGate(self.run_dir / "targets")
        gate: TargetGate = self.extras["gate"]
        return gate

    def target_table(self, name: str) -> Any:
        """The target's settings table; skip (or fail under --vcci-strict) when absent."""
        try:
            return self.settings.require(name)
        except TargetNotConfigured as exc:
            reason = f"{exc} (target not configured)"
            if self.strict:
                pytest.fail(f"{reason}; --vcci-strict makes this a failure", pytrace=False)
            pytest.skip(reason)


CONTEXT_KEY = pytest.StashKey[RunContext]()


def get_context(config: pytest.Config) -> RunContext:
    try:
        return config.stash[CONTEXT_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-vcci is not active in this run: pass --vcci-env, --vcci-config or --vcci-sandbox"
        ) from None
