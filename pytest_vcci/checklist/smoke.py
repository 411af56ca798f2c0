"""The quick validation: the ``@pytest.mark.smoke(category, check)`` marker and the seed's checks.

The readiness report's validation script names its checks by category: infrastructure (cluster,
namespace, deployments, pod health), database (connectivity, migrations, performance), cache
(Redis connectivity), API (health endpoints, authentication, performance), security (TLS
certificates, secrets configuration) and monitoring (Prometheus metrics). It says "16 checks", but
that list holds 4 + 3 + 1 + 3 + 2 + 1 = 14; the suites mark those 14, each on an existing test
that keeps its checklist ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

SMOKE = "smoke"
SMOKE_HELP = (
    "smoke(category, check): one of the quick validation's checks (vcci validate, "
    'pytest --vcci-smoke), e.g. smoke("database", "migrations at head")'
)
#: The readiness report's checks, in its order: (category, check).
SEED_CHECKS: tuple[tuple[str, str], ...] = (
    ("infrastructure", "cluster"),
    ("infrastructure", "namespace"),
    ("infrastructure", "deployments"),
    ("infrastructure", "pod health"),
    ("database", "connectivity"),
    ("database", "migrations at head"),
    ("database", "performance"),
    ("cache", "Redis connectivity"),
    ("api", "health endpoints"),
    ("api", "authentication"),
    ("api", "performance"),
    ("security", "TLS certificates"),
    ("security", "secrets configuration"),
    ("monitoring", "Prometheus metrics"),
)
#: What the readiness report claims (its own list holds 14).
SEED_CLAIMED_CHECKS = 16
_CATEGORIES = list(dict.fromkeys(category for category, _ in SEED_CHECKS))


@dataclass(frozen=True)
class SmokeCheck:
    category: str
    check: str

    @property
    def name(self) -> str:
        return f"{self.category}: {self.check}"


def smoke_check(item: pytest.Item) -> SmokeCheck | None:
    """The quick-validation check a test is, or None. A bare ``@pytest.mark.smoke`` (a user's
    own check) files under category "other", named after the test function."""
    mark = item.get_closest_marker(SMOKE)
    if mark is None:
        return None
    args = [str(a) for a in mark.args]
    category = str(mark.kwargs.get("category", args[0] if args else "other"))
    name = getattr(item, "originalname", None) or item.name
    check = str(mark.kwargs.get("check", args[1] if len(args) > 1 else name))
    return SmokeCheck(category, check)


def check_order(category: str, check: str) -> tuple[int, int, str]:
    """Sort key: the readiness report's checks in its order, a user's own after them."""
    if (category, check) in SEED_CHECKS:
        return (0, SEED_CHECKS.index((category, check)), "")
    rank = _CATEGORIES.index(category) if category in _CATEGORIES else len(_CATEGORIES)
    return (1, rank, check)
