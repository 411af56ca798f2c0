"""The harness the broken-variant tests share (tests/suites/test_broken_*.py import it by
name, as the plugin tests import tests/plugin_support.py: pytest puts a test file's own
directory on sys.path).

A run writes an environment file, runs suite modules in a pytest subprocess, and reads the
items of some sections from the evidence.json it wrote, so what is compared is what a user
would see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist import load_catalog
from pytest_vcci.sandbox import Sandbox


@dataclass
class Staging:
    """A running sandbox, its environment file's tables and the secret variables its ${VAR}s
    refer to."""

    sandbox: Sandbox
    tables: dict[str, Any]
    variables: dict[str, str]

    def component(self, name: str) -> Any:
        return next(c for c in self.sandbox.components if c.name == name)

    def copy(self) -> dict[str, Any]:
        tables: dict[str, Any] = json.loads(json.dumps(self.tables))
        return tables


@contextmanager
def sandbox_up(workdir: Path, **options: Any) -> Iterator[Staging]:
    """A sandbox of some components, up for the block."""
    sandbox = Sandbox(workdir, **options)
    try:
        env_file = sandbox.up()
        yield Staging(sandbox, tomllib.loads(env_file.read_text()), sandbox.env_vars())
    finally:
        sandbox.down()


def _arguments(directory: Path, modules: Sequence[Path], tables: dict[str, Any]) -> list[str]:
    """Write ``tables`` as ``directory``'s environment file; the arguments that run ``modules``
    against it, reporting to ``directory``/reports."""
    import tomli_w

    env_file = directory / "environment.toml"
    env_file.write_text(tomli_w.dumps(tables))
    return [
        *map(str, modules),
        "--vcci-config",
        str(env_file),
        "--vcci-report-dir",
        str(directory / "reports"),
        "-p",
        "no:cacheprovider",
    ]


def _items(directory: Path, sections: tuple[str, ...], output: str) -> dict[str, Any]:
    """The items of ``sections`` by ID, from the run's evidence.json."""
    evidence_file = directory / "reports" / "evidence.json"
    assert evidence_file.exists(), output
    evidence = json.loads(evidence_file.read_text())
    return {i["id"]: i for i in evidence["items"] if i["id"].startswith(sections)}


def run_pytester(
    pytester: pytest.Pytester,
    modules: Sequence[Path],
    tables: dict[str, Any],
    variables: dict[str, str],
    sections: tuple[str, ...],
    *options: str,
) -> dict[str, Any]:
    """``modules`` against ``tables`` with ``variables`` set, by pytester.runpytest_subprocess
    in pytester.path; the items of ``sections`` by ID."""
    arguments = _arguments(pytester.path, modules, tables)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        result = pytester.runpytest_subprocess(*arguments, *options)
    return _items(pytester.path, sections, result.stdout.str()[-3000:])


def run_subprocess(
    directory: Path,
    modules: Sequence[Path],
    tables: dict[str, Any],
    variables: dict[str, str],
    sections: tuple[str, ...],
    *options: str,
) -> dict[str, Any]:
    """``modules`` against ``tables`` with ``variables`` set, by ``python -m pytest -q`` in
    ``directory``; the items of ``sections`` by ID."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *_arguments(directory, modules, tables), "-q", *options],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **variables},
    )
    return _items(directory, sections, done.stdout + done.stderr)


def undecided_by_design(item_ids: Iterable[str]) -> set[str]:
    """The items among ``item_ids`` with a criterion no check decides yet (``checks = []`` in
    the catalog): "skipped" on any target until someone adds the check."""
    catalog = load_catalog()
    return {
        i for i in item_ids if any(c.decided_by == "none" for c in catalog.get(i).criterion_specs)
    }


def failed_tests(item: dict[str, Any]) -> set[str]:
    return {t["nodeid"].split("::")[-1] for t in item["tests"] if t["outcome"] == "failed"}


def messages(item: dict[str, Any]) -> str:
    return "\n".join(t.get("message") or "" for t in item["tests"])


def assert_fails(
    broken: dict[str, Any], good: dict[str, Any], defects: Mapping[str, Sequence[str]]
) -> None:
    """Several independent defects in ONE broken run: exactly the items of ``defects`` newly
    failed, each naming its strings (``{"3.2.4": ["backend"], "3.2.9": ["worker"]}``); every
    other item as in the good run. A variant costs a sandbox and a suite run: break many things
    at once, one per item, and name each one's observation here.

    scripts/variants_table.py counts each key as a failing variant of that item."""
    changed = {
        k: (good[k]["status"], v["status"])
        for k, v in broken.items()
        if v["status"] != good[k]["status"]
    }
    assert set(changed) == set(defects), f"changed {changed}, expected only {sorted(defects)}"
    for item_id, names in defects.items():
        assert broken[item_id]["status"] == "failed", (item_id, broken[item_id]["status"])
        text = messages(broken[item_id])
        for name in names:
            assert name in text, (item_id, name, text)


def assert_only(broken: dict[str, Any], good: dict[str, Any], item_id: str, *names: str) -> None:
    """``item_id`` newly failed, naming ``names``; every other item as in the good run."""
    assert_fails(broken, good, {item_id: names})
