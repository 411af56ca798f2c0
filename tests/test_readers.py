"""The Trivy JSON ingester and the readers sections 3 and 5 use (quantities, selectors, image
references, nginx/fluent-bit syntax, Prometheus durations, Alertmanager routing)."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_vcci.readers.config_files import config_problems, fluent_bit_match, fluent_bit_sections
from pytest_vcci.readers.kubernetes_objects import (
    parse_image,
    parse_quantity,
    quantities_equal,
    selector_matches,
)
from pytest_vcci.readers.monitoring_config import (
    duration_seconds,
    expression_threshold,
    route_receivers,
)
from pytest_vcci.readers.tool_reports import IngestError
from pytest_vcci.readers.trivy_report import load_trivy


def _report(tmp_path: Path, **overrides: object) -> Path:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    data = {
        "SchemaVersion": 2,
        "CreatedAt": now,
        "ArtifactName": "registry.vcci.internal/vcci-backend:2.0.0",
        "ArtifactType": "container_image",
        "Results": [
            {
                "Target": "debian 12.5",
                "Class": "os-pkgs",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2024-0001",
                        "PkgName": "openssl",
                        "InstalledVersion": "3.0.11",
                        "FixedVersion": "3.0.13",
                        "Severity": "HIGH",
                    },
                    {
                        "VulnerabilityID": "CVE-2024-0002",
                        "PkgName": "zlib",
                        "InstalledVersion": "1.2.13",
                        "Severity": "LOW",
                    },
                ],
            },
            {"Target": "app/requirements.txt", "Class": "lang-pkgs"},
        ],
        **overrides,
    }
    path = tmp_path / "trivy.json"
    path.write_text(json.dumps(data))
    return path


def test_trivy_counts_findings_by_severity(tmp_path: Path) -> None:
    summary = load_trivy(_report(tmp_path), max_age_hours=1)
    assert summary.artifact == "registry.vcci.internal/vcci-backend:2.0.0"
    assert summary.counts() == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 0, "LOW": 1, "UNKNOWN": 0}
    assert summary.at("HIGH")[0].describe() == (
        "CVE-2024-0001 (HIGH) in openssl 3.0.11, fixed in 3.0.13 [debian 12.5]"
    )


def test_trivy_clean_report_without_results(tmp_path: Path) -> None:
    assert load_trivy(_report(tmp_path, Results=None)).counts()["HIGH"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a Trivy JSON report"),
        ('{"SchemaVersion": 1, "ArtifactName": "x"}', "SchemaVersion is 1, expected 2"),
        ('{"SchemaVersion": 2}', "ArtifactName is missing"),
        ('{"SchemaVersion": 2, "ArtifactName": "x", "Results": {}}', "Results is not a list"),
        (
            '{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Vulnerabilities": [{"Severity": "HIGH"}]}]}',
            "Results[0].Vulnerabilities[0]: malformed Trivy report: no VulnerabilityID",
        ),
        (
            '{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Vulnerabilities": '
            '[{"VulnerabilityID": "CVE-1", "Severity": "SEVERE"}]}]}',
            "Severity 'SEVERE' is not one of",
        ),
    ],
)
def test_trivy_malformed_report_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(IngestError) as failure:
        load_trivy(path)
    assert str(path) in str(failure.value)
    assert message in str(failure.value)


def test_trivy_missing_and_stale_reports(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="Trivy report not found"):
        load_trivy(tmp_path / "nope.json")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=9)).isoformat()
    with pytest.raises(IngestError, match="report is stale: generated"):
        load_trivy(_report(tmp_path, CreatedAt=old), max_age_hours=168)
    undated = _report(tmp_path, CreatedAt=None)
    os.utime(undated, (0, 0))
    with pytest.raises(IngestError, match="report is stale: file modified"):
        load_trivy(undated, max_age_hours=168)


def test_quantities_compare_by_value() -> None:
    assert parse_quantity("500m") == Decimal("0.5")
    assert quantities_equal("1Gi", "1024Mi")
    assert quantities_equal("2", "2000m")
    assert not quantities_equal("1G", "1Gi")
    assert parse_quantity("100Gi") >= 100 * 10**9
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError):
        parse_quantity("lots")


def test_selectors_and_images() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
        },
        labels,
    )
    assert not selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels
    )
    ref = parse_image("registry.vcci.internal/team/vcci-backend:2.0.0@sha256:" + "a" * 64)
    assert (ref.registry, ref.name, ref.tag, ref.digest) == (
        "registry.vcci.internal",
        "vcci-backend",
        "2.0.0",
        "sha256:" + "a" * 64,
    )
    assert parse_image("nginx").tag is None
    assert parse_image("localhost:5000/x:1").registry == "localhost:5000"


def test_config_syntax() -> None:
    assert (
        config_problems("nginx.conf", "server { listen 80; location / { return 200 'ok;}'; } }")
        == []
    )
    assert config_problems("nginx.conf", "server { listen 80 }") == [
        "line 1: directive before '}' has no ';'"
    ]
    assert config_problems("app.yaml", "a: [1, 2")
    assert config_problems("settings.json", "{,}")
    assert config_problems("app.yaml", "a: 1\n") == []
    assert config_problems("x.json", "") == ["empty"]
    # A file type no parser here knows is not validated: None, never "no problems".
    assert config_problems("startup.sh", "#!/bin/sh\nexec app\n") is None
    assert config_problems("fluent-bit.conf", "[INPUT]\n    Name tail\n") is None
    sections = fluent_bit_sections(
        "[INPUT]\n    Name tail\n    Tag  kube.*\n[OUTPUT]\n    Name  es\n    Match kube.*\n"
    )
    assert sections == [
        ("INPUT", {"name": "tail", "tag": "kube.*"}),
        ("OUTPUT", {"name": "es", "match": "kube.*"}),
    ]
    assert fluent_bit_match("kube.*", "kube.var.log.containers.x.log")
    assert not fluent_bit_match("app.*", "kube.x")


def test_durations_thresholds_and_routes() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("15d") == 15 * 86400
    assert duration_seconds("30") is None
    assert duration_seconds("0") == 0
    assert expression_threshold("100 * sum(rate(x[5m])) / sum(rate(y[5m])) > 1") == (">", 1.0)
    assert expression_threshold("sum(worker_queue_depth) > 10000") == (">", 10000.0)
    route = {
        "receiver": "slack",
        "routes": [
            {"receiver": "pager", "matchers": ['severity="critical"'], "continue": True},
            {"receiver": "opsgenie", "match": {"severity": "critical"}},
            {"receiver": "never", "matchers": ['severity=~"critical|warning"']},
        ],
    }
    assert route_receivers(route, {"severity": "critical"}) == ["pager", "opsgenie"]
    assert route_receivers(route, {"severity": "warning"}) == ["never"]
    assert route_receivers(route, {"severity": "info"}) == ["slack"]
