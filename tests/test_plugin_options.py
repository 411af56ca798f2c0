"""Every command-line option and ini key, through real runs."""

from __future__ import annotations

import pytest
from plugin_support import (
    MINIMAL_ENV,
    covered,
    items_by_id,
    output,
    read_evidence,
    write_env,
    write_passing,
)

PROBE = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_probe(vcci_context):
    settings = vcci_context.settings
    print()
    print("@ENV", settings.name, settings.source)
    print("@REPLICAS", settings.threshold("3.2.4", "backend_replicas"))
    print("@RESTARTS", settings.threshold("3.2.4", "max_restarts"))
    redis = settings.table("redis")
    print("@REDIS", redis.url if redis else None)
"""


def probe(result: pytest.RunResult, key: str) -> str:
    for line in result.outlines:
        if line.startswith(f"@{key} "):
            return line.split(" ", 1)[1]
    raise AssertionError(f"{key} not printed:\n{result.stdout.str()}")


def test_help_lists_options_and_ini_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    result.stdout.fnmatch_lines_random(
        [
            "GL-VCCI production readiness checklist (pytest-vcci):",
            "*--vcci-env=NAME*",
            "*--vcci-config=PATH*",
            "*--vcci-set=TABLE.KEY=VALUE*",
            "*--vcci-report-dir=DIR*",
            "*--vcci-gate=SEVERITY*",
            "*--vcci-strict*",
            "*--vcci-attestations=PATH*",
            "*--vcci-allow-intrusive*",
            "*--checklist=PATTERNS*",
            "*--checklist-section=N*",
            "*vcci_env (string)*",
            "*vcci_config (string)*",
            "*vcci_environments_dir (string)*",
            "*vcci_report_dir (string)*",
            "*vcci_gate (string)*",
        ]
    )


def test_vcci_env_reads_environments_dir(pytester: pytest.Pytester) -> None:
    (pytester.path / "environments").mkdir()
    write_env(
        pytester,
        '[environment]\nname = "staging"\n[thresholds."3.2.4"]\nbackend_replicas = 5\n',
        "environments/staging.toml",
    )
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "--vcci-env", "staging")

    result.assert_outcomes(passed=1)
    assert probe(result, "ENV").startswith("staging ")
    assert probe(result, "ENV").endswith("environments/staging.toml")
    # The override from the file reaches the fixture; other thresholds keep catalog defaults.
    assert probe(result, "REPLICAS") == "5"
    assert probe(result, "RESTARTS") == "5"
    run = read_evidence(pytester)["run"]
    assert run["environment"] == "staging"
    assert run["environment_file"].endswith("environments/staging.toml")


def test_threshold_defaults_come_from_the_catalog(pytester: pytest.Pytester) -> None:
    write_env(pytester, MINIMAL_ENV)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "--vcci-config", "env.toml")

    result.assert_outcomes(passed=1)
    assert probe(result, "REPLICAS") == "3"
    assert probe(result, "REDIS") == "None"


def test_vcci_config_and_set_overrides(pytester: pytest.Pytester) -> None:
    write_env(pytester, '[environment]\nname = "from-file"\n')
    pytester.makepyfile(PROBE)
    result = pytester.runpytest(
        "-s",
        "--vcci-config",
        "env.toml",
        "--vcci-set",
        "environment.name=overridden",
        "--vcci-set",
        'thresholds."3.2.4".backend_replicas=9',
        "--vcci-set",
        "redis.url=redis://127.0.0.1:6399/0",
    )

    result.assert_outcomes(passed=1)
    assert probe(result, "ENV") == "overridden env.toml"
    assert probe(result, "REPLICAS") == "9"
    assert probe(result, "REDIS") == "redis://127.0.0.1:6399/0"
    assert read_evidence(pytester)["run"]["environment"] == "overridden"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("postgres", "ERROR: --vcci-set: expected TABLE.KEY=VALUE (no '=')*"),
        (
            "environment.name.first=x",
            "ERROR: --vcci-set: [[]environment[]].name: is not a table, so it has no keys",
        ),
        (
            'thresholds."3.2.4".backend_replicas="many"',
            'ERROR: --vcci-set: [[]thresholds."3.2.4"[]].backend_replicas: expected int like 3, got *many*',
        ),
        ("redis.port=6379", "ERROR: --vcci-set: [[]redis[]].port: unknown key*"),
    ],
)
def test_bad_vcci_set_is_a_usage_error(
    pytester: pytest.Pytester, override: str, message: str
) -> None:
    write_env(pytester, '[environment]\nname = "x"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("--vcci-config", "env.toml", "--vcci-set", override)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in output(result)


def test_ini_keys_env_environments_dir_and_report_dir(pytester: pytest.Pytester) -> None:
    (pytester.path / "envs").mkdir()
    write_env(pytester, '[environment]\nname = "qa"\n', "envs/qa.toml")
    pytester.makeini(
        "[pytest]\nvcci_env = qa\nvcci_environments_dir = envs\nvcci_report_dir = evidence-out\n"
    )
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s")

    result.assert_outcomes(passed=1)
    assert probe(result, "ENV").startswith("qa ")
    assert read_evidence(pytester, "evidence-out")["run"]["environment"] == "qa"
    assert not (pytester.path / "reports").exists()


def test_ini_vcci_env_alone_activates_the_plugin(pytester: pytest.Pytester) -> None:
    (pytester.path / "environments").mkdir()
    write_env(pytester, '[environment]\nname = "ci"\n', "environments/ci.toml")
    pytester.makeini("[pytest]\nvcci_env = ci\n")
    pytester.makepyfile("def test_unmarked():\n    pass\n")
    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert read_evidence(pytester)["run"]["environment"] == "ci"


def test_ini_vcci_config_is_relative_to_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "conf").mkdir()
    write_env(pytester, '[environment]\nname = "from-ini"\n', "conf/env.toml")
    pytester.makeini("[pytest]\nvcci_config = conf/env.toml\n")
    pytester.makepyfile(PROBE)
    monkeypatch.chdir(pytester.mkdir("elsewhere"))
    result = pytester.runpytest("-s", str(pytester.path))

    result.assert_outcomes(passed=1)
    assert probe(result, "ENV") == f"from-ini {pytester.path / 'conf' / 'env.toml'}"
    # The report directory is relative to where pytest was started.
    assert read_evidence(pytester, "elsewhere/reports")["run"]["environment"] == "from-ini"


def test_option_overrides_ini(pytester: pytest.Pytester) -> None:
    write_env(pytester, '[environment]\nname = "ini"\n', "ini.toml")
    write_env(pytester, '[environment]\nname = "cli"\n', "cli.toml")
    pytester.makeini("[pytest]\nvcci_config = ini.toml\nvcci_report_dir = ini-reports\n")
    pytester.makepyfile(PROBE)
    result = pytester.runpytest(
        "-s", "--vcci-config", "cli.toml", "--vcci-report-dir", "cli-reports"
    )

    assert probe(result, "ENV") == "cli cli.toml"
    assert read_evidence(pytester, "cli-reports")["run"]["environment"] == "cli"
    assert not (pytester.path / "ini-reports").exists()


def test_report_dir_absolute(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("absolute") / "deep" / "out"
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("--vcci-report-dir", str(out))

    result.assert_outcomes(passed=1)
    assert {"checklist.html", "evidence.json", "junit.xml", "report.html"} <= {
        p.name for p in out.iterdir()
    }
    result.stdout.fnmatch_lines([f"reports: {out / 'checklist.html'}"])


TARGET_TEST = """
import pytest

@pytest.mark.checklist("1.1.3")
def test_redis_cluster(vcci_context):
    table = vcci_context.target_table("redis")
    assert table.url
"""


def test_unconfigured_target_skips_naming_the_table(pytester: pytest.Pytester) -> None:
    write_env(pytester, MINIMAL_ENV)
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--vcci-config", "env.toml", "-rs")

    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*[[]redis[]] is not configured in env.toml*"])
    data = read_evidence(pytester)
    assert covered(data) == {"1.1.3": "skipped"}
    assert data["run"]["verdict"] == "ready_with_warnings"
    assert data["run"]["strict"] is False


def test_strict_fails_unconfigured_targets_and_blocks_uncovered_items(
    pytester: pytest.Pytester,
) -> None:
    write_env(pytester, MINIMAL_ENV)
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--vcci-config", "env.toml", "--vcci-strict")

    assert result.ret == 1
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]redis[]] is not configured in env.toml*--vcci-strict*"])
    data = read_evidence(pytester)
    assert covered(data) == {"1.1.3": "failed"}
    run = data["run"]
    assert (run["verdict"], run["strict"]) == ("blocked", True)
    # Under --vcci-strict an uncovered item at or above the gate blocks too.
    assert "1.1.2" in run["blocking"]
    assert "10.1.2" in run["warnings"]  # low, below the default gate


def test_strict_fails_exactly_the_criteria_no_check_decides_yet(pytester: pytest.Pytester) -> None:
    """Every item's catalog checks pass and every attestation has a record: under --vcci-strict
    the items left failing are those with a criterion no check decides yet (checks = [])."""
    from pytest_vcci.checklist import Automation, load_catalog

    catalog = load_catalog()
    write_passing(pytester, *catalog.ids)
    attested = [i.id for i in catalog if i.automation is not Automation.AUTOMATED]
    write_env(pytester, "".join(RECORD.format(item=i) for i in attested), "attestations.toml")
    result = pytester.runpytest(
        "--vcci-strict", "--vcci-gate", "critical", "--vcci-attestations", "attestations.toml"
    )

    pending = {
        i.id: i.severity.value
        for i in catalog
        if any(c.decided_by == "none" for c in i.criterion_specs)
    }
    data = read_evidence(pytester)
    statuses = {i["id"]: i["status"] for i in data["items"]}
    assert {k for k, v in statuses.items() if v not in ("passed", "attested")} == set(pending)
    assert {statuses[i.id] for i in catalog if i.automation is Automation.ATTESTATION} == {
        "attested"
    }
    assert {statuses[k] for k in pending} == {"failed"}
    run = data["run"]
    assert set(run["blocking"]) == {k for k, v in pending.items() if v == "critical"}
    assert set(run["warnings"]) == {k for k, v in pending.items() if v != "critical"}
    assert (result.ret, run["verdict"]) == (1, "blocked")
    # Not automatable is listed, never blocking: 12.2.2 passes with its one such criterion.
    [success] = [
        c
        for c in items_by_id(data)["12.2.2"]["criteria_status"]
        if c["status"] == "not_automatable"
    ]
    assert success["text"] == "Success criteria met"
    assert "(--vcci-strict makes undecided a failure)" in items_by_id(data)["6.1.3"]["message"]


RECORD = """
[[attestation]]
item = "{item}"
statement = "Recorded for the strict-mode test"
attested_by = "QA Bot"
role = "QA"
date = 2026-01-01
expires = 2099-01-01
reference = "TEST-{item}"
"""


# 9.2.2's criteria are decided by its intrusive workflow only; 3.2.2's by a read-only check.
INTRUSIVE = """
import pytest

@pytest.mark.intrusive
@pytest.mark.checklist("9.2.2")
def test_emissions_calculation_workflow(evidence):
    print("LOAD SENT")
    evidence.check("report generated", True, True, True)

@pytest.mark.checklist("3.2.2")
def test_configmap_deployed_and_valid(evidence):
    evidence.check("syntax", "valid", "valid", True)
"""


def test_intrusive_checks_skip_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INTRUSIVE)
    result = pytester.runpytest("-rs", "-s", "--vcci-gate", "high")

    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*intrusive check*run with --vcci-allow-intrusive*"])
    assert "LOAD SENT" not in result.stdout.str()
    assert covered(read_evidence(pytester)) == {"9.2.2": "skipped", "3.2.2": "passed"}


def test_intrusive_checks_run_when_allowed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INTRUSIVE)
    result = pytester.runpytest("-s", "--vcci-allow-intrusive")

    result.assert_outcomes(passed=2)
    assert "LOAD SENT" in result.stdout.str()
    assert covered(read_evidence(pytester)) == {"9.2.2": "passed", "3.2.2": "passed"}


def test_intrusive_checks_skip_in_late_activation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INTRUSIVE)
    result = pytester.runpytest("-s")

    result.assert_outcomes(passed=1, skipped=1)
    assert "LOAD SENT" not in result.stdout.str()
