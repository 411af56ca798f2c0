"""The ``vcci`` command: ``vcci validate``, ``vcci run``, ``vcci exporter``, ``vcci checklist``,
``vcci sandbox up|down|env``, ``vcci verify``, ``vcci diff``.

Subcommands live in their own modules and are imported only when used.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """usage: vcci COMMAND [ARGS]

commands:
  validate --env NAME [--json]       the quick validation: 14 checks in seconds (exit 0 ready,
                                     1 critical failures, 2 warnings)
  run --env NAME [PYTEST ARGS]       the whole checklist from the installed package (pytest --vcci-suites)
  exporter --env NAME --interval 15m the checklist on a schedule, as Prometheus metrics
  checklist [--json] [--section N]   print the checklist catalog
  checklist --framework F [--json]   controls of soc2, iso27001 or nist80053 with their items
  checklist --tests ID [--tests-dir D] list the tests of an item with file:line
  sandbox up|down|env [--dir DIR]    start, stop or show the embedded local staging
  verify DIR [--public-key PEM]      check a report directory against its manifest (exit 1 if tampered)
  diff OLD_DIR NEW_DIR [--json]      items whose status changed between two runs (exit 1 on a regression)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "checklist":
        from pytest_vcci.checklist.cli import run_checklist

        return run_checklist(rest)
    if command == "sandbox":
        return run_sandbox(rest)
    if command == "validate":
        from pytest_vcci.validate import run_validate

        return run_validate(rest)
    if command == "run":
        from pytest_vcci.run_cli import run_suites

        return run_suites(rest)
    if command == "exporter":
        from pytest_vcci.exporter import run_exporter

        return run_exporter(rest)
    if command == "verify":
        from pytest_vcci.verify_cli import run_verify

        return run_verify(rest)
    if command == "diff":
        from pytest_vcci.history import run_diff

        return run_diff(rest)
    print(f"vcci: unknown command {command!r}\n{USAGE}", file=sys.stderr, end="")
    return 2


def run_sandbox(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="vcci sandbox", description="the embedded local staging")
    parser.add_argument("action", choices=["up", "down", "env"])
    parser.add_argument("--dir", default=".sandbox", help="state directory (default .sandbox)")
    parser.add_argument("--only", help="comma list of components to start (default: all)")
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    workdir = Path(ns.dir).resolve()
    if ns.action == "up":
        return _sandbox_up(workdir, ns.only)
    if ns.action == "down":
        from pytest_vcci.sandbox import down_from_state

        stopped = down_from_state(workdir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"no sandbox running in {workdir}")
        return 0
    return _sandbox_env(workdir)


def _sandbox_up(workdir: Path, only: str | None) -> int:
    from pytest_vcci.sandbox import STATE, Sandbox, SandboxError

    if (workdir / STATE).exists():
        print(
            f"vcci sandbox: a sandbox is already running in {workdir} "
            f"(stop it with: vcci sandbox down --dir {workdir})",
            file=sys.stderr,
        )
        return 1
    from pytest_vcci.sandbox import COMPONENTS

    names = tuple(n.strip() for n in only.split(",")) if only else None
    unknown = sorted(set(names or ()) - {c[0] for c in COMPONENTS})
    if unknown:
        known = ", ".join(c[0] for c in COMPONENTS)
        print(
            f"vcci sandbox: unknown component {', '.join(unknown)} (known: {known})",
            file=sys.stderr,
        )
        return 2
    sandbox = Sandbox(workdir, only=names)
    try:
        env_file = sandbox.up()
    except SandboxError as exc:
        print(f"vcci sandbox: {exc}", file=sys.stderr)
        return 1
    print(
        f"sandbox up in {sandbox.timings['total']}s: "
        + ", ".join(f"{k} {v}s" for k, v in sandbox.timings.items() if k != "total")
    )
    print(f"environment file: {env_file}")
    print(f"secrets:          {workdir / 'secrets.env'}  (source it before running pytest)")
    print(f"run:  . {workdir / 'secrets.env'} && pytest suites/ --vcci-config {env_file} -n auto")
    print(f"stop: vcci sandbox down --dir {workdir}")
    return 0


def _sandbox_env(workdir: Path) -> int:
    state = workdir / "state.json"
    if not state.exists():
        print(f"vcci sandbox: no sandbox running in {workdir}", file=sys.stderr)
        return 1
    env_file = json.loads(state.read_text())["env_file"]
    print(f"# environment file: {env_file}  (pytest --vcci-config {env_file})")
    secrets = workdir / "secrets.env"
    if secrets.exists():
        sys.stdout.write(secrets.read_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
