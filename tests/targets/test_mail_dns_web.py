"""The guarded clients for the SMTP server, DNS lookups and public web pages (9.1.3, 12.1.1,
6.1.1, 10.1.x), against the sandbox's real SMTP and DNS servers and loopback HTTP servers.

Each is bounded by its timeouts and fails fast for the rest of the run once its server is
found down; the proofs are outcomes and what reached the server, never wall-clock figures.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support_net import BlackHole

from pytest_vcci.sandbox.base import signal_tree
from pytest_vcci.sandbox.mail_dns import MailDnsComponent
from pytest_vcci.settings import HostTable, SmtpTable
from pytest_vcci.targets.base import TargetGate, TargetUnreachable
from pytest_vcci.targets.host import resolve_with, resolver_name, txt_records
from pytest_vcci.targets.smtp import MailServer
from pytest_vcci.targets.web import PublicWeb, site


@pytest.fixture(scope="module")
def mail_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailDnsComponent]:
    component = MailDnsComponent(workdir=tmp_path_factory.mktemp("mail-dns"))
    component.start()
    try:
        yield component
    finally:
        signal_tree(component.pids, signal.SIGCONT)  # never leave it frozen
        component.stop()


@contextmanager
def frozen(component: MailDnsComponent) -> Iterator[None]:
    """The mail and DNS server stopped (SIGSTOP): its sockets stay open, nothing answers."""
    signal_tree(component.pids, signal.SIGSTOP)
    try:
        yield
    finally:
        signal_tree(component.pids, signal.SIGCONT)


def gate(tmp_path: Path) -> TargetGate:
    return TargetGate(tmp_path / "targets")


def smtp_table(component: MailDnsComponent, **overrides: Any) -> SmtpTable:
    return SmtpTable.model_validate({**component.env_tables()["smtp"], **overrides})


def host_table(component: MailDnsComponent, **overrides: Any) -> HostTable:
    return HostTable.model_validate({**component.env_tables()["host"], **overrides})


# --- SMTP -----------------------------------------------------------------------------------


def test_starttls_session_upgrades_and_verifies_the_certificate(
    mail_dns: MailDnsComponent, tmp_path: Path
) -> None:
    server = MailServer(smtp_table(mail_dns), gate(tmp_path), ca_bundle=str(mail_dns.ca_bundle))
    session = server.starttls_session()
    assert (session.ehlo, session.starttls_offered, session.starttls) == (250, True, 220)
    assert session.tls_version in ("TLSv1.2", "TLSv1.3")
    assert session.ehlo_over_tls == 250
    assert session.error is None
    assert server.describe() == f"smtp 127.0.0.1:{mail_dns.smtp_port}"


def test_an_untrusted_certificate_is_a_finding_not_a_server_down(
    mail_dns: MailDnsComponent, tmp_path: Path
) -> None:
    checked = gate(tmp_path)
    session = MailServer(smtp_table(mail_dns), checked).starttls_session()  # system CAs only
    assert session.ehlo == 250
    assert "CERTIFICATE_VERIFY_FAILED" in str(session.error)
    checked.check("smtp")  # not marked down: the server answered


def test_a_frozen_mail_server_is_down_for_the_run(
    mail_dns: MailDnsComponent, tmp_path: Path
) -> None:
    table = smtp_table(mail_dns, connect_timeout=1, read_timeout=1)
    checked = gate(tmp_path)
    with frozen(mail_dns), pytest.raises(TargetUnreachable, match=r"smtp unreachable") as first:
        MailServer(table, checked).starttls_session()
    assert "timed out" in str(first.value)
    with BlackHole() as silent:  # anything that would connect again would show up here
        moved = table.model_copy(update={"port": silent.port})
        with pytest.raises(TargetUnreachable) as second:
            MailServer(moved, checked).starttls_session()
        assert silent.connections() == 0
    assert str(second.value) == str(first.value)


# --- DNS ------------------------------------------------------------------------------------


def test_txt_records_and_why_there_are_none(mail_dns: MailDnsComponent, tmp_path: Path) -> None:
    table = host_table(mail_dns)
    found = txt_records(table, "_dmarc.vcci.greenlang.io", gate(tmp_path))
    assert isinstance(found, list)
    assert len(found) == 1
    assert found[0].startswith("v=DMARC1; p=quarantine;")
    assert txt_records(table, "nope.vcci.greenlang.io") == "NXDOMAIN (no such name)"
    assert txt_records(table, "api.staging.vcci.greenlang.io") == "no TXT record"
    assert resolver_name(table) == f"127.0.0.1:{mail_dns.dns_port}"
    assert resolver_name(None) == "system resolver"


def test_a_frozen_resolver_is_down_for_the_run(mail_dns: MailDnsComponent, tmp_path: Path) -> None:
    table = host_table(mail_dns, dns_timeout=1)
    checked = gate(tmp_path)
    down = r"dns 127\.0\.0\.1:\d+ unreachable"
    with frozen(mail_dns), pytest.raises(TargetUnreachable, match=down) as first:
        txt_records(table, "_dmarc.vcci.greenlang.io", checked)
    with pytest.raises(TargetUnreachable) as second:
        resolve_with(table, "api.staging.vcci.greenlang.io", checked)
    assert str(second.value) == str(first.value)


def test_a_lookup_through_a_down_resolver_sends_no_query(tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    table = HostTable(resolver="127.0.0.1", resolver_port=silent.getsockname()[1], dns_timeout=0.5)
    checked = gate(tmp_path)
    try:
        with pytest.raises(TargetUnreachable):
            resolve_with(table, "api.vcci.greenlang.io", checked)
        with pytest.raises(TargetUnreachable):
            txt_records(table, "vcci.greenlang.io", checked)
        queries = []
        with suppress(BlockingIOError):
            while True:
                queries.append(silent.recv(512))
        assert len(queries) == 1  # the first lookup's one query; then the run knew
    finally:
        silent.close()


# --- public web pages -----------------------------------------------------------------------


class Site(BaseHTTPRequestHandler):
    """A public site: a discovery document and a page behind a redirect; records requests."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/.well-known/openid-configuration":
            body, kind, status = json.dumps({"issuer": "https://idp"}).encode(), "json", 200
        elif self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/guide.md")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        elif self.path == "/guide.md":
            body, kind, status = b"# Guide\n\nwords", "markdown", 200
        else:
            body, kind, status = b"{}", "json", 404
        self.send_response(status)
        self.send_header("Content-Type", f"application/{kind}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def public_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_public_pages_are_fetched_anonymously(
    public_site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"  # requests would send these for the host, were it not told
    netrc.write_text("machine 127.0.0.1 login vcci password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    Site.seen.clear()
    web = PublicWeb(gate(tmp_path), connect_timeout=1, read_timeout=2)
    page = web.get(f"{public_site}/.well-known/openid-configuration")
    assert (page.status, page.data) == (200, {"issuer": "https://idp"})
    assert web.get(f"{public_site}/old").status == 301  # redirects only when asked
    followed = web.get(f"{public_site}/old", follow_redirects=True)
    assert (followed.status, followed.text, followed.data) == (200, "# Guide\n\nwords", None)
    assert all(auth is None for _, auth in Site.seen)
    with pytest.raises(ValueError, match="not an http"):
        web.get("file:///etc/passwd")


def test_a_site_that_never_answers_is_down_for_the_run(tmp_path: Path) -> None:
    with BlackHole() as server:
        url = f"http://127.0.0.1:{server.port}/.well-known/openid-configuration?x=secret"
        web = PublicWeb(gate(tmp_path), connect_timeout=0.5, read_timeout=0.5)
        with pytest.raises(
            TargetUnreachable, match=r"web http://127\.0\.0\.1:\d+ unreach"
        ) as first:
            web.get(url)
        with pytest.raises(TargetUnreachable) as second:
            web.get(url.replace("openid-configuration", "jwks.json"))
        assert server.connections() == 1  # the second page was never asked for
    assert str(second.value) == str(first.value)
    assert "secret" not in str(first.value)
    assert site(url) == f"http://127.0.0.1:{server.port}"
