"""Bad input is one line and loses nothing (issue 10, "Bad input").

Every malformed environment file, option, ini value, attestations or waivers file ends the run
before it starts: exit status 4, and the whole output (stdout and stderr together) is exactly one
line, ``ERROR: <source>: <where>: <what was expected>``, where source is the file or the
option (``--vcci-set``, ``--checklist``, ``ini vcci_gate``, ...) and where is the table and key.
Nothing else: no session header, no traceback, no INTERNALERROR, no verdict. A previous run's
report directory stays byte for byte as it was.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import NamedTuple

import pytest
from plugin_support import output, write_env

ENV = '[environment]\nname = "staging"\n'
PG = '[postgres]\ndsn = "{}"\n'
TEST = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas():
    pass
"""
PREVIOUS = {
    "evidence.json": '{"run": {"verdict": "ready"}}\n',
    "checklist.html": "<p>previous run</p>\n",
    "manifest.json": '{"files": []}\n',
    "manifest.sig": "c2lnbmF0dXJl\n",
}
ATTESTATION = (
    '[[attestation]]\nitem = "10.2.1"\nstatement = "trained"\nattested_by = "Dana"\n'
    'role = "Ops"\ndate = 2026-01-01\nexpires = 2027-01-01\nreference = "OPS-1"\n'
)
WAIVER = (
    '[[waiver]]\nitem = "3.2.4"\njustification = "capacity change in Q4"\n'
    'approved_by = "Sam (CISO)"\napproved_on = 2026-11-01\nexpires_on = 2026-12-01\n'
    'ticket = "RISK-1"\n'
)


class Case(NamedTuple):
    expected: str  # fnmatch pattern of the one line; [[] is a literal [
    env: str | None = None  # environment file content (None: no --vcci-config)
    args: tuple[str, ...] = ()
    ini: str | None = None
    files: tuple[tuple[str, str], ...] = ()


def env_case(extra: str, expected: str) -> Case:
    return Case(f"ERROR: env.toml: {expected}", env=ENV + extra)


CASES = {
    # --- environment file: where the targets live -------------------------------------------
    "dsn-port-not-a-number": env_case(
        PG.format("postgresql://app@db:notaport/vcci"),
        "[[]postgres].dsn: the port is not a number from 1 to 65535",
    ),
    "dsn-port-zero": env_case(
        PG.format("postgresql://app@db:0/vcci"), "[[]postgres].dsn: the port is not a number*"
    ),
    "dsn-port-too-big": env_case(
        PG.format("postgresql://app@db:70000/vcci"), "[[]postgres].dsn: the port is not a number*"
    ),
    "dsn-kv-sslmode": env_case(
        PG.format("host=db dbname=vcci sslmode=bogus"),
        "[[]postgres].dsn: sslmode is not one of disable, allow, prefer, require, verify-ca,"
        " verify-full",
    ),
    "dsn-url-sslmode": env_case(
        PG.format("postgresql://app@db/vcci?sslmode=on"), "[[]postgres].dsn: sslmode is not one*"
    ),
    "dsn-scheme": env_case(
        PG.format("mysql://app@db/vcci"),
        "[[]postgres].dsn: expected a DSN starting with postgresql:// or postgres:// *"
        "(scheme mysql://)",
    ),
    "dsn-no-host": env_case(PG.format("postgresql:///vcci"), "[[]postgres].dsn: no host*"),
    "dsn-kv-no-host": env_case(PG.format("dbname=vcci user=app"), "[[]postgres].dsn: no host*"),
    "dsn-kv-unknown-option": env_case(
        PG.format("host=db dbnme=vcci"),
        '[[]postgres].dsn: not a valid PostgreSQL DSN (invalid connection option "dbnme")*',
    ),
    "dsn-kv-unterminated-quote": env_case(
        PG.format("host=db dbname='vcci"),
        "[[]postgres].dsn: not a valid PostgreSQL DSN (libpq cannot parse it)*",
    ),
    "dsn-host-with-space": env_case(
        PG.format("postgresql://app@db host/vcci"), "[[]postgres].dsn: not a valid PostgreSQL DSN*"
    ),
    "dsn-ports-for-hosts": env_case(
        PG.format("host=a,b,c port=5432,5433"),
        "[[]postgres].dsn: 2 ports for 3 hosts (give one port, or one per host)",
    ),
    "replica-port": env_case(
        PG.format("postgresql://db/vcci")
        + 'replicas = ["postgresql://r1/vcci", "postgresql://r2:x/v"]\n',
        "[[]postgres].replicas[[]1]: the port is not a number from 1 to 65535",
    ),
    "pgbouncer-host": env_case(
        PG.format("postgresql://db/vcci") + 'pgbouncer_dsn = "postgresql://bouncer..local/vcci"\n',
        "[[]postgres].pgbouncer_dsn: the host is not a well-formed host name or IP address",
    ),
    "redis-scheme": env_case(
        '[redis]\nurl = "http://cache:6379/0"\n',
        "[[]redis].url: expected a URL starting with redis:// or rediss:// (scheme http://)",
    ),
    "redis-no-scheme": env_case(
        '[redis]\nurl = "cache:6379"\n', "[[]redis].url: expected a URL starting with*(no scheme)"
    ),
    "redis-port": env_case(
        '[redis]\nurl = "redis://cache:port/0"\n', "[[]redis].url: not a valid URL*"
    ),
    "redis-database": env_case(
        '[redis]\nurl = "redis://cache:6379/zero"\n',
        "[[]redis].url: the path must be a database number, e.g. /0",
    ),
    "redis-cluster-url": env_case(
        '[redis]\nurl = "redis://cache/0"\ncluster_url = "rediss://"\n',
        "[[]redis].cluster_url: no host in the URL",
    ),
    "redis-unknown-key-first": env_case(
        '[redis]\nurll = "redis://cache:6379/0"\n',
        "[[]redis].urll: unknown key; did you mean url? (expected one of: *url*)",
    ),
    "api-no-scheme": env_case(
        '[api]\nbase_url = "api.staging.example"\n',
        "[[]api].base_url: expected a URL starting with http:// or https:// (no scheme)",
    ),
    "api-scheme": env_case(
        '[api]\nbase_url = "ftp://api.staging.example"\n', "[[]api].base_url: *(scheme ftp://)"
    ),
    "api-no-host": env_case('[api]\nbase_url = "https:///v1"\n', "[[]api].base_url: no host*"),
    "prometheus-scheme": env_case(
        '[prometheus]\nurl = "redis://prometheus:9090"\n', "[[]prometheus].url: *(scheme redis://)"
    ),
    "alertmanager-port": env_case(
        '[alertmanager]\nurl = "http://alertmanager:99999"\n',
        "[[]alertmanager].url: not a valid URL*",
    ),
    "grafana-host": env_case(
        '[grafana]\nurl = "https://-grafana-/"\n',
        "[[]grafana].url: the host is not a well-formed host name or IP address",
    ),
    "aws-endpoint": env_case(
        '[aws]\nregion = "eu-west-1"\nendpoint_url = "127.0.0.1:5000"\n',
        "[[]aws].endpoint_url: expected a URL starting with http:// or https:// (no scheme)",
    ),
    "aws-region": env_case(
        '[aws]\nregion = "Europe (Ireland)"\n',
        "[[]aws].region: expected an AWS region name, e.g. eu-west-1",
    ),
    "kubernetes-server": env_case(
        '[kubernetes]\nserver = "10.0.0.1:6443"\n',
        "[[]kubernetes].server: expected a URL starting with http:// or https:// (no scheme)",
    ),
    "smtp-host": env_case(
        '[smtp]\nhost = "smtp server.example"\n',
        "[[]smtp].host: the host is not a well-formed host name or IP address",
    ),
    "smtp-port": env_case(
        '[smtp]\nhost = "smtp.example"\nport = 0\n',
        "[[]smtp].port: Input should be greater than or equal to 1 (got 0)",
    ),
    "tls-endpoint-port": env_case(
        '[tls]\nendpoints = ["api.example:443", "api.example:https"]\n',
        "[[]tls].endpoints[[]1]: expected host:port (port: a number from 1 to 65535)",
    ),
    "tls-endpoint-host": env_case(
        '[tls]\nendpoints = [":443"]\n', "[[]tls].endpoints[[]0]: no host"
    ),
    "resolver-not-an-ip": env_case(
        '[host]\nresolver = "dns.internal"\n',
        "[[]host].resolver: expected an IP address, e.g. 10.0.0.2",
    ),
    "docs-url": env_case(
        '[docs]\nurl = "docs.example"\n', "[[]docs].url: expected a URL starting with*"
    ),
    "performance-path": env_case(
        '[performance]\napi_endpoints = ["health/ready"]\n',
        "[[]performance].api_endpoints[[]0]: expected a path starting with /, e.g. /health/ready",
    ),
    "environment-name-empty": Case(
        "ERROR: env.toml: [[]environment].name: String should have at least 1 character*",
        env='[environment]\nname = ""\n',
    ),
    "timeout-type": env_case(
        '[redis]\nurl = "redis://cache/0"\nconnect_timeout = "fast"\n',
        "[[]redis].connect_timeout: Input should be a valid number* (got 'fast')",
    ),
    "threshold-bool": env_case(
        '[thresholds."3.2.4"]\nbackend_replicas = true\n',
        '[[]thresholds."3.2.4"].backend_replicas: expected int like 3, got True',
    ),
    "expect-not-a-table": Case(
        "ERROR: env.toml: [[]expect]: expected a table", env="expect = 3\n" + ENV
    ),
    # --- options ----------------------------------------------------------------------------
    "set-dot": Case(
        "ERROR: --vcci-set: key '.': expected TABLE.KEY=VALUE, e.g. *", args=("--vcci-set", ".=1")
    ),
    "set-dot-dot": Case(
        "ERROR: --vcci-set: key '..': expected TABLE.KEY=VALUE*", args=("--vcci-set", "..=1")
    ),
    "set-empty-part": Case(
        "ERROR: --vcci-set: key 'redis..url': expected*", args=("--vcci-set", "redis..url=x")
    ),
    "set-no-key": Case(
        "ERROR: --vcci-set: key 'redis': expected TABLE.KEY=VALUE*", args=("--vcci-set", "redis=1")
    ),
    "set-no-equals": Case(
        "ERROR: --vcci-set: expected TABLE.KEY=VALUE (no '=')*", args=("--vcci-set", "redis.url")
    ),
    "set-bad-url": Case(
        "ERROR: --vcci-set: [[]redis].url: expected a URL starting with redis:// or rediss://*",
        env=ENV + '[redis]\nurl = "redis://cache/0"\n',
        args=("--vcci-set", "redis.url=cache:6379"),
    ),
    "set-not-a-table": Case(
        "ERROR: --vcci-set: [[]environment].name: is not a table, so it has no keys",
        args=("--vcci-set", "environment.name.first=x"),
    ),
    "checklist-unknown": Case(
        "ERROR: --checklist: '99.9.9' matches no checklist item", args=("--checklist", "99.9.9")
    ),
    "checklist-trailing-dot": Case(
        "ERROR: --checklist: '1.1.' matches no checklist item", args=("--checklist", "1.1.")
    ),
    "checklist-not-a-pattern": Case(
        "ERROR: --checklist: invalid checklist pattern 'deploy'*", args=("--checklist", "deploy")
    ),
    "checklist-section-unknown": Case(
        "ERROR: --checklist-section: no section 99; the checklist has sections 1..12",
        args=("--checklist-section", "99"),
    ),
    "checklist-section-word": Case(
        "ERROR: --checklist-section: 'three' is not a section number (e.g. 3)",
        args=("--checklist-section", "three"),
    ),
    "gate": Case(
        "ERROR: --vcci-gate: 'severe' is not one of critical, high, medium, low",
        args=("--vcci-gate", "severe"),
    ),
    "sign-key-missing": Case(
        "ERROR: --vcci-sign-key: absent.pem: *absent.pem: file not found",
        args=("--vcci-sign-key", "absent.pem"),
    ),
    "config-missing": Case(
        "ERROR: absent.toml: environment file not found", args=("--vcci-config", "absent.toml")
    ),
    "env-unknown": Case(
        "ERROR: *environments/stagin.toml: no environment named 'stagin'",
        args=("--vcci-env", "stagin"),
    ),
    "report-dir-is-a-file": Case(
        "ERROR: --vcci-report-dir: */notes.txt: is a file, not a directory",
        args=("--vcci-report-dir", "notes.txt"),
        files=(("notes.txt", "not a directory\n"),),
    ),
    "report-dir-under-a-file": Case(
        "ERROR: --vcci-report-dir: */notes.txt/reports: cannot be created: */notes.txt is a file,"
        " not a directory",
        args=("--vcci-report-dir", "notes.txt/reports"),
        files=(("notes.txt", "not a directory\n"),),
    ),
    "history-is-a-file": Case(
        "ERROR: --vcci-history: */notes.txt: is a file, not a directory",
        args=("--vcci-history", "notes.txt"),
        files=(("notes.txt", "not a directory\n"),),
    ),
    # --- ini --------------------------------------------------------------------------------
    "ini-gate": Case(
        "ERROR: ini vcci_gate: 'severe' is not one of critical, high, medium, low",
        env=ENV,
        ini="vcci_gate = severe",
    ),
    "ini-waiver-days": Case(
        "ERROR: ini: vcci_waiver_max_days: expected a whole number of days >= 1, got 'ninety'",
        env=ENV,
        ini="vcci_waiver_max_days = ninety",
    ),
    "ini-report-dir-is-a-file": Case(
        "ERROR: ini vcci_report_dir: */notes.txt: is a file, not a directory",
        env=ENV,
        ini="vcci_report_dir = notes.txt",
        files=(("notes.txt", "not a directory\n"),),
    ),
    "ini-config-missing": Case(
        "ERROR: *absent.toml: environment file not found", env=None, ini="vcci_config = absent.toml"
    ),
    "ini-environments-dir": Case(
        "ERROR: *nowhere/qa.toml: no environment named 'qa'",
        env=None,
        ini="vcci_env = qa\nvcci_environments_dir = nowhere",
    ),
    # --- attestations and waivers -----------------------------------------------------------
    "attestation-unknown-key-first": Case(
        "ERROR: att.toml: [[][[]attestation]] #1.attested: unknown key; did you mean attested_by?*",
        args=("--vcci-attestations", "att.toml"),
        files=(("att.toml", ATTESTATION.replace("attested_by", "attested")),),
    ),
    "attestation-date": Case(
        "ERROR: att.toml: [[][[]attestation]] #1.date: *date*",
        args=("--vcci-attestations", "att.toml"),
        files=(("att.toml", ATTESTATION.replace("2026-01-01", '"last spring"')),),
    ),
    "attestation-unknown-item": Case(
        "ERROR: att.toml: [[][[]attestation]] #1.item: unknown checklist ID '99.1.1'",
        args=("--vcci-attestations", "att.toml"),
        files=(("att.toml", ATTESTATION.replace("10.2.1", "99.1.1")),),
    ),
    "waiver-expiry": Case(
        "ERROR: w.toml: [[][[]waiver]] #1.expires_on: must be after approved_on (2026-11-01)",
        args=("--vcci-waivers", "w.toml"),
        files=(("w.toml", WAIVER.replace("2026-12-01", "2026-10-01")),),
    ),
    "waiver-unknown-key-first": Case(
        "ERROR: w.toml: [[][[]waiver]] #1.tickt: unknown key; did you mean ticket?*",
        args=("--vcci-waivers", "w.toml"),
        files=(("w.toml", WAIVER.replace("ticket", "tickt")),),
    ),
    "waivers-not-toml": Case(
        "ERROR: w.toml: not valid TOML: *",
        args=("--vcci-waivers", "w.toml"),
        files=(("w.toml", "[[waiver]\n"),),
    ),
}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def run_case(pytester: pytest.Pytester, case: Case) -> tuple[pytest.RunResult, list[str]]:
    if case.env is not None:
        write_env(pytester, case.env)
    for name, text in case.files:
        write_env(pytester, text, name)
    if case.ini is not None:
        pytester.makeini(f"[pytest]\n{case.ini}\n")
    pytester.makepyfile(TEST)
    config = ("--vcci-config", "env.toml") if case.env is not None else ()
    no_env = case.env is None and case.ini is None and not case.args
    assert not no_env, "a case must give some input"
    result = pytester.runpytest(*config, *case.args)
    return result, [line for line in output(result).splitlines() if line.strip()]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_malformed_input_is_one_line_and_writes_nothing(
    pytester: pytest.Pytester, case: Case
) -> None:
    reports = pytester.path / "reports"
    reports.mkdir()
    for name, text in PREVIOUS.items():
        (reports / name).write_text(text)
    before = snapshot(reports)

    result, lines = run_case(pytester, case)

    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    assert len(lines) == 1, output(result)
    assert fnmatch(lines[0], case.expected), f"{lines[0]!r} does not match {case.expected!r}"
    assert "Traceback" not in lines[0]
    assert "INTERNALERROR" not in lines[0]
    # The previous run's evidence is untouched, and nothing was added beside it.
    assert snapshot(reports) == before
    assert not (pytester.path / "notes.txt" / "reports").exists()


# --- a wrong value for a secret-holding key is described, never shown ---------------------

# As TOML basic-string text: the value holds one backslash, a quote and non-ASCII.
SECRET = "s3cr\\\\et-Tök'en/+="


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (
            "api.token",
            f'["{SECRET}"]',
            "[[]api].token: Input should be a valid string (got an array)",
        ),
        ("api.token", f'{{a = "{SECRET}"}}', "[[]api].token: * (got a table)"),
        ("api.api_key", "12345678", "[[]api].api_key: * (got an integer)"),
        ("aws.secret_access_key", f'["{SECRET}"]', "[[]aws].secret_access_key: * (got an array)"),
        ("redis.url", f'["redis://app:{SECRET}@cache/0"]', "[[]redis].url: * (got an array)"),
        (
            "postgres.dsn",
            f'"postgresql://app:{SECRET}@db:x/vcci"',
            "[[]postgres].dsn: *",
        ),
        (
            "postgres.dsn",
            f"\"host=db password='{SECRET}' sslmode=maybe\"",
            "[[]postgres].dsn: *",
        ),
        ("postgres.replicas", f'"postgresql://app:{SECRET}@r1/vcci"', "[[]postgres].replicas: *"),
    ],
    ids=["array", "table", "integer", "aws", "url-array", "dsn-url", "dsn-kv", "replicas"],
)
@pytest.mark.parametrize("source", ["file", "option"])
def test_a_wrong_secret_value_is_never_echoed(
    pytester: pytest.Pytester, where: str, value: str, expected: str, source: str
) -> None:
    table, key = where.split(".")
    required = {
        "api": 'base_url = "https://api.example"\n',
        "aws": 'region = "eu-west-1"\n',
        "redis": "",
        "postgres": 'dsn = "postgresql://db/vcci"\n' if key != "dsn" else "",
    }[table]
    if source == "file":
        case = Case(
            f"ERROR: env.toml: {expected}", env=f"{ENV}[{table}]\n{required}{key} = {value}\n"
        )
    else:
        env = f"{ENV}[{table}]\n{required}" if required else ENV
        case = Case(
            f"ERROR: --vcci-set: {expected}", env=env, args=("--vcci-set", f"{where}={value}")
        )
    result, lines = run_case(pytester, case)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(lines) == 1, lines
    assert fnmatch(lines[0], case.expected), lines
    text = output(result)
    for fragment in ("s3cr", "Tök", "T\\xf6k", "et-T", "12345678"):
        assert fragment not in text
