"""Stability: identical read-only runs against one sandbox give identical item statuses.

A read-only run must not change what a later run sees. It once did: 6.2.3's malformed request
got a 500 from the sample API, and two or three runs later Prometheus had scraped enough of
those 5xx answers for 7.1.1's error-rate check (and its alert) to fail. So the runs here are
spaced by a Prometheus scrape of the API (every 30 s in the sandbox), as runs a few minutes
apart would be, and the API's own counters must show no 5xx answer at the end.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from variants import Staging, run_subprocess, sandbox_up

SUITES = Path(__file__).resolve().parents[2] / "suites"
MODULES = tuple(sorted(SUITES.glob("test_*.py")))
SECTIONS = tuple(f"{n}." for n in range(1, 13))

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stable_runs")]


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    with sandbox_up(tmp_path_factory.mktemp("stable")) as staging:
        yield staging


def statuses(staging: Staging, directory: Path) -> dict[str, str]:
    directory.mkdir()
    items = run_subprocess(
        directory, MODULES, staging.tables, staging.variables, SECTIONS, "-n", "2"
    )
    return {item_id: item["status"] for item_id, item in items.items()}


def wait_for_a_scrape_of_the_api(staging: Staging, after: float) -> None:
    """Until Prometheus has scraped the API since ``after`` (epoch seconds)."""
    prometheus = staging.tables["prometheus"]["url"]
    job = staging.tables["expect"]["monitoring"]["api_job"]
    deadline = time.monotonic() + 90  # three scrape intervals
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{prometheus}/api/v1/query",
            params={"query": f'max(timestamp(up{{job="{job}"}}))'},
            timeout=(2, 10),
        ).json()
        result = answer["data"]["result"]
        if result and float(result[0]["value"][1]) > after:
            return
        time.sleep(1)
    pytest.fail(f"Prometheus did not scrape job {job} within 90 s")


def api_5xx_answers(staging: Staging) -> dict[str, float]:
    """The sample API's own request counters with a 5xx status, by route."""
    api = staging.component("api")
    text = requests.get(f"http://127.0.0.1:{api.metrics_port}/metrics", timeout=(2, 10)).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'http_requests_total\{(.*status="5\d\d".*)\} (\S+)$', line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_three_identical_read_only_runs_give_identical_statuses(
    staging: Staging, tmp_path: Path
) -> None:
    runs: list[dict[str, Any]] = []
    for n in range(3):
        if runs:
            wait_for_a_scrape_of_the_api(staging, after=time.time())
        runs.append(statuses(staging, tmp_path / f"run{n + 1}"))
    assert len(runs[0]) == 92
    for n, later in enumerate(runs[1:], start=2):
        changed = {k: (runs[0][k], v) for k, v in later.items() if v != runs[0][k]}
        assert not changed, f"run {n} differs from run 1: {changed}"
    assert api_5xx_answers(staging) == {}  # no read-only request made the API fail
