"""``/docs`` in a real browser: headless Chromium (Debian's, never a downloaded build)
driven by Playwright against the real server on loopback.

The browser is tests/conftest.py's ``chromium`` (skipped where missing, except under CI=true,
where that is a failure).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [
    pytest.mark.parametrize("backend", ["sqlite"]),  # no database behind the page
    pytest.mark.xdist_group("browser"),  # one worker, one browser
]

TOKEN = "cairn-test-admin-token-0123456789abcdefghij"  # conftest's bootstrap admin
WAIT_MS = 30_000  # the longest any step may take on a busy machine; not a measurement


class Visit:
    """A page in a fresh browser context that records every request it makes and every
    error it logs (a Content-Security-Policy refusal among them)."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )

    def operation(self, method: str, path: str) -> Locator:
        summary = self.page.locator(f'.opblock-summary-path[data-path="{path}"]')
        return self.page.locator(f".opblock-{method}").filter(has=summary)

    def execute(self, operation: Locator) -> str:
        """Press Execute on an expanded operation; the status code Swagger UI shows."""
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        text = status.inner_text().strip()
        operation.get_by_role("button", name="Clear").click()
        return text


@pytest.fixture
def visit(chromium: Browser) -> Iterator[Visit]:
    opened = Visit(chromium)
    yield opened
    opened.context.close()


def test_the_docs_page_renders_from_this_server_alone(live_server: str, visit: Visit) -> None:
    """Every operation renders, and no request leaves the server's own origin: the page
    works without internet and tells no third party it was opened."""
    origin = urlsplit(live_server).netloc
    visit.page.goto(f"{live_server}/docs")  # until its load event: its scripts have run
    assert {urlsplit(url).netloc for url in visit.requests} == {origin}, visit.requests
    visit.operation("get", "/api/v1/models").wait_for()
    assert visit.page.locator(".opblock").count() > 100
    assert visit.operation("post", "/api/v1/login").count() == 1
    assert visit.operation("get", "/api/2.0/mlflow/registered-models/search").count() == 1
    assert f"{live_server}/api/v1/openapi.json" in visit.requests
    assert {urlsplit(url).netloc for url in visit.requests} == {origin}, visit.requests
    assert not visit.errors, visit.errors


def test_try_it_out_calls_the_api_with_the_token_given_to_authorize(
    live_server: str, visit: Visit
) -> None:
    """Without a token "Try it out" gets the API's 401; once a Cairn token is given to
    "Authorize" (bearer), the same call answers 200."""
    visit.page.goto(f"{live_server}/docs")
    models = visit.operation("get", "/api/v1/models")
    models.locator(".opblock-summary").click()
    models.get_by_role("button", name="Try it out").click()
    assert visit.execute(models) == "401"

    visit.page.get_by_role("button", name="Authorize").first.click()
    bearer = visit.page.locator("#auth-bearer-value")
    bearer.fill(TOKEN)
    form = visit.page.locator(".auth-container form").filter(has=bearer)
    form.get_by_role("button", name="Apply credentials").click()
    visit.page.get_by_role("button", name="Close").first.click()
    assert visit.execute(models) == "200"
    origin = urlsplit(live_server).netloc
    assert {urlsplit(url).netloc for url in visit.requests} == {origin}, visit.requests
    # the 401 is logged by the browser as a failed load; nothing else went wrong
    assert all("401" in error for error in visit.errors), visit.errors
