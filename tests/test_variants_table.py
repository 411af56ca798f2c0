"""scripts/variants_table.py: failing variants per item, counted from the tests' source."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "variants_table.py"

VARIANTS = """
import pytest
from variants import assert_fails, assert_only


def test_one_defect(good, broken):
    assert_only(broken, good, "3.2.4", "deployment vcci-staging/backend")


def test_three_defects_in_one_run(good, broken):
    assert_fails(broken, good, {"3.2.9": ["worker"], "1.2.5": ["digest"], "6.1.2": ["403"]})


@pytest.mark.parametrize(
    ("database", "item_id"),
    [("vcci_no_btree_gin", "2.1.1"), pytest.param("vcci_old_head", "2.1.2", id="old")],
)
def test_parametrized(good, broken, database, item_id):
    assert_only(broken, good, item_id, database)


def test_older_helpers(good, broken, items):
    assert newly_failing(good, items) == {"1.1.3"}
    assert only_broken(good, broken, "10.1.4")


def test_deliberate_finding_of_the_good_run(good_items):
    statuses = {i: item["status"] for i, item in good_items.items()}
    assert statuses["1.2.1"] == "failed"
    assert good_items["5.2.3"]["status"] == "failed"


def test_not_a_failure(good_items):
    assert good_items["3.2.2"]["status"] == "passed"
    assert "3.2.3" in good_items


def helper_not_a_test(broken, good):
    assert_only(broken, good, "3.2.5")
"""


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("variants_table", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_counts_each_way_a_test_asserts_an_item_fails(tmp_path: Path) -> None:
    (tmp_path / "test_broken_x.py").write_text(VARIANTS)
    found = script().failing_variants(tmp_path)
    assert {item: len(tests) for item, tests in found.items()} == {
        "3.2.4": 1,
        "3.2.9": 1,
        "1.2.5": 1,
        "6.1.2": 1,
        "2.1.1": 1,
        "2.1.2": 1,
        "1.1.3": 1,
        "10.1.4": 1,
        "1.2.1": 1,
        "5.2.3": 1,
    }
    assert found["2.1.1"][0].endswith("test_broken_x.py::test_parametrized[0]")
    assert found["2.1.2"][0].endswith("test_broken_x.py::test_parametrized[1]")
    assert found["6.1.2"][0].endswith("test_broken_x.py::test_three_defects_in_one_run")


def test_table_lists_automated_and_hybrid_items_and_those_at_zero() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, check=True
    )
    data = json.loads(done.stdout)
    rows = {row["id"]: row for row in data["items"]}
    assert len(rows) == 86  # 92 items less the 6 attestation items
    assert "10.2.1" not in rows
    assert data["total"] == sum(row["variants"] for row in rows.values())
    assert data["at_zero"] == [i for i, row in rows.items() if row["variants"] == 0]
    # The broken-variant tests of today: 3.2.4 fails with two backend replicas.
    assert rows["3.2.4"]["tests"] == [
        "tests/suites/test_broken_03_05.py::test_two_backend_replicas_fail_3_2_4"
    ]
    text = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True
    ).stdout
    assert f"{data['total']} failing variants; " in text
    assert text.rstrip().endswith(", ".join(data["at_zero"]))
    checked = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True)
    assert checked.returncode == (1 if data["at_zero"] else 0)
