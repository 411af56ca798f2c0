"""Public web pages a check reads outside the configured API: an external identity provider's
OIDC discovery document (6.1.1), a documentation site (10.1.x).

Anonymous and read-only by construction: GET only, no credentials ever sent, redirects followed
only when asked (at most 5). Every request has a (connect, read) timeout, and a site that cannot
be reached is marked down for the run under ``web <scheme://host:port>``, so later checks of the
same site fail at once with the same root cause.

``requests`` is imported on first use: suites import this module at collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_vcci.targets.base import TargetUnreachable, one_line

if TYPE_CHECKING:
    from pytest_vcci.targets.base import TargetGate

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Page:
    """One answer: status, body text and its JSON (None when it is not JSON)."""

    url: str
    status: int
    text: str
    data: Any


def site(url: str) -> str:
    """scheme://host:port of a URL: the unit a site is marked down by (never a path or query)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname or ''}:{port}"


class PublicWeb:
    """GET-only, anonymous access to public pages, bounded in time, failing fast per site."""

    def __init__(
        self,
        gate: TargetGate | None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        verify: str | bool = True,
    ) -> None:
        self.gate = gate
        self.timeout = (connect_timeout, read_timeout)
        self.verify = verify

    def get(self, url: str, *, follow_redirects: bool = False) -> Page:
        import requests

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {site(url) if parts.hostname else url[:80]}")
        target = f"web {site(url)}"
        if self.gate is not None:
            self.gate.check(target)
        with requests.Session() as session:
            session.trust_env = False  # no proxy or .netrc credentials from the environment
            session.max_redirects = MAX_REDIRECTS
            try:
                response = session.get(
                    url,
                    timeout=self.timeout,
                    verify=self.verify,
                    allow_redirects=follow_redirects,
                    headers={"User-Agent": "pytest-vcci", "Accept": "application/json, */*"},
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                cause = one_line(exc).replace(url, site(url))
                if self.gate is not None:
                    self.gate.mark_down(target, cause)
                raise TargetUnreachable(target, cause) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        return Page(response.url, response.status_code, response.text, data)
