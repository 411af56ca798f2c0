"""Secrets never leave, end to end (issue 10, requirement 1).

A distinct secret is planted in every secret-holding setting (tests/secrets_support.py), each
with every character that repr, JSON, HTML and URL encoding change and a non-ASCII one. The
readiness suites and a module of careless checks then run against targets that make the clients
send them: moto (botocore signs with the planted session token and logs the request at DEBUG), a
server that refuses every request and echoes the credentials it got (the API, Kubernetes,
monitoring and docs clients), and a closed port (PostgreSQL, Redis). Two runs cover the output
modes: serial with -vv -l --tb=long, live logging and --log-file at DEBUG, the cache and
--vcci-history; and -n 2 with -v -l (pytest shortens long locals) and --log-level=DEBUG.
No planted secret may appear, in any form, in anything either run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from secrets_support import PlantedEnvironment, closed_port, echo_server, moto_server, plant

REPO = Path(__file__).resolve().parents[1]

CARELESS_CHECKS = '''
"""Every way a check can carry a secret toward an output, on purpose."""
import base64
import html
import json
import logging
import sys
import warnings
from urllib.parse import quote, quote_plus

import pytest

log = logging.getLogger("vcci.careless")


def forms(secret):
    """What careless code prints: the secret raw, escaped, encoded."""
    return [
        secret, repr(secret), ascii(secret), json.dumps(secret),
        json.dumps({"k": secret}, ensure_ascii=False), html.escape(secret),
        quote(secret, safe=""), quote_plus(secret).lower(),
        base64.b64encode(secret.encode()).decode(),
        "Basic " + base64.b64encode(f"vcci:{secret}".encode()).decode(),
    ]


@pytest.fixture(scope="module")
def secrets(vcci_context):
    return vcci_context.settings.secrets()


@pytest.fixture
def token(vcci_context):
    return vcci_context.settings.table("api").token


@pytest.mark.checklist("4.1.1")
def test_forced_failure(vcci_context, evidence, secrets, token):
    settings = vcci_context.settings
    every = {secret: forms(secret) for secret in secrets}
    print("stdout:", every)
    print("stderr:", every, file=sys.stderr)
    log.debug("debug %s %r", token, every)
    log.info("as json %s", json.dumps(every))
    try:
        raise ConnectionError(f"cannot connect with {token!r}")
    except ConnectionError:
        log.exception("with traceback and stack %s", token, stack_info=True)
    warnings.warn(f"careless warning {token} {json.dumps(token)}")
    evidence.record("forms", every, expected=token, where=settings.table("postgres").dsn)
    evidence.attach("forms as text", "\\n".join(map(str, every.values())))
    evidence.attach("forms as json", every)
    evidence.check("token", token, "another", passed=False, where=settings.table("redis").url)
    api_key = settings.table("api").api_key
    assert token == api_key, f"token {token!r} is not the API key {api_key}"


@pytest.mark.checklist("4.1.2")
def test_long_local_is_shortened_in_a_secret(token):
    # pytest (-l without -vv) shortens a long repr in the middle: 118 characters, "...", the
    # last 119. Here the cut falls inside the secret at both ends.
    blob = "x" * 107 + token + "y" * 400 + token + "z" * 100
    assert blob == "", "see the locals"


@pytest.mark.checklist("4.1.3")
def test_dict_comparison(vcci_context, secrets):
    table = vcci_context.settings.table("postgres")
    assert {"dsn": table.dsn, "all": secrets} == {"dsn": "", "all": []}


@pytest.mark.checklist("4.1.4")
def test_skip_with_secret(token):
    pytest.skip(f"skipping with {token} and {json.dumps(token)}")


@pytest.mark.checklist("4.1.5")
def test_xfail_with_secret(token):
    pytest.xfail(f"expected to fail with {token}")


@pytest.mark.checklist("4.2.1")
def test_property_with_secret(record_property, token):
    record_property("token", token)
    record_property(token, "as a name")


@pytest.fixture
def broken_setup(vcci_context):
    raise ConnectionError(f"setup cannot reach {vcci_context.settings.table('redis').url}")


@pytest.mark.checklist("4.2.2")
def test_setup_error(broken_setup):
    pass


@pytest.fixture
def broken_teardown(token):
    yield
    raise RuntimeError(f"teardown with {token!r}")


@pytest.mark.checklist("4.2.3")
def test_teardown_error(broken_teardown):
    pass


def test_unmarked_check_logs_its_caplog(caplog, token, secrets):
    caplog.set_level("DEBUG")
    logging.getLogger("urllib3.connectionpool").debug("GET /?token=%s", token)
    raise AssertionError(f"caplog: {caplog.text} {caplog.records[0].getMessage()} {secrets}")
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedEnvironment]:
    with echo_server() as http_url, moto_server() as aws_url:
        yield plant(http_url=http_url, aws_url=aws_url, closed_port=closed_port())


RUNS: dict[str, list[str]] = {
    "serial": [
        "-vv",
        "-l",
        "--tb=long",
        "-rA",
        "--log-cli-level=DEBUG",
        "--log-level=DEBUG",
        "--vcci-history",
        "history",
    ],
    "xdist": ["-n", "2", "-v", "-l", "--tb=long", "-rA", "--log-level=DEBUG"],
}


@pytest.fixture(scope="module", params=list(RUNS))
def run(
    request: pytest.FixtureRequest,
    planted: PlantedEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One run of the suites and the careless checks; what it printed and wrote."""
    directory = tmp_path_factory.mktemp(request.param)
    planted.write(directory / "planted.toml")
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_careless.py").write_text(CARELESS_CHECKS)
    # One secret on the command line too: it is in the run's recorded command.
    api_key = planted.secrets["grafana.api_key"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(REPO / "suites"),
            "test_careless.py",
            "-c",
            "pytest.ini",
            "--rootdir",
            ".",
            "-o",
            "cache_dir=cache",
            "--vcci-config",
            "planted.toml",
            "--vcci-set",
            f"grafana.api_key={json.dumps(api_key)}",
            "--vcci-report-dir",
            "reports",
            "--log-file",
            "run.log",
            "--log-file-level=DEBUG",
            *RUNS[request.param],
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **planted.variables},
    )
    return {
        "directory": directory,
        "console": proc.stdout + proc.stderr,
        "evidence": json.loads((directory / "reports" / "evidence.json").read_text()),
    }


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


OUTPUTS = (
    "console",
    "evidence.json",
    "report.html",
    "checklist.html",
    "junit.xml",
    "manifest.json",
    "oscal-assessment-results.json",
    "run.log",
    "cache",
    "history",
)


@pytest.mark.parametrize("output", OUTPUTS)
def test_no_planted_secret_in_any_form(
    run: dict[str, Any], planted: PlantedEnvironment, output: str
) -> None:
    directory: Path = run["directory"]
    if output == "console":
        texts = {"console": run["console"]}
    elif output in ("cache", "history"):
        if output == "history" and not (directory / "history").exists():
            pytest.skip("this run keeps no history")
        files = _files(directory / output)
        assert files, f"the run wrote nothing under {output}/"
        texts = {str(p.relative_to(directory)): _text(p) for p in files}
    else:
        path = directory / output if output == "run.log" else directory / "reports" / output
        texts = {output: _text(path)}
    planted.assert_no_leak(texts)


def test_every_path_was_taken(run: dict[str, Any], planted: PlantedEnvironment) -> None:
    """What the runs must have done for the search above to mean anything."""
    console, directory = run["console"], run["directory"]
    log_file = _text(directory / "run.log")
    # botocore signed with the planted session token, sent it, and logged it at DEBUG (under
    # xdist the workers' captured logs reach the console; each worker rewrites the log file).
    logs = console + log_file
    assert "x-amz-security-token:[REDACTED]" in logs
    assert "'X-Amz-Security-Token': b'[REDACTED]'" in logs
    # Every target was tried; the HTTP clients sent their credentials (requests sends a URL's
    # user:password as HTTP Basic) and the echo server answered with them.
    targets = run["evidence"]["run"]["targets"]
    assert {"postgres", "redis", "aws", "api", "kubernetes", "prometheus"} <= set(targets)
    assert targets["aws"]["reachable"], targets["aws"]
    assert "401" in targets["kubernetes"]["cause"]
    assert '"authorization": "Basic [REDACTED]"' in targets["prometheus"]["cause"]
    assert '"authorization": "Basic [REDACTED]"' in console
    # The careless checks ran and failed, skipped or errored as written.
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in run["evidence"]["tests"]}
    assert outcomes["test_forced_failure"] == "failed"
    assert outcomes["test_long_local_is_shortened_in_a_secret"] == "failed"
    assert outcomes["test_dict_comparison"] == "failed"
    assert outcomes["test_skip_with_secret"] == "skipped"
    assert outcomes["test_setup_error"] == "error"
    assert outcomes["test_teardown_error"] == "error"
    assert outcomes["test_unmarked_check_logs_its_caplog"] == "failed"
    assert "careless warning [REDACTED]" in console
    assert "with traceback and stack [REDACTED]" in logs
    assert "Stack (most recent call last)" in logs
    # The secrets were shown where they were: masked, not dropped.
    assert "token '[REDACTED]' is not the API key [REDACTED]" in console
    # -l without -vv cuts long locals in the middle: the cut secret's ends are masked too.
    token = planted.secrets["api.token"]
    assert token[:8] not in console
    assert token[-6:] not in console
