"""Run-to-run: a history of report directories, and ``vcci diff`` between two runs.

``--vcci-history DIR`` copies each finished report directory (manifest included, so every copy
verifies on its own) to ``DIR/<environment>/<UTC timestamp>/`` and points ``DIR/<environment>/
latest`` at it (a symlink; a one-line file naming the run where symlinks are not possible).
checklist.html then shows each item's status over the last runs.

``vcci diff OLD_DIR NEW_DIR`` lists the items whose status changed, regressions first, with the
observations that changed; exit status 1 on any regression.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATEST = "latest"
RECENT_RUNS = 10
BAD = ("failed", "error")
GOOD = ("passed", "attested", "waived")


# --- history --------------------------------------------------------------------------------


def stamp(started_at: str) -> str:
    """``2026-11-22T10:43:06.123Z`` -> ``20261122T104306Z`` (sorts by time, safe in paths)."""
    when = dt.datetime.fromisoformat(started_at.replace("Z", "+00:00")).astimezone(dt.UTC)
    return when.strftime("%Y%m%dT%H%M%SZ")


def environment_dir(root: Path, environment: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in environment) or "default"
    return root / safe


def record_run(root: Path, run: dict[str, Any], report_dir: Path) -> Path:
    """Copy a finished report directory into the history and point ``latest`` at it."""
    env_dir = environment_dir(root, run["environment"])
    env_dir.mkdir(parents=True, exist_ok=True)
    name = stamp(run["started_at"])
    if (env_dir / name).exists():
        name = f"{name}-{run['id']}"
    target = env_dir / name
    partial = env_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(report_dir, partial, ignore=_ignore_inside(report_dir, root))
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # no half copy stays behind
        raise
    point_latest(env_dir, name)
    return target


def _ignore_inside(report_dir: Path, root: Path) -> Any:
    """Leave the history out of its own copy when it lives inside the report directory."""
    history = root.resolve()

    def ignore(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if (Path(directory) / n).resolve() == history]

    return ignore


def point_latest(env_dir: Path, name: str) -> None:
    link = env_dir / LATEST
    tmp = env_dir / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(name, target_is_directory=True)
    except OSError:
        tmp.write_text(name + "\n", encoding="utf-8")
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(tmp, link)


def resolve_latest(path: Path) -> Path:
    """A ``latest`` pointer (symlink or file) or a directory holding one -> the run directory."""
    if path.is_dir() and not (path / "evidence.json").exists() and (path / LATEST).exists():
        path = path / LATEST
    if path.is_file() and path.name == LATEST:
        return path.parent / path.read_text(encoding="utf-8").strip()
    return path


def past_runs(root: Path, environment: str, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """The last ``limit`` recorded runs of an environment, oldest first: run info + statuses."""
    env_dir = environment_dir(root, environment)
    if not env_dir.is_dir():
        return []
    runs = []
    names = sorted(p.name for p in env_dir.iterdir() if p.name != LATEST and p.is_dir())
    for name in reversed(names):
        if name.startswith("."):
            continue
        try:
            data = json.loads((env_dir / name / "evidence.json").read_text(encoding="utf-8"))
            run = data["run"]
            statuses = {item["id"]: item["status"] for item in data["items"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        runs.append(
            {
                "dir": name,
                "id": run.get("id"),
                "started_at": run.get("started_at"),
                "verdict": run.get("verdict"),
                "statuses": statuses,
            }
        )
        if len(runs) == limit:
            break
    return list(reversed(runs))


def history_table(
    past: list[dict[str, Any]], run: dict[str, Any], items: list[dict[str, Any]]
) -> dict[str, Any]:
    """``result["history"]``: the runs shown (oldest first, this one last) and each item's row."""
    runs = [{k: r[k] for k in ("dir", "id", "started_at", "verdict")} for r in past]
    runs.append(
        {
            "dir": stamp(run["started_at"]),
            "id": run["id"],
            "started_at": run["started_at"],
            "verdict": run["verdict"],
        }
    )
    rows = {
        item["id"]: [r["statuses"].get(item["id"], "not_covered") for r in past] + [item["status"]]
        for item in items
    }
    return {"runs": runs, "items": rows}


# --- diff -----------------------------------------------------------------------------------


@dataclass
class Change:
    item_id: str
    title: str
    severity: str
    old: str
    new: str
    observations: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.new in BAD and self.old not in BAD:
            return "regression"
        if self.old in BAD and self.new not in BAD:
            return "fixed"
        return "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "title": self.title,
            "severity": self.severity,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "observations": self.observations,
        }


KIND_ORDER = ("regression", "fixed", "changed")


def load_evidence(path: Path) -> dict[str, Any]:
    """evidence.json of a report directory (or the file itself, or a history ``latest``)."""
    path = resolve_latest(path)
    file = path / "evidence.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DiffError(f"{file}: no evidence.json here") from None
    except ValueError as exc:
        raise DiffError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "items" not in data or "run" not in data:
        raise DiffError(f"{file}: not a pytest-vcci evidence file")
    return data


class DiffError(Exception):
    pass


def diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[Change], int]:
    """Items whose status changed (regressions, then fixes, then other changes) and the count
    of unchanged items."""
    old_items = {i["id"]: i for i in old["items"]}
    changes, unchanged = [], 0
    for item in new["items"]:
        before = old_items.get(item["id"])
        old_status = before["status"] if before else "not_covered"
        if old_status == item["status"]:
            unchanged += 1
            continue
        changes.append(
            Change(
                item["id"],
                item["title"],
                item["severity"],
                old_status,
                item["status"],
                changed_observations(before or {"tests": []}, item),
            )
        )
    changes.sort(key=lambda c: (KIND_ORDER.index(c.kind), _id_key(c.item_id)))
    return changes, unchanged


def changed_observations(old_item: dict[str, Any], new_item: dict[str, Any]) -> list[str]:
    """One line per observation that differs (observed, expected or verdict), appeared or went."""
    old, new = _observations(old_item), _observations(new_item)
    lines = []
    for key in [*new, *(k for k in old if k not in new)]:
        before, after = old.get(key), new.get(key)
        label = _label(key)
        if before is None and after is not None:
            lines.append(f"{label}: new: {_value(after)}")
        elif after is None and before is not None:
            lines.append(f"{label}: gone (was {_value(before)})")
        elif before is not None and after is not None and _core(before) != _core(after):
            lines.append(f"{label}: {_value(before)} -> {_value(after)}")
    return lines


def _observations(item: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for test in item.get("tests", []):
        if isinstance(test, str):
            continue
        for observation in test.get("observations", []):
            key = (test["nodeid"], observation.get("where") or "", observation["name"])
            found[key] = observation
        if not test.get("observations"):
            key = (test["nodeid"], "", "outcome")
            found[key] = {"observed": test["outcome"], "passed": test["outcome"] == "passed"}
    return found


def _core(observation: dict[str, Any]) -> tuple[str, str, Any]:
    return (
        json.dumps(observation.get("observed"), sort_keys=True),
        json.dumps(observation.get("expected"), sort_keys=True),
        observation.get("passed"),
    )


def _label(key: tuple[str, str, str]) -> str:
    nodeid, where, name = key
    return f"{nodeid}: {where + ': ' if where else ''}{name}"


def _value(observation: dict[str, Any]) -> str:
    passed = observation.get("passed")
    verdict = "info" if passed is None else "pass" if passed else "FAIL"
    observed = json.dumps(observation.get("observed"))
    if len(observed) > 120:
        observed = observed[:117] + "..."
    expected = observation.get("expected")
    tail = f", expected {json.dumps(expected)}" if expected is not None else ""
    return f"{observed} [{verdict}{tail}]"


def _id_key(item_id: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in item_id.split("."))
    except ValueError:
        return (999,)


def run_diff(argv: Sequence[str]) -> int:
    """``vcci diff OLD_DIR NEW_DIR [--json]``: 1 on any regression, 0 otherwise, 2 usage error."""
    parser = argparse.ArgumentParser(
        prog="vcci diff",
        description="items whose status changed between two runs, regressions first",
    )
    parser.add_argument(
        "old", metavar="OLD_DIR", type=Path, help="report directory (or evidence.json)"
    )
    parser.add_argument(
        "new", metavar="NEW_DIR", type=Path, help="report directory (or evidence.json)"
    )
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        old, new = load_evidence(ns.old), load_evidence(ns.new)
    except DiffError as exc:
        print(f"vcci diff: {exc}", file=sys.stderr)
        return 2
    changes, unchanged = diff(old, new)
    regressions = sum(1 for c in changes if c.kind == "regression")
    if ns.json:
        print(
            json.dumps(
                {
                    "old": _run_ref(old["run"]),
                    "new": _run_ref(new["run"]),
                    "changes": [c.to_dict() for c in changes],
                    "unchanged": unchanged,
                    "regressions": regressions,
                },
                indent=2,
            )
        )
    else:
        for line in _text(old["run"], new["run"], changes, unchanged):
            print(line)
    return 1 if regressions else 0


def _run_ref(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run.get(k) for k in ("id", "environment", "started_at", "verdict")}


def _text(
    old: dict[str, Any], new: dict[str, Any], changes: list[Change], unchanged: int
) -> list[str]:
    lines = [
        f"vcci diff: {old.get('environment')} run {old.get('id')} ({old.get('started_at')}, "
        f"{old.get('verdict')}) -> {new.get('environment')} run {new.get('id')} "
        f"({new.get('started_at')}, {new.get('verdict')})"
    ]
    if old.get("environment") != new.get("environment"):
        lines.append(
            f"note: comparing different environments ({old.get('environment')} / "
            f"{new.get('environment')})"
        )
    for change in changes:
        lines.append(
            f"{change.kind.upper():<10} {change.item_id:<7} {change.severity:<8} "
            f"{change.old} -> {change.new}  {change.title}"
        )
        lines.extend(f"    {line}" for line in change.observations)
    counts = {k: sum(1 for c in changes if c.kind == k) for k in KIND_ORDER}
    lines.append(
        f"{counts['regression']} regression(s), {counts['fixed']} fixed, "
        f"{counts['changed']} other change(s), {unchanged} unchanged"
    )
    return lines
