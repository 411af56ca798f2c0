"""Framework control mapping: controls.toml, item.controls, the rules deriving a control's
status, `vcci checklist --framework`, the per-framework report pages and the README table."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from plugin_support import write_passing

from pytest_vcci.checklist import Automation, load_catalog
from pytest_vcci.checklist.cli import run_checklist
from pytest_vcci.checklist.controls import (
    FRAMEWORKS,
    ControlsError,
    control_id_problem,
    load_controls,
    oscal_control_id,
    parse_controls,
)
from pytest_vcci.cli import main
from pytest_vcci.report.controls import control_status

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw() -> dict[str, Any]:
    text = (resources.files("pytest_vcci.checklist") / "controls.toml").read_text("utf-8")
    return tomllib.loads(text)


# --- the mapping itself ---------------------------------------------------------------------


def test_every_item_maps_to_each_framework_or_says_why_not() -> None:
    catalog = load_catalog()
    for item in catalog:
        assert item.automation in (Automation.AUTOMATED, Automation.HYBRID, Automation.ATTESTATION)
        for framework in FRAMEWORKS:
            ids, reason = item.controls[framework], item.controls.not_applicable.get(framework)
            assert bool(ids) != bool(reason), (item.id, framework, ids, reason)


def test_most_items_map_to_every_framework() -> None:
    """'None applies' is the exception, kept for items that are not security or availability."""
    catalog = load_catalog()
    unmapped = {
        framework: sorted(i.id for i in catalog if not i.controls[framework])
        for framework in FRAMEWORKS
    }
    assert unmapped == {
        "soc2": ["10.2.3"],
        "iso27001": ["10.1.1", "10.1.2", "10.2.2", "10.2.3", "10.2.4", "2.2.1"],
        "nist80053": ["10.2.2", "10.2.3", "10.2.4", "2.2.1", "5.1.4"],
    }


# The mappings an auditor checks first: each concern lands on the control that governs it.
EXPECTED = [
    ("soc2", "CC6.1", ["6.2.1", "1.2.3", "6.1.2"]),  # logical access, encryption at rest
    ("soc2", "CC6.6", ["1.2.4", "3.2.6"]),  # boundary protection
    ("soc2", "CC6.7", ["6.2.2", "1.2.1", "4.1.1"]),  # transmission
    ("soc2", "CC7.2", ["5.1.1", "6.3.1", "4.2.1"]),  # monitoring
    ("soc2", "CC8.1", ["11.1.5", "2.1.2", "8.2.2"]),  # change management
    ("soc2", "A1.2", ["2.2.4", "8.1.1", "8.1.2"]),  # backup and recovery infrastructure
    ("soc2", "A1.3", ["8.2.1", "8.2.3"]),  # recovery tested
    ("soc2", "P4.1", ["6.2.3", "5.2.2"]),  # personal data masked
    ("iso27001", "A.8.13", ["2.2.4", "8.1.1", "8.2.1"]),  # backup
    ("iso27001", "A.8.15", ["6.3.1", "4.2.1", "5.2.1"]),  # logging
    ("iso27001", "A.8.16", ["5.1.1", "5.3.1", "12.1.2"]),  # monitoring
    ("iso27001", "A.8.24", ["6.2.1", "6.2.2", "1.2.1"]),  # cryptography
    ("iso27001", "A.8.32", ["11.1.5", "8.2.2", "2.1.2"]),  # change management
    ("iso27001", "A.5.30", ["8.2.3", "8.2.1"]),  # ICT readiness for continuity
    ("nist80053", "SC-8", ["6.2.2", "1.2.1", "4.1.2"]),
    ("nist80053", "SC-28", ["6.2.1", "1.1.4"]),
    ("nist80053", "AU-2", ["6.3.1", "4.2.1"]),
    ("nist80053", "AU-12", ["6.3.1", "5.2.1"]),
    ("nist80053", "CP-9", ["2.2.4", "8.1.1", "8.1.2"]),
    ("nist80053", "CP-10", ["8.2.1", "8.1.1"]),
    ("nist80053", "SI-4", ["5.1.1", "5.3.1", "12.1.2"]),
    ("nist80053", "CM-6", ["4.1.4", "3.2.2"]),
    ("nist80053", "RA-5", ["3.1.2", "11.1.2", "1.2.5"]),
    ("nist80053", "AC-6", ["6.1.2", "1.2.3"]),
]


@pytest.mark.parametrize(("framework", "control", "items"), EXPECTED)
def test_key_controls_are_mapped_to_their_items(
    framework: str, control: str, items: list[str]
) -> None:
    mapped = load_controls().items_of(framework, control)
    assert set(items) <= set(mapped), (control, mapped)
    for item_id in items:
        assert control in load_catalog().get(item_id).controls[framework]


def test_item_controls_are_on_the_catalog_item() -> None:
    item = load_catalog().get("6.2.2")
    assert item.controls["soc2"] == ("CC6.7",)
    assert item.controls["nist80053"] == ("SC-8", "SC-8(1)", "SC-13")
    assert item.to_dict()["controls"] == {
        "soc2": ["CC6.7"],
        "iso27001": ["A.8.24", "A.5.14"],
        "nist80053": ["SC-8", "SC-8(1)", "SC-13"],
        "not_applicable": {},
    }
    reasons = load_catalog().get("10.2.3").controls.not_applicable
    assert set(reasons) == set(FRAMEWORKS)
    assert "commercial readiness" in reasons["soc2"]


def test_descriptions_are_our_own_one_liners() -> None:
    for framework in FRAMEWORKS:
        for control in load_controls().controls(framework):
            assert 10 < len(control.description) <= 120, control
            assert "\n" not in control.description


# --- identifier shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "control_id"),
    [
        ("soc2", "CC1.1"),
        ("soc2", "CC6.8"),
        ("soc2", "CC9.2"),
        ("soc2", "A1.3"),
        ("soc2", "C1.2"),
        ("soc2", "PI1.5"),
        ("soc2", "P6.7"),
        ("iso27001", "A.5.1"),
        ("iso27001", "A.5.37"),
        ("iso27001", "A.6.8"),
        ("iso27001", "A.7.14"),
        ("iso27001", "A.8.34"),
        ("nist80053", "AC-6"),
        ("nist80053", "AC-6(9)"),
        ("nist80053", "SC-51"),
        ("nist80053", "PM-32"),
        ("nist80053", "SR-12"),
    ],
)
def test_well_formed_control_ids(framework: str, control_id: str) -> None:
    assert control_id_problem(framework, control_id) is None


@pytest.mark.parametrize(
    ("framework", "control_id", "problem"),
    [
        ("soc2", "CC6.9", "series CC6 has criteria CC6.1..CC6.8"),
        ("soc2", "CC10.1", "is not a Trust Services Criterion"),
        ("soc2", "cc6.1", "is not a Trust Services Criterion"),
        ("soc2", "A1.4", "series A1 has criteria A1.1..A1.3"),
        ("soc2", "P9.1", "is not a Trust Services Criterion"),
        ("iso27001", "A.8.35", "theme A.8 has controls A.8.1..A.8.34"),
        ("iso27001", "A.9.1", "is not an Annex A control"),
        ("iso27001", "8.13", "is not an Annex A control"),
        ("iso27001", "A.12.3.1", "is not an Annex A control"),  # the 2013 numbering
        ("nist80053", "SC-52", "family SC has controls SC-1..SC-51"),
        ("nist80053", "XX-1", "XX is not a SP 800-53 Rev. 5 family"),
        ("nist80053", "ac-6", "is not a control such as SC-8"),
        ("nist80053", "AC-6.9", "is not a control such as SC-8"),  # OSCAL's form, not the file's
        ("nist80053", "AC-06", "is not a control such as SC-8"),
    ],
)
def test_malformed_control_ids(framework: str, control_id: str, problem: str) -> None:
    assert problem in (control_id_problem(framework, control_id) or "")


@pytest.mark.parametrize(
    ("control_id", "oscal"),
    [
        ("SC-8", "sc-8"),
        ("CP-9", "cp-9"),
        ("AC-6", "ac-6"),
        ("AC-6(1)", "ac-6.1"),
        ("SC-28(1)", "sc-28.1"),
    ],
)
def test_oscal_form_of_nist_ids(control_id: str, oscal: str) -> None:
    assert oscal_control_id(control_id) == oscal


# --- load-time validation: one clear line naming file, table and key ------------------------


def expect_error(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ControlsError) as caught:
        parse_controls(raw)
    assert message in str(caught.value)
    assert str(caught.value).startswith("controls.toml: ")


def test_the_packaged_file_is_valid(raw: dict[str, Any]) -> None:
    mapping = parse_controls(raw)
    mapping.check_items(load_catalog().ids)
    assert [len(mapping.controls(f)) for f in FRAMEWORKS] == [28, 38, 79]


def test_a_malformed_id_in_the_controls_table(raw: dict[str, Any]) -> None:
    raw["control"]["nist80053"]["SC-99"] = "Not a real control"
    expect_error(raw, "[control.nist80053].\"SC-99\": 'SC-99': family SC has controls SC-1..SC-51")


def test_an_item_naming_a_control_not_in_the_table(raw: dict[str, Any]) -> None:
    raw["item"]["6.2.2"]["soc2"] = ["CC6.7", "CC6.5"]
    expect_error(raw, '[item."6.2.2"].soc2: CC6.5 is not in [control.soc2]')


def test_an_item_naming_a_malformed_control(raw: dict[str, Any]) -> None:
    raw["item"]["6.2.2"]["iso27001"] = ["A.10.1"]
    expect_error(raw, "[item.\"6.2.2\"].iso27001: 'A.10.1' is not an Annex A control")


def test_a_framework_missing_from_an_item(raw: dict[str, Any]) -> None:
    del raw["item"]["3.2.4"]["nist80053"]
    expect_error(raw, '[item."3.2.4"].nist80053: expected a non-empty list of control IDs')


def test_an_empty_list_is_not_a_reason(raw: dict[str, Any]) -> None:
    raw["item"]["3.2.4"]["soc2"] = []
    expect_error(raw, '[item."3.2.4"].soc2: expected a non-empty list')


def test_none_needs_a_reason(raw: dict[str, Any]) -> None:
    raw["item"]["10.2.3"]["soc2"] = {"none": "  "}
    expect_error(raw, '[item."10.2.3"].soc2: expected { none = "reason" }')


def test_a_control_listed_twice(raw: dict[str, Any]) -> None:
    raw["item"]["6.2.1"]["nist80053"] = ["SC-28", "SC-28"]
    expect_error(raw, '[item."6.2.1"].nist80053: SC-28 is listed twice')


def test_an_unknown_framework_key(raw: dict[str, Any]) -> None:
    raw["item"]["6.2.1"]["pci"] = ["3.4"]
    expect_error(raw, "[item.\"6.2.1\"]: unknown key 'pci' (expected soc2, iso27001, nist80053)")


def test_a_control_no_item_uses(raw: dict[str, Any]) -> None:
    raw["control"]["iso27001"]["A.7.4"] = "Premises are watched for unauthorised physical access"
    expect_error(raw, '[control.iso27001]."A.7.4": no item maps to it')


def test_a_description_of_several_lines(raw: dict[str, Any]) -> None:
    raw["control"]["soc2"]["CC6.1"] = "first line\nsecond line"
    expect_error(raw, '[control.soc2]."CC6.1": the description must be one non-empty line')


def test_every_catalog_item_needs_a_table(raw: dict[str, Any]) -> None:
    del raw["item"]["7.2.3"]
    mapping = parse_controls(raw)
    with pytest.raises(ControlsError, match=r'no \[item\."7\.2\.3"\] table'):
        mapping.check_items(load_catalog().ids)


def test_an_item_the_catalog_does_not_have(raw: dict[str, Any]) -> None:
    raw["item"]["13.1.1"] = copy.deepcopy(raw["item"]["1.1.1"])
    mapping = parse_controls(raw)
    with pytest.raises(ControlsError, match=r"13\.1\.1 is not a checklist item"):
        mapping.check_items(load_catalog().ids)


# --- a control's status from its items ------------------------------------------------------


def items(**statuses: str) -> list[dict[str, Any]]:
    return [{"id": key.replace("_", "."), "status": value} for key, value in statuses.items()]


def test_a_control_fails_when_any_item_failed_or_erred() -> None:
    status, rule = control_status(items(i6_2_1="passed", i6_2_2="error", i1_2_1="not_covered"))
    assert status == "failed"
    assert rule.startswith("Failed: i6.2.2 error (a control fails when any of its items failed")


def test_a_control_none_of_whose_items_was_checked_is_not_assessed() -> None:
    status, rule = control_status(items(a="skipped", b="not_covered"))
    assert status == "not_assessed"
    assert rule == ("Not assessed: none of its 2 items was checked (a skipped, b not covered).")


def test_a_control_passes_only_when_every_item_passed_attested_or_waived() -> None:
    assert control_status(items(a="passed", b="attested"))[0] == "passed"
    status, rule = control_status(items(a="passed", b="waived"))
    assert status == "passed"
    assert "waived (a failure accepted, not fixed): b" in rule


def test_a_control_with_unchecked_items_and_no_failure_is_partly_assessed() -> None:
    status, rule = control_status(items(a="passed", b="skipped"))
    assert status == "partly_assessed"
    assert "1 of 2 items checked without a failure; not checked: b skipped" in rule


# --- vcci checklist --framework -------------------------------------------------------------


def test_cli_lists_controls_with_their_items(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_checklist(["--framework", "soc2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "SOC 2: AICPA Trust Services Criteria (2017, revised points of focus 2022)"
    at = next(n for n, line in enumerate(lines) if line.startswith("CC6.7 "))
    block = []
    for line in lines[at + 1 :]:
        if not line.startswith(" "):
            break
        block.append(line.split()[0])
    assert block == ["1.1.5", "1.2.1", "3.2.6", "4.1.1", "4.1.2", "6.2.2", "6.2.3", "12.1.1"]
    assert "No SOC 2 control applies to:" in out
    assert re.search(r"^  10\.2\.3 +Customer success team trained: Sales playbook", out, re.M)
    assert out.rstrip().endswith("28 controls; 91 of 92 items support at least one SOC 2 control.")


def test_cli_framework_json_groups_items_by_control(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_checklist(["--framework", "nist80053", "--section", "6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "NIST SP 800-53 Rev. 5"
    by_id = {c["id"]: c for c in data["controls"]}
    assert [i["id"] for i in by_id["SC-28"]["items"]] == ["6.2.1"]  # 1.1.4 is in section 1
    assert "CP-9" not in by_id  # no section-6 item supports it
    assert by_id["AU-2"]["description"] == "The events the system must log are chosen"
    assert data["not_applicable"] == []


def test_cli_json_carries_each_items_controls(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_checklist(["--json", "--section", "10"]) == 0
    data = {i["id"]: i["controls"] for i in json.loads(capsys.readouterr().out)}
    assert data["10.1.3"]["iso27001"] == ["A.5.37"]
    assert data["10.2.4"]["nist80053"] == []
    assert "SLA" in data["10.2.4"]["not_applicable"]["nist80053"]


def test_cli_unknown_framework_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checklist", "--framework", "pci"]) == 2
    err = capsys.readouterr().err
    assert "argument --framework: invalid choice: 'pci'" in err
    assert "Traceback" not in err


# --- the report pages -----------------------------------------------------------------------

CHECKS = """
import pytest

@pytest.mark.checklist("6.2.2")
def test_tls(evidence):
    evidence.check("TLS 1.3 offered", "no", "yes", False, where="api:443")

@pytest.mark.checklist("6.1.2")
def test_rbac(evidence):
    evidence.check("roles", 5, 6, False, where="idp")
"""


class Anchors(HTMLParser):
    """Element ids and link targets of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))


def anchors(path: Path) -> Anchors:
    parser = Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture
def report_dir(pytester: pytest.Pytester) -> Path:
    """6.2.2 fails, 6.2.1 passes, 6.1.2 fails but is waived, 10.2.1 is attested."""
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date()
    pytester.path.joinpath("attestations.toml").write_text(
        f"""[[attestation]]
item = "10.2.1"
statement = "Operations team completed the 2-day training"
attested_by = "Dana Ops"
role = "Head of Operations"
date = {today - dt.timedelta(days=3)}
expires = {today + dt.timedelta(days=300)}
reference = "OPS-1432"
"""
    )
    pytester.path.joinpath("waivers.toml").write_text(
        f"""[[waiver]]
item = "6.1.2"
justification = "The sixth role lands with the auditor portal"
approved_by = "Sam Risk"
approved_on = {today - dt.timedelta(days=1)}
expires_on = {today + dt.timedelta(days=30)}
ticket = "RISK-88"
"""
    )
    pytester.makepyfile(test_checks=CHECKS)
    write_passing(pytester, "6.2.1", "10.2.1")  # decided by the catalog's own checks
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
    assert result.ret == 1  # 6.2.2 (critical) blocks
    return pytester.path / "out"


def controls_of(out: Path, framework: str) -> dict[str, dict[str, Any]]:
    evidence = json.loads((out / "evidence.json").read_text())
    return {c["id"]: c for c in evidence["controls"][framework]["controls"]}


def test_evidence_derives_each_controls_status_from_its_items(report_dir: Path) -> None:
    soc2, nist = controls_of(report_dir, "soc2"), controls_of(report_dir, "nist80053")
    assert soc2["CC6.7"]["status"] == "failed"  # 6.2.2 failed
    assert soc2["CC6.7"]["rule"].startswith("Failed: 6.2.2 failed")
    assert nist["SC-13"]["status"] == "failed"  # 6.2.1 passed, 6.2.2 failed
    assert nist["SC-28(1)"]["status"] == "partly_assessed"  # 6.2.1 passed, 1.1.4 not covered
    assert "not checked: 1.1.4 not covered" in nist["SC-28(1)"]["rule"]
    assert nist["AC-3(7)"]["status"] == "passed"  # its only item, 6.1.2, is waived
    assert "waived (a failure accepted, not fixed): 6.1.2" in nist["AC-3(7)"]["rule"]
    assert nist["AT-3"]["status"] == "passed"  # 10.2.1 attested
    assert nist["CP-9"]["status"] == "not_assessed"
    assert nist["SC-13"]["items"] == ["6.2.1", "6.2.2"]
    evidence = json.loads((report_dir / "evidence.json").read_text())
    item = next(i for i in evidence["items"] if i["id"] == "6.2.2")
    assert item["controls"]["iso27001"] == ["A.8.24", "A.5.14"]
    soc2_na = evidence["controls"]["soc2"]["not_applicable"]
    assert [row["id"] for row in soc2_na] == ["10.2.3"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_framework_page_lists_every_control_and_links_to_evidence(
    report_dir: Path, framework: str
) -> None:
    page = report_dir / f"controls-{framework}.html"
    found = anchors(page)
    mapping = load_controls()
    for control in mapping.controls(framework):
        assert f"control-{control.id}" in found.ids, control.id
    checklist = anchors(report_dir / "checklist.html")
    evidence_links = [link for link in found.links if link.startswith("checklist.html#")]
    assert evidence_links
    for link in evidence_links:
        assert link.split("#", 1)[1] in checklist.ids, link  # every link lands on an item
    text = page.read_text()
    assert "a control fails when any of its items failed or erred" in text
    assert "own one-line summaries" in text  # the descriptions are not the framework's text


def test_checklist_links_to_the_pages_and_each_item_to_its_controls(report_dir: Path) -> None:
    checklist = anchors(report_dir / "checklist.html")
    for framework in FRAMEWORKS:
        assert f"controls-{framework}.html" in checklist.links
    assert "controls-soc2.html#control-CC6.7" in checklist.links
    assert "controls-nist80053.html#control-SC-8(1)" in checklist.links
    nist = anchors(report_dir / "controls-nist80053.html")
    for link in checklist.links:
        if link.startswith("controls-nist80053.html#"):
            assert link.split("#", 1)[1] in nist.ids, link
    text = (report_dir / "checklist.html").read_text()
    assert "none applies (Sales playbook, demo environment" in text  # 10.2.3's reason


def test_the_pages_are_in_the_manifest_and_verified(
    report_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((report_dir / "manifest.json").read_text())
    listed = [f["path"] for f in manifest["files"]]
    for framework in FRAMEWORKS:
        assert f"controls-{framework}.html" in listed
    page = report_dir / "controls-soc2.html"
    page.write_text(page.read_text().replace("failed</span>", "passed</span>", 1))
    capsys.readouterr()
    assert main(["verify", str(report_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(re.match(r"FAIL \S*controls-soc2\.html: changed: sha256", line) for line in lines), (
        lines
    )


# --- the README table -----------------------------------------------------------------------


def test_the_readme_mapping_table_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "controls_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_readme_table_has_every_item() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- controls:start -->", 1)[1].split("<!-- controls:end -->", 1)[0]
    rows = re.findall(r"^\| (\d{1,2}\.\d\.\d{1,2}) ", section, re.M)
    assert rows == list(load_catalog().ids)
    assert (
        "| 6.2.2 Encryption in transit verified | CC6.7 | A.8.24, A.5.14 | SC-8, SC-8(1), SC-13 |"
        in section
    )
