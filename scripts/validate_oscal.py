"""Validate OSCAL assessment-results documents with compliance-trestle's models of the NIST schema.

Runs in an environment that has compliance-trestle (``.venv-oscal`` from scripts/bootstrap.sh, or
``tox -e oscal``), apart from the project's own:

    .venv-oscal/bin/python scripts/validate_oscal.py reports/oscal-assessment-results.json

Exit status 0 when every document is valid, 1 when one is not (the validation errors are
printed), 2 on a usage error. ``--summary`` prints what a test needs to check the content.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any


def summary(model: Any) -> dict[str, Any]:
    from trestle.oscal import OSCAL_VERSION

    ar = model.assessment_results
    version = ar.metadata.oscal_version.root
    version = getattr(version, "root", version)
    result = ar.results[0]
    return {
        "trestle_oscal_version": OSCAL_VERSION,
        "oscal_version": version,
        "results": len(ar.results),
        "remarks": result.remarks,
        "reviewed_controls": [
            c.control_id
            for selection in result.reviewed_controls.control_selections
            for c in selection.include_controls or []
        ],
        "findings": {
            f.target.target_id: {
                "state": f.target.status.state.value,
                "reason": getattr(f.target.status.reason, "value", f.target.status.reason),
                "remarks": f.remarks,
                "props": {p.name: p.value for p in f.props or []},
                "observations": [str(r.observation_uuid) for r in f.related_observations or []],
            }
            for f in result.findings or []
        },
        "observations": {
            o.title: {
                "uuid": str(o.uuid),
                "methods": [getattr(m, "value", m) for m in o.methods],
                "collected": o.collected.isoformat(),
                "evidence": [
                    {
                        "description": e.description,
                        "props": {p.name: p.value for p in e.props or []},
                    }
                    for e in o.relevant_evidence or []
                ],
            }
            for o in result.observations or []
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="+", type=Path)
    parser.add_argument("--summary", action="store_true", help="print a JSON summary of each")
    ns = parser.parse_args(argv)
    try:
        from pydantic import ValidationError
        from trestle.oscal import OSCAL_VERSION_REGEX
        from trestle.oscal.assessment_results import Model
    except ImportError:
        print("validate_oscal: compliance-trestle is not installed in this python", file=sys.stderr)
        return 2
    status = 0
    for path in ns.documents:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            print(f"{path}: not found", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"{path}: not JSON: {exc}")
            status = 1
            continue
        try:
            model = Model.model_validate(data)
        except ValidationError as exc:
            print(f"{path}: not valid OSCAL assessment-results:\n{exc}")
            status = 1
            continue
        info = summary(model)
        if not re.match(OSCAL_VERSION_REGEX, info["oscal_version"]):
            print(f"{path}: oscal-version {info['oscal_version']} is not {OSCAL_VERSION_REGEX}")
            status = 1
            continue
        if ns.summary:
            print(json.dumps(info))
        else:
            print(f"{path}: valid OSCAL {info['oscal_version']} assessment-results")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
