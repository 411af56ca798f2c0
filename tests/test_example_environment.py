"""environments/example.toml documents every key: it must stay a valid environment file."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from pytest_vcci.attestations import load_attestations
from pytest_vcci.checklist import load_catalog
from pytest_vcci.settings import TABLES, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "environments" / "example.toml"
ENV = {
    "VCCI_DATABASE_URL": "postgresql://vcci:pw@db:5432/vcci",
    "VCCI_REDIS_URL": "rediss://r:6379",
    "VCCI_GRAFANA_TOKEN": "grafana-token",
}


def test_example_loads_and_names_every_table() -> None:
    settings = load_settings(EXAMPLE, env=ENV)
    assert settings.name == "staging"
    text = EXAMPLE.read_text()
    for table in TABLES:
        assert f"[{table}]" in text, table
    assert settings.threshold("3.2.4", "backend_replicas") == 3
    assert settings.expect["aws"]["buckets"]


def test_example_attestations_load() -> None:
    settings = load_settings(EXAMPLE, env=ENV)
    path = settings.resolve_path(settings.environment.attestations or "")
    records = load_attestations(path, set(load_catalog().ids))
    assert records.check("10.2.1", today=date(2026, 11, 22)).valid


def test_example_documents_every_key_of_every_table() -> None:
    sections: dict[str, str] = {}
    current = None
    for line in EXAMPLE.read_text().splitlines():
        header = re.match(r"^\[([a-z_]+)\]", line)
        if header or line.startswith("[expect") or line.startswith("[thresholds"):
            current = header.group(1) if header else None
            sections.setdefault(current or "", "")
            continue
        if current:
            sections[current] += line + "\n"
    for name, model in TABLES.items():
        for key in model.model_fields:
            assert re.search(rf"^#?\s*{key}\s*=", sections.get(name, ""), re.M), f"[{name}].{key}"
