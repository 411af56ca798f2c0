"""evidence.json, schema ``pytest-vcci/evidence/v1``: the run and all 92 items with their tests."""

from __future__ import annotations

import json
from typing import Any

SCHEMA = "pytest-vcci/evidence/v1"


def render(result: dict[str, Any]) -> str:
    return json.dumps({"schema": SCHEMA, **result}, indent=2, sort_keys=False) + "\n"
