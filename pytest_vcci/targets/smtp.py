"""The outgoing mail server ([smtp], 9.1.3): EHLO and STARTTLS only; nothing is ever sent.

Read-only by construction: the session says EHLO, asks for STARTTLS, says EHLO again and QUITs;
no MAIL, RCPT or DATA command exists here. Bounded in time: ``connect_timeout`` covers the TCP
connection and the server's greeting, ``read_timeout`` every later answer. A server that cannot
be reached, or stops answering, is marked down for the run under ``smtp``; a protocol or
certificate problem after it answered is a finding, returned to the check.

smtplib and ssl are standard library; nothing heavy is imported.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_vcci.targets.base import TargetUnreachable, one_line

if TYPE_CHECKING:
    from pytest_vcci.settings import SmtpTable
    from pytest_vcci.targets.base import TargetGate

TARGET = "smtp"


@dataclass
class StartTlsSession:
    """What one EHLO / STARTTLS / EHLO exchange showed; ``error`` ends it early."""

    ehlo: int | None = None
    starttls_offered: bool | None = None
    starttls: int | None = None
    tls_version: str | None = None
    certificate_cn: str | None = None
    ehlo_over_tls: int | None = None
    error: str | None = None


class MailServer:
    """One SMTP server from an [smtp] table."""

    def __init__(
        self, table: SmtpTable, gate: TargetGate | None = None, *, ca_bundle: str | None = None
    ) -> None:
        self.table = table
        self.gate = gate
        self.ca_bundle = ca_bundle

    def describe(self) -> str:
        return f"{TARGET} {self.table.host}:{self.table.port}"

    def starttls_session(self) -> StartTlsSession:
        """EHLO, then (if [smtp].starttls) STARTTLS verifying the certificate, then EHLO."""
        if self.gate is not None:
            self.gate.check(TARGET)
        session = StartTlsSession()
        try:
            self._converse(session)
        except (smtplib.SMTPException, ssl.SSLError) as exc:
            # smtplib reports a read that timed out as a disconnection: a silent server is down.
            if not (isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc)):
                # The server answered: what went wrong is the finding (refused, bad certificate).
                session.error = one_line(exc)
                return session
            self._down(exc)
        except OSError as exc:  # refused, reset, or silent past its timeout: the server is down
            self._down(exc)
        return session

    def _down(self, exc: BaseException) -> None:
        cause = one_line(exc)
        if self.gate is not None:
            self.gate.mark_down(TARGET, cause)
        raise TargetUnreachable(TARGET, cause) from None

    def _converse(self, session: StartTlsSession) -> None:
        table = self.table
        # smtplib applies its timeout to connecting and to reading the greeting.
        with smtplib.SMTP(table.host, table.port, timeout=table.connect_timeout) as smtp:
            sock: Any = smtp.sock
            sock.settimeout(table.read_timeout)
            session.ehlo, _ = smtp.ehlo()
            session.starttls_offered = smtp.has_extn("starttls")
            if not (table.starttls and session.starttls_offered):
                return
            session.starttls, _ = smtp.starttls(context=self._tls_context())
            sock = smtp.sock
            sock.settimeout(table.read_timeout)
            subject = dict(x[0] for x in sock.getpeercert()["subject"])
            session.tls_version = sock.version()
            session.certificate_cn = subject.get("commonName")
            session.ehlo_over_tls, _ = smtp.ehlo()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_bundle)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
