"""No check opens its own connection: every suite reaches its targets through the guarded
clients in pytest_vcci/targets/ (read-only, timeouts, fail fast, redaction).

An AST scan of suites/ for imports of client and network libraries, at any depth (a function
body included). What a check may import from such a library is its exception classes; the
allowlist below names the few other uses and why each is safe.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SUITES = Path(__file__).resolve().parents[1] / "suites"

# Libraries that open connections (or run programs that could).
CLIENT_LIBRARIES = (
    "psycopg",
    "psycopg2",
    "redis",
    "requests",
    "urllib3",
    "httpx",
    "aiohttp",
    "boto3",
    "botocore",
    "kubernetes",
    "socket",
    "ssl",
    "smtplib",
    "dns",
    "http.client",
    "urllib.request",
    "xmlrpc.client",
    "ftplib",
    "telnetlib",
    "imaplib",
    "poplib",
    "OpenSSL",
    "paramiko",
    "websocket",
    "testinfra",
    "subprocess",
    "importlib",
)
# Modules of those libraries that hold only exception classes: catching them opens nothing.
EXCEPTION_MODULES = ("botocore.exceptions", "redis.exceptions", "psycopg.errors")
# (file, module, why it is safe): keep this short.
ALLOWED = {
    (
        "test_08_disaster_recovery.py",
        "subprocess",
    ): "git --no-optional-locks on the local manifests checkout, with a 30 s timeout",
}


def client_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a client library in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from requests import get` and `from dns import resolver` both import the library.
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            modules = ["__import__"]
        else:
            continue
        for module in modules:
            if module == "__import__" or _is_client(module):
                found.append((node.lineno, module))
    return sorted(found)


def _is_client(module: str) -> bool:
    if any(module == e or module.startswith(e + ".") for e in EXCEPTION_MODULES):
        return False
    return any(module == lib or module.startswith(lib + ".") for lib in CLIENT_LIBRARIES)


def suite_files() -> list[Path]:
    files = sorted(SUITES.glob("*.py"))
    assert len(files) >= 13, files  # conftest and the twelve section modules
    return files


@pytest.mark.parametrize("path", suite_files(), ids=lambda p: p.name)
def test_suite_opens_no_connection_of_its_own(path: Path) -> None:
    offending = [
        f"{path.name}:{line}: imports {module}"
        for line, module in client_imports(path.read_text())
        if (path.name, module) not in ALLOWED
    ]
    assert not offending, (
        "suites reach targets only through pytest_vcci/targets/ (guarded, with timeouts); "
        "add what the check needs there:\n" + "\n".join(offending)
    )


def test_every_allowlist_entry_is_still_needed() -> None:
    used = {
        (path.name, module)
        for path in suite_files()
        for _, module in client_imports(path.read_text())
    }
    assert set(ALLOWED) <= used, set(ALLOWED) - used


def test_the_scan_finds_imports_at_any_depth() -> None:
    source = (
        "import json\n"
        "from botocore.exceptions import ClientError\n"
        "from pytest_vcci.targets.postgres import dsn_where\n"
        "def test_x():\n"
        "    import psycopg\n"
        "    from requests import get\n"
        "    from dns import resolver\n"
        "    import urllib.request as fetch\n"
        "    __import__('socket')\n"
        "class Helper:\n"
        "    def run(self):\n"
        "        import smtplib, ssl\n"
    )
    assert client_imports(source) == [
        (5, "psycopg"),
        (6, "requests"),
        (7, "dns"),
        (8, "urllib.request"),
        (9, "__import__"),
        (12, "smtplib"),
        (12, "ssl"),
    ]
