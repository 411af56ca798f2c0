"""The ``host`` target: a pytest-testinfra host, plus reachability and DNS helpers (12.1.1).

testinfra and dnspython are imported inside functions: this module is registered as a plugin.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import HostTable


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
) -> list[str]:
    """The addresses ``name`` resolves to ([] if it does not exist or has none).

    ``nameserver`` asks that server directly (e.g. the authoritative one, to see a cutover
    before caches expire); None uses the system's resolver configuration. A resolver that
    does not answer within ``timeout`` raises dns.exception.Timeout.
    """
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]
        resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    addresses: list[str] = []
    for record_type in record_types:
        try:
            answer = resolver.resolve(name, record_type, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        addresses.extend(record.to_text() for record in answer)
    return addresses


def resolve_with(table: HostTable, name: str) -> list[str]:
    """resolve() with the resolver, port and timeout of a [host] table."""
    return resolve(
        name, nameserver=table.resolver, port=table.resolver_port, timeout=table.dns_timeout
    )


def infra_host(table: HostTable) -> Any:
    """A testinfra Host for the table's backend (``local://``, ``ssh://user@host``, ...)."""
    import testinfra

    return testinfra.get_host(table.backend)


@pytest.fixture(scope="session")
def host(vcci_context: RunContext) -> Any:
    """The environment's host through pytest-testinfra (skips if [host] is absent)."""
    table: HostTable = vcci_context.target_table("host")
    return infra_host(table)
