"""The tamper-evident report directory: manifest.json, manifest.sig and ``vcci verify``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from pytest_vcci.cli import main
from pytest_vcci.report.manifest import fingerprint

CHECKS = """
import pytest

@pytest.mark.checklist("3.2.4")
def test_replicas(evidence):
    evidence.check("replicas", 2, ">= 3", False, where="deployment vcci/backend")

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", 3, ">= 3", True)
    evidence.record("server version", "v1.29.4")
"""
REPORT_FILES = [
    "checklist.html",
    "controls-iso27001.html",
    "controls-nist80053.html",
    "controls-soc2.html",
    "evidence.json",
    "junit.xml",
    "oscal-assessment-results.json",
    "report.html",
]


def write_key(path: Path, key: Any) -> Path:
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path


def write_public(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path, Path]:
    key = Ed25519PrivateKey.generate()
    return key, write_key(tmp_path / "sign.pem", key), write_public(tmp_path / "sign.pub", key)


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "out", *args)
    return result, pytester.path / "out"


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()  # drop what an in-process pytest run printed
    status = main(["verify", *args])
    return status, capsys.readouterr().out.splitlines()


def test_every_run_writes_a_manifest_of_every_file(pytester: pytest.Pytester) -> None:
    result, out = run(pytester)
    assert result.ret == 1
    manifest = json.loads((out / "manifest.json").read_text())
    evidence = json.loads((out / "evidence.json").read_text())
    assert manifest["schema"] == "pytest-vcci/manifest/v1"
    assert [f["path"] for f in manifest["files"]] == REPORT_FILES
    for entry in manifest["files"]:
        data = (out / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    run_info = manifest["run"]
    for key in ("id", "environment", "started_at", "finished_at", "user", "host", "cwd"):
        assert run_info[key] == evidence["run"][key]
    assert run_info["tool"]["name"] == "pytest-vcci"
    assert run_info["tool"]["version"] == evidence["run"]["tool"]["version"]
    assert manifest["signature"] is None
    assert not (out / "manifest.sig").exists()


def test_the_manifest_is_written_last(pytester: pytest.Pytester) -> None:
    _, out = run(pytester)
    manifest_time = (out / "manifest.json").stat().st_mtime_ns
    assert all((out / name).stat().st_mtime_ns <= manifest_time for name in REPORT_FILES)
    assert not list(out.glob(".*partial"))


def test_observations_carry_the_utc_time_they_were_made(pytester: pytest.Pytester) -> None:
    _, out = run(pytester)
    evidence = json.loads((out / "evidence.json").read_text())
    started = dt.datetime.fromisoformat(evidence["run"]["started_at"])
    finished = dt.datetime.fromisoformat(evidence["run"]["finished_at"])
    observations = [o for t in evidence["tests"] for o in t["observations"]]
    assert len(observations) == 3
    for observation in observations:
        assert observation["at"].endswith("Z")
        at = dt.datetime.fromisoformat(observation["at"])
        assert at.utcoffset() == dt.timedelta(0)
        assert started <= at <= finished


def test_an_intact_directory_verifies(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run(pytester)
    status, lines = verify(capsys, str(out))
    assert status == 0
    assert lines[-1].startswith(f"OK {out}: {len(REPORT_FILES)} files match manifest.json")
    assert "not signed" in lines[-1]


@pytest.mark.parametrize(
    ("tamper", "file", "what"),
    [
        (lambda out: (out / "junit.xml").write_text("<testsuites/>"), "junit.xml", "changed"),
        (lambda out: (out / "checklist.html").unlink(), "checklist.html", "missing"),
        (lambda out: (out / "extra.txt").write_text("hello"), "extra.txt", "added"),
        (
            lambda out: (out / "sub").mkdir() or (out / "sub" / "x").write_text("x"),
            "sub",
            "added directory (not in the manifest; 1 file(s))",
        ),
    ],
    ids=["changed", "missing", "added", "added-in-subdir"],
)
def test_a_changed_missing_or_added_file_is_named(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    tamper: Any,
    file: str,
    what: str,
) -> None:
    _, out = run(pytester)
    tamper(out)
    status, lines = verify(capsys, str(out))
    assert status == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        next(line for line in lines if line.startswith(f"FAIL {out / file}: {what}"))
    ]
    assert lines[-1] == f"TAMPERED {out}: 1 problem(s)"


def test_one_changed_byte_in_evidence_json_is_detected(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run(pytester)
    data = bytearray((out / "evidence.json").read_bytes())
    at = data.index(b'"status": "failed"') + len('"status": "')
    data[at] = ord("F")  # failed -> Failed: same size, one byte
    (out / "evidence.json").write_bytes(bytes(data))
    status, lines = verify(capsys, str(out))
    assert status == 1
    assert lines[0].startswith(f"FAIL {out / 'evidence.json'}: changed: sha256 ")


def test_a_signed_run_verifies_with_its_public_key(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
) -> None:
    key, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    manifest_bytes = (out / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    assert manifest["signature"] == {
        "algorithm": "ed25519",
        "file": "manifest.sig",
        "public_key": fingerprint(key.public_key()),
    }
    signature = base64.b64decode((out / "manifest.sig").read_text())
    key.public_key().verify(signature, manifest_bytes)  # raises if wrong
    status, lines = verify(capsys, str(out), "--public-key", str(public))
    assert status == 0
    assert f"signature good: signed by {fingerprint(key.public_key())}" in lines[-1]


def test_a_wrong_key_fails(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
    tmp_path: Path,
) -> None:
    _, private, _ = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    other = write_public(tmp_path / "other.pub", Ed25519PrivateKey.generate())
    status, lines = verify(capsys, str(out), "--public-key", str(other))
    assert status == 1
    assert lines[0].startswith(f"FAIL {out / 'manifest.sig'}: signed by sha256:")
    assert "not by the given key" in lines[0]


def test_a_missing_signature_fails(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
) -> None:
    _, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    (out / "manifest.sig").unlink()
    for args in ([], ["--public-key", str(public)]):
        status, lines = verify(capsys, str(out), *args)
        assert status == 1
        assert lines[0].startswith(f"FAIL {out / 'manifest.sig'}: missing")


def test_a_manifest_rewritten_to_hide_a_change_fails_the_signature(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
) -> None:
    _, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    evidence = out / "evidence.json"
    evidence.write_text(evidence.read_text().replace('"blocked"', '"ready"'))
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "evidence.json":
            entry["sha256"] = hashlib.sha256(evidence.read_bytes()).hexdigest()
            entry["size"] = evidence.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    status, lines = verify(capsys, str(out))  # without the key, the files match the manifest
    assert status == 0
    status, lines = verify(capsys, str(out), "--public-key", str(public))
    assert status == 1
    assert lines[0].startswith(f"FAIL {out / 'manifest.sig'}: wrong signature")


def test_a_corrupted_signature_fails(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
) -> None:
    _, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    signature = bytearray(base64.b64decode((out / "manifest.sig").read_text()))
    signature[0] ^= 0x01
    (out / "manifest.sig").write_text(base64.b64encode(bytes(signature)).decode() + "\n")
    status, lines = verify(capsys, str(out), "--public-key", str(public))
    assert status == 1
    assert lines[0].startswith(f"FAIL {out / 'manifest.sig'}: wrong signature")


def test_an_unsigned_manifest_fails_when_a_key_is_required(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
) -> None:
    _, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    assert (out / "manifest.sig").exists()
    _, out = run(pytester)  # same directory, unsigned: the old signature must go
    assert not (out / "manifest.sig").exists()
    status, lines = verify(capsys, str(out), "--public-key", str(public))
    assert status == 1
    assert lines[0] == f"FAIL {out / 'manifest.sig'}: missing: the manifest is not signed"


def test_a_missing_manifest_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evidence.json").write_text("{}")
    status, lines = verify(capsys, str(tmp_path))
    assert status == 1
    assert lines[0].startswith(f"FAIL {tmp_path / 'manifest.json'}: missing")


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "absent")]) == 2
    assert "not a directory" in capsys.readouterr().err
    rsa = tmp_path / "rsa.pem"
    write_key(rsa, generate_private_key(public_exponent=65537, key_size=2048))
    assert main(["verify", str(tmp_path), "--public-key", str(rsa)]) == 2
    assert "not a PEM public key" in capsys.readouterr().err


def test_a_sign_key_that_is_not_ed25519_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    rsa = write_key(
        tmp_path / "rsa.pem", generate_private_key(public_exponent=65537, key_size=2048)
    )
    result, out = run(pytester, "--vcci-sign-key", str(rsa))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--vcci-sign-key: {rsa}: not an Ed25519 key" in result.stderr.str()
    assert not (out / "evidence.json").exists()
    result, _ = run(pytester, "--vcci-sign-key", str(tmp_path / "absent.pem"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "absent.pem: file not found" in result.stderr.str()


def test_a_history_inside_the_report_directory_is_left_out(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    run(pytester, "--vcci-history", "out/history")
    _, out = run(pytester, "--vcci-history", "out/history")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["excluded"] == ["history"]
    assert [f["path"] for f in manifest["files"]] == REPORT_FILES
    assert verify(capsys, str(out))[0] == 0
    runs = sorted((out / "history" / "default").iterdir())
    assert len(runs) == 3  # two runs and latest
    for run_dir in runs:
        assert verify(capsys, str(run_dir))[0] == 0


# --- strict: one spelling of the signature, nothing the manifest does not know -------------


def _respell(text: str) -> str:
    """The same signature bytes in non-canonical base64: the last character's unused low
    bits set (an Ed25519 signature is 64 bytes, so its base64 ends in one char + '==')."""
    body = text.rstrip("\n")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-3])
    return body[:-3] + alphabet[last | 0b1111] + "==" + "\n"


@pytest.mark.parametrize(
    ("respell", "problem"),
    [
        (lambda t: t.rstrip("\n"), None),  # no final newline: still the canonical text
        (lambda t: t + "\n", "not strict base64"),
        (lambda t: t.replace("\n", "\r\n"), "not strict base64"),
        (lambda t: " " + t, "not strict base64"),
        (lambda t: t[:40] + "\n" + t[40:], "not strict base64"),
        (lambda t: t.rstrip("\n").rstrip("=") + "\n", "not strict base64"),
        (
            lambda t: base64.b64encode(base64.b64decode(t) + b"xyz").decode() + "\n",
            "not an Ed25519 signature: 67 bytes, expected 64",
        ),
        (_respell, "not canonical base64"),
        (lambda t: t.rstrip("\n") + "\n\x00", "not strict base64"),
    ],
    ids=[
        "no-newline",
        "two-newlines",
        "crlf",
        "leading-space",
        "wrapped",
        "no-padding",
        "trailing-bytes",
        "non-canonical",
        "nul-after-newline",
    ],
)
def test_verify_accepts_only_the_canonical_signature_text(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    signer: tuple[Ed25519PrivateKey, Path, Path],
    respell: Any,
    problem: str | None,
) -> None:
    _, private, public = signer
    _, out = run(pytester, "--vcci-sign-key", str(private))
    original = (out / "manifest.sig").read_text()
    changed = respell(original)
    if problem == "not canonical base64":  # the same bytes, spelt differently
        assert base64.b64decode(changed) == base64.b64decode(original)
        assert changed != original
    (out / "manifest.sig").write_text(changed, newline="")
    for args in ([], ["--public-key", str(public)]):
        status, lines = verify(capsys, str(out), *args)
        if problem is None:
            assert status == 0, lines
            continue
        assert status == 1
        fails = [line for line in lines if line.startswith("FAIL")]
        assert len(fails) == 1
        assert fails[0].startswith(f"FAIL {out / 'manifest.sig'}: {problem}")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            lambda out: (out / "empty").mkdir(),
            ["empty: added directory (not in the manifest; 0 file(s))"],
        ),
        (
            lambda out: (
                (out / "a" / "b").mkdir(parents=True) or (out / "a" / "b" / "x").write_text("x")
            ),
            ["a: added directory (not in the manifest; 1 file(s))"],
        ),
        (
            lambda out: (out / "elsewhere").symlink_to(out.parent, target_is_directory=True),
            ["elsewhere: added symlink to a directory (not in the manifest; 0 file(s))"],
        ),
        (
            lambda out: ((out / ".hidden").write_text("x"), (out / "notes").mkdir()),
            [
                ".hidden: added (not in the manifest)",
                "notes: added directory (not in the manifest; 0 file(s))",
            ],
        ),
    ],
    ids=["empty-dir", "nested-dirs", "symlinked-dir", "hidden-file-and-dir"],
)
def test_verify_names_every_unexpected_file_and_directory_once(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], tamper: Any, expected: list[str]
) -> None:
    _, out = run(pytester)
    tamper(out)
    status, lines = verify(capsys, str(out))
    assert status == 1
    fails = sorted(line for line in lines if line.startswith("FAIL"))
    assert fails == sorted(f"FAIL {out}/{line}" for line in expected)
    assert lines[-1] == f"TAMPERED {out}: {len(expected)} problem(s)"
