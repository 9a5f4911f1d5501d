"""The fast lane (api/fastlane.py) picks the route FastAPI would pick, hands what it
declines to the usual way intact, and answers errors as the usual way does."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from cairn.api.fastlane import FastLane
from cairn.api.lean import LeanRoute
from cairn.api.v1 import models as v1_models
from cairn.errors import NotFound

V1 = "/api/v1"
SAMPLES = {"path": "dir/model.bin", "version": "1", "digest": "sha256:" + "a" * 64}


def _lane(app: FastAPI) -> FastLane:
    stack: Any = app.middleware_stack or app.build_middleware_stack()
    while not isinstance(stack, FastLane):
        stack = stack.app
    return stack


def _sample(path_format: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLES.get(m.group(1), "x1"), path_format)


def test_it_picks_the_route_fastapi_picks(
    api: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked: list[APIRoute] = []

    async def record(self: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        picked.append(self)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    api.get("/health")
    lane = _lane(app)
    monkeypatch.setattr(APIRoute, "handle", record)
    monkeypatch.setattr(LeanRoute, "enabled", False)  # FastAPI's own routing only
    checked = 0
    for entry in lane.entries:
        path = _sample(entry.path)
        for method in entry.methods:
            picked.clear()
            api.request(method, path)
            found = lane._find(path, method)
            if found is not None:  # the lane serves it: FastAPI would pick the same route
                assert picked == [found[0].route], (method, path)
                checked += 1
            else:  # the lane steps aside: whatever FastAPI picks has no plan
                assert not picked or not any(
                    e.route is picked[0] and e.plan is not None for e in lane.entries
                ), (method, path)
    assert checked > 80  # nearly every route has a plan


def test_what_it_does_not_serve(api: TestClient, app: FastAPI) -> None:
    api.get("/health")
    lane = _lane(app)
    assert lane._find(f"{V1}/models/m/versions/1/blobs/sha256:ab", "PUT") is None  # no plan
    assert lane._find(f"{V1}/models", "TRACE") is None
    assert lane._find("/health", "GET") is None
    assert lane._find(f"{V1}/models/m", "GET") is not None
    assert lane._find("/ajax-api/2.0/mlflow/registered-models/get", "GET") is not None


def test_a_declined_body_reaches_the_usual_way(api: TestClient) -> None:
    assert api.post(f"{V1}/models", json={"name": "m"}).status_code == 201
    # an unknown field: the plan declines, FastAPI's validation words it from the same body
    response = api.post(f"{V1}/models", json={"name": "n", "colour": "red"})
    assert response.status_code == 400
    assert "colour" in response.json()["message"]
    assert api.get(f"{V1}/models/n").status_code == 404


@pytest.mark.parametrize("enabled", [True, False])
def test_an_unexpected_error_is_a_500_either_way(
    api: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(LeanRoute, "enabled", enabled)
    monkeypatch.setattr(app.state.service, "get_model", broken)
    response = api.get(f"{V1}/models/m")
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "a bug" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_root_path_goes_the_usual_way(app: FastAPI) -> None:
    with TestClient(app, root_path="/registry", raise_server_exceptions=False) as client:
        assert client.get("/registry/health").status_code == 200
        assert client.get(f"/registry{V1}/models").status_code == 401


@pytest.mark.parametrize("enabled", [True, False])
def test_an_answer_that_fails_before_it_starts_is_answered_by_the_handlers(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    class Failing(JSONResponse):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise NotFound("gone while answering")

    assert api.post(f"{V1}/models", json={"name": "m"}).status_code == 201
    monkeypatch.setattr(LeanRoute, "enabled", enabled)
    monkeypatch.setattr(v1_models, "json", lambda body: Failing(body))
    response = api.get(f"{V1}/models/m")
    assert response.status_code == 404
    assert response.json()["message"] == "gone while answering"
