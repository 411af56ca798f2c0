"""junit.xml: one testcase per test, with its checklist IDs and severity as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def render(result: dict[str, Any]) -> str:
    tests = result["tests"]
    counts = {k: sum(1 for t in tests if t["outcome"] == k) for k in ("failed", "error", "skipped")}
    suite = ET.Element(
        "testsuite",
        {
            "name": f"pytest-vcci {result['run']['environment']}",
            "tests": str(len(tests)),
            "failures": str(counts["failed"]),
            "errors": str(counts["error"]),
            "skipped": str(counts["skipped"]),
            "time": f"{sum(t['duration'] for t in tests):.3f}",
            "timestamp": result["run"]["started_at"],
            "hostname": result["run"]["host"],
        },
    )
    severity = {i["id"]: i["severity"] for i in result["items"]}
    for test in tests:
        suite.append(_testcase(test, severity))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(test: dict[str, Any], severity: dict[str, str]) -> ET.Element:
    path, _, name = test["nodeid"].rpartition("::")
    case = ET.Element(
        "testcase",
        {
            "classname": path.replace("/", ".").removesuffix(".py").replace(".py::", "."),
            "name": name or test["nodeid"],
            "time": f"{test['duration']:.3f}",
        },
    )
    props = ET.SubElement(case, "properties")
    for item_id in test["checklist"]:
        ET.SubElement(props, "property", {"name": "checklist", "value": item_id})
    severities = sorted(
        {severity[i] for i in test["checklist"] if i in severity},
        key=("critical", "high", "medium", "low").index,
    )
    if severities:
        ET.SubElement(props, "property", {"name": "severity", "value": severities[0]})
    tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(test["outcome"])
    if tag:
        element = ET.SubElement(case, tag, {"message": test["message"][:500]})
        details = [o for o in test["observations"] if o.get("passed") is False]
        element.text = "\n".join(_line(o) for o in details) or test["message"]
    return case


def _line(observation: dict[str, Any]) -> str:
    where = f"{observation['where']}: " if observation.get("where") else ""
    return f"{where}{observation['name']}: observed {observation['observed']!r}, expected {observation['expected']!r}"
