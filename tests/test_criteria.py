"""Every criterion decided: how the report model judges each criterion from the checks the
catalog names, ``evidence.undecided`` for checks that find nothing to judge, and the skip
reason of an [expect] list that is not set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plugin_support import items_by_id, passing_checks, read_evidence

from pytest_vcci.checklist import load_catalog
from pytest_vcci.report.model import TestRecord as Record  # not collected as a test class
from pytest_vcci.report.model import build_items, judge_criteria

HELD = [{"name": "n", "observed": 1, "expected": 1, "passed": True}]


def check(nodeid: str, item_id: str, outcome: str = "passed", **fields: Any) -> Record:
    """A test record of ``suites/x.py::<nodeid>``, deciding something unless told otherwise."""
    fields.setdefault("observations", HELD if outcome == "passed" else [])
    return Record(f"suites/x.py::{nodeid}", [item_id], outcome, **fields)


def criteria(item_id: str, *tests: Record) -> dict[str, tuple[str, str]]:
    """{criterion: (status, reason)} of the item as these tests decide it."""
    judged = judge_criteria(load_catalog().get(item_id), list(tests))
    return {c.text: (c.status, c.reason) for c in judged}


def item(item_id: str, *tests: Record, strict: bool = False) -> dict[str, Any]:
    items = build_items(load_catalog(), {t.nodeid: t for t in tests}, strict=strict)
    return next(i for i in items if i["id"] == item_id)


# --- the model ------------------------------------------------------------------------------

LABELS, TAINTS = "test_node_labels", "test_node_taints"
OTHERS_OF_1_1_1 = (
    "test_cluster_version",
    "test_ready_nodes_span_zones",
    "test_cluster_autoscaler_bounds",
)


def test_a_criterion_needs_every_check_it_names_to_pass() -> None:
    others = [check(name, "1.1.1") for name in OTHERS_OF_1_1_1]
    labels = check(LABELS, "1.1.1")
    taints = check(TAINTS, "1.1.1", "skipped", message="[expect.kubernetes].node_taints is not set")

    judged = criteria("1.1.1", *others, labels, taints)
    assert judged["Cluster version: 1.28+"] == ("passed", "")
    # Labels held, but taints were never checked: "taints and labels" is not decided.
    assert judged["Node taints and labels configured"] == (
        "undecided",
        "[expect.kubernetes].node_taints is not set",
    )
    result = item("1.1.1", *others, labels, taints)
    assert result["status"] == "skipped"
    assert result["message"] == (
        "undecided: Node taints and labels configured: [expect.kubernetes].node_taints is not set"
    )
    assert item("1.1.1", *others, labels, check(TAINTS, "1.1.1"))["status"] == "passed"


def test_a_failed_check_fails_its_criterion_and_the_item() -> None:
    others = [check(name, "1.1.1") for name in OTHERS_OF_1_1_1]
    failed = check(LABELS, "1.1.1", "failed", message="cluster: nodes without label zone: [n1]")
    judged = criteria("1.1.1", *others, failed)
    assert judged["Node taints and labels configured"] == (
        "failed",
        "cluster: nodes without label zone: [n1]",
    )
    assert judged["Cluster version: 1.28+"] == ("passed", "")
    result = item("1.1.1", *others, failed)
    assert (result["status"], result["message"]) == (
        "failed",
        "cluster: nodes without label zone: [n1]",
    )


def test_a_pass_that_decided_nothing_decides_nothing() -> None:
    informational = [{"name": "scheme", "observed": "internal", "expected": None, "passed": None}]
    others = [check(name, "1.1.1") for name in (*OTHERS_OF_1_1_1, TAINTS)]
    empty = check(LABELS, "1.1.1", observations=informational)
    assert criteria("1.1.1", *others, empty)["Node taints and labels configured"] == (
        "undecided",
        "test_node_labels passed without deciding anything (no evidence.check)",
    )


def test_absent_deselected_and_intrusive_checks_leave_criteria_undecided() -> None:
    judged = criteria("1.1.1", check("test_cluster_version", "1.1.1"))
    assert judged["Node pools configured (3 AZs minimum)"] == (
        "undecided",
        "test_ready_nodes_span_zones did not run",
    )
    left_out = check(
        "test_emissions_calculation_workflow",
        "9.2.2",
        "skipped",
        intrusive=True,
        message="intrusive check (sends load or writes test data): run with --vcci-allow-intrusive",
    )
    result = item("9.2.2", left_out)
    assert result["status"] == "skipped"
    assert result["message"].startswith("5 criteria undecided:\n- Data ingestion successful")
    assert "run with --vcci-allow-intrusive" in result["message"]


def test_alternatives_either_decides_and_a_failure_of_either_fails() -> None:
    settings, headers = (
        check("test_rate_limit_settings", "4.2.3"),
        check("test_rate_limit_headers", "4.2.3"),
    )
    burst = "test_burst_is_limited"
    left_out = check(burst, "4.2.3", "skipped", intrusive=True, message="intrusive check")
    assert criteria("4.2.3", settings, headers, left_out)["Burst limits: 100 req/minute"] == (
        "passed",
        "",
    )
    failed = check(burst, "4.2.3", "failed", message="GET /api/v1/suppliers: burst answered 200")
    assert criteria("4.2.3", settings, headers, failed)["Burst limits: 100 req/minute"] == (
        "failed",
        "GET /api/v1/suppliers: burst answered 200",
    )
    assert criteria("4.2.3", settings)["Burst limits: 100 req/minute"] == (
        "undecided",
        "test_rate_limit_headers did not run / test_burst_is_limited did not run",
    )


def test_a_named_instance_decides_only_its_own_criterion() -> None:
    def replicas(role: str, outcome: str = "passed") -> Record:
        return check(f"test_deployment_replicas_available[{role}]", "3.2.4", outcome, message="")

    judged = criteria("3.2.4", replicas("backend"), replicas("worker", "failed"))
    assert judged["Backend API deployment (replicas: 3)"] == ("passed", "")
    assert judged["Worker deployment (replicas: 3)"][0] == "failed"
    assert judged["Frontend deployment (replicas: 2)"] == (
        "undecided",
        "test_deployment_replicas_available[frontend] did not run "
        "(this run has test_deployment_replicas_available[backend, worker])",
    )
    # No instance at all because the [expect] table is not set: its reason is the one shown.
    unset = check(
        "test_deployment_replicas_available[unset]",
        "3.2.4",
        "skipped",
        message="[expect.kubernetes].deployments is not set in staging.toml: no resource to check",
    )
    assert criteria("3.2.4", unset)["Backend API deployment (replicas: 3)"] == (
        "undecided",
        "[expect.kubernetes].deployments is not set in staging.toml: no resource to check",
    )


def test_undecided_reason_drops_the_undecided_prefix_of_the_check() -> None:
    empty = check(LABELS, "1.1.1", "skipped", message="undecided: cluster: no nodes listed")
    others = [check(name, "1.1.1") for name in (*OTHERS_OF_1_1_1, TAINTS)]
    assert item("1.1.1", *others, empty)["message"] == (
        "undecided: Node taints and labels configured: cluster: no nodes listed"
    )


def test_attestation_criteria_are_decided_by_the_items_record() -> None:
    record = {"item": "5.3.2", "reference": "OPS-1"}
    receivers = check("test_alert_receiver_configured", "5.3.2")
    channels = check("test_alert_channels_and_escalation", "5.3.2")
    attest = check("test_on_call_rotation_attested", "5.3.2", attestations=[record])
    judged = criteria("5.3.2", receivers, channels, attest)
    assert judged["On-call rotation defined"][0] == "attested"
    assert judged["PagerDuty / Opsgenie / Slack"] == ("passed", "")
    assert item("5.3.2", receivers, channels, attest)["status"] == "passed"
    # A check named beside the attestation still fails it.
    broken = check("test_alert_channels_and_escalation", "5.3.2", "failed", message="no pager")
    assert criteria("5.3.2", receivers, broken, attest)["Escalation policy configured"] == (
        "failed",
        "no pager",
    )
    # Without the record: undecided, saying why.
    skipped = check("test_on_call_rotation_attested", "5.3.2", "skipped", message="no file")
    assert criteria("5.3.2", receivers, channels, skipped)["On-call rotation defined"] == (
        "undecided",
        "no file",
    )


def test_not_automatable_is_listed_and_never_blocks() -> None:
    report = check("test_readiness_report_complete", "12.2.2")
    signoff = check("test_signoff_obtained", "12.2.2", attestations=[{"item": "12.2.2"}])
    result = item("12.2.2", report, signoff)
    assert result["status"] == "passed"
    [success] = [c for c in result["criteria_status"] if c["text"] == "Success criteria met"]
    assert success["status"] == "not_automatable"
    assert success["decided_by"] == "not_automatable"
    assert "no single check can" in success["reason"]


def test_strict_turns_undecided_into_failed() -> None:
    version = check("test_cluster_version", "1.1.1")
    result = item("1.1.1", version, strict=True)
    assert result["status"] == "failed"
    assert result["message"].startswith(
        "3 criteria undecided (--vcci-strict makes undecided a failure):\n"
    )


def test_criteria_status_in_the_item() -> None:
    version = check("test_cluster_version", "1.1.1")
    result = item("1.1.1", version)
    assert result["criteria"][0] == "Cluster version: 1.28+"  # the texts, as before
    assert result["criteria_status"][0] == {
        "text": "Cluster version: 1.28+",
        "decided_by": "checks",
        "checks": ["test_cluster_version"],
        "status": "passed",
        "reason": "",
    }
    pending = item("6.1.3", check("test_api_key_authentication", "6.1.3"))["criteria_status"][2]
    assert (pending["decided_by"], pending["checks"], pending["status"]) == (
        "none",
        [],
        "undecided",
    )
    assert pending["reason"] == "no check yet: the token refresh flow is not exercised (issue 16)"
    title = item("1.1.2")["criteria_status"][0]
    assert (title["text"], title["from_title"], title["status"]) == (
        "PostgreSQL 15+",
        True,
        "undecided",
    )


# --- evidence.undecided and the guard, through real runs ----------------------------------------

UNDECIDED = """
import pytest

@pytest.mark.checklist("1.1.1")
def test_node_labels(evidence):
    evidence.undecided("no nodes listed", where="cluster")

@pytest.mark.checklist("1.1.1")
def test_node_taints(evidence):
    evidence.check("tainted nodes", ["n1"], "at least one", True, where="cluster")
    evidence.check("tainted nodes", [], "at least one", False, where="cluster")
    evidence.undecided("the rest of the nodes were not listed")
"""

LABELS_ONLY = UNDECIDED.split('@pytest.mark.checklist("1.1.1")\ndef test_node_taints')[0]


def test_undecided_skips_naming_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pass_1_1_1=_without(LABELS, TAINTS), test_undecided=UNDECIDED)
    result = pytester.runpytest("-rs")

    result.assert_outcomes(passed=3, skipped=1, failed=1)
    result.stdout.fnmatch_lines(["SKIPPED * undecided: cluster: no nodes listed"])
    data = read_evidence(pytester)
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}
    labels = tests["test_node_labels"]
    assert (labels["outcome"], labels["message"]) == (
        "skipped",
        "undecided: cluster: no nodes listed",
    )
    assert labels["observations"][0]["name"] == "undecided"
    # A criterion that already failed still fails the test: undecided never hides a failure.
    taints = tests["test_node_taints"]
    assert (taints["outcome"], taints["message"]) == (
        "failed",
        "cluster: tainted nodes: observed [], expected at least one",
    )
    assert items_by_id(data)["1.1.1"]["status"] == "failed"


def test_undecided_item_message_in_terminal_and_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_pass_1_1_1=_without(LABELS),
        test_undecided=LABELS_ONLY,
    )
    result = pytester.runpytest()

    assert result.ret == 0
    data = read_evidence(pytester)
    one = items_by_id(data)["1.1.1"]
    assert one["status"] == "skipped"
    assert (
        one["message"] == "undecided: Node taints and labels configured: cluster: no nodes listed"
    )
    assert data["run"]["warnings"] == ["1.1.1"]
    result.stdout.fnmatch_lines(
        [
            "warnings:",
            "  1.1.1 * skipped  undecided: Node taints and labels configured: cluster: no*",
        ]
    )
    html = (pytester.path / "reports" / "checklist.html").read_text(encoding="utf-8")
    assert "<li class='criterion c-undecided'>" in html
    assert "Node taints and labels configured" in html


def test_undecided_fails_under_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pass_1_1_1=_without(LABELS), test_undecided=LABELS_ONLY)
    result = pytester.runpytest("--vcci-strict")

    result.assert_outcomes(passed=4, failed=1)
    data = read_evidence(pytester)
    [labels] = [t for t in data["tests"] if t["nodeid"].endswith("::test_node_labels")]
    assert labels["message"] == (
        "undecided: cluster: no nodes listed (--vcci-strict makes this a failure)"
    )
    assert items_by_id(data)["1.1.1"]["status"] == "failed"
    assert "1.1.1" in data["run"]["blocking"]


def test_a_check_that_passed_without_deciding_anything_is_visible(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_pass_1_1_1=_without(LABELS),
        test_silent="""
import pytest

@pytest.mark.checklist("1.1.1")
def test_node_labels(evidence):
    evidence.record("nodes", [])  # informational only: nothing was judged
""",
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=5)
    data = read_evidence(pytester)
    [silent] = [t for t in data["tests"] if t["nodeid"].endswith("::test_node_labels")]
    assert silent["decided"] is False
    assert items_by_id(data)["1.1.1"]["message"] == (
        "undecided: Node taints and labels configured: "
        "test_node_labels passed without deciding anything (no evidence.check)"
    )


def _without(*functions: str) -> str:
    """1.1.1's passing catalog checks, but for ``functions`` (the test module adds them)."""
    source = passing_checks("1.1.1")
    blocks = source.split("\n\n")
    return "\n\n".join(b for b in blocks if not any(f"def {f}(" in b for f in functions)) + "\n"


# --- an [expect] list that is not set names its table and key -----------------------------------

SUITES_CONFTEST = Path(__file__).resolve().parents[1] / "suites" / "conftest.py"
EACH = """
import pytest

@pytest.mark.checklist("1.2.5")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_registry_scan_on_push(repository, evidence):
    evidence.check("scanOnPush", True, True, True, where=repository)
"""


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ("", "[expect.aws].ecr_repositories is not set in env.toml: no resource to check"),
        (
            "[expect.aws]\necr_repositories = []\n",
            "[expect.aws].ecr_repositories is empty in env.toml: no resource to check",
        ),
    ],
    ids=["unset", "empty"],
)
def test_each_over_an_unset_list_names_the_table_and_key(
    pytester: pytest.Pytester, expect: str, reason: str
) -> None:
    pytester.makeconftest(SUITES_CONFTEST.read_text(encoding="utf-8"))
    (pytester.path / "env.toml").write_text('[environment]\nname = "t"\n' + expect)
    pytester.makepyfile(test_each=EACH)
    result = pytester.runpytest("--vcci-config", "env.toml", "-rs")

    result.assert_outcomes(skipped=1)
    assert f"SKIPPED [1] test_each.py:3: {reason}" in result.stdout.lines
    assert "got empty parameter set" not in result.stdout.str()
    one = items_by_id(read_evidence(pytester))["1.2.5"]
    scan = next(c for c in one["criteria_status"] if c["text"] == "Vulnerability scanning enabled")
    assert (scan["status"], scan["reason"]) == ("undecided", reason)
