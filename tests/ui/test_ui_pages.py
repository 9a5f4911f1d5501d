"""The web UI in-process (TestClient), on SQLite and PostgreSQL: sign-in and sign-out,
redirects, security headers, CSRF and origin refusals, and what each page shows."""

from __future__ import annotations

import html
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from cairn.settings import Settings

from .conftest import CONFIG, PASSWORD, V1, WEIGHTS, XSS, World, ok, sign_in

PAGES = [
    "/models",
    "/models/risk.fraud",
    "/models/risk.fraud/versions/1",
    "/models/risk.fraud/aliases/champion",
    "/versions",
    "/deployments",
]
UI_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def cookies_set(response: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        for name, morsel in SimpleCookie(header).items():
            found[name] = morsel.value
    return found


def signed_in(client: TestClient, user: str) -> TestClient:
    response = sign_in(client, user)
    assert response.status_code == 303, response.text
    return client


def csrf_of(client: TestClient) -> str:
    return str(client.cookies.get("cairn_csrf"))


def text_of(response: Any) -> str:
    return html.unescape(response.text)


# -- not signed in ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_a_visitor_without_a_session_to_sign_in(
    visitor: TestClient, world: World, path: str
) -> None:
    response = visitor.get(path, params={"filter": "name = 'x'"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?next=")
    # and back, after signing in, to the page asked for
    wanted = parse_qs(urlsplit(location).query)["next"][0]
    assert wanted == f"{path}?filter=name+%3D+%27x%27"
    after = sign_in(visitor, world.reader, next=wanted)
    assert after.status_code == 303 and after.headers["location"] == wanted


def test_the_root_leads_to_the_models(visitor: TestClient) -> None:
    response = visitor.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/models"


def test_every_ui_answer_carries_the_security_headers(visitor: TestClient, world: World) -> None:
    answers = [
        visitor.get("/"),
        visitor.get("/models"),  # a redirect
        visitor.get("/login"),
        visitor.get("/static/cairn.css"),
        sign_in(visitor, world.reader, password="wrong password!"),  # the form again
    ]
    signed_in(visitor, world.reader)
    answers += [visitor.get(path) for path in PAGES]
    answers += [visitor.get("/models/nope"), visitor.get("/models?filter=name%20LIKE")]
    for response in answers:
        for name, value in UI_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name, response.headers)
        if response.url.path != "/static/cairn.css":
            assert response.headers["cache-control"] == "no-store", response.url
    css = visitor.get("/static/cairn.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_head_is_answered_as_get(visitor: TestClient, world: World) -> None:
    """Browsers and link checkers send HEAD: each UI address answers it as its GET (the
    same status, type and headers; the server sends no body), not with the API's JSON 405."""

    def check(*paths: str) -> None:
        for path in paths:
            head, get = visitor.head(path), visitor.get(path)
            assert head.status_code == get.status_code, (path, head.status_code, head.text)
            for name in ("content-type", "location", "x-frame-options", "cache-control"):
                assert head.headers.get(name) == get.headers.get(name), (path, name)

    check("/", "/login", "/static/cairn.css", "/models")  # /models: to sign in
    assert visitor.head("/models").headers["location"] == "/login?next=%2Fmodels"
    signed_in(visitor, world.reader)
    check(*PAGES, "/models/vault.ghost")


def test_the_api_and_the_probes_are_untouched(anon: TestClient, api: TestClient) -> None:
    assert anon.get("/health").json() == {"status": "ok"}
    assert anon.get("/ready").status_code == 200
    assert anon.get("/docs").status_code == 200
    assert anon.get(f"{V1}/openapi.json").status_code == 200
    unknown = anon.get(f"{V1}/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"
    assert anon.get(f"{V1}/models").status_code == 401  # a 401, not a redirect
    assert api.get(f"{V1}/models").status_code == 200
    # no UI page is in the API's document
    paths = api.get(f"{V1}/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith(("/api/", "/health", "/ready"))]


HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


def test_an_unknown_address_is_a_page_for_a_browser_and_json_for_the_rest(
    visitor: TestClient, anon: TestClient
) -> None:
    """A mistyped address in a browser showed raw JSON; the APIs answer JSON whoever asks."""
    page = visitor.get("/modles", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "there is no page at this address" in page.text and "/modles" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for path in (f"{V1}/no-such-thing", "/api/2.0/mlflow/no-such-thing", "/ajax-api/2.0/x"):
        unknown = anon.get(path, headers=HTML)  # MLflow's prefix asks for a caller first
        assert unknown.status_code in (401, 404), path
        assert unknown.headers["content-type"] == "application/json", path
    unknown = anon.get("/modles")  # no Accept: text/html (curl, scripts)
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"


# -- signing in ------------------------------------------------------------------------------


def test_sign_in_sets_the_api_session_cookie_and_a_csrf_cookie(
    visitor: TestClient, world: World
) -> None:
    response = sign_in(visitor, world.reader)
    assert response.status_code == 303 and response.headers["location"] == "/models"
    headers = response.headers.get_list("set-cookie")
    assert {name for h in headers for name in SimpleCookie(h)} == {"cairn_session", "cairn_csrf"}
    for header in headers:
        flags = header.lower()
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    # the session is the API's: the same cookie authenticates the API
    assert ok(visitor.get(f"{V1}/whoami"))["user"] == world.reader
    assert visitor.get("/models").status_code == 200


def test_the_sign_in_page_of_a_signed_in_user_goes_where_they_were_going(
    visitor: TestClient, world: World
) -> None:
    """Signed in, /login showed the form again (a bookmark, the back button): it now goes
    to ``next`` (or home); a dead session still gets the form."""
    assert sign_in(visitor, world.reader).status_code == 303
    again = visitor.get("/login", params={"next": f"/models/{world.model}"})
    assert again.status_code == 303 and again.headers["location"] == f"/models/{world.model}"
    home = visitor.get("/login", params={"next": "//evil.example/"})
    assert home.status_code == 303 and home.headers["location"] == "/models"
    visitor.cookies.clear()
    visitor.cookies.set("cairn_session", "not-a-session")
    dead = visitor.get("/login")
    assert dead.status_code == 200 and 'action="/login"' in dead.text
    assert 'cairn_session=""' in dead.headers["set-cookie"]  # forgotten


def test_a_wrong_password_is_refused_on_the_form(visitor: TestClient, world: World) -> None:
    """The form again, with the message, as a 200: not a 401, which RFC 9110 (15.5.2)
    requires to carry a WWW-Authenticate challenge that a sign-in form has none of."""
    for user, password in ((world.reader, "not the password"), ("nobody", PASSWORD)):
        response = sign_in(visitor, user, password=password)
        assert response.status_code == 200
        assert "www-authenticate" not in response.headers
        assert "wrong user name or password" in response.text
        assert 'action="/login"' in response.text and f'value="{user}"' in response.text
        assert not cookies_set(response)
    assert sign_in(visitor, "", password="").status_code == 400
    too_long = sign_in(visitor, "x" * 200)
    assert too_long.status_code == 200 and "wrong user name or password" in too_long.text


def test_signing_in_again_ends_the_session_the_browser_had(
    visitor: TestClient, anon: TestClient, world: World
) -> None:
    """Signing in over a session (another user on a shared browser, say) replaces the
    cookies and revokes the session they held, rather than leaving it valid for hours
    with nobody to sign it out."""
    signed_in(visitor, world.reader)
    before = str(visitor.cookies.get("cairn_session"))
    signed_in(visitor, world.admin)
    after = str(visitor.cookies.get("cairn_session"))
    assert after != before
    assert ok(visitor.get(f"{V1}/whoami"))["user"] == world.admin
    anon.cookies.set("cairn_session", before)
    assert anon.get(f"{V1}/whoami").status_code == 401
    # a stale or forged cookie in the way is no obstacle
    visitor.cookies.set("cairn_session", "cairn_not-a-session")
    assert sign_in(visitor, world.reader).status_code == 303


def test_sign_in_is_rate_limited_like_the_api_login(
    app: Any, settings: Settings, world: World
) -> None:
    app.state.limiter.limit = 3
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        for _ in range(3):
            assert sign_in(client, world.reader, password="wrong password!").status_code == 200
        refused = sign_in(client, world.reader)  # even the right password, for a while
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "too many failed authentications" in refused.text
        assert not cookies_set(refused)
        # the API login counts the same failures
        api_login = client.post(f"{V1}/login", json={"user": world.reader, "password": PASSWORD})
        assert api_login.status_code == 429


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/login"},
    ],
)
def test_sign_in_from_another_site_is_refused(
    visitor: TestClient, world: World, api: TestClient, headers: dict[str, str]
) -> None:
    response = visitor.post(
        "/login",
        data={"user": world.reader, "password": PASSWORD},
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "another site" in response.text
    assert not cookies_set(response)
    # on record, by anonymous, naming the other site's origin only (no path, no query)
    events = api.get(f"{V1}/audit", params={"outcome": "denied"}).json()["events"]
    (refused,) = [e for e in events if e["action"] == "authenticate"]
    origin = headers.get("Origin") or "https://evil.example"
    assert refused["actor"] == "anonymous"
    assert refused["after"] == {"reason": "a form posted from another site", "origin": origin}


def test_sign_in_without_origin_or_referer_is_accepted(visitor: TestClient, world: World) -> None:
    response = visitor.post(
        "/login", data={"user": world.reader, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/models",
        "javascript:alert(1)",
        "/models\r\nSet-Cookie: x=y",
        "/\t/evil.example",
        "evil.example",
    ],
)
def test_next_never_leads_off_the_site(visitor: TestClient, world: World, target: str) -> None:
    response = sign_in(visitor, world.reader, next=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/models"
    signed_in = visitor.get("/login", params={"next": target})  # goes there, if on the site
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/models"
    visitor.cookies.clear()
    form = visitor.get("/login", params={"next": target})
    assert 'name="next" value="/models"' in form.text


def test_next_keeps_a_path_of_this_site(visitor: TestClient, world: World) -> None:
    target = "/models/risk.fraud/versions/1?x=1"
    response = sign_in(visitor, world.reader, next=target)
    assert response.headers["location"] == target


# -- signing out -------------------------------------------------------------------------------


def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    visitor: TestClient, anon: TestClient, world: World
) -> None:
    signed_in(visitor, world.reader)
    session = str(visitor.cookies.get("cairn_session"))
    for form in ({}, {"csrf_token": ""}, {"csrf_token": csrf_of(visitor) + "x"}):
        refused = visitor.post("/logout", data=form, headers={"Origin": "http://testserver"})
        assert refused.status_code == 403, refused.text
        assert "CSRF token" in refused.text
    refused = visitor.post(
        "/logout", data={"csrf_token": csrf_of(visitor)}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert visitor.get("/models").status_code == 200  # still signed in
    done = visitor.post(
        "/logout", data={"csrf_token": csrf_of(visitor)}, headers={"Origin": "http://testserver"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert not visitor.cookies.get("cairn_session")
    # the session is revoked, not only forgotten: its cookie no longer works anywhere
    anon.cookies.set("cairn_session", session)
    assert anon.get(f"{V1}/whoami").status_code == 401
    stale = anon.get("/models", follow_redirects=False)
    assert stale.status_code == 303 and stale.headers["location"].startswith("/login")
    assert "cairn_session=" in stale.headers["set-cookie"]  # the stale cookie is cleared


def test_a_session_from_the_api_login_can_sign_out_on_the_page(
    visitor: TestClient, anon: TestClient, world: World
) -> None:
    """A session opened by ``POST /api/v1/login`` (the same cookie) browses the pages, but
    its pages cannot hold the CSRF token (the API gave it to the caller, not to a cookie):
    its sign-out is taken when the browser names this site as the form's origin, which
    every browser does, and refused without one or from another site."""
    login = visitor.post(f"{V1}/login", json={"user": world.reader, "password": PASSWORD})
    assert login.status_code == 200 and not visitor.cookies.get("cairn_csrf")
    session = str(visitor.cookies.get("cairn_session"))
    page = visitor.get("/models")
    assert page.status_code == 200 and "Sign out" in page.text
    form = {"csrf_token": ""}  # what the page's form sends
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "http://testserver/"}):
        refused = visitor.post("/logout", data=form, headers=headers)
        assert refused.status_code == 403, (headers, refused.text)
        assert "reload the page" not in refused.text  # no use: it would not help
    assert visitor.get("/models").status_code == 200  # still signed in
    done = visitor.post("/logout", data=form, headers={"Origin": "http://testserver"})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert not visitor.cookies.get("cairn_session")
    anon.cookies.set("cairn_session", session)
    assert anon.get(f"{V1}/whoami").status_code == 401  # revoked on the server


def test_sign_out_without_a_session_goes_to_sign_in(visitor: TestClient) -> None:
    response = visitor.post("/logout", data={"csrf_token": "x"})
    assert response.status_code == 303 and response.headers["location"] == "/login"


# -- the pages ---------------------------------------------------------------------------------


def test_the_models_page_lists_filters_and_pages(
    visitor: TestClient, api: TestClient, world: World
) -> None:
    for i in range(55):
        ok(api.post(f"{V1}/models", json={"name": f"bulk.m{i:02d}"}), 201)
    signed_in(visitor, world.admin)
    first = visitor.get("/models", params={"filter": "name LIKE 'bulk.%'"})
    assert first.status_code == 200
    assert text_of(first).count('href="/models/bulk.m') == 50
    next_link = first.text.split('rel="next" href="')[1].split('"')[0]
    second = visitor.get(html.unescape(next_link))
    assert second.status_code == 200
    assert text_of(second).count('href="/models/bulk.m') == 5
    assert "bulk.m54" in second.text and 'rel="next"' not in second.text
    ordered = visitor.get("/models", params={"filter": "name LIKE 'bulk.%'", "order": "name DESC"})
    assert ordered.text.index("bulk.m54") < ordered.text.index("bulk.m53")


@pytest.mark.parametrize("path", ["/models", "/versions"])
def test_a_malformed_filter_shows_the_error_with_its_position(
    visitor: TestClient, world: World, path: str
) -> None:
    signed_in(visitor, world.reader)
    response = visitor.get(path, params={"filter": "name LIKE"})
    assert response.status_code == 400
    assert "at position 9" in text_of(response)
    assert 'value="name LIKE"' in response.text  # kept in the box to be fixed
    for query in ({"order": "colour DESC"}, {"page": "garbage"}):
        assert visitor.get(path, params=query).status_code == 400


def test_a_reader_sees_only_the_model_they_may_read(visitor: TestClient, world: World) -> None:
    signed_in(visitor, world.reader)
    listed = visitor.get("/models")
    assert world.model in listed.text and world.hidden not in listed.text
    found = visitor.get("/versions")
    assert world.model in found.text and world.hidden not in found.text
    # another model is not found, exactly as one that does not exist (names do not leak)
    hidden = visitor.get(f"/models/{world.hidden}")
    ghost = visitor.get("/models/vault.ghost")
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.text.replace(world.hidden, "vault.ghost") == ghost.text
    assert "<h1>Not found</h1>" in hidden.text


def test_the_model_page(visitor: TestClient, world: World) -> None:
    signed_in(visitor, world.reader)
    page = visitor.get(f"/models/{world.model}")
    assert page.status_code == 200
    text = page.text
    assert str(escape(XSS)) in text  # description and tag, as text
    assert XSS not in text
    assert 'href="/models/risk.fraud/aliases/champion"' in text
    assert 'href="/models/risk.fraud/versions/2"' in text
    assert "1.2.0" in text and "READY" in text


def test_the_version_page(visitor: TestClient, world: World) -> None:
    signed_in(visitor, world.reader)
    one = visitor.get(f"/models/{world.model}/versions/1")
    assert one.status_code == 200
    text = text_of(one)
    for shown in ("READY", "1.1.0", "s3://bucket/run/7", "run-7", "lr", "0.01", "0.93"):
        assert shown in text, shown
    assert XSS not in one.text and str(escape(XSS)) in one.text
    # a javascript: run link is text, never a link
    assert "javascript:alert(document.cookie)" in text
    assert 'href="javascript:' not in one.text
    two = visitor.get(f"/models/{world.model}/versions/2")
    assert 'href="https://runs.example/r/7"' in two.text
    version = ok(visitor.get(f"{V1}/models/{world.model}/versions/1"))
    assert version["digest"] in one.text
    # each file with its size, digest and a download from the API that the cookie opens
    for data, path in ((WEIGHTS, "model/weights.bin"), (CONFIG, "config.json")):
        href = f"/api/v1/models/risk.fraud/versions/1/files/{path}"
        assert f'href="{href}"' in one.text
        entry = next(f for f in version["files"] if f["path"] == path)
        assert entry["digest"] in one.text
        download = visitor.get(href)
        assert download.status_code == 200 and download.content == data


def test_the_alias_history_page(visitor: TestClient, world: World) -> None:
    signed_in(visitor, world.reader)
    page = visitor.get(f"/models/{world.model}/aliases/champion")
    assert page.status_code == 200
    text = text_of(page)
    assert "Points to" in text and "moved" in text and "set to" in text
    assert text.index("moved") < text.index("set to")  # newest first
    unknown = visitor.get(f"/models/{world.model}/aliases/never")
    assert unknown.status_code == 200 and "never been set" in unknown.text
    assert visitor.get(f"/models/{world.model}/aliases/bad%20alias").status_code == 400


def test_the_version_search(visitor: TestClient, world: World) -> None:
    signed_in(visitor, world.reader)
    page = visitor.get("/versions", params={"filter": "semver = '1.2.0'"})
    assert page.status_code == 200
    assert 'href="/models/risk.fraud/versions/2"' in page.text
    assert 'href="/models/risk.fraud/versions/1"' not in page.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/models/risk.fraud/versions/9", 404),
        ("/models/risk.fraud/versions/abc", 400),
        ("/models/risk.fraud/versions/" + "9" * 30, 400),
        ("/models/no.such/versions/1", 404),
        ("/models/bad%3Aname", 400),
    ],
)
def test_missing_and_malformed_pages_are_html_errors(
    visitor: TestClient, world: World, path: str, status: int
) -> None:
    signed_in(visitor, world.reader)
    response = visitor.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to the models" in response.text


def test_names_with_spaces_and_unicode_are_linked_escaped(
    visitor: TestClient, api: TestClient, world: World
) -> None:
    ok(api.post(f"{V1}/models", json={"name": "Fraud Détecteur"}), 201)
    signed_in(visitor, world.admin)
    listed = visitor.get("/models")
    assert 'href="/models/Fraud%20D%C3%A9tecteur"' in listed.text
    assert visitor.get("/models/Fraud%20D%C3%A9tecteur").status_code == 200


def test_a_refused_csrf_token_is_audited_as_the_api_s_is(
    visitor: TestClient, api: TestClient, world: World
) -> None:
    """A sign-out posted without the session's CSRF token (what a forged form looks like)
    is on record as the API's CSRF refusals are: a denied ``authenticate`` by anonymous,
    naming the session's user, with no secret in it."""
    signed_in(visitor, world.reader)
    session, csrf = str(visitor.cookies.get("cairn_session")), csrf_of(visitor)
    for form in ({}, {"csrf_token": "cairn_forged"}):
        refused = visitor.post("/logout", data=form, headers={"Origin": "http://testserver"})
        assert refused.status_code == 403, refused.text
    events = ok(api.get(f"{V1}/audit", params={"outcome": "denied", "max_results": 100}))
    refusals = [e for e in events["events"] if e["action"] == "authenticate"]
    assert len(refusals) == 2, events
    for event in refusals:
        assert event["actor"] == "anonymous"
        assert event["after"] == {"user": world.reader, "reason": "missing or wrong CSRF token"}
        assert event["target"] and session.startswith(event["target"])
    for secret in (session, csrf, "cairn_forged"):
        assert secret not in repr(events)


def test_empty_pages_say_what_to_do(visitor: TestClient, api: TestClient) -> None:
    """An empty registry, a model without versions, a filter that matches nothing: each
    page says how to get something there (or back to everything), not only that it is
    empty."""
    ok(api.post(f"{V1}/users", json={"name": "eve", "password": PASSWORD}), 201)
    signed_in(visitor, "eve")
    for path in ("/models", "/versions"):
        empty = text_of(visitor.get(path))
        assert "cairn push --model" in empty, empty  # how to register one
        assert "cairn grants" in empty  # and why one may be missing
        nothing = visitor.get(path, params={"filter": "name = 'nothing'"})
        assert "match this filter" in nothing.text
        assert f'href="{path}">' in nothing.text  # back to all of them
    ok(api.post(f"{V1}/models", json={"name": "empty model"}), 201)
    ok(
        api.put(
            f"{V1}/grants", json={"subject": "user:eve", "role": "READ", "model": "empty model"}
        )
    )
    model = text_of(visitor.get("/models/empty%20model"))
    assert "No versions yet" in model and "cairn push --model 'empty model'" in model


def test_tables_and_navigation_are_named_for_assistive_technology(
    visitor: TestClient, world: World
) -> None:
    """Every column has a header with text, the page's navigation regions have names that
    tell them apart, and a size in a list gives its exact bytes as the version page does."""
    signed_in(visitor, world.reader)
    version = visitor.get(f"/models/{world.model}/versions/1").text
    assert "<th></th>" not in version
    model = visitor.get(f"/models/{world.model}").text
    assert f'title="{len(WEIGHTS) + len(CONFIG)} bytes"' in model
    for page in (version, model):
        assert '<nav aria-label="Main">' in page
    bulk = visitor.get("/models", params={"page": "x"}).text  # paged: the pager shows
    assert '<nav class="pager" aria-label="Pages">' in bulk
