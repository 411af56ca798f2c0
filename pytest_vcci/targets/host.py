"""The ``host`` target: a pytest-testinfra host, plus reachability and DNS helpers (12.1.1).

DNS lookups are bounded by ``[host].dns_timeout`` (the whole resolution, not per query). Given
the run's gate, a resolver that does not answer in time is marked down for the run under
``dns <resolver>:<port>``: later lookups through it fail at once with the same root cause.

testinfra and dnspython are imported inside functions: this module is registered as a plugin.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vcci.targets.base import TargetUnreachable, one_line

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import HostTable
    from pytest_vcci.targets.base import TargetGate


def reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to host:port is accepted within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve(
    name: str,
    *,
    nameserver: str | None = None,
    port: int = 53,
    timeout: float = 5.0,
    record_types: Sequence[str] = ("A", "AAAA"),
    gate: TargetGate | None = None,
) -> list[str]:
    """The addresses ``name`` resolves to ([] if it does not exist or has none).

    ``nameserver`` asks that server directly (e.g. the authoritative one, to see a cutover
    before caches expire); None uses the system's resolver configuration. A resolver that
    does not answer within ``timeout`` raises dns.exception.Timeout, or, with a ``gate``,
    TargetUnreachable (and is down for the rest of the run).
    """
    import dns.resolver

    resolver = _resolver(nameserver, port, timeout)
    addresses: list[str] = []
    for record_type in record_types:
        try:
            answer = _ask(resolver, name, record_type, gate)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        addresses.extend(record.to_text() for record in answer)
    return addresses


def resolve_with(table: HostTable, name: str, gate: TargetGate | None = None) -> list[str]:
    """resolve() with the resolver, port and timeout of a [host] table."""
    return resolve(
        name,
        nameserver=table.resolver,
        port=table.resolver_port,
        timeout=table.dns_timeout,
        gate=gate,
    )


def txt_records(
    table: HostTable | None, name: str, gate: TargetGate | None = None
) -> list[str] | str:
    """The TXT strings at ``name`` (each record's strings joined), or why there are none
    (``NXDOMAIN (no such name)``, ``no TXT record``, ``lookup failed: ...``). A timeout is
    TargetUnreachable given a ``gate`` (dns.exception.Timeout without)."""
    import dns.exception
    import dns.resolver

    resolver = _resolver(
        table.resolver if table else None,
        table.resolver_port if table else 53,
        table.dns_timeout if table else 5.0,
    )
    try:
        answer = _ask(resolver, name, "TXT", gate)
    except dns.resolver.NXDOMAIN:
        return "NXDOMAIN (no such name)"
    except dns.resolver.NoAnswer:
        return "no TXT record"
    except dns.exception.Timeout:
        raise
    except dns.exception.DNSException as exc:
        return f"lookup failed: {one_line(exc)}"
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def resolver_name(table: HostTable | None) -> str:
    """How a [host] table resolves: ``address:port``, or the system resolver."""
    if table is not None and table.resolver:
        return f"{table.resolver}:{table.resolver_port}"
    return "system resolver"


def _resolver(nameserver: str | None, port: int, timeout: float) -> Any:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]
        resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _ask(resolver: Any, name: str, record_type: str, gate: TargetGate | None) -> Any:
    """One bounded lookup; a resolver that times out is down for the run (given a gate)."""
    import dns.exception

    if gate is None:
        return resolver.resolve(name, record_type, search=False)
    target = "dns " + (
        f"{resolver.nameservers[0]}:{resolver.port}"
        if len(resolver.nameservers) == 1
        else "system resolver"
    )
    gate.check(target)
    try:
        return resolver.resolve(name, record_type, search=False)
    except dns.exception.Timeout as exc:
        cause = one_line(exc)
        gate.mark_down(target, cause)
        raise TargetUnreachable(target, cause) from None


def infra_host(table: HostTable) -> Any:
    """A testinfra Host for the table's backend (``local://``, ``ssh://user@host``, ...)."""
    import testinfra

    return testinfra.get_host(table.backend)


@pytest.fixture(scope="session")
def host(vcci_context: RunContext) -> Any:
    """The environment's host through pytest-testinfra (skips if [host] is absent)."""
    table: HostTable = vcci_context.target_table("host")
    return infra_host(table)
