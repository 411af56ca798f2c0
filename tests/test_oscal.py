"""oscal-assessment-results.json, validated by compliance-trestle's OSCAL models.

compliance-trestle is an independent implementation of the NIST OSCAL model. It lives in its own
virtualenv (``.venv-oscal``, made by scripts/bootstrap.sh; or ``tox -e oscal``) so its pins never
touch the project's; the validation runs there in a subprocess on a document a real run wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_support import write_passing

from pytest_vcci.checklist.controls import load_controls, oscal_control_id
from pytest_vcci.report import oscal

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.datetime.now(dt.UTC).date()

VALIDATOR = ROOT / "scripts" / "validate_oscal.py"

CHECKS = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas(evidence):
    evidence.check("replicas", 2, ">= 3", False, where="deployment vcci/backend")

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", 3, ">= 3", True)

@pytest.mark.checklist("3.2.7")
def test_hpa(evidence):
    evidence.check("hpa min replicas", 1, ">= 2", False, where="hpa vcci/backend")

@pytest.mark.checklist("10.2.1")
def test_training(attest):
    attest("10.2.1")
"""


def oscal_python() -> str | None:
    """The python that has compliance-trestle: $VCCI_OSCAL_PYTHON, .venv-oscal, tox's, or ours."""
    candidates = [
        os.environ.get("VCCI_OSCAL_PYTHON", ""),
        str(ROOT / ".venv-oscal" / "bin" / "python"),
        str(ROOT / ".tox" / "oscal" / "bin" / "python"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    probe = subprocess.run(
        [sys.executable, "-c", "import trestle.oscal.assessment_results"], capture_output=True
    )
    return sys.executable if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def trestle_python() -> str:
    python = oscal_python()
    if python is None:
        pytest.skip(
            "compliance-trestle not found: no .venv-oscal (run scripts/bootstrap.sh, or "
            "`tox -e oscal`, or set VCCI_OSCAL_PYTHON to a python that has it)"
        )
    return python


def validate(python: str, document: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [python, str(VALIDATOR), "--summary", str(document)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise AssertionError(f"trestle rejected {document}:\n{proc.stdout[-3000:]}{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture
def written(pytester: pytest.Pytester) -> Path:
    """A real run: 3.2.4 fails, 1.1.1 passes, 3.2.7 fails but is waived, 10.2.1 is attested."""
    pytester.path.joinpath("attestations.toml").write_text(
        f"""[[attestation]]
item = "10.2.1"
statement = "Operations team completed the 2-day training"
attested_by = "Dana Ops"
role = "Head of Operations"
date = {TODAY - dt.timedelta(days=3)}
expires = {TODAY + dt.timedelta(days=300)}
reference = "OPS-1432"
"""
    )
    pytester.path.joinpath("waivers.toml").write_text(
        f"""[[waiver]]
item = "3.2.7"
justification = "HPA lands with the Q4 capacity change"
approved_by = "Sam Risk"
approved_on = {TODAY - dt.timedelta(days=1)}
expires_on = {TODAY + dt.timedelta(days=30)}
ticket = "RISK-77"
"""
    )
    write_passing(pytester, "1.1.1")  # the catalog checks; the tests below add to them
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--vcci-report-dir",
        "out",
        "--vcci-attestations",
        "attestations.toml",
        "--vcci-waivers",
        "waivers.toml",
    )
    assert result.ret == 1  # 3.2.4 (high) blocks
    return pytester.path / "out" / oscal.FILENAME


def test_the_document_is_valid_oscal_assessment_results(trestle_python: str, written: Path) -> None:
    summary = validate(trestle_python, written)
    assert summary["oscal_version"] == oscal.OSCAL_VERSION
    assert summary["results"] == 1
    # One finding per NIST SP 800-53 control the checklist maps to, targeting its objective.
    nist = load_controls().controls("nist80053")
    assert sorted(summary["findings"]) == sorted(f"{oscal_control_id(c.id)}_obj" for c in nist)
    assert summary["reviewed_controls"] == [oscal_control_id(c.id) for c in nist]
    assert {"sc-8", "cp-9", "ac-6", "ac-6.9", "sc-28.1"} <= set(summary["reviewed_controls"])
    assert len(summary["observations"]) == 4 + 5  # and the five checks of 1.1.1


def test_a_control_with_a_failed_item_is_not_satisfied(trestle_python: str, written: Path) -> None:
    findings = validate(trestle_python, written)["findings"]
    # CM-2 is supported by 3.2.4 (failed), 2.1.1, 2.1.3, ... (not covered)
    assert findings["cm-2_obj"]["state"] == "not-satisfied"
    assert findings["cm-2_obj"]["reason"] == "fail"
    assert "3.2.4 Deployments applied: failed." in findings["cm-2_obj"]["remarks"]
    assert "replicas: observed 2, expected >= 3" in findings["cm-2_obj"]["remarks"]
    assert findings["cm-2_obj"]["props"]["vcci-status"] == "failed"
    # SA-22 is supported by 1.1.1 (passed) and 1.1.2, 1.1.3 (not covered): not all checked.
    assert findings["sa-22_obj"]["state"] == "not-satisfied"
    assert findings["sa-22_obj"]["reason"] == "other"
    assert findings["sa-22_obj"]["props"]["vcci-status"] == "partly_assessed"
    assert findings["si-4_obj"]["reason"] == "other"  # none of its items was checked
    assert findings["si-4_obj"]["props"]["vcci-status"] == "not_assessed"


def test_waivers_and_attestations_are_remarks(trestle_python: str, written: Path) -> None:
    findings = validate(trestle_python, written)["findings"]
    # SC-5(2): 3.2.7 (failed, waived) and 7.2.1 (not covered); a waiver does not satisfy.
    waived = findings["sc-5.2_obj"]
    assert waived["state"] == "not-satisfied"
    assert waived["reason"] == "fail"
    assert "Waived (failed): ticket RISK-77, approved by Sam Risk" in waived["remarks"]
    assert "HPA lands with the Q4 capacity change" in waived["remarks"]
    # AT-3 and IR-2 have one item each, 10.2.1, attested: satisfied.
    for target in ("at-3_obj", "ir-2_obj"):
        attested = findings[target]
        assert attested["state"] == "satisfied"
        assert attested["reason"] == "pass"
        assert "Attested by Dana Ops (Head of Operations)" in attested["remarks"]
        assert "ref OPS-1432" in attested["remarks"]
        assert attested["props"]["checklist-id"] == "10.2.1"


def test_items_no_nist_control_applies_to_are_named(trestle_python: str, written: Path) -> None:
    remarks = validate(trestle_python, written)["remarks"] or ""
    assert "No NIST SP 800-53 Rev. 5 control applies to 10.2.3 Customer success team" in remarks
    assert "No NIST SP 800-53 Rev. 5 control applies to 2.2.1 Reference data loaded" in remarks


def test_each_test_is_an_observation_with_its_timestamps(
    trestle_python: str, written: Path
) -> None:
    summary = validate(trestle_python, written)
    observation = summary["observations"]["test_checks.py::test_replicas"]
    assert observation["methods"] == ["TEST"]
    evidence = json.loads((written.parent / "evidence.json").read_text())
    recorded = next(t for t in evidence["tests"] if t["nodeid"] == "test_checks.py::test_replicas")
    at = recorded["observations"][0]["at"]
    assert observation["evidence"] == [
        {
            "description": "deployment vcci/backend: replicas: observed 2, expected >= 3 (fail)",
            "props": {"observed-at": at, "criterion-result": "fail"},
        }
    ]
    assert dt.datetime.fromisoformat(observation["collected"]) == dt.datetime.fromisoformat(at)
    # SC-36: 1.1.1, 1.1.2, 1.1.3, 1.1.5, 3.2.4, 7.2.2 -> the observations of 1.1.1's tests and
    # of test_replicas (3.2.4), each once, in item order.
    of_1_1_1 = [
        o["uuid"]
        for nodeid, o in summary["observations"].items()
        if nodeid == "test_checks.py::test_cluster" or nodeid.startswith("test_pass_1_1_1.py::")
    ]
    assert len(of_1_1_1) == 6
    found = summary["findings"]["sc-36_obj"]["observations"]
    assert sorted(found[:-1]) == sorted(of_1_1_1)
    assert found[-1] == observation["uuid"]


def test_trestle_rejects_what_is_not_valid(trestle_python: str, written: Path) -> None:
    """The check is real: a document with a status OSCAL does not know is refused."""
    data = json.loads(written.read_text())
    data["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] = (
        "mostly-satisfied"
    )
    broken = written.with_name("broken.json")
    broken.write_text(json.dumps(data))
    with pytest.raises(AssertionError, match="state"):
        validate(trestle_python, broken)


def test_the_manifest_covers_the_oscal_file(written: Path) -> None:
    manifest = json.loads((written.parent / "manifest.json").read_text())
    assert oscal.FILENAME in [f["path"] for f in manifest["files"]]
    document = json.loads(written.read_text())
    resources = document["assessment-results"]["back-matter"]["resources"]
    titles = [r["title"] for r in resources]
    assert titles[2:] == [
        "evidence.json",
        "junit.xml",
        "checklist.html",
        "report.html",
        "controls-soc2.html",
        "controls-iso27001.html",
        "controls-nist80053.html",
    ]
    assert resources[1]["rlinks"][0]["href"] == oscal.NIST_CATALOG
    evidence_link = resources[2]["rlinks"][0]
    assert (
        evidence_link["hashes"][0]["value"]
        == hashlib.sha256((written.parent / "evidence.json").read_bytes()).hexdigest()
    )


def test_uuids_are_stable_for_a_run_and_differ_between_runs() -> None:
    result = minimal_result("run-a")
    first, again = oscal.build(result), oscal.build(result)
    assert first == again
    other = oscal.build(minimal_result("run-b"))
    assert first["assessment-results"]["uuid"] != other["assessment-results"]["uuid"]


def minimal_result(run_id: str) -> dict[str, Any]:
    return {
        "run": {
            "id": run_id,
            "environment": "staging",
            "environment_file": "environments/staging.toml",
            "started_at": "2026-11-22T10:00:00.000Z",
            "finished_at": "2026-11-22T10:01:00.000Z",
            "tool": {"name": "pytest-vcci", "version": "0.1.0"},
            "user": "qa",
            "host": "ci-1",
            "verdict": "ready",
            "gate": "high",
            "exit_status": 0,
        },
        "items": [
            {
                "id": "1.1.1",
                "title": "Kubernetes cluster provisioned",
                "criteria": ["nodes ready"],
                "severity": "high",
                "automation": "automated",
                "status": "passed",
                "message": "",
                "tests": [],
            }
        ],
        "tests": [],
    }
