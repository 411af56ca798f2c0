"""The checklist catalog: all 92 items, their metadata, lookup, patterns, and `vcci checklist`."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist import (
    ID_PATTERN,
    Automation,
    CatalogError,
    Item,
    Severity,
    UnknownItemError,
    is_well_formed,
    load_catalog,
    parse_catalog,
)
from pytest_vcci.checklist.cli import run_checklist

SECTION_SIZES = {1: 10, 2: 8, 3: 12, 4: 9, 5: 10, 6: 8, 7: 6, 8: 6, 9: 5, 10: 8, 11: 5, 12: 5}
SECTION_NAMES = {
    1: "Pre-Deployment Preparation",
    2: "Database Preparation",
    3: "Application Deployment",
    4: "Configuration Validation",
    5: "Monitoring & Observability",
    6: "Security Validation",
    7: "Performance Validation",
    8: "Disaster Recovery",
    9: "Integration Testing",
    10: "Documentation & Training",
    11: "Final Validation",
    12: "Post-Deployment",
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def raw_catalog() -> dict[str, Any]:
    text = (resources.files("pytest_vcci.checklist") / "catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


def ids(items: list[Item]) -> list[str]:
    return [item.id for item in items]


# --- contents -------------------------------------------------------------------------------


def test_catalog_holds_all_92_items(catalog):
    assert len(catalog) == 92
    assert len(catalog.items) == 92
    assert catalog.items[0].id == "1.1.1"
    assert catalog.items[-1].id == "12.2.2"


def test_header_claim_of_67_is_kept_but_not_believed(catalog):
    assert catalog.claimed_items == 67
    assert catalog.source == "GL-VCCI Production Deployment Checklist 2.0.0"


def test_twelve_sections_with_the_checklist_sizes_and_names(catalog):
    assert [s.number for s in catalog.sections] == list(range(1, 13))
    assert {s.number: len(s.items) for s in catalog.sections} == SECTION_SIZES
    assert {s.number: s.name for s in catalog.sections} == SECTION_NAMES
    for section in catalog.sections:
        assert all(item.section == section.number for item in section.items)
        assert all(item.section_name == section.name for item in section.items)


def test_ids_are_unique_well_formed_and_in_checklist_order(catalog):
    all_ids = ids(list(catalog.items))
    assert len(set(all_ids)) == 92
    assert all(ID_PATTERN.match(item_id) for item_id in all_ids)
    numeric = [tuple(map(int, item_id.split("."))) for item_id in all_ids]
    assert numeric == sorted(numeric)
    # Items are numbered 1..n without gaps inside each subsection.
    for item in catalog.items:
        assert item.id.startswith(item.subsection + ".")
        siblings = [i for i in catalog.items if i.subsection == item.subsection]
        assert int(item.id.rsplit(".", 1)[1]) <= len(siblings)


def test_every_item_has_title_criteria_and_rationale(catalog):
    for item in catalog.items:
        assert item.title.strip(), item.id
        assert item.criteria, item.id
        assert all(c.strip() for c in item.criteria), item.id
        assert item.rationale.strip(), item.id
        assert isinstance(item.criteria, tuple)


def test_seed_text_is_kept_verbatim(catalog):
    cluster = catalog.get("1.1.1")
    assert cluster.title == "Kubernetes cluster provisioned (EKS/GKE/AKS)"
    assert cluster.subsection_name == "Infrastructure Readiness"
    assert cluster.criteria == (
        "Cluster version: 1.28+",
        "Node pools configured (3 AZs minimum)",
        "Auto-scaling enabled (min: 3, max: 50 nodes)",
        "Node taints and labels configured",
    )
    # Markdown backticks and the seed's tick marks are dropped, the words are not.
    assert catalog.get("2.1.1").criteria[0] == "Database: vcci_production"
    assert catalog.get("11.1.3").criteria[0] == "API latency p95 < 500ms"
    assert len(catalog.get("10.1.4").criteria) == 9
    assert catalog.get("5.2.3").title == "Distributed tracing configured (optional)"


def test_severity_and_automation_values_are_valid(catalog):
    for item in catalog.items:
        assert isinstance(item.severity, Severity)
        assert isinstance(item.automation, Automation)
    used = {item.severity for item in catalog.items}
    assert used == set(Severity)
    assert {item.automation for item in catalog.items} == set(Automation)


@pytest.mark.parametrize(
    ("item_id", "severity"),
    [
        ("1.2.1", "critical"),  # TLS
        ("1.2.2", "critical"),  # secrets
        ("2.2.4", "critical"),  # backups
        ("6.2.1", "critical"),  # encryption at rest
        ("6.3.1", "critical"),  # audit logging
        ("8.2.1", "critical"),  # restore
        ("3.2.4", "high"),  # availability
        ("3.2.7", "high"),  # capacity
        ("2.2.2", "medium"),  # performance
        ("10.1.2", "low"),  # docs
        ("5.2.3", "low"),  # optional tracing
    ],
)
def test_severity_follows_the_risk(catalog, item_id, severity):
    assert catalog.get(item_id).severity == Severity(severity)


def test_attestation_and_hybrid_items(catalog):
    attested = {i.id for i in catalog.items if i.automation is Automation.ATTESTATION}
    assert attested == {"6.3.2", "10.2.1", "10.2.2", "10.2.3", "11.1.4", "11.1.5"}
    hybrid = {i.id for i in catalog.items if i.automation is Automation.HYBRID}
    assert {
        "6.1.1",
        "6.2.2",
        "7.2.2",
        "8.1.1",
        "8.1.3",
        "8.2.1",
        "8.2.2",
        "8.2.3",
        "11.1.2",
        "12.2.2",
    } <= hybrid
    assert catalog.get("3.2.4").automation is Automation.AUTOMATED


def test_severity_order():
    assert [s.order for s in Severity] == [4, 3, 2, 1]
    assert Severity.CRITICAL.order > Severity.HIGH.order > Severity.MEDIUM.order
    assert Severity.HIGH.at_least(Severity.MEDIUM)
    assert Severity.HIGH.at_least(Severity.HIGH)
    assert not Severity.LOW.at_least(Severity.MEDIUM)
    assert Severity("critical") is Severity.CRITICAL


# --- thresholds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item_id", "expected"),
    [
        ("1.1.1", {"min_version": "1.28", "min_zones": 3, "min_nodes": 3, "max_nodes": 50}),
        (
            "1.2.1",
            {
                "domain": "vcci.greenlang.io",
                "wildcard": "*.vcci.greenlang.io",
                "min_days_to_expiry": 60,
            },
        ),
        ("2.1.3", {"index_count": 47}),
        (
            "2.2.2",
            {
                "shared_buffers_ratio": 0.25,
                "effective_cache_size_ratio": 0.75,
                "work_mem_mb": 64,
                "maintenance_work_mem_mb": 2048,
                "autovacuum_vacuum_scale_factor": 0.05,
                "pool_min": 10,
                "pool_max": 100,
            },
        ),
        (
            "3.2.4",
            {
                "backend_replicas": 3,
                "frontend_replicas": 2,
                "worker_replicas": 3,
                "max_restarts": 5,
            },
        ),
        ("7.1.1", {"p95_ms": 500, "p99_ms": 1000, "max_error_rate": 0.0}),
        ("7.2.3", {"min_hit_rate": 0.95, "max_eviction_rate": 0.01, "max_memory_ratio": 0.8}),
        ("9.1.2", {"ecoinvent_ms": 100, "desnz_ms": 200, "epa_ms": 200}),
    ],
)
def test_thresholds_carry_the_checklist_numbers(catalog, item_id, expected):
    thresholds = catalog.get(item_id).thresholds
    assert {key: thresholds[key] for key in expected} == expected


def test_resource_thresholds_are_kubernetes_quantities(catalog):
    limits = catalog.get("3.2.9").thresholds
    assert limits["backend_cpu_request"] == "500m"
    assert limits["backend_memory_limit"] == "4Gi"
    assert limits["worker_cpu_limit"] == "4"
    assert limits["frontend_memory_request"] == "256Mi"
    assert len(limits) == 12


def test_thresholds_are_plain_read_only_values(catalog):
    for item in catalog.items:
        for key, value in item.thresholds.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", key), (item.id, key)
            values = value if isinstance(value, tuple) else (value,)
            assert all(isinstance(v, str | int | float | bool) for v in values), (item.id, key)
    extensions = catalog.get("2.1.1").thresholds["extensions"]
    assert extensions == ("pgcrypto", "uuid-ossp", "pg_trgm", "btree_gin")
    with pytest.raises(TypeError):
        catalog.get("3.2.4").thresholds["backend_replicas"] = 1  # type: ignore[index]


def test_to_dict_is_json_ready(catalog):
    data = catalog.get("2.1.1").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["severity"] == "high"
    assert data["thresholds"]["extensions"] == ["pgcrypto", "uuid-ossp", "pg_trgm", "btree_gin"]


# --- lookup and patterns --------------------------------------------------------------------


def test_get_and_contains(catalog):
    assert catalog.get("3.2.7").title == "Horizontal Pod Autoscaling (HPA) configured"
    assert "3.2.7" in catalog
    assert "3.2.10" not in catalog
    assert catalog.section(8).items[0].id == "8.1.1"


def test_get_unknown_id_suggests_neighbours(catalog):
    with pytest.raises(UnknownItemError) as excinfo:
        catalog.get("3.2.10")
    assert isinstance(excinfo.value, KeyError)
    message = str(excinfo.value)
    assert "'3.2.10'" in message
    assert "3.2.1..3.2.9" in message
    assert "did you mean 3.2.1" in message


def test_get_malformed_id_says_what_an_id_looks_like(catalog):
    with pytest.raises(UnknownItemError, match=r"not a well-formed checklist ID .*3\.2\.7"):
        catalog.get("3-2-7")


def test_unknown_section_names_the_range(catalog):
    with pytest.raises(KeyError, match=r"sections 1\.\.12"):
        catalog.section(13)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("1.1.1", ["1.1.1"]),
        ("3.2.*", [f"3.2.{n}" for n in range(1, 10)]),
        ("8.*", ["8.1.1", "8.1.2", "8.1.3", "8.2.1", "8.2.2", "8.2.3"]),
        ("8", ["8.1.1", "8.1.2", "8.1.3", "8.2.1", "8.2.2", "8.2.3"]),
        ("8.2", ["8.2.1", "8.2.2", "8.2.3"]),
        ("*.*.10", []),
        ("?.?.5", ["1.1.5", "1.2.5", "3.2.5", "4.1.5"]),
        ("12.2.*", ["12.2.1", "12.2.2"]),
        ("9.9.9", []),
    ],
)
def test_match_ids_and_globs(catalog, pattern, expected):
    assert ids(catalog.match(pattern)) == expected


def test_match_counts(catalog):
    assert len(catalog.match("3.*")) == 12
    assert len(catalog.match("*")) == 92
    # "1.*" is section 1 only, not sections 10..12.
    assert len(catalog.match("1.*")) == 10
    assert len(catalog.match("1?.*")) == 8 + 5 + 5


@pytest.mark.parametrize("pattern", ["", "  ", "abc", "3.2.x", "3.2.7;rm"])
def test_match_rejects_non_patterns(catalog, pattern):
    with pytest.raises(ValueError, match="invalid checklist pattern"):
        catalog.match(pattern)


@pytest.mark.parametrize(
    ("item_id", "ok"),
    [
        ("1.1.1", True),
        ("10.2.4", True),
        ("3.2.10", True),
        ("1.1", False),
        ("1.10.1", False),
        ("a.b.c", False),
        ("1.1.1 ", False),
        ("1.1.1\n", False),
        ("", False),
        ("100.1.1", False),
    ],
)
def test_is_well_formed(item_id, ok):
    assert is_well_formed(item_id) is ok


def test_loader_is_cached():
    assert load_catalog() is load_catalog()


# --- validation on load ---------------------------------------------------------------------


def test_raw_data_parses_to_the_same_catalog(raw_catalog, catalog):
    assert ids(list(parse_catalog(raw_catalog).items)) == ids(list(catalog.items))


def broken(raw: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    data["item"][index].update(changes)
    return data


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (1, {"id": "1.1.1"}, r"item #2: duplicate id '1\.1\.1'"),
        (
            0,
            {"severity": "severe"},
            r"item #1 \(1\.1\.1\): severity 'severe' is not one of critical",
        ),
        (0, {"automation": "manual"}, r"automation 'manual' is not one of automated, attestation"),
        (0, {"title": " "}, r"item #1: 'title' must be a non-empty string"),
        (0, {"criterion": []}, r"item #1 \(1\.1\.1\): needs \[\[item.criterion\]\] tables"),
        (0, {"criteria": ["x"]}, r"'criteria' is replaced by \[\[item.criterion\]\] tables"),
        (0, {"id": "1.1"}, r"id is not of the form"),
        (0, {"id": "2.1.1"}, r"id does not lie in section 1"),
        (0, {"section": 13}, r"section 13 is not a declared"),
        (0, {"thresholds": {"zones": {"min": 3}}}, r"threshold 'zones' must be a scalar"),
    ],
)
def test_validation_errors_name_the_item(raw_catalog, index, changes, message):
    with pytest.raises(CatalogError, match=message):
        parse_catalog(broken(raw_catalog, index, **changes))


# --- vcci checklist -------------------------------------------------------------------------


def test_cli_table_lists_every_item_under_its_section(capsys):
    assert run_checklist([]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert re.match(r"ID\s+SEVERITY\s+AUTOMATION\s+TITLE$", lines[0])
    assert "1. Pre-Deployment Preparation (10 items)" in lines
    assert "12. Post-Deployment (5 items)" in lines
    rows = [line for line in lines if re.match(r"\d{1,2}\.\d\.\d{1,2} ", line)]
    assert len(rows) == 92
    # Columns are aligned: severity and title start at the same offset on every row.
    first, last = rows[0], rows[-1]
    assert first.index("high") == last.index("medium") == lines[0].index("SEVERITY")
    assert first.index("Kubernetes") == last.index("Production") == lines[0].index("TITLE")
    assert "92 items: 26 critical, 43 high, 17 medium, 6 low" in out
    assert "claims 67" in out
    titled = sum(c.from_title for i in load_catalog() for c in i.criterion_specs)
    assert titled >= 3  # PostgreSQL 15+, Redis 7+, Grafana deployed, ...
    # The seed's 362 bullets plus the requirements the titles state.
    line = next(x for x in lines if x.startswith(f"{362 + titled} criteria ({titled} stated by"))
    pending = sum(c.decided_by == "none" for i in load_catalog() for c in i.criterion_specs)
    assert f", {pending} with no check yet (undecided by design" in line


def test_cli_json_is_a_list_of_item_dicts(capsys):
    assert run_checklist(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 92
    assert data[0]["id"] == "1.1.1"
    assert data[0]["thresholds"]["min_zones"] == 3
    assert set(data[0]) == {
        "id",
        "section",
        "section_name",
        "subsection",
        "subsection_name",
        "title",
        "criteria",
        "severity",
        "automation",
        "rationale",
        "thresholds",
        "decided_by",
        "controls",
    }
    assert data[0]["decided_by"][3] == {
        "text": "Node taints and labels configured",
        "decided_by": "checks",
        "checks": ["test_node_labels", "test_node_taints"],
    }
    title = next(c for c in data if c["id"] == "1.1.2")["decided_by"][0]
    assert (title["text"], title["from_title"]) == ("PostgreSQL 15+", True)


def test_cli_section_filter(capsys):
    assert run_checklist(["--section", "7"]) == 0
    out = capsys.readouterr().out
    assert "7. Performance Validation (6 items)" in out
    assert "7.2.3" in out
    assert "1.1.1" not in out
    assert run_checklist(["--json", "--section", "11"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == ["11.1.1", "11.1.2", "11.1.3", "11.1.4", "11.1.5"]


@pytest.mark.parametrize("value", ["13", "0"])
def test_cli_unknown_section_is_a_usage_error(capsys, value):
    assert run_checklist(["--section", value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no section {value}; the checklist has sections 1..12" in captured.err


def test_cli_bad_arguments_exit_2(capsys):
    assert run_checklist(["--section", "three"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert run_checklist(["--bogus"]) == 2


def test_cli_tests_lists_an_items_tests_with_file_and_line(capsys):
    assert run_checklist(["--tests", "3.2.9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3.2.9 Resource requests and limits set (high, automated)")
    where = re.search(r"(suites/test_03_application\.py):(\d+)\s+(test_\w+)", out)
    assert where, out
    path, line, name = where.group(1), int(where.group(2)), where.group(3)
    assert "      decides: Backend: requests (500m CPU, 1Gi RAM), limits (2 CPU, 4Gi RAM); " in out
    source = Path(__file__).resolve().parents[1] / path
    assert f"def {name}(" in source.read_text().splitlines()[line - 1]


def test_cli_tests_reads_class_and_module_marks_in_a_users_directory(tmp_path, capsys):
    (tmp_path / "test_mine.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.checklist('1.1.3')\n"
        "def test_module_level():\n    '''Module mark.'''\n"
        "@pytest.mark.checklist('2.1.1')\n"
        "class TestThings:\n"
        "    def test_in_class(self):\n        pass\n"
        "def helper():\n    pass\n"
    )
    assert run_checklist(["--tests", "1.1.3", "--tests-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["test"] for t in data["tests"]] == ["test_module_level", "TestThings::test_in_class"]
    assert data["tests"][0]["where"].endswith("test_mine.py:3")
    assert run_checklist(["--tests", "2.1.1", "--tests-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(t["test"], t["items"]) for t in data["tests"]] == [
        ("TestThings::test_in_class", ["1.1.3", "2.1.1"])
    ]


def test_cli_tests_unknown_id_or_directory_is_a_usage_error(tmp_path, capsys):
    assert run_checklist(["--tests", "9.9.9"]) == 2
    assert "unknown checklist ID '9.9.9'" in capsys.readouterr().err
    assert run_checklist(["--tests", "1.1.1", "--tests-dir", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


# --- criteria: the seed's words, and how each is decided ----------------------------------------

SEED = Path(__file__).parent / "data" / "deployment-checklist.md"  # the checklist as published


def seed_items() -> dict[str, tuple[str, list[str]]]:
    """{ID: (title, criteria)} from the published checklist, as the catalog keeps them:
    markdown backticks and the status ticks (✅) dropped, the words verbatim."""
    found: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in SEED.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"- \[.\] \*\*(\d+\.\d+\.\d+)\*\* (.+)$", line):
            current = match.group(1)
            found[current] = (match.group(2), [])
        elif (match := re.match(r"  - (.+)$", line)) and current:
            found[current][1].append(match.group(1).replace("`", "").removesuffix(" ✅"))
        elif line.strip() and not line.startswith(" "):
            current = None
    return found


def test_every_criterion_is_the_seeds_text(catalog):
    seed = seed_items()
    assert len(seed) == 92
    assert sum(len(criteria) for _, criteria in seed.values()) == 362
    for item in catalog.items:
        title, criteria = seed[item.id]
        assert item.title == title, item.id
        assert list(item.criteria) == criteria, item.id
        # Requirements of the title (PostgreSQL 15+) are extra rows, never seed bullets.
        assert [c.text for c in item.criterion_specs if not c.from_title] == criteria


def test_every_criterion_says_how_it_is_decided(catalog):
    kinds = {c.decided_by for item in catalog for c in item.criterion_specs}
    assert kinds == {"checks", "attestation", "not_automatable", "none"}
    for item in catalog:
        for criterion in item.criterion_specs:
            if criterion.decided_by == "attestation":
                assert criterion.checks, (item.id, criterion.text)  # the test calling attest()
            if criterion.decided_by == "none":
                # A criterion no check decides yet says what is missing.
                assert criterion.note.startswith("no check yet: "), (item.id, criterion.text)
    # Attestation items are attested throughout; automated ones never.
    for item in catalog:
        kinds_of_item = {c.decided_by for c in item.criterion_specs}
        if item.automation is Automation.ATTESTATION:
            assert kinds_of_item == {"attestation"}, item.id
        if item.automation is Automation.AUTOMATED:
            assert "attestation" not in kinds_of_item, item.id


def suite_tests() -> dict[tuple[str, str], Any]:
    """{(item ID, test name): location} of every checklist-marked test in suites/ (AST)."""
    from pytest_vcci.checklist.locate import locate_tests

    return {(i, t.name): t for t in locate_tests() for i in t.item_ids}


def test_every_named_check_is_a_suite_test_of_its_item(catalog):
    tests = suite_tests()
    assert tests, "suites/ not found next to the package"
    named = 0
    for item in catalog:
        for criterion in item.criterion_specs:
            for entry in criterion.checks:
                for ref in entry:
                    named += 1
                    assert (item.id, ref.function) in tests, (
                        f"{item.id} {criterion.text!r}: {ref} is not a test in suites/ "
                        f"marked checklist({item.id!r})"
                    )
    assert named > 300


def test_every_suite_test_decides_a_criterion_of_its_item(catalog):
    orphans = [
        f"{location.where()} {name} ({item_id})"
        for (item_id, name), location in suite_tests().items()
        if not any(name in c.functions for c in catalog.get(item_id).criterion_specs)
    ]
    assert orphans == []


@pytest.mark.parametrize(
    ("criterion", "message"),
    [
        ({"text": "x"}, r"criterion #1 \('x'\): say how it is decided"),
        ({"text": "x", "checks": "test_a"}, r"'checks' must be a list of test names"),
        ({"text": "x", "checks": ["assert_a"]}, r"check 'assert_a' is not a test function name"),
        ({"text": "x", "checks": ["test_a | "]}, r"check '' is not a test function name"),
        ({"text": "x", "attestation": "y", "checks": []}, r"names the test that calls attest"),
        ({"text": "x", "not_automatable": "y", "checks": []}, r"names no checks"),
        ({"text": "x", "attestation": "y", "not_automatable": "z"}, r"not both"),
        ({"text": "x", "checks": [], "owner": "me"}, r"unknown key 'owner'"),
        ({"text": " ", "checks": []}, r"'text' must be a non-empty string"),
    ],
)
def test_criterion_validation_names_the_item_and_criterion(raw_catalog, criterion, message):
    data = copy.deepcopy(raw_catalog)
    data["item"][0]["criterion"][0] = criterion
    with pytest.raises(CatalogError, match=r"item #1 \(1\.1\.1\): .*" + message):
        parse_catalog(data)


def test_criteria_must_agree_with_the_automation_kind(raw_catalog):
    data = copy.deepcopy(raw_catalog)
    data["item"][0]["criterion"][0] = {"text": "x", "attestation": "y", "checks": ["test_x"]}
    with pytest.raises(CatalogError, match=r"an automated item has no attestation criterion"):
        parse_catalog(data)
    training = next(i for i, item in enumerate(raw_catalog["item"]) if item["id"] == "10.2.1")
    data = copy.deepcopy(raw_catalog)
    data["item"][training]["criterion"][0] = {"text": "x", "checks": ["test_x"]}
    with pytest.raises(CatalogError, match=r"every criterion of an attestation item is attested"):
        parse_catalog(data)
    data = copy.deepcopy(raw_catalog)
    data["item"][0]["criterion"][1]["text"] = data["item"][0]["criterion"][0]["text"]
    with pytest.raises(CatalogError, match=r"criterion 'Cluster version: 1.28\+' is listed twice"):
        parse_catalog(data)


def test_check_references_parse_instances_and_alternatives(catalog):
    [burst] = [c for c in catalog.get("4.2.3").criterion_specs if c.text.startswith("Burst")]
    assert burst.check_names == [
        "test_rate_limit_settings",
        "test_rate_limit_headers | test_burst_is_limited",
    ]
    assert [len(entry) for entry in burst.checks] == [1, 2]
    backend = catalog.get("3.2.4").criterion_specs[0]
    [[ref]] = backend.checks
    assert (ref.function, ref.param, str(ref)) == (
        "test_deployment_replicas_available",
        "backend",
        "test_deployment_replicas_available[backend]",
    )
    assert ref.matches("test_deployment_replicas_available", "backend")
    assert not ref.matches("test_deployment_replicas_available", "worker")
