"""The terminal summary: a per-section table and the items that block or warn."""

from __future__ import annotations

from typing import Any

from pytest_vcci.report.model import headline

COLUMNS = (
    ("passed", "pass"),
    ("failed", "fail"),
    ("error", "err"),
    ("skipped", "skip"),
    ("not_covered", "n/c"),
    ("attested", "att"),
    ("waived", "waiv"),
)


def summary_lines(result: dict[str, Any]) -> list[str]:
    header = f"{'section':<38}" + "".join(f"{label:>6}" for _, label in COLUMNS)
    lines = [header, "-" * len(header)]
    for row in result["sections"]:
        name = f"{row['section']:>2}. {row['name']}"[:37]
        lines.append(f"{name:<38}" + "".join(f"{row[key] or '.':>6}" for key, _ in COLUMNS))
    totals = {key: sum(r[key] for r in result["sections"]) for key, _ in COLUMNS}
    lines.append(
        f"{'all ' + str(len(result['items'])) + ' items':<38}"
        + "".join(f"{totals[key]:>6}" for key, _ in COLUMNS)
    )
    targets = result["run"].get("targets", {})
    down = {k: v for k, v in targets.items() if not v.get("reachable")}
    if down:  # in full: a root cause cut short is no root cause
        lines.append("")
        lines.append("targets not reachable (their checks error at once with this cause):")
        lines.extend(f"  {name:<13} {v['cause']}" for name, v in down.items())
    lacking = {k: v["permissions"] for k, v in targets.items() if v.get("permissions")}
    if lacking:
        lines.append("")
        lines.append("target permissions missing (the checks that need them fail at once):")
        lines.extend(f"  {name:<13} {p['message']}" for name, p in lacking.items())
    by_id = {item["id"]: item for item in result["items"]}
    for label, ids in (
        ("blocking", result["run"]["blocking"]),
        ("warnings", result["run"]["warnings"]),
    ):
        if ids:
            lines.append("")
            lines.append(f"{label}:")
            for item_id in ids:
                item = by_id[item_id]
                message = headline(item["message"], 110)
                lines.append(f"  {item_id:<7} {item['severity']:<8} {item['status']:<8} {message}")
    return lines
