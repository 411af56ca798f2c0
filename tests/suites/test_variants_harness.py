"""The broken-variant harness's assertions, on item dicts as evidence.json holds them."""

from __future__ import annotations

from typing import Any

import pytest
from variants import assert_fails, assert_only


def item(status: str, *messages: str) -> dict[str, Any]:
    return {
        "status": status,
        "tests": [{"nodeid": f"t{i}", "message": m} for i, m in enumerate(messages)],
    }


GOOD = {
    "3.2.4": item("passed"),
    "3.2.9": item("passed"),
    "1.2.5": item("skipped", "undecided: no workload"),
    "6.1.2": item("passed"),
}


def broken(**changes: dict[str, Any]) -> dict[str, Any]:
    return {**GOOD, **{k.replace("_", "."): v for k, v in changes.items()}}


def test_several_defects_in_one_run() -> None:
    run = broken(
        **{
            "3_2_4": item("failed", "deployment vcci-staging/backend: replicas: observed 2"),
            "3_2_9": item("failed", "deployment vcci-staging/worker container worker: cpu request"),
        }
    )
    assert_fails(run, GOOD, {"3.2.4": ["backend: replicas"], "3.2.9": ["worker", "cpu request"]})
    assert_only(
        broken(**{"3_2_4": item("failed", "backend: replicas: observed 2")}),
        GOOD,
        "3.2.4",
        "backend",
    )


@pytest.mark.parametrize(
    ("run", "defects", "why"),
    [
        # A defect that did not make its item fail.
        (broken(), {"3.2.4": []}, "3.2.4"),
        # Another item changed too: the defects were not independent.
        (
            broken(**{"3_2_4": item("failed", "x"), "6_1_2": item("failed", "y")}),
            {"3.2.4": ["x"]},
            "6.1.2",
        ),
        # The item failed, but not with the observation the defect should cause.
        (
            broken(**{"3_2_4": item("failed", "pods not ready")}),
            {"3.2.4": ["replicas"]},
            "replicas",
        ),
        # Undecided is not failed.
        (broken(**{"3_2_4": item("skipped", "undecided: x")}), {"3.2.4": []}, "skipped"),
    ],
    ids=["not-failed", "not-independent", "wrong-observation", "undecided"],
)
def test_what_assert_fails_refuses(run: dict[str, Any], defects: dict[str, Any], why: str) -> None:
    with pytest.raises(AssertionError, match=why):
        assert_fails(run, GOOD, defects)
