"""UI login sessions over HTTP, on SQLite and PostgreSQL.

``POST /api/v1/login`` checks a password (argon2id) and sets an HttpOnly, SameSite=Strict
session cookie; its answer carries the CSRF token that every unsafe request made with the
cookie must send as ``X-CSRF-Token``. Logout revokes the session. Wrong passwords are
refused alike for unknown users, and counted against the source and the account. Service
accounts never have passwords.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from cairn.api.auth import SESSION_COOKIE, RateLimiter
from cairn.settings import Settings

V1 = "/api/v1"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for the refusals these tests provoke (one test sets a small limit itself)."""
    return settings.model_copy(update={"auth_failures_per_minute": 1000})


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.json()["error_code"] == code, response.text
    return str(response.json()["message"])


@pytest.fixture
def browser(app: FastAPI, api: TestClient) -> Iterator[TestClient]:
    """A client with no token that keeps cookies, as a browser does; alice exists, with a
    password and WRITE on ``risk.*``."""
    ok(api.post(f"{V1}/users", json={"name": "alice", "password": PASSWORD}), 201)
    ok(
        api.put(
            f"{V1}/grants", json={"subject": "user:alice", "role": "WRITE", "pattern": "risk.*"}
        )
    )
    ok(api.post(f"{V1}/models", json={"name": "risk.fraud"}), 201)
    client = TestClient(app, raise_server_exceptions=False)
    yield client
    client.close()


def login(client: TestClient, user: str = "alice", password: str = PASSWORD) -> tuple[str, str]:
    """Log in; returns (session cookie, CSRF token) after checking the cookie's flags."""
    response = client.post(f"{V1}/login", json={"user": user, "password": password})
    body = ok(response)
    assert set(body) == {"user", "csrf_token", "expires_in"}, body
    assert body["user"] == user and body["expires_in"] > 0
    (header,) = response.headers.get_list("set-cookie")
    cookie = SimpleCookie(header)[SESSION_COOKIE]
    flags = header.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert cookie.value not in response.text  # the secret is only in the cookie
    assert cookie.value != body["csrf_token"]
    return cookie.value, str(body["csrf_token"])


def test_login_sets_a_strict_httponly_cookie_that_authenticates_reads(
    browser: TestClient,
) -> None:
    session, _csrf = login(browser)
    me = ok(browser.get(f"{V1}/whoami"))
    assert me["user"] == "alice" and me["scope"] == "write" and me["is_admin"] is False
    assert ok(browser.get(f"{V1}/models/risk.fraud"))["name"] == "risk.fraud"
    ok(browser.get("/api/2.0/mlflow/registered-models/get", params={"name": "risk.fraud"}))
    # the cookie's secret is a session, not an API token, and the other way round
    bare = TestClient(browser.app, raise_server_exceptions=False)
    error(
        bare.get(f"{V1}/whoami", headers={"Authorization": f"Bearer {session}"}),
        401,
        "UNAUTHENTICATED",
    )
    token = ok(
        browser.post(f"{V1}/tokens", json={"scope": "read"}, headers={"X-CSRF-Token": _csrf}), 201
    )
    bare.cookies.set(SESSION_COOKIE, token["token"])
    error(bare.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    # a bearer token wins over a cookie sent alongside it
    both = bare.get(f"{V1}/whoami", headers={"Authorization": f"Bearer {token['token']}"})
    assert ok(both)["scope"] == "read"


UNSAFE = [
    ("POST", f"{V1}/models/risk.fraud/versions", {}),
    ("PUT", f"{V1}/models/risk.fraud/tags/team", {"value": "risk"}),
    ("PATCH", f"{V1}/models/risk.fraud", {"description": "changed"}),
    ("DELETE", f"{V1}/models/risk.fraud/tags/team", None),
    (
        "POST",
        "/api/2.0/mlflow/registered-models/set-tag",
        {"name": "risk.fraud", "key": "k", "value": "v"},
    ),
]


def test_unsafe_requests_with_the_cookie_need_the_csrf_token(
    browser: TestClient, api: TestClient
) -> None:
    _session, csrf = login(browser)
    other = TestClient(browser.app, raise_server_exceptions=False)
    _other_session, other_csrf = login(other)  # another session of the same user
    ok(api.put(f"{V1}/models/risk.fraud/tags/team", json={"value": "before"}))
    for method, url, body in UNSAFE:
        for headers in (
            {},
            {"X-CSRF-Token": ""},
            {"X-CSRF-Token": csrf[:-1]},
            {"X-CSRF-Token": csrf + "x"},
            {"X-CSRF-Token": other_csrf},
        ):
            refused = browser.request(method, url, json=body, headers=headers)
            assert "CSRF" in error(refused, 403, "PERMISSION_DENIED"), (method, url, headers)
    model = ok(api.get(f"{V1}/models/risk.fraud"))  # nothing changed
    assert model["tags"] == {"team": "before"} and model["latest_version"] is None
    assert model["description"] == ""
    for method, url, body in UNSAFE:
        answer = browser.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
        assert 200 <= answer.status_code < 300, (method, url, answer.text)
    model = ok(api.get(f"{V1}/models/risk.fraud"))
    assert model["latest_version"] == 1 and model["description"] == "changed"
    assert model["tags"] == {"k": "v"}
    other.close()


def test_logout_revokes_the_session(browser: TestClient, api: TestClient) -> None:
    session, csrf = login(browser)
    error(browser.post(f"{V1}/logout"), 403, "PERMISSION_DENIED")  # unsafe: CSRF needed
    ok(browser.get(f"{V1}/whoami"))
    response = browser.post(f"{V1}/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert (
        f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    error(browser.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    # the old cookie, replayed, is dead
    replay = TestClient(browser.app, raise_server_exceptions=False)
    replay.cookies.set(SESSION_COOKIE, session)
    error(replay.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    # sessions are not API tokens: alice has none listed
    listed = ok(api.get(f"{V1}/tokens", params={"all": "true"}))["tokens"]
    assert [t for t in listed if t["user"] == "alice"] == []


def test_sessions_expire_and_die_with_a_disabled_account(
    browser: TestClient, api: TestClient, app: FastAPI
) -> None:
    login(browser)
    service = app.state.service
    real_clock = service.clock
    service.clock = lambda: real_clock() + 12 * 3600 * 1_000_000 + 1
    try:
        assert "expired" in error(browser.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    finally:
        service.clock = real_clock
    login(browser)
    ok(api.patch(f"{V1}/users/alice", json={"disabled": True}))
    error(browser.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    error(
        browser.post(f"{V1}/login", json={"user": "alice", "password": PASSWORD}),
        401,
        "UNAUTHENTICATED",
    )


def test_a_new_password_ends_the_other_sessions(
    browser: TestClient, api: TestClient, app: FastAPI
) -> None:
    """Whoever logged in with the old password (someone who learned it, say) is logged
    out when it changes: every session of the user but the one that changed it. API
    tokens are not sessions and live on."""
    token = ok(api.post(f"{V1}/tokens", json={"user": "alice", "scope": "write"}), 201)["token"]
    login(browser)
    elsewhere = TestClient(app, raise_server_exceptions=False)
    _session, csrf = login(elsewhere)
    third = TestClient(app, raise_server_exceptions=False)
    login(third)
    new = "a brand new long password"
    ok(elsewhere.patch(f"{V1}/users/alice", json={"password": new}, headers={"X-CSRF-Token": csrf}))
    error(browser.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    error(third.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    assert ok(elsewhere.get(f"{V1}/whoami"))["user"] == "alice"  # the one that changed it
    bearer = {"Authorization": f"Bearer {token}"}
    assert ok(browser.get(f"{V1}/whoami", headers=bearer))["user"] == "alice"
    # an administrator's reset ends them all
    login(browser, password=new)
    ok(api.patch(f"{V1}/users/alice", json={"password": PASSWORD}))
    error(browser.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    error(elsewhere.get(f"{V1}/whoami"), 401, "UNAUTHENTICATED")
    login(browser)


def test_wrong_passwords_are_refused_alike_and_counted(
    browser: TestClient, api: TestClient, app: FastAPI
) -> None:
    ok(api.post(f"{V1}/users", json={"name": "robot", "service": True}), 201)
    ok(api.post(f"{V1}/users", json={"name": "tokens-only"}), 201)
    messages = set()
    for user, password in (
        ("alice", PASSWORD + "!"),
        ("alice", PASSWORD.upper()),
        ("alice", ""),
        ("nobody", PASSWORD),
        ("robot", PASSWORD),
        ("tokens-only", PASSWORD),
        ("admin", PASSWORD),
        ("", PASSWORD),
    ):
        answer = browser.post(f"{V1}/login", json={"user": user, "password": password})
        messages.add(error(answer, 401, "UNAUTHENTICATED"))
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert len(messages) == 1  # an unknown user reads like a wrong password
    # user names are matched without regard to case
    assert (
        ok(browser.post(f"{V1}/login", json={"user": "ALICE", "password": PASSWORD}))["user"]
        == "alice"
    )
    # a small limit: the next wrong attempts lock the account (and the source) for a while
    app.state.limiter = RateLimiter(limit=3, window_s=60)
    for _ in range(3):
        error(
            browser.post(f"{V1}/login", json={"user": "alice", "password": "wrong"}),
            401,
            "UNAUTHENTICATED",
        )
    locked = browser.post(f"{V1}/login", json={"user": "alice", "password": PASSWORD})
    error(locked, 429, "REQUEST_LIMIT_EXCEEDED")
    assert int(locked.headers["Retry-After"]) >= 1
    # the bodies a login takes are JSON with exactly these fields
    app.state.limiter = RateLimiter(limit=1000, window_s=60)
    for body in ({"user": "alice", "password": PASSWORD, "admin": True}, {"user": "alice"}):
        error(browser.post(f"{V1}/login", json=body), 400, "INVALID_PARAMETER_VALUE")
    form = browser.post(f"{V1}/login", data={"user": "alice", "password": PASSWORD})
    assert form.status_code == 415  # a cross-site form cannot log anyone in


def test_a_user_name_no_account_can_have_is_a_wrong_login(browser: TestClient) -> None:
    """A NUL in the name (PostgreSQL cannot compare text holding one): refused like any
    unknown user, not a 500."""
    for user in ("ali\x00ce", "alice\x00", "\x00"):
        answer = browser.post(f"{V1}/login", json={"user": user, "password": PASSWORD})
        assert "wrong user name or password" in error(answer, 401, "UNAUTHENTICATED")
    login(browser)


def test_passwords_are_set_by_admins_or_their_owner_and_never_for_service_accounts(
    api: TestClient, app: FastAPI
) -> None:
    ok(api.post(f"{V1}/users", json={"name": "bob", "password": PASSWORD}), 201)
    bob = TestClient(app, raise_server_exceptions=False)
    _session, csrf = login(bob, "bob")
    # too short, or for a service account: refused
    error(
        api.post(f"{V1}/users", json={"name": "eve", "password": "short"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    refused = api.post(f"{V1}/users", json={"name": "robot", "service": True, "password": PASSWORD})
    assert "service accounts" in error(refused, 400, "INVALID_PARAMETER_VALUE")
    ok(api.post(f"{V1}/users", json={"name": "robot", "service": True}), 201)
    error(
        api.patch(f"{V1}/users/robot", json={"password": PASSWORD}), 400, "INVALID_PARAMETER_VALUE"
    )
    error(
        bob.post(f"{V1}/login", json={"user": "robot", "password": PASSWORD}),
        401,
        "UNAUTHENTICATED",
    )
    users = {u["name"]: u for u in ok(api.get(f"{V1}/users"))["users"]}
    assert users["robot"]["has_password"] is False and users["bob"]["has_password"] is True
    assert "password" not in str(users).replace("has_password", "")
    with app.state.service.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE name = 'bob'")).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    # bob changes his own password (with his session and its CSRF token), not alice's
    ok(api.post(f"{V1}/users", json={"name": "alice", "password": PASSWORD}), 201)
    new = "another long password"
    ok(bob.patch(f"{V1}/users/bob", json={"password": new}, headers={"X-CSRF-Token": csrf}))
    error(
        bob.patch(f"{V1}/users/alice", json={"password": new}, headers={"X-CSRF-Token": csrf}),
        403,
        "PERMISSION_DENIED",
    )
    login(TestClient(app, raise_server_exceptions=False), "bob", new)
    error(
        api.post(f"{V1}/login", json={"user": "bob", "password": PASSWORD}), 401, "UNAUTHENTICATED"
    )
    login(TestClient(app, raise_server_exceptions=False), "alice", PASSWORD)
    # an admin's session is the instance ADMIN; a read token cannot turn into one
    ok(api.patch(f"{V1}/users/admin", json={"password": PASSWORD}))
    admin = TestClient(app, raise_server_exceptions=False)
    login(admin, "admin")
    me = ok(admin.get(f"{V1}/whoami"))
    assert me["is_admin"] is True and me["scope"] == "admin"
    ok(admin.get(f"{V1}/users"))


def test_a_password_that_is_not_text_is_refused(api: TestClient) -> None:
    """Half a surrogate pair (JSON's \\ud800) cannot be hashed: 400, not a 500."""
    ok(api.post(f"{V1}/users", json={"name": "bob"}), 201)
    body = b'{"password": "\\ud800 a long password"}'
    headers = {"Content-Type": "application/json"}
    for answer in (
        api.post(f"{V1}/users", content=b'{"name": "eve", ' + body[1:], headers=headers),
        api.patch(f"{V1}/users/bob", content=body, headers=headers),
    ):
        assert "surrogate" in error(answer, 400, "INVALID_PARAMETER_VALUE")
    users = {u["name"]: u for u in ok(api.get(f"{V1}/users"))["users"]}
    assert "eve" not in users and users["bob"]["has_password"] is False


def test_unknown_users_cost_a_verification_with_the_hashers_parameters() -> None:
    """A login of an unknown name verifies the password against ``DUMMY_HASH`` so that it
    takes as long as a wrong password; that holds while the literal's parameters are the
    hasher's own (a new argon2-cffi default would make unknown names answer faster)."""
    from argon2.exceptions import VerifyMismatchError

    from cairn.service.credentials import DUMMY_HASH, PASSWORDS

    assert not PASSWORDS.check_needs_rehash(DUMMY_HASH)
    with pytest.raises(VerifyMismatchError):
        PASSWORDS.verify(DUMMY_HASH, "any password at all")


def test_logins_logouts_and_the_bootstrap_are_audited_without_secrets(
    browser: TestClient, api: TestClient, admin_headers: dict[str, str]
) -> None:
    """A session is a credential like a token: creating and ending one is on record, and so
    is the bootstrap's admin user and token; none of their secrets is."""
    session, csrf = login(browser)
    ok(browser.post(f"{V1}/logout", headers={"X-CSRF-Token": csrf}), 204)
    browser.post(f"{V1}/logout", headers={"X-CSRF-Token": csrf})  # already ended: no event
    events = ok(api.get(f"{V1}/audit", params={"oldest_first": "true", "max_results": 1000}))
    seen = [(e["actor"], e["action"], e["target"]) for e in events["events"]]
    assert seen[:2] == [
        ("system", "user.create", "admin"),
        ("system", "token.create", "admin:(external)"),
    ]
    assert [s for s in seen if s[1].startswith("session.")] == [
        ("alice", "session.create", "alice"),
        ("alice", "session.revoke", "alice"),
    ]
    (created,) = [e for e in events["events"] if e["action"] == "session.create"]
    assert created["after"]["scope"] == "write" and created["client"] and created["request_id"]
    text_of_log = repr(events)
    bootstrap_secret = admin_headers["Authorization"].removeprefix("Bearer ")
    for secret in (session, csrf, PASSWORD, bootstrap_secret):
        assert secret not in text_of_log


def test_a_refused_login_names_an_account_only_if_there_is_one(
    browser: TestClient, api: TestClient
) -> None:
    """A wrong password for alice is on record against alice (by her account's name, not
    as typed); a name no account has is not kept at all: people type passwords into the
    user-name field, and the audit log must not collect them."""
    typed_password = "hunter2-typed-into-the-wrong-field"
    for user in ("ALICE", typed_password):
        response = browser.post(f"{V1}/login", json={"user": user, "password": "wrong"})
        error(response, 401, "UNAUTHENTICATED")
    events = ok(api.get(f"{V1}/audit", params={"outcome": "denied", "max_results": 1000}))
    refusals = [e for e in events["events"] if e["action"] == "login"]
    assert [(e["target"], e["after"]) for e in refusals] == [
        (None, {"unknown_user": True}),
        ("alice", None),
    ]
    assert all(e["actor"] == "anonymous" and e["client"] for e in refusals)
    assert typed_password not in repr(events)


def test_a_csrf_refusal_is_audited_without_secrets(browser: TestClient, api: TestClient) -> None:
    """A cookie request refused for its CSRF token (a forged cross-site request, say) is on
    record like any refused authentication: ``authenticate``, denied, by ``anonymous``
    (the user did not make it, as far as anyone knows), naming the session's user and
    showing only the session's display prefix; neither the session, its CSRF token nor
    the wrong token sent is in the log."""
    session, csrf = login(browser)
    wrong = csrf[:-1] + ("x" if csrf[-1] != "x" else "y")
    for headers in ({}, {"X-CSRF-Token": wrong}):
        refused = browser.put(
            f"{V1}/models/risk.fraud/tags/team", json={"value": "forged"}, headers=headers
        )
        assert "CSRF" in error(refused, 403, "PERMISSION_DENIED")
    events = ok(api.get(f"{V1}/audit", params={"outcome": "denied", "max_results": 1000}))
    refusals = [e for e in events["events"] if e["action"] == "authenticate"]
    assert len(refusals) == 2, events
    for event in refusals:
        assert event["actor"] == "anonymous" and event["outcome"] == "denied"
        assert event["target"] and session.startswith(event["target"])
        assert len(event["target"]) < len(session)
        assert event["after"] == {"user": "alice", "reason": "missing or wrong CSRF token"}
        assert event["client"] and event["request_id"]
    text_of_log = repr(events)
    for secret in (session, csrf, wrong):
        assert secret not in text_of_log
