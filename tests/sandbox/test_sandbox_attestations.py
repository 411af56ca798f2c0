"""The sandbox's attestations file: one valid record per human fact, and its two deliberate dates.

This is where the demo's dates are watched: the records must outlive the demo by years, 10.2.3
must stay expired (a finding the demo shows), and the 8.2.1 restore drill must be at most 90
days old for the 8.2.1 suite. When that drill ages out, the test below says what to change.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_vcci.attestations import load_attestations
from pytest_vcci.checklist import Automation, load_catalog
from pytest_vcci.sandbox import ATTESTATIONS

TODAY = dt.datetime.now(dt.UTC).date()
DELIBERATELY_EXPIRED = {"10.2.3"}
RESTORE_DRILL_MAX_AGE_DAYS = 90  # the 8.2.1 suite's rule on the drill's date


@pytest.fixture(scope="module")
def records():
    catalog = load_catalog()
    return load_attestations(ATTESTATIONS, set(catalog.ids))


def human_items() -> list[str]:
    return [i.id for i in load_catalog().items if i.automation is not Automation.AUTOMATED]


def test_every_attestation_and_hybrid_item_has_a_record(records):
    recorded = {r.item for r in records.records}
    assert [i for i in human_items() if i not in recorded] == []


@pytest.mark.parametrize("item_id", sorted(set(human_items()) - DELIBERATELY_EXPIRED))
def test_record_is_valid_and_outlives_the_demo(records, item_id):
    verdict = records.check(item_id, today=TODAY)
    assert verdict.valid, verdict.problem
    assert verdict.record is not None
    assert verdict.record.expires >= TODAY + dt.timedelta(days=365), (
        f"{ATTESTATIONS}: the {item_id} record expires on {verdict.record.expires}: "
        "move its expiry years ahead so the demo keeps its shape"
    )


def test_customer_success_training_stays_expired(records):
    verdict = records.check("10.2.3", today=TODAY)
    assert (
        verdict.problem == "attestation for 10.2.3 expired on 2026-09-15 (Sofia Marin, ref CS-0219)"
    )


def test_restore_drill_is_recent_enough_for_8_2_1(records):
    drill = records.check("8.2.1", today=TODAY).record
    assert drill is not None
    age = (TODAY - drill.date).days
    assert age <= RESTORE_DRILL_MAX_AGE_DAYS, (
        f"{ATTESTATIONS}: the 8.2.1 restore drill of {drill.date} is {age} days old, more than "
        f"{RESTORE_DRILL_MAX_AGE_DAYS}: set its date (and reference) to a recent day, or the "
        "sandbox's 8.2.1 check fails"
    )


def test_signoff_by_cto_and_vp_engineering(records):
    roles = load_catalog().get("12.2.2").thresholds["signoff_roles"]
    signed = {r.role for r in records.records if r.item == "12.2.2" and r.expires >= TODAY}
    assert set(roles) <= signed
