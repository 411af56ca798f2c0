"""checklist.html, report.html and the framework control pages in a real browser: headless
Chromium over the DevTools protocol.

A pytester run writes the reports (a handful of checklist tests: passed with observations,
failed, skipped, attested, an expired attestation). Chromium opens each file; the test fails on
any console error or uncaught exception, checks what the DOM shows (all 92 items, the test rows),
and keeps a screenshot of each page under reports/browser/ (paths printed in the test output).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist import load_catalog
from pytest_vcci.checklist.controls import FRAMEWORKS, load_controls
from pytest_vcci.sandbox import attestations_as_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "reports" / "browser"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--window-size=1280,900",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: apt-get update && apt-get install -y chromium",
)

SAMPLE_TESTS = '''
import pytest


@pytest.mark.checklist("3.2.3")
def test_secret_deployed_with_keys(evidence):
    """Each Secret exists with every expected key (3.2.3's one check, so the item passes)."""
    evidence.check("exists", True, True, True, where="secret vcci-staging/vcci-database")
    evidence.check("keys", ["url"], ["url"], True, where="secret vcci-staging/vcci-database")


@pytest.mark.checklist("1.2.1")
def test_ocsp_stapling(evidence):
    """The public endpoint staples an OCSP response."""
    evidence.check("OCSP response stapled", "none", "a stapled, good OCSP response", False,
                   where="TLS api.staging.vcci.greenlang.io:443")


@pytest.mark.checklist("5.1.2")
def test_grafana_deployed():
    """Grafana answers its health API."""
    pytest.skip("[grafana] is not configured in environment.toml (target not configured)")


@pytest.mark.checklist("10.2.1")
def test_operations_team_trained(attest):
    """Operations training is attested."""
    attest("10.2.1")


@pytest.mark.checklist("10.2.3")
def test_customer_success_team_trained(attest):
    """Customer-success training is attested."""
    attest("10.2.3")
'''


# --- a minimal DevTools protocol client -------------------------------------------------------


class DevTools:
    """One page target over a websocket: commands by id, events kept in order."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        # No Origin header: Chromium refuses DevTools websockets from unlisted origins.
        self.ws = websocket.create_connection(ws_url, timeout=15, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.events:
                if message.get("method") == event:
                    self.events.remove(message)
                    return message
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {event} within {timeout}s")

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for message in self.events:
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details["text"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(
                    " ".join(
                        str(a.get("value", a.get("description"))) for a in params.get("args", [])
                    )
                )
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium with a fresh profile; its DevTools HTTP address."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = profile.parent / "chromium.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--enable-logging=stderr",
                "--v=0",
                "about:blank",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_page(browser: str, path: Path) -> DevTools:
    """A new tab on ``path``, loaded, with console and log events recorded from the start."""
    request = urllib.request.Request(f"http://{browser}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        target = json.loads(response.read())
    page = DevTools(target["webSocketDebuggerUrl"])
    for domain in ("Page", "Runtime", "Log"):
        page.send(f"{domain}.enable")
    page.send("Page.navigate", url=path.as_uri())
    page.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + 10
    while page.evaluate("document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.1)
    return page


def screenshot(page: DevTools, name: str) -> Path:
    """The whole page as a PNG under reports/browser/; the path is printed."""
    width, height = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    page.send(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=min(int(height), 6000),
        deviceScaleFactor=1,
        mobile=False,
    )
    data = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    path.write_bytes(base64.b64decode(data))
    print(f"screenshot ({width}x{height} page): {path}")
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG whose every chunk has a valid CRC and whose image data inflates."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    offset, chunks, idat = 8, [], b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        offset += 12 + length
    assert chunks[0] == b"IHDR", chunks
    assert chunks[-1] == b"IEND", chunks
    width, height = struct.unpack(">II", data[16:24])
    assert len(zlib.decompress(idat)) > 0
    return width, height


# --- the reports --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checklist.html and report.html of a small pytester-like run in a subprocess."""
    work = tmp_path_factory.mktemp("browser-run")
    (work / "test_sample.py").write_text(SAMPLE_TESTS)
    (work / "environment.toml").write_text('[environment]\nname = "browser-check"\n')
    attestations = work / "attestations.toml"
    attestations.write_text(attestations_as_of(dt.datetime.now(dt.UTC).date()))
    out = work / "reports"
    subprocess.run(
        [
            sys.executable,
            # "--opt=value": a separate value would count as a path when pytest finds its rootdir.
            "-m",
            "pytest",
            "test_sample.py",
            "--vcci-config=environment.toml",
            f"--vcci-report-dir={out}",
            f"--vcci-attestations={attestations}",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=work,
        capture_output=True,
        timeout=120,
        check=False,
    )
    for name in ("checklist.html", "report.html", *(f"controls-{f}.html" for f in FRAMEWORKS)):
        assert (out / name).exists(), sorted(map(str, work.rglob("*")))
    return out


def test_checklist_html_in_chromium(browser: str, reports: Path) -> None:
    page = open_page(browser, reports / "checklist.html")
    try:
        ids = page.evaluate(
            "[...document.querySelectorAll('details[id^=item-]')].map(d => d.id.slice(5))"
        )
        assert len(ids) == 92, ids
        assert len(set(ids)) == 92, ids
        statuses = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll("
            "'details[id^=item-]')].map(d => [d.id.slice(5), d.dataset.status]))"
        )
        assert statuses["3.2.3"] == "passed"
        assert statuses["1.2.1"] == "failed"
        assert statuses["5.1.2"] == "skipped"
        assert statuses["10.2.1"] == "attested"
        assert statuses["10.2.3"] == "failed"
        assert list(statuses.values()).count("not_covered") == 87
        # Drill-down: open the failed items so the screenshot shows their observations.
        page.evaluate(
            "document.querySelectorAll('details[data-status=failed]').forEach(d => d.open = true)"
        )
        assert page.evaluate("document.querySelector('#item-1\\\\.2\\\\.1 table.obs') !== null")
        # Each criterion shows its status inside the drill-down, without JavaScript.
        assert page.evaluate(
            "document.querySelectorAll('#item-1\\\\.2\\\\.1 li.criterion').length"
        ) == len(load_catalog().get("1.2.1").criterion_specs)
        shot = screenshot(page, "checklist.png")
        assert page.errors() == []
    finally:
        page.close()
    width, height = png_size(shot)
    assert width == 1280
    assert height > 900


# The sample run's items decide these: 1.2.1 failed, 10.2.1 attested, 3.2.3 passed.
FRAMEWORK_STATUSES = {
    "soc2": {
        "CC6.7": "failed",
        "CC6.2": "passed",
        "CC1.4": "partly_assessed",
        "CC9.2": "not_assessed",
    },
    "iso27001": {
        "A.8.24": "failed",
        "A.6.3": "passed",
        "A.5.17": "partly_assessed",
        "A.8.13": "not_assessed",
    },
    "nist80053": {
        "SC-17": "failed",
        "AT-3": "passed",
        "IA-5": "partly_assessed",
        "CP-9": "not_assessed",
    },
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_framework_page_in_chromium(browser: str, reports: Path, framework: str) -> None:
    """Every mapped control is on the page with its derived status; an item's link opens its
    evidence in checklist.html."""
    page = open_page(browser, reports / f"controls-{framework}.html")
    try:
        rows = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tr[id^=control-]')]"
            ".map(r => [r.id.slice(8), r.dataset.status]))"
        )
        assert list(rows) == [c.id for c in load_controls().controls(framework)]
        for control_id, status in FRAMEWORK_STATUSES[framework].items():
            assert rows[control_id] == status, control_id
        shot = screenshot(page, f"controls-{framework}.png")
        assert page.errors() == []
        # Click after this evaluation returns: a navigation during it would destroy its context.
        page.evaluate(
            "setTimeout(() => document.querySelector(\"a[data-item='1.2.1']\").click(), 0)"
        )
        page.wait_for("Page.loadEventFired")
        assert page.evaluate("location.pathname").endswith("/checklist.html")
        assert page.evaluate("document.querySelector(':target').id") == "item-1.2.1"
        assert page.evaluate("document.querySelector(':target').dataset.status") == "failed"
        assert page.errors() == []
    finally:
        page.close()
    assert png_size(shot)[0] == 1280


def test_checklist_html_links_to_the_framework_pages(browser: str, reports: Path) -> None:
    page = open_page(browser, reports / "checklist.html")
    try:
        links = page.evaluate(
            "[...document.querySelectorAll('.controls-nav a')].map(a => a.getAttribute('href'))"
        )
        assert links == [f"controls-{framework}.html" for framework in FRAMEWORKS]
        item_links = page.evaluate(
            "[...document.querySelectorAll('#item-6\\\\.2\\\\.2 .ctl a')].map(a => a.textContent)"
        )
        assert item_links == ["CC6.7", "A.8.24", "A.5.14", "SC-8", "SC-8(1)", "SC-13"]
        assert page.errors() == []
    finally:
        page.close()


def test_report_html_in_chromium(browser: str, reports: Path) -> None:
    page = open_page(browser, reports / "report.html")
    try:
        # pytest-html renders its rows with JavaScript from the embedded JSON.
        deadline = time.monotonic() + 10
        while page.evaluate("document.querySelectorAll('tbody.results-table-row').length") < 5:
            assert time.monotonic() < deadline, "pytest-html did not render its 5 result rows"
            time.sleep(0.1)
        headers = page.evaluate(
            "[...document.querySelectorAll('#results-table th')].map(th => th.textContent.trim())"
        )
        assert "Checklist" in headers, headers
        text = page.evaluate("document.querySelector('#results-table').innerText")
        for item_id in ("3.2.3", "1.2.1", "5.1.2", "10.2.1", "10.2.3"):
            assert item_id in text
        shot = screenshot(page, "report.png")
        assert page.errors() == []
    finally:
        page.close()
    width, _ = png_size(shot)
    assert width == 1280


def test_console_errors_are_seen(browser: str, tmp_path: Path) -> None:
    """The error capture itself works: a page that logs an error and throws is caught."""
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head><title>broken</title></head><body>"
        "<script>console.error('checklist data missing'); undefinedFunction();</script>"
        "<img src='missing.png'></body></html>"
    )
    page = open_page(browser, page_file)
    try:
        time.sleep(0.3)  # the image error arrives after the load event
        page.evaluate("1")  # drain pending events
        errors = "\n".join(page.errors())
    finally:
        page.close()
    assert "checklist data missing" in errors
    assert "undefinedFunction is not defined" in errors
    assert "missing.png" in errors
