"""The checklist from an installed package: the suites ship in the wheel as pytest_vcci.suites,
`pytest --vcci-suites` / `vcci run` collect them from any directory, and an installed wheel runs
all 92 items with the statuses a run from this repository gives."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import pytest_vcci
from pytest_vcci.checklist.locate import suite_directories
from pytest_vcci.run_cli import pytest_arguments

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(pytest_vcci.__file__).parent


def test_every_package_under_pytest_vcci_ships() -> None:
    """pyproject.toml lists the packages (the suites are mapped in, so they cannot be found):
    a package directory added under pytest_vcci/ and not listed would silently miss the wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    present = {
        ".".join(path.relative_to(PACKAGE.parent).parts)
        for path in [PACKAGE, *PACKAGE.rglob("*")]
        if path.is_dir()
        and path.name.isidentifier()
        and path.name != "__pycache__"
        and any(p.is_file() and "__pycache__" not in p.parts for p in path.rglob("*"))
    }
    assert present - listed == set(), "add them to [tool.setuptools].packages"
    assert listed - present == {"pytest_vcci.suites"}
    assert setuptools["package-dir"] == {"pytest_vcci.suites": "suites"}


def test_the_suites_are_found_as_a_package() -> None:
    assert suite_directories() == [ROOT / "suites"]  # the editable install maps it here
    assert (ROOT / "suites" / "__init__.py").is_file()


def test_vcci_run_spells_out_its_aliases_and_passes_the_rest() -> None:
    assert pytest_arguments(
        ["--env", "staging", "-n", "auto", "--vcci-gate=critical", "checks/"]
    ) == [
        "--vcci-suites",
        "--vcci-env",
        "staging",
        "-n",
        "auto",
        "--vcci-gate=critical",
        "checks/",
    ]
    assert pytest_arguments(["--config=prod.toml", "--gate", "low"]) == [
        "--vcci-suites",
        "--vcci-config=prod.toml",
        "--vcci-gate",
        "low",
    ]


OWN_CHECK = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_own_check(evidence):
    evidence.check("answers", True, True, True)
"""


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_vcci_suites_collects_the_suites_and_the_paths_given(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("checks").joinpath("test_own.py").write_text(OWN_CHECK)
    pytester.makepyfile(test_unrelated="def test_unrelated():\n    pass\n")
    result = pytester.runpytest("--vcci-suites", "checks", "--collect-only", "-q")
    ids = collected(result)
    assert "checks/test_own.py::test_own_check" in ids
    assert "test_01_pre_deployment.py::test_cluster_version" in ids
    assert not any("test_unrelated" in i for i in ids)  # only the paths named


def test_vcci_suites_without_paths_collects_only_the_suites(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unrelated="def test_unrelated():\n    pass\n")
    ids = collected(pytester.runpytest("--vcci-suites", "--collect-only", "-q"))
    assert "test_12_post_deployment.py::test_readiness_report_complete" in ids
    assert not any("test_unrelated" in i for i in ids)  # the directory's own tests stay out
    files = {i.split("::")[0] for i in ids}
    assert files == {p.name for p in (ROOT / "suites").glob("test_*.py")}


# --- the wheel, installed outside the repository ----------------------------------------------


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def install_wheel(tmp_path: Path) -> Path:
    """Build the wheel, make a fresh virtualenv, install wheel[sandbox]; the venv's bin/."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (scripts/bootstrap.sh installs it)")
    built = run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)], ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("pytest_vcci-*.whl")
    venv = tmp_path / "venv"
    assert run([uv, "venv", "-q", "--python", sys.executable, str(venv)], tmp_path).returncode == 0
    install = [
        uv,
        "pip",
        "install",
        "-q",
        "--python",
        str(venv / "bin" / "python"),
        f"{wheel}[sandbox]",
    ]
    # From uv's cache when it holds everything (seconds); else from the package index.
    if run([*install, "--offline"], tmp_path).returncode != 0:
        online = run(install, tmp_path)
        assert online.returncode == 0, online.stderr
    return venv / "bin"


def statuses(report_dir: Path) -> tuple[dict[str, str], set[str], dict[str, Any]]:
    evidence = json.loads((report_dir / "evidence.json").read_text())
    items = {item["id"]: item["status"] for item in evidence["items"]}
    # A node ID's path is relative to the rootdir, which here holds the virtualenv: keep what
    # follows suites/ (in a clone, "suites/test_x.py::t"; installed, ".../pytest_vcci/suites/...").
    tests = {re.sub(r"^(?:[^:]*/)?suites/", "", t["nodeid"]) for t in evidence["tests"]}
    return items, tests, evidence["run"]


@pytest.mark.slow
def test_the_installed_wheel_runs_the_whole_checklist_from_an_empty_directory(
    tmp_path: Path,
) -> None:
    bin_dir = install_wheel(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = run(
        [str(bin_dir / "python"), "-c", "import pytest_vcci; print(pytest_vcci.__file__)"], empty
    )
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # not this checkout
    sandbox = tmp_path / "sandbox"
    up = run([str(bin_dir / "vcci"), "sandbox", "up", "--dir", str(sandbox)], empty)
    assert up.returncode == 0, up.stdout + up.stderr  # the installed sandbox: its data files ship
    try:
        secrets = dict(
            shlex.split(line)[1].split("=", 1)
            for line in (sandbox / "secrets.env").read_text().splitlines()
        )
        env = {**os.environ, **secrets}
        env_file = str(sandbox / "environment.toml")
        installed = run(
            [
                str(bin_dir / "vcci"),
                "run",
                "--config",
                env_file,
                "-n",
                "2",
                "--vcci-report-dir",
                "out",
                "-p",
                "no:cacheprovider",
            ],
            empty,
            env,
        )
        assert installed.returncode in (0, 1), installed.stdout[-3000:] + installed.stderr
        repository = run(
            [sys.executable, "-m", "pytest", "suites/", "--vcci-config", env_file, "-n", "2",
             "--vcci-report-dir", str(tmp_path / "repository"), "-p", "no:cacheprovider"],
            ROOT,
            env,
        )  # fmt: skip
        assert repository.returncode in (0, 1), repository.stdout[-3000:] + repository.stderr
        got, got_tests, got_run = statuses(empty / "out")
        want, want_tests, want_run = statuses(tmp_path / "repository")
        assert len(got) == 92
        assert got_tests == want_tests
        assert got == want
        assert (got_run["verdict"], got_run["exit_status"]) == (
            want_run["verdict"],
            want_run["exit_status"],
        )
        assert sorted(p.name for p in empty.iterdir()) == ["out"]  # it wrote nothing else here
        quick = run([str(bin_dir / "vcci"), "validate", "--config", env_file, "--json"], empty, env)
        assert quick.returncode == 0, quick.stdout + quick.stderr
        assert json.loads(quick.stdout)["summary"]["passed"] == 14
        tests_of = run([str(bin_dir / "vcci"), "checklist", "--tests", "3.2.9"], empty)
        assert "site-packages/pytest_vcci/suites/test_03_application.py:" in tests_of.stdout
    finally:
        run([str(bin_dir / "vcci"), "sandbox", "down", "--dir", str(sandbox)], empty)
