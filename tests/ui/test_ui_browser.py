"""The web UI in a real browser (headless Chromium) against the real server on loopback:
sign in, browse, download, refusals, markup shown as text, sign out. Every request the
browser makes is recorded: none may leave 127.0.0.1, and no script may run (no dialog,
no console message, no Content-Security-Policy violation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import PASSWORD, V1, WEIGHTS, XSS, World
from .test_ui_deployments import HOSTILE_URL, Deployed, deployed

__all__ = ["deployed"]  # a fixture, used by name


class Browsing:
    """One browser context and page, with everything it did recorded."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(base_url=base, accept_downloads=True)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.failed: list[str] = []  # a stylesheet, an icon... that did not load
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.context.on("response", self._response)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def _response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _console(self, message: Any) -> None:
        # a page answered with an error status (a 404 page...) is logged as a failed load:
        # those are deliberate here, and any other resource failing is in ``failed``
        if not message.text.startswith("Failed to load resource: the server responded"):
            self.console.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sign_in(self, user: str, password: str = PASSWORD) -> None:
        self.page.goto("/models")
        assert urlsplit(self.page.url).path == "/login"
        self.page.fill("#user", user)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.base}/models")

    def check_clean(self) -> None:
        hosts = {urlsplit(url).hostname for url in self.requests}
        assert hosts <= {"127.0.0.1"}, self.requests
        assert self.dialogs == [], self.dialogs
        assert self.failed == [], self.failed
        assert self.console == [], self.console


@pytest.fixture
def browsing(chromium: Any, live_server: str, world: World) -> Iterator[Browsing]:
    session = Browsing(chromium, live_server)
    yield session
    session.context.close()


def test_browse_from_the_models_to_a_file(browsing: Browsing, world: World) -> None:
    page = browsing.page
    browsing.sign_in(world.reader)
    assert page.locator("header .who").inner_text() == world.reader
    page.click(f"text={world.model}")
    page.wait_for_url(f"**/models/{world.model}")
    assert page.locator("h1").inner_text() == world.model
    # the description and the tag: shown as the text they are
    assert XSS in page.locator(".description").inner_text()
    assert XSS in page.locator("section", has_text="Tags").inner_text()
    page.click("a[href$='/versions/1']")
    page.wait_for_url("**/versions/1")
    assert "READY" in page.locator("table.facts").inner_text()
    assert XSS in page.locator("section", has_text="Params").inner_text()
    # a javascript: run link is shown, never clickable
    assert page.locator("a[href^='javascript']").count() == 0
    assert "javascript:alert(document.cookie)" in page.locator("table.facts").inner_text()
    with page.expect_download() as download:
        page.click("a.download[href$='model/weights.bin']")
    saved = Path(download.value.path())
    assert saved.read_bytes() == WEIGHTS
    assert download.value.suggested_filename == "weights.bin"
    # back to the model, and its alias's history
    page.click(f".crumbs a[href='/models/{world.model}']")
    page.click("a.alias")
    page.wait_for_url("**/aliases/champion")
    assert "moved" in page.locator("table.list").inner_text()
    browsing.check_clean()


def test_a_malformed_filter_shows_its_error(browsing: Browsing, world: World) -> None:
    page = browsing.page
    browsing.sign_in(world.reader)
    page.fill("#filter", "name LIKE 'risk%' AND")
    page.click("form.search button")
    page.wait_for_url("**/models?filter=*")
    alert = page.locator("[role=alert]").inner_text()
    assert "at position" in alert
    assert page.input_value("#filter") == "name LIKE 'risk%' AND"
    page.fill("#filter", "name LIKE 'risk%'")
    page.click("form.search button")
    page.wait_for_url("**/models?filter=*")
    assert page.locator("table.list a", has_text=world.model).count() == 1
    # the version search, the same way
    page.click("nav >> text=Search versions")
    page.fill("#filter", "metrics.auc >= 0.9 AND semver = '1.2.0'")
    page.click("form.search button")
    page.wait_for_url("**/versions?filter=*")
    assert page.locator("table.list a[href$='/versions/2']").count() == 1
    browsing.check_clean()


def test_a_reader_sees_one_model_and_is_refused_the_other(browsing: Browsing, world: World) -> None:
    page = browsing.page
    browsing.sign_in(world.reader)
    names = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert names == [world.model]
    # the other model is not found, exactly as one that does not exist
    answer = page.goto(f"/models/{world.hidden}")
    assert answer is not None and answer.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    # a form posted without the session's CSRF token: the 403 page
    page.goto("/models")
    page.eval_on_selector("form.signout input[name=csrf_token]", "e => e.value = 'forged'")
    with page.expect_response("**/logout") as refused:
        page.click("form.signout button")
    assert refused.value.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert page.goto("/models") is not None and urlsplit(page.url).path == "/models"
    browsing.check_clean()


def test_sign_out_ends_the_session(browsing: Browsing, world: World) -> None:
    page = browsing.page
    browsing.sign_in(world.admin)
    names = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert names == [world.model, world.hidden]  # an administrator reads every model
    (session,) = [c["value"] for c in browsing.context.cookies() if c["name"] == "cairn_session"]
    page.click("form.signout button")
    page.wait_for_url("**/login")
    assert not [c for c in browsing.context.cookies() if c["name"] == "cairn_session"]
    page.goto(f"/models/{world.model}")
    assert urlsplit(page.url).path == "/login"
    # the old cookie is dead on the server, not only forgotten by the browser
    stale = httpx.get(f"{browsing.base}{V1}/whoami", cookies={"cairn_session": session}, timeout=10)
    assert stale.status_code == 401
    browsing.check_clean()


def test_a_wrong_password_stays_on_the_sign_in_page(browsing: Browsing, world: World) -> None:
    page = browsing.page
    page.goto("/login")
    page.fill("#user", world.reader)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.locator("[role=alert]").inner_text()
    assert page.input_value("#user") == world.reader
    browsing.check_clean()


def test_browse_from_the_deployments_to_a_version(
    browsing: Browsing, world: World, deployed: Deployed
) -> None:
    """List, deployment (its monitoring beside the version before, a sparkline drawn by
    the server, markup everywhere shown as text), then the version it serves."""
    page = browsing.page
    browsing.sign_in(world.reader)
    page.click("nav >> text=Deployments")
    page.wait_for_url("**/deployments")
    names = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert names == [deployed.name, deployed.staging]  # not vault.secret's; not retired
    page.fill("#environment", "prod")
    page.click("form.search button")
    page.wait_for_url("**/deployments?environment=prod*")
    assert page.locator("table.list tbody tr td:first-child").all_inner_texts() == [deployed.name]
    page.click(f"table.list a[href='/deployments/{deployed.name}']")
    page.wait_for_url(f"**/deployments/{deployed.name}")
    assert page.locator("h1").inner_text() == f"{deployed.name} prod"
    facts = page.locator("table.facts").inner_text()
    assert XSS in facts and HOSTILE_URL in facts  # the reason and the URL, as text
    monitoring = page.locator("table.monitoring")
    latency = monitoring.locator("tr", has_text="latency_ms").inner_text()
    assert "41.5" in latency and "-20.2%" in latency
    assert monitoring.locator("svg.spark polyline").count() == 1
    box = monitoring.locator("svg.spark").bounding_box()
    assert box is not None and box["width"] == 120  # drawn, at its size
    assert XSS in page.locator("table.points").inner_text()  # a key and a label, as text
    page.click("table.facts a[href$='/versions/2']")
    page.wait_for_url(f"**/models/{world.model}/versions/2")
    assert "latency_ms" in page.locator("table.monitoring").inner_text()
    page.click(f"ul.served a[href='/deployments/{deployed.name}']")  # and back
    page.wait_for_url(f"**/deployments/{deployed.name}")
    browsing.check_clean()
