"""``vcci checklist``: print the catalog as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence

from pytest_vcci.checklist.catalog import Automation, Catalog, Item, Severity, load_catalog

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
    return parser


def run_checklist(argv: Sequence[str]) -> int:
    """Run ``vcci checklist [--json] [--section N]``; returns the exit status."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    catalog = load_catalog()
    items = catalog.items
    if args.section is not None:
        try:
            items = catalog.section(args.section).items
        except KeyError as exc:
            print(f"vcci checklist: error: {exc.args[0]}", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        print(json.dumps([item.to_dict() for item in items], indent=2, ensure_ascii=False))
    else:
        print(render_table(catalog, items))
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
    return text
