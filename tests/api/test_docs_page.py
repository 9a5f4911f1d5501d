"""``/docs``: Swagger UI served by Cairn alone, under a policy that allows nothing else.

In-process here: what the page names and what it is served with. In a real browser
against a real server: tests/api/test_docs_browser.py.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cairn.api.auth import PUBLIC_PATHS

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # no database behind the page

REFERENCE = re.compile(r'\b(?:src|href|data-openapi-url)="([^"]*)"')
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _references(page: str) -> list[str]:
    return REFERENCE.findall(page)


def test_the_page_and_every_file_it_loads_come_from_this_server(anon: TestClient) -> None:
    """Nothing from a CDN: the page works without internet and tells no third party it
    was opened. The page, its files and the document answer without credentials."""
    page = anon.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = _references(page.text)
    assert len(found) == 5, found  # icon, style sheet, document, Swagger UI, its start-up
    for url in found:
        assert url.startswith("/") and not url.startswith("//"), url
        assert url.split("?")[0] in PUBLIC_PATHS, url
        answer = anon.get(url)
        assert answer.status_code == 200, (url, answer.text[:200])
        expected = TYPES.get(url[url.rfind(".") :], "application/json")
        assert answer.headers["content-type"].startswith(expected), (url, answer.headers)
        assert answer.content
    assert "http:" not in page.text and "https:" not in page.text


def test_the_page_allows_scripts_styles_and_requests_from_this_server_only(
    anon: TestClient,
) -> None:
    """A Content-Security-Policy that names no other origin and no inline script or
    style; the page has no inline script to need one."""
    page = anon.get("/docs")
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"  # Swagger UI's icons are data: URLs in its CSS
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == policy["form-action"] == "'none'"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page.text and "<style" not in page.text


def test_the_files_are_revalidated_not_sent_again(anon: TestClient) -> None:
    """The 1.5 MB script travels once: later loads get a 304 for the browser's copy."""
    first = anon.get("/docs/swagger-ui-bundle.js")
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = anon.get("/docs/swagger-ui-bundle.js", headers={"If-None-Match": f'W/"x", {etag}'})
    assert again.status_code == 304 and not again.content
    assert again.headers["etag"] == etag
    other = anon.get("/docs/swagger-ui-bundle.js", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content


def test_only_the_page_and_its_files_are_served_under_docs(anon: TestClient) -> None:
    """Cairn has no OAuth2 flow, so no OAuth2 redirect page (FastAPI's, with an inline
    script); the package's other files are not served either."""
    assert anon.get("/docs/oauth2-redirect").status_code == 404
    assert anon.get("/docs/redoc.standalone.js").status_code == 404
