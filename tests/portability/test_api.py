"""``/api/v1/import/…`` over HTTP: shapes, idempotent re-sends, and the error body."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

DATA = b"abc"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
FILES = [{"path": "a.txt", "size": len(DATA), "digest": DIGEST}]


def test_import_routes(api: TestClient) -> None:
    created = api.post(
        "/api/v1/import/models",
        json={"name": "m", "created_at": "2024-01-02T03:04:05Z", "created_by": "alice"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["created_at"] == "2024-01-02T03:04:05.000000Z"
    assert created.json()["created_by"] == "alice"

    body = {"files": FILES, "stage": "Staging", "description": "d"}
    first = api.put("/api/v1/import/models/m/versions/4", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 4
    assert first.json()["status"] == "PENDING"
    assert first.json()["missing"] == [DIGEST]
    assert first.json()["stage"] == "Staging"
    again = api.put("/api/v1/import/models/m/versions/4", json=body)
    assert again.json() == first.json()

    put = api.put(f"/api/v1/models/m/versions/4/blobs/{DIGEST}", content=DATA)
    assert put.json()["version_status"] == "READY"
    ready = api.put("/api/v1/import/models/m/versions/4", json=body).json()
    assert ready["status"] == "READY" and ready["missing"] == []

    reserved = api.post("/api/v1/import/models/m/reserve", json={"up_to": 9})
    assert reserved.status_code == 200
    assert api.post("/api/v1/models/m/versions", json={}).json()["version"] == 10


def test_import_errors_have_the_one_shape(api: TestClient) -> None:
    api.post("/api/v1/import/models", json={"name": "m"})
    cases = [
        (api.post("/api/v1/import/models", json={"name": "M"}), 400, "RESOURCE_ALREADY_EXISTS"),
        (api.put("/api/v1/import/models/nope/versions/1", json={}), 404, "RESOURCE_DOES_NOT_EXIST"),
        (
            api.put("/api/v1/import/models/m/versions/1", json={"status": "PENDING"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            api.put("/api/v1/import/models/m/versions/1", json={"number": 1}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (api.put("/api/v1/import/models/m/versions/x", json={}), 400, "INVALID_PARAMETER_VALUE"),
        (api.post("/api/v1/import/models/m/reserve", json={}), 400, "INVALID_PARAMETER_VALUE"),
    ]
    api.put("/api/v1/import/models/m/versions/3", json={})
    cases.append(
        (
            api.put("/api/v1/import/models/m/versions/3", json={"files": FILES}),
            409,
            "RESOURCE_CONFLICT",
        )
    )
    cases.append((api.put("/api/v1/import/models/m/versions/2", json={}), 409, "RESOURCE_CONFLICT"))
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error_code", "message"}
        assert response.json()["error_code"] == code
