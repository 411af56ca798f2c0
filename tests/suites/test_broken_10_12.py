"""Broken variants of sections 10-12: each breaks one thing, and exactly its item fails.

One good sandbox (API, cluster, a small PostgreSQL, monitoring, docs and reports, DNS) serves
every variant. A variant changes one input of the environment file: an attestations file with
an expired record, a stale or alarming ZAP report, a docs tree without a runbook, or an
Alertmanager that no Prometheus feeds. Each run executes one suite module in a subprocess and
reads evidence.json, so what is compared is what a user would see.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from variants import messages, run_pytester, sandbox_up

from pytest_vcci.sandbox.artifacts import write_zap_report
from pytest_vcci.sandbox.monitoring import AlertmanagerComponent

SUITES = Path(__file__).resolve().parents[2] / "suites"
DOCS = SUITES / "test_10_documentation.py"
FINAL = SUITES / "test_11_final_validation.py"
POST = SUITES / "test_12_post_deployment.py"
COMPONENTS = ("api", "kubernetes", "postgres", "monitoring", "artifacts", "mail_dns")
# A primary only, unseeded: these suites run SELECT 1 against it, nothing more.
OPTIONS = {"postgres": {"replicas": 0, "pgbouncer": False, "seed": False}}


class Env:
    """An environment file's tables and the secret variables its ${VAR}s refer to."""

    def __init__(self, tables: dict[str, Any], variables: dict[str, str], workdir: Path) -> None:
        self.tables = tables
        self.variables = variables
        self.workdir = workdir

    def changed(self, table: str, **values: Any) -> Env:
        tables = json.loads(json.dumps(self.tables))
        tables[table].update(values)
        return Env(tables, self.variables, self.workdir)


@pytest.fixture(scope="session")
def good_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("good")
    with sandbox_up(workdir, only=COMPONENTS, options=OPTIONS) as sandbox:
        yield Env(sandbox.tables, sandbox.variables, workdir)


def run_module(pytester: pytest.Pytester, module: Path, env: Env) -> dict[str, Any]:
    """One suite module against ``env``: its section's items by ID."""
    shutil.rmtree(pytester.path / "reports", ignore_errors=True)
    section = re.match(r"test_(\d+)_", module.name).group(1).lstrip("0") + "."  # type: ignore[union-attr]
    return run_pytester(pytester, (module,), env.tables, env.variables, (section,))


_GOOD_RUNS: dict[Path, dict[str, Any]] = {}  # once per module and process


def good_run(pytester: pytest.Pytester, module: Path, env: Env) -> dict[str, Any]:
    if module not in _GOOD_RUNS:
        _GOOD_RUNS[module] = run_module(pytester, module, env)
    return _GOOD_RUNS[module]


def only_broken(good: dict[str, Any], broken: dict[str, Any], item_id: str) -> str:
    """Assert ``item_id`` fails now (it did not before) and nothing else changed; its message."""
    assert good[item_id]["status"] != "failed", messages(good[item_id])
    assert broken[item_id]["status"] == "failed", messages(broken[item_id])
    for other in sorted(set(good) - {item_id}):
        assert broken[other]["status"] == good[other]["status"], (other, messages(broken[other]))
    return messages(broken[item_id])


# --- the good sandbox -------------------------------------------------------------------------


def statuses(items: dict[str, Any]) -> dict[str, str]:
    return {i: item["status"] for i, item in items.items()}


def test_good_documentation(pytester: pytest.Pytester, good_env: Env) -> None:
    items = good_run(pytester, DOCS, good_env)
    assert statuses(items) == {
        "10.1.1": "passed",
        "10.1.2": "passed",
        "10.1.3": "passed",
        "10.1.4": "passed",
        "10.2.1": "attested",
        "10.2.2": "attested",
        "10.2.3": "failed",  # deliberate: the customer-success training attestation expired
        "10.2.4": "skipped",  # Grafana is not part of the sandbox
    }
    # The sandbox's copy of its attestations is dated relative to its start: 68 days ago.
    records = Path(good_env.tables["environment"]["attestations"]).read_text()
    expired_on = re.search(r'item = "10\.2\.3".*?expires = (\S+)', records, re.S)
    assert expired_on is not None
    assert f"attestation for 10.2.3 expired on {expired_on.group(1)}" in messages(items["10.2.3"])
    assert "[grafana] is not configured" in messages(items["10.2.4"])


def test_good_final_validation(pytester: pytest.Pytester, good_env: Env) -> None:
    items = good_run(pytester, FINAL, good_env)
    assert statuses(items) == {
        "11.1.1": "passed",
        "11.1.2": "passed",
        "11.1.3": "passed",
        "11.1.4": "attested",
        "11.1.5": "attested",
    }


def test_good_post_deployment(pytester: pytest.Pytester, good_env: Env) -> None:
    items = good_run(pytester, POST, good_env)
    assert statuses(items) == {
        "12.1.1": "passed",
        "12.1.2": "passed",
        "12.1.3": "skipped",  # "No errors in logs" has no check yet
        "12.2.1": "skipped",  # Prometheus holds about an hour, not the 24 h soak
        # A run of one module leaves the other sections' items out of its report.
        "12.2.2": "failed",
    }
    assert "less than the 24 h soak" in messages(items["12.2.1"])
    assert "items no test of this run evaluates: observed 87: 1.1.1" in messages(items["12.2.2"])


# --- variants ---------------------------------------------------------------------------------


def test_expired_training_attestation(pytester: pytest.Pytester, good_env: Env) -> None:
    text = Path(good_env.tables["environment"]["attestations"]).read_text()
    record = re.search(r'item = "10\.2\.1".*?date = (\S+)\nexpires = (\S+)', text, re.S)
    assert record is not None
    # The record's dates are relative to the sandbox's start: expire it the day after its date.
    expired_on = dt.date.fromisoformat(record.group(1)) + dt.timedelta(days=1)
    expired = text[: record.start(2)] + str(expired_on) + text[record.end(2) :]
    path = pytester.path / "expired.attestations.toml"
    path.write_text(expired)
    broken = run_module(pytester, DOCS, good_env.changed("environment", attestations=str(path)))
    message = only_broken(good_run(pytester, DOCS, good_env), broken, "10.2.1")
    assert f"attestation for 10.2.1 expired on {expired_on} (Dana Ops, ref OPS-1432)" in message


def test_missing_runbook(pytester: pytest.Pytester, good_env: Env) -> None:
    root = pytester.path / "docs-checkout"
    shutil.copytree(Path(good_env.tables["docs"]["directory"]) / "docs", root / "docs")
    (root / "docs" / "runbooks" / "CAPACITY_PLANNING.md").unlink()
    broken = run_module(pytester, DOCS, good_env.changed("docs", directory=str(root)))
    message = only_broken(good_run(pytester, DOCS, good_env), broken, "10.1.4")
    assert f'docs {root}: runbook "Capacity Planning": observed not found' in message
    failed = [t["nodeid"] for t in broken["10.1.4"]["tests"] if t["outcome"] == "failed"]
    assert failed == [f"{DOCS.relative_to(SUITES.parent)}::test_runbook_created[Capacity Planning]"]


def test_stale_zap_report(pytester: pytest.Pytester, good_env: Env) -> None:
    generated = dt.datetime.now(dt.UTC) - dt.timedelta(hours=200)
    path = write_zap_report(pytester.path / "zap-old.json", generated_at=generated)
    broken = run_module(pytester, FINAL, good_env.changed("reports", zap=str(path)))
    message = only_broken(good_run(pytester, FINAL, good_env), broken, "11.1.2")
    assert f"{path}: report is stale: generated" in message
    assert "200.0 h ago, older than the 168 h limit" in message


def test_zap_report_with_high_alert(pytester: pytest.Pytester, good_env: Env) -> None:
    path = write_zap_report(
        pytester.path / "zap-high.json", generated_at=dt.datetime.now(dt.UTC), high_alerts=1
    )
    broken = run_module(pytester, FINAL, good_env.changed("reports", zap=str(path)))
    message = only_broken(good_run(pytester, FINAL, good_env), broken, "11.1.2")
    assert f"ZAP report {path}: High alerts: observed" in message
    assert "SQL Injection (https://api.staging.vcci.greenlang.io)" in message


def test_malformed_zap_report(pytester: pytest.Pytester, good_env: Env) -> None:
    path = pytester.path / "zap-truncated.json"
    path.write_text('{"@programName": "ZAP", "site": [{"@name": "https://api.sta')
    broken = run_module(pytester, FINAL, good_env.changed("reports", zap=str(path)))
    message = only_broken(good_run(pytester, FINAL, good_env), broken, "11.1.2")
    assert f"{path}: not a ZAP JSON report" in message


def test_watchdog_not_firing(pytester: pytest.Pytester, good_env: Env) -> None:
    lonely = AlertmanagerComponent(workdir=pytester.path / "lonely")
    lonely.start()  # an Alertmanager no Prometheus sends alerts to
    try:
        broken = run_module(pytester, POST, good_env.changed("alertmanager", url=lonely.url))
    finally:
        lonely.stop()
    message = only_broken(good_run(pytester, POST, good_env), broken, "12.1.2")
    assert f"alertmanager {lonely.url}: active Watchdog alerts: observed 0" in message
