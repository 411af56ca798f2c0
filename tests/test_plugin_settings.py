"""Environment files: loading, ${VAR} interpolation, overrides, and one-line usage errors."""

from __future__ import annotations

import pytest
from plugin_support import output, write_env

from pytest_vcci.settings import (
    Settings,
    SettingsError,
    interpolate,
    load_settings,
    parse_override,
    url_secrets,
)

ENV = '[environment]\nname = "staging"\n'
TEST = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas():
    pass
"""


def assert_one_line_usage_error(result: pytest.RunResult, expected: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    from fnmatch import fnmatch

    assert fnmatch(lines[0], expected), f"{lines[0]!r} does not match {expected!r}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            ENV + '[databse]\nhost = "db"\n',
            "ERROR: env.toml: [[]databse]: unknown table (expected one of: *environment*postgres*)",
            id="unknown-table",
        ),
        pytest.param(
            ENV + '[redis]\nurl = "redis://127.0.0.1:6379/0"\nport = 6379\n',
            "ERROR: env.toml: [[]redis].port: unknown key (expected one of: *url*)",
            id="unknown-key",
        ),
        pytest.param(
            ENV + '[kubernetes]\npage_size = "many"\n',
            "ERROR: env.toml: [[]kubernetes].page_size: Input should be a valid integer* (got 'many')",
            id="wrong-type",
        ),
        pytest.param(
            ENV + "[kubernetes]\npage_size = 0\n",
            "ERROR: env.toml: [[]kubernetes].page_size: Input should be greater than or equal to 1 (got 0)",
            id="out-of-range",
        ),
        pytest.param(
            ENV + "[aws]\nendpoint_url = 'http://127.0.0.1:5000'\n",
            "ERROR: env.toml: [[]aws].region: required key is missing",
            id="missing-key",
        ),
        pytest.param(
            '[postgres]\ndsn = "postgresql://h/db"\n',
            "ERROR: env.toml: [[]environment]: missing table*",
            id="missing-environment",
        ),
        pytest.param(
            'environment = "staging"\n',
            "ERROR: env.toml: [[]environment]: expected a table, got str",
            id="table-not-a-table",
        ),
        pytest.param(
            ENV + '[postgres]\ndsn = "${VCCI_TEST_UNSET_DSN}"\n',
            "ERROR: env.toml: [[]postgres].dsn: environment variable VCCI_TEST_UNSET_DSN is not set"
            " (referenced as ${VCCI_TEST_UNSET_DSN})",
            id="missing-var",
        ),
        pytest.param(
            ENV + '[postgres]\ndsn = "${not a name}"\n',
            "ERROR: env.toml: [[]postgres].dsn: bad variable reference ${not a name}",
            id="bad-var",
        ),
        pytest.param(
            '[environment\nname = "staging"\n',
            "ERROR: env.toml: not valid TOML: * (at line 1, column *)",
            id="invalid-toml",
        ),
        pytest.param(
            ENV + 'name = "again"\n',
            "ERROR: env.toml: not valid TOML: *",
            id="duplicate-key",
        ),
        pytest.param(
            ENV + '[thresholds."9.9.9"]\nreplicas = 3\n',
            'ERROR: env.toml: [[]thresholds."9.9.9"]: unknown checklist item ID',
            id="unknown-threshold-item",
        ),
        pytest.param(
            ENV + '[thresholds."3.2.4"]\nbackend_replica = 4\n',
            'ERROR: env.toml: [[]thresholds."3.2.4"].backend_replica: unknown threshold'
            " (item has: backend_replicas, frontend_replicas, worker_replicas, max_restarts)",
            id="unknown-threshold-name",
        ),
        pytest.param(
            ENV + '[thresholds."3.2.4"]\nbackend_replicas = "three"\n',
            "ERROR: env.toml: [[]thresholds.\"3.2.4\"].backend_replicas: expected int like 3, got 'three'",
            id="threshold-type",
        ),
        pytest.param(
            ENV + '[thresholds]\n"3.2.4" = 4\n',
            'ERROR: env.toml: [[]thresholds."3.2.4"]: expected a table of threshold names',
            id="threshold-not-table",
        ),
    ],
)
def test_bad_environment_file_is_one_line_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    monkeypatch.delenv("VCCI_TEST_UNSET_DSN", raising=False)
    write_env(pytester, content)
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-config", "env.toml")

    assert_one_line_usage_error(result, expected)
    assert not (pytester.path / "reports").exists()


def test_environment_file_not_utf8(pytester: pytest.Pytester) -> None:
    (pytester.path / "env.toml").write_bytes(b'[environment]\nname = "\xff\xfe"\n')
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-config", "env.toml")

    assert_one_line_usage_error(result, "ERROR: env.toml: not valid TOML: *UTF-8*")


def test_environment_file_not_found(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-config", "missing.toml")

    assert_one_line_usage_error(result, "ERROR: missing.toml: environment file not found")


def test_environment_file_is_a_directory(pytester: pytest.Pytester) -> None:
    pytester.mkdir("env.toml")
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-config", "env.toml")

    assert_one_line_usage_error(result, "ERROR: env.toml: cannot read: Is a directory")


def test_unknown_environment_name_lists_the_available_ones(pytester: pytest.Pytester) -> None:
    (pytester.path / "environments").mkdir()
    write_env(pytester, ENV, "environments/staging.toml")
    write_env(pytester, ENV, "environments/production.toml")
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-env", "stagin")

    assert_one_line_usage_error(
        result,
        "ERROR: *environments/stagin.toml: no environment named 'stagin'"
        " (available: production, staging)",
    )


def test_unknown_environment_name_without_environments_dir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-env", "staging")

    assert_one_line_usage_error(
        result, "ERROR: *environments/staging.toml: no environment named 'staging'"
    )


def test_bad_file_from_ini_names_the_file(pytester: pytest.Pytester) -> None:
    write_env(pytester, ENV + "[redis]\n", "conf.toml")
    pytester.makeini("[pytest]\nvcci_config = conf.toml\n")
    pytester.makepyfile(TEST)
    result = pytester.runpytest()

    assert_one_line_usage_error(result, "ERROR: *conf.toml: [[]redis].url: required key is missing")


def test_type_error_does_not_print_a_secret_value(pytester: pytest.Pytester) -> None:
    write_env(
        pytester,
        ENV
        + '[postgres]\ndsn = "postgresql://h/db"\nreplicas = "postgresql://app:Hunter2-pw@replica/db"\n',
    )
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--vcci-config", "env.toml")

    assert_one_line_usage_error(
        result, "ERROR: env.toml: [[]postgres].replicas: Input should be a valid list*"
    )
    assert "Hunter2-pw" not in output(result)


# --- unit: load_settings and friends ------------------------------------------------------


def test_interpolation_from_the_environment(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "env.toml"  # type: ignore[operator]
    path.write_text(
        ENV
        + '[postgres]\ndsn = "postgresql://app:${PGPW}@db:5432/vcci"\n'
        + 'replicas = ["postgresql://app:${PGPW}@r1/vcci"]\n'
        + '[api]\nbase_url = "https://api"\ntoken = "${API_TOKEN}"\n'
        + '[docs]\ndirectory = "$${NOT_A_VAR}"\n'
    )
    settings = load_settings(path, env={"PGPW": "p%40ss-w0rd", "API_TOKEN": "tkn-123456"})

    assert settings.table("postgres").dsn == "postgresql://app:p%40ss-w0rd@db:5432/vcci"
    assert settings.table("postgres").replicas == ["postgresql://app:p%40ss-w0rd@r1/vcci"]
    assert settings.table("api").token == "tkn-123456"
    assert settings.table("docs").directory == "${NOT_A_VAR}"
    # Both the URL-encoded and the decoded password are redacted.
    assert {"tkn-123456", "p%40ss-w0rd", "p@ss-w0rd"} <= set(settings.secrets())


def test_missing_var_names_the_key() -> None:
    with pytest.raises(SettingsError) as info:
        interpolate({"api": {"token": "${TOKEN}"}}, "env.toml", "", {})
    assert str(info.value) == (
        "env.toml: [api].token: environment variable TOKEN is not set (referenced as ${TOKEN})"
    )


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, env={})
    assert (settings.name, settings.source, dict(settings.tables)) == (
        "default",
        "<defaults>",
        {},
    )
    assert settings.threshold("3.2.7", "backend_max") == 20
    with pytest.raises(KeyError, match=r"3\.2\.7 has no threshold 'nope'"):
        settings.threshold("3.2.7", "nope")


def test_require_names_the_missing_table() -> None:
    settings = Settings("env.toml", load_settings(None, env={}).environment)
    from pytest_vcci.settings import TargetNotConfigured

    with pytest.raises(TargetNotConfigured, match=r"\[redis\] is not configured in env.toml"):
        settings.require("redis")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres.dsn=postgresql://h/db", (["postgres", "dsn"], "postgresql://h/db")),
        ('thresholds."3.2.4".backend_replicas=4', (["thresholds", "3.2.4", "backend_replicas"], 4)),
        ("kubernetes.verify_tls=false", (["kubernetes", "verify_tls"], False)),
        ('tls.endpoints=["a:443", "b:443"]', (["tls", "endpoints"], ["a:443", "b:443"])),
    ],
)
def test_parse_override(text: str, expected: tuple[list[str], object]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://app:s3cr3t@db/vcci", {"s3cr3t"}),
        ("postgresql://app:p%40ss@db/vcci", {"p%40ss", "p@ss"}),
        ("host=db user=app password='pw with space' dbname=vcci", {"pw with space"}),
        ("https://api/x?token=abcdef&x=1", {"abcdef"}),
        ("redis://127.0.0.1:6379/0", set()),
    ],
)
def test_url_secrets(url: str, secrets: set[str]) -> None:
    assert set(url_secrets(url)) == secrets
