"""The ``@pytest.mark.checklist`` marker: registration, validation errors, where IDs come from."""

from __future__ import annotations

import pytest
from plugin_support import items_by_id, nodeid_map, read_evidence


def test_markers_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.checklist(*ids): the GL-VCCI checklist item(s) this test checks*",
            "@pytest.mark.intrusive: *--vcci-allow-intrusive*",
        ]
    )


def test_marker_is_known_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("3.2.4")
        def test_replicas():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        pytest.param('"3.2"', "'3.2' is not a well-formed checklist ID (expected *", id="short"),
        pytest.param("327", 'checklist ID must be a string like "3.2.4", got 327', id="int"),
        pytest.param("", "@pytest.mark.checklist needs at least one item ID*", id="no-args"),
        pytest.param(
            '"3.2.99"',
            "unknown checklist ID '3.2.99'; subsection 3.2 holds 3.2.1..3.2.9*",
            id="unknown",
        ),
        pytest.param('"3.2.4", "99.1.1"', "unknown checklist ID '99.1.1'*", id="second-unknown"),
        pytest.param(
            '"3.2.4", severity="high"',
            "@pytest.mark.checklist takes IDs only, not severity=",
            id="kwargs",
        ),
    ],
)
def test_bad_marker_is_a_collection_error_naming_file_and_line(
    pytester: pytest.Pytester, args: str, problem: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest


        @pytest.mark.checklist({args})
        def test_deploy():
            pass


        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"test_bad.py:4: test_deploy: {problem}"])
    assert "Traceback" not in result.stdout.str()
    # A collection error is not a verdict: no tests ran, and nothing claims the run was ready.
    assert "verdict: READY" not in result.stdout.str()


def test_bad_marker_is_a_collection_error_with_options_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.checklist("1.1.99")
        def test_k8s():
            pass
        """
    )
    result = pytester.runpytest("--vcci-report-dir", "out")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_bad.py:3: test_k8s: unknown checklist ID '1.1.99'*"])
    assert read_evidence(pytester, "out")["run"]["verdict"] == "incomplete"


def test_bad_class_mark_names_the_test_and_its_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.checklist("3.2.77")
        class TestDeployment:
            def test_replicas(self):
                pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_bad.py:5: test_replicas: unknown checklist ID '3.2.77'*"])


def test_bad_module_mark(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        pytestmark = [pytest.mark.checklist("12.3.1")]

        def test_soak():
            pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_bad.py:5: test_soak: unknown checklist ID '12.3.1'*"])


def test_bad_param_mark_names_the_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.parametrize(
            "n", [1, pytest.param(2, marks=pytest.mark.checklist("5.1.9"))]
        )
        def test_scrape(n):
            pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["test_bad.py:3: test_scrape[[]2[]]: unknown checklist ID '5.1.9'*"]
    )


def test_ids_from_function_class_module_and_params(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marks="""
        import pytest

        pytestmark = pytest.mark.checklist("1.1.1")

        @pytest.mark.checklist("3.2.4")
        class TestDeployment:
            @pytest.mark.checklist("3.2.5", "3.2.6")
            def test_many(self):
                pass

            def test_class_only(self):
                pass

        @pytest.mark.parametrize(
            "n", [1, pytest.param(2, marks=pytest.mark.checklist("5.1.1"))]
        )
        def test_param(n):
            pass
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=4)
    data = read_evidence(pytester)
    tests = nodeid_map(data)
    assert {nodeid: set(t["checklist"]) for nodeid, t in tests.items()} == {
        "test_marks.py::TestDeployment::test_many": {"3.2.5", "3.2.6", "3.2.4", "1.1.1"},
        "test_marks.py::TestDeployment::test_class_only": {"3.2.4", "1.1.1"},
        "test_marks.py::test_param[1]": {"1.1.1"},
        "test_marks.py::test_param[2]": {"5.1.1", "1.1.1"},
    }
    items = items_by_id(data)
    assert [t["nodeid"] for t in items["3.2.5"]["tests"]] == [
        "test_marks.py::TestDeployment::test_many"
    ]
    assert [t["nodeid"] for t in items["5.1.1"]["tests"]] == ["test_marks.py::test_param[2]"]
    assert len(items["1.1.1"]["tests"]) == 4
    # Covered, but none of these tests is a check the catalog names: every criterion undecided.
    assert {i: items[i]["status"] for i in ("1.1.1", "3.2.4", "3.2.5", "3.2.6", "5.1.1")} == {
        "1.1.1": "skipped",
        "3.2.4": "skipped",
        "3.2.5": "skipped",
        "3.2.6": "skipped",
        "5.1.1": "skipped",
    }
    assert items["3.2.7"]["status"] == "not_covered"


def test_item_status_is_worst_of_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("3.2.4", "3.2.5")
        def test_passes():
            pass

        @pytest.mark.checklist("3.2.4")
        def test_fails():
            assert 1 == 2

        @pytest.mark.checklist("3.2.5")
        def test_every_service_has_endpoints():
            pytest.skip("not today")

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        @pytest.mark.checklist("3.2.6")
        def test_errors(broken):
            pass

        @pytest.mark.checklist("3.2.6")
        def test_also_fails():
            assert False
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=2, skipped=1, errors=1)
    items = items_by_id(read_evidence(pytester))
    assert items["3.2.4"]["status"] == "failed"
    assert items["3.2.5"]["status"] == "skipped"
    assert "\n- All services have endpoints: not today" in items["3.2.5"]["message"]
    assert items["3.2.6"]["status"] == "error"
    assert items["3.2.6"]["message"] == "fixture broke"
