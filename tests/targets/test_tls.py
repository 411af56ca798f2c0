"""The tls target against real TLS servers on loopback, with certificates from the sandbox PKI.

Each bad variant a readiness check must catch (1.2.1, 6.2.2, 12.1.1) has its own server here:
expired, wrong hostname, self-signed, incomplete chain, legacy-only protocols, 30 days left,
and an OCSP-stapling server. The last section covers the host target's reachability and DNS
helpers, which 12.1.1 uses together with the certificate checks.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from support_net import BlackHole, never_answering

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.base import free_port
from pytest_vcci.sandbox.pki import LeafFiles, LocalCA, self_signed
from pytest_vcci.sandbox.sample_api import SampleApiComponent
from pytest_vcci.settings import HostTable, TlsTable, load_settings
from pytest_vcci.targets import tls as tls_target
from pytest_vcci.targets.base import TargetGate, TargetUnreachable
from pytest_vcci.targets.host import infra_host, reachable, resolve, resolve_with

HOSTS = ("api.staging.vcci.greenlang.io", "*.vcci.greenlang.io", "localhost", "127.0.0.1")
FAST = {"timeout": 3.0, "connect_timeout": 1.0}

# --- fixtures: PKI and servers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def leaves(ca: LocalCA) -> dict[str, LeafFiles]:
    return {
        "good": ca.issue("good", HOSTS, days=120),
        "rsa": ca.issue("rsa", HOSTS, days=120, key_type="rsa"),
        "expired": ca.expired("expired", HOSTS),
        "wrong-host": ca.wrong_hostname("wrong-host", ("wrong-host.example.test",)),
        "incomplete": ca.incomplete_chain("incomplete", HOSTS),
        "thirty-days": ca.expiring("thirty-days", HOSTS, days_left=30),
        "self-signed": self_signed(ca.directory, "self-signed", HOSTS),
    }


def server_context(
    leaf: LeafFiles,
    tls_min: str = "TLSv1_2",
    tls_max: str = "TLSv1_3",
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.fullchain, leaf.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = getattr(ssl.TLSVersion, tls_min)
        context.maximum_version = getattr(ssl.TLSVersion, tls_max)
    if tls_min in ("TLSv1", "TLSv1_1"):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener calling ``handle`` per connection in a thread; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            # The client under test hangs up or refuses: that is its job, not an error here.
            with suppress(Exception):
                handle(conn)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # hold the connection until the client closes it

    with serving(handle) as port:
        yield port


@contextmanager
def stapling_server(leaf: LeafFiles, ocsp_der: bytes) -> Iterator[int]:
    """A pyOpenSSL server that staples ``ocsp_der`` (Python's ssl cannot staple)."""
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_chain_file(str(leaf.fullchain))
    context.use_privatekey_file(str(leaf.key))
    context.set_ocsp_server_callback(lambda conn, data: ocsp_der)

    def handle(conn: socket.socket) -> None:
        conn.setblocking(True)
        tls = SSL.Connection(context, conn)
        tls.set_accept_state()
        tls.do_handshake()
        with suppress(SSL.Error):
            tls.recv(1)

    with serving(handle) as port:
        yield port


def inspect_leaf(
    leaf: LeafFiles, ca: LocalCA, server_name: str = "api.staging.vcci.greenlang.io", **server: Any
) -> tls_target.TlsReport:
    with tls_server(server_context(leaf, **server)) as port:
        return tls_target.inspect("127.0.0.1", port, server_name, str(ca.ca_bundle), **FAST)


# --- a good endpoint -------------------------------------------------------------------------


def test_good_chain_verifies_and_is_described_in_full(
    leaves: dict[str, LeafFiles], ca: LocalCA
) -> None:
    from cryptography.hazmat.primitives import hashes

    report = inspect_leaf(leaves["good"], ca)
    assert report.verified, report.verify_error
    assert report.verify_error is None
    # pyOpenSSL when installed, else openssl s_client: both read the whole presented chain.
    assert report.chain_source in ("pyopenssl", "openssl s_client")
    assert len(report.chain) == 2  # leaf + intermediate, as presented
    assert report.chain_complete is True
    leaf, intermediate = report.chain
    expected = leaves["good"].certificate
    assert leaf.fingerprint_sha256 == expected.fingerprint(hashes.SHA256()).hex(":").upper()
    assert leaf.serial == format(expected.serial_number, "X")
    assert leaf.sans == HOSTS
    assert leaf.key == "EC P-256"
    assert 118 <= leaf.days_to_expiry <= 120
    assert leaf.issuer == intermediate.subject
    assert intermediate.is_ca
    assert not leaf.is_ca
    assert report.protocol in ("TLSv1.2", "TLSv1.3")
    assert [p.accepted for p in report.protocols] == [False, False, True, True]
    assert report.ocsp_stapled is False
    assert report.ocsp_detail == "no OCSP response stapled"
    json.dumps(report.to_dict())  # evidence is plain JSON


def test_rsa_leaf_is_reported_as_rsa_2048(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["rsa"], ca)
    assert report.verified
    assert report.leaf is not None
    assert report.leaf.key == "RSA 2048"


def test_wildcard_san_covers_one_label_only(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["good"], ca)
    assert report.covers("api.vcci.greenlang.io")
    assert report.covers("GRAFANA.VCCI.GREENLANG.IO.")
    assert not report.covers("vcci.greenlang.io")
    assert not report.covers("a.b.vcci.greenlang.io")
    assert not report.covers("evil-vcci.greenlang.io")
    assert report.covers("127.0.0.1")
    assert not report.covers("127.0.0.2")


@pytest.mark.parametrize(
    ("pattern", "hostname", "matches"),
    [
        ("*.vcci.greenlang.io", "api.vcci.greenlang.io", True),
        ("*.vcci.greenlang.io", "vcci.greenlang.io", False),
        ("*.vcci.greenlang.io", "x.api.vcci.greenlang.io", False),
        ("*.vcci.greenlang.io", ".vcci.greenlang.io", False),
        ("api.vcci.greenlang.io", "API.vcci.greenlang.io", True),
        ("api*.vcci.greenlang.io", "api1.vcci.greenlang.io", False),
    ],
)
def test_hostname_matching(pattern: str, hostname: str, matches: bool) -> None:
    assert tls_target.hostname_matches(pattern, hostname) is matches


def test_ip_is_never_matched_by_a_dns_name() -> None:
    assert not tls_target.covers(["*.0.0.1", "127.0.0.1"], [], "127.0.0.1")
    assert tls_target.covers([], ["::1"], "0:0:0:0:0:0:0:1")


# --- the bad variants ------------------------------------------------------------------------


def test_expired_certificate(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["expired"], ca)
    assert not report.verified
    assert report.verify_error == "certificate has expired"
    assert report.verify_code == 10
    assert report.leaf is not None
    assert report.leaf.expired
    assert report.days_to_expiry is not None
    assert report.days_to_expiry < 0


def test_wrong_hostname(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["wrong-host"], ca)
    assert not report.verified
    assert report.verify_error is not None
    assert "Hostname mismatch" in report.verify_error
    assert "api.staging.vcci.greenlang.io" in report.verify_error
    assert report.verify_code == 62
    assert report.chain_complete is True  # the chain is fine; only the name is wrong
    assert not report.covers("api.staging.vcci.greenlang.io")


def test_self_signed(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["self-signed"], ca)
    assert not report.verified
    assert report.verify_error in ("self-signed certificate", "self signed certificate")
    assert report.verify_code == 18
    assert report.leaf is not None
    assert report.leaf.self_signed
    assert report.chain_complete is False


def test_incomplete_chain(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["incomplete"], ca)
    assert not report.verified
    assert report.verify_error == "unable to get local issuer certificate"
    assert report.verify_code == 20
    assert len(report.chain) == 1
    assert report.chain_complete is False


def test_not_yet_valid_certificate(ca: LocalCA) -> None:
    report = inspect_leaf(ca.not_yet_valid("not-yet-valid", HOSTS), ca)
    assert not report.verified
    assert (
        report.verification == "not verified: certificate is not yet valid (OpenSSL verify code 9)"
    )


@pytest.mark.parametrize("kind", ["expired", "wrong-host", "self-signed", "incomplete"])
def test_protocol_is_observed_when_the_certificate_does_not_verify(
    leaves: dict[str, LeafFiles], ca: LocalCA, kind: str
) -> None:
    """A certificate fault is not a protocol fault: what a default client negotiates is read
    from a handshake without verification."""
    report = inspect_leaf(leaves[kind], ca)
    assert not report.verified
    assert report.protocol == "TLSv1.3"
    assert report.negotiated == "TLSv1.3"
    assert report.cipher
    assert report.handshake_error is None


def test_thirty_days_left(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    report = inspect_leaf(leaves["thirty-days"], ca)
    assert report.verified  # valid today, yet it fails 1.2.1's "> 60 days"
    assert report.days_to_expiry == 30


def test_without_the_private_ca_the_chain_is_untrusted(leaves: dict[str, LeafFiles]) -> None:
    with tls_server(server_context(leaves["good"])) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", None, **FAST
        )
    assert not report.verified
    assert report.verify_error == "unable to get local issuer certificate"


# --- key and signature strength --------------------------------------------------------------


def weak_server_context(leaf: LeafFiles) -> ssl.SSLContext:
    """What a misconfigured server does to serve weak material: SECLEVEL=0."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(leaf.fullchain, leaf.key)
    return context


@pytest.mark.parametrize(
    ("key_type", "described", "bits"),
    [("rsa-1024", "RSA 1024", 1024), ("rsa-1536", "RSA 1536", 1536), ("ec-p224", "EC P-224", 224)],
)
def test_weak_keys_are_read_and_judged(
    ca: LocalCA, key_type: str, described: str, bits: int
) -> None:
    leaf = ca.weak_key(f"weak-{key_type}", HOSTS, key_type)  # type: ignore[arg-type]
    with tls_server(weak_server_context(leaf)) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", str(ca.ca_bundle), **FAST
        )
    assert report.leaf is not None
    assert (report.leaf.key, report.leaf.key_bits) == (described, bits)
    assert report.leaf.key_strong is False
    assert report.chain[1].key_strong is True  # the intermediate: EC P-256
    assert report.chain_complete is True


def test_a_small_curve_is_read_by_offering_it(ca: LocalCA) -> None:
    """pyOpenSSL's OpenSSL no longer offers P-224: openssl s_client, told to, reads the chain."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    leaf = ca.weak_key("weak-p224-chain", HOSTS, "ec-p224")
    with tls_server(weak_server_context(leaf)) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", str(ca.ca_bundle), **FAST
        )
    assert report.chain_source == "openssl s_client"
    assert [c.key for c in report.chain] == ["EC P-224", "EC P-256"]
    assert report.protocol is None
    assert report.negotiated.startswith("none: a default client could not complete a handshake")
    assert report.negotiated.endswith(
        "the certificate's key is EC P-224, a curve default clients do not offer"
    )


@pytest.fixture(scope="module")
def rsa_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("pki-rsa"), key_type="rsa")


@pytest.mark.parametrize("digest", ["sha1", "md5"])
def test_weak_signatures_are_real_and_judged(rsa_ca: LocalCA, digest: str) -> None:
    leaf = rsa_ca.weak_signature(f"weak-{digest}", HOSTS, digest)  # type: ignore[arg-type]
    assert leaf.certificate.signature_hash_algorithm is not None
    assert leaf.certificate.signature_hash_algorithm.name == digest
    with tls_server(weak_server_context(leaf)) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", str(rsa_ca.ca_bundle), **FAST
        )
    # OpenSSL verifies the signature and refuses its hash; the chain still links up.
    assert report.verification == (
        "not verified: CA signature digest algorithm too weak (OpenSSL verify code 68)"
    )
    assert report.chain_complete is True
    assert report.leaf is not None
    assert report.leaf.signature_algorithm == digest
    assert report.leaf.signature_strong is False
    assert report.protocol == "TLSv1.3"


def test_a_forged_weak_signature_does_not_link_the_chain(rsa_ca: LocalCA, ca: LocalCA) -> None:
    """The SHA-1 fallback checks the signature itself, not only the names."""
    from pytest_vcci.sandbox.pki import BACKDATE, DAY, Credential, leaf_cert, new_key, utcnow

    genuine = rsa_ca.weak_signature("weak-sha1-genuine", HOSTS, "sha1")
    assert tls_target.issued_by(genuine.certificate, rsa_ca.intermediate.cert)
    # Names the intermediate as its issuer, but another key signed it.
    impostor = Credential(new_key("rsa"), rsa_ca.intermediate.cert)
    now = utcnow()
    forged = leaf_cert(
        HOSTS[0], HOSTS, new_key("rsa"), impostor, now - BACKDATE, now + DAY, digest="sha1"
    )
    assert forged.issuer == rsa_ca.intermediate.cert.subject
    assert not tls_target.issued_by(forged, rsa_ca.intermediate.cert)


def test_a_sha1_intermediate_is_judged(tmp_path: Path) -> None:
    weak = LocalCA.create(tmp_path / "weak", key_type="rsa", intermediate_digest="sha1")
    leaf = weak.issue("leaf", HOSTS, key_type="rsa")
    with tls_server(weak_server_context(leaf)) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", str(weak.ca_bundle), **FAST
        )
    assert [c.signature_algorithm for c in report.chain] == ["sha256", "sha1"]
    assert [c.signature_strong for c in report.chain] == [True, False]
    assert report.chain_complete is True


@pytest.mark.parametrize(
    ("key_type", "bits", "strong"),
    [
        ("RSA", 2048, True),
        ("RSA", 2047, False),
        ("EC", 256, True),
        ("EC", 224, False),
        ("DSA", 3072, False),  # DSA at any size: no longer allowed for TLS certificates
        ("Ed25519", None, True),
        ("GOST", 256, False),  # unknown kinds are not waved through
    ],
)
def test_key_strength_rules(ca: LocalCA, key_type: str, bits: int | None, strong: bool) -> None:
    from dataclasses import replace

    info = replace(tls_target.cert_info(ca.intermediate.cert), key_type=key_type, key_bits=bits)
    assert info.key_strong is strong


def test_only_a_self_signed_ca_is_a_root(ca: LocalCA, leaves: dict[str, LeafFiles]) -> None:
    assert tls_target.cert_info(ca.root.cert).is_root
    assert not tls_target.cert_info(ca.intermediate.cert).is_root
    assert not tls_target.cert_info(leaves["self-signed"].certificate).is_root  # not a CA


# --- protocol versions -----------------------------------------------------------------------


def test_tls10_only_server_is_reported_as_legacy(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    """Debian's OpenSSL 3 can still speak TLS 1.0 at SECLEVEL=0 on both ends, so this is real."""
    report = inspect_leaf(leaves["good"], ca, tls_min="TLSv1", tls_max="TLSv1")
    assert report.accepts("1.0") is True
    assert [report.accepts(v) for v in ("TLSv1.1", "TLSv1.2", "TLSv1.3")] == [False, False, False]
    assert report.support("TLS 1.2").detail.startswith("refused:")
    # The chain is still checked, through a legacy handshake, and the note says why.
    assert report.verified
    assert report.notes
    assert "default client cannot connect" in report.notes[0]


def test_tls12_only_and_tls13_only(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    only12 = inspect_leaf(leaves["good"], ca, tls_min="TLSv1_2", tls_max="TLSv1_2")
    only13 = inspect_leaf(leaves["good"], ca, tls_min="TLSv1_3", tls_max="TLSv1_3")
    assert [only12.accepts(v) for v in tls_target.VERSIONS] == [False, False, True, False]
    assert [only13.accepts(v) for v in tls_target.VERSIONS] == [False, False, False, True]
    assert only12.protocol == "TLSv1.2"
    assert only13.protocol == "TLSv1.3"


def test_client_that_cannot_offer_a_version_says_so(
    leaves: dict[str, LeafFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssl, "HAS_TLSv1", False)
    with tls_server(server_context(leaves["good"])) as port:
        result = tls_target.probe_version("127.0.0.1", port, "TLSv1", timeout=2)
    assert result.accepted is None
    assert result.detail.startswith("client cannot offer TLSv1")


def test_sample_api_tls_options_restrict_versions(tmp_path: Path) -> None:
    component = SampleApiComponent(workdir=tmp_path, tls_min="1.3", tls_max="1.3")
    component.start()
    try:
        report = tls_target.inspect(
            "127.0.0.1", component.port, None, str(component.ca_bundle), **FAST
        )
    finally:
        component.stop()
    assert report.verified
    assert [report.accepts(v) for v in tls_target.VERSIONS] == [False, False, False, True]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("1.0", "TLSv1"),
        ("TLS 1.0", "TLSv1"),
        ("TLSv1", "TLSv1"),
        ("tlsv1.3", "TLSv1.3"),
    ],
)
def test_version_names(text: str, name: str) -> None:
    assert tls_target.normalize_version(text) == name


def test_unknown_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown TLS version"):
        tls_target.normalize_version("SSLv3")


# --- OCSP stapling and the chain sources -----------------------------------------------------


@pytest.mark.parametrize("status", ["good", "revoked"])
def test_ocsp_staple_is_detected_and_read(
    leaves: dict[str, LeafFiles], ca: LocalCA, status: str
) -> None:
    pytest.importorskip("OpenSSL")
    leaf = leaves["good"]
    with stapling_server(leaf, ca.ocsp_response(leaf.certificate, status=status)) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, "api.staging.vcci.greenlang.io", str(ca.ca_bundle), **FAST
        )
    assert report.ocsp_stapled is True
    assert f"certificate {status}" in report.ocsp_detail


def test_s_client_fallback_reads_the_same_chain(leaves: dict[str, LeafFiles], ca: LocalCA) -> None:
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    leaf = leaves["good"]
    with tls_server(server_context(leaf)) as port:
        via_py = tls_target.inspect("127.0.0.1", port, None, str(ca.ca_bundle), **FAST)
        via_cli = tls_target.inspect(
            "127.0.0.1", port, None, str(ca.ca_bundle), chain_via="s_client", **FAST
        )
    assert via_cli.chain_source == "openssl s_client"
    assert [c.fingerprint_sha256 for c in via_cli.chain] == [
        c.fingerprint_sha256 for c in via_py.chain
    ]
    assert via_cli.ocsp_stapled is False
    pytest.importorskip("OpenSSL", reason="the stapling server needs pyOpenSSL")
    with stapling_server(leaf, ca.ocsp_response(leaf.certificate)) as port:
        stapled = tls_target.inspect(
            "127.0.0.1", port, None, str(ca.ca_bundle), chain_via="s_client", versions=(), **FAST
        )
    assert stapled.ocsp_stapled is True


def test_leaf_only_source_leaves_chain_and_ocsp_unknown(
    leaves: dict[str, LeafFiles], ca: LocalCA
) -> None:
    with tls_server(server_context(leaves["good"])) as port:
        report = tls_target.inspect(
            "127.0.0.1", port, None, str(ca.ca_bundle), chain_via="leaf", versions=(), **FAST
        )
    assert report.chain_source == "leaf only"
    assert len(report.chain) == 1
    assert report.chain_complete is None
    assert report.ocsp_stapled is None
    assert report.ocsp_detail.startswith("unknown")


# --- the fixture object: settings, cache, fail fast ------------------------------------------


def make_context(tmp_path: Path, tables: str, *, strict: bool = False) -> RunContext:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[environment]\nname = "test"\n' + tables)
    settings = load_settings(env_file, env={})
    return RunContext(
        settings, Redactor(settings.secrets()), "run-1", tmp_path / "run", strict=strict
    )


def test_inspector_reads_the_tls_table_and_caches(
    tmp_path: Path, leaves: dict[str, LeafFiles], ca: LocalCA
) -> None:
    (tmp_path / "ca.pem").write_bytes(ca.ca_bundle.read_bytes())
    with tls_server(server_context(leaves["good"])) as port:
        context = make_context(
            tmp_path,
            f'[tls]\nendpoints = ["127.0.0.1:{port}"]\n'
            'ca_bundle = "ca.pem"\nconnect_timeout = 1\n'
            "read_timeout = 3\n",
        )
        inspector = tls_target.tls_inspector(context)
        assert inspector.ca_bundle == str(tmp_path / "ca.pem")  # relative to the env file
        (report,) = inspector.reports()
        assert report.verified
        assert inspector.inspect(f"127.0.0.1:{port}") is report  # one inspection per run
        assert inspector.describe()["endpoints"] == [f"127.0.0.1:{port}"]


def test_inspector_skips_without_endpoints(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"\[tls\].endpoints is empty"):
        tls_target.tls_inspector(make_context(tmp_path, "[tls]\n"))
    with pytest.raises(pytest.fail.Exception, match="--vcci-strict"):
        tls_target.tls_inspector(make_context(tmp_path, "[tls]\n", strict=True))
    with pytest.raises(pytest.skip.Exception, match=r"\[tls\] is not configured"):
        tls_target.tls_inspector(make_context(tmp_path, ""))


def test_refused_endpoint_fails_fast_with_one_cause(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    gate = TargetGate(tmp_path / "gate")
    table = TlsTable(endpoints=[f"127.0.0.1:{port}"], connect_timeout=1, read_timeout=2)
    with pytest.raises(TargetUnreachable) as first:
        tls_target.TlsInspector(table, gate=gate).inspect(f"127.0.0.1:{port}")
    assert "ConnectionRefusedError" in first.value.cause
    with BlackHole(port) as server:  # the address takes connections again
        with pytest.raises(TargetUnreachable) as second:  # a fresh inspector, another worker
            tls_target.TlsInspector(table, gate=gate).inspect(f"127.0.0.1:{port}")
        assert server.connections() == 0  # marked down for the run: nothing was sent
    assert second.value.cause == first.value.cause


def test_never_answering_endpoint_costs_one_connect_timeout(tmp_path: Path) -> None:
    gate = TargetGate(tmp_path / "gate")
    connect_timeout, read_timeout = 0.5, 30
    with never_answering() as port:
        table = TlsTable(
            endpoints=[f"127.0.0.1:{port}"],
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        began = time.monotonic()
        with pytest.raises(TargetUnreachable) as first:
            tls_target.TlsInspector(table, gate=gate).inspect(f"127.0.0.1:{port}")
        assert "TimeoutError" in first.value.cause
        # "timed out" does not say which timeout: one loose bound, generous for a loaded
        # machine, yet below read_timeout and the kernel's own connect timeout (~2 min).
        assert time.monotonic() - began < 10 * connect_timeout + 5 < read_timeout
    # The full accept queue is gone: a new attempt would now be accepted, and counted.
    with BlackHole(port) as server:
        with pytest.raises(TargetUnreachable) as second:
            tls_target.TlsInspector(table, gate=gate).inspect(f"127.0.0.1:{port}")
        assert server.connections() == 0  # no new connection attempt
    assert second.value.cause == first.value.cause


def test_one_endpoint_down_does_not_mark_another_down(
    tmp_path: Path, leaves: dict[str, LeafFiles], ca: LocalCA
) -> None:
    gate = TargetGate(tmp_path / "gate")
    down = free_port()
    with tls_server(server_context(leaves["good"])) as up:
        table = TlsTable(
            endpoints=[f"127.0.0.1:{down}", f"127.0.0.1:{up}"], connect_timeout=1, read_timeout=3
        )
        inspector = tls_target.TlsInspector(table, ca_bundle=str(ca.ca_bundle), gate=gate)
        with pytest.raises(TargetUnreachable):
            inspector.inspect(f"127.0.0.1:{down}")
        assert inspector.inspect(f"127.0.0.1:{up}").verified


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("api.vcci.greenlang.io", ("api.vcci.greenlang.io", 443)),
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::1]:8443", ("::1", 8443)),
        ("https://api.vcci.greenlang.io:9443/health", ("api.vcci.greenlang.io", 9443)),
    ],
)
def test_endpoint_parsing(text: str, parsed: tuple[str, int]) -> None:
    assert tls_target.parse_endpoint(text) == parsed


# --- reachability and DNS (targets/host.py) --------------------------------------------------


@contextmanager
def dns_server(records: dict[tuple[str, str], list[str]]) -> Iterator[int]:
    """A tiny authoritative DNS server on UDP loopback answering from ``records``."""
    import dns.message
    import dns.rcode
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            kind = dns.rdatatype.to_text(question.rdtype)
            response = dns.message.make_response(query)
            if not any(n == name for n, _ in records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif (name, kind) in records:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", kind, records[(name, kind)])
                )
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


def test_resolve_asks_the_configured_resolver() -> None:
    records = {
        ("api.vcci.greenlang.io", "A"): ["203.0.113.10", "203.0.113.11"],
        ("api.vcci.greenlang.io", "AAAA"): ["2001:db8::10"],
        ("v4only.vcci.greenlang.io", "A"): ["203.0.113.20"],
    }
    with dns_server(records) as port:
        assert sorted(
            resolve("api.vcci.greenlang.io", nameserver="127.0.0.1", port=port, timeout=2)
        ) == ["2001:db8::10", "203.0.113.10", "203.0.113.11"]
        assert resolve(
            "v4only.vcci.greenlang.io", nameserver="127.0.0.1", port=port, timeout=2
        ) == ["203.0.113.20"]
        assert (
            resolve("missing.vcci.greenlang.io", nameserver="127.0.0.1", port=port, timeout=2) == []
        )
        table = HostTable(resolver="127.0.0.1", resolver_port=port, dns_timeout=2)
        assert resolve_with(table, "v4only.vcci.greenlang.io") == ["203.0.113.20"]


def test_resolve_is_bounded_by_its_timeout() -> None:
    import dns.exception

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    try:
        with pytest.raises(dns.exception.Timeout):
            resolve(
                "api.vcci.greenlang.io",
                nameserver="127.0.0.1",
                port=silent.getsockname()[1],
                timeout=0.5,
            )
        queries = []
        with suppress(BlockingIOError):
            while True:
                queries.append(silent.recv(512))
        # It gave up once its first query went unanswered for the timeout: the timeout
        # bounds the whole resolution (dnspython's defaults, 2 s per query within a 5 s
        # lifetime, would have asked again).
        assert len(queries) == 1
    finally:
        silent.close()


def test_reachable() -> None:
    with serving(lambda conn: None) as port:
        assert reachable("127.0.0.1", port, timeout=1)
    assert not reachable("127.0.0.1", free_port(), timeout=1)
    with never_answering() as port:
        began = time.monotonic()
        assert not reachable("127.0.0.1", port, timeout=0.5)
        # One loose bound, generous for a loaded machine: without the timeout the kernel
        # would retry its SYN for about two minutes.
        assert time.monotonic() - began < 10 * 0.5 + 5


def test_infra_host_is_a_testinfra_host_on_the_configured_backend() -> None:
    host = infra_host(HostTable())
    assert host.backend.NAME == "local"
    assert host.run("true").rc == 0
    assert host.file("/etc/hostname").exists or host.file("/proc/version").exists
