"""Mail and DNS for the sandbox: an SMTP server with STARTTLS and a small authoritative DNS server.

Both are real protocol servers on 127.0.0.1, run as one child process
(``python -m pytest_vcci.sandbox.mail_dns --config FILE``):

- SMTP (aiosmtpd) on a free port, STARTTLS required before MAIL, with a certificate from the
  sandbox's own PKI (``pki.LocalCA``); accepted messages go to ``<workdir>/mail/`` (nothing
  is relayed anywhere).
- DNS (dnspython's wire format over UDP and TCP) on a free port, authoritative for the
  staging zone: SOA, NS, MX, the production domain's A record (the load balancer's address,
  12.1.1), and the sending domain's SPF, DKIM (``<selector>._domainkey``, a real RSA public
  key) and DMARC (``_dmarc``) TXT records (9.1.3). Names outside the zone are REFUSED; an
  answer too large for UDP is truncated so the client retries over TCP, as real servers do.

``missing`` leaves records out (``{"dmarc"}``, ``{"spf"}``, ``{"dkim"}``, ``{"a"}``) and
``starttls=False`` serves plain SMTP: the broken variants the suites must catch.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import signal
import smtplib
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component, SandboxError, free_port, wait_until

ZONE = "vcci.greenlang.io"
SENDING_DOMAIN = ZONE
DKIM_SELECTOR = "vcci2026"
PRODUCTION_DOMAIN = "api.staging.vcci.greenlang.io"  # the environment's public name
MAIL_HOST = f"smtp.{ZONE}"
TTL = 300
BREAKABLE = ("spf", "dkim", "dmarc", "a")


@dataclass
class MailDnsComponent(Component):
    """SMTP (STARTTLS) and authoritative DNS on 127.0.0.1, contributing [smtp] and [host]."""

    name: str = "mail_dns"
    zone: str = ZONE
    sending_domain: str = SENDING_DOMAIN
    dkim_selector: str = DKIM_SELECTOR
    production_domain: str = PRODUCTION_DOMAIN
    load_balancer: str = "127.0.0.1"  # where the sandbox's API answers
    starttls: bool = True
    missing: frozenset[str] = frozenset()
    # Filled by start().
    smtp_port: int = 0
    dns_port: int = 0
    records: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.missing) - set(BREAKABLE))
        if unknown:
            raise SandboxError(
                f"unknown record to leave out {unknown[0]!r} (known: {', '.join(BREAKABLE)})"
            )

    @property
    def ca_bundle(self) -> Path:
        return self.workdir / "pki" / "ca" / "ca-bundle.pem"

    @property
    def mail_dir(self) -> Path:
        return self.workdir / "mail"

    def start(self) -> None:
        from pytest_vcci.sandbox.pki import LocalCA

        self.smtp_port = self.smtp_port or free_port()
        self.dns_port = self.dns_port or _free_udp_tcp_port()
        ca = LocalCA.create(self.workdir / "pki")
        leaf = ca.issue("smtp", [MAIL_HOST, "localhost", "127.0.0.1"], days=120)
        self.records = zone_records(
            self.zone,
            self.sending_domain,
            self.dkim_selector,
            self.production_domain,
            self.load_balancer,
            _dkim_public_key(),
            frozenset(self.missing),
        )
        config = {
            "zone": self.zone,
            "records": self.records,
            "dns_port": self.dns_port,
            "smtp_port": self.smtp_port,
            "smtp_hostname": MAIL_HOST,
            "cert": str(leaf.fullchain),
            "key": str(leaf.key),
            "starttls": self.starttls,
            "mail_dir": str(self.mail_dir),
        }
        path = self.workdir / "mail_dns.json"
        path.write_text(json.dumps(config, indent=2))
        proc = self.spawn(
            [sys.executable, "-m", "pytest_vcci.sandbox.mail_dns", "--config", str(path)],
            "mail_dns.log",
        )
        wait_until(
            self._ready,
            "SMTP and DNS servers",
            timeout=20,
            proc=proc,
            log=self.log_path("mail_dns.log"),
        )

    def _ready(self) -> bool:
        import dns.message
        import dns.query

        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=2) as smtp:
            smtp.noop()
        query = dns.message.make_query(self.zone, "SOA")
        dns.query.udp(query, "127.0.0.1", port=self.dns_port, timeout=1)
        return True

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {
            "smtp": {
                "host": "127.0.0.1",
                "port": self.smtp_port,
                "starttls": True,
                "sending_domain": self.sending_domain,
                "dkim_selector": self.dkim_selector,
                "ca_bundle": str(self.ca_bundle),
            },
            "host": {"resolver": "127.0.0.1", "resolver_port": self.dns_port},
        }

    def expect(self) -> dict[str, Any]:
        """Names the suites look for, for the environment file's [expect] table."""
        return {
            "dns": {
                "zone": self.zone,
                # 12.1.1: the production domain resolves to the load balancer.
                "production_domain": self.production_domain,
                "load_balancer_addresses": [self.load_balancer],
                "mail_exchanger": MAIL_HOST,
            }
        }


def _free_udp_tcp_port() -> int:
    """A port free for both TCP (what free_port() checks) and UDP."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SandboxError("no port free for both TCP and UDP on 127.0.0.1")


def _dkim_public_key() -> str:
    """A fresh 2048-bit RSA key's public half, base64 DER, as a DKIM record's p= tag holds it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _txt(text: str) -> str:
    """A TXT rdata in zone-file syntax: quoted strings of at most 255 characters each."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


def zone_records(
    zone: str,
    domain: str,
    selector: str,
    production: str,
    balancer: str,
    dkim_key: str,
    missing: frozenset[str] = frozenset(),
) -> list[tuple[str, str, str]]:
    """(owner, type, rdata) of the zone, in zone-file syntax."""
    records = [
        (zone, "SOA", f"ns1.{zone}. hostmaster.{zone}. 2026112201 3600 600 1209600 300"),
        (zone, "NS", f"ns1.{zone}."),
        (f"ns1.{zone}", "A", "127.0.0.1"),
        (zone, "MX", f"10 {MAIL_HOST}."),
        (MAIL_HOST, "A", "127.0.0.1"),
    ]
    if "a" not in missing:
        records.append((production, "A", balancer))
    if "spf" not in missing:
        records.append((domain, "TXT", _txt("v=spf1 ip4:127.0.0.1 include:amazonses.com -all")))
    if "dkim" not in missing:
        records.append(
            (f"{selector}._domainkey.{domain}", "TXT", _txt(f"v=DKIM1; k=rsa; p={dkim_key}"))
        )
    if "dmarc" not in missing:
        records.append(
            (
                f"_dmarc.{domain}",
                "TXT",
                _txt(
                    f"v=DMARC1; p=quarantine; pct=100; rua=mailto:dmarc-reports@{domain}; "
                    "adkim=s; aspf=s"
                ),
            )
        )
    # Another verification record at the apex, as real zones have: SPF must be told apart.
    records.append((domain, "TXT", _txt("google-site-verification=vcci-sandbox-4f2c9e1")))
    return records


# --- the server process -------------------------------------------------------------------


class Zone:
    """Answers for one zone from (owner, type, rdata) records (dnspython's wire format)."""

    def __init__(self, origin: str, records: Sequence[Sequence[str]]) -> None:
        import dns.name
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        self.origin = dns.name.from_text(origin)
        self.rrsets: dict[tuple[Any, Any], Any] = {}
        for owner, rdtype, rdata in records:
            name = dns.name.from_text(owner)
            key = (name, dns.rdatatype.from_text(rdtype))
            if key in self.rrsets:
                self.rrsets[key].add(dns.rrset.from_text(name, TTL, "IN", rdtype, rdata)[0])
            else:
                self.rrsets[key] = dns.rrset.from_text(name, TTL, dns.rdataclass.IN, rdtype, rdata)
        self.names = {name for name, _ in self.rrsets}

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype

        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name
        if not name.is_subdomain(self.origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        response.flags |= dns.flags.AA
        found = self.rrsets.get((name, question.rdtype))
        if found is not None:
            response.answer.append(found)
        else:
            if name not in self.names:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self.rrsets[(self.origin, dns.rdatatype.SOA)])
        if max_size is None:
            return response.to_wire()
        limit = max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=min(limit, max_size))
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()


def serve_dns(zone: Zone, port: int) -> list[socketserver.BaseServer]:
    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = zone.answer(data, max_size=65535)
            if reply is not None:
                sock.sendto(reply, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        timeout = 10

        def handle(self) -> None:
            while True:
                header = self.rfile.read(2)
                if len(header) < 2:
                    return
                (length,) = struct.unpack("!H", header)
                reply = zone.answer(self.rfile.read(length), max_size=None)
                if reply is None:
                    return
                self.wfile.write(struct.pack("!H", len(reply)) + reply)

    class ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
        daemon_threads = True

    class ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    servers: list[socketserver.BaseServer] = [
        ThreadingUdp(("127.0.0.1", port), Udp),
        ThreadingTcp(("127.0.0.1", port), Tcp),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


class MailSink:
    """aiosmtpd handler: keep each accepted message as a file; relay nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}.eml"
        (self.directory / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def serve_smtp(config: dict[str, Any]) -> Any:
    from aiosmtpd.controller import Controller

    kwargs: dict[str, Any] = {}
    if config["starttls"]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(config["cert"], config["key"])
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(
        MailSink(Path(config["mail_dir"])),
        hostname="127.0.0.1",
        port=config["smtp_port"],
        server_hostname=config["smtp_hostname"],
        ident="vcci-sandbox ESMTP",
        **kwargs,
    )
    controller.start()
    return controller


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_vcci.sandbox.mail_dns")
    parser.add_argument("--config", required=True, help="JSON file written by MailDnsComponent")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    servers = serve_dns(Zone(config["zone"], config["records"]), config["dns_port"])
    controller = serve_smtp(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"DNS on 127.0.0.1:{config['dns_port']} (udp, tcp), SMTP on "
        f"127.0.0.1:{config['smtp_port']} (STARTTLS {config['starttls']})",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    controller.stop()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
