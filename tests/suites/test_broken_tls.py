"""1.2.1 and 6.2.2 against TLS endpoints that each carry one defect, built without the checks.

Each run serves one leaf of the sandbox PKI on loopback, runs the TLS checks of the suites in a
pytest subprocess against it and reads evidence.json: the item's status and the exact
observation, as a user would see them. A certificate fault must fail 1.2.1 naming it, while
6.2.2's protocol criteria are still decided from the handshake; weak keys and weak signatures
in the presented chain fail 1.2.1.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tls_endpoints import plain_endpoint, stapling_endpoint
from variants import failed_tests, run_pytester

from pytest_vcci.sandbox.pki import LeafFiles, LocalCA, cert_pem, resign, self_signed

SUITES = Path(__file__).resolve().parents[2] / "suites"
MODULES = (SUITES / "test_01_pre_deployment.py", SUITES / "test_06_security.py")
SERVER_NAME = "api.staging.vcci.greenlang.io"
HOSTS = (SERVER_NAME, "*.vcci.greenlang.io", "127.0.0.1")
# The TLS checks of 1.2.1 and 6.2.2 (the others read a database, Redis, AWS or an attestation).
TLS_CHECKS = (
    "test_wildcard_certificate",
    "test_certificate_expiry",
    "test_certificate_chain",
    "test_certificate_strength",
    "test_ocsp_stapling",
    "test_public_endpoint_negotiates_tls13",
    "test_public_endpoint_refuses_legacy_tls",
)
KEY_EXPECTED = "RSA >= 2048 bits or EC >= 256 bits (no DSA)"
SIGNATURE_EXPECTED = "SHA-256 or stronger (not SHA-1 or MD5)"
VERIFIED = "verified (trusted chain, matching host name, within its validity)"


@dataclass
class Pki:
    """Three CAs: EC (the sandbox's kind), RSA (for weak signatures on leaves), and RSA with
    a SHA-1-signed intermediate."""

    ec: LocalCA
    rsa: LocalCA
    sha1_intermediate: LocalCA
    directory: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("tls-pki")
    return Pki(
        ec=LocalCA.create(root / "ec"),
        rsa=LocalCA.create(root / "rsa", key_type="rsa"),
        sha1_intermediate=LocalCA.create(root / "weak", key_type="rsa", intermediate_digest="sha1"),
        directory=root,
    )


@dataclass
class Variant:
    """A leaf, the CA a client trusts for it, and whether a server can staple for it."""

    leaf: LeafFiles
    ca: LocalCA
    staple: bool = True

    def endpoint(self) -> AbstractContextManager[int]:
        if self.staple:
            return stapling_endpoint(self.leaf, self.ca.ocsp_response(self.leaf.certificate))
        return plain_endpoint(self.leaf)


def sha1_root_presented(pki: Pki) -> Variant:
    """A good RSA leaf whose server also sends its root, self-signed with SHA-1."""
    ca = pki.rsa
    leaf = ca.issue("sha1-root-presented", HOSTS, key_type="rsa")
    old_root = resign(ca.root.cert, ca.root.key, "sha1")
    leaf.fullchain.write_bytes(cert_pem(leaf.certificate, ca.intermediate.cert, old_root))
    return Variant(leaf, ca)


def variant(pki: Pki, name: str) -> Variant:
    ec, rsa = pki.ec, pki.rsa
    makers = {
        "good": lambda: Variant(ec.issue(name, HOSTS), ec),
        "expired": lambda: Variant(ec.expired(name, HOSTS), ec),
        "not yet valid": lambda: Variant(ec.not_yet_valid(name, HOSTS), ec),
        "wrong host": lambda: Variant(ec.wrong_hostname(name), ec),
        "self-signed": lambda: Variant(self_signed(pki.directory, name, HOSTS), ec),
        "missing intermediate": lambda: Variant(ec.incomplete_chain(name, HOSTS), ec),
        "RSA 1024": lambda: Variant(ec.weak_key(name, HOSTS, "rsa-1024"), ec),
        "RSA 1536": lambda: Variant(ec.weak_key(name, HOSTS, "rsa-1536"), ec),
        # pyOpenSSL's OpenSSL no longer serves P-192: the system's OpenSSL does, unstapled.
        "EC P-192": lambda: Variant(ec.weak_key(name, HOSTS, "ec-p192"), ec, staple=False),
        "SHA-1 leaf": lambda: Variant(rsa.weak_signature(name, HOSTS, "sha1"), rsa),
        "MD5 leaf": lambda: Variant(rsa.weak_signature(name, HOSTS, "md5"), rsa),
        "SHA-1 intermediate": lambda: Variant(
            pki.sha1_intermediate.issue(name, HOSTS, key_type="rsa"), pki.sha1_intermediate
        ),
        "SHA-1 root presented": lambda: sha1_root_presented(pki),
    }
    return makers[name]()


@dataclass
class Run:
    """What one run against one endpoint left in evidence.json."""

    items: dict[str, Any]
    endpoint: str
    leaf: LeafFiles
    observations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.observations = [
            o
            for item_id in ("1.2.1", "6.2.2")
            for test in self.items[item_id]["tests"]
            for o in test.get("observations", [])
        ]

    def failed(self, item_id: str) -> set[str]:
        return failed_tests(self.items[item_id])

    def observed(self, name: str, where: str = "") -> tuple[Any, Any, bool | None]:
        """(observed, expected, passed) of the one observation ``name`` at ``where``."""
        place = f"tls {self.endpoint}{where}"
        found = [o for o in self.observations if o["name"] == name and o["where"] == place]
        assert len(found) == 1, (name, place, self.observations)
        return found[0]["observed"], found[0]["expected"], found[0]["passed"]

    def leaf_where(self) -> str:
        from pytest_vcci.targets.tls import cert_info

        return f" leaf {cert_info(self.leaf.certificate).label}"


@pytest.fixture
def run_against(pytester: pytest.Pytester, pki: Pki) -> Any:
    def run(name: str) -> Run:
        chosen = variant(pki, name)
        with chosen.endpoint() as port:
            endpoint = f"127.0.0.1:{port}"
            tables = {
                "environment": {"name": "tls-variant"},
                "tls": {
                    "endpoints": [endpoint],
                    "ca_bundle": str(chosen.ca.ca_bundle),
                    "connect_timeout": 2,
                    "read_timeout": 5,
                },
                "expect": {"api": {"server_name": SERVER_NAME}},
            }
            items = run_pytester(
                pytester,
                MODULES,
                tables,
                {},
                ("1.2.1", "6.2.2"),
                "-k",
                " or ".join(TLS_CHECKS),
            )
        return Run(items, endpoint, chosen.leaf)

    return run


def assert_protocol_decided_from_the_handshake(run: Run) -> None:
    """6.2.2's TLS criterion passes: the certificate's fault does not touch it. (The item is
    skipped, not passed: this run checks no PostgreSQL or Redis for its internal criterion.)"""
    item = run.items["6.2.2"]
    criteria = {c["text"]: c for c in item["criteria_status"]}
    external = criteria["TLS 1.3 for all external connections"]
    assert external["status"] == "passed", external
    assert criteria["TLS 1.2 minimum for internal connections"]["status"] == "undecided"
    assert item["status"] == "skipped", item
    assert run.observed("negotiated protocol") == ("TLSv1.3", "TLS 1.3 or later", True)
    assert run.observed("TLS 1.3 handshake")[1:] == ("accepted", True)


def test_good_endpoint_passes_1_2_1_and_6_2_2(run_against: Any) -> None:
    run = run_against("good")
    assert run.items["1.2.1"]["status"] == "passed", run.items["1.2.1"]
    assert run.observed("chain verified") == ("verified", VERIFIED, True)
    assert run.observed("key", run.leaf_where()) == ("EC P-256", KEY_EXPECTED, True)
    assert_protocol_decided_from_the_handshake(run)


@pytest.mark.parametrize(
    ("defect", "failing", "verification"),
    [
        (
            "expired",
            {"test_certificate_chain", "test_certificate_expiry"},
            "not verified: certificate has expired (OpenSSL verify code 10)",
        ),
        (
            "not yet valid",
            {"test_certificate_chain", "test_certificate_expiry"},
            "not verified: certificate is not yet valid (OpenSSL verify code 9)",
        ),
        (
            "wrong host",
            {"test_certificate_chain", "test_wildcard_certificate"},
            "not verified: Hostname mismatch, certificate is not valid for "
            f"'{SERVER_NAME}'. (OpenSSL verify code 62)",
        ),
        (
            "self-signed",
            # OpenSSL's server staples nothing for a self-signed leaf (no issuer vouches).
            {"test_certificate_chain", "test_ocsp_stapling"},
            "not verified: self-signed certificate (OpenSSL verify code 18)",
        ),
        (
            "missing intermediate",
            {"test_certificate_chain"},
            "not verified: unable to get local issuer certificate (OpenSSL verify code 20)",
        ),
    ],
)
def test_certificate_fault_fails_1_2_1_only(
    run_against: Any, defect: str, failing: set[str], verification: str
) -> None:
    run = run_against(defect)
    assert run.items["1.2.1"]["status"] == "failed"
    assert run.failed("1.2.1") == failing
    assert run.observed("chain verified") == (verification, VERIFIED, False)
    assert_protocol_decided_from_the_handshake(run)


def test_expired_and_not_yet_valid_say_when(run_against: Any) -> None:
    expired = run_against("expired")
    assert expired.observed("days to expiry") == (-1, "> 60", False)
    early = run_against("not yet valid")
    observed, expected, passed = early.observed("valid from (not before)")
    assert passed is False
    assert observed == early.leaf.certificate.not_valid_before_utc.isoformat(timespec="seconds")
    assert expected.startswith("before now (")


def test_missing_intermediate_and_self_signed_break_the_chain(run_against: Any) -> None:
    for defect in ("missing intermediate", "self-signed"):
        run = run_against(defect)
        assert run.observed("chain complete") == (False, True, False), defect


@pytest.mark.parametrize(
    ("defect", "key", "verify_code"),
    [("RSA 1024", "RSA 1024", 66), ("RSA 1536", "RSA 1536", 66)],
)
def test_weak_rsa_key_fails_1_2_1(
    run_against: Any, defect: str, key: str, verify_code: int
) -> None:
    run = run_against(defect)
    assert run.items["1.2.1"]["status"] == "failed"
    assert run.failed("1.2.1") == {"test_certificate_strength", "test_certificate_chain"}
    assert run.observed("key", run.leaf_where()) == (key, KEY_EXPECTED, False)
    assert run.observed("chain verified")[0] == (
        f"not verified: EE certificate key too weak (OpenSSL verify code {verify_code})"
    )
    assert_protocol_decided_from_the_handshake(run)


def test_p192_key_fails_1_2_1_and_says_why_no_client_negotiates(run_against: Any) -> None:
    """Only a client that offers P-192 can handshake with this server: the chain is read with
    openssl s_client offering small curves; a default client negotiates nothing, and 6.2.2
    says why instead of reporting null."""
    run = run_against("EC P-192")
    assert run.items["1.2.1"]["status"] == "failed"
    assert "test_certificate_strength" in run.failed("1.2.1")
    assert run.observed("key", run.leaf_where()) == ("EC P-192", KEY_EXPECTED, False)
    assert run.items["6.2.2"]["status"] == "failed"
    assert run.observed("negotiated protocol") == (
        "none: a default client could not complete a handshake (SSLV3_ALERT_HANDSHAKE_FAILURE); "
        "the certificate's key is EC P-192, a curve default clients do not offer",
        "TLS 1.3 or later",
        False,
    )


@pytest.mark.parametrize(
    ("defect", "position", "digest"),
    [
        ("SHA-1 leaf", "leaf", "sha1"),
        ("MD5 leaf", "leaf", "md5"),
        ("SHA-1 intermediate", 1, "sha1"),
    ],
)
def test_weak_signature_fails_1_2_1(
    run_against: Any, pki: Pki, defect: str, position: str | int, digest: str
) -> None:
    from pytest_vcci.targets.tls import cert_info

    run = run_against(defect)
    assert run.items["1.2.1"]["status"] == "failed"
    assert run.failed("1.2.1") == {"test_certificate_strength", "test_certificate_chain"}
    if position == "leaf":
        where = run.leaf_where()
    else:
        intermediate = pki.sha1_intermediate.intermediate.cert
        where = f" chain certificate {position} {cert_info(intermediate).label}"
    assert run.observed("signature hash", where) == (digest, SIGNATURE_EXPECTED, False)
    assert run.observed("chain complete") == (True, True, True)  # complete, only weak
    assert_protocol_decided_from_the_handshake(run)


def test_a_presented_roots_own_sha1_signature_is_not_judged(run_against: Any, pki: Pki) -> None:
    from pytest_vcci.targets.tls import cert_info

    run = run_against("SHA-1 root presented")
    assert run.items["1.2.1"]["status"] == "passed", run.items["1.2.1"]
    root = cert_info(resign(pki.rsa.root.cert, pki.rsa.root.key, "sha1"))
    observed, expected, passed = run.observed(
        "signature hash", f" chain certificate 2 {root.label}"
    )
    assert observed.startswith("sha1 (not judged: a self-signed root's own signature")
    assert "CA/Browser Forum" in observed
    assert (expected, passed) == (None, None)
