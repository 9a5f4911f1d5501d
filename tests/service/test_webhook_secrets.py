"""Webhook signing secrets at rest, on SQLite and PostgreSQL: the table never holds one in
the clear, deliveries to a real receiver still verify with the secret shown at creation,
secrets written in the clear before are sealed at start, rotation with two keys, and a
secret whose key is missing or that was moved to another row fails clearly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from cairn.app import create_app
from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.webhooks import verify_signature
from cairn.errors import Conflict, PermissionDenied
from cairn.service.base import Limits
from cairn.service.keyring import KEY_FILE, Keyring, new_key_text, sealed_with
from cairn.service.registry import RegistryService
from cairn.service.webhook_delivery import Dispatcher
from cairn.settings import Settings
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database

A, B = new_key_text(), new_key_text()
LATER = 60 * 10**6  # what was just queued is due a minute on


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


def service_with(db: Database, blob_root: Path, keys: str) -> RegistryService:
    limits = Limits(webhook_allow_private=True)
    return RegistryService(db, LocalBlobStore(blob_root), limits=limits, keyring=Keyring(keys))


def stored(db: Database) -> dict[str, str]:
    """The ``secret`` column as the database holds it, by webhook name."""
    with db.engine.connect() as conn:
        return {r.name: r.secret for r in conn.execute(text("SELECT name, secret FROM webhooks"))}


def audit_text(db: Database) -> str:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, target, before, after FROM audit_events"))
        return json.dumps([list(r) for r in rows])


def deliver(db: Database, keyring: Keyring) -> int:
    dispatcher = Dispatcher(db, keyring=keyring, allow_private=True, clock=lambda: now_us() + LATER)
    try:
        return dispatcher.run_once()
    finally:
        dispatcher.stop()


def last_attempt(svc: RegistryService, name: str) -> Any:
    return svc.list_webhook_deliveries(SYSTEM, name, max_results=1).items[0]


def verifies(secret: str, received: tuple[dict[str, str], bytes]) -> bool:
    headers, body = received
    return verify_signature(
        secret, headers["Cairn-Signature"], body, now=(now_us() + LATER) // 10**6
    )


@pytest.fixture
def app_db(app: FastAPI) -> Iterator[Database]:
    yield app.state.service.db


def test_the_table_never_holds_a_secret_in_the_clear(
    api: TestClient, app: FastAPI, app_db: Database, receiver: Any
) -> None:
    given = "whsec_chosen-by-the-caller-0123456789"
    made = api.post(
        "/api/v1/webhooks", json={"name": "given", "url": receiver.url, "secret": given}
    )
    generated = api.post("/api/v1/webhooks", json={"name": "made", "url": receiver.url})
    assert made.status_code == generated.status_code == 201
    secrets = {"given": given, "made": generated.json()["secret"]}
    key = app.state.service.keyring.current().id
    for name, value in stored(app_db).items():
        assert secrets[name] not in value and sealed_with(value) == key

    rotated = api.post("/api/v1/webhooks/given/rotate-secret", json={"secret": given + "-2"})
    again = api.post("/api/v1/webhooks/made/rotate-secret")
    assert rotated.status_code == again.status_code == 200
    secrets = {"given": given + "-2", "made": again.json()["secret"]}
    for name, value in stored(app_db).items():
        assert secrets[name] not in value and sealed_with(value) == key
    everything = audit_text(app_db)
    assert given not in everything and secrets["made"] not in everything
    assert (app.state.settings.data_dir / KEY_FILE).exists()  # made on first need

    # and what is sent verifies with the secret shown when it was made
    assert api.post("/api/v1/webhooks/given/ping").status_code == 202
    assert deliver(app_db, app.state.service.keyring) == 1
    (received,) = receiver.received
    assert verifies(secrets["given"], received) and not verifies(given, received)


def test_secrets_written_in_the_clear_keep_working_and_are_sealed_at_start(
    settings: Settings, api: TestClient, app: FastAPI, app_db: Database, receiver: Any
) -> None:
    """A database from before secrets were sealed holds them as they are: the dispatcher
    signs with them, and the next start seals them (once)."""
    assert (
        api.post("/api/v1/webhooks", json={"name": "old", "url": receiver.url}).status_code == 201
    )
    legacy = "whsec_written-in-the-clear-before-0019"
    with app_db.engine.begin() as conn:
        conn.execute(text("UPDATE webhooks SET secret = :s"), {"s": legacy})
    assert api.post("/api/v1/webhooks/old/ping").status_code == 202
    keyring = app.state.service.keyring
    assert deliver(app_db, keyring) == 1
    assert verifies(legacy, receiver.received[-1])

    restarted = create_app(settings)  # a server start seals what is in the clear
    try:
        value = stored(app_db)["old"]
        assert legacy not in value and sealed_with(value) == keyring.current().id
        assert api.post("/api/v1/webhooks/old/ping").status_code == 202
        assert deliver(app_db, keyring) == 1
        assert verifies(legacy, receiver.received[-1])
        create_app(settings).state.service.db.dispose()  # and the next start does nothing
        assert stored(app_db)["old"] == value
    finally:
        restarted.state.service.db.dispose()
    with app_db.engine.connect() as conn:
        events = conn.execute(
            text("SELECT actor, after FROM audit_events WHERE action = 'webhook.reencrypt'")
        ).all()
    assert [(e.actor, json.loads(e.after)["encrypted"]) for e in events] == [("system", 1)]


def test_rotating_the_server_key_with_two_keys(
    db: Database, blob_root: Path, receiver: Any
) -> None:
    old = service_with(db, blob_root, A)
    _, s1 = old.create_webhook(SYSTEM, "one", receiver.url)
    _, s2 = old.create_webhook(SYSTEM, "two", receiver.url)
    key_a = old.keyring.current().id
    before = stored(db)

    # 1. a new first key: new secrets are sealed with it, old ones still open
    both = service_with(db, blob_root, f"{B},{A}")
    key_b = both.keyring.current().id
    both.ping_webhook(SYSTEM, "one")
    assert deliver(db, both.keyring) == 1
    assert verifies(s1, receiver.received[-1])

    # 2. re-encrypt: every secret under the new key, the same secrets
    report = both.reencrypt_webhook_secrets(SYSTEM)
    assert (report.webhooks, report.reencrypted, report.encrypted, report.unchanged) == (2, 2, 0, 0)
    assert report.key == key_b
    after = stored(db)
    assert {sealed_with(v) for v in before.values()} == {key_a}
    assert {sealed_with(v) for v in after.values()} == {key_b}
    again = both.reencrypt_webhook_secrets(SYSTEM)  # idempotent
    assert (again.reencrypted, again.unchanged) == (0, 2) and stored(db) == after

    # 3. the old key dropped: deliveries still verify with the secrets shown at creation
    new = service_with(db, blob_root, B)
    new.ping_webhook(SYSTEM, "one")
    new.ping_webhook(SYSTEM, "two")
    assert deliver(db, new.keyring) == 2
    by_hook = {json.loads(body)["webhook"]: (h, body) for h, body in receiver.received[-2:]}
    assert verifies(s1, by_hook["one"]) and verifies(s2, by_hook["two"])

    # 4. a server that holds only the old key cannot sign: the attempt fails and says why
    old.ping_webhook(SYSTEM, "two")
    assert deliver(db, old.keyring) == 1
    attempt = last_attempt(old, "two")
    assert attempt.status == "pending" and attempt.last_status_code is None
    assert f"sealed with secret key {key_b}, which this server does not hold" in (
        attempt.last_error or ""
    )
    assert len(receiver.received) == 3  # nothing sent
    with pytest.raises(Conflict, match=rf"nothing was re-encrypted: .* key {key_b}"):
        old.reencrypt_webhook_secrets(SYSTEM)
    assert stored(db) == after


def test_a_sealed_secret_moved_to_another_row_does_not_open(
    db: Database, blob_root: Path, receiver: Any
) -> None:
    svc = service_with(db, blob_root, A)
    _, s1 = svc.create_webhook(SYSTEM, "one", receiver.url)
    svc.create_webhook(SYSTEM, "two", receiver.url)
    with db.engine.begin() as conn:  # someone with write access to the database
        conn.execute(
            text(
                "UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE name = 'one') "
                "WHERE name = 'two'"
            )
        )
    moved = stored(db)
    svc.ping_webhook(SYSTEM, "two")
    assert deliver(db, svc.keyring) == 1
    assert "altered or copied from another row" in (last_attempt(svc, "two").last_error or "")
    assert receiver.received == []
    with pytest.raises(Conflict, match=r"webhook 'two'.*rotate-secret"):
        svc.reencrypt_webhook_secrets(SYSTEM)
    assert stored(db) == moved
    _, fresh = svc.rotate_webhook_secret(SYSTEM, "two")  # the way out: needs no old secret
    svc.ping_webhook(SYSTEM, "two")
    assert deliver(db, svc.keyring) == 1
    assert verifies(fresh, receiver.received[-1]) and not verifies(s1, receiver.received[-1])


def test_the_api_re_encrypts_and_refuses_clearly_without_the_key(
    settings: Settings, api: TestClient, app_db: Database, admin_headers: dict[str, str]
) -> None:
    assert (
        api.post("/api/v1/webhooks", json={"name": "h", "url": "http://127.0.0.1:9/"}).status_code
        == 201
    )
    done = api.post("/api/v1/webhook-secrets/reencrypt")
    assert done.status_code == 200, done.text
    assert done.json() | {"key": "-"} == {
        "webhooks": 1,
        "encrypted": 0,
        "reencrypted": 0,
        "unchanged": 1,
        "key": "-",
    }
    before = stored(app_db)
    # a server given another key (CAIRN_SECRET_KEYS) than the data directory's
    other = create_app(settings.model_copy(update={"secret_keys": SecretStr(B)}))
    try:
        with TestClient(other, raise_server_exceptions=False, headers=admin_headers) as client:
            refused = client.post("/api/v1/webhook-secrets/reencrypt")
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["error_code"] == "RESOURCE_CONFLICT"
            assert "does not hold" in body["message"] and B not in body["message"]
            # creating still works: sealed with this server's key
            made = client.post(
                "/api/v1/webhooks", json={"name": "h2", "url": "http://127.0.0.1:9/"}
            )
            assert made.status_code == 201
    finally:
        other.state.service.db.dispose()
    assert stored(app_db)["h"] == before["h"]
    assert sealed_with(stored(app_db)["h2"]) == Keyring(B).current().id


def test_cairn_server_seals_with_cairn_secret_keys(
    tmp_path: Path,
    db_url: str,
    server_process: Any,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key reaches the workers ``cairn server`` execs (its settings are passed on in
    the environment; a secret's dump is ``**********``, which must not replace it)."""
    monkeypatch.setenv("CAIRN_SECRET_KEYS", f"{A},{B}")
    monkeypatch.setenv("CAIRN_WEBHOOK_ALLOW_PRIVATE", "true")
    data = tmp_path / "data"
    server = server_process(data, db_url)
    made = httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"name": "h", "url": "http://127.0.0.1:9/"},
        headers=admin_headers,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    db = Database(db_url)
    try:
        assert sealed_with(stored(db)["h"]) == Keyring(A).current().id
    finally:
        db.dispose()
    assert not (data / KEY_FILE).exists()  # the variable's keys, no key file


def test_only_the_instance_admin_re_encrypts(service: RegistryService, tmp_path: Path) -> None:
    manager = Actor("mia", user_id=8, grants=(Grant(Role.MANAGE, pattern="*"),))
    with pytest.raises(PermissionDenied, match="instance ADMIN"):
        service.reencrypt_webhook_secrets(manager)
    assert not (tmp_path / KEY_FILE).exists()  # refused before any key was needed
    assert service.reencrypt_webhook_secrets(SYSTEM).webhooks == 0
