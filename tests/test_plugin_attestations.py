"""Attestation items: satisfied by a valid record, never by a test that merely passes."""

from __future__ import annotations

import datetime as dt

import pytest
from plugin_support import covered, items_by_id, nodeid_map, output, read_evidence, write_env

from pytest_vcci.attestations import AttestationRecord, Attestations

RECORDS = """
[[attestation]]
item = "10.2.1"
statement = "Operations team completed the 2-day training"
attested_by = "Dana Ops"
role = "Head of Operations"
date = 2025-01-02
expires = 2099-10-02
reference = "OPS-1432"

[[attestation]]
item = "10.2.2"
statement = "Support runbook reviewed"
attested_by = "Sam Support"
role = "Support Lead"
date = 2020-01-02
expires = 2021-10-02
reference = "SUP-7"

[[attestation]]
item = "8.1.3"
statement = "Restore drill witnessed"
attested_by = "Rita DBA"
role = "DBA"
date = 2025-03-01
expires = 2099-03-01
reference = "DR-12"
"""

SUITE = """
import pytest

@pytest.mark.checklist("10.2.1")
def test_training(attest):
    record = attest("10.2.1")
    assert record.reference == "OPS-1432"

@pytest.mark.checklist("10.2.2")
def test_runbook(attest):
    attest("10.2.2")

@pytest.mark.checklist("10.2.3")
def test_handover(attest):
    attest("10.2.3")

@pytest.mark.checklist("11.1.4")
def test_signoff_without_record():
    pass

@pytest.mark.checklist("8.1.3")
def test_restore_drill(attest):
    attest("8.1.3")
"""


def run_suite(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    write_env(pytester, RECORDS, "attestations.toml")
    pytester.makepyfile(test_attest=SUITE)
    result = pytester.runpytest("-rA", "-vv", *args)
    return result, read_evidence(pytester)


def test_attestation_statuses(pytester: pytest.Pytester) -> None:
    result, data = run_suite(pytester, "--vcci-attestations", "attestations.toml")

    result.assert_outcomes(passed=3, failed=2)
    assert covered(data) == {
        "10.2.1": "attested",
        "10.2.2": "failed",
        "10.2.3": "failed",
        "11.1.4": "failed",
        # A hybrid item with a record but none of its automated checks: those are undecided.
        "8.1.3": "skipped",
    }
    items = items_by_id(data)
    assert items["8.1.3"]["message"].startswith("2 criteria undecided:\n")
    assert (
        "- Kubernetes manifests versioned (Git): test_manifests_committed did not run"
        in (items["8.1.3"]["message"])
    )
    statuses = {c["text"]: c["status"] for c in items["8.1.3"]["criteria_status"]}
    assert (
        statuses["ConfigMaps exported"]
        == statuses["Secrets documented (not exported)"]
        == ("attested")
    )
    assert items["10.2.2"]["message"] == (
        "attestation for 10.2.2 expired on 2021-10-02 (Sam Support, ref SUP-7)"
    )
    assert items["10.2.3"]["message"] == "no attestation record for 10.2.3 in attestations.toml"
    assert items["11.1.4"]["message"] == "attestation item passed without an attestation record"
    # 11.1.4 is high: a passing test without a record blocks at the default gate.
    assert data["run"]["verdict"] == "blocked"
    assert "11.1.4" in data["run"]["blocking"]
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_attest.py::test_runbook - Failed: attestation for 10.2.2 expired on 2021-10-02*",
            "FAILED test_attest.py::test_handover - Failed: no attestation record for 10.2.3 in attestations.toml",
        ]
    )


def test_attestation_record_is_kept_as_evidence(pytester: pytest.Pytester) -> None:
    _, data = run_suite(pytester, "--vcci-attestations", "attestations.toml")

    test = nodeid_map(data)["test_attest.py::test_training"]
    assert test["attestations"] == [
        {
            "item": "10.2.1",
            "statement": "Operations team completed the 2-day training",
            "attested_by": "Dana Ops",
            "role": "Head of Operations",
            "date": "2025-01-02",
            "expires": "2099-10-02",
            "reference": "OPS-1432",
        }
    ]
    [observation] = test["observations"]
    assert observation["name"] == "attestation"
    assert observation["passed"] is True
    assert "Dana Ops" in observation["observed"]
    assert observation["where"] == "attestations.toml"
    expired = nodeid_map(data)["test_attest.py::test_runbook"]
    assert expired["observations"][0]["passed"] is False


def test_a_record_attests_only_its_own_item(pytester: pytest.Pytester) -> None:
    write_env(pytester, RECORDS, "attestations.toml")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("10.2.1", "10.2.3", "3.2.4")
        def test_training_and_handover(attest):
            attest("10.2.1")
        """
    )
    result = pytester.runpytest("--vcci-attestations", "attestations.toml")

    result.assert_outcomes(passed=1)
    data = read_evidence(pytester)
    # The test is none of 3.2.4's checks: it decides none of its criteria.
    assert covered(data) == {"10.2.1": "attested", "10.2.3": "failed", "3.2.4": "skipped"}
    assert items_by_id(data)["10.2.3"]["message"] == (
        "attestation item passed without an attestation record"
    )


def test_attestations_file_from_environment_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "environments").mkdir()
    write_env(
        pytester,
        '[environment]\nname = "staging"\nattestations = "records/att.toml"\n',
        "environments/staging.toml",
    )
    (pytester.path / "environments" / "records").mkdir()
    write_env(pytester, RECORDS, "environments/records/att.toml")
    pytester.makepyfile(test_attest=SUITE)
    result = pytester.runpytest("--vcci-env", "staging")

    result.assert_outcomes(passed=3, failed=2)
    assert covered(read_evidence(pytester))["10.2.1"] == "attested"


def test_no_attestations_file_fails_attest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_attest=SUITE)
    result = pytester.runpytest("-rf")

    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        ["*no attestation record for 10.2.1 in <no attestations file configured>*"]
    )
    assert set(covered(read_evidence(pytester)).values()) == {"failed"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("[[attestation]\n", "ERROR: att.toml: not valid TOML: *", id="invalid-toml"),
        pytest.param(
            '[[attestation]]\nitem = "10.2.1"\n',
            "ERROR: att.toml: [[][[]attestation]] #1.statement: required key is missing",
            id="missing-key",
        ),
        pytest.param(
            RECORDS.replace('reference = "OPS-1432"', 'reference = "OPS-1432"\nsigned = true'),
            "ERROR: att.toml: [[][[]attestation]] #1.signed: unknown key (expected one of: item, *)",
            id="unknown-key",
        ),
        pytest.param(
            RECORDS.replace('item = "10.2.2"', 'item = "10.2.9"'),
            "ERROR: att.toml: [[][[]attestation]] #2.item: unknown checklist ID '10.2.9'",
            id="unknown-item",
        ),
        pytest.param(
            RECORDS.replace("expires = 2099-10-02", "expires = 2024-10-02"),
            "ERROR: att.toml: [[][[]attestation]] #1.expires: must be after date",
            id="expires-before-date",
        ),
        pytest.param(
            RECORDS.replace("date = 2025-01-02", 'date = "last week"'),
            "ERROR: att.toml: [[][[]attestation]] #1.date: Input should be a valid date*",
            id="bad-date",
        ),
        pytest.param(
            RECORDS.replace('attested_by = "Dana Ops"', 'attested_by = "  "'),
            "ERROR: att.toml: [[][[]attestation]] #1.attested_by: Value error, must not be empty",
            id="blank",
        ),
        pytest.param(
            '[attestations]\nitem = "10.2.1"\n',
            "ERROR: att.toml: [[]attestations]: unknown table (expected [[][[]attestation]])",
            id="unknown-table",
        ),
        pytest.param(
            'attestation = "10.2.1"\n',
            "ERROR: att.toml: [[]attestation]: expected an array of tables: [[][[]attestation]]",
            id="not-an-array",
        ),
    ],
)
def test_malformed_attestations_file_is_one_line_usage_error(
    pytester: pytest.Pytester, content: str, expected: str
) -> None:
    write_env(pytester, content, "att.toml")
    pytester.makepyfile(test_attest=SUITE)
    result = pytester.runpytest("--vcci-attestations", "att.toml")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    from fnmatch import fnmatch

    assert fnmatch(lines[0], expected), lines[0]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "ERROR: att.toml: attestations file not found"),
        ("directory", "ERROR: att.toml: cannot read: Is a directory"),
        ("binary", "ERROR: att.toml: not valid TOML: not UTF-8*"),
    ],
)
def test_unreadable_attestations_file(pytester: pytest.Pytester, setup: str, expected: str) -> None:
    if setup == "directory":
        pytester.mkdir("att.toml")
    elif setup == "binary":
        (pytester.path / "att.toml").write_bytes(b"\xff\xfe\x00junk")
    pytester.makepyfile(test_attest=SUITE)
    result = pytester.runpytest("--vcci-attestations", "att.toml")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "Traceback" not in text
    result.stderr.fnmatch_lines([expected])


# --- unit ---------------------------------------------------------------------------------


def record(item: str, date: str, expires: str, reference: str = "R-1") -> AttestationRecord:
    return AttestationRecord(
        item=item,
        statement="s",
        attested_by="A",
        role="R",
        date=dt.date.fromisoformat(date),
        expires=dt.date.fromisoformat(expires),
        reference=reference,
    )


def test_check_picks_the_latest_current_record() -> None:
    records = Attestations(
        [
            record("10.2.1", "2024-01-01", "2024-12-31", "OLD"),
            record("10.2.1", "2025-01-01", "2025-12-31", "NEW"),
        ],
        "att.toml",
    )
    today = dt.date(2025, 6, 1)
    verdict = records.check("10.2.1", today)
    assert (verdict.valid, verdict.record.reference) == (True, "NEW")  # type: ignore[union-attr]

    # The expiry day itself still counts; the day after does not.
    assert records.check("10.2.1", dt.date(2025, 12, 31)).valid
    late = records.check("10.2.1", dt.date(2026, 1, 1))
    assert not late.valid
    assert late.problem == "attestation for 10.2.1 expired on 2025-12-31 (A, ref NEW)"
    missing = records.check("10.2.2", today)
    assert (missing.record, missing.problem) == (
        None,
        "no attestation record for 10.2.2 in att.toml",
    )
