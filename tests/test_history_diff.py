"""Run history (--vcci-history) and ``vcci diff`` between two recorded runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from plugin_support import write_passing

from pytest_vcci.cli import main
from pytest_vcci.history import diff, stamp

# One run's checks; {replicas} and {nodes} decide what passes.
CHECKS = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas(evidence):
    evidence.check("replicas", {replicas}, ">= 3", {replicas} >= 3, where="deployment vcci/backend")

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", {nodes}, ">= 3", {nodes} >= 3)

@pytest.mark.checklist("1.1.2")
def test_database(evidence):
    evidence.check("postgres version", 15, ">= 15", True)
"""


def run(pytester: pytest.Pytester, replicas: int, nodes: int, *args: str) -> Path:
    write_passing(
        pytester, "3.2.4", "1.1.1", "1.1.2"
    )  # the catalog checks; the tests below add to them
    pytester.makepyfile(test_checks=CHECKS.format(replicas=replicas, nodes=nodes))
    out = f"out-{replicas}-{nodes}"
    pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", out, *args)
    return pytester.path / out


def vcci(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()  # drop what an in-process pytest run printed
    status = main(list(args))
    return status, capsys.readouterr().out.splitlines()


def evidence(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "evidence.json").read_text())
    return data


# --- history --------------------------------------------------------------------------------


def test_each_run_is_kept_under_environment_and_utc_timestamp(pytester: pytest.Pytester) -> None:
    first = run(pytester, 3, 3, "--vcci-history", "hist")
    second = run(pytester, 2, 3, "--vcci-history", "hist")
    env_dir = pytester.path / "hist" / "default"
    runs = sorted(p.name for p in env_dir.iterdir() if p.name != "latest")
    assert len(runs) == 2
    for name in runs:
        assert re.fullmatch(r"\d{8}T\d{6}Z(-[0-9a-f]{12})?", name)
    ids = [evidence(env_dir / name)["run"]["id"] for name in runs]
    assert ids == [evidence(first)["run"]["id"], evidence(second)["run"]["id"]]
    assert runs[0].startswith(stamp(evidence(first)["run"]["started_at"]))
    latest = env_dir / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == (env_dir / runs[1]).resolve()
    assert evidence(latest)["run"]["id"] == ids[1]
    # Each copy is the whole bundle, manifest included.
    assert sorted(p.name for p in (env_dir / runs[1]).iterdir()) == sorted(
        p.name for p in second.iterdir()
    )


def test_the_environment_name_is_the_folder(pytester: pytest.Pytester) -> None:
    env = pytester.path / "environments"
    env.mkdir()
    (env / "staging.toml").write_text('[environment]\nname = "staging"\n')
    run(pytester, 3, 3, "--vcci-env", "staging", "--vcci-history", "hist")
    assert (pytester.path / "hist" / "staging" / "latest" / "evidence.json").is_file()
    assert not (pytester.path / "hist" / "default").exists()


def test_the_terminal_says_where_the_run_was_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS.format(replicas=3, nodes=3))
    result = pytester.runpytest("-p", "no:cacheprovider", "--vcci-history", "hist")
    result.stdout.fnmatch_lines([f"history: {pytester.path / 'hist' / 'default'}/*"])


def test_checklist_html_shows_each_items_status_over_the_last_runs(
    pytester: pytest.Pytester,
) -> None:
    run(pytester, 3, 3, "--vcci-history", "hist")
    run(pytester, 2, 3, "--vcci-history", "hist")
    last = run(pytester, 3, 2, "--vcci-history", "hist")
    data = evidence(last)
    assert len(data["history"]["runs"]) == 3
    assert data["history"]["items"]["3.2.4"] == ["passed", "failed", "passed"]
    assert data["history"]["items"]["1.1.1"] == ["passed", "passed", "failed"]
    assert data["history"]["items"]["5.1.1"] == ["not_covered"] * 3
    html = (last / "checklist.html").read_text()
    item = html[html.index("id='item-3.2.4'") : html.index("id='item-3.2.5'")]
    trend = re.findall(r"class='tr s-(\w+)' title='([^']+)'", item)
    assert [status for status, _ in trend] == ["passed", "failed", "passed"]
    assert trend[-1][1] == f"{data['run']['started_at']}: passed"


def test_without_history_there_is_no_trend(pytester: pytest.Pytester) -> None:
    out = run(pytester, 3, 3)
    assert "history" not in evidence(out)
    assert "class='trend'" not in (out / "checklist.html").read_text()


# --- diff -----------------------------------------------------------------------------------


def test_diff_lists_the_regression_first_then_the_fix(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    old = run(pytester, 3, 2)  # 3.2.4 passes, 1.1.1 fails
    new = run(pytester, 2, 3)  # 3.2.4 fails, 1.1.1 passes; 1.1.2 passes in both
    status, lines = vcci(capsys, "diff", str(old), str(new))
    assert status == 1
    assert lines[0].startswith(f"vcci diff: default run {evidence(old)['run']['id']} (")
    body = lines[1:]
    assert body[0].split() == [
        "REGRESSION",
        "3.2.4",
        "high",
        "passed",
        "->",
        "failed",
        "Deployments",
        "applied",
    ]
    assert body[1] == (
        '    test_checks.py::test_replicas: deployment vcci/backend: replicas: 3 [pass, expected ">= 3"]'
        ' -> 2 [FAIL, expected ">= 3"]'
    )
    assert body[2].split()[:6] == ["FIXED", "1.1.1", "high", "failed", "->", "passed"]
    assert body[3] == (
        '    test_checks.py::test_cluster: nodes ready: 2 [FAIL, expected ">= 3"]'
        ' -> 3 [pass, expected ">= 3"]'
    )
    assert not any("1.1.2" in line for line in lines)
    assert lines[-1] == "1 regression(s), 1 fixed, 0 other change(s), 90 unchanged"


def test_diff_without_a_regression_exits_0(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    old = run(pytester, 2, 3)
    new = run(pytester, 3, 3)
    status, lines = vcci(capsys, "diff", str(old), str(new))
    assert status == 0
    assert lines[-1] == "0 regression(s), 1 fixed, 0 other change(s), 91 unchanged"
    status, lines = vcci(capsys, "diff", str(new), str(new))
    assert status == 0
    assert lines[-1] == "0 regression(s), 0 fixed, 0 other change(s), 92 unchanged"


def test_diff_reads_the_history_and_its_latest_pointer(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    run(pytester, 3, 3, "--vcci-history", "hist")
    run(pytester, 2, 3, "--vcci-history", "hist")
    env_dir = pytester.path / "hist" / "default"
    first = sorted(p for p in env_dir.iterdir() if p.name != "latest")[0]
    status, lines = vcci(capsys, "diff", str(first), str(env_dir / "latest"))
    assert status == 1
    assert lines[1].split()[:2] == ["REGRESSION", "3.2.4"]
    status, _ = vcci(capsys, "diff", str(first), str(env_dir))  # a folder with a latest pointer
    assert status == 1


def test_diff_json(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    old = run(pytester, 3, 2)
    new = run(pytester, 2, 3)
    status, lines = vcci(capsys, "diff", str(old), str(new), "--json")
    assert status == 1
    data = json.loads("\n".join(lines))
    assert [(c["id"], c["kind"], c["old"], c["new"]) for c in data["changes"]] == [
        ("3.2.4", "regression", "passed", "failed"),
        ("1.1.1", "fixed", "failed", "passed"),
    ]
    assert data["regressions"] == 1
    assert data["unchanged"] == 90
    assert data["new"]["id"] == evidence(new)["run"]["id"]


def test_diff_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "no evidence.json here" in capsys.readouterr().err
    (tmp_path / "evidence.json").write_text("{not json")
    assert main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def item(item_id: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "title": "t", "severity": "high", "status": status, "tests": []}


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("passed", "failed", "regression"),
        ("skipped", "error", "regression"),
        ("not_covered", "failed", "regression"),
        ("waived", "failed", "regression"),
        ("failed", "waived", "fixed"),
        ("error", "passed", "fixed"),
        ("passed", "skipped", "changed"),
        ("failed", "error", "changed"),
        ("passed", "waived", "changed"),
    ],
)
def test_what_counts_as_a_regression(old: str, new: str, kind: str) -> None:
    changes, unchanged = diff({"items": [item("1.1.1", old)]}, {"items": [item("1.1.1", new)]})
    assert [c.kind for c in changes] == [kind]
    assert unchanged == 0
