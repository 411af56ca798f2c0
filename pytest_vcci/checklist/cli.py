"""``vcci checklist``: print the catalog as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_vcci.checklist.catalog import (
    Automation,
    Catalog,
    Item,
    Severity,
    UnknownItemError,
    load_catalog,
)
from pytest_vcci.checklist.controls import FRAMEWORKS, load_controls
from pytest_vcci.checklist.locate import item_tests, suite_directories

EXIT_OK = 0
EXIT_USAGE = 2

_COLUMNS = ("ID", "SEVERITY", "AUTOMATION", "TITLE")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcci checklist",
        description="List the GL-VCCI production readiness checklist items.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of items")
    parser.add_argument("--section", type=int, metavar="N", help="only items of section N (1..12)")
    parser.add_argument(
        "--framework",
        choices=FRAMEWORKS,
        help="list the framework's controls, each with the items that support it",
    )
    parser.add_argument(
        "--tests",
        metavar="ID",
        help="list the tests that check item ID, with file:line (e.g. --tests 3.2.9)",
    )
    parser.add_argument(
        "--tests-dir",
        action="append",
        metavar="DIR",
        help="with --tests: look in DIR instead of the readiness suites (repeatable)",
    )
    return parser


def run_checklist(argv: Sequence[str]) -> int:
    """Run ``vcci checklist [--json] [--section N] [--framework F]``; returns the exit status."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    catalog = load_catalog()
    if args.tests is not None:
        return _print_tests(catalog, args.tests, args.tests_dir, args.json)
    items = catalog.items
    if args.section is not None:
        try:
            items = catalog.section(args.section).items
        except KeyError as exc:
            print(f"vcci checklist: error: {exc.args[0]}", file=sys.stderr)
            return EXIT_USAGE
    if args.framework is not None:
        by_control = framework_controls(args.framework, items)
        if args.json:
            print(json.dumps(by_control, indent=2, ensure_ascii=False))
        else:
            print(render_framework(by_control, len(items)))
        return EXIT_OK
    if args.json:
        print(json.dumps([item.to_dict() for item in items], indent=2, ensure_ascii=False))
    else:
        print(render_table(catalog, items))
    return EXIT_OK


def _print_tests(catalog: Catalog, item_id: str, dirs: list[str] | None, as_json: bool) -> int:
    try:
        item = catalog.get(item_id)
    except UnknownItemError as exc:
        print(f"vcci checklist: error: --tests: {exc}", file=sys.stderr)
        return EXIT_USAGE
    directories = [Path(d) for d in dirs] if dirs else suite_directories()
    missing = [str(d) for d in directories if not d.is_dir()]
    if missing or not directories:
        what = ", ".join(missing) or "the readiness suites (suites/ is not next to the package)"
        print(f"vcci checklist: error: --tests: no such directory: {what}", file=sys.stderr)
        return EXIT_USAGE
    found = item_tests(item.id, directories)
    base = Path.cwd()

    def decides(name: str) -> list[str]:
        return [c.text for c in item.criterion_specs if name in c.functions]

    if as_json:
        rows = [
            {
                "test": t.name,
                "where": t.where(base),
                "items": list(t.item_ids),
                "doc": t.doc,
                "decides": decides(t.name),
            }
            for t in found
        ]
        print(json.dumps({"id": item.id, "title": item.title, "tests": rows}, indent=2))
        return EXIT_OK
    print(f"{item.id} {item.title} ({item.severity.value}, {item.automation.value})")
    if not found:
        print(
            "  no test checks this item"
            + (" (attestation only)" if item.automation.value == "attestation" else "")
        )
    for test in found:
        print(f"  {test.where(base)}  {test.name}" + (f"  {test.doc}" if test.doc else ""))
        criteria = decides(test.name)
        print(
            "      decides: "
            + ("; ".join(criteria) if criteria else "no criterion (catalog.toml names it nowhere)")
        )
    return EXIT_OK


def render_table(catalog: Catalog, items: Sequence[Item]) -> str:
    """Aligned plain text: one heading per section, one row per item, a summary line."""
    rows = [(i.id, i.severity.value, i.automation.value, i.title) for i in items]
    widths = [max(len(row[col]) for row in [_COLUMNS, *rows]) for col in range(3)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + (
            "  " + cells[3]
        )

    lines = [line(_COLUMNS)]
    current = None
    for item, row in zip(items, rows, strict=True):
        if item.section != current:
            current = item.section
            section = catalog.section(current)
            lines += ["", f"{section.number}. {section.name} ({len(section)} items)"]
        lines.append(line(row))
    lines += ["", _summary(catalog, items)]
    return "\n".join(lines)


def _summary(catalog: Catalog, items: Sequence[Item]) -> str:
    severities = Counter(i.severity for i in items)
    kinds = Counter(i.automation for i in items)
    by_severity = ", ".join(f"{severities[s]} {s.value}" for s in Severity)
    by_kind = ", ".join(f"{kinds[a]} {a.value}" for a in Automation)
    text = f"{len(items)} items: {by_severity}; {by_kind}."
    if len(items) == len(catalog) and catalog.claimed_items != len(catalog):
        text += f" (The checklist header claims {catalog.claimed_items} items.)"
    ways = Counter(c.decided_by for i in items for c in i.criterion_specs)
    titles = sum(c.from_title for i in items for c in i.criterion_specs)
    text += (
        f"\n{sum(ways.values())} criteria ({titles} stated by a title): {ways['checks']} decided by checks, "
        f"{ways['attestation']} by attestation, {ways['not_automatable']} not automatable, "
        f"{ways['none']} with no check yet (undecided by design; --json lists them)."
    )
    return text


def framework_controls(framework: str, items: Sequence[Item]) -> dict[str, Any]:
    """A framework's controls with the given items that support each (controls with none are
    left out), and the items no control of the framework applies to, with the reason."""
    mapping = load_controls()
    info = mapping.frameworks[framework]
    controls = []
    for control in mapping.controls(framework):
        mine = [i for i in items if control.id in i.controls[framework]]
        if mine:
            controls.append(
                {
                    "id": control.id,
                    "description": control.description,
                    "items": [_brief(i) for i in mine],
                }
            )
    return {
        "framework": framework,
        "name": info.name,
        "title": info.title,
        "controls": controls,
        "not_applicable": [
            {**_brief(i), "reason": i.controls.not_applicable[framework]}
            for i in items
            if framework in i.controls.not_applicable
        ],
    }


def _brief(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "severity": item.severity.value,
        "automation": item.automation.value,
    }


def render_framework(by_control: dict[str, Any], item_count: int) -> str:
    """Each control with its description, then its items indented under it."""
    controls = by_control["controls"]
    width = max((len(c["id"]) for c in controls), default=4) + 2
    lines = [f"{by_control['name']}: {by_control['title']}", ""]
    for control in controls:
        lines.append(f"{control['id'].ljust(width)}{control['description']}")
        lines.extend(
            f"{' ' * width}{i['id']:<8}{i['title']} ({i['severity']}, {i['automation']})"
            for i in control["items"]
        )
    if by_control["not_applicable"]:
        lines += ["", f"No {by_control['name']} control applies to:"]
        lines.extend(
            f"  {i['id']:<8}{i['title']}: {i['reason']}" for i in by_control["not_applicable"]
        )
    mapped = len({i["id"] for c in controls for i in c["items"]})
    lines += [
        "",
        f"{len(controls)} controls; {mapped} of {item_count} items support at least one "
        f"{by_control['name']} control.",
    ]
    return "\n".join(lines)
