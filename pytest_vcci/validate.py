"""``vcci validate``: the quick validation a deploy pipeline runs in seconds, before the suite.

It runs the tests marked ``smoke`` (the readiness report's checks: see checklist/smoke.py) from
the packaged suites, plus any test paths given, through pytest in this process, and prints one
row per check, or JSON. The exit status is the readiness report's contract:

- 0: every check passed;
- 1: a critical failure, deployment blocked: a check failed or errored (its target unreachable
  included) on an item whose severity is at or above the gate (``--gate``, default ``high``), or
  a smoke check without a checklist ID failed;
- 2: warnings only, deployment possible: checks failed below the gate, or were skipped (a target
  not configured; with ``--strict`` that is a failure instead);
- 4: usage error (no environment named, a bad environment file, an unknown option);
- 3: internal error; 130: interrupted. Neither gives a verdict.

The verdict is the gate's (gate.py) over the items the smoke checks cover, so waivers and the
gate mean here what they mean in a full run; items the quick validation does not check never
count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from pytest_vcci.checklist import Severity
from pytest_vcci.checklist.smoke import check_order
from pytest_vcci.gate import decide
from pytest_vcci.report.model import BAD, STATUS_ORDER, headline

EXIT_READY = 0
EXIT_BLOCKED = 1
EXIT_WARNINGS = 2
EXIT_INTERNAL = 3
EXIT_USAGE = 4
EXIT_INTERRUPTED = 130
EXIT_BY_VERDICT = {
    "ready": EXIT_READY,
    "blocked": EXIT_BLOCKED,
    "ready_with_warnings": EXIT_WARNINGS,
}
SCHEMA = "pytest-vcci/validate/v1"
DEFAULT_REPORT_DIR = "reports/validate"
# pytest's exit statuses that mean the run gave no verdict.
_PYTEST_INTERRUPTED, _PYTEST_INTERNAL, _PYTEST_USAGE, _PYTEST_NO_TESTS = 2, 3, 4, 5

_LABELS = {
    "passed": "PASS",
    "failed": "FAIL",
    "error": "ERROR",
    "skipped": "SKIP",
    "waived": "WAIVED",
}
_COLOURS = {"ok": "32", "critical": "31;1", "warning": "33", "waived": "36"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcci validate",
        description="The quick validation: the readiness report's checks (tests marked smoke) "
        "against an environment, in seconds. Other arguments go to pytest (e.g. -n 2, "
        "--vcci-set KEY=VALUE, a directory of your own smoke checks).",
        allow_abbrev=False,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--env", metavar="NAME", help="read environments/NAME.toml")
    where.add_argument("--config", metavar="PATH", help="read this environment file")
    parser.add_argument(
        "--gate",
        choices=[s.value for s in Severity],
        help="lowest severity whose failure is critical (exit 1); default: ini vcci_gate, else high",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the table: auto (a terminal and NO_COLOR unset), always, never",
    )
    parser.add_argument(
        "--report-dir",
        metavar="DIR",
        default=DEFAULT_REPORT_DIR,
        help=f"where the run's reports go (default {DEFAULT_REPORT_DIR})",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an unconfigured target fails its checks instead of skipping them",
    )
    return parser


def run_validate(argv: Sequence[str]) -> int:
    try:
        args, rest = _parser().parse_known_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return EXIT_READY if exc.code == 0 else EXIT_USAGE
    if not (args.env or args.config):
        print(
            "vcci validate: error: name the environment: --env NAME or --config PATH",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report_dir = Path(args.report_dir).resolve()
    pytest_args = [
        "--vcci-suites",
        "--vcci-smoke",
        "--vcci-report-dir",
        str(report_dir),
        "-p",
        "no:cacheprovider",
        *(["--vcci-env", args.env] if args.env else ["--vcci-config", args.config]),
        *(["--vcci-gate", args.gate] if args.gate else []),
        *(["--vcci-strict"] if args.strict else []),
        *rest,
    ]
    began_wall, began = time.time(), time.monotonic()
    with _captured() as output:
        status = _pytest_main(pytest_args)
    seconds = time.monotonic() - began
    result = _this_run(report_dir / "evidence.json", began_wall)
    problem = _no_verdict(status, result is not None, output.text())
    if problem is not None or result is None:
        code, message = problem or (EXIT_INTERNAL, "internal error: no evidence")
        print(f"vcci validate: {message}", file=sys.stderr)
        return code
    validation = summarize(result, seconds, report_dir)
    if not validation["checks"]:
        print(
            "vcci validate: error: no smoke check was collected "
            "(the packaged suites mark them with @pytest.mark.smoke)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.json:
        text = json.dumps(validation, indent=2, ensure_ascii=False)
    else:
        colour = use_colour(args.color, sys.stdout)
        # On a terminal the detail fits the line; a CI log keeps it whole.
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        text = "\n".join(render_table(validation, colour=colour, width=width))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `vcci validate --json | head`: the reader left; the verdict stands
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(validation["exit_status"])


def _pytest_main(args: list[str]) -> int:
    # pytest is imported here: `vcci checklist` and the others never need it.
    import pytest

    return int(pytest.main(args))


class _Output:
    def __init__(self) -> None:
        self.value = ""

    def text(self) -> str:
        return self.value


@contextmanager
def _captured() -> Iterator[_Output]:
    """Everything pytest writes (stdout and stderr, at the descriptor level) goes to a file:
    the table or the JSON is then the only thing on stdout."""
    output = _Output()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield output
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            output.value = sink.read().decode("utf-8", errors="replace")


def _this_run(evidence: Path, began: float) -> dict[str, Any] | None:
    """The evidence this run wrote; None when there is none, or only an earlier run's."""
    try:
        result: dict[str, Any] = json.loads(evidence.read_text(encoding="utf-8"))
        started = dt.datetime.fromisoformat(result["run"]["started_at"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError):
        return None
    return result if started.timestamp() >= began - 0.01 else None


def _no_verdict(status: int, fresh: bool, output: str) -> tuple[int, str] | None:
    """(exit status, message) when the run gave no verdict to report."""
    errors = [
        line.removeprefix("ERROR: ").strip()
        for line in output.splitlines()
        if line.startswith("ERROR: ")
    ]
    if status == _PYTEST_USAGE:
        return EXIT_USAGE, "error: " + ("; ".join(errors) or "pytest refused the arguments")
    if status == _PYTEST_INTERRUPTED:
        return EXIT_INTERRUPTED, "interrupted: no verdict"
    if status == _PYTEST_NO_TESTS:
        return EXIT_USAGE, "error: no smoke check was collected"
    if status == _PYTEST_INTERNAL or not fresh:
        tail = " | ".join(line for line in output.strip().splitlines()[-5:])
        return EXIT_INTERNAL, f"internal error: the run wrote no evidence ({tail[:500]})"
    return None


# --- the result -------------------------------------------------------------------------------


def summarize(result: dict[str, Any], seconds: float, report_dir: Path) -> dict[str, Any]:
    """The validation (checks, verdict, exit status) from a run's evidence.json."""
    run = result["run"]
    items = {item["id"]: item for item in result["items"]}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for test in result["tests"]:
        smoke = test.get("smoke")
        if smoke:
            groups.setdefault((smoke["category"], smoke["check"]), []).append(test)
    covered = sorted(
        {i for tests in groups.values() for t in tests for i in t["checklist"] if i in items},
        key=list(items).index,
    )
    stray = sum(
        1 for ts in groups.values() for t in ts if not t["checklist"] and t["outcome"] in BAD
    )
    # A quick validation decides by its own checks, not by the items' criteria (most of which
    # it does not run): an item stands as the worst outcome of the smoke checks that carry it.
    judged = [_as_validated(items[i], groups) for i in covered]
    verdict = decide(judged, run["gate"], stray_failures=stray)
    checks = [
        _check(category, check, tests, items, verdict.blocking)
        for (category, check), tests in sorted(groups.items(), key=lambda kv: check_order(*kv[0]))
    ]
    counts = {level: sum(1 for c in checks if c["level"] == level) for level in _COLOURS}
    return {
        "schema": SCHEMA,
        "environment": run["environment"],
        "environment_file": run.get("environment_file"),
        "run_id": run["id"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "seconds": round(seconds, 2),
        "gate": run["gate"],
        "verdict": verdict.verdict,
        "exit_status": EXIT_BY_VERDICT[verdict.verdict],
        "summary": {
            "checks": len(checks),
            "passed": counts["ok"],
            "critical": counts["critical"],
            "warnings": counts["warning"],
            "waived": counts["waived"],
        },
        "checks": checks,
        "targets": run.get("targets", {}),
        "reports": str(report_dir),
    }


def _as_validated(
    item: dict[str, Any], groups: dict[tuple[str, str], list[dict[str, Any]]]
) -> dict[str, Any]:
    """The item with the status its smoke checks give it (waived if the run waived it)."""
    outcomes = [t["outcome"] for ts in groups.values() for t in ts if item["id"] in t["checklist"]]
    status = min(outcomes, key=STATUS_ORDER.index)
    if status in BAD and item["status"] == "waived":
        status = "waived"
    return {**item, "status": status}


def _check(
    category: str,
    check: str,
    tests: list[dict[str, Any]],
    items: dict[str, dict[str, Any]],
    blocking: list[str],
) -> dict[str, Any]:
    ids = list(dict.fromkeys(i for t in tests for i in t["checklist"] if i in items))
    worst = min((t for t in tests), key=lambda t: STATUS_ORDER.index(t["outcome"]))
    status = worst["outcome"]
    if status in BAD and ids and all(items[i]["status"] == "waived" for i in ids):
        status = "waived"
    severities = [Severity(items[i]["severity"]) for i in ids]
    severity = min(severities, key=lambda s: s.order).value if severities else None
    if status == "passed":
        level = "ok"
    elif status == "waived":
        level = "waived"
    elif status in BAD and (any(i in blocking for i in ids) or not ids):
        level = "critical"
    else:
        level = "warning"
    return {
        "category": category,
        "check": check,
        "items": ids,
        "severity": severity,
        "status": status,
        "level": level,
        "message": worst["message"] if status != "passed" else "",
        "seconds": round(sum(t["duration"] for t in tests), 3),
        "tests": [
            {"nodeid": t["nodeid"], "outcome": t["outcome"], "message": t["message"]} for t in tests
        ],
    }


# --- the console ------------------------------------------------------------------------------


def use_colour(choice: str, stream: TextIO) -> bool:
    """``auto``: only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _paint(text: str, level: str, colour: bool) -> str:
    return f"\x1b[{_COLOURS[level]}m{text}\x1b[0m" if colour else text


def render_table(
    validation: dict[str, Any], *, colour: bool, width: int | None = None
) -> list[str]:
    checks = validation["checks"]
    rows = [
        (
            c["category"],
            c["check"],
            ",".join(c["items"]) or "-",
            c["severity"] or "-",
            _LABELS.get(c["status"], c["status"].upper()),
            c["level"],
            headline(c["message"], 200),
        )
        for c in checks
    ]
    header = ("CATEGORY", "CHECK", "ITEM", "SEVERITY", "STATUS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    room = max(30, width - sum(widths) - 12) if width else 200
    lines = [
        f"vcci validate: {validation['environment']} ({validation['environment_file']}), "
        f"gate {validation['gate']}, {len(checks)} checks in {validation['seconds']:.1f} s",
        "",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  DETAIL",
    ]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        cells[4] = _paint(cells[4], row[5], colour)
        detail = row[6] if len(row[6]) <= room else row[6][: room - 3] + "..."
        lines.append("  ".join(cells) + ("  " + detail if detail else "").rstrip())
    down = {n: t for n, t in validation["targets"].items() if not t.get("reachable")}
    if down:
        lines += ["", "targets not reachable (their checks error at once with this cause):"]
        lines += [f"  {name:<13} {headline(t['cause'], 110)}" for name, t in down.items()]
    lines += ["", _paint(_conclusion(validation), _verdict_level(validation), colour)]
    lines.append(f"reports: {Path(validation['reports']) / 'checklist.html'}")
    return lines


def _verdict_level(validation: dict[str, Any]) -> str:
    return {"ready": "ok", "blocked": "critical"}.get(validation["verdict"], "warning")


def _conclusion(validation: dict[str, Any]) -> str:
    summary, code = validation["summary"], validation["exit_status"]
    named = {
        level: ", ".join(
            f"{c['category']}: {c['check']}" for c in validation["checks"] if c["level"] == level
        )
        for level in ("critical", "warning")
    }
    for level, names in named.items():
        shown = names.split(", ")
        if len(shown) > 4:
            named[level] = ", ".join(shown[:3]) + f" and {len(shown) - 3} more"
    if validation["verdict"] == "blocked":
        return (
            f"BLOCKED: {summary['critical']} critical failure(s) ({named['critical']}); "
            f"deployment blocked (exit {code})"
        )
    if validation["verdict"] == "ready_with_warnings":
        return (
            f"WARNINGS: {summary['warnings']} warning(s) ({named['warning']}); "
            f"deployment possible (exit {code})"
        )
    return f"READY: all {summary['checks']} checks passed (exit {code})"
