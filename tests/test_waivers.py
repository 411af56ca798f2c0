"""Waivers: every rule, at the loader, in apply(), and through a real pytest run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from plugin_support import write_passing

from pytest_vcci.checklist import load_catalog
from pytest_vcci.settings import SettingsError
from pytest_vcci.waivers import Waivers, load_waivers

TODAY = dt.datetime.now(dt.UTC).date()
IDS = set(load_catalog().ids)


def waiver_toml(**overrides: Any) -> str:
    """One [[waiver]] table; a value of None leaves the key out."""
    values: dict[str, Any] = {
        "item": "3.2.4",
        "justification": "HPA rollout lands with the Q4 capacity change",
        "approved_by": "Dana Ops",
        "approved_on": TODAY - dt.timedelta(days=5),
        "expires_on": TODAY + dt.timedelta(days=30),
        "ticket": "RISK-231",
    }
    values.update(overrides)
    lines = ["[[waiver]]"]
    for key, value in values.items():
        if value is None:
            continue
        text = value.isoformat() if isinstance(value, dt.date) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n\n"


def write(tmp_path: Path, *tables: str) -> Path:
    path = tmp_path / "staging.waivers.toml"
    path.write_text("".join(tables))
    return path


def item(item_id: str, status: str, *tests: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": status,
        "tests": [{"nodeid": n, "outcome": o} for n, o in tests],
    }


# --- loader: usage errors naming file and key ---------------------------------------------


def test_a_valid_file_loads_every_record(tmp_path: Path) -> None:
    path = write(tmp_path, waiver_toml(), waiver_toml(item="1.2.1", nodeid="suites/x.py::*"))
    waivers = load_waivers(path, IDS)
    assert len(waivers) == 2
    assert [w.item for w in waivers.waivers] == ["3.2.4", "1.2.1"]
    assert waivers.waivers[1].record.nodeid == "suites/x.py::*"
    assert waivers.max_days == 90


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("justification", "needs a justification"),
        ("approved_by", "who approved it"),
        ("expires_on", "needs an expiry date"),
        ("approved_on", "date it was approved"),
        ("ticket", "ticket reference"),
    ],
)
def test_a_waiver_without_a_required_key_is_a_usage_error(
    tmp_path: Path, key: str, why: str
) -> None:
    path = write(tmp_path, waiver_toml(), waiver_toml(**{key: None}))
    with pytest.raises(SettingsError) as info:
        load_waivers(path, IDS)
    assert str(info.value).startswith(f"{path}: [[waiver]] #2.{key}: required key is missing")
    assert why in str(info.value)


@pytest.mark.parametrize("key", ["justification", "approved_by", "ticket"])
def test_a_blank_value_is_a_usage_error(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, waiver_toml(**{key: "   "}))
    with pytest.raises(SettingsError, match=rf"#1\.{key}: must not be empty"):
        load_waivers(path, IDS)


def test_a_waiver_longer_than_the_maximum_is_a_usage_error(tmp_path: Path) -> None:
    approved = TODAY - dt.timedelta(days=1)
    path = write(
        tmp_path, waiver_toml(approved_on=approved, expires_on=approved + dt.timedelta(days=91))
    )
    with pytest.raises(SettingsError) as info:
        load_waivers(path, IDS)
    message = str(info.value)
    assert "[[waiver]] #1.expires_on" in message
    assert "91 days after approved_on" in message
    assert "at most 90 days (ini vcci_waiver_max_days)" in message
    # Exactly the maximum is allowed; a larger configured maximum allows more.
    write(tmp_path, waiver_toml(approved_on=approved, expires_on=approved + dt.timedelta(days=90)))
    assert len(load_waivers(path, IDS)) == 1
    write(tmp_path, waiver_toml(approved_on=approved, expires_on=approved + dt.timedelta(days=91)))
    assert load_waivers(path, IDS, max_days=120).max_days == 120


def test_expiry_on_or_before_approval_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, waiver_toml(approved_on=TODAY, expires_on=TODAY))
    with pytest.raises(SettingsError, match=r"#1\.expires_on: must be after approved_on"):
        load_waivers(path, IDS)


def test_unknown_item_key_and_table_are_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path, waiver_toml(item="99.9.9"))
    with pytest.raises(SettingsError, match=r"#1\.item: unknown checklist ID '99\.9\.9'"):
        load_waivers(path, IDS)
    write(tmp_path, waiver_toml(reason="typo for justification"))
    with pytest.raises(SettingsError, match=r"#1\.reason: unknown key"):
        load_waivers(path, IDS)
    path.write_text("[waivers]\nitem = '3.2.4'\n")
    with pytest.raises(SettingsError, match=r"\[waivers\]: unknown table"):
        load_waivers(path, IDS)
    with pytest.raises(SettingsError, match="waivers file not found"):
        load_waivers(tmp_path / "absent.toml", IDS)


def test_a_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "staging.waivers.toml"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(SettingsError, match=r"not valid TOML: not UTF-8 \(byte 0\)"):
        load_waivers(path, IDS)


# --- apply ----------------------------------------------------------------------------------


def test_a_failing_item_with_a_valid_waiver_is_waived(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, waiver_toml()), IDS)
    items = [item("3.2.4", "failed", ("suites/k.py::test_hpa", "failed"))]
    outcome = waivers.apply(items, TODAY)
    assert outcome.applied == ["3.2.4"]
    assert items[0]["status"] == "waived"
    assert items[0]["waived_status"] == "failed"
    assert items[0]["waiver"]["ticket"] == "RISK-231"
    assert items[0]["waiver"]["index"] == 1
    assert outcome.warnings == []
    assert outcome.stale == []


def test_an_expired_waiver_is_ignored_with_a_warning_naming_it(tmp_path: Path) -> None:
    approved = TODAY - dt.timedelta(days=40)
    path = write(
        tmp_path, waiver_toml(approved_on=approved, expires_on=TODAY - dt.timedelta(days=1))
    )
    waivers = load_waivers(path, IDS)
    items = [item("3.2.4", "error", ("suites/k.py::test_hpa", "error"))]
    outcome = waivers.apply(items, TODAY)
    assert items[0]["status"] == "error"
    assert "waiver" not in items[0]
    assert len(outcome.warnings) == 1
    assert "waiver #1 for 3.2.4 (ticket RISK-231" in outcome.warnings[0]
    assert f"expired on {TODAY - dt.timedelta(days=1)}: ignored" in outcome.warnings[0]
    # Valid through its last day.
    assert waivers.apply([item("3.2.4", "failed")], TODAY - dt.timedelta(days=1)).applied == [
        "3.2.4"
    ]


def test_a_waiver_for_a_passing_item_is_stale(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, waiver_toml()), IDS)
    items = [item("3.2.4", "passed", ("suites/k.py::test_hpa", "passed"))]
    outcome = waivers.apply(items, TODAY)
    assert items[0]["status"] == "passed"
    assert [s["ticket"] for s in outcome.stale] == ["RISK-231"]
    assert "is stale: 3.2.4 passed" in outcome.stale[0]["message"]


def test_skipped_and_uncovered_items_are_neither_waived_nor_stale(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, waiver_toml()), IDS)
    for status in ("skipped", "not_covered"):
        items = [item("3.2.4", status)]
        outcome = waivers.apply(items, TODAY)
        assert items[0]["status"] == status
        assert outcome.applied == []
        assert outcome.stale == []


def test_a_nodeid_pattern_waives_only_the_tests_it_matches(tmp_path: Path) -> None:
    path = write(tmp_path, waiver_toml(nodeid="suites/test_k8s.py::test_hpa*"))
    waivers = load_waivers(path, IDS)
    covered = [item("3.2.4", "failed", ("suites/test_k8s.py::test_hpa[backend]", "failed"))]
    assert waivers.apply(covered, TODAY).applied == ["3.2.4"]
    uncovered = [
        item(
            "3.2.4",
            "failed",
            ("suites/test_k8s.py::test_hpa[backend]", "failed"),
            ("suites/test_k8s.py::test_replicas", "failed"),
        )
    ]
    outcome = waivers.apply(uncovered, TODAY)
    assert uncovered[0]["status"] == "failed"
    assert outcome.warnings == [
        f"{path}: waiver #1 for 3.2.4 [suites/test_k8s.py::test_hpa*] (ticket RISK-231, "
        f"approved by Dana Ops on {TODAY - dt.timedelta(days=5)}) does not cover the failing "
        "test suites/test_k8s.py::test_replicas: not applied, 3.2.4 stays failed"
    ]


def test_a_parametrized_nodeid_matches_itself_literally(tmp_path: Path) -> None:
    nodeid = "suites/test_k8s.py::test_hpa[backend]"
    waivers = load_waivers(write(tmp_path, waiver_toml(nodeid=nodeid)), IDS)
    assert waivers.apply([item("3.2.4", "failed", (nodeid, "failed"))], TODAY).applied == ["3.2.4"]


def test_no_file_means_no_waivers() -> None:
    waivers = load_waivers(None, IDS)
    items = [item("3.2.4", "failed", ("t.py::t", "failed"))]
    assert waivers.apply(items, TODAY).applied == []
    assert isinstance(waivers, Waivers)
    assert len(waivers) == 0


# --- through a run --------------------------------------------------------------------------

CHECKS = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_hpa(evidence):
    evidence.check("hpa min replicas", 1, ">= 2", False, where="hpa vcci/backend")

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", 3, ">= 3", True)
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    write_passing(pytester, "1.1.1")  # the catalog checks; the tests below add to them
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "out", *args)
    evidence_file = pytester.path / "out" / "evidence.json"
    evidence = json.loads(evidence_file.read_text()) if evidence_file.exists() else {}
    return result, evidence


def by_id(evidence: dict[str, Any], item_id: str) -> dict[str, Any]:
    return next(i for i in evidence["items"] if i["id"] == item_id)


def test_a_waived_failure_does_not_block_and_the_reports_show_the_waiver(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("w.toml").write_text(waiver_toml())
    result, evidence = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["verdict: READY *", "waived: 3.2.4"])
    item_324 = by_id(evidence, "3.2.4")
    assert item_324["status"] == "waived"
    assert item_324["waived_status"] == "failed"
    assert item_324["waiver"]["ticket"] == "RISK-231"
    assert evidence["run"]["waived"] == ["3.2.4"]
    assert "3.2.4" not in evidence["run"]["blocking"]
    html = (pytester.path / "out" / "checklist.html").read_text()
    assert "ticket RISK-231, approved by Dana Ops" in html
    assert "HPA rollout lands with the Q4 capacity change" in html


def test_without_the_waiver_the_same_failure_blocks(pytester: pytest.Pytester) -> None:
    result, evidence = run(pytester)
    assert result.ret == 1
    assert by_id(evidence, "3.2.4")["status"] == "failed"
    assert evidence["run"]["blocking"] == ["3.2.4"]


def test_an_expired_waiver_blocks_again_with_a_warning(pytester: pytest.Pytester) -> None:
    approved = TODAY - dt.timedelta(days=60)
    pytester.path.joinpath("w.toml").write_text(
        waiver_toml(approved_on=approved, expires_on=TODAY - dt.timedelta(days=2), ticket="RISK-9")
    )
    result, evidence = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["verdict: BLOCKED *", "waiver warning: *RISK-9*expired on*"])
    assert by_id(evidence, "3.2.4")["status"] == "failed"
    assert len(evidence["run"]["waiver_warnings"]) == 1
    assert "ticket RISK-9" in evidence["run"]["waiver_warnings"][0]


def test_a_waiver_for_a_passing_item_is_reported_stale(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("w.toml").write_text(waiver_toml(item="1.1.1", ticket="RISK-5"))
    result, evidence = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == 1  # 3.2.4 still blocks
    result.stdout.fnmatch_lines(["stale waiver: *waiver #1 for 1.1.1 (ticket RISK-5*is stale*"])
    assert [s["item"] for s in evidence["run"]["stale_waivers"]] == ["1.1.1"]
    assert by_id(evidence, "1.1.1")["status"] == "passed"


def test_a_bad_waiver_is_a_usage_error_naming_file_and_key(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("w.toml").write_text(waiver_toml(approved_by=None))
    result, _ = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "w.toml: [[waiver]] #1.approved_by: required key is missing" in result.stderr.str()
    assert not (pytester.path / "out" / "evidence.json").exists()


def test_the_environment_file_names_the_waivers_file(pytester: pytest.Pytester) -> None:
    env_dir = pytester.path / "environments"
    env_dir.mkdir()
    (env_dir / "staging.toml").write_text(
        '[environment]\nname = "staging"\nwaivers = "staging.waivers.toml"\n'
    )
    (env_dir / "staging.waivers.toml").write_text(waiver_toml())
    result, evidence = run(pytester, "--vcci-env", "staging")
    assert result.ret == 0
    assert by_id(evidence, "3.2.4")["status"] == "waived"
    source = Path(evidence["run"]["waivers"]["source"])
    assert (pytester.path / source).resolve() == (env_dir / "staging.waivers.toml").resolve()


def test_the_ini_key_sets_the_maximum(pytester: pytest.Pytester) -> None:
    approved = TODAY - dt.timedelta(days=10)
    long_waiver = waiver_toml(approved_on=approved, expires_on=approved + dt.timedelta(days=100))
    pytester.path.joinpath("w.toml").write_text(long_waiver)
    result, _ = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*100 days after approved_on*at most 90 days*"])
    pytester.makeini("[pytest]\nvcci_waiver_max_days = 120\n")
    result, evidence = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == 0
    assert evidence["run"]["waivers"]["max_days"] == 120
    pytester.makeini("[pytest]\nvcci_waiver_max_days = soon\n")
    result, _ = run(pytester, "--vcci-waivers", "w.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*vcci_waiver_max_days: expected a whole number of days*"])
