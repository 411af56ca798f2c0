"""controls-<framework>.html: one framework's controls, their items and a status derived from them.

For an auditor who asks "show me the evidence for CC6.7": each control with our one-line
description, the rule that decided its status, and its items with their status, each linked to
its evidence (tests and observations) in checklist.html. No JavaScript.
"""

from __future__ import annotations

from html import escape
from typing import Any

from pytest_vcci.checklist.controls import FRAMEWORKS
from pytest_vcci.report.checklist_html import CSS, header
from pytest_vcci.report.controls import CONTROL_STATUSES, RULES, page_name

PAGE_CSS = """
nav.frameworks{margin:0 0 12px}nav.frameworks a{margin-right:14px}nav.frameworks b{margin-right:14px}
table.controls{border-collapse:collapse;width:100%;background:#fff;margin:8px 0 20px}
table.controls th,table.controls td{border:1px solid #d0d7de;padding:6px 8px;vertical-align:top;text-align:left}
table.controls th{background:#eaeef2}table.controls td.cid{font-family:ui-monospace,monospace;font-weight:600;white-space:nowrap}
table.controls ul{list-style:none;margin:0;padding:0}table.controls li{margin:2px 0}
table.controls td.desc{width:34%}.rule{color:#57606a;font-size:13px;margin-top:4px}
.s-partly_assessed{background:#bf8700}.s-not_assessed{background:#6e7781}
.rules{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 16px;margin:0 0 16px}
.note{color:#57606a;font-size:13px}
"""


def render(result: dict[str, Any], framework: str) -> str:
    run = result["run"]
    page = result["controls"][framework]
    items = {item["id"]: item for item in result["items"]}
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(page['name'])} controls: {escape(run['environment'])}</title>",
        f"<style>{CSS}{PAGE_CSS}</style></head><body>",
        header(run, f" &middot; {escape(page['name'])} controls"),
        "<main>",
        _nav(result, framework),
        f"<p>{escape(page['title'])}: the {len(page['controls'])} controls the checklist's items "
        "support, each with the status of those items in this run. Each item links to its "
        "evidence (tests and observations) in <a href='checklist.html'>checklist.html</a>.</p>",
        _rules(),
        _summary(page),
        _controls(page, items),
        _not_applicable(page, items),
        "<p class='note'>Control descriptions are pytest-vcci's own one-line summaries; the "
        f"published {escape(page['name'])} text is the authority on what each control requires. "
        "The mapping lives in pytest_vcci/checklist/controls.toml.</p>",
        "</main></body></html>\n",
    ]
    return "".join(parts)


def _nav(result: dict[str, Any], current: str) -> str:
    links = ["<a href='checklist.html'>&larr; checklist</a>"]
    for framework in FRAMEWORKS:
        name = escape(result["controls"][framework]["name"])
        if framework == current:
            links.append(f"<b>{name}</b>")
        else:
            links.append(f"<a href='{page_name(framework)}'>{name}</a>")
    return f"<nav class='frameworks'>{''.join(links)}</nav>"


def _rules() -> str:
    rules = "".join(
        f"<li><span class='status s-{s}'>{s.replace('_', ' ')}</span>{escape(RULES[s])}</li>"
        for s in ("failed", "not_assessed", "passed", "partly_assessed")
    )
    return (
        "<div class='rules'><b>How a control's status is derived from its items</b> "
        "(the first rule that applies decides; each control says which did):"
        f"<ol>{rules}</ol>An item is checked when it passed, failed, erred, was attested or "
        "was waived; skipped and not-covered items were not checked. A waived item is a failure "
        "accepted by a waiver, not a fix; the waiver is in its evidence.</div>"
    )


def _summary(page: dict[str, Any]) -> str:
    head = "".join(f"<th>{s.replace('_', ' ')}</th>" for s in CONTROL_STATUSES)
    cells = "".join(f"<td>{page['counts'][s]}</td>" for s in CONTROL_STATUSES)
    return (
        f"<table class='summary'><tr><th>controls</th>{head}</tr>"
        f"<tr><td><b>{len(page['controls'])}</b></td>{cells}</tr></table>"
    )


def _controls(page: dict[str, Any], items: dict[str, dict[str, Any]]) -> str:
    rows = "".join(_control(control, items) for control in page["controls"])
    return (
        "<table class='controls'><tr><th>control</th><th>status</th><th>description</th>"
        f"<th>checklist items and their evidence</th></tr>{rows}</table>"
    )


def _control(control: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    status = control["status"]
    items = "".join(f"<li>{_item_link(by_id[i])}</li>" for i in control["items"] if i in by_id)
    return (
        f"<tr id='control-{escape(control['id'])}' data-status='{status}'>"
        f"<td class='cid'>{escape(control['id'])}</td>"
        f"<td><span class='status s-{status}'>{status.replace('_', ' ')}</span></td>"
        f"<td class='desc'>{escape(control['description'])}"
        f"<div class='rule'>{escape(control['rule'])}</div></td>"
        f"<td><ul>{items}</ul></td></tr>"
    )


def _item_link(item: dict[str, Any]) -> str:
    status = item["status"]
    return (
        f"<span class='status s-{status}'>{status.replace('_', ' ')}</span>"
        f"<a href='checklist.html#item-{escape(item['id'])}' data-item='{escape(item['id'])}'>"
        f"<span class='id'>{escape(item['id'])}</span>{escape(item['title'])}</a>"
        f"<span class='sev'>{escape(item['severity'])} &middot; {escape(item['automation'])}</span>"
    )


def _not_applicable(page: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    if not page["not_applicable"]:
        return f"<p>Every checklist item supports at least one {escape(page['name'])} control.</p>"
    rows = "".join(
        f"<tr><td>{_item_link(by_id[row['id']])}</td><td>{escape(row['reason'])}</td></tr>"
        for row in page["not_applicable"]
        if row["id"] in by_id
    )
    return (
        f"<h2>Items no {escape(page['name'])} control applies to "
        f"({len(page['not_applicable'])})</h2>"
        f"<table class='controls' id='not-applicable'><tr><th>item</th><th>why none applies</th>"
        f"</tr>{rows}</table>"
    )
