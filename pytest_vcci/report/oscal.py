"""oscal-assessment-results.json: the run as an OSCAL assessment-results document (OSCAL 1.2.1).

One ``result`` for the run, reviewing the NIST SP 800-53 Rev. 5 controls the checklist's items
support (``reviewed-controls``, in the catalog's lower-case form: ``sc-8``, ``ac-6.9``); one
``observation`` per test (method TEST, with the test's recorded observations and their UTC
timestamps as relevant evidence); one ``finding`` per reviewed control, its target the control's
assessment objective (``sc-8_obj``, as in NIST's OSCAL catalog), ``satisfied`` only when every
item of the control passed or was attested and ``not-satisfied`` otherwise (a failed, erred,
waived, skipped or not covered item), related to the observations of its items' tests, with each
item's status, message, waiver and attestations in its remarks. Items no SP 800-53 control
applies to are named, with the reason, in the result's remarks. UUIDs are derived from the run
id, so a run renders one document.

Written from the result model alone (no OSCAL library at run time); the tests validate the
output with compliance-trestle's models of the NIST schema.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from pytest_vcci.checklist.controls import load_controls, oscal_control_id
from pytest_vcci.report.controls import build_controls

OSCAL_VERSION = "1.2.1"
FILENAME = "oscal-assessment-results.json"
NS = "urn:pytest-vcci:oscal"
SATISFIED = ("passed", "attested")
NIST = "nist80053"
NIST_CATALOG = (
    "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/"
    "json/NIST_SP-800-53_rev5_catalog.json"
)
# Report files the document points at (back-matter resources with their SHA-256).
EVIDENCE_FILES = (
    ("evidence.json", "application/json"),
    ("junit.xml", "application/xml"),
    ("checklist.html", "text/html"),
    ("report.html", "text/html"),
    ("controls-soc2.html", "text/html"),
    ("controls-iso27001.html", "text/html"),
    ("controls-nist80053.html", "text/html"),
)


def objective_id(control_id: str) -> str:
    """The finding target of a SP 800-53 control: its assessment objective, ``SC-8`` -> ``sc-8_obj``."""
    return f"{oscal_control_id(control_id)}_obj"


def render(result: dict[str, Any], report_dir: Path | None = None) -> str:
    return json.dumps(build(result, report_dir), indent=2, ensure_ascii=False) + "\n"


def build(result: dict[str, Any], report_dir: Path | None = None) -> dict[str, Any]:
    run = result["run"]
    ids = _Ids(run["id"])
    observations = [_observation(test, run, ids) for test in result["tests"]]
    controls = (result.get("controls") or build_controls(result["items"], load_controls()))[NIST]
    items = {item["id"]: item for item in result["items"]}
    reviewed = [control for control in controls["controls"] if control["items"]]
    findings = [_finding(control, items, ids) for control in reviewed]
    oscal_result: dict[str, Any] = {
        "uuid": ids("result"),
        "title": f"GL-VCCI production readiness of {run['environment']}, run {run['id']}",
        "description": (
            f"pytest-vcci {run['tool']['version']} checked the {len(result['items'])} items of "
            f"the GL-VCCI production deployment checklist against {run['environment']}. "
            f"Verdict: {run['verdict']} (gate {run['gate']}, exit status {run['exit_status']})."
        ),
        "start": run["started_at"],
        "end": run["finished_at"],
        "props": _props(
            verdict=run["verdict"],
            gate=run["gate"],
            exit_status=run["exit_status"],
            environment=run["environment"],
            run_id=run["id"],
        ),
        "local-definitions": {"components": _components(run, ids)},
        "reviewed-controls": {
            "description": (
                f"The {controls['name']} controls the GL-VCCI checklist items support, as mapped "
                "in pytest-vcci's controls.toml; each finding derives its status from the items."
            ),
            "control-selections": [
                {
                    "description": f"{controls['name']} controls supported by checklist items",
                    "include-controls": [
                        {"control-id": oscal_control_id(c["id"])} for c in reviewed
                    ],
                }
            ],
        },
        "findings": findings,
    }
    if observations:
        oscal_result["observations"] = observations
    remarks = _run_remarks(run, controls, items)
    if remarks:
        oscal_result["remarks"] = remarks
    return {
        "assessment-results": {
            "uuid": ids("document"),
            "metadata": _metadata(run, ids),
            "import-ap": {
                "href": f"#{ids('checklist')}",
                "remarks": "The assessment plan is the GL-VCCI production deployment checklist "
                "(92 items) as catalogued by pytest-vcci, mapped to NIST SP 800-53 Rev. 5; see "
                "the back-matter resources.",
            },
            "results": [oscal_result],
            "back-matter": {"resources": _resources(run, ids, report_dir)},
        }
    }


class _Ids:
    """Stable UUIDs (version 5) for the parts of one run's document."""

    def __init__(self, run_id: str) -> None:
        self.base = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:pytest-vcci:run:{run_id}")

    def __call__(self, *parts: str) -> str:
        return str(uuid.uuid5(self.base, "/".join(parts)))


def _metadata(run: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    return {
        "title": f"GL-VCCI production readiness assessment: {run['environment']}",
        "published": run["finished_at"],
        "last-modified": run["finished_at"],
        "version": run["id"],
        "oscal-version": OSCAL_VERSION,
        "props": _props(tool=f"pytest-vcci {run['tool']['version']}", host=run.get("host")),
        "roles": [{"id": "assessor", "title": "Assessor"}],
        "parties": [
            {"uuid": ids("party", "runner"), "type": "person", "name": run.get("user") or "unknown"}
        ],
        "responsible-parties": [{"role-id": "assessor", "party-uuids": [ids("party", "runner")]}],
    }


def _components(run: dict[str, Any], ids: _Ids) -> list[dict[str, Any]]:
    return [
        {
            "uuid": ids("component", "tool"),
            "type": "software",
            "title": f"pytest-vcci {run['tool']['version']}",
            "description": "The pytest plugin that ran the checks and recorded the evidence.",
            "status": {"state": "operational"},
        },
        {
            "uuid": ids("component", "environment"),
            "type": "this-system",
            "title": f"Environment {run['environment']}",
            "description": f"The environment under assessment, configured by {run.get('environment_file')}.",
            "status": {"state": "operational"},
        },
    ]


def _observation(test: dict[str, Any], run: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    times = [o["at"] for o in test["observations"] if o.get("at")]
    message = f" {test['message']}" if test["message"] else ""
    observation: dict[str, Any] = {
        "uuid": ids("observation", test["nodeid"]),
        "title": test["nodeid"],
        "description": f"Test {test['nodeid']} {test['outcome']}.{message}",
        "props": _props(
            outcome=test["outcome"],
            duration_seconds=test["duration"],
            **{f"checklist_id_{n}": item for n, item in enumerate(test["checklist"])},
        ),
        "methods": ["TEST"],
        "types": ["finding"],
        "origins": [{"actors": [{"type": "tool", "actor-uuid": ids("component", "tool")}]}],
        "subjects": [{"subject-uuid": ids("component", "environment"), "type": "component"}],
        "collected": max(times) if times else run["finished_at"],
    }
    evidence = [_evidence(o) for o in test["observations"]]
    if evidence:
        observation["relevant-evidence"] = evidence
    return observation


def _evidence(observation: dict[str, Any]) -> dict[str, Any]:
    passed = observation.get("passed")
    verdict = "info" if passed is None else "pass" if passed else "fail"
    where = f"{observation['where']}: " if observation.get("where") else ""
    return {
        "description": (
            f"{where}{observation['name']}: observed {_show(observation['observed'])}, "
            f"expected {_show(observation.get('expected'))} ({verdict})"
        ),
        "props": _props(observed_at=observation.get("at"), criterion_result=verdict),
    }


def _finding(
    control: dict[str, Any], items: dict[str, dict[str, Any]], ids: _Ids
) -> dict[str, Any]:
    """One reviewed control: its status derived from its items, their evidence related."""
    mine = [items[item_id] for item_id in control["items"]]
    # A waiver accepts a failure; it does not satisfy the objective.
    satisfied = bool(mine) and all(item["status"] in SATISFIED for item in mine)
    if satisfied:
        reason = "pass"
    elif control["status"] == "failed" or any(item["status"] == "waived" for item in mine):
        reason = "fail"
    else:
        reason = "other"
    listing = "; ".join(f"{i['id']} {i['title']} ({i['status'].replace('_', ' ')})" for i in mine)
    finding: dict[str, Any] = {
        "uuid": ids("finding", control["id"]),
        "title": f"{control['id']} {control['description']}",
        "description": f"Supported by {len(mine)} checklist item(s): {listing}. {control['rule']}",
        "props": _props(
            control_id=control["id"],
            vcci_status=control["status"],
            **{f"checklist_id_{n}": item["id"] for n, item in enumerate(mine)},
        ),
        "target": {
            "type": "objective-id",
            "target-id": objective_id(control["id"]),
            "title": f"{control['id']}: {control['description']}",
            "status": {"state": "satisfied" if satisfied else "not-satisfied", "reason": reason},
        },
    }
    related = list(
        dict.fromkeys(ids("observation", test["nodeid"]) for item in mine for test in item["tests"])
    )
    if related:
        finding["related-observations"] = [{"observation-uuid": uuid} for uuid in related]
    remarks = "\n\n".join(
        f"{item['id']} {item['title']}: {item['status'].replace('_', ' ')}."
        + (f"\n{text}" if (text := _finding_remarks(item)) else "")
        for item in mine
    )
    if remarks:
        finding["remarks"] = remarks
    return finding


def _finding_remarks(item: dict[str, Any]) -> str:
    lines = []
    if item.get("message"):
        lines.append(f"{item['status'].replace('_', ' ')}: {item['message']}")
    waiver = item.get("waiver")
    if waiver:
        scope = f" for tests matching {waiver['nodeid']}" if waiver.get("nodeid") else ""
        lines.append(
            f"Waived ({item.get('waived_status', 'failed')}){scope}: ticket {waiver['ticket']}, "
            f"approved by {waiver['approved_by']} on {waiver['approved_on']}, "
            f"expires {waiver['expires_on']}. Justification: {waiver['justification']}"
        )
    for test in item["tests"]:
        for record in test.get("attestations", []):
            lines.append(
                f"Attested by {record.get('attested_by')} ({record.get('role')}) on "
                f"{record.get('date')}, expires {record.get('expires')}, ref "
                f"{record.get('reference')}: {record.get('statement')}"
            )
    return "\n\n".join(lines)


def _run_remarks(
    run: dict[str, Any], controls: dict[str, Any], items: dict[str, dict[str, Any]]
) -> str:
    lines = [f"Waiver warning: {w}" for w in run.get("waiver_warnings", [])]
    lines.extend(f"Stale waiver: {s['message']}" for s in run.get("stale_waivers", []))
    lines.extend(
        f"No {controls['name']} control applies to {row['id']} {items[row['id']]['title']} "
        f"(status {items[row['id']]['status'].replace('_', ' ')}): {row['reason']}"
        for row in controls["not_applicable"]
        if row["id"] in items
    )
    return "\n\n".join(lines)


def _resources(run: dict[str, Any], ids: _Ids, report_dir: Path | None) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {
            "uuid": ids("checklist"),
            "title": "GL-VCCI production deployment checklist",
            "description": "92 items in 12 sections, each mapped to the NIST SP 800-53 Rev. 5 "
            "controls it supports; each finding's target is one control's assessment objective. "
            f"Catalogued by pytest-vcci {run['tool']['version']}.",
        },
        {
            "uuid": ids("nist-catalog"),
            "title": "NIST SP 800-53 Rev. 5 catalog (OSCAL)",
            "description": "The catalog whose control and objective ids the findings use.",
            "rlinks": [{"href": NIST_CATALOG, "media-type": "application/json"}],
        },
    ]
    for name, media_type in EVIDENCE_FILES:
        path = report_dir / name if report_dir else None
        if path is None or not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        resources.append(
            {
                "uuid": ids("resource", name),
                "title": name,
                "rlinks": [
                    {
                        "href": name,
                        "media-type": media_type,
                        "hashes": [{"algorithm": "SHA-256", "value": digest}],
                    }
                ],
            }
        )
    return resources


def _props(**values: Any) -> list[dict[str, Any]]:
    """OSCAL props in our namespace; names become tokens (checklist_id -> checklist-id)."""
    props = []
    for key, value in values.items():
        if value is None:
            continue
        text = " ".join(str(value).split())
        if not text:
            continue
        name = key.replace("_", "-")
        if name.startswith("checklist-id-"):
            name = "checklist-id"
        props.append({"name": name, "ns": NS, "value": text})
    return props


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 500 else text[:497] + "..."
