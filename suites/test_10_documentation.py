"""10. Documentation & training: API docs, guides and runbooks, training, executive dashboard.

Documents are looked up by title, as the checklist lists them, in the configured docs: every
Markdown, reStructuredText, HTML or text file under [docs].directory (searched recursively), or
the pages of [docs].url named in [expect.docs.pages] (title -> path). A document counts when its
title (first heading, or HTML <title>) is the listed title and it has text besides the title.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_vcci.checklist import load_catalog
from pytest_vcci.targets.web import PublicWeb

DOC_SUFFIXES = (".md", ".markdown", ".rst", ".txt", ".html", ".htm", ".adoc")
SLA_WORDS = ("sla", "slo", "availability", "uptime", "error budget")


def listed(item_id: str) -> list[str]:
    """The documents an item lists, as the checklist names them (its criteria)."""
    return list(load_catalog().get(item_id).criteria)


# --- finding documents by title -------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    where: str  # path or URL
    title: str
    words: int  # words besides the title


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).casefold().split())


def parse_document(text: str, suffix: str) -> tuple[str, str]:
    """(title, body) of a document: first heading of Markdown/AsciiDoc/RST, or HTML title."""
    if suffix in (".html", ".htm") or text.lstrip().lower().startswith(("<!doctype", "<html")):
        found = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S) or re.search(
            r"<h1[^>]*>(.*?)</h1>", text, re.I | re.S
        )
        title = html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""
        body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.I | re.S)
        return title, html.unescape(re.sub(r"<[^>]+>", " ", body))
    lines = text.lstrip("\ufeff").splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter with a title
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        for line in lines[1:end]:
            if line.lower().startswith("title:"):
                return line.split(":", 1)[1].strip().strip("\"'"), "\n".join(lines[end + 1 :])
        lines = lines[end + 1 :]
    for i, line in enumerate(lines):
        heading = re.match(r"\s{0,3}[#=]\s+(.+?)\s*#*\s*$", line)  # "# Title", "= Title"
        if heading:
            return heading.group(1), "\n".join(lines[:i] + lines[i + 1 :])
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and len(underline) >= 3 and set(underline) <= set("=-~^*#"):
            return line.strip(), "\n".join(lines[:i] + lines[i + 2 :])
    return "", text


class DocsDirectory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.documents: list[Document] = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in DOC_SUFFIXES:
                text = path.read_text(encoding="utf-8", errors="replace")
                title, body = parse_document(text, path.suffix.lower())
                self.documents.append(Document(str(path), title, len(body.split())))

    @property
    def where(self) -> str:
        return f"docs {self.root}"

    def find(self, title: str) -> Document | None:
        """The document with this title; else one whose title starts with it ("X Runbook")."""
        want = _normal(title)
        exact = [d for d in self.documents if _normal(d.title) == want]
        if exact:
            return exact[0]
        return next((d for d in self.documents if _normal(d.title).startswith(want + " ")), None)


class DocsSite:
    def __init__(self, url: str, pages: dict[str, str], web: PublicWeb) -> None:
        self.url = url.rstrip("/")
        self.pages = pages
        self.web = web

    @property
    def where(self) -> str:
        return f"docs {self.url}"

    def find(self, title: str) -> Document | None:
        page = self.pages.get(title)
        if page is None:
            pytest.skip(f'[expect.docs.pages] names no page for "{title}"')
        url = f"{self.url}/{page.lstrip('/')}"
        answer = self.web.get(url, follow_redirects=True)
        if answer.status != 200:
            return None
        found, body = parse_document(answer.text, Path(page).suffix.lower())
        return Document(url, found or title, len(body.split()))


@pytest.fixture(scope="module")
def docs(vcci_context: Any, expect: Any) -> DocsDirectory | DocsSite:
    """The configured documentation: [docs].directory, else [docs].url."""
    table = vcci_context.target_table("docs")
    settings = vcci_context.settings
    if table.directory:
        root = settings.resolve_path(table.directory)
        if not root.is_dir():
            pytest.fail(
                f"{settings.source}: [docs].directory {root} is not a directory", pytrace=False
            )
        return DocsDirectory(root)
    if table.url:
        web = PublicWeb(vcci_context.gate, connect_timeout=5.0, read_timeout=10.0)
        return DocsSite(table.url, dict(expect("docs", "pages")), web)
    pytest.skip(f"[docs].directory or [docs].url is not set in {settings.source}")


def check_document(
    docs: DocsDirectory | DocsSite, kind: str, title: str, min_words: int, evidence: Any
) -> None:
    document = docs.find(title)
    evidence.require(
        f'{kind} "{title}"',
        "not found" if document is None else document.where,
        f'a document titled "{title}"',
        document is not None,
        where=docs.where,
    )
    assert document is not None
    evidence.check(
        f'{kind} "{title}": words besides the title',
        document.words,
        f">= {min_words}",
        document.words >= min_words,
        where=document.where,
    )


# --- 10.1.1 API documentation ---------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(api: Any, threshold: Any) -> tuple[str, Any, Any]:
    """(URL, response, decoded document or None) of the published OpenAPI document."""
    path = threshold("10.1.1", "openapi_path")
    response = api.anonymous().get(path)
    try:
        document = response.json()
    except ValueError:
        document = None
    return f"{api.base_url}{path}", response, document


@pytest.mark.checklist("10.1.1")
def test_openapi_document_valid(openapi: Any, evidence: Any) -> None:
    """The OpenAPI document is published without credentials and is a valid OpenAPI spec."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    path, response, document = openapi
    evidence.require(
        "HTTP status", response.status_code, 200, response.status_code == 200, where=f"GET {path}"
    )
    evidence.require(
        "body",
        "JSON" if isinstance(document, dict) else "not a JSON object",
        "a JSON object",
        isinstance(document, dict),
        where=f"GET {path}",
    )
    try:
        validate(document)
        problem = None
    except OpenAPIValidationError as exc:
        problem = str(exc).splitlines()[0]
    version = document.get("openapi") or document.get("swagger")
    evidence.record("OpenAPI version", version, where=f"GET {path}")
    evidence.record(
        "operations",
        sum(len(ops) for ops in document.get("paths", {}).values()),
        where=f"GET {path}",
    )
    evidence.check(
        "validation (openapi-spec-validator)",
        problem or "valid",
        "valid",
        problem is None,
        where=f"GET {path}",
    )


@pytest.mark.checklist("10.1.1")
def test_docs_page_answers(api: Any, threshold: Any, evidence: Any) -> None:
    """The human-readable API documentation (/docs) answers with an HTML page."""
    path = threshold("10.1.1", "docs_path")
    response = api.anonymous().get(path)
    kind = response.headers.get("Content-Type", "")
    evidence.check(
        "HTTP status",
        response.status_code,
        200,
        response.status_code == 200,
        where=f"GET {api.base_url}{path}",
    )
    evidence.check(
        "content type",
        kind,
        "text/html",
        kind.startswith("text/html"),
        where=f"GET {api.base_url}{path}",
    )
    evidence.check(
        "body length",
        len(response.content),
        "> 0",
        len(response.content) > 0,
        where=f"GET {api.base_url}{path}",
    )


def _rate_limit_text(document: dict[str, Any]) -> bool:
    info = document.get("info", {})
    text = json.dumps(
        {"info": info, "x": {k: v for k, v in document.items() if k.startswith("x-")}}
    )
    return bool(re.search(r"rate[ -]?limit", text, re.I))


@pytest.mark.checklist("10.1.1")
def test_rate_limits_documented(openapi: Any, evidence: Any) -> None:
    """The OpenAPI document describes the rate limits and the 429 answer beyond them."""
    path, response, document = openapi
    evidence.require(
        "OpenAPI document",
        response.status_code,
        200,
        response.status_code == 200 and isinstance(document, dict),
        where=f"GET {path}",
    )
    limited = sorted(
        f"{method.upper()} {route}"
        for route, operations in document.get("paths", {}).items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "429" in operation.get("responses", {})
    )
    evidence.check(
        "rate limits described",
        _rate_limit_text(document),
        "info or x- extension mentions the rate limit",
        _rate_limit_text(document),
        where=f"GET {path}",
    )
    evidence.check(
        "operations documenting 429", len(limited), ">= 1", bool(limited), where=f"GET {path}"
    )


@pytest.mark.checklist("10.1.1")
def test_postman_collection_and_code_examples(docs: Any, evidence: Any) -> None:
    """The docs hold a Postman collection and code examples in Python and JavaScript."""
    if not isinstance(docs, DocsDirectory):
        pytest.skip("Postman collection and examples are looked up in [docs].directory only")
    collections = []
    for path in sorted(docs.root.rglob("*.postman_collection.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        schema = str(data.get("info", {}).get("schema", ""))
        if "getpostman.com" in schema and data.get("item"):
            collections.append(str(path.relative_to(docs.root)))
    evidence.check(
        "Postman collection",
        collections or "none",
        "a *.postman_collection.json",
        bool(collections),
        where=docs.where,
    )
    for language, fences in (
        ("Python", ("python", "py")),
        ("JavaScript", ("javascript", "js", "typescript", "ts")),
    ):
        found = [
            str(Path(d.where).relative_to(docs.root))
            for d in docs.documents
            if _has_code(Path(d.where), fences)
        ]
        evidence.check(
            f"{language} code examples",
            found or "none",
            f"a document with a {fences[0]} code block",
            bool(found),
            where=docs.where,
        )


def _has_code(path: Path, fences: tuple[str, ...]) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    pattern = r"^\s*(```|~~~)\s*(" + "|".join(fences) + r")\b"
    return re.search(pattern, text, re.I | re.M) is not None


# --- 10.1.2 - 10.1.4 guides and runbooks ----------------------------------------------------


@pytest.mark.checklist("10.1.2")
@pytest.mark.parametrize("title", listed("10.1.2"))
def test_user_guide_published(docs: Any, title: str, threshold: Any, evidence: Any) -> None:
    """Each user guide the checklist lists exists under its title and has content."""
    check_document(docs, "user guide", title, threshold("10.1.2", "min_words"), evidence)


@pytest.mark.checklist("10.1.3")
@pytest.mark.parametrize("title", listed("10.1.3"))
def test_admin_guide_published(docs: Any, title: str, threshold: Any, evidence: Any) -> None:
    """Each admin guide the checklist lists exists under its title and has content."""
    check_document(docs, "admin guide", title, threshold("10.1.3", "min_words"), evidence)


@pytest.mark.checklist("10.1.4")
@pytest.mark.parametrize("title", listed("10.1.4"))
def test_runbook_created(docs: Any, title: str, threshold: Any, evidence: Any) -> None:
    """Each runbook the checklist lists exists under its title and has content."""
    check_document(docs, "runbook", title, threshold("10.1.4", "min_words"), evidence)


# --- 10.2 knowledge transfer ----------------------------------------------------------------


@pytest.mark.checklist("10.2.1")
def test_operations_team_trained(attest: Any) -> None:
    """Operations training (2 days, runbooks, production access, on-call) is attested."""
    attest("10.2.1")


@pytest.mark.checklist("10.2.2")
def test_support_team_trained(attest: Any) -> None:
    """Support training (user guides, common issues, ticket system) is attested."""
    attest("10.2.2")


@pytest.mark.checklist("10.2.3")
def test_customer_success_team_trained(attest: Any) -> None:
    """Customer-success training (sales playbook, demo access, onboarding) is attested."""
    attest("10.2.3")


# --- 10.2.4 executive dashboard -------------------------------------------------------------


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard model, rows' collapsed panels included."""
    found: list[dict[str, Any]] = []
    for panel in model.get("panels", []) + [
        p for row in model.get("rows", []) for p in row.get("panels", [])
    ]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(panel: dict[str, Any]) -> str:
    return " ".join(str(t.get("expr") or t.get("query") or "") for t in panel.get("targets", []))


def executive_dashboard(grafana: Any, uid: str, evidence: Any) -> dict[str, Any]:
    """The dashboard model by uid; stops the test naming the uid when Grafana has none."""
    from pytest_vcci.targets.monitoring import MonitoringError

    try:
        model: dict[str, Any] = grafana.dashboard(uid)["dashboard"]
    except MonitoringError as exc:
        evidence.require(
            "dashboard", f"HTTP {exc.status}", "found", False, where=f"grafana dashboard {uid}"
        )
        raise
    evidence.record("title", model.get("title"), where=f"grafana dashboard {uid}")
    return model


@pytest.mark.checklist("10.2.4")
def test_executive_dashboard_shows_business_metrics(
    grafana: Any, expect: Any, evidence: Any
) -> None:
    """The executive dashboard (Grafana, by uid) plots every business metric."""
    uid = expect("executive_dashboard", "uid")
    model = executive_dashboard(grafana, uid, evidence)
    queries = " ".join(_queries(p) for p in _panels(model))
    for metric in expect("executive_dashboard", "business_metrics"):
        shown = re.search(rf"\b{re.escape(metric)}\b", queries) is not None
        evidence.check(
            f"panel plotting {metric}", shown, True, shown, where=f"grafana dashboard {uid}"
        )


@pytest.mark.checklist("10.2.4")
def test_executive_dashboard_tracks_sla(grafana: Any, expect: Any, evidence: Any) -> None:
    """The executive dashboard has an SLA panel (SLA, SLO, availability or error budget)."""
    uid = expect("executive_dashboard", "uid")
    model = executive_dashboard(grafana, uid, evidence)
    titles = [str(p.get("title", "")) for p in _panels(model)]
    sla = [t for t in titles if any(w in t.casefold() for w in SLA_WORDS)]
    evidence.check(
        "SLA panels",
        sla or "none",
        "a panel titled SLA/SLO/availability",
        bool(sla),
        where=f"grafana dashboard {uid}",
    )


@pytest.mark.checklist("10.2.4")
def test_business_metrics_collected(prometheus: Any, expect: Any, evidence: Any) -> None:
    """Prometheus holds the business metrics the executive dashboard plots."""
    for metric in expect("executive_dashboard", "business_metrics"):
        series = prometheus.query(f"count({metric})")
        count = int(float(series[0]["value"][1])) if series else 0
        evidence.check(
            f"series of {metric}",
            count,
            ">= 1",
            count >= 1,
            where=f"prometheus {prometheus.describe()['url']}",
        )
