"""API tokens over HTTP, on SQLite and PostgreSQL: their whole life, and every way a bad
one is refused.

Created (shown once, ``cairn_…``, stored as a hash, listed by prefix), used (Bearer, Basic
as MLflow sends it, the MLflow client's ``MLFLOW_TRACKING_TOKEN``), expired, revoked,
malformed, unknown, sent in a query string, owned by a disabled user; failed attempts
limited per source, per account and per token (429 with Retry-After, good tokens included,
until the window passes); and the bootstrap: the admin token written once to
``<data-dir>/admin.token`` (0600), never replaced, and found there by the SDK.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

import cairn
from cairn.api import auth
from cairn.app import create_app
from cairn.domain import tokens
from cairn.errors import InvalidParameter
from cairn.settings import Settings

V1 = "/api/v1"
DAY_US = 86_400 * 1_000_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with room for the many refusals these tests provoke (the
    limit itself is tested with a small one)."""
    return settings.model_copy(update={"auth_failures_per_minute": 1000})


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json() if response.content else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: httpx.Response, status: int = 401) -> str:
    """The response is the one error body with ``status``; returns its message."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    code = {401: "UNAUTHENTICATED", 429: "REQUEST_LIMIT_EXCEEDED"}[status]
    assert body["error_code"] == code, body
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return str(body["message"])


def new_user(api: TestClient, name: str, scope: str = "write", **fields: Any) -> str:
    ok(api.post(f"{V1}/users", json={"name": name, **fields}), 201)
    made = ok(api.post(f"{V1}/tokens", json={"user": name, "scope": scope}), 201)
    return str(made["token"])


class FakeClock:
    """Stands in for ``time`` in the auth module only: the limiter's window moves on
    when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


# -- lifecycle ---------------------------------------------------------------------------------


def test_a_token_is_shown_once_stored_as_a_hash_and_listed_by_prefix(
    api: TestClient, anon: TestClient, app: FastAPI
) -> None:
    ok(api.post(f"{V1}/users", json={"name": "alice"}), 201)
    made = ok(api.post(f"{V1}/tokens", json={"user": "alice", "name": "ci", "scope": "read"}), 201)
    secret = made["token"]
    assert secret.startswith("cairn_") and len(secret) == tokens.TOKEN_LENGTH
    assert tokens.well_formed(secret)
    assert made["prefix"] == secret[: tokens.DISPLAY_LENGTH] and made["scope"] == "read"
    assert made["user"] == "alice" and made["revoked"] is False and made["expires_at"]
    assert made["last_used_at"] is None
    me = ok(anon.get(f"{V1}/whoami", headers=bearer(secret)))
    assert me["user"] == "alice" and me["scope"] == "read" and me["is_admin"] is False
    listed = ok(anon.get(f"{V1}/tokens", headers=bearer(secret)))["tokens"]
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0] and listed[0]["last_used_at"] is not None
    everyone = api.get(f"{V1}/tokens", params={"all": "true"})
    assert secret not in everyone.text and secret[tokens.DISPLAY_LENGTH :] not in everyone.text
    # the database holds a SHA-256 of it and its display prefix, nothing else of it
    with app.state.service.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM tokens"))]
    assert secret not in repr(rows) and secret[tokens.DISPLAY_LENGTH :] not in repr(rows)
    (row,) = [r for r in rows if r["id"] == made["id"]]
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    # a second token for the same user is a different secret
    other = ok(anon.post(f"{V1}/tokens", headers=bearer(secret), json={"scope": "read"}), 201)
    assert other["token"] != secret and other["user"] == "alice"


def test_no_part_of_a_bootstrap_token_of_another_format_is_shown(
    api: TestClient, app: FastAPI, admin_headers: dict[str, str]
) -> None:
    """Only a ``cairn_`` token's first characters are public; a CAIRN_BOOTSTRAP_TOKEN in
    another format (the tests' own) may be any secret: listings, the database and the audit
    log hold none of it."""
    secret = admin_headers["Authorization"].removeprefix("Bearer ")
    assert not secret.startswith(tokens.PREFIX)
    fresh = ok(api.post(f"{V1}/tokens", json={"scope": "admin"}), 201)
    listed = ok(api.get(f"{V1}/tokens", params={"all": "true"}))["tokens"]
    (bootstrap,) = [t for t in listed if t["name"] == "bootstrap"]
    assert bootstrap["prefix"][:8] not in secret, bootstrap
    ok(api.delete(f"{V1}/tokens/{bootstrap['id']}", headers=bearer(fresh["token"])), 204)
    events = api.get(f"{V1}/audit", headers=bearer(fresh["token"]), params={"limit": 100})
    assert secret[:8] not in ok(events)["events"].__repr__()
    with app.state.service.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT prefix FROM tokens WHERE name = 'bootstrap'")).scalar()
    assert stored[:8] not in secret


def test_expired_and_revoked_tokens_stop_working(
    api: TestClient, anon: TestClient, app: FastAPI
) -> None:
    ok(api.post(f"{V1}/users", json={"name": "alice"}), 201)
    short = ok(api.post(f"{V1}/tokens", json={"user": "alice", "expires_days": 1}), 201)
    forever = ok(api.post(f"{V1}/tokens", json={"user": "alice", "expires_days": None}), 201)
    assert forever["expires_at"] is None
    ok(anon.get(f"{V1}/whoami", headers=bearer(short["token"])))
    service = app.state.service
    real_clock = service.clock
    service.clock = lambda: real_clock() + DAY_US + 1
    try:
        message = refused(anon.get(f"{V1}/whoami", headers=bearer(short["token"])))
        assert "expired" in message
        ok(anon.get(f"{V1}/whoami", headers=bearer(forever["token"])))
    finally:
        service.clock = real_clock
    ok(anon.get(f"{V1}/whoami", headers=bearer(short["token"])))
    # revoked by its owner (with another of their tokens), then by nobody else's token
    ok(anon.delete(f"{V1}/tokens/{short['id']}", headers=bearer(forever["token"])), 204)
    assert "revoked" in refused(anon.get(f"{V1}/whoami", headers=bearer(short["token"])))
    assert "revoked" in refused(anon.post(f"{V1}/tokens", headers=bearer(short["token"]), json={}))
    listed = ok(anon.get(f"{V1}/tokens", headers=bearer(forever["token"])))["tokens"]
    assert {t["id"]: t["revoked"] for t in listed} == {short["id"]: True, forever["id"]: False}
    # a token can revoke itself
    ok(anon.delete(f"{V1}/tokens/{forever['id']}", headers=bearer(forever["token"])), 204)
    refused(anon.get(f"{V1}/whoami", headers=bearer(forever["token"])))
    # out-of-range lifetimes are refused
    for days in (0, -1, 3651, 10**12):
        answer = api.post(f"{V1}/tokens", json={"expires_days": days})
        assert answer.status_code == 400, (days, answer.text)


def test_malformed_unknown_and_misplaced_credentials_are_refused(
    api: TestClient, anon: TestClient
) -> None:
    good = new_user(api, "alice")
    body = good[len(tokens.PREFIX) : -6]
    wrong_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    malformed = {
        "wrong checksum": bearer(wrong_checksum),
        "changed body, old checksum": bearer(tokens.PREFIX + body[::-1] + good[-6:]),
        "truncated": bearer(good[:-3]),
        "extended": bearer(good + "x"),
        "prefix only": bearer(tokens.PREFIX),
        "spaces inside": bearer(good[:20] + " " + good[20:]),
        "10 KB": bearer(good + "a" * 10_240),
        "empty bearer": {"Authorization": "Bearer "},
        "scheme only": {"Authorization": "Bearer"},
        "other scheme": {"Authorization": f"Token {good}"},
        "basic, not base64": {"Authorization": "Basic !!!"},
        "basic, no password": {"Authorization": "Basic " + base64.b64encode(b"alice:").decode()},
        "basic, password is another token": {
            "Authorization": "Basic "
            + base64.b64encode(f"alice:{wrong_checksum}".encode()).decode()
        },
        "unknown, well formed": bearer(tokens.new_token()),
        "foreign, long, unknown": bearer("x" * 40),
    }
    for label, headers in malformed.items():
        answer = anon.get(f"{V1}/whoami", headers=headers)
        refused(answer)
        assert good not in answer.text, label
    # bytes that are not ASCII (httpx sends str headers as ASCII: give it bytes)
    for raw in ("cairn_" + "é" * 38, good[:-1] + "é"):
        answer = anon.get(f"{V1}/whoami", headers={"Authorization": b"Bearer " + raw.encode()})
        refused(answer)
    # query strings are refused, with or without a valid header, on every API
    for name in ("token", "access_token", "api_key", "Token"):
        for url in (f"{V1}/whoami", f"{V1}/models", "/api/2.0/mlflow/registered-models/search"):
            refused(anon.get(url, params={name: good}))
            message = refused(anon.get(url, params={name: good}, headers=bearer(good)))
            assert "query string" in message
    # the good one still works, as Bearer and as the password of Basic (MLflow's way)
    assert ok(anon.get(f"{V1}/whoami", headers=bearer(good)))["user"] == "alice"
    assert ok(anon.get(f"{V1}/whoami", auth=("alice", good)))["user"] == "alice"
    assert ok(anon.get(f"{V1}/whoami", auth=("anyone", good)))["user"] == "alice"
    refused(anon.get(f"{V1}/whoami", auth=(good, "")))


def test_an_empty_bearer_or_basic_header_is_called_empty(anon: TestClient) -> None:
    """``Bearer`` with no token is not an unsupported scheme: the message says what is wrong."""
    for header in ("Bearer", "Bearer   ", "bearer", "Basic", "Basic "):
        message = refused(anon.get(f"{V1}/whoami", headers={"Authorization": header}))
        assert "unsupported" not in message and "no credentials" in message, (header, message)
    assert "unsupported" in refused(anon.get(f"{V1}/whoami", headers={"Authorization": "Token x"}))


def test_a_disabled_user_loses_every_token(api: TestClient, anon: TestClient) -> None:
    token = new_user(api, "alice")
    ok(api.post(f"{V1}/models", json={"name": "m"}), 201)
    ok(api.put(f"{V1}/grants", json={"subject": "user:alice", "role": "READ", "model": "m"}))
    ok(anon.get(f"{V1}/models/m", headers=bearer(token)))
    ok(api.patch(f"{V1}/users/alice", json={"disabled": True}))
    refused(anon.get(f"{V1}/models/m", headers=bearer(token)))
    refused(
        anon.get(
            "/api/2.0/mlflow/registered-models/get", params={"name": "m"}, headers=bearer(token)
        )
    )
    assert api.post(f"{V1}/tokens", json={"user": "alice"}).status_code == 400
    ok(api.patch(f"{V1}/users/alice", json={"disabled": False}))
    refused(anon.get(f"{V1}/models/m", headers=bearer(token)))  # revoked for good
    fresh = ok(api.post(f"{V1}/tokens", json={"user": "alice"}), 201)["token"]
    ok(anon.get(f"{V1}/models/m", headers=bearer(fresh)))


def test_a_token_for_a_name_no_account_can_have_is_not_found(api: TestClient) -> None:
    """A NUL (PostgreSQL cannot compare text holding one) or half a surrogate pair (not
    text at all) in the user's name: no such user, not a 500."""
    new_user(api, "alice")
    for body in (b'{"user": "ali\\u0000ce"}', b'{"user": "ali\\ud800ce"}'):
        answer = api.post(
            f"{V1}/tokens", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 404, answer.text
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert [t["user"] for t in ok(api.get(f"{V1}/tokens", params={"all": True}))["tokens"]] == [
        "admin",
        "alice",
    ]


# -- the MLflow client -------------------------------------------------------------------------


@contextmanager
def mlflow_registry(uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The stock MLflow client with Cairn as its registry (see tests/mlflow/conftest.py)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from sqlalchemy.exc import SADeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The ``noload`` loader", SADeprecationWarning)
        warnings.filterwarnings("ignore", ".*Any type hint is inferred as AnyType", UserWarning)
        import mlflow
        from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    assert mlflow.get_registry_uri  # imported under the filters above, used through the client
    yield MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_the_mlflow_client_authenticates_with_its_tracking_token(
    api: TestClient, live_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = new_user(api, "alice")
    ok(api.put(f"{V1}/grants", json={"subject": "user:alice", "role": "WRITE", "pattern": "*"}))
    with mlflow_registry(live_server, monkeypatch, tmp_path) as registry:
        from mlflow.exceptions import MlflowException

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        registry.create_registered_model("risk.fraud")
        assert registry.get_registered_model("risk.fraud").name == "risk.fraud"
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        with pytest.raises(MlflowException) as refused_anonymous:
            registry.get_registered_model("risk.fraud")
        assert "UNAUTHENTICATED" in str(refused_anonymous.value)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens.new_token())
        with pytest.raises(MlflowException) as refused_unknown:
            registry.search_registered_models()
        assert "UNAUTHENTICATED" in str(refused_unknown.value)
        # MLflow's basic auth: the token is the password
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", token)
        assert [m.name for m in registry.search_registered_models()] == ["risk.fraud"]
    created_by = ok(api.get(f"{V1}/models/risk.fraud"))["created_by"]
    assert created_by == "alice"


# -- brute force -------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


def client_at(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


def test_failed_tokens_are_limited_per_source(
    api: TestClient, app: FastAPI, clock: FakeClock
) -> None:
    good = new_user(api, "alice")
    app.state.limiter = auth.RateLimiter(limit=10, window_s=60)
    with client_at(app, "10.0.0.1") as attacker, client_at(app, "10.0.0.2") as bystander:
        for _ in range(10):
            refused(attacker.get(f"{V1}/whoami", headers=bearer(tokens.new_token())))
            clock.now += 1
        answer = attacker.get(f"{V1}/whoami", headers=bearer(tokens.new_token()))
        refused(answer, 429)
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
        # even a good token, from that source, until the window passes
        refused(attacker.get(f"{V1}/whoami", headers=bearer(good)), 429)
        refused(attacker.post(f"{V1}/login", json={"user": "alice", "password": "x" * 12}), 429)
        ok(bystander.get(f"{V1}/whoami", headers=bearer(good)))
        clock.now += 30
        refused(attacker.get(f"{V1}/whoami", headers=bearer(good)), 429)
        clock.now += 31  # every failure is now more than a minute old
        assert ok(attacker.get(f"{V1}/whoami", headers=bearer(good)))["user"] == "alice"
        # successes do not wipe the count: nine failures, a success, one more failure
        for _ in range(9):
            refused(attacker.get(f"{V1}/whoami", headers=bearer(tokens.new_token())))
        ok(attacker.get(f"{V1}/whoami", headers=bearer(good)))
        refused(attacker.get(f"{V1}/whoami", headers=bearer(tokens.new_token())))
        refused(attacker.get(f"{V1}/whoami", headers=bearer(good)), 429)


def test_credentials_refused_unread_count_against_the_source_too(
    api: TestClient, app: FastAPI, clock: FakeClock
) -> None:
    """Tokens in a query string and malformed Basic headers are failed authentications:
    they count against the source as a wrong token does, and a source past the limit is
    refused them with 429 as it is refused everything else."""
    good = new_user(api, "alice")
    app.state.limiter = auth.RateLimiter(limit=4, window_s=60)
    probes: list[dict[str, Any]] = [
        {"params": {"access_token": tokens.new_token()}},
        {"params": {"token": "guess"}},
        {"headers": {"Authorization": "Basic !!!"}},
        {"headers": {"Authorization": b"Basic " + base64.b64encode(b"alice:\xff")}},
    ]
    with client_at(app, "10.0.5.1") as prober, client_at(app, "10.0.5.2") as bystander:
        for probe in probes:
            refused(prober.get(f"{V1}/whoami", **probe))
        for probe in probes:
            refused(prober.get(f"{V1}/whoami", **probe), 429)
        refused(prober.get(f"{V1}/whoami", headers=bearer(good)), 429)
        # anonymous calls (no credentials at all) are not failures: they never lock out
        for _ in range(5):
            refused(bystander.get(f"{V1}/whoami"))
        ok(bystander.get(f"{V1}/whoami", headers=bearer(good)))
        clock.now += 61
        ok(prober.get(f"{V1}/whoami", headers=bearer(good)))


def test_guesses_at_a_token_prefix_do_not_lock_the_token_out(
    api: TestClient, app: FastAPI, clock: FakeClock
) -> None:
    """Prefixes are public (listings, the audit log): failures count per source, so guesses
    against a prefix from many sources block those sources, never the real token."""
    good = new_user(api, "alice")
    guess = good[:-1] + ("0" if good[-1] != "0" else "1")
    app.state.limiter = auth.RateLimiter(limit=5, window_s=60)
    for i in range(5):
        with client_at(app, f"10.0.1.{i}") as source:
            for _ in range(5):
                refused(source.get(f"{V1}/whoami", headers=bearer(guess)))
            refused(source.get(f"{V1}/whoami", headers=bearer(guess)), 429)
    with client_at(app, "10.0.2.1") as owner:
        assert ok(owner.get(f"{V1}/whoami", headers=bearer(good)))["user"] == "alice"


def test_failed_logins_are_limited_per_account(
    api: TestClient, app: FastAPI, clock: FakeClock
) -> None:
    password = "the right password"
    for name in ("alice", "bob"):
        ok(api.post(f"{V1}/users", json={"name": name, "password": password}), 201)
    app.state.limiter = auth.RateLimiter(limit=5, window_s=60)
    for i in range(5):
        with client_at(app, f"10.0.3.{i}") as source:
            wrong = source.post(
                f"{V1}/login", json={"user": "alice", "password": f"guess {i}!!!!!"}
            )
            refused(wrong)
    with client_at(app, "10.0.4.1") as fresh:
        # the account is locked for a minute, whatever the password and the source
        locked = fresh.post(f"{V1}/login", json={"user": "ALICE", "password": password})
        refused(locked, 429)
        assert "Retry-After" in locked.headers
        ok(fresh.post(f"{V1}/login", json={"user": "bob", "password": password}))
        clock.now += 61
        ok(fresh.post(f"{V1}/login", json={"user": "alice", "password": password}))


def test_the_limit_comes_from_the_settings(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth_failures_per_minute": 3}))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            for _ in range(3):
                refused(client.get(f"{V1}/whoami", headers=bearer(tokens.new_token())))
            refused(client.get(f"{V1}/whoami", headers=bearer(tokens.new_token())), 429)
    finally:
        app.state.service.db.dispose()


# -- bootstrap ---------------------------------------------------------------------------------


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_bootstrap_writes_the_admin_token_once_and_the_sdk_finds_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CAIRN_BOOTSTRAP_TOKEN")
    monkeypatch.delenv("CAIRN_TOKEN")
    fresh = settings.model_copy(update={"bootstrap_token": None, "data_dir": tmp_path / "fresh"})
    path = fresh.data_dir / "admin.token"
    app = create_app(fresh)
    try:
        secret = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert secret.startswith("cairn_") and tokens.well_formed(secret)
        assert [p.name for p in fresh.data_dir.iterdir()] == ["admin.token"]  # no temp file left
        before = path.stat()
        with serve(app) as url:
            # the SDK on a loopback URL reads $CAIRN_DATA_DIR/admin.token
            monkeypatch.setenv("CAIRN_DATA_DIR", str(fresh.data_dir))
            sdk = cairn.Client(url)
            try:
                assert sdk.whoami()["user"] == "admin" and sdk.whoami()["is_admin"] is True
                sdk.create_model("bootstrapped")
            finally:
                sdk.close()
            monkeypatch.setenv("CAIRN_DATA_DIR", str(tmp_path / "elsewhere"))
            nobody = httpx.get(f"{url}/api/v1/whoami")
            assert nobody.status_code == 401
    finally:
        app.state.service.db.dispose()
    # a second start, even with a bootstrap token given, changes nothing
    again = create_app(fresh.model_copy(update={"bootstrap_token": SecretStr(tokens.new_token())}))
    try:
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
            before.st_ino,
            before.st_mtime_ns,
            before.st_size,
        )
        assert path.read_text().strip() == secret
        with TestClient(again, raise_server_exceptions=False) as client:
            ok(client.get(f"{V1}/models/bootstrapped", headers=bearer(secret)))
    finally:
        again.state.service.db.dispose()
    # not for servers elsewhere: the file is only offered to loopback URLs
    monkeypatch.setenv("CAIRN_DATA_DIR", str(fresh.data_dir))
    from cairn.client import local_admin_token

    assert local_admin_token("http://127.0.0.1:1") == secret
    assert local_admin_token("https://registry.example.com") is None


def test_a_bootstrap_token_from_the_environment_is_not_written(
    settings: Settings, tmp_path: Path
) -> None:
    given = tokens.new_token()
    fresh = settings.model_copy(
        update={"bootstrap_token": SecretStr(given), "data_dir": tmp_path / "given"}
    )
    app = create_app(fresh)
    try:
        assert not (fresh.data_dir / "admin.token").exists()
        with TestClient(app, raise_server_exceptions=False) as client:
            assert ok(client.get(f"{V1}/whoami", headers=bearer(given)))["is_admin"] is True
        with pytest.raises(InvalidParameter, match="CAIRN_BOOTSTRAP_TOKEN"):
            app.state.service.bootstrap("too short")
    finally:
        app.state.service.db.dispose()
