"""The native HTTP API (/api/v1) against the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn.api.lean import LeanRoute
from cairn.app import create_app
from cairn.settings import Settings
from cairn.store.metadata.database import READ_ONLY_RETRY_S

JSON = {"content-type": "application/json"}


def error(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["message"]
    return response.status_code, body["error_code"]


def test_health_ready_and_openapi(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json() == {"status": "ready"}
    spec = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/models/{name}/versions" in spec["paths"]
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize("backend", ["postgresql"])
def test_ready_is_a_503_while_the_database_takes_no_writes(
    api: TestClient, settings: Settings
) -> None:
    """A PostgreSQL that answers but refuses writes (a standby after a failover, or
    ``default_transaction_read_only``) is not ready: docs/api.md, ``GET /ready``."""
    assert settings.backend_uri is not None
    read_only = settings.backend_uri + "?options=-c%20default_transaction_read_only%3Don"
    app = create_app(settings.model_copy(update={"backend_uri": read_only}))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/ready")
    finally:
        app.state.service.db.dispose()
    assert error(response) == (503, "TEMPORARILY_UNAVAILABLE")
    assert "read-only" in response.json()["message"]
    assert response.headers["Retry-After"] == str(READ_ONLY_RETRY_S)
    assert api.get("/ready").json() == {"status": "ready"}  # the same database, writable


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_on_a_read_only_database_is_a_503_that_changes_nothing(
    api: TestClient, settings: Settings
) -> None:
    """A write the database refuses because it is read-only (a standby after a failover,
    or ``default_transaction_read_only``) answers what ``/ready`` says: 503 with
    TEMPORARILY_UNAVAILABLE and a Retry-After, not a 500; reads still answer."""
    assert settings.backend_uri is not None
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    read_only = settings.backend_uri + "?options=-c%20default_transaction_read_only%3Don"
    app = create_app(settings.model_copy(update={"backend_uri": read_only}))
    try:
        with TestClient(app, raise_server_exceptions=False, headers=api.headers) as client:
            assert client.get("/api/v1/models/fraud").status_code == 200
            created = client.post("/api/v1/models", json={"name": "churn"})
            tagged = client.patch("/api/v1/models/fraud", json={"description": "new"})
            mlflow = client.post("/api/2.0/mlflow/registered-models/create", json={"name": "churn"})
    finally:
        app.state.service.db.dispose()
    for response in (created, tagged, mlflow):
        assert error(response) == (503, "TEMPORARILY_UNAVAILABLE"), response.text
        assert "read-only" in response.json()["message"]
        assert int(response.headers["Retry-After"]) > 0
    assert api.get("/api/v1/models/churn").status_code == 404
    assert api.get("/api/v1/models/fraud").json()["description"] == ""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_read_only_sqlite_database_answers_as_a_read_only_postgresql(
    api: TestClient, settings: Settings
) -> None:
    """A SQLite database this server may only read (its file, folder or file system not
    writable, or opened with ``mode=ro``) refuses writes as a read-only PostgreSQL does:
    503 TEMPORARILY_UNAVAILABLE saying so, with its Retry-After, nothing changed; reads
    answer and ``/ready`` says it takes no writes."""
    assert settings.backend_uri is not None
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    path = settings.backend_uri.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    app = create_app(settings.model_copy(update={"backend_uri": read_only}))
    try:
        with TestClient(app, raise_server_exceptions=False, headers=api.headers) as client:
            assert client.get("/api/v1/models/fraud").status_code == 200
            created = client.post("/api/v1/models", json={"name": "churn"})
            tagged = client.patch("/api/v1/models/fraud", json={"description": "new"})
            mlflow = client.post("/api/2.0/mlflow/registered-models/create", json={"name": "churn"})
            ready = client.get("/ready")
    finally:
        app.state.service.db.dispose()
    for response in (created, tagged, mlflow, ready):
        assert error(response) == (503, "TEMPORARILY_UNAVAILABLE"), response.text
        assert "read-only" in response.json()["message"], response.text
        assert response.headers["Retry-After"] == str(READ_ONLY_RETRY_S)
    assert api.get("/api/v1/models/churn").status_code == 404
    assert api.get("/api/v1/models/fraud").json()["description"] == ""


@pytest.mark.parametrize("backend", ["postgresql"])
def test_reads_on_a_read_only_database_need_no_write(api: TestClient, settings: Settings) -> None:
    """Authenticating records when a token was last used, a write: on a read-only database
    a token not used lately still reads (the record waits), and a login still fails
    cleanly (503)."""
    assert settings.backend_uri is not None
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    made = api.post("/api/v1/tokens", json={"user": "admin", "scope": "read"})
    assert made.status_code == 201, made.text
    fresh = {"Authorization": f"Bearer {made.json()['token']}"}
    password = "a long enough password"
    assert api.post("/api/v1/users", json={"name": "rita", "password": password}).status_code == 201
    read_only = settings.backend_uri + "?options=-c%20default_transaction_read_only%3Don"
    app = create_app(settings.model_copy(update={"backend_uri": read_only}))
    try:
        with TestClient(app, raise_server_exceptions=False, headers=fresh) as client:
            first = client.get("/api/v1/models/fraud")
            second = client.get("/api/v1/models")
            login = client.post("/api/v1/login", json={"user": "rita", "password": password})
    finally:
        app.state.service.db.dispose()
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert error(login) == (503, "TEMPORARILY_UNAVAILABLE")  # a session is a write
    tokens = api.get("/api/v1/tokens").json()["tokens"]
    assert [t["last_used_at"] for t in tokens if t["id"] == made.json()["id"]] == [None]


def test_model_and_version_shapes(api: TestClient) -> None:
    r = api.post("/api/v1/models", json={"name": "fraud", "tags": {"team": "risk"}})
    assert r.status_code == 201
    model = r.json()
    assert set(model) >= {
        "name",
        "description",
        "tags",
        "aliases",
        "latest_version",
        "created_at",
        "updated_at",
    }
    assert model["created_at"].endswith("Z")
    r = api.post("/api/v1/models/fraud/versions", json={"metrics": {"auc": 0.9}})
    assert r.status_code == 201
    version = r.json()
    assert version["version"] == 1 and isinstance(version["version"], int)
    assert set(version) >= {
        "name",
        "version",
        "status",
        "description",
        "tags",
        "params",
        "metrics",
        "aliases",
        "stage",
        "created_at",
        "updated_at",
        "created_by",
        "files",
        "size",
        "digest",
    }
    assert api.get("/api/v1/models/fraud").json()["latest_version"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/api/v1/models/nope", None, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "/api/v1/models/m/versions/9", None, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "/api/v1/models/m/versions/abc", None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models/m/aliases/nope", None, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "/api/v1/models/m/aliases/nope/history", None, 200, None),
        ("POST", "/api/v1/models", {"name": "m"}, 400, "RESOURCE_ALREADY_EXISTS"),
        ("POST", "/api/v1/models", {"name": "a/b"}, 400, "INVALID_PARAMETER_VALUE"),
        (
            "POST",
            "/api/v1/models",
            {"name": "x", "created_by": "root"},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        ("POST", "/api/v1/models/m/versions", {"version": 7}, 400, "INVALID_PARAMETER_VALUE"),
        (
            "POST",
            "/api/v1/models/m/versions",
            {"metrics": {"a": "x"}},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "PUT",
            "/api/v1/models/m/aliases/prod",
            {"version": 1, "expect": 5},
            409,
            "RESOURCE_CONFLICT",
        ),
        ("PUT", "/api/v1/models/m/aliases/latest", {"version": 1}, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/search/versions?filter=name%20%3D", None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?max_results=5000", None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?page_token=garbage", None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/resolve?uri=runs:/x/model", None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/nothing-here", None, 404, "ENDPOINT_NOT_FOUND"),
        ("DELETE", "/api/v1/search/versions", None, 405, "ENDPOINT_NOT_FOUND"),
    ],
)
def test_error_shape_for_every_route_family(
    api: TestClient, method: str, path: str, body: Any, status: int, code: str | None
) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    api.post("/api/v1/models/m/versions", json={})
    r = api.request(method, path, json=body)
    if code is None:
        assert r.status_code == status
        return
    assert error(r) == (status, code)


def test_malformed_json_and_wrong_types(api: TestClient) -> None:
    r = api.post("/api/v1/models", content=b"{not json", headers=JSON)
    assert error(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api.post("/api/v1/models", json={"name": 5})
    assert error(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api.post("/api/v1/models", json=["name"])
    assert error(r) == (400, "INVALID_PARAMETER_VALUE")


def test_oversized_body_is_413_before_anything_changes(api: TestClient) -> None:
    big = {"name": "big", "description": "x" * (17 << 20)}
    r = api.post("/api/v1/models", json=big)
    assert error(r) == (413, "REQUEST_LIMIT_EXCEEDED")
    assert api.get("/api/v1/models/big").status_code == 404
    # a model named like an upload route gets no exemption from the JSON limit
    api.post("/api/v1/models", json={"name": "blobs"})
    r = api.post("/api/v1/models/blobs/versions", json={"description": "x" * (17 << 20)})
    assert error(r) == (413, "REQUEST_LIMIT_EXCEEDED")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/models/m/versions", {"metrics": {"auc": True}}),
        ("/api/v1/models/m/versions", {"metrics": {"auc": "0.9"}}),
        ("/api/v1/models/m/aliases/prod", {"version": True}),
        ("/api/v1/models/m/aliases/prod", {"version": "1"}),
        ("/api/v1/models/m/aliases/prod", {"version": 1, "expect": True}),
        ("/api/v1/models/m/aliases/prod", {"version": 1, "expect": 1.0}),
    ],
)
def test_numbers_are_not_coerced(api: TestClient, path: str, body: dict[str, Any]) -> None:
    """A metric, a version or an ``expect`` is a JSON number, as the service (and so the
    local SDK) takes it: ``true`` is not 1, nor ``"0.9"`` 0.9; nothing changes."""
    api.post("/api/v1/models", json={"name": "m"})
    api.post("/api/v1/models/m/versions", json={})
    method = api.post if path.endswith("versions") else api.put
    assert error(method(path, json=body)) == (400, "INVALID_PARAMETER_VALUE")
    assert [v["version"] for v in api.get("/api/v1/models/m/versions").json()["versions"]] == [1]
    assert api.get("/api/v1/models/m").json()["aliases"] == {}


def test_filter_error_points_at_position(api: TestClient) -> None:
    r = api.get("/api/v1/search/versions", params={"filter": "metrics.auc >> 0.5"})
    assert error(r) == (400, "INVALID_PARAMETER_VALUE")
    assert "position 13" in r.json()["message"]  # the second ">"


def test_idempotency_key_header(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    headers = {"Idempotency-Key": "abc-123"}
    first = api.post("/api/v1/models/m/versions", json={}, headers=headers).json()
    again = api.post("/api/v1/models/m/versions", json={}, headers=headers).json()
    assert first["version"] == again["version"] == 1
    r = api.post("/api/v1/models/m/versions", json={"description": "x"}, headers=headers)
    assert error(r) == (409, "RESOURCE_CONFLICT")


def test_alias_routes_and_as_of(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    for _ in range(2):
        api.post("/api/v1/models/m/versions", json={})
    assert api.put("/api/v1/models/m/aliases/prod", json={"version": 1}).status_code == 200
    moved_at = api.get("/api/v1/models/m/aliases/prod/history").json()["events"][0]["at"]
    api.put("/api/v1/models/m/aliases/prod", json={"version": 2, "expect": 1})
    assert api.get("/api/v1/models/m/aliases/prod").json()["version"] == 2
    then = api.get("/api/v1/models/m/aliases/prod", params={"as_of": moved_at})
    assert then.json()["version"] == 1
    assert api.get("/api/v1/resolve", params={"uri": "models:/m@prod"}).json()["version"] == 2
    assert api.delete("/api/v1/models/m/aliases/prod").status_code == 204
    events = api.get("/api/v1/models/m/alias-history").json()["events"]
    assert [(e["from_version"], e["to_version"]) for e in events] == [(2, None), (1, 2), (None, 1)]


def test_names_with_spaces_and_dots_in_paths(api: TestClient) -> None:
    assert api.post("/api/v1/models", json={"name": "risk.fraud v2"}).status_code == 201
    assert api.get("/api/v1/models/risk.fraud%20v2").json()["name"] == "risk.fraud v2"
    assert api.get("/api/v1/models/RISK.FRAUD%20V2").status_code == 200


@pytest.mark.parametrize("lean", [True, False])
def test_tag_keys_with_slashes_in_paths(
    api: TestClient, lean: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag key may hold ``/`` (``tags.team/owner`` in a filter): its routes take it
    percent-encoded, which the server reads back as ``/``, on the fast path and the usual."""
    monkeypatch.setattr(LeanRoute, "enabled", lean)
    api.post("/api/v1/models", json={"name": "m"})
    api.post("/api/v1/models/m/versions", json={})
    for path in ("/api/v1/models/m", "/api/v1/models/m/versions/1"):
        r = api.put(f"{path}/tags/team%2Fowner", json={"value": "risk"})
        assert r.status_code == 200, r.json()
        assert r.json()["tags"] == {"team/owner": "risk"}
        r = api.delete(f"{path}/tags/team%2Fowner")
        assert (r.status_code, r.json()["tags"]) == (200, {})
        assert error(api.delete(f"{path}/tags/team%2Fowner")) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_security_headers(api: TestClient) -> None:
    r = api.get("/health")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
