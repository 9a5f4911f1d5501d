"""Identities through the SDK, over HTTP and locally: users, groups, grants, tokens.

The admin (HTTP: the bootstrap admin; local: owner access) sets things up; the token it
makes for alice is then used by a second, HTTP client against the same app, which must
see exactly what alice was granted, and nothing once the token is revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.errors import (
    AlreadyExists,
    InvalidParameter,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

PASSWORD = "correct horse battery"


@contextmanager
def as_token(app: FastAPI, token: str) -> Iterator[HttpClient]:
    """An SDK over HTTP against ``app`` that authenticates with ``token`` only."""
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as http:
        sdk = HttpClient("http://testserver", http_client=http)
        yield sdk
        sdk.close()


def names(sdk: BaseClient) -> list[str]:
    return sorted(m.name for m in sdk.search_models().items)


def test_identity_lifecycle(client: BaseClient, app: FastAPI) -> None:
    for name in ("risk.fraud", "risk.churn", "ops.cpu"):
        client.create_model(name)

    alice = client.create_user("alice", password=PASSWORD)
    assert alice["name"] == "alice" and alice["has_password"] and not alice["is_admin"]
    assert alice["kind"] == "user" and not alice["disabled"]
    robot = client.create_user("deploy-bot", service=True)
    assert robot["kind"] == "service" and not robot["has_password"]
    with pytest.raises(AlreadyExists):
        client.create_user("alice")
    assert {"admin", "alice", "deploy-bot"} <= {u["name"] for u in client.list_users()}

    assert client.create_group("risk-team") == {"name": "risk-team", "members": []}
    client.add_member("risk-team", "alice")
    assert client.list_groups() == [{"name": "risk-team", "members": ["alice"]}]
    listed = {u["name"]: u for u in client.list_users()}
    assert listed["alice"]["groups"] == ["risk-team"]

    granted = client.grant("group:risk-team", "READ", pattern="risk.*")
    assert granted == {
        "subject": "group:risk-team",
        "model": None,
        "pattern": "risk.*",
        "role": "READ",
    }
    assert client.grant("alice", "write", model="risk.fraud")["subject"] == "user:alice"
    on_fraud = {(g["subject"], g["role"]) for g in client.list_grants(model="risk.fraud")}
    assert ("user:alice", "WRITE") in on_fraud
    held = client.list_grants(subject="group:risk-team")
    assert [(g["pattern"], g["role"]) for g in held] == [("risk.*", "READ")]

    token = client.create_token(name="alice-ci", scope="write", expires_days=30, user="alice")
    secret = token["token"]
    assert secret.startswith("cairn_")
    assert (token["user"], token["name"], token["scope"]) == ("alice", "alice-ci", "write")
    assert token["expires_at"] is not None and not token["revoked"]
    everyone = client.list_tokens(all_users=True)
    mine = [t for t in everyone if t["id"] == token["id"]]
    assert len(mine) == 1 and mine[0]["prefix"] == token["prefix"]
    assert all("token" not in t for t in everyone)  # secrets are never listed

    with as_token(app, secret) as as_alice:
        me = as_alice.whoami()
        assert (me["user"], me["is_admin"], me["scope"]) == ("alice", False, "write")
        assert {(g["role"], g["pattern"]) for g in me["grants"]} >= {("READ", "risk.*")}
        assert names(as_alice) == ["risk.churn", "risk.fraud"]
        with pytest.raises(NotFound):
            as_alice.get_model("ops.cpu")  # not readable: as if it did not exist
        assert as_alice.create_version("risk.fraud").version == 1  # WRITE by her own grant
        with pytest.raises(PermissionDenied):
            as_alice.create_version("risk.churn")  # READ through the group only
        with pytest.raises(PermissionDenied):
            as_alice.list_users()
        with pytest.raises(PermissionDenied):
            as_alice.create_token(scope="admin")  # never more than the token that asks
        assert [t["id"] for t in as_alice.list_tokens()] == [token["id"]]

        client.remove_member("risk-team", "alice")
        assert names(as_alice) == ["risk.fraud"]
        client.revoke("alice", model="risk.fraud")
        assert names(as_alice) == []
        with pytest.raises(NotFound):
            client.revoke("alice", model="risk.fraud")

        client.revoke_token(token["id"])
        with pytest.raises(Unauthenticated):
            as_alice.whoami()
    revoked = [t for t in client.list_tokens(all_users=True) if t["id"] == token["id"]]
    assert revoked[0]["revoked"] is True

    assert client.update_user("alice", disabled=True)["disabled"] is True
    with pytest.raises(InvalidParameter):
        client.create_token(user="alice")  # a disabled user gets no tokens
    assert client.update_user("alice", disabled=False, admin=True)["is_admin"] is True
    client.delete_group("risk-team")
    assert client.list_groups() == []


def test_own_tokens(client: BaseClient, app: FastAPI) -> None:
    """Without ``user``, the token is the caller's: the bootstrap admin's over HTTP, and the
    ``admin`` user's in local mode (owner access to the data directory)."""
    created = client.create_token(name="mine", scope="read", expires_days=None)
    assert created["user"] == "admin" and created["expires_at"] is None
    assert created["id"] in [t["id"] for t in client.list_tokens()]
    with as_token(app, created["token"]) as me:
        assert me.whoami()["user"] == "admin"
        assert me.whoami()["scope"] == "read"
        with pytest.raises(PermissionDenied):
            me.create_user("mallory")  # a read token is not an admin, whoever holds it
    client.revoke_token(created["id"])
    with pytest.raises(NotFound):
        client.revoke_token(10_000)


def test_whoami(client: BaseClient) -> None:
    me = client.whoami()
    assert me["is_admin"] is True and me["scope"] == "admin" and me["grants"] == []
    if isinstance(client, LocalClient):
        assert me["user"].startswith("local:")
    else:
        assert me["user"] == "admin"
        # authentication skips an administrator's grants (moot for an admin token); whoami
        # still lists them, here the creator's grant on a new model
        client.create_model("whoami-probe")
        grants = client.whoami()["grants"]
        assert [(g["role"], g["model"]) for g in grants] == [("MANAGE", "whoami-probe")]


def test_invalid_requests(client: BaseClient) -> None:
    with pytest.raises(InvalidParameter):
        client.create_user("bob", password="short")
    with pytest.raises(InvalidParameter):
        client.create_user("has space")
    with pytest.raises(InvalidParameter):
        client.create_user("svc", password=PASSWORD, service=True)
    client.create_user("bob")
    with pytest.raises(InvalidParameter):
        client.grant("bob", "READ")  # neither model nor pattern
    with pytest.raises(InvalidParameter):
        client.grant("bob", "READ", model="m", pattern="*")
    with pytest.raises(InvalidParameter):
        client.grant("robot:bob", "READ", pattern="*")
    with pytest.raises(NotFound):
        client.grant("group:nobody", "READ", pattern="*")
    with pytest.raises(NotFound):
        client.remove_member("nobody", "bob")
    with pytest.raises(InvalidParameter):
        client.create_token(expires_days=0)
