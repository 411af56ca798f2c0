"""A tamper-evident report directory: ``manifest.json`` (+ ``manifest.sig``) and their check.

``manifest.json`` lists the SHA-256 and size of every file in the report directory except itself
and its signature, with the run it came from (id, environment, tool version, start and end time,
who ran it and where). Written last, after every other report file.

With an Ed25519 private key (``--vcci-sign-key``), ``manifest.sig`` holds the base64 signature of
the exact bytes of ``manifest.json``, and the manifest names the public key's fingerprint
(``sha256:`` + hex of the raw 32-byte public key). ``vcci verify DIR [--public-key PEM]`` checks
both: any changed, missing or added file, or a wrong or missing signature, is a problem line
naming the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_vcci.evidence.recorder import utc_now
from pytest_vcci.report.write import Bundle

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SCHEMA = "pytest-vcci/manifest/v1"
PASSWORD_VARIABLE = "VCCI_SIGN_KEY_PASSWORD"
RUN_KEYS = (
    "id",
    "environment",
    "environment_file",
    "tool",
    "started_at",
    "finished_at",
    "user",
    "host",
    "cwd",
    "command",
    "verdict",
    "exit_status",
)


class SigningError(Exception):
    """A key that cannot be used: missing file, not PEM, not Ed25519, encrypted."""


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --- keys -----------------------------------------------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read_key(path)
    password = os.environ.get(PASSWORD_VARIABLE)
    try:
        key = load_pem_private_key(data, password.encode() if password else None)
    except TypeError:
        raise SigningError(
            f"the key is encrypted: set {PASSWORD_VARIABLE} to its password"
        ) from None
    except ValueError as exc:
        raise SigningError(f"not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"not an Ed25519 key (got {type(key).__name__.removeprefix('_')})")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_read_key(path))
    except ValueError as exc:
        raise SigningError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"not an Ed25519 public key (got {type(key).__name__})")
    return key


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningError(f"{path}: file not found") from None
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror}") from None


def fingerprint(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# --- writing --------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(directory: Path, exclude: Iterable[Path] = ()) -> list[str]:
    """Every file under ``directory`` (POSIX paths, sorted) but the manifest and its signature.

    ``exclude``: folders left out (a run history kept inside the report directory).
    """
    skipped = {p.resolve() for p in exclude}
    found = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() not in skipped)
        for name in files:
            relative = (here / name).relative_to(directory).as_posix()
            if relative not in (MANIFEST, SIGNATURE):
                found.append(relative)
    return sorted(found)


def build_manifest(
    directory: Path,
    run: dict[str, Any],
    *,
    public_key_fingerprint: str | None = None,
    exclude: Iterable[Path] = (),
    bundle: Bundle | None = None,
) -> dict[str, Any]:
    """The manifest of ``directory`` as it will be once ``bundle`` (if any) is in place: its
    staged files replace theirs, its removed files are gone."""
    excluded = _inside(directory, exclude)
    skipped = [directory / e for e in excluded]
    if bundle is not None:
        skipped.append(bundle.staging)
    names = set(bundle_files(directory, skipped))
    if bundle is not None:
        names = (names - set(bundle.removed)) | set(bundle.names)
    names -= {MANIFEST, SIGNATURE}

    def source(name: str) -> Path:
        staged = bundle.staged(name) if bundle is not None else None
        return staged or directory / name

    files = [
        {"path": name, "sha256": sha256_file(source(name)), "size": source(name).stat().st_size}
        for name in sorted(names)
    ]
    return {
        "schema": SCHEMA,
        "created_at": utc_now(),
        "run": {key: run.get(key) for key in RUN_KEYS},
        "algorithm": "sha256",
        "excluded": excluded,
        "files": files,
        "signature": (
            {"algorithm": "ed25519", "file": SIGNATURE, "public_key": public_key_fingerprint}
            if public_key_fingerprint
            else None
        ),
    }


def _inside(directory: Path, folders: Iterable[Path]) -> list[str]:
    base = directory.resolve()
    return sorted(
        p.resolve().relative_to(base).as_posix()
        for p in folders
        if p.resolve().is_relative_to(base) and p.resolve() != base
    )


def stage_manifest(
    bundle: Bundle,
    run: dict[str, Any],
    sign_key: Ed25519PrivateKey | None = None,
    exclude: Iterable[Path] = (),
) -> dict[str, Any]:
    """Stage manifest.json (and manifest.sig when signing) over the bundle's final files; the
    last files a run stages. Publish with ``order=(SIGNATURE, MANIFEST)``: a reader that finds
    the new manifest also finds its signature."""
    print_ = fingerprint(sign_key.public_key()) if sign_key is not None else None
    manifest = build_manifest(
        bundle.directory,
        run,
        public_key_fingerprint=print_,
        exclude=exclude,
        bundle=bundle,
    )
    text = json.dumps(manifest, indent=2) + "\n"
    if sign_key is None:
        # A signature left from an earlier run would sign another manifest.
        bundle.remove(SIGNATURE)
    else:
        signature = base64.b64encode(sign_key.sign(text.encode("utf-8"))).decode("ascii")
        bundle.write(SIGNATURE, signature + "\n")
    bundle.write(MANIFEST, text)
    return manifest


# --- verifying ------------------------------------------------------------------------------


@dataclass
class Verification:
    problems: list[Problem]
    notes: list[str]
    manifest: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(directory: Path, public_key: Ed25519PublicKey | None = None) -> Verification:
    """Check every file against the manifest, and the signature when a public key is given."""
    manifest_path = directory / MANIFEST
    try:
        raw = manifest_path.read_bytes()
    except FileNotFoundError:
        return Verification([Problem(MANIFEST, "missing: no manifest to verify against")], [], None)
    try:
        manifest = json.loads(raw)
        listed = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        return Verification([Problem(MANIFEST, f"not a pytest-vcci manifest ({exc})")], [], None)
    problems: list[Problem] = []
    notes: list[str] = []
    if manifest.get("schema") != SCHEMA:
        problems.append(Problem(MANIFEST, f"schema {manifest.get('schema')!r}, expected {SCHEMA}"))
    problems.extend(_check_signature(directory, raw, manifest, public_key, notes))
    excluded = [directory / e for e in manifest.get("excluded") or []]
    problems.extend(_check_files(directory, listed, excluded))
    return Verification(problems, notes, manifest)


def _check_files(
    directory: Path, listed: dict[str, dict[str, Any]], excluded: list[Path]
) -> list[Problem]:
    problems = []
    present = set(bundle_files(directory, excluded))
    for name, entry in sorted(listed.items()):
        path = directory / name
        if name not in present:
            problems.append(Problem(name, "missing (listed in the manifest)"))
            continue
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            problems.append(
                Problem(
                    name,
                    f"changed: sha256 {actual} (size {path.stat().st_size}), manifest says "
                    f"{entry.get('sha256')} (size {entry.get('size')})",
                )
            )
    problems.extend(_unexpected(directory, present - set(listed), set(listed), excluded))
    return problems


def _unexpected(
    directory: Path, added: set[str], listed: set[str], excluded: list[Path]
) -> list[Problem]:
    """One problem per file or directory the manifest does not know: a directory that holds
    no listed file is named once (with how many files it holds), not file by file."""
    skipped = {p.resolve() for p in excluded}
    expected_dirs = {parent.as_posix() for name in listed for parent in Path(name).parents}
    problems: list[Problem] = []
    for root, dirs, _files in os.walk(directory):
        here = Path(root)
        for name in sorted(dirs):
            path = here / name
            relative = path.relative_to(directory).as_posix()
            if path.resolve() in skipped or relative in expected_dirs:
                continue
            inside = sum(1 for a in added if a.startswith(relative + "/"))
            kind = "symlink to a directory" if path.is_symlink() else "directory"
            problems.append(
                Problem(relative, f"added {kind} (not in the manifest; {inside} file(s))")
            )
        dirs[:] = sorted(
            d for d in dirs if (here / d).relative_to(directory).as_posix() in expected_dirs
        )
    shown = [p.path + "/" for p in problems]
    for name in sorted(added):
        if not name.startswith(tuple(shown)):
            problems.append(Problem(name, "added (not in the manifest)"))
    return problems


def _check_signature(
    directory: Path,
    raw: bytes,
    manifest: dict[str, Any],
    public_key: Ed25519PublicKey | None,
    notes: list[str],
) -> list[Problem]:
    signed = manifest.get("signature")
    signature_path = directory / SIGNATURE
    if not signed:
        if signature_path.exists():
            return [Problem(SIGNATURE, "present, but the manifest says it is not signed")]
        if public_key is not None:
            return [Problem(SIGNATURE, "missing: the manifest is not signed")]
        notes.append("not signed")
        return []
    if not signature_path.exists():
        return [
            Problem(SIGNATURE, f"missing (the manifest says {signed.get('public_key')} signed it)")
        ]
    encoding = signature_encoding_problem(signature_path.read_bytes())
    if encoding is not None:
        return [Problem(SIGNATURE, encoding)]
    if public_key is None:
        notes.append(
            f"signed by {signed.get('public_key')}; signature not checked (pass --public-key)"
        )
        return []
    from cryptography.exceptions import InvalidSignature

    expected = fingerprint(public_key)
    if signed.get("public_key") != expected:
        return [
            Problem(
                SIGNATURE,
                f"signed by {signed.get('public_key')}, not by the given key {expected}",
            )
        ]
    try:
        signature = base64.b64decode(signature_path.read_bytes().removesuffix(b"\n"))
        public_key.verify(signature, raw)
    except (InvalidSignature, ValueError):
        return [
            Problem(
                SIGNATURE,
                f"wrong signature: it does not match {MANIFEST} under the key {expected} "
                "(the manifest or the signature was changed)",
            )
        ]
    notes.append(f"signature good: signed by {expected}")
    return []


def signature_encoding_problem(data: bytes) -> str | None:
    """What makes ``manifest.sig`` other than what a run writes: the canonical base64 of a
    64-byte Ed25519 signature and one final newline, nothing else. Any other spelling of the
    same bytes would verify too, so it is a sign the file was rewritten."""
    text = data.removesuffix(b"\n")
    try:
        decoded = base64.b64decode(text, validate=True)
    except ValueError:
        return "not strict base64 (characters, whitespace or padding base64 does not allow)"
    if base64.b64encode(decoded) != text:
        return "not canonical base64 (re-encoding the signature gives different text)"
    if len(decoded) != 64:
        return f"not an Ed25519 signature: {len(decoded)} bytes, expected 64"
    return None
