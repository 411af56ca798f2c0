"""Redaction's cost: building the redactor, the last pass over a 10,000-test result, the
report.html pass, and log records at DEBUG.

Two sets of secrets: "typical" (10 random URL-safe tokens, as the sandbox has) and "planted"
(the 26 secrets of tests/secrets_support.py, each with every character that repr, JSON, HTML and
URL encoding change: the most forms a secret can have). Each figure is min/median/max of RUNS.

    .venv/bin/python benchmarks/redaction.py [RUNS]
"""

from __future__ import annotations

import io
import logging
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_vcci.evidence.log_redaction import LogRedaction
from pytest_vcci.evidence.redaction import Redactor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from secrets_support import SECRET_SETTINGS, planted_secret

TESTS = 10_000
RECORDS = 10_000
USERS = ["vcci", "app", "apiuser", "prometheus"]


def result_model(tests: int) -> dict[str, Any]:
    """A result shaped like evidence.json's: per test a nodeid, a message, observations."""
    return {
        "run": {"id": "bench", "command": "pytest suites/ -n 2", "targets": {}},
        "tests": [
            {
                "nodeid": f"suites/test_03_application.py::test_replicas[backend-{n}]",
                "outcome": "failed" if n % 7 == 0 else "passed",
                "message": f"deployment vcci-staging/backend-{n}: replicas: observed 2, expected 3",
                "observations": [
                    {
                        "name": "replicas",
                        "observed": 2,
                        "expected": ">= 3",
                        "where": f"deployment vcci-staging/backend-{n}",
                        "passed": False,
                    },
                    {
                        "name": "image",
                        "observed": f"registry.example/vcci/backend:1.{n}.0",
                        "expected": "a pinned tag",
                        "where": f"container backend-{n}",
                        "passed": True,
                    },
                ],
            }
            for n in range(tests)
        ],
    }


def timed(action: Callable[[], object], runs: int) -> str:
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - began)
    return (
        f"min {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s"
    )


def log_records(redactor: Redactor | None, records: int) -> None:
    logger = logging.getLogger("bench.botocore")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs = LogRedaction(redactor) if redactor is not None else None
    if logs is not None:
        logs.install()
        logs.guard([handler])
    try:
        for n in range(records):
            logger.debug("Sending http request: %s %d", "POST https://sts.amazonaws.com/", n)
    finally:
        if logs is not None:
            logs.uninstall()
        logger.removeHandler(handler)


def measurements(
    values: list[str], model: dict[str, Any], html: str
) -> dict[str, Callable[[], object]]:
    redactor = Redactor(values, USERS)
    return {
        "build the redactor": lambda: Redactor(values, USERS),
        f"the result of {TESTS} tests": lambda: redactor.data(model),
        f"report.html, {len(html) / 1e6:.1f} MB": lambda: redactor(html),
        f"{RECORDS} DEBUG log records": lambda: log_records(redactor, RECORDS),
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sets = {
        "typical": [secrets.token_urlsafe(24) for _ in range(10)],
        "planted": [planted_secret(i, s) for i, s in enumerate(SECRET_SETTINGS, start=1)],
    }
    model = result_model(TESTS)
    html = "<tr><td>observed 2, expected 3 &amp; more</td></tr>\n" * 40_000  # ~2 MB
    print(
        f"log records: {RECORDS} DEBUG records, no redaction: {timed(lambda: log_records(None, RECORDS), runs)}"
    )
    for name, values in sets.items():
        print(f"{name} ({len(values)} secrets):")
        for what, action in measurements(values, model, html).items():
            print(f"  {what}: {timed(action, runs)}")


if __name__ == "__main__":
    main()
