"""checklist.html: all items by section, status at a glance, drill-down without JavaScript."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from pytest_vcci.checklist.controls import FRAMEWORKS
from pytest_vcci.report.controls import page_name
from pytest_vcci.report.model import STATUSES, headline

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#13294b;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:20px}
header p{margin:2px 0;opacity:.9}main{padding:16px 24px;max-width:1200px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:700;text-transform:uppercase}
.v-ready{background:#1f883d}.v-ready_with_warnings{background:#bf8700}.v-blocked{background:#cf222e}.v-incomplete{background:#6e7781}
table.summary{border-collapse:collapse;margin:12px 0 20px;background:#fff}
table.summary th,table.summary td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
table.summary th:first-child,table.summary td:first-child{text-align:left}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:0 0 16px;padding:8px 16px}
section h2{font-size:16px;margin:8px 0}
details{border-top:1px solid #eaeef2;padding:6px 0 6px 16px}details>summary{cursor:pointer;list-style-position:outside}
.id{font-family:ui-monospace,monospace;font-weight:600;margin-right:6px}
.status{display:inline-block;min-width:88px;text-align:center;border-radius:3px;padding:1px 6px;font-size:12px;font-weight:700;margin-right:8px;color:#fff}
.s-passed{background:#1f883d}.s-attested{background:#0969da}.s-waived{background:#8250df}.s-failed{background:#cf222e}
.s-error{background:#a40e26}.s-skipped{background:#bf8700}.s-not_covered{background:#6e7781}
.sev{font-size:12px;color:#57606a;margin-left:6px}.msg{color:#57606a;margin:4px 0 4px 24px}
.test{margin:6px 0 6px 24px;padding:6px 8px;background:#f6f8fa;border-radius:4px}
.obs{border-collapse:collapse;margin-top:4px;font-size:13px;background:#fff}.obs td,.obs th{border:1px solid #d0d7de;padding:2px 6px;vertical-align:top}
.obs th{text-align:left;background:#eaeef2}.obs td:last-child{white-space:nowrap}
.ok{color:#1f883d;font-weight:700}.bad{color:#cf222e;font-weight:700}
.attention{list-style:none;padding:0;margin:0 0 8px}.attention li{margin:6px 0}
.attention a{color:inherit;text-decoration:none}.attention .msg{margin:2px 0 0 100px}
pre{white-space:pre-wrap;margin:4px 0;font-size:12px}
.trend{margin-left:10px;white-space:nowrap}.tr{display:inline-block;width:9px;height:12px;margin-right:1px;border-radius:2px;vertical-align:middle}
.waiver{border-left:3px solid #8250df;padding-left:6px}
ul.criteria{list-style:none;padding-left:16px}.criterion{margin:3px 0}
.criterion .status{min-width:110px}.how{font-size:12px;color:#57606a;margin-left:6px}
.c-passed{background:#1f883d}.c-attested{background:#0969da}.c-failed{background:#cf222e}
.c-error{background:#a40e26}.c-undecided{background:#bf8700}.c-not_automatable{background:#6e7781}
.criterion.c-passed,.criterion.c-attested,.criterion.c-failed,.criterion.c-error,.criterion.c-undecided,.criterion.c-not_automatable{background:none}
header a{color:#fff}.controls-nav{margin:6px 0 0}.controls-nav a{margin-right:12px}
details:target{outline:2px solid #0969da;outline-offset:2px}
.ctl{font-size:13px;color:#57606a;margin:4px 0 4px 24px}.ctl a{font-family:ui-monospace,monospace;margin-right:6px}
"""


def render(result: dict[str, Any]) -> str:
    run = result["run"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>GL-VCCI readiness checklist: {escape(run['environment'])}</title>",
        f"<style>{CSS}</style></head><body>",
        header(run, controls=result.get("controls")),
        "<main>",
        _attention(result),
        _summary(result["sections"]),
    ]
    sections: dict[int, list[dict[str, Any]]] = {}
    for item in result["items"]:
        sections.setdefault(item["section"], []).append(item)
    for number, items in sorted(sections.items()):
        parts.append(
            f"<section id='section-{number}'><h2>{number}. {escape(items[0]['section_name'])}"
            f" <span class='sev'>({len(items)} items)</span></h2>"
        )
        parts.extend(
            _item(item, _trend(result.get("history"), item["id"]), result.get("controls"))
            for item in items
        )
        parts.append("</section>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def header(
    run: dict[str, Any], title_suffix: str = "", controls: dict[str, Any] | None = None
) -> str:
    """The run at a glance (verdict, gate, time, who); with ``controls``, links to their pages."""
    nav = ""
    if controls:
        links = "".join(
            f"<a href='{page_name(fw)}'>{escape(controls[fw]['name'])}</a>"
            for fw in FRAMEWORKS
            if fw in controls
        )
        nav = f"<p class='controls-nav'>Framework controls: {links}</p>"
    return (
        "<header><h1>GL-VCCI production readiness: "
        f"{escape(run['environment'])}{title_suffix}</h1>"
        f"<p><span class='verdict v-{escape(run['verdict'])}'>{escape(run['verdict'].replace('_', ' '))}</span>"
        f" &nbsp;gate: {escape(run['gate'])} &nbsp;exit status: {run['exit_status']}</p>"
        f"<p>run {escape(run['id'])} &middot; {escape(run['started_at'])} to {escape(run['finished_at'])}"
        f" &middot; {escape(run['user'])}@{escape(run['host'])} &middot; pytest-vcci {escape(run['tool']['version'])}</p>"
        f"{nav}</header>"
    )


def _attention(result: dict[str, Any]) -> str:
    """What blocks the release and what warns, first: a reader in a hurry starts here."""
    by_id = {item["id"]: item for item in result["items"]}
    blocks = []
    for label, key in (("Blocking", "blocking"), ("Warnings", "warnings")):
        ids = result["run"].get(key) or []
        if not ids:
            continue
        rows = "".join(
            f"<li><a href='#item-{escape(i)}'><span class='status s-{by_id[i]['status']}'>"
            f"{by_id[i]['status'].replace('_', ' ')}</span><b>{escape(i)}</b> "
            f"{escape(by_id[i]['title'])}</a> <span class='sev'>{escape(by_id[i]['severity'])}"
            f"</span><div class='msg'>{escape(headline(by_id[i].get('message') or ''))}</div></li>"
            for i in ids
            if i in by_id
        )
        blocks.append(f"<h2>{label} ({len(ids)})</h2><ul class='attention'>{rows}</ul>")
    if not blocks:
        return ""
    return f"<section class='attention-box'>{''.join(blocks)}</section>"


def _summary(sections: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{s.replace('_', ' ')}</th>" for s in STATUSES)
    rows = []
    for row in sections:
        cells = "".join(f"<td>{row[s] or ''}</td>" for s in STATUSES)
        rows.append(
            f"<tr><td><a href='#section-{row['section']}'>{row['section']}. "
            f"{escape(row['name'])}</a></td>{cells}</tr>"
        )
    totals = "".join(f"<td><b>{sum(r[s] for r in sections)}</b></td>" for s in STATUSES)
    return (
        f"<table class='summary'><tr><th>section</th>{head}</tr>{''.join(rows)}"
        f"<tr><td><b>all</b></td>{totals}</tr></table>"
    )


def _trend(history: dict[str, Any] | None, item_id: str) -> str:
    """The item's status over the last runs (oldest first, this run last), from --vcci-history."""
    if not history or item_id not in history["items"]:
        return ""
    cells = "".join(
        f"<span class='tr s-{status}' title='{escape(run['started_at'] or run['dir'])}: "
        f"{status.replace('_', ' ')}'></span>"
        for run, status in zip(history["runs"], history["items"][item_id], strict=False)
    )
    return f"<span class='trend' title='last {len(history['runs'])} runs'>{cells}</span>"


def _waiver(waiver: dict[str, Any], was: str) -> str:
    scope = (
        f" (tests matching <code>{escape(waiver['nodeid'])}</code>)" if waiver.get("nodeid") else ""
    )
    return (
        f"<p class='msg waiver'><b>waived</b> ({escape(was)}){scope}: ticket "
        f"{escape(waiver['ticket'])}, approved by {escape(waiver['approved_by'])} on "
        f"{escape(waiver['approved_on'])}, expires {escape(waiver['expires_on'])}. "
        f"{escape(waiver['justification'])}</p>"
    )


def _criteria(item: dict[str, Any]) -> str:
    """Each criterion with its status, how it is decided and why it stands so."""
    results = item.get("criteria_status")
    if results is None:  # a result model without per-criterion statuses
        return "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in item["criteria"]) + "</ul>"
    rows = []
    for c in results:
        status = c["status"]
        how = {
            "checks": "checks: " + ", ".join(c["checks"]),
            "attestation": "attestation record"
            + (" and " + ", ".join(c["checks"][1:]) if c["checks"][1:] else ""),
            "not_automatable": "not automatable",
            "none": "no check yet",
        }.get(c["decided_by"], c["decided_by"])
        title = " <span class='how'>(from the title)</span>" if c.get("from_title") else ""
        reason = f"<div class='msg'>{escape(c['reason'])}</div>" if c.get("reason") else ""
        rows.append(
            f"<li class='criterion c-{escape(status)}'><span class='status c-{escape(status)}'>"
            f"{escape(status.replace('_', ' '))}</span>{escape(c['text'])}{title}"
            f"<span class='how'>{escape(how)}</span>{reason}</li>"
        )
    return f"<ul class='criteria'>{''.join(rows)}</ul>"


def _controls(item: dict[str, Any], controls: dict[str, Any] | None) -> str:
    """The framework controls an item supports, each linked to its row on the framework page."""
    mapping = item.get("controls")
    if not controls or not mapping:
        return ""
    lines = []
    for framework in FRAMEWORKS:
        name = escape(controls[framework]["name"])
        ids = mapping.get(framework) or []
        if ids:
            links = "".join(
                f"<a href='{page_name(framework)}#control-{escape(c)}'>{escape(c)}</a>" for c in ids
            )
            lines.append(f"{name}: {links}")
        elif framework in mapping.get("not_applicable", {}):
            reason = mapping["not_applicable"][framework]
            lines.append(f"{name}: none applies ({escape(reason)})")
    return f"<p class='ctl'>Controls: {' &middot; '.join(lines)}</p>"


def _item(item: dict[str, Any], trend: str = "", controls: dict[str, Any] | None = None) -> str:
    status = item["status"]
    body = [_criteria(item), _controls(item, controls)]
    if item.get("message"):
        body.append(f"<p class='msg'>{escape(item['message'])}</p>")
    if item.get("waiver"):
        body.append(_waiver(item["waiver"], item.get("waived_status", "failed")))
    for extra in ("attestation",):
        if item.get(extra):
            body.append(f"<p class='msg'>{extra}: {escape(json.dumps(item[extra]))}</p>")
    body.extend(_test(test) for test in item["tests"])
    return (
        f"<details id='item-{escape(item['id'])}' data-status='{status}'><summary>"
        f"<span class='status s-{status}'>{status.replace('_', ' ')}</span>"
        f"<span class='id'>{escape(item['id'])}</span>{escape(item['title'])}"
        f"<span class='sev'>{escape(item['severity'])} &middot; {escape(item['automation'])}</span>"
        f"{trend}</summary>{''.join(body)}</details>"
    )


def _test(test: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td class='{'ok' if o.get('passed') else 'bad' if o.get('passed') is False else ''}'>"
        f"{'pass' if o.get('passed') else 'FAIL' if o.get('passed') is False else 'info'}</td>"
        f"<td>{escape(o.get('where') or '')}</td><td>{escape(o['name'])}</td>"
        f"<td>{escape(_short(o['observed']))}</td><td>{escape(_short(o.get('expected')))}</td>"
        f"<td>{escape(o.get('at', ''))}</td></tr>"
        for o in test["observations"]
    )
    table = (
        (
            f"<table class='obs'><tr><th></th><th>where</th><th>criterion</th><th>observed</th>"
            f"<th>expected</th><th>at (UTC)</th></tr>{rows}</table>"
        )
        if rows
        else ""
    )
    message = f"<pre>{escape(test['message'])}</pre>" if test["message"] else ""
    return (
        f"<div class='test'><span class='status s-{test['outcome']}'>{test['outcome']}</span>"
        f"<code>{escape(test['nodeid'])}</code> ({test['duration']:.2f}s){message}{table}</div>"
    )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 300 else text[:297] + "..."
