"""The ``tls`` target: what a TLS endpoint presents and accepts (1.1.5, 1.2.1, 6.2.2, 12.1.1).

``inspect()`` makes a bounded number of connections, each with a connect and a handshake
timeout: one verifying handshake (chain against the CA bundle, hostname check), one handshake
that records the whole presented chain and any stapled OCSP response, and one handshake per
protocol version. When the certificate does not verify, one more handshake without
verification reads what a default client negotiates: the protocol is observed apart from
trust, so a certificate fault is never reported as a protocol fault. Python 3.11's ``ssl``
exposes only the leaf, so the presented chain comes from pyOpenSSL when it is installed, else
from ``openssl s_client`` (also when pyOpenSSL cannot complete a handshake, e.g. a certificate
on a curve its OpenSSL no longer offers), else the leaf alone. Chain reading accepts anything
(SECLEVEL=0, every curve): a weak certificate must be seen to be judged.

Client libraries (ssl, cryptography, pyOpenSSL) are imported inside functions: this module
is registered as a plugin and must not slow down pytest's start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import ssl

    from cryptography import x509

    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import TlsTable
    from pytest_vcci.targets.base import TargetGate

VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
LEGACY = ("TLSv1", "TLSv1.1")
# OpenSSL 3 (Debian 12) refuses TLS 1.0/1.1 at the default security level, since their
# handshakes sign with SHA-1; level 0 lets a probe offer them to see what the server does.
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
_CLIENT_CANNOT = (
    "NO_PROTOCOLS_AVAILABLE",
    "NO_CIPHERS_AVAILABLE",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
)
# Groups ``openssl s_client`` offers when a plain handshake fails: a certificate on a curve
# under 256 bits can only be presented to a client that names that curve.
WEAK_CURVE_GROUPS = "X25519:P-256:P-384:P-521:P-224:P-192"
# Certificate strength (1.2.1), as the CA/Browser Forum Baseline Requirements (6.1.5, 7.1.3)
# and NIST SP 800-57 set it: RSA >= 2048 bits, EC >= 256 bits, no DSA, no SHA-1 or MD5.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_SIGNATURE_HASHES = ("md5", "sha1")
KEY_EXPECTATION = f"RSA >= {MIN_RSA_BITS} bits or EC >= {MIN_EC_BITS} bits (no DSA)"
SIGNATURE_EXPECTATION = "SHA-256 or stronger (not SHA-1 or MD5)"
_CURVE_NAMES = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertInfo:
    """One certificate of the presented chain, as a person reads it."""

    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    days_to_expiry: int  # whole days left; negative once expired
    serial: str
    fingerprint_sha256: str
    self_signed: bool
    is_ca: bool
    key: str  # "EC P-256", "RSA 2048"
    signature_algorithm: str  # the signature's hash: "sha256", "sha1", "md5"
    key_type: str = ""  # "RSA", "EC", "DSA", "Ed25519", ...
    key_bits: int | None = None

    @property
    def sans(self) -> tuple[str, ...]:
        return (*self.dns_names, *self.ip_addresses)

    @property
    def is_root(self) -> bool:
        """A self-signed CA: its own signature is checked by nobody (it is trusted as is)."""
        return self.self_signed and self.is_ca

    @property
    def label(self) -> str:
        """How evidence names this certificate: its CN (or subject) and serial."""
        return f"{self.common_name or self.subject} (serial {self.serial})"

    @property
    def key_strong(self) -> bool:
        """RSA >= 2048 bits, EC >= 256 bits, EdDSA; never DSA or an unknown key type."""
        bits = self.key_bits or 0
        if self.key_type == "RSA":
            return bits >= MIN_RSA_BITS
        if self.key_type == "EC":
            return bits >= MIN_EC_BITS
        return self.key_type in ("Ed25519", "Ed448")

    @property
    def signature_strong(self) -> bool:
        return self.signature_algorithm.lower() not in WEAK_SIGNATURE_HASHES

    @property
    def expired(self) -> bool:
        return self.not_after <= dt.datetime.now(dt.UTC)

    def covers(self, hostname: str) -> bool:
        """Whether the SANs cover ``hostname`` (RFC 6125: a wildcard spans exactly one label)."""
        return covers(self.dns_names, self.ip_addresses, hostname)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["not_before"] = self.not_before.isoformat()
        data["not_after"] = self.not_after.isoformat()
        data["dns_names"], data["ip_addresses"] = list(self.dns_names), list(self.ip_addresses)
        return data


@dataclass(frozen=True)
class ProtocolSupport:
    version: str  # "TLSv1" .. "TLSv1.3"
    accepted: bool | None  # None: this machine could not find out (see detail)
    detail: str


@dataclass(frozen=True)
class TlsReport:
    """Everything one inspection of one endpoint found."""

    host: str
    port: int
    server_name: str
    chain: tuple[CertInfo, ...]  # as presented, leaf first
    chain_source: str  # "pyopenssl", "openssl s_client" or "leaf only"
    verified: bool  # chain trusted by the CA bundle and hostname matches
    verify_error: str | None  # OpenSSL's words: "certificate has expired", ...
    verify_code: int | None
    chain_complete: bool | None  # presented certs link up to a trusted root (None: unknown)
    protocol: str | None  # negotiated by a default client
    cipher: str | None
    protocols: tuple[ProtocolSupport, ...]
    ocsp_stapled: bool | None  # None: could not be determined
    ocsp_detail: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    handshake_error: str | None = None  # why no protocol was negotiated (protocol is None)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def verification(self) -> str:
        """'verified', or what OpenSSL found wrong: 'not verified: certificate has expired
        (OpenSSL verify code 10)'."""
        if self.verified:
            return "verified"
        code = f" (OpenSSL verify code {self.verify_code})" if self.verify_code is not None else ""
        return f"not verified: {self.verify_error or 'no reason given'}{code}"

    @property
    def negotiated(self) -> str:
        """The protocol a default client negotiated, or why none was."""
        if self.protocol:
            return self.protocol
        return f"none: {self.handshake_error or 'no handshake completed'}"

    @property
    def leaf(self) -> CertInfo | None:
        return self.chain[0] if self.chain else None

    @property
    def days_to_expiry(self) -> int | None:
        return self.leaf.days_to_expiry if self.leaf else None

    def covers(self, hostname: str) -> bool:
        return self.leaf is not None and self.leaf.covers(hostname)

    def support(self, version: str) -> ProtocolSupport:
        wanted = normalize_version(version)
        for result in self.protocols:
            if result.version == wanted:
                return result
        raise KeyError(f"{wanted} was not probed on {self.endpoint}")

    def accepts(self, version: str) -> bool | None:
        return self.support(version).accepted

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for evidence."""
        data = asdict(self)
        data["chain"] = [c.to_dict() for c in self.chain]
        data["protocols"] = [asdict(p) for p in self.protocols]
        data["notes"] = list(self.notes)
        return data


def normalize_version(version: str) -> str:
    """'1.0', 'TLS 1.0', 'TLSv1.0', 'TLSv1' -> 'TLSv1' (OpenSSL's names)."""
    text = version.strip().upper().replace("TLSV", "").replace("TLS", "").strip()
    text = {"1": "1.0"}.get(text, text)
    names = {"1.0": "TLSv1", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}
    if text not in names:
        raise ValueError(f"unknown TLS version {version!r} (expected one of {', '.join(VERSIONS)})")
    return names[text]


# --- hostname matching -----------------------------------------------------------------------


def hostname_matches(pattern: str, hostname: str) -> bool:
    """One DNS SAN against a hostname; ``*.a.b`` matches ``x.a.b`` but not ``a.b`` or ``x.y.a.b``."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        label = hostname[: -len(suffix)] if hostname.endswith(suffix) else ""
        return bool(label) and "." not in label and "*" not in label
    return "*" not in pattern and pattern == hostname


def covers(dns_names: Sequence[str], ip_addresses: Sequence[str], hostname: str) -> bool:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return any(hostname_matches(name, hostname) for name in dns_names)
    # An IP is matched by an IP SAN only, never by a DNS name or a wildcard.
    return any(ipaddress.ip_address(ip) == address for ip in ip_addresses)


# --- certificates ----------------------------------------------------------------------------


def cert_info(cert: x509.Certificate, now: dt.datetime | None = None) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = now or dt.datetime.now(dt.UTC)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    not_after = cert.not_valid_after_utc
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(cn[0].value) if cn else None,
        dns_names=dns_names,
        ip_addresses=ips,
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        # Whole days, toward zero: a certificate that expired a day ago reads -1, not -2.
        days_to_expiry=int((not_after - now) / dt.timedelta(days=1)),
        serial=format(cert.serial_number, "X"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=issued_by(cert, cert),
        is_ca=is_ca,
        key=_key_description(cert),
        signature_algorithm=_signature_hash(cert),
        key_type=_key_type(cert),
        key_bits=_key_bits(cert),
    )


def _signature_hash(cert: x509.Certificate) -> str:
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return getattr(cert.signature_hash_algorithm, "name", None) or "none (EdDSA)"
    except UnsupportedAlgorithm:
        return "unknown"


def _key_type(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    kinds = (
        (rsa.RSAPublicKey, "RSA"),
        (ec.EllipticCurvePublicKey, "EC"),
        (dsa.DSAPublicKey, "DSA"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PublicKey, "Ed448"),
    )
    key = cert.public_key()
    return next((name for kind, name in kinds if isinstance(key, kind)), type(key).__name__)


def _key_bits(cert: x509.Certificate) -> int | None:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    key = cert.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    return None


def _key_description(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    bits = _key_bits(cert)
    return f"{_key_type(cert)} {bits}" if bits else _key_type(cert)


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        child.verify_directly_issued_by(parent)
    except ValueError:
        # cryptography no longer checks SHA-1 or MD5 signatures: check them with the key.
        return child.issuer == parent.subject and _signature_valid(child, parent)
    except (TypeError, InvalidSignature):
        return False
    return True


def _signature_valid(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``child``'s signature verifies with ``parent``'s key, whatever its hash."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

    key = parent.public_key()
    try:
        digest = child.signature_hash_algorithm
        if digest is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            scheme = child.signature_algorithm_parameters
            pad = scheme if isinstance(scheme, padding.AsymmetricPadding) else padding.PKCS1v15()
            key.verify(child.signature, child.tbs_certificate_bytes, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(digest))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, digest)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def chain_complete(
    certs: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate] | None
) -> bool | None:
    """Each presented cert is signed by the next, and the last is or is signed by a trusted root."""
    if not certs or anchors is None:
        return None
    if not all(issued_by(child, parent) for child, parent in itertools.pairwise(certs)):
        return False
    last = certs[-1]
    return any(last == anchor or issued_by(last, anchor) for anchor in anchors)


def trust_anchors(ca_bundle: str | None) -> list[x509.Certificate] | None:
    """The certificates of the CA bundle (or the system's), None if none can be read."""
    import ssl

    from cryptography import x509

    path = ca_bundle or ssl.get_default_verify_paths().cafile
    if path is None or not Path(path).is_file():
        try:
            import certifi

            path = certifi.where()
        except ImportError:
            return None
    try:
        with warnings.catch_warnings():
            # System bundles carry a few old roots cryptography frowns on (negative serials).
            warnings.simplefilter("ignore")
            return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError):
        return None


# --- connections -----------------------------------------------------------------------------


def _connect(host: str, port: int, connect_timeout: float, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    sock.settimeout(timeout)
    return sock


def _allow_legacy(context: ssl.SSLContext) -> None:
    import ssl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.0 is the point
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers(LEGACY_CIPHERS)


def _sni(server_name: str) -> str | None:
    try:
        ipaddress.ip_address(server_name)
    except ValueError:
        return server_name
    return None  # SNI carries names only


@dataclass
class _Verification:
    verified: bool
    error: str | None = None
    code: int | None = None
    protocol: str | None = None
    cipher: str | None = None
    leaf_der: bytes | None = None
    note: str | None = None
    handshake_error: str | None = None


def verify(
    host: str,
    port: int,
    server_name: str,
    ca_bundle: str | None,
    connect_timeout: float,
    timeout: float,
    *,
    legacy: bool = False,
) -> _Verification:
    """A handshake as a browser would do it: chain against the bundle plus hostname check."""
    import ssl

    context = ssl.create_default_context(cafile=ca_bundle)
    if legacy:
        _allow_legacy(context)
    try:
        return _handshake(context, host, port, server_name, connect_timeout, timeout)
    except ssl.SSLCertVerificationError as exc:
        result = _Verification(False, error=exc.verify_message, code=exc.verify_code)
    except (ssl.SSLError, ConnectionResetError) as exc:
        if not legacy:
            # Maybe only an old protocol is spoken: verify the chain anyway, report the rest.
            result = verify(
                host, port, server_name, ca_bundle, connect_timeout, timeout, legacy=True
            )
            result.note = f"a default client cannot connect ({_reason(exc)})"
            return result
        return _Verification(
            False,
            error=f"handshake failed: {_reason(exc)}",
            handshake_error=f"a default client could not complete a handshake ({_reason(exc)})",
        )
    # The certificate is not trusted, yet the protocol was negotiated before that was found:
    # the same client without verification reads it, so a certificate fault stays one.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        negotiated = _handshake(context, host, port, server_name, connect_timeout, timeout)
    except (ssl.SSLError, ConnectionResetError) as exc:
        result.handshake_error = (
            f"the handshake without certificate verification failed too ({_reason(exc)})"
        )
        return result
    result.protocol, result.cipher = negotiated.protocol, negotiated.cipher
    result.leaf_der = negotiated.leaf_der
    return result


def _handshake(
    context: ssl.SSLContext,
    host: str,
    port: int,
    server_name: str,
    connect_timeout: float,
    timeout: float,
) -> _Verification:
    """One handshake with ``context``: what it negotiated (raises what ssl raises)."""
    sock = _connect(host, port, connect_timeout, timeout)
    try:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            cipher = tls.cipher()
            return _Verification(
                True,
                protocol=tls.version(),
                cipher=cipher[0] if cipher else None,
                leaf_der=tls.getpeercert(binary_form=True),
            )
    finally:
        sock.close()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (str(exc) or type(exc).__name__)


def probe_version(
    host: str,
    port: int,
    version: str,
    *,
    server_name: str | None = None,
    connect_timeout: float = 5.0,
    timeout: float = 10.0,
) -> ProtocolSupport:
    """Whether the server completes a handshake with exactly ``version`` (min = max)."""
    import ssl

    version = normalize_version(version)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust is verify()'s business; this asks about versions
    attribute = version.replace(".", "_")  # "TLSv1.2" -> ssl.HAS_TLSv1_2, ssl.TLSVersion.TLSv1_2
    compiled = getattr(ssl, f"HAS_{attribute}", False)
    try:
        if not compiled:
            raise ValueError("not built into the local OpenSSL")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            level = getattr(ssl.TLSVersion, attribute)
            context.minimum_version = context.maximum_version = level
        if version in LEGACY:
            context.set_ciphers(LEGACY_CIPHERS)
    except (ValueError, ssl.SSLError) as exc:
        return ProtocolSupport(version, None, f"client cannot offer {version}: {_reason(exc)}")
    sock = _connect(host, port, connect_timeout, timeout)
    try:
        with context.wrap_socket(sock, server_hostname=_sni(server_name or host)) as tls:
            cipher = tls.cipher()
            return ProtocolSupport(version, True, f"accepted ({cipher[0] if cipher else '?'})")
    except ssl.SSLError as exc:
        if _reason(exc) in _CLIENT_CANNOT:
            return ProtocolSupport(version, None, f"client cannot offer {version}: {_reason(exc)}")
        return ProtocolSupport(version, False, f"refused: {_reason(exc)}")
    except (ConnectionResetError, BrokenPipeError) as exc:
        return ProtocolSupport(version, False, f"refused: {_reason(exc)}")
    except TimeoutError:
        return ProtocolSupport(version, None, f"no answer within {timeout:g}s")
    finally:
        sock.close()


@dataclass
class _Presented:
    certs: list[x509.Certificate]
    source: str
    ocsp_stapled: bool | None
    ocsp_detail: str


def presented_chain(
    host: str,
    port: int,
    server_name: str,
    connect_timeout: float,
    timeout: float,
    via: str = "auto",
) -> _Presented | None:
    """The chain the server sends, by pyOpenSSL or ``openssl s_client``; None if neither works."""
    if via in ("auto", "pyopenssl"):
        try:
            import OpenSSL  # noqa: F401
        except ImportError:
            if via == "pyopenssl":
                raise
        else:
            found = _chain_pyopenssl(host, port, server_name, connect_timeout, timeout)
            if found is not None or via == "pyopenssl":
                return found
    if via in ("auto", "s_client"):
        return _chain_s_client(host, port, server_name, connect_timeout + timeout)
    return None


def _chain_pyopenssl(
    host: str, port: int, server_name: str, connect_timeout: float, timeout: float
) -> _Presented | None:
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)  # read what is presented, trusted or not
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_cipher_list(LEGACY_CIPHERS.encode())
    staples: list[bytes] = []

    def on_ocsp(conn: Any, data: bytes, _: Any) -> bool:
        staples.append(data)
        return True  # only record it; accepting or rejecting it is not this handshake's job

    context.set_ocsp_client_callback(on_ocsp)
    sock = _connect(host, port, connect_timeout, timeout)
    try:
        conn = SSL.Connection(context, sock)
        sni = _sni(server_name)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        conn.request_ocsp()
        conn.set_connect_state()
        try:
            _pyopenssl_handshake(conn, sock, timeout)
        except (SSL.Error, SSL.SysCallError):
            return None
        certs = conn.get_peer_cert_chain(as_cryptography=True) or []
        stapled, detail = ocsp_summary(staples[0] if staples else b"")
        return _Presented(list(certs), "pyopenssl", stapled, detail)
    finally:
        sock.close()


def _pyopenssl_handshake(conn: Any, sock: socket.socket, timeout: float) -> None:
    import select

    from OpenSSL import SSL

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(readable, writable, [], remaining)):
            raise TimeoutError(f"TLS handshake not completed within {timeout:g}s")


def ocsp_summary(data: bytes) -> tuple[bool, str]:
    """(stapled?, what the stapled response says) for the raw bytes a server stapled."""
    if not data:
        return False, "no OCSP response stapled"
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return True, "stapled data is not a DER OCSP response"
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return True, f"stapled OCSP response status: {response.response_status.name.lower()}"
    status = response.certificate_status.name.lower()
    next_update = response.next_update_utc
    until = f", next update {next_update:%Y-%m-%d}" if next_update else ""
    return True, f"stapled OCSP response: certificate {status}{until}"


def _chain_s_client(host: str, port: int, server_name: str, timeout: float) -> _Presented | None:
    import re
    import shutil
    import subprocess

    from cryptography import x509

    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [
        openssl,
        "s_client",
        "-connect",
        address,
        "-showcerts",
        "-status",
        "-cipher",
        LEGACY_CIPHERS,
    ]
    sni = _sni(server_name)
    argv += ["-servername", sni] if sni else ["-noservername"]
    pems: list[bytes] = []
    # A certificate on a small curve is only presented to a client that offers that curve.
    for groups in ([], ["-groups", WEAK_CURVE_GROUPS]):
        try:
            result = subprocess.run(
                [*argv, *groups], input=b"", capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"openssl s_client did not finish within {timeout:g}s") from None
        out = result.stdout
        pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
        if pems:
            break
    if not pems:
        return None
    certs = [x509.load_pem_x509_certificate(pem) for pem in pems]
    if b"OCSP response: no response sent" in out:
        stapled, detail = False, "no OCSP response stapled"
    elif b"OCSP Response Status: successful" in out:
        status = re.search(rb"Cert Status: (\w+)", out)
        name = status.group(1).decode() if status else "?"
        stapled, detail = True, f"stapled OCSP response: certificate {name}"
    else:
        stapled, detail = None, "unknown: openssl s_client printed no OCSP status"
    return _Presented(certs, "openssl s_client", stapled, detail)


# --- inspection ------------------------------------------------------------------------------


def inspect(
    host: str,
    port: int = 443,
    server_name: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = 10.0,
    *,
    connect_timeout: float | None = None,
    versions: Sequence[str] = VERSIONS,
    chain_via: str = "auto",
) -> TlsReport:
    """Inspect one endpoint. Raises OSError (refused, timeout) if it cannot be reached at all."""
    from cryptography import x509

    name = server_name or host
    connect_timeout = connect_timeout or timeout
    checked = verify(host, port, name, ca_bundle, connect_timeout, timeout)
    presented = presented_chain(host, port, name, connect_timeout, timeout, chain_via)
    notes = [checked.note] if checked.note else []
    if presented is not None and presented.certs:
        certs, source = presented.certs, presented.source
        stapled, ocsp_detail = presented.ocsp_stapled, presented.ocsp_detail
    else:
        certs = [x509.load_der_x509_certificate(checked.leaf_der)] if checked.leaf_der else []
        source, stapled = "leaf only", None
        ocsp_detail = "unknown: neither pyOpenSSL nor openssl s_client could read the handshake"
        notes.append("only the leaf could be read, so chain completeness is unknown")
    protocols = tuple(
        probe_version(
            host, port, v, server_name=name, connect_timeout=connect_timeout, timeout=timeout
        )
        for v in versions
    )
    chain = tuple(cert_info(c) for c in certs)
    handshake_error = checked.handshake_error
    if handshake_error and chain and chain[0].key_type == "EC" and not chain[0].key_strong:
        handshake_error += (
            f"; the certificate's key is {chain[0].key}, a curve default clients do not offer"
        )
    return TlsReport(
        host=host,
        port=port,
        server_name=name,
        chain=chain,
        chain_source=source,
        verified=checked.verified,
        verify_error=checked.error,
        verify_code=checked.code,
        chain_complete=(
            chain_complete(certs, trust_anchors(ca_bundle)) if source != "leaf only" else None
        ),
        protocol=checked.protocol,
        cipher=checked.cipher,
        protocols=protocols,
        ocsp_stapled=stapled,
        ocsp_detail=ocsp_detail,
        notes=tuple(notes),
        handshake_error=handshake_error,
    )


def parse_endpoint(endpoint: str, default_port: int = 443) -> tuple[str, int]:
    """'host', 'host:port', '[::1]:443' or 'https://host:port/path' -> (host, port)."""
    from urllib.parse import urlsplit

    text = endpoint.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    if not parts.hostname:
        raise ValueError(f"not a TLS endpoint: {endpoint!r} (expected host:port)")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"not a TLS endpoint: {endpoint!r} (bad port)") from None
    return parts.hostname, port


# --- the fixture -----------------------------------------------------------------------------


class TlsInspector:
    """Inspects the endpoints of a [tls] table; one inspection per endpoint per run."""

    def __init__(
        self, table: TlsTable, *, ca_bundle: str | None = None, gate: TargetGate | None = None
    ) -> None:
        self.table = table
        self.ca_bundle = ca_bundle
        self.gate = gate
        self._reports: dict[tuple[str, int, str], TlsReport] = {}

    @property
    def endpoints(self) -> list[str]:
        return list(self.table.endpoints)

    def inspect(self, endpoint: str, *, server_name: str | None = None) -> TlsReport:
        """The report for ``endpoint`` (cached); TargetUnreachable at once if it is known down."""
        host, port = parse_endpoint(endpoint)
        key = (host, port, server_name or host)
        if key not in self._reports:
            self._reports[key] = self._inspect(host, port, server_name)
        return self._reports[key]

    def _inspect(self, host: str, port: int, server_name: str | None) -> TlsReport:
        def run() -> TlsReport:
            return inspect(
                host,
                port,
                server_name,
                self.ca_bundle,
                # A handshake is a few round trips: a server that needs longer than a connect
                # is as good as down, and must not cost a read timeout per handshake.
                self.table.connect_timeout,
                connect_timeout=self.table.connect_timeout,
            )

        if self.gate is None:
            return run()
        target = f"tls {host}:{port}"
        with self.gate.watch(target, OSError):
            return run()

    def reports(self) -> list[TlsReport]:
        return [self.inspect(endpoint) for endpoint in self.endpoints]

    def describe(self) -> dict[str, Any]:
        return {
            "target": "tls",
            "endpoints": self.endpoints,
            "ca_bundle": self.ca_bundle,
            "connect_timeout": self.table.connect_timeout,
            "read_timeout": self.table.read_timeout,
        }

    def __repr__(self) -> str:
        return f"TlsInspector(endpoints={self.endpoints!r}, ca_bundle={self.ca_bundle!r})"


def tls_inspector(context: RunContext) -> TlsInspector:
    """The inspector for the run's [tls] table (skips if it is absent or lists no endpoints)."""
    table: TlsTable = context.target_table("tls")
    if not table.endpoints:
        reason = f"[tls].endpoints is empty in {context.settings.source} (target not configured)"
        if context.strict:
            pytest.fail(f"{reason}; --vcci-strict makes this a failure", pytrace=False)
        pytest.skip(reason)
    ca_bundle = str(context.settings.resolve_path(table.ca_bundle)) if table.ca_bundle else None
    return TlsInspector(table, ca_bundle=ca_bundle, gate=context.gate)


@pytest.fixture(scope="session")
def tls(vcci_context: RunContext) -> TlsInspector:
    """Inspects the TLS endpoints of the environment: chain, expiry, versions, OCSP stapling."""
    return tls_inspector(vcci_context)
