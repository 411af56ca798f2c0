"""oscal-assessment-results.json: the run as an OSCAL assessment-results document (OSCAL 1.2.1).

One ``result`` for the run; one ``observation`` per test (method TEST, with the test's recorded
observations and their UTC timestamps as relevant evidence); one ``finding`` per checklist item,
its target an objective ``gl-vcci-<ID>`` whose status is ``satisfied`` (passed, attested) or
``not-satisfied`` (everything else: failed, error, waived, skipped, not covered), with waivers and
attestations in its remarks. UUIDs are derived from the run id, so a run renders one document.

Written from the result model alone (no OSCAL library at run time); the tests validate the
output with compliance-trestle's models of the NIST schema.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

OSCAL_VERSION = "1.2.1"
FILENAME = "oscal-assessment-results.json"
NS = "urn:pytest-vcci:oscal"
SATISFIED = ("passed", "attested")
REASON = {"passed": "pass", "attested": "pass", "failed": "fail", "error": "fail", "waived": "fail"}
# Report files the document points at (back-matter resources with their SHA-256).
EVIDENCE_FILES = (
    ("evidence.json", "application/json"),
    ("junit.xml", "application/xml"),
    ("checklist.html", "text/html"),
    ("report.html", "text/html"),
)


def control_id(item_id: str) -> str:
    """An OSCAL token for a checklist ID (tokens may not start with a digit)."""
    return f"gl-vcci-{item_id}"


def render(result: dict[str, Any], report_dir: Path | None = None) -> str:
    return json.dumps(build(result, report_dir), indent=2, ensure_ascii=False) + "\n"


def build(result: dict[str, Any], report_dir: Path | None = None) -> dict[str, Any]:
    run = result["run"]
    ids = _Ids(run["id"])
    observations = [_observation(test, run, ids) for test in result["tests"]]
    findings = [_finding(item, ids) for item in result["items"]]
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
            "control-selections": [
                {
                    "description": "All items of the GL-VCCI production deployment checklist",
                    "include-controls": [
                        {"control-id": control_id(i["id"])} for i in result["items"]
                    ],
                }
            ]
        },
        "findings": findings,
    }
    if observations:
        oscal_result["observations"] = observations
    remarks = _run_remarks(run)
    if remarks:
        oscal_result["remarks"] = remarks
    return {
        "assessment-results": {
            "uuid": ids("document"),
            "metadata": _metadata(run, ids),
            "import-ap": {
                "href": f"#{ids('checklist')}",
                "remarks": "The assessment plan is the GL-VCCI production deployment checklist "
                "(92 items) as catalogued by pytest-vcci; see the back-matter resource.",
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


def _finding(item: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    status = item["status"]
    finding: dict[str, Any] = {
        "uuid": ids("finding", item["id"]),
        "title": f"{item['id']} {item['title']}",
        "description": "\n".join(f"- {c}" for c in item["criteria"]) or item["title"],
        "props": _props(
            checklist_id=item["id"],
            severity=item["severity"],
            automation=item["automation"],
            vcci_status=status,
        ),
        "target": {
            "type": "objective-id",
            "target-id": control_id(item["id"]),
            "status": {
                "state": "satisfied" if status in SATISFIED else "not-satisfied",
                "reason": REASON.get(status, "other"),
            },
        },
    }
    related = [{"observation-uuid": ids("observation", t["nodeid"])} for t in item["tests"]]
    if related:
        finding["related-observations"] = related
    remarks = _finding_remarks(item)
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


def _run_remarks(run: dict[str, Any]) -> str:
    lines = [f"Waiver warning: {w}" for w in run.get("waiver_warnings", [])]
    lines.extend(f"Stale waiver: {s['message']}" for s in run.get("stale_waivers", []))
    return "\n\n".join(lines)


def _resources(run: dict[str, Any], ids: _Ids, report_dir: Path | None) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {
            "uuid": ids("checklist"),
            "title": "GL-VCCI production deployment checklist",
            "description": "92 items in 12 sections; each finding's target is one item "
            f"(gl-vcci-<ID>). Catalogued by pytest-vcci {run['tool']['version']}.",
        }
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
