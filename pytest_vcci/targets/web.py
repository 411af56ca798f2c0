"""Public web pages a check reads outside the configured API: an external identity provider's
OIDC discovery document (6.1.1), a documentation site (10.1.x).

Anonymous and read-only by construction: GET only, no credentials ever sent (not even from
.netrc), redirects followed only when asked (at most 5). Every request has a (connect, read) timeout, and a site that cannot
be reached is marked down for the run under ``web <scheme://host:port>``, so later checks of the
same site fail at once with the same root cause.

``requests`` is imported on first use: suites import this module at collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

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

        with requests.Session() as session:
            response = self._one(session, url)
            # Redirects are followed here, one request at a time, so none of them can pick up
            # credentials (requests re-reads .netrc for every redirect it follows itself).
            for _ in range(MAX_REDIRECTS if follow_redirects else 0):
                if not response.is_redirect:
                    break
                response = self._one(session, urljoin(response.url, response.headers["Location"]))
        try:
            data = response.json()
        except ValueError:
            data = None
        return Page(response.url, response.status_code, response.text, data)

    def _one(self, session: Any, url: str) -> Any:
        import requests

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {site(url) if parts.hostname else url[:80]}")
        target = f"web {site(url)}"
        if self.gate is not None:
            self.gate.check(target)
        try:
            return session.get(
                url,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
                headers={"User-Agent": "pytest-vcci", "Accept": "application/json, */*"},
                # An explicit (empty) auth: requests would otherwise send .netrc credentials.
                # The environment's proxy and CA bundle still apply: these sites are public.
                auth=_anonymous,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            cause = one_line(exc).replace(url, site(url))
            if self.gate is not None:
                self.gate.mark_down(target, cause)
            raise TargetUnreachable(target, cause) from None


def _anonymous(request: Any) -> Any:
    """A requests auth hook that adds nothing."""
    return request
