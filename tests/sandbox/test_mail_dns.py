"""The sandbox's SMTP (STARTTLS) and authoritative DNS servers, spoken to as real clients do."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from pytest_vcci.sandbox.base import SandboxError
from pytest_vcci.sandbox.mail_dns import MailDnsComponent, Zone


@pytest.fixture(scope="module")
def mail_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailDnsComponent]:
    component = MailDnsComponent(workdir=tmp_path_factory.mktemp("mail-dns"))
    component.start()
    yield component
    component.stop()


def resolver(component: MailDnsComponent) -> dns.resolver.Resolver:
    found = dns.resolver.Resolver(configure=False)
    found.nameservers = ["127.0.0.1"]
    found.port = component.dns_port
    found.lifetime = 3
    return found


def txt(component: MailDnsComponent, name: str) -> list[str]:
    answer = resolver(component).resolve(name, "TXT")
    return [b"".join(r.strings).decode() for r in answer]


def test_email_authentication_records(mail_dns: MailDnsComponent) -> None:
    apex = txt(mail_dns, "vcci.greenlang.io")
    assert "v=spf1 ip4:127.0.0.1 include:amazonses.com -all" in apex
    assert len(apex) == 2  # SPF next to another verification record, as in real zones
    (dkim,) = txt(mail_dns, "vcci2026._domainkey.vcci.greenlang.io")
    assert dkim.startswith("v=DKIM1; k=rsa; p=MII")
    (dmarc,) = txt(mail_dns, "_dmarc.vcci.greenlang.io")
    assert dmarc.startswith("v=DMARC1; p=quarantine;")


def test_production_domain_points_at_the_load_balancer(mail_dns: MailDnsComponent) -> None:
    answer = resolver(mail_dns).resolve("api.staging.vcci.greenlang.io", "A")
    assert [r.to_text() for r in answer] == ["127.0.0.1"]
    mx = resolver(mail_dns).resolve("vcci.greenlang.io", "MX")
    assert [r.to_text() for r in mx] == ["10 smtp.vcci.greenlang.io."]


def test_authoritative_answers_refusals_and_truncation(mail_dns: MailDnsComponent) -> None:
    port = mail_dns.dns_port
    missing = dns.query.udp(
        dns.message.make_query("nope.vcci.greenlang.io", "A"), "127.0.0.1", port=port, timeout=2
    )
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.flags & dns.flags.AA
    assert missing.authority  # the SOA, for negative caching
    other = dns.query.udp(
        dns.message.make_query("example.com", "A"), "127.0.0.1", port=port, timeout=2
    )
    assert other.rcode() == dns.rcode.REFUSED
    query = dns.message.make_query("vcci2026._domainkey.vcci.greenlang.io", "TXT")
    assert dns.query.tcp(query, "127.0.0.1", port=port, timeout=2).answer


def test_answer_too_large_for_udp_is_truncated() -> None:
    big = " ".join(f'"{"k" * 250}"' for _ in range(8))  # 2 kB of TXT
    zone = Zone(
        "example.test",
        [("example.test", "SOA", "ns. host. 1 2 3 4 5"), ("big.example.test", "TXT", big)],
    )
    wire = dns.message.make_query("big.example.test", "TXT").to_wire()
    over_udp = dns.message.from_wire(zone.answer(wire, max_size=65535))
    assert over_udp.flags & dns.flags.TC
    assert not over_udp.answer
    over_tcp = dns.message.from_wire(zone.answer(wire, max_size=None))
    assert len(b"".join(over_tcp.answer[0][0].strings)) == 2000


def test_smtp_requires_starttls_with_a_verified_certificate(mail_dns: MailDnsComponent) -> None:
    context = ssl.create_default_context(cafile=str(mail_dns.ca_bundle))
    with smtplib.SMTP("127.0.0.1", mail_dns.smtp_port, timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, _ = smtp.mail("qa@vcci.greenlang.io")
        assert code == 530  # "Must issue a STARTTLS command first"
        assert smtp.starttls(context=context)[0] == 220
        smtp.ehlo()
        assert smtp.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]


def test_environment_tables(mail_dns: MailDnsComponent) -> None:
    tables = mail_dns.env_tables()
    assert tables["smtp"]["port"] == mail_dns.smtp_port
    assert tables["smtp"]["sending_domain"] == "vcci.greenlang.io"
    assert Path(tables["smtp"]["ca_bundle"]).is_file()
    assert tables["host"] == {"resolver": "127.0.0.1", "resolver_port": mail_dns.dns_port}
    assert mail_dns.expect()["dns"]["production_domain"] == "api.staging.vcci.greenlang.io"


def test_records_left_out(tmp_path: Path) -> None:
    component = MailDnsComponent(workdir=tmp_path, missing=frozenset({"dmarc", "a"}))
    component.start()
    try:
        with pytest.raises(dns.resolver.NXDOMAIN):
            txt(component, "_dmarc.vcci.greenlang.io")
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver(component).resolve("api.staging.vcci.greenlang.io", "A")
        assert txt(component, "vcci2026._domainkey.vcci.greenlang.io")
    finally:
        component.stop()
    with pytest.raises(SandboxError, match="unknown record to leave out 'mx'"):
        MailDnsComponent(workdir=tmp_path, missing=frozenset({"mx"}))
