"""``/api/v1/audit`` against the real app, and refused calls landing in the log through the
one error handler; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cairn.app import uvicorn_options
from cairn.domain import tokens
from cairn.errors import Unavailable
from cairn.settings import Settings

BAD_TOKEN = {"Authorization": "Bearer cairn_thisisnotatokenatall0000000000000000"}


def events(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/v1/audit", params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


def token_for(api: TestClient, user: str, *grants: dict[str, str]) -> dict[str, str]:
    """A write token of a new user holding ``grants`` (made through the API as the admin)."""
    assert api.post("/api/v1/users", json={"name": user}).status_code == 201
    for grant in grants:
        r = api.put("/api/v1/grants", json={"subject": f"user:{user}", **grant})
        assert r.status_code == 200, r.text
    r = api.post("/api/v1/tokens", json={"user": user, "scope": "write"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_who_moved_production_over_http(api: TestClient) -> None:
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    for _ in range(2):
        assert api.post("/api/v1/models/fraud/versions", json={}).status_code == 201
    api.put("/api/v1/models/fraud/aliases/production", json={"version": 1})
    r = api.put(
        "/api/v1/models/fraud/aliases/production",
        json={"version": 2},
        headers={"X-Request-ID": "req-42"},
    )
    assert r.status_code == 200
    moves = events(api, model="fraud", alias="production")
    assert [(e["action"], e["before"], e["after"]) for e in moves] == [
        ("alias.set", 1, 2),
        ("alias.set", None, 1),
    ]
    newest = moves[0]
    assert set(newest) == {
        "seq",
        "at",
        "actor",
        "action",
        "outcome",
        "model",
        "version",
        "target",
        "before",
        "after",
        "request_id",
        "client",
        "hash",
    }
    assert newest["at"].endswith("Z") and newest["outcome"] == "ok"
    assert (newest["request_id"], newest["client"]) == ("req-42", "testclient")
    assert newest["actor"] == api.get("/api/v1/whoami").json()["user"]
    created = events(api, model="fraud", action="model.create")[0]
    assert created["after"] == {"description": "", "tags": {}}  # a JSON object, not text


def test_pages_times_and_verify(api: TestClient) -> None:
    for name in ("a", "b", "c"):
        api.post("/api/v1/models", json={"name": name})
    everything = events(api, action="model")
    first = api.get("/api/v1/audit", params={"action": "model", "max_results": 2}).json()
    assert [e["seq"] for e in first["events"]] == [e["seq"] for e in everything[:2]]
    rest = api.get(
        "/api/v1/audit",
        params={"action": "model", "max_results": 2, "page_token": first["next_page_token"]},
    ).json()
    assert [e["seq"] for e in rest["events"]] == [e["seq"] for e in everything[2:]]
    assert rest["next_page_token"] is None
    since = events(api, action="model", since=everything[1]["at"])
    assert [e["model"] for e in since] == ["c", "b"]
    assert events(api, until=everything[-1]["at"], action="model") == []
    r = api.get("/api/v1/audit", params={"since": "last tuesday"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    report = api.get("/api/v1/audit/verify").json()
    assert report["ok"] is True and report["events"] >= 3 and report["first_bad_seq"] is None
    head = f"{report['head_seq']}:{report['head_hash']}"
    assert api.get("/api/v1/audit/verify", params={"anchor": head}).json()["ok"] is True
    beyond = f"{report['head_seq'] + 1}:{report['head_hash']}"
    cut = api.get("/api/v1/audit/verify", params={"anchor": beyond}).json()
    assert (cut["ok"], cut["first_bad_seq"]) == (False, report["head_seq"] + 1)
    r = api.get("/api/v1/audit/verify", params={"anchor": report["head_hash"]})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_failed_authentication_is_recorded_without_the_secret(
    api: TestClient, anon: TestClient
) -> None:
    r = anon.get("/api/v1/models", headers={**BAD_TOKEN, "X-Request-ID": "req-bad"})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    (denied,) = events(api, outcome="denied")
    assert (denied["actor"], denied["action"], denied["client"], denied["request_id"]) == (
        "anonymous",
        "authenticate",
        "testclient",
        "req-bad",
    )
    secret = BAD_TOKEN["Authorization"].removeprefix("Bearer ")
    assert secret not in json.dumps(denied) and secret.startswith(denied["target"])


def test_a_secret_that_is_not_a_token_is_not_recorded_at_all(
    api: TestClient, anon: TestClient
) -> None:
    """A password sent where a token belongs (MLflow's ``MLFLOW_TRACKING_PASSWORD`` set to
    the user's login password, a short key pasted as a bearer token) is not a token with a
    public prefix: none of it goes to the audit log."""
    password = "hunter2-pass!"  # a password of 13 characters: its "prefix" is all of it
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    for header in (f"Basic {basic}", f"Bearer {password}"):
        r = anon.get("/api/v1/models", headers={"Authorization": header})
        assert r.status_code == 401, r.text
    denied = events(api, outcome="denied", action="authenticate")
    assert len(denied) == 2
    for event in denied:
        assert password[:4] not in json.dumps(event), event
        assert event["target"] is None


def test_credentials_refused_unread_are_recorded_too_without_the_secret(
    api: TestClient, anon: TestClient
) -> None:
    """A token in the query string and a malformed Basic header are refused before any
    secret is checked, but they are failed authentications all the same: each is in the
    log, so probing shows up in ``cairn audit list --outcome denied``. None of the secret
    goes there, only a real token's public prefix (which tells the administrator which
    token leaked into a URL)."""
    leaked = api.post("/api/v1/tokens", json={"user": "admin", "scope": "read"}).json()["token"]
    password = "hunter2-pass!"
    sent = [
        ({"params": {"access_token": leaked}}, leaked[: tokens.DISPLAY_LENGTH]),
        ({"params": {"Token": password}}, None),
        ({"headers": {"Authorization": "Basic !!" + password}}, None),
        (
            {
                "headers": {
                    "Authorization": b"Basic " + base64.b64encode(b"al:\xff" + password.encode())
                }
            },
            None,
        ),
    ]
    for request, _ in sent:
        r = anon.get("/api/v1/models", **request)  # type: ignore[arg-type]
        assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED", r.text
    denied = events(api, outcome="denied", action="authenticate")
    assert [e["target"] for e in reversed(denied)] == [target for _, target in sent]
    for event in denied:
        assert event["actor"] == "anonymous" and event["client"] == "testclient", event
        for secret in (leaked[tokens.DISPLAY_LENGTH :], password[:4]):
            assert secret not in json.dumps(event), event


def test_refused_calls_are_recorded_and_only_managers_and_admins_list(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "fraud"})
    api.post("/api/v1/models", json={"name": "churn"})
    writer = token_for(api, "rita", {"role": "WRITE", "pattern": "fraud"})
    manager = token_for(api, "mia", {"role": "MANAGE", "pattern": "fraud"})
    r = api.delete("/api/v1/models/fraud", headers=writer)  # WRITE may not delete
    assert r.status_code == 403
    r = api.get("/api/v1/models/churn", headers=writer)  # cannot read: looks missing
    assert r.status_code == 404
    refused = events(api, outcome="denied", actor="rita")
    assert [(e["action"], e["model"]) for e in refused] == [
        ("get_model", "churn"),
        ("model.delete", "fraud"),
    ]
    r = api.get("/api/v1/audit", params={"model": "fraud"}, headers=manager)
    assert r.status_code == 200
    assert {e["model"] for e in r.json()["events"]} == {"fraud"}
    assert api.get("/api/v1/audit", headers=manager).status_code == 403  # the whole log
    assert api.get("/api/v1/audit", params={"model": "fraud"}, headers=writer).status_code == 403
    assert api.get("/api/v1/audit/verify", headers=manager).status_code == 403


def test_a_failure_to_record_does_not_change_the_answer(
    app: FastAPI, anon: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def unavailable(*_args: object) -> None:
        raise Unavailable("the audit log's database is down")

    monkeypatch.setattr(app.state.service, "record_denial", unavailable)
    with caplog.at_level(logging.ERROR, logger="cairn.api"):
        r = anon.get("/api/v1/models", headers=BAD_TOKEN)
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    assert "could not record" in caplog.text


@pytest.mark.parametrize(
    ("trusted", "recorded"), [([], "127.0.0.1"), (["127.0.0.0/8"], "203.0.113.9")]
)
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    api: TestClient, live_server_with: Any, trusted: list[str], recorded: str
) -> None:
    options = uvicorn_options(Settings(trusted_proxies=trusted))
    with live_server_with(**options) as url:
        forged = {**BAD_TOKEN, "X-Forwarded-For": "203.0.113.9", "X-Request-ID": "req-fwd"}
        assert httpx.get(f"{url}/api/v1/models", headers=forged).status_code == 401
    (denied,) = events(api, outcome="denied")
    assert (denied["request_id"], denied["client"]) == ("req-fwd", recorded)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies == ["10.0.0.0/8", "::1"]
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(trusted_proxies="proxy.example.com")
