"""Central redaction: one place decides what never leaves the process.

Known secrets (every secret value the settings hold) are replaced in every form an output can
carry them: raw; escaped as a Python or JSON string literal (``repr``, ``ascii``, bytes,
``json.dumps``); escaped for HTML or XML; URL-encoded; base64 (alone, inside a longer base64
text, and as HTTP Basic credentials ``user:secret``); and one renderer's escaping on top of
another's (a repr in a JSON file, pytest-html's escaped log in a JSON blob in an HTML attribute).
The forms are computed once per secret and matched by one compiled regular expression, a trie of
all forms, so a text is scanned once whatever the number of secrets.

Common secret shapes (bearer tokens, JWTs, AWS keys and session tokens, private keys, URL
passwords, password=...) are replaced by pattern, so a secret that did not come from the
settings is caught too.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import html
import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
#: Shorter values are not redacted: masking every "abc" would destroy the text around them.
MIN_SECRET = 4
#: The shortest run of base64 taken to be a secret inside a longer base64 text.
MIN_BASE64_RUN = 8
#: Where pytest shortens a long repr (saferepr keeps its head and tail).
_CUT = "..."


class _Shape(NamedTuple):
    """A secret shape. It is searched only in text at least ``min_length`` long whose case-folded
    form contains one of its ``needles`` (if any): most text holds none, and looking for them
    costs a fraction of the search (several shapes are case-insensitive, which the regular
    expression engine cannot skip through fast)."""

    pattern: re.Pattern[str]
    replacement: str
    needles: tuple[str, ...] = ()
    min_length: int = 0


_SHAPES: tuple[_Shape, ...] = (
    _Shape(
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
            re.S,
        ),
        MASK,
        ("-----begin ",),
    ),
    _Shape(
        re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
        rf"\1 {MASK}",
        ("bearer", "token"),
    ),
    _Shape(
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK, ("eyj",)
    ),
    # scheme://user:password@host — keep the user and host, drop the password. The scheme is
    # bounded: unbounded, every letter of a long word or hex dump rescans it (quadratic).
    _Shape(
        re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^:/?#@\s]*:)([^@/\s]+)(@)"),
        rf"\1{MASK}\3",
        ("://",),
    ),
    _Shape(
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|secret_access_key|aws_secret_access_key|api[_-]?key"
            r"|access[_-]?token|auth[_-]?token|session[_-]?token|client[_-]?secret|requirepass)"
            r"(\s*[=:]\s*|\"\s*:\s*\"|'\s*:\s*')(?!\[REDACTED\])([^\s'\",;&}]+)"
        ),
        rf"\1\2{MASK}",
        ("pass", "pwd", "secret", "api", "token"),
    ),
    # An AWS session token as botocore's DEBUG log shows it: in the canonical request
    # ("x-amz-security-token:..."), the request headers ({'X-Amz-Security-Token': b'...'}) and
    # presigned URLs (X-Amz-Security-Token=...). It may come from a profile, unknown to us.
    _Shape(
        re.compile(
            r"(?i)(x-amz-security-token(?:'\s*:\s*b?'|\"\s*:\s*b?\"|\s*[:=]\s*))([^\s'\"&]+)"
        ),
        rf"\1{MASK}",
        ("x-amz-security-token",),
    ),
    # AWS secret access keys: 40 chars of base64 with mixed case and a digit (not a hex SHA)
    _Shape(
        re.compile(
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])"
            r"(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        MASK,
        min_length=40,
    ),
    _Shape(re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK, ("akia", "asia")),
)

_ANY_NEEDLE = re.compile("|".join(re.escape(n) for shape in _SHAPES for n in shape.needles))


# --- the forms of a secret ----------------------------------------------------------------


def _literal_body(literal: str, prefix: int, suffix: int) -> str:
    return literal[prefix : len(literal) - suffix]


def _string_escapes(text: str) -> set[str]:
    """``text`` as the inside of a quoted string literal: what repr(), ascii(), a bytes repr and
    json.dumps print. The second repr of each is the form quoted with ``'`` (``\\'`` escaped),
    which repr() picks when the text holds both kinds of quote."""
    both = "'\""
    raw = text.encode("utf-8", "surrogatepass")
    return {
        _literal_body(repr(text), 1, 1),
        _literal_body(repr(text + both), 1, 4),
        _literal_body(ascii(text), 1, 1),
        _literal_body(ascii(text + both), 1, 4),
        _literal_body(repr(raw), 2, 1),
        _literal_body(repr(raw + both.encode()), 2, 4),
        _literal_body(json.dumps(text), 1, 1),
        _literal_body(json.dumps(text, ensure_ascii=False), 1, 1),
    }


def _markupsafe(text: str) -> str:
    """What Jinja2's autoescape (markupsafe) makes of a text."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def _markup_escapes(text: str) -> set[str]:
    """``text`` in HTML or XML: html.escape (with and without quotes), markupsafe, and XML with
    non-ASCII as numeric character references."""
    quoted = html.escape(text)
    return {
        quoted,
        html.escape(text, quote=False),
        _markupsafe(text),
        quoted.encode("ascii", "xmlcharrefreplace").decode("ascii"),
    }


_HEX = re.compile(r"%[0-9A-F]{2}")
# What URL encoders leave alone besides letters, digits and "-._~": nothing (quote(safe="")),
# the path separator (quote()'s default), and RFC 3986's userinfo characters.
_URL_SAFE = ("", "/", "!$&'()*+,;=:", "!$&'()*+,;=:@/")


def _url_encodings(text: str) -> set[str]:
    """``text`` percent-encoded (UTF-8), with ``+`` for spaces or not, hex upper or lower."""
    encoded = {quote(text, safe=safe) for safe in _URL_SAFE}
    encoded |= {quote_plus(text, safe=safe) for safe in _URL_SAFE}
    return encoded | {_HEX.sub(lambda m: m.group(0).lower(), e) for e in encoded}


def _encodings(text: str) -> list[bytes]:
    """``text`` as UTF-8, and as latin-1 where it can be (requests' HTTP Basic credentials)."""
    found = [text.encode("utf-8", "surrogatepass")]
    with contextlib.suppress(UnicodeEncodeError):
        found.append(text.encode("latin-1"))
    return found


def _base64_forms(data: bytes) -> set[str]:
    """``data`` base64-encoded, standard and URL-safe, with and without padding."""
    standard = base64.b64encode(data).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(data).decode("ascii")
    return {standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")}


def _base64_runs(data: bytes) -> set[str]:
    """The base64 characters that encode ``data`` wherever it sits in a longer base64 text:
    one run per alignment (0, 1 or 2 bytes before it in its group of three)."""
    runs: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        # Only the characters whose 6 bits all come from ``data``.
        start, end = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
        run = encoded[start:end]
        if len(run) >= MIN_BASE64_RUN:
            runs.update({run, run.replace("+", "-").replace("/", "_")})
    return runs


def _pytest_html(text: str) -> str:
    """How pytest-html embeds a log line: html.escape, then in a JSON blob, then autoescaped
    into an HTML attribute."""
    return _markupsafe(_literal_body(json.dumps(html.escape(text)), 1, 1))


def secret_forms(secret: str, users: Iterable[str] = ()) -> set[str]:
    """Every form of ``secret`` an output may carry (see the module's docstring).

    ``users``: the user names the settings hold, for ``base64(user:secret)`` (HTTP Basic).
    """
    encoded = _url_encodings(secret)
    literal = {secret} | _string_escapes(secret) | _markup_escapes(secret) | encoded
    # A URL-encoded URL (a DSN in a query string): encoded twice.
    forms = literal | {twice for once in encoded for twice in _url_encodings(once)}
    for form in literal:
        # One renderer's escaping on top of another's: a repr of a repr (-l showing a message),
        # a repr in a JSON file, any of them in an HTML or XML page.
        forms |= _string_escapes(form) | _markup_escapes(form)
        forms.add(_pytest_html(form))
    for raw in _encodings(secret):
        forms |= _base64_forms(raw) | _base64_runs(raw)
    for user in {"", *users}:
        for raw in _encodings(f"{user}:{secret}"):
            forms |= _base64_forms(raw)
    return {form for form in forms if len(form) >= MIN_SECRET}


# --- one pattern for all forms ------------------------------------------------------------


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, the longest where several start at the
    same place. As a trie, each branch starts with its own character, so the engine decides at
    each step with one comparison instead of trying every word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node_pattern(root)


def _node_pattern(node: dict[str, Any]) -> str:
    parts: list[str] = []
    for char in sorted(k for k in node if k):
        child, run = node[char], [char]
        while len(child) == 1 and "" not in child:  # a chain without choices: one literal
            ((char, child),) = child.items()
            run.append(char)
        parts.append(re.escape("".join(run)) + _node_pattern(child))
    if not parts:
        return ""
    pattern = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    if "" in node:  # a word may end here: greedy, so the longer words are tried first
        pattern = f"{pattern}?" if len(parts) > 1 else f"(?:{pattern})?"
    return pattern


def _starts_one_of(ordered: list[str], fragment: str) -> bool:
    """Whether ``fragment`` begins one of the sorted strings ``ordered``."""
    i = bisect.bisect_left(ordered, fragment)
    return i < len(ordered) and ordered[i].startswith(fragment)


class Redactor:
    """Replaces known secrets (in all their forms) and secret shapes in text and JSON-like data."""

    def __init__(self, secrets: Iterable[str] = (), users: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._users = {u for u in users if u}
        self._forms: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._cut: tuple[list[str], list[str], int] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Redact these values too (in every form) from now on."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET} - self._secrets
        if not new:
            return
        self._secrets |= new
        for secret in new:
            self._forms |= secret_forms(secret, self._users)
        self._known = re.compile(_trie_pattern(self._forms))
        self._cut = None

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        if len(text) < MIN_SECRET:  # nothing that short is masked
            return text
        if self._known is not None:
            text = self._known.sub(MASK, text)
            if _CUT in text:
                text = self._mask_cut_forms(text)
        folded = text.casefold()
        # Most text holds no needle at all: one search rules out every shape that has one.
        needles = _ANY_NEEDLE.search(folded) is not None
        for shape in _SHAPES:
            if len(text) < shape.min_length:
                continue
            if shape.needles and not (needles and any(n in folded for n in shape.needles)):
                continue
            text = shape.pattern.sub(shape.replacement, text)
        return text

    def _mask_cut_forms(self, text: str) -> str:
        """pytest shortens a long repr in its middle (``-l``, assertion explanations):
        ``abc...xyz``. A secret cut there is masked by the part that is left on each side."""
        if self._cut is None:  # the forms, and the forms reversed, sorted for bisect
            forms = sorted(self._forms)
            self._cut = forms, sorted(f[::-1] for f in forms), max(map(len, forms))
        forms, reversed_forms, longest = self._cut
        pieces: list[str] = []
        done = 0
        for cut in re.finditer(re.escape(_CUT), text):
            start, end = cut.start(), cut.end()
            for n in range(min(longest, start - done), MIN_SECRET - 1, -1):
                if _starts_one_of(forms, text[start - n : start]):
                    pieces.append(text[done : start - n] + MASK)
                    done = start
                    break
            pieces.append(text[done:end])
            done = end
            for n in range(min(longest, len(text) - end), MIN_SECRET - 1, -1):
                if _starts_one_of(reversed_forms, text[end : end + n][::-1]):
                    pieces.append(MASK)
                    done = end + n
                    break
        return "".join(pieces) + text[done:]

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data (keys included)."""
        return self._data(value, {})

    def _data(self, value: Any, keys: dict[str, str]) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            # The same few keys recur in every test and observation: each is redacted once.
            clean = {}
            for key, item in value.items():
                text = str(key)
                if text not in keys:
                    keys[text] = self(text)
                clean[keys[text]] = self._data(item, keys)
            return clean
        if isinstance(value, (list, tuple)):
            return [self._data(v, keys) for v in value]
        return value
