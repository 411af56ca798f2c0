"""The sandbox's attestations: one valid record per human fact, and its two deliberate dates,
all relative to the day the sandbox starts (nothing ages out: no date needs refreshing)."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from pytest_vcci.attestations import load_attestations
from pytest_vcci.checklist import Automation, load_catalog
from pytest_vcci.sandbox import ATTESTATIONS, ATTESTATIONS_AS_OF, attestations_as_of

TODAY = dt.datetime.now(dt.UTC).date()
# Today, and days the sandbox may start on long after the file was written.
START_DAYS = [TODAY, dt.date(2027, 2, 15), dt.date(2031, 12, 1), dt.date(2040, 6, 30)]
DELIBERATELY_EXPIRED = {"10.2.3"}
RESTORE_DRILL_MAX_AGE_DAYS = 90  # the 8.2.1 suite's rule on the drill's date


def records_on(start: dt.date, directory: Path):
    path = directory / f"attestations-{start}.toml"
    path.write_text(attestations_as_of(start))
    return load_attestations(path, set(load_catalog().ids))


def human_items() -> list[str]:
    return [i.id for i in load_catalog().items if i.automation is not Automation.AUTOMATED]


def test_every_attestation_and_hybrid_item_has_a_record(tmp_path):
    recorded = {r.item for r in records_on(TODAY, tmp_path).records}
    assert [i for i in human_items() if i not in recorded] == []


@pytest.mark.parametrize("start", START_DAYS, ids=str)
def test_records_are_valid_for_years_on_any_start_day(tmp_path, start):
    records = records_on(start, tmp_path)
    for item_id in sorted(set(human_items()) - DELIBERATELY_EXPIRED):
        verdict = records.check(item_id, today=start)
        assert verdict.valid, verdict.problem
        assert verdict.record is not None
        assert verdict.record.expires >= start + dt.timedelta(days=365 * 4), item_id


@pytest.mark.parametrize("start", START_DAYS, ids=str)
def test_customer_success_training_is_expired_on_any_start_day(tmp_path, start):
    expired_on = start - dt.timedelta(days=68)
    verdict = records_on(start, tmp_path).check("10.2.3", today=start)
    assert verdict.problem == (
        f"attestation for 10.2.3 expired on {expired_on} (Sofia Marin, ref CS-0219)"
    )


@pytest.mark.parametrize("start", START_DAYS, ids=str)
def test_restore_drill_is_six_days_old_on_any_start_day(tmp_path, start):
    drill = records_on(start, tmp_path).check("8.2.1", today=start).record
    assert drill is not None
    assert (start - drill.date).days == 6 <= RESTORE_DRILL_MAX_AGE_DAYS
    # The days its statement names move with it.
    assert f"Point-in-time recovery to {drill.date} 09:30:00 UTC tested" in drill.statement


def test_the_packaged_file_is_written_as_of_its_anchor_day():
    # On the anchor day the copy is the packaged file itself: nothing else changes it.
    assert attestations_as_of(ATTESTATIONS_AS_OF) == ATTESTATIONS.read_text(encoding="utf-8")
    dates = [r["date"] for r in tomllib.loads(ATTESTATIONS.read_text())["attestation"]]
    assert max(dates) <= ATTESTATIONS_AS_OF


def test_signoff_by_cto_and_vp_engineering(tmp_path):
    roles = load_catalog().get("12.2.2").thresholds["signoff_roles"]
    records = records_on(TODAY, tmp_path).records
    signed = {r.role for r in records if r.item == "12.2.2" and r.expires >= TODAY}
    assert set(roles) <= signed
