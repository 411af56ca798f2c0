"""A local PKI for the sandbox and the TLS tests: root CA -> intermediate CA -> leaf certificates.

Real deployments present ``leaf + intermediate`` and clients trust the root; the sandbox does the
same so that chain checks (1.2.1) see what they would see in staging. The helpers at the bottom
build the bad variants a TLS check must catch: expired, not yet valid, wrong hostname,
self-signed, incomplete chain, "30 days left", weak keys (RSA 1024/1536, EC P-192/P-224) and
weak signatures (SHA-1, MD5).

cryptography refuses to sign with SHA-1 or MD5, so a weakly signed certificate is made by
signing it properly, putting the weak algorithm's identifier into its to-be-signed part and
signing that again with the weak hash (``resign``): a real SHA-1 or MD5 signature, which
OpenSSL reads and verifies like any other. Only RSA issuers can do this (the identifiers
have the same length), so the weak-signature variants need an RSA CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponderEncoding, OCSPResponseBuilder
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# "ec" is P-256 and "rsa" 2048 bits (what the checklist's load balancers use); the others are
# the weak keys 1.2.1 must refuse.
KeyType = Literal["ec", "rsa", "ec-p384", "rsa-1024", "rsa-1536", "ec-p192", "ec-p224"]
SignatureHash = Literal["sha256", "sha1", "md5"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_RSA_BITS = {"rsa": 2048, "rsa-1024": 1024, "rsa-1536": 1536}
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ec": ec.SECP256R1,
    "ec-p384": ec.SECP384R1,
    "ec-p192": ec.SECP192R1,
    "ec-p224": ec.SECP224R1,
}
# DER AlgorithmIdentifiers (OID + NULL parameters) of RSA PKCS#1 v1.5 signatures: the three
# OIDs differ in their last byte only, so one replaces another without changing any length.
_RSA_SIGNATURE_ALGORITHMS: dict[str, bytes] = {
    "sha256": bytes.fromhex("300d06092a864886f70d01010b0500"),
    "sha1": bytes.fromhex("300d06092a864886f70d0101050500"),
    "md5": bytes.fromhex("300d06092a864886f70d0101040500"),
}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha1": hashes.SHA1(),
    "md5": hashes.MD5(),
}

DAY = dt.timedelta(days=1)
# Backdate not_before a little: a client whose clock is slightly behind must not see "not yet valid".
BACKDATE = dt.timedelta(minutes=5)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key(key_type: KeyType = "ec") -> PrivateKey:
    """A private key: "ec" (P-256), "rsa" (2048 bits), or one of the named weaker ones."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    raise ValueError(f"key_type must be one of {', '.join(get_args(KeyType))}, got {key_type!r}")


def _der(tag: int, body: bytes) -> bytes:
    """One DER element: tag, definite length, body."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def resign(
    cert: x509.Certificate, issuer_key: PrivateKey, digest: SignatureHash
) -> x509.Certificate:
    """``cert`` signed again by ``issuer_key`` with ``digest`` (an RSA issuer's SHA-256
    signature becomes a real SHA-1 or MD5 one; see the module docstring)."""
    if not isinstance(issuer_key, rsa.RSAPrivateKey):
        raise ValueError("a SHA-1 or MD5 signature needs an RSA issuer (LocalCA key_type='rsa')")
    old, new = _RSA_SIGNATURE_ALGORITHMS["sha256"], _RSA_SIGNATURE_ALGORITHMS[digest]
    tbs = cert.tbs_certificate_bytes
    if tbs.count(old) != 1:
        raise ValueError("the certificate is not signed sha256WithRSAEncryption")
    tbs = tbs.replace(old, new)
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), _HASHES[digest])
    der = _der(0x30, tbs + new + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


@dataclass(frozen=True)
class Credential:
    """A private key and the certificate for it."""

    key: PrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class LeafFiles:
    """The PEM files of one issued leaf, laid out the way servers and clients expect them."""

    name: str
    key: Path  # private key (mode 0600)
    cert: Path  # the leaf alone
    chain: Path  # the intermediates a server should send after the leaf
    fullchain: Path  # what the server presents: leaf + intermediates (leaf only if incomplete)
    ca_bundle: Path  # what a client trusts: the root
    certificate: x509.Certificate

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


def _name(common_name: str, organization: str = "GreenLang VCCI Sandbox") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _ca_cert(
    subject: x509.Name,
    key: PrivateKey,
    issuer: Credential | None,
    path_length: int | None,
    days: int,
    digest: SignatureHash = "sha256",
) -> x509.Certificate:
    now = utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + days * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = issuer.key if issuer else key
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    cert = builder.sign(signer, hashes.SHA256())
    return cert if digest == "sha256" else resign(cert, signer, digest)


def leaf_cert(
    common_name: str,
    sans: Sequence[str],
    key: PrivateKey,
    issuer: Credential | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    digest: SignatureHash = "sha256",
) -> x509.Certificate:
    """A server certificate; ``issuer=None`` makes it self-signed."""
    subject = _name(common_name)
    signer = issuer.key if issuer else key
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_san(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    cert = builder.sign(signer, hashes.SHA256())
    return cert if digest == "sha256" else resign(cert, signer, digest)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def write_leaf(
    directory: Path,
    name: str,
    leaf: Credential,
    intermediates: Sequence[x509.Certificate],
    ca_bundle: Path,
    *,
    present_chain: bool = True,
) -> LeafFiles:
    """Write key, cert, chain and fullchain PEMs for a leaf under ``directory/name``."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    files = LeafFiles(
        name=name,
        key=folder / "key.pem",
        cert=folder / "cert.pem",
        chain=folder / "chain.pem",
        fullchain=folder / "fullchain.pem",
        ca_bundle=ca_bundle,
        certificate=leaf.cert,
    )
    write_private(files.key, key_pem(leaf.key))
    files.cert.write_bytes(cert_pem(leaf.cert))
    files.chain.write_bytes(cert_pem(*intermediates))
    presented = [leaf.cert, *intermediates] if present_chain else [leaf.cert]
    files.fullchain.write_bytes(cert_pem(*presented))
    return files


class LocalCA:
    """A root CA and an intermediate CA on disk; issues leaves signed by the intermediate."""

    def __init__(self, directory: Path, root: Credential, intermediate: Credential) -> None:
        self.directory = directory
        self.root = root
        self.intermediate = intermediate

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        organization: str = "GreenLang VCCI Sandbox",
        key_type: KeyType = "ec",
        intermediate_digest: SignatureHash = "sha256",
    ) -> LocalCA:
        """``intermediate_digest`` "sha1" or "md5" signs the intermediate weakly (RSA only)."""
        directory = Path(directory)
        root_key = new_key(key_type)
        root = Credential(
            root_key,
            _ca_cert(
                _name(f"{organization} Root CA", organization),
                root_key,
                None,
                path_length=1,
                days=3650,
            ),
        )
        inter_key = new_key(key_type)
        intermediate = Credential(
            inter_key,
            _ca_cert(
                _name(f"{organization} Intermediate CA", organization),
                inter_key,
                root,
                path_length=0,
                days=1825,
                digest=intermediate_digest,
            ),
        )
        ca = cls(directory, root, intermediate)
        ca._write()
        return ca

    def _write(self) -> None:
        ca_dir = self.directory / "ca"
        write_private(ca_dir / "root.key", key_pem(self.root.key))
        write_private(ca_dir / "intermediate.key", key_pem(self.intermediate.key))
        (ca_dir / "root.pem").write_bytes(cert_pem(self.root.cert))
        (ca_dir / "intermediate.pem").write_bytes(cert_pem(self.intermediate.cert))
        self.ca_bundle.write_bytes(cert_pem(self.root.cert))

    @property
    def ca_bundle(self) -> Path:
        """What clients trust: the root only, so a server that omits the intermediate fails."""
        return self.directory / "ca" / "ca-bundle.pem"

    def issue(
        self,
        name: str,
        sans: Sequence[str],
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        days: int = 90,
        key_type: KeyType = "ec",
        present_chain: bool = True,
        digest: SignatureHash = "sha256",
    ) -> LeafFiles:
        """A leaf for ``sans`` (first SAN is the CN), written under ``directory/name``."""
        if not sans:
            raise ValueError("a leaf certificate needs at least one SAN")
        start = not_before or utcnow() - BACKDATE
        end = not_after or utcnow() + days * DAY
        key = new_key(key_type)
        cert = leaf_cert(sans[0], sans, key, self.intermediate, start, end, digest)
        return write_leaf(
            self.directory,
            name,
            Credential(key, cert),
            [self.intermediate.cert],
            self.ca_bundle,
            present_chain=present_chain,
        )

    # --- the bad variants ------------------------------------------------------------------

    def expired(
        self, name: str, sans: Sequence[str], *, days_ago: int = 1, key_type: KeyType = "ec"
    ) -> LeafFiles:
        now = utcnow()
        return self.issue(
            name, sans, not_before=now - 90 * DAY, not_after=now - days_ago * DAY, key_type=key_type
        )

    def not_yet_valid(
        self, name: str, sans: Sequence[str], *, days_ahead: int = 1, key_type: KeyType = "ec"
    ) -> LeafFiles:
        """A leaf whose validity starts ``days_ahead`` days from now."""
        start = utcnow() + days_ahead * DAY
        return self.issue(
            name, sans, not_before=start, not_after=start + 90 * DAY, key_type=key_type
        )

    def weak_key(self, name: str, sans: Sequence[str], key_type: KeyType) -> LeafFiles:
        """A valid leaf on a key too small for 1.2.1 ("rsa-1024", "rsa-1536", "ec-p192", ...)."""
        return self.issue(name, sans, key_type=key_type)

    def weak_signature(self, name: str, sans: Sequence[str], digest: SignatureHash) -> LeafFiles:
        """A valid leaf the intermediate signed with SHA-1 or MD5 (needs an RSA CA)."""
        return self.issue(name, sans, key_type="rsa", digest=digest)

    def wrong_hostname(
        self,
        name: str,
        sans: Sequence[str] = ("wrong-host.example.test",),
        *,
        key_type: KeyType = "ec",
    ) -> LeafFiles:
        """A valid, trusted leaf for some other name."""
        return self.issue(name, sans, key_type=key_type)

    def incomplete_chain(
        self, name: str, sans: Sequence[str], *, key_type: KeyType = "ec"
    ) -> LeafFiles:
        """A valid leaf whose server would present it without the intermediate."""
        return self.issue(name, sans, key_type=key_type, present_chain=False)

    def expiring(
        self, name: str, sans: Sequence[str], *, days_left: int = 30, key_type: KeyType = "ec"
    ) -> LeafFiles:
        """A leaf with ``days_left`` whole days to go (an hour of slack so it reads as exactly that)."""
        return self.issue(
            name,
            sans,
            not_after=utcnow() + days_left * DAY + dt.timedelta(hours=1),
            key_type=key_type,
        )

    def ocsp_response(
        self, leaf: x509.Certificate, *, status: str = "good", valid_for: dt.timedelta = 7 * DAY
    ) -> bytes:
        """A DER OCSP response for a leaf, signed by the intermediate (what a server staples)."""
        cert_status = {
            "good": OCSPCertStatus.GOOD,
            "revoked": OCSPCertStatus.REVOKED,
            "unknown": OCSPCertStatus.UNKNOWN,
        }[status]
        now = utcnow()
        revoked_at = now - DAY if cert_status is OCSPCertStatus.REVOKED else None
        builder = (
            OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=self.intermediate.cert,
                algorithm=hashes.SHA1(),
                cert_status=cert_status,
                this_update=now - BACKDATE,
                next_update=now + valid_for,
                revocation_time=revoked_at,
                revocation_reason=None,
            )
            .responder_id(OCSPResponderEncoding.HASH, self.intermediate.cert)
        )
        return builder.sign(self.intermediate.key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )


def self_signed(
    directory: Path | str,
    name: str,
    sans: Sequence[str],
    *,
    days: int = 90,
    key_type: KeyType = "ec",
) -> LeafFiles:
    """A leaf signed by its own key; its ca_bundle is itself (what a pinned client would trust)."""
    directory = Path(directory)
    key = new_key(key_type)
    now = utcnow()
    cert = leaf_cert(sans[0], sans, key, None, now - BACKDATE, now + days * DAY)
    files = write_leaf(directory, name, Credential(key, cert), [], directory / name / "cert.pem")
    return files
