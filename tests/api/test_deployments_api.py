"""``/api/v1/deployments`` and the per-model and per-version reads, against the real app,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from tests.api.test_audit_api import events, token_for


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


def make_model(api: TestClient, name: str = "fraud", versions: int = 2) -> None:
    ok(api.post("/api/v1/models", json={"name": name}), 201)
    for _ in range(versions):
        ok(api.post(f"/api/v1/models/{name}/versions", json={}), 201)


def test_record_move_retire_and_read_back(api: TestClient) -> None:
    make_model(api)
    ok(api.put("/api/v1/models/fraud/aliases/production", json={"version": 2}))
    made = ok(
        api.put(
            "/api/v1/deployments/fraud-api-prod",
            json={
                "model_uri": "models:/fraud/1",
                "environment": "prod",
                "url": "https://fraud.example.com",
                "reason": "launch",
            },
        )
    )
    assert (made["model"], made["version"], made["alias"], made["retired_at"]) == (
        "fraud",
        1,
        None,
        None,
    )
    moved = ok(
        api.put(
            "/api/v1/deployments/fraud-api-prod",
            json={"model_uri": "models:/fraud@production", "expect": 1},
        )
    )
    assert (moved["version"], moved["alias"], moved["url"]) == (2, "production", made["url"])
    message = error(
        api.put(
            "/api/v1/deployments/fraud-api-prod",
            json={"model_uri": "models:/fraud/1", "expect": 1},
        ),
        409,
        "RESOURCE_CONFLICT",
    )
    assert "serves version 2, not version 1" in message
    assert ok(api.get("/api/v1/deployments/fraud-api-prod"))["version"] == 2
    history = ok(api.get("/api/v1/deployments/fraud-api-prod/history"))["events"]
    assert [(e["from_version"], e["to_version"]) for e in history] == [(1, 2), (None, 1)]
    first_at = history[1]["at"]
    served = ok(api.get("/api/v1/deployments/fraud-api-prod/serving", params={"at": first_at}))
    assert served["to_version"] == 1 and served["until"] == history[0]["at"]
    ran = ok(api.get("/api/v1/models/fraud/versions/1/deployments"))["events"]
    assert [(e["deployment"], e["at"], e["until"]) for e in ran] == [
        ("fraud-api-prod", first_at, history[0]["at"])
    ]
    assert len(ok(api.get("/api/v1/models/fraud/deployments"))["events"]) == 2
    listed = ok(api.get("/api/v1/deployments", params={"model": "fraud", "version": 2}))
    assert [d["name"] for d in listed["deployments"]] == ["fraud-api-prod"]
    retired = ok(api.post("/api/v1/deployments/fraud-api-prod/retire", json={"reason": "gone"}))
    assert retired["version"] is None and retired["retired_at"] is not None
    assert ok(api.get("/api/v1/deployments"))["deployments"] == []
    assert len(ok(api.get("/api/v1/deployments", params={"retired": True}))["deployments"]) == 1
    audited = [e["action"] for e in events(api, model="fraud") if "deployment" in e["action"]]
    assert sorted(audited) == ["deployment.retire", "deployment.set", "deployment.set"]


def test_feedback_round_trip_with_an_idempotency_key(api: TestClient) -> None:
    make_model(api)
    ok(
        api.put(
            "/api/v1/deployments/d", json={"model_uri": "models:/fraud/1", "environment": "prod"}
        )
    )
    ok(api.put("/api/v1/deployments/d", json={"model_uri": "models:/fraud/2"}))
    history = ok(api.get("/api/v1/deployments/d/history"))["events"]
    v1_at, v2_at = history[1]["at"], history[0]["at"]
    batch = {
        "points": [
            {"key": "latency_ms", "value": 12.5, "timestamp": v1_at, "labels": {"region": "eu"}},
            {"key": "latency_ms", "value": 20, "timestamp": v2_at},
            {"key": "drift", "value": 0.25, "timestamp": v2_at},
        ]
    }
    headers = {"Idempotency-Key": "monitor-batch-1"}
    receipt = ok(api.post("/api/v1/deployments/d/feedback", json=batch, headers=headers), 201)
    assert receipt == {
        "deployment": "d",
        "model": "fraud",
        "accepted": 3,
        "versions": {"1": 1, "2": 2},
        "replayed": False,
    }
    again = ok(api.post("/api/v1/deployments/d/feedback", json=batch, headers=headers), 201)
    assert again["replayed"] is True
    points = ok(api.get("/api/v1/deployments/d/feedback"))
    assert len(points["points"]) == 3 and points["next_page_token"] is None
    v1 = ok(api.get("/api/v1/models/fraud/versions/1/feedback"))["points"]
    assert [(p["key"], p["value"], p["labels"], p["version"]) for p in v1] == [
        ("latency_ms", 12.5, {"region": "eu"}, 1)
    ]
    summary = ok(api.get("/api/v1/models/fraud/versions/2/feedback/summary"))["metrics"]
    assert [(s["key"], s["count"], s["mean"], s["last"]) for s in summary] == [
        ("drift", 1, 0.25, 0.25),
        ("latency_ms", 1, 20.0, 20.0),
    ]
    paged = ok(api.get("/api/v1/deployments/d/feedback", params={"max_results": 2}))
    rest = ok(
        api.get(
            "/api/v1/deployments/d/feedback",
            params={"max_results": 2, "page_token": paged["next_page_token"]},
        )
    )
    assert len(paged["points"]) == 2 and len(rest["points"]) == 1


def test_refusals_have_the_one_error_shape_and_change_nothing(api: TestClient) -> None:
    make_model(api)
    ok(
        api.put(
            "/api/v1/deployments/d", json={"model_uri": "models:/fraud/1", "environment": "prod"}
        )
    )
    at = ok(api.get("/api/v1/deployments/d"))["created_at"]
    bad = '{"points": [{"key": "auc", "value": 1e400, "timestamp": "AT"}]}'.replace("AT", at)
    refused = api.post(
        "/api/v1/deployments/d/feedback",
        content=bad,
        headers={"Content-Type": "application/json"},
    )
    assert "finite" in error(refused, 400, "INVALID_PARAMETER_VALUE")
    error(
        api.post("/api/v1/deployments/d/feedback", json={"points": []}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(api.get("/api/v1/deployments/ghost"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(
        api.put("/api/v1/deployments/e", json={"model_uri": "models:/fraud/1", "url": "ftp://x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        api.get("/api/v1/deployments/d/serving", params={"at": "2000-01-01T00:00:00Z"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert ok(api.get("/api/v1/deployments/d/feedback"))["points"] == []


def test_a_reader_reads_and_an_outsider_sees_nothing(api: TestClient) -> None:
    make_model(api)
    ok(
        api.put(
            "/api/v1/deployments/d", json={"model_uri": "models:/fraud/1", "environment": "prod"}
        )
    )
    reader = token_for(api, "rita", {"role": "READ", "model": "fraud"})
    outsider = token_for(api, "otto")
    assert ok(api.get("/api/v1/deployments/d", headers=reader))["version"] == 1
    error(
        api.put("/api/v1/deployments/d", json={"model_uri": "models:/fraud/2"}, headers=reader),
        403,
        "PERMISSION_DENIED",
    )
    message = error(
        api.get("/api/v1/deployments/d", headers=outsider), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    ghost = error(
        api.get("/api/v1/deployments/g", headers=outsider), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert message.replace("'d'", "'g'") == ghost
    assert ok(api.get("/api/v1/deployments", headers=outsider))["deployments"] == []
    assert ok(api.get("/api/v1/deployments/d", headers=reader))["version"] == 1
    denied = events(api, outcome="denied", action="deployment")
    assert [(e["action"], e["actor"], e["model"]) for e in denied] == [
        ("deployment.set", "rita", "fraud")
    ]


def test_a_served_version_cannot_be_deleted_or_purged_until_the_deployment_lets_go(
    api: TestClient,
) -> None:
    """Native and MLflow deletes alike: 409, naming the deployment, and nothing changed."""
    make_model(api)
    body = {"model_uri": "models:/fraud/1", "environment": "prod"}
    ok(api.put("/api/v1/deployments/fraud-api-prod", json=body))
    for query in ("", "?purge=true"):
        message = error(
            api.delete(f"/api/v1/models/fraud/versions/1{query}"), 409, "RESOURCE_CONFLICT"
        )
        assert "served by deployment 'fraud-api-prod' (prod)" in message
    mlflow = api.request(
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete",
        json={"name": "fraud", "version": "1"},
    )
    assert mlflow.status_code == 409 and mlflow.json()["error_code"] == "RESOURCE_CONFLICT"
    ok(api.get("/api/v1/models/fraud/versions/1"))  # still there
    ok(api.post("/api/v1/deployments/fraud-api-prod/retire"))
    assert api.delete("/api/v1/models/fraud/versions/1").status_code == 204
