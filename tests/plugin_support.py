"""Helpers shared by the plugin's pytester tests (tests/test_plugin_*.py)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

# pytester's in-process runs forget modules first imported during a run, and without bytecode
# caching (PYTHONDONTWRITEBYTECODE) each run would re-compile them: ~0.3 s a run. The plugin
# imports these lazily on activation, so import them once here, before any pytester run.
for _module in (
    "pytest_vcci.activation",
    "pytest_vcci.session",
    "pytest_vcci.report.html_hooks",
    "pytest_html.plugin",
    "xdist.plugin",
):
    importlib.import_module(_module)

# One checklist item of each severity (all `automated`), for gate tests.
ITEM_BY_SEVERITY = {"critical": "1.1.2", "high": "3.2.4", "medium": "2.1.3", "low": "10.1.2"}

MINIMAL_ENV = '[environment]\nname = "pytester"\n'


def read_evidence(pytester: pytest.Pytester, report_dir: str = "reports") -> dict[str, Any]:
    """The evidence.json a run wrote under ``report_dir`` (relative to the pytester dir)."""
    path = pytester.path / report_dir / "evidence.json"
    assert path.is_file(), f"no evidence.json in {path.parent}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def items_by_id(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in data["items"]}


def covered(data: dict[str, Any]) -> dict[str, str]:
    """``{item id: status}`` for the items some test covered."""
    return {item["id"]: item["status"] for item in data["items"] if item["tests"]}


def nodeid_map(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {test["nodeid"]: test for test in data["tests"]}


def output(result: pytest.RunResult) -> str:
    """Everything the run printed (stdout and stderr)."""
    return "\n".join([*result.outlines, *result.errlines])


def files_under(directory: Path) -> list[Path]:
    """Every file below ``directory``, hidden ones included."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


def write_env(pytester: pytest.Pytester, text: str, name: str = "env.toml") -> Path:
    path = pytester.path / name
    path.write_text(text, encoding="utf-8")
    return path


def passing_checks(item_id: str, *, intrusive: bool = False) -> str:
    """Source of a module that passes every check the catalog names for ``item_id`` (each
    making one evidence.check), so the item is decided and passes: ``passed``, or ``attested``
    with a valid record for its attestation criteria (``attest`` needs one in the run).

    A test named otherwise decides no criterion: an item needs its catalog checks to pass.
    """
    from pytest_vcci.checklist import load_catalog

    item = load_catalog().get(item_id)
    params: dict[str, set[str]] = {}
    attested: set[str] = set()
    for criterion in item.criterion_specs:
        for number, entry in enumerate(criterion.checks):
            ref = entry[0]  # the first alternative decides the entry
            params.setdefault(ref.function, set())
            if ref.param is not None:
                params[ref.function].add(ref.param)
            if criterion.attestation is not None and number == 0:
                attested.add(ref.function)  # the catalog names the attest(ID) test first
    lines = ["import pytest", ""]
    for function, values in params.items():
        lines.append(f"@pytest.mark.checklist({item_id!r})")
        if intrusive:
            lines.append("@pytest.mark.intrusive")
        arguments = ["evidence"]
        if values:
            lines.append(f"@pytest.mark.parametrize('instance', {sorted(values)!r})")
            arguments.append("instance")
        if function in attested:
            arguments.append("attest")
        lines.append(f"def {function}({', '.join(arguments)}):")
        if function in attested:
            lines.append(f"    attest({item_id!r})")
        else:
            lines.append(f"    evidence.check({function!r}, 'held', 'held', True)")
        lines.append("")
    return "\n".join(lines)


def write_passing(pytester: pytest.Pytester, *item_ids: str) -> None:
    """One module per item (``test_pass_3_2_4.py``) passing all its catalog checks."""
    for item_id in item_ids:
        name = "test_pass_" + item_id.replace(".", "_")
        pytester.makepyfile(**{name: passing_checks(item_id)})
