"""``vcci run``: the whole checklist from the installed package, from any directory.

``vcci run --env staging -n auto [ARGS]`` is ``pytest --vcci-suites --vcci-env staging -n auto
[ARGS]``: ``--env``/``--config`` are short for ``--vcci-env``/``--vcci-config``, and every other
argument (``--vcci-*`` options, pytest options, directories of your own checks) goes to pytest
as given. The exit status is pytest's: the gate's (0 ready, 1 blocked), 4 for a usage error.
"""

from __future__ import annotations

from collections.abc import Sequence

#: vcci's short spellings and the plugin options they stand for.
ALIASES = {"--env": "--vcci-env", "--config": "--vcci-config", "--gate": "--vcci-gate"}
USAGE = """usage: vcci run [--env NAME | --config PATH] [--gate SEVERITY] [PYTEST ARGS ...]

Runs the readiness suites shipped with pytest-vcci (pytest --vcci-suites) against the
environment; every other argument goes to pytest, e.g. -n auto, --vcci-report-dir DIR,
--checklist 3.2.*, or a directory of your own checks to run alongside.
"""


def pytest_arguments(argv: Sequence[str]) -> list[str]:
    """The pytest command line for ``vcci run ARGV`` (aliases spelled out, order kept)."""
    args = ["--vcci-suites"]
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name in ALIASES:
            args.append(ALIASES[name] + (eq + value if eq else ""))
        else:
            args.append(arg)
    return args


def run_suites(argv: Sequence[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE, end="")
        return 0
    # pytest is imported here: the other vcci commands never need it.
    import pytest

    return int(pytest.main(pytest_arguments(argv)))
