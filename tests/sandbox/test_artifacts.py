"""The sandbox's documents and reports: the docs tree as the checklist lists it, fresh reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_vcci.checklist import load_catalog
from pytest_vcci.readers.load_test_report import read_locust
from pytest_vcci.readers.tool_reports import IngestError
from pytest_vcci.readers.trivy_report import load_trivy
from pytest_vcci.readers.zap_report import load_zap
from pytest_vcci.sandbox.artifacts import IMAGES, ArtifactsComponent


@pytest.fixture
def started(tmp_path: Path) -> ArtifactsComponent:
    component = ArtifactsComponent(workdir=tmp_path / "artifacts")
    component.start()
    return component


def titles(directory: Path) -> set[str]:
    found = set()
    for path in directory.glob("*.md"):
        first = path.read_text().splitlines()[0]
        found.add(first.removeprefix("# "))
    return found


def test_guides_and_runbooks_are_titled_as_the_checklist_lists_them(started):
    catalog = load_catalog()
    docs = started.docs_dir
    assert set(catalog.get("10.1.2").criteria) <= titles(docs / "user-guides")
    assert set(catalog.get("10.1.3").criteria) <= titles(docs / "admin")
    assert titles(docs / "runbooks") == set(catalog.get("10.1.4").criteria)


def test_data_recovery_runbook_states_rto_and_rpo(started):
    # [docs].directory holds docs/ as a repository does: the checklist's path is relative to it.
    path = started.workdir / load_catalog().get("8.2.3").thresholds["runbook_path"]
    text = path.read_text()
    assert re.search(r"^- RTO: 1 hour$", text, re.M)
    assert re.search(r"^- RPO: 15 minutes$", text, re.M)
    assert "quarterly" in text


def test_reports_are_fresh_and_clean(started):
    tables = started.env_tables()
    reports = tables["reports"]
    zap = load_zap(Path(reports["zap"]), reports["max_age_hours"])
    assert zap.counts()["High"] == zap.counts()["Medium"] == 0
    for path in reports["trivy"]:
        summary = load_trivy(Path(path), reports["max_age_hours"])
        assert summary.findings == ()
        assert summary.artifact.split("/")[-1].split(":")[0] in IMAGES
    locust = read_locust(Path(reports["locust"]), reports["max_age_hours"])
    assert locust.failures == 0
    assert locust.peak_users == 10_000
    assert locust.p95_ms < 500
    assert locust.p99_ms < 1000
    assert tables["docs"]["directory"] == str(started.workdir)


def test_back_dated_reports_are_stale(tmp_path):
    component = ArtifactsComponent(workdir=tmp_path / "old", report_age_hours=200)
    component.start()
    with pytest.raises(IngestError, match="stale"):
        load_zap(component.zap_path, 168)
    with pytest.raises(IngestError, match="stale"):
        read_locust(component.locust_path, 168)


def test_missing_docs_and_high_alerts_on_request(tmp_path):
    component = ArtifactsComponent(
        workdir=tmp_path / "broken",
        zap_high_alerts=1,
        missing_docs=("runbooks/CAPACITY_PLANNING.md",),
    )
    component.start()
    assert not (component.docs_dir / "runbooks" / "CAPACITY_PLANNING.md").exists()
    assert [a.name for a in load_zap(component.zap_path).high] == ["SQL Injection"]
