"""Central redaction: one place decides what never leaves the process.

Known secrets (every secret value the settings hold) are replaced verbatim; common secret
shapes (bearer tokens, JWTs, AWS secret keys, private keys, URL passwords, password=...) are
replaced by pattern, so a secret that did not come from the settings is caught too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
            re.S,
        ),
        MASK,
    ),
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1 {MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # scheme://user:password@host — keep the user and host, drop the password. The scheme is
    # bounded: unbounded, every letter of a long word or hex dump rescans it (quadratic).
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^:/?#@\s]*:)([^@/\s]+)(@)"), rf"\1{MASK}\3"),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|secret_access_key|aws_secret_access_key|api[_-]?key"
            r"|access[_-]?token|auth[_-]?token|client[_-]?secret|requirepass)"
            r"(\s*[=:]\s*|\"\s*:\s*\"|'\s*:\s*')(?!\[REDACTED\])([^\s'\",;&}]+)"
        ),
        rf"\1\2{MASK}",
    ),
    # AWS secret access keys: 40 chars of base64 with mixed case and a digit (not a hex SHA)
    (
        re.compile(
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])"
            r"(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        MASK,
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)


class Redactor:
    """Replaces known secrets and secret shapes in text and in JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        self._secrets = sorted(
            {*self._secrets, *(s for s in secrets if s and len(s) >= 4)}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data (keys included)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
