"""Who may manage webhooks, and that a signing secret is shown once: through the service
with real grants, and over HTTP with real tokens (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cairn.app import create_app
from cairn.domain.access import SYSTEM, Actor, Grant, Role, Scope
from cairn.errors import InvalidParameter, NotFound, PermissionDenied
from cairn.service.base import Limits
from cairn.service.keyring import KEY_FILE, Keyring
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import audit_events

URL = "http://127.0.0.1:9/hook"
RISK_MANAGER = Actor("carl", user_id=6, grants=(Grant(Role.MANAGE, pattern="risk.*"),))
RISK_WRITER = Actor("dave", user_id=7, grants=(Grant(Role.WRITE, pattern="risk.*"),))
EVERYWHERE = Actor("mia", user_id=8, grants=(Grant(Role.MANAGE, pattern="*"),))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def svc(db: Database, blob_root: Path, tmp_path: Path) -> RegistryService:
    service = RegistryService(
        db,
        LocalBlobStore(blob_root),
        limits=Limits(webhook_allow_private=True),
        keyring=Keyring(key_file=tmp_path / KEY_FILE),
    )
    service.create_model(SYSTEM, "risk.fraud")
    service.create_model(SYSTEM, "ops.x")
    return service


def test_a_scope_needs_manage_on_every_model_it_covers(svc: RegistryService) -> None:
    svc.create_webhook(RISK_MANAGER, "risk", URL, scope="risk.*")
    svc.create_webhook(RISK_MANAGER, "fraud", URL, scope="risk.fraud")
    svc.create_webhook(RISK_MANAGER, "sub", URL, scope="risk.fraud-*")
    for scope in ("*", "ops.*", "ops.x", "ri-*", "risk-*"):
        with pytest.raises(PermissionDenied):
            svc.create_webhook(RISK_MANAGER, "no", URL, scope=scope)
    with pytest.raises(PermissionDenied, match="instance ADMIN"):
        svc.create_webhook(EVERYWHERE, "all", URL, scope="*")  # '*' is the instance's
    with pytest.raises(PermissionDenied):
        svc.create_webhook(RISK_WRITER, "no", URL, scope="risk.fraud")
    capped = Actor("carl", user_id=6, grants=RISK_MANAGER.grants, scope=Scope.READ)
    with pytest.raises(PermissionDenied):
        svc.create_webhook(capped, "no", URL, scope="risk.*")
    assert [w.name for w in svc.list_webhooks(SYSTEM)] == ["fraud", "risk", "sub"]


def test_a_webhook_one_may_not_manage_is_not_found(svc: RegistryService) -> None:
    svc.create_webhook(SYSTEM, "everything", URL)
    svc.create_webhook(SYSTEM, "risk", URL, scope="risk.*")
    assert [w.name for w in svc.list_webhooks(RISK_MANAGER)] == ["risk"]
    assert svc.list_webhooks(RISK_WRITER) == []
    for use in (
        lambda: svc.get_webhook(RISK_MANAGER, "everything"),
        lambda: svc.update_webhook(RISK_MANAGER, "everything", active=False),
        lambda: svc.delete_webhook(RISK_MANAGER, "everything"),
        lambda: svc.rotate_webhook_secret(RISK_MANAGER, "everything"),
        lambda: svc.ping_webhook(RISK_MANAGER, "everything"),
        lambda: svc.list_webhook_deliveries(RISK_MANAGER, "everything"),
        lambda: svc.get_webhook(RISK_WRITER, "risk"),
    ):
        with pytest.raises(NotFound, match=r"webhook '(everything|risk)' does not exist"):
            use()
    # widening one's own webhook past one's grants is refused like creating it
    with pytest.raises(PermissionDenied):
        svc.update_webhook(RISK_MANAGER, "risk", scope="*")
    assert svc.get_webhook(SYSTEM, "risk").scope == "risk.*"


def test_management_is_audited_without_the_secret(svc: RegistryService, db: Database) -> None:
    _, secret = svc.create_webhook(SYSTEM, "hook", URL, scope="risk.*")
    _, rotated = svc.rotate_webhook_secret(SYSTEM, "hook")
    assert rotated != secret and rotated.startswith("whsec_")
    svc.update_webhook(SYSTEM, "hook", active=False)
    svc.delete_webhook(SYSTEM, "hook")
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action.startswith("webhook."))
        ).all()
    assert [r.action for r in rows] == [
        "webhook.create",
        "webhook.rotate_secret",
        "webhook.update",
        "webhook.delete",
    ]
    stored = json.dumps([tuple(r) for r in rows])
    assert secret not in stored and rotated not in stored


def test_a_given_secret_must_be_long_enough(svc: RegistryService) -> None:
    with pytest.raises(InvalidParameter, match="16 to 256"):
        svc.create_webhook(SYSTEM, "hook", URL, secret="short")
    _, secret = svc.create_webhook(SYSTEM, "hook", URL, secret="s" * 32)
    assert secret == "s" * 32


def _user_token(api: TestClient, name: str, pattern: str, role: str) -> dict[str, str]:
    assert api.post("/api/v1/users", json={"name": name}).status_code == 201
    grant = {"subject": f"user:{name}", "role": role, "pattern": pattern}
    assert api.put("/api/v1/grants", json=grant).status_code == 200
    made = api.post("/api/v1/tokens", json={"user": name, "scope": "write"})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def test_over_http_the_secret_is_shown_once_and_non_admins_are_refused(api: TestClient) -> None:
    made = api.post("/api/v1/webhooks", json={"name": "hook", "url": URL, "scope": "risk.*"})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    api.post("/api/v1/models", json={"name": "risk.fraud"})
    api.post("/api/v1/webhooks/hook/ping")
    answers: list[Any] = [
        api.get("/api/v1/webhooks"),
        api.get("/api/v1/webhooks/hook"),
        api.patch("/api/v1/webhooks/hook", json={"events": ["alias.*"]}),
        api.get("/api/v1/webhooks/hook/deliveries"),
        api.get("/api/v1/audit"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert secret not in answer.text and "secret" not in answer.json().get("name", "")
    assert "secret" not in api.get("/api/v1/webhooks/hook").json()

    reader = _user_token(api, "rita", "risk.*", "READ")
    manager = _user_token(api, "carl", "risk.*", "MANAGE")
    body = {"name": "mine", "url": URL, "scope": "risk.*"}
    refused = api.post("/api/v1/webhooks", json=body, headers=reader)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    everything = api.post("/api/v1/webhooks", json={**body, "scope": "*"}, headers=manager)
    assert everything.status_code == 403
    assert api.get("/api/v1/webhooks/hook", headers=reader).status_code == 404
    mine = api.post("/api/v1/webhooks", json=body, headers=manager)
    assert mine.status_code == 201, mine.text
    listed = api.get("/api/v1/webhooks", headers=manager).json()["webhooks"]
    assert sorted(w["name"] for w in listed) == ["hook", "mine"]
    rotated = api.post("/api/v1/webhooks/mine/rotate-secret", headers=manager)
    assert rotated.status_code == 200 and rotated.json()["secret"] != mine.json()["secret"]


def test_over_http_an_internal_url_is_refused_without_the_setting(
    settings: Settings, admin_headers: dict[str, str]
) -> None:
    strict = settings.model_copy(update={"webhook_allow_private": False})
    app = create_app(strict)
    try:
        with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as api:
            for url in (URL, "http://localhost/", "http://169.254.169.254/", "gopher://x/"):
                answer = api.post("/api/v1/webhooks", json={"name": "hook", "url": url})
                assert answer.status_code == 400, answer.text
                assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            assert api.get("/api/v1/webhooks").json() == {"webhooks": []}
    finally:
        app.state.service.db.dispose()
