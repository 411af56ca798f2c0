"""Secrets never leave: not in any report file, not on the console, whatever a test does."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from plugin_support import files_under, items_by_id, nodeid_map, output, read_evidence, write_env
from secrets_support import leaks, secret_forms

from pytest_vcci.evidence.log_redaction import LogRedaction
from pytest_vcci.evidence.recorder import Evidence
from pytest_vcci.evidence.redaction import MASK, Redactor
from pytest_vcci.targets.base import TargetGate, TargetUnreachable

PASSWORD = "Pg-S3cret!pw42"  # planted in the DSN through ${VCCI_TEST_PG_PASSWORD}
TOKEN = "tok_live_9f8e7d6c5b4a"  # planted as [api].token
SECRETS = (PASSWORD, TOKEN)
M = "[[]REDACTED]"  # MASK as an fnmatch pattern

ENV_FILE = f"""
[environment]
name = "redaction"

[postgres]
dsn = "postgresql://vcci:${{VCCI_TEST_PG_PASSWORD}}@127.0.0.1:5432/vcci?sslmode=require"

[api]
base_url = "https://api.staging.example"
token = "{TOKEN}"
"""

SUITE = """
import logging
import sys

import pytest


def secrets(vcci_context):
    dsn = vcci_context.settings.table("postgres").dsn
    token = vcci_context.settings.table("api").token
    password = dsn.split(":")[2].split("@")[0]
    return dsn, password, token


@pytest.mark.checklist("4.1.1")
def test_prints_records_attaches(vcci_context, evidence):
    dsn, password, token = secrets(vcci_context)
    print("stdout:", dsn, password, token)
    print("stderr:", password, token, file=sys.stderr)
    logging.getLogger("check").warning("log: %s %s", password, token)
    evidence.record("dsn " + password, {"dsn": dsn, "token": token}, expected=password, passed=True,
                    where="db " + token)
    evidence.attach("config " + token, f"conninfo {dsn}\\nraw {password} {token}")
    evidence.attach("json", {"password": password, "nested": [token, dsn]})


@pytest.mark.checklist("4.1.2")
def test_fails_with_secret_in_assertion(vcci_context, evidence):
    dsn, password, token = secrets(vcci_context)
    evidence.record("informational", password, token)
    print(password, token)
    assert password == token, f"mismatch {password} vs {token} in {dsn}"


@pytest.mark.checklist("4.1.3")
def test_check_fails_with_secret(vcci_context, evidence):
    dsn, password, token = secrets(vcci_context)
    evidence.check("token", token, password, passed=False, where=dsn)


@pytest.mark.checklist("4.1.4")
def test_require_fails_with_secret(vcci_context, evidence):
    dsn, password, token = secrets(vcci_context)
    evidence.require("password", password, token, passed=False)


@pytest.mark.checklist("4.1.5")
def test_cors_allows_the_frontend(vcci_context):  # 4.1.5's check: its skip reason is the item's
    dsn, password, token = secrets(vcci_context)
    pytest.skip(f"skipping {password} {token}")


@pytest.fixture
def broken(vcci_context):
    dsn, password, token = secrets(vcci_context)
    raise ConnectionError(f"cannot connect to {dsn} with {token}")


@pytest.mark.checklist("4.2.1")
def test_setup_error_with_secret(broken):
    pass


def test_unmarked_fails_with_secret(vcci_context):
    dsn, password, token = secrets(vcci_context)
    raise RuntimeError(f"{password}/{token}")
"""


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_secrets_never_leave(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("VCCI_TEST_PG_PASSWORD", PASSWORD)
    write_env(pytester, ENV_FILE)
    pytester.makepyfile(test_secrets=SUITE)
    result = pytester.runpytest_subprocess(
        "--vcci-config",
        "env.toml",
        "--vcci-report-dir",
        "out",
        "-rA",
        "-vv",
        "-l",
        "--tb=long",
        "-p",
        "no:cacheprovider",
        *workers,
    )

    # The run did what the suite says, so every path a secret could take was exercised.
    result.assert_outcomes(passed=1, failed=4, skipped=1, errors=1)
    assert_no_secret(output(result), "console output")
    files = files_under(pytester.path / "out")
    assert {"evidence.json", "report.html", "checklist.html", "junit.xml"} <= {
        p.name for p in files
    }
    for path in files:
        assert_no_secret(path.read_text(encoding="utf-8", errors="replace"), str(path))

    data = read_evidence(pytester, "out")
    tests = nodeid_map(data)
    printed = tests["test_secrets.py::test_prints_records_attaches"]
    [observation] = printed["observations"]
    assert observation["name"] == f"dsn {MASK}"
    assert observation["observed"] == {
        "dsn": f"postgresql://vcci:{MASK}@127.0.0.1:5432/vcci?sslmode=require",
        "token": MASK,
    }
    assert observation["expected"] == MASK
    assert [a["name"] for a in printed["attachments"]] == [f"config {MASK}", "json"]
    assert MASK in printed["attachments"][0]["content"]
    assert tests["test_secrets.py::test_fails_with_secret_in_assertion"]["message"].startswith(
        f"mismatch {MASK} vs {MASK} in postgresql://vcci:{MASK}@127.0.0.1"
    )
    items = items_by_id(data)
    assert (
        f"- Allowed methods: GET, POST, PUT, DELETE, PATCH: skipping {MASK} {MASK}"
        in (items["4.1.5"]["message"])
    )
    assert items["4.2.1"]["status"] == "error"
    # The masked values are visible where the secrets were.
    result.stdout.fnmatch_lines_random(
        [
            f"stdout: postgresql://vcci:{M}@127.0.0.1:5432/vcci[?]sslmode=require {M} {M}",
            f"*mismatch {M} vs {M}*",
        ]
    )


def test_short_summary_keeps_the_failure_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redacting a failure must not turn the short summary into source code."""
    monkeypatch.setenv("VCCI_TEST_PG_PASSWORD", PASSWORD)
    write_env(pytester, ENV_FILE)
    pytester.makepyfile(test_secrets=SUITE)
    result = pytester.runpytest(
        "--vcci-config", "env.toml", "-rfE", "-vv", "-k", "assertion or setup_error or unmarked"
    )

    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_secrets.py::test_fails_with_secret_in_assertion"
            f" - AssertionError: mismatch {M} vs {M}*",
            "ERROR test_secrets.py::test_setup_error_with_secret"
            f" - ConnectionError: cannot connect to postgresql://vcci:{M}@*",
            f"FAILED test_secrets.py::test_unmarked_fails_with_secret - RuntimeError: {M}/{M}",
        ]
    )
    assert_no_secret(output(result), "console output")


def test_secret_in_a_skip_reason_in_late_activation(pytester: pytest.Pytester) -> None:
    """Without an environment file only secret *shapes* are known; they are still masked."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.checklist("6.2.1")
        def test_leaky():
            print("connecting to postgresql://app:Hunter2-pass@db/vcci")
            assert False, "Authorization: Bearer abcdefghijklmnop.qrstuv"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    text = output(result)
    assert "Hunter2-pass" not in text
    assert "abcdefghijklmnop" not in text
    for path in files_under(pytester.path / "reports"):
        content = path.read_text(encoding="utf-8", errors="replace")
        assert "Hunter2-pass" not in content, path
        assert "abcdefghijklmnop" not in content, path


# --- unit: the Redactor and the Evidence recorder -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw-123@db:5432/x", f"postgresql://app:{MASK}@db:5432/x"),
        ("Authorization: Bearer abc.def-ghijklmnop", f"Authorization: Bearer {MASK}"),
        ("password=hunter22 user=app", f"password={MASK} user=app"),
        ('{"api_key": "k-123456"}', f'{{"api_key": "{MASK}"}}'),
        ("aws AKIAIOSFODNN7EXAMPLE", f"aws {MASK}"),
        ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end", f"secret {MASK} end"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", MASK),
        (
            "sha 3f786850e387550fdab836ed7e6dc881de23001b",
            "sha 3f786850e387550fdab836ed7e6dc881de23001b",
        ),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redactor_patterns(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_redactor_is_fast_on_long_input() -> None:
    """An attachment of a large dump must not take seconds (the URL pattern was quadratic)."""
    import time

    redact = Redactor(["s3cr3t-value"])
    blobs = ["x" * 100_000, "0a1b2c3d4e5f" * 8_000, "http://" * 14_000, "a:" * 50_000]
    started = time.perf_counter()
    for blob in blobs:
        assert (
            redact(blob + " postgresql://u:pw-1234@h/db") == blob + f" postgresql://u:{MASK}@h/db"
        )
    assert time.perf_counter() - started < 2.0


def test_redactor_known_secrets_longest_first() -> None:
    redact = Redactor(["abcd", "abcdefgh", "xy"])  # "xy" is too short to redact safely
    assert redact("abcdefgh abcd xy") == f"{MASK} {MASK} xy"
    redact.add("zzzz")
    assert redact.data({"zzzz": ["abcd", 1, None, {"k": "zzzz"}]}) == {
        MASK: [MASK, 1, None, {"k": MASK}]
    }


def test_evidence_redacts_on_record_and_attach() -> None:
    recorder = Evidence(Redactor(["s3cr3t-value"]))
    recorder.record("n s3cr3t-value", {"v": "s3cr3t-value"}, ["s3cr3t-value"], where="s3cr3t-value")
    recorder.attach("a", "x s3cr3t-value")
    payload = recorder.payload()
    assert "s3cr3t-value" not in repr(payload)
    assert payload["observations"][0]["observed"] == {"v": MASK}
    assert payload["attachments"] == [{"name": "a", "format": "text", "content": f"x {MASK}"}]


def test_evidence_failure_messages() -> None:
    recorder = Evidence()
    assert recorder.check("replicas", 2, 3, False, where="deployment ns/backend") is False
    assert recorder.failure_message() == "deployment ns/backend: replicas: observed 2, expected 3"
    recorder.check("maxReplicas", 10, 20, False)
    assert recorder.failure_message() == (
        "2 criteria failed:\n"
        "- deployment ns/backend: replicas: observed 2, expected 3\n"
        "- maxReplicas: observed 10, expected 20"
    )
    with pytest.raises(AssertionError, match=r"^pdb: observed 0, expected 1$"):
        recorder.require("pdb", 0, 1, False)


def test_evidence_attachment_is_capped() -> None:
    recorder = Evidence()
    recorder.attach("big", "x" * 100_000)
    content = recorder.attachments[0]["content"]
    assert content.endswith("\n[truncated]")
    assert len(content.encode()) <= 64 * 1024 + len("\n[truncated]")


# --- every form of a known secret ---------------------------------------------------------

HARD = "Pw\\q\"'%@:/#+=ü€-42"  # changes under repr, JSON, HTML and URL encoding
HARD_FORMS = secret_forms(HARD, ["app"])  # computed by the tests' own helper, not the redactor


@pytest.mark.parametrize("form", list(HARD_FORMS))
def test_redactor_masks_every_form_of_a_known_secret(form: str) -> None:
    redact = Redactor([HARD], users=["app"])
    assert redact(f"<{HARD_FORMS[form]}>") == f"<{MASK}>"


@pytest.mark.parametrize(
    "text",
    [
        repr(repr(HARD)),  # -l showing a string that holds a repr
        json.dumps(repr({"k": HARD})),  # a repr in a JSON document
        html.escape(json.dumps(HARD)),  # JSON in an HTML page
        # pytest-html: the escaped log, in a JSON blob, autoescaped into an attribute
        json.dumps(html.escape(repr(HARD))).replace("&", "&amp;").replace('"', "&#34;"),
        quote(quote(HARD, safe=""), safe=""),  # a URL-encoded URL in a query string
    ],
    ids=["repr of repr", "json of repr", "html of json", "pytest-html", "url of url"],
)
def test_redactor_masks_one_encoding_on_top_of_another(text: str) -> None:
    redact = Redactor([HARD])
    assert MASK in redact(text)
    assert leaks(redact(text), {"hard": HARD}) == []
    assert "Pw" not in redact(text)


def test_redactor_masks_a_secret_inside_a_longer_base64_text() -> None:
    """HTTP Basic credentials of a user the settings do not name, a JSON blob in base64."""
    redact = Redactor([HARD])
    for prefix in (b"", b"x", b"xy", b"someone:", b'{"password": "'):
        encoded = base64.b64encode(prefix + HARD.encode() + b'"}').decode()
        masked = redact(f"Authorization: Basic {encoded}")
        assert MASK in masked, prefix
        assert len(masked) < len(f"Authorization: Basic {encoded}") - 8, prefix


def test_redactor_masks_a_secret_cut_by_pytest_shortening_a_repr() -> None:
    """saferepr keeps a long repr's head and tail around '...': the cut secret's ends go."""
    redact = Redactor([HARD, "tok_live_9f8e7d6c5b4a"])
    assert redact("a 'xxtok_live_9f8e...' b") == f"a 'xx{MASK}...' b"
    assert redact("'...7d6c5b4a' and '...c5b4a'") == f"'...{MASK}' and '...{MASK}'"
    assert redact("'...d6c5b'") == "'...d6c5b'"  # not an end of the secret
    assert redact("'...5b4a tail'") == f"'...{MASK} tail'"
    assert redact("abc...def tok...") == "abc...def tok..."  # 3 characters say nothing


def test_redactor_without_secrets_compiles_nothing_and_keeps_text() -> None:
    redact = Redactor()
    text = "all good: replicas 3 >= 3 ... nothing to hide 'x' \"y\" %41 ü"
    assert redact(text) == text
    assert redact.secrets == frozenset()


# --- log records --------------------------------------------------------------------------


@pytest.fixture
def log_redaction() -> Iterator[LogRedaction]:
    logs = LogRedaction(Redactor([HARD]))
    logs.install()
    yield logs
    logs.uninstall()


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream, handler


def test_log_records_are_redacted_when_made(log_redaction: LogRedaction) -> None:
    logger, stream, handler = _capture("vcci.test.made")
    try:
        logger.debug("password %s in %r", HARD, {"k": HARD})
        try:
            raise ConnectionError(f"cannot connect with {HARD!r}")
        except ConnectionError:
            logger.exception("failed", stack_info=True)
        logger.info("%d replicas", 3)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert leaks(text, {"hard": HARD}) == []
    assert f"password {MASK} in {{'k': '{MASK}'}}" in text
    assert f"ConnectionError: cannot connect with '{MASK}'" in text  # the traceback
    assert "Stack (most recent call last)" in text
    assert "3 replicas" in text


def test_a_log_record_without_a_secret_keeps_its_arguments(log_redaction: LogRedaction) -> None:
    record = logging.getLogger("vcci.test").makeRecord(
        "vcci.test", logging.INFO, __file__, 1, "%d of %s", (2, "three"), None
    )
    assert (record.msg, record.args) == ("%d of %s", (2, "three"))


def test_records_made_otherwise_are_redacted_by_the_handler_filter(
    log_redaction: LogRedaction,
) -> None:
    logger, stream, handler = _capture("vcci.test.filter")
    log_redaction.guard([handler])
    try:
        # makeLogRecord fills the record after the factory made it empty.
        record = {"msg": "token %s", "args": (HARD,), "levelno": logging.WARNING}
        logger.handle(logging.makeLogRecord(record))
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == f"token {MASK}\n"


def test_uninstall_restores_the_factory_and_the_handlers() -> None:
    before = logging.getLogRecordFactory()
    handler = logging.NullHandler()
    logs = LogRedaction(Redactor([HARD]))
    logs.install()
    logs.guard([handler])
    assert logging.getLogRecordFactory() is not before
    assert handler.filters == [logs]
    logs.uninstall()
    assert logging.getLogRecordFactory() is before
    assert handler.filters == []
    record = logging.getLogger("vcci.test").makeRecord(
        "vcci.test", logging.INFO, __file__, 1, "%s", (HARD,), None
    )
    assert record.getMessage() == HARD


LOGGING_SUITE = """
import logging
import pytest

log = logging.getLogger("botocore.endpoint")


@pytest.mark.checklist("4.1.1")
def test_logs_the_token(vcci_context, caplog):
    token = vcci_context.settings.table("api").token
    log.debug("Sending http request: headers={'X-Amz-Security-Token': %r}", token.encode())
    log.warning("token %s", token)
    assert caplog.messages == ["Sending http request: headers={'X-Amz-Security-Token': b'[REDACTED]'}",
                               "token [REDACTED]"]
    assert token not in caplog.text
    raise AssertionError("fail, to show the captured log")
"""


def test_log_outputs_are_redacted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live logging, --log-file, the captured-log report section and caplog."""
    monkeypatch.setenv("VCCI_TEST_PG_PASSWORD", PASSWORD)
    write_env(pytester, ENV_FILE.replace(TOKEN, TOKEN + "\\\\'x"))
    pytester.makepyfile(test_logs=LOGGING_SUITE)
    result = pytester.runpytest_subprocess(
        "--vcci-config",
        "env.toml",
        "-p",
        "no:cacheprovider",
        "--log-cli-level=DEBUG",
        "--log-file=run.log",
        "--log-file-level=DEBUG",
        "-rA",
    )

    result.assert_outcomes(failed=1)
    token = TOKEN + "\\'x"
    log_file = (pytester.path / "run.log").read_text()
    assert f"token {MASK}" in log_file
    assert "test_logs.py::test_logs_the_token" in output(result)
    for where, text in {"console": output(result), "run.log": log_file}.items():
        assert leaks(text, {"token": token}) == [], where
    result.stdout.fnmatch_lines(
        ["*live log call*", f"WARNING  botocore.endpoint:test_logs.py:* token {M}"]
    )
    result.stdout.fnmatch_lines(["*Captured log call*", f"WARNING  botocore.endpoint:*token {M}"])


def test_log_redaction_lasts_as_long_as_the_run(pytester: pytest.Pytester) -> None:
    """In process (pytester's inline run): on during the run, gone after it."""
    before = logging.getLogRecordFactory()
    root_filters = {h: list(h.filters) for h in logging.getLogger().handlers}
    write_env(pytester, ENV_FILE.replace("${VCCI_TEST_PG_PASSWORD}", "pw-1234"))
    pytester.makepyfile(
        """
        import logging

        def test_on(vcci_context):
            assert logging.getLogRecordFactory() is not logging.LogRecord
            assert any(h.filters for h in logging.getLogger().handlers)
        """
    )
    result = pytester.runpytest("--vcci-config", "env.toml", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert logging.getLogRecordFactory() is before
    assert {h: list(h.filters) for h in logging.getLogger().handlers} == root_filters


def test_a_target_gate_keeps_root_causes_masked(tmp_path: Path) -> None:
    """A root cause is shown in every test of its target and kept in the run directory."""
    gate = TargetGate(tmp_path / "targets", Redactor([HARD]))

    def probe() -> None:
        # The secret straddles the 300 characters a root cause keeps.
        raise ConnectionError("x" * 290 + HARD + " was refused")

    with pytest.raises(TargetUnreachable) as probed:
        gate.ensure("postgres", probe)
    with pytest.raises(TargetUnreachable) as watched, gate.watch("redis", KeyError):
        raise KeyError(f"no key {HARD!r}")

    assert str(probed.value).endswith(f"ConnectionError: {'x' * 290}{MASK}...")
    assert str(watched.value) == f"redis unreachable: KeyError: 'no key \\'{MASK}\\''"
    shown = str(probed.value) + str(watched.value)
    shown += "".join(p.read_text() for p in (tmp_path / "targets").iterdir())
    assert leaks(shown, {"hard": HARD}) == []
    assert HARD[:6] not in shown
