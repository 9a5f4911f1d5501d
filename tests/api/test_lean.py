"""The lean way through a route (api/lean.py) answers exactly as FastAPI's usual way, and
takes the common case without FastAPI's dependency solving, on SQLite and PostgreSQL, on
the native API and the MLflow-compatible one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import Depends, Query, Request
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from cairn.api.auth import AUTHENTICATED, authenticate
from cairn.api.deps import Caller, Service
from cairn.api.lean import LeanRoute, plan_for
from cairn.api.v1.models import IdempotencyKey

JSON = {"content-type": "application/json"}
V1 = "/api/v1"
MLFLOW = "/api/2.0/mlflow"
DEEP = b"[" * 10_000 + b"]" * 10_000

# (method, path, request options): reads, and writes that fail, so that the registry is the
# same before each way's turn
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/models/m/aliases/prod", {}),
    ("GET", "/api/v1/models/m/aliases/prod?as_of=2000-01-01T00:00:00Z", {}),
    ("GET", "/api/v1/models/m/aliases/prod?as_of=yesterday", {}),
    ("GET", "/api/v1/models/m/aliases/nope", {}),
    ("GET", "/api/v1/models/M/aliases/prod", {}),
    ("GET", "/api/v1/models/m/versions/1", {}),
    ("GET", "/api/v1/models/m/versions/x", {}),
    ("GET", "/api/v1/models/m", {}),
    ("GET", "/api/v1/models/a%3Ab", {}),
    ("GET", "/api/v1/models?filter=name%20LIKE%20%27m%25%27&max_results=5", {}),
    ("GET", "/api/v1/models?max_results=many", {}),
    ("GET", "/api/v1/models?filter=name%20%3D", {}),
    ("GET", "/api/v1/models?order_by=name%20DESC&order_by=created_at", {}),
    ("GET", "/api/v1/models?include_deleted=yes", {}),
    ("GET", "/api/v1/models?include_deleted=perhaps", {}),
    ("GET", "/api/v1/search/versions?filter=name%3D%27m%27&max_results=2", {}),
    ("GET", "/api/v1/search/versions?max_results=0", {}),
    ("GET", "/api/v1/resolve?uri=models:/m@prod", {}),
    ("GET", "/api/v1/resolve", {}),
    ("GET", "/api/v1/models/m/aliases/prod/history?limit=1", {}),
    ("GET", "/api/v1/models/m/aliases/prod/history?limit=-", {}),
    ("GET", "/api/v1/whoami", {}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"json": {"version": 9}}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"json": {"version": "one"}}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"json": {"version": 1, "force": True}}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"content": b"", "headers": JSON}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"content": b"{not json", "headers": JSON}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"content": b"[1]", "headers": JSON}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"content": b"null", "headers": JSON}),
    # nested deeper than the JSON decoder recurses: a 400 either way, not a 500
    ("PUT", "/api/v1/models/m/aliases/prod", {"content": DEEP, "headers": JSON}),
    ("POST", "/api/v1/models", {"content": DEEP, "headers": JSON}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"json": {"version": 1, "expect": 7}}),
    ("POST", "/api/v1/models", {"json": {"name": "m"}}),
    ("POST", "/api/v1/models", {"json": {"name": "a/b"}}),
    ("POST", "/api/v1/models", {"json": {"name": "x", "owner": "me"}}),
    ("POST", "/api/v1/models", {"json": {"name": "x"}, "headers": {"Idempotency-Key": "k" * 256}}),
    (
        "POST",
        "/api/v1/models",
        {"content": b'{"name": "x"}', "headers": {"content-type": "text/plain"}},
    ),
    ("POST", "/api/v1/models/m/versions", {"json": {"metrics": {"auc": "high"}}}),
    ("POST", "/api/v1/models/nope/versions", {"json": {}}),
    ("DELETE", "/api/v1/models/m/versions/7", {}),
    ("GET", "/api/v1/models/m/versions/1/files/missing.bin", {"headers": {"Range": "bytes=z"}}),
    ("GET", f"{MLFLOW}/registered-models/get?name=m", {}),
    ("GET", f"{MLFLOW}/registered-models/get", {}),
    ("GET", f"{MLFLOW}/registered-models/alias?name=m&alias=prod", {}),
    ("GET", f"{MLFLOW}/model-versions/get?name=m&version=one", {}),
    ("GET", f"{MLFLOW}/model-versions/search?filter=name%3D%27m%27&max_results=x", {}),
    ("POST", f"{MLFLOW}/registered-models/create", {"json": {"name": "m"}}),
    ("POST", f"{MLFLOW}/model-versions/create", {"content": b"{", "headers": JSON}),
    ("POST", f"{MLFLOW}/model-versions/create", {"json": {"name": "m", "source": 5}}),
]


def _answers(api: TestClient) -> list[tuple[int, Any]]:
    answers = []
    for method, path, options in CASES:
        response = api.request(method, path, **options)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        answers.append((response.status_code, response.json() if is_json else response.text))
    return answers


@pytest.fixture
def seeded(api: TestClient) -> TestClient:
    assert api.post(f"{V1}/models", json={"name": "m"}).status_code == 201
    assert api.post(f"{V1}/models/m/versions", json={"tags": {"a": "b"}}).status_code == 201
    assert api.put(f"{V1}/models/m/aliases/prod", json={"version": 1}).status_code == 200
    return api


@pytest.fixture
def usual_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Paths of the requests FastAPI's own dependency solving prepared."""
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    yield calls


def test_both_ways_answer_the_same(
    seeded: TestClient, usual_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = _answers(seeded)
    monkeypatch.setattr(LeanRoute, "enabled", False)
    assert _answers(seeded) == lean
    assert {status for status, _ in lean} >= {200, 400, 404, 409, 415}
    assert 500 not in {status for status, _ in lean}


def test_the_common_case_skips_dependency_solving(
    seeded: TestClient, usual_calls: list[str]
) -> None:
    assert seeded.get(f"{V1}/models/m/aliases/prod").status_code == 200
    assert seeded.get(f"{V1}/models/m/aliases/prod?as_of=2999-01-01T00:00:00Z").status_code == 200
    assert seeded.post(f"{V1}/models/m/versions", json={}).status_code == 201
    assert seeded.get(f"{V1}/models?order_by=name&order_by=created_at").status_code == 200
    assert usual_calls == []
    # what the plan declines goes the usual way, which words the error
    assert seeded.get(f"{V1}/models?max_results=many").status_code == 400
    assert seeded.put(f"{V1}/models/m/aliases/prod", json={"v": 1}).status_code == 400
    assert usual_calls == [f"{V1}/models", f"{V1}/models/m/aliases/prod"]


def test_authentication_comes_first(seeded: TestClient, anon: TestClient) -> None:
    for method, path, options in CASES:
        response = anon.request(method, path, **options)
        assert response.status_code in (401, 415), (method, path, response.text)


async def _caller_and_request(request: Request, actor: Caller) -> JSONResponse:
    return JSONResponse({})


async def _no_caller(service: Service, name: str) -> JSONResponse:
    return JSONResponse({})


async def _returns_dict(actor: Caller, name: str) -> dict[str, str]:
    return {}


async def _old_style_query(actor: Caller, limit: int = Query(3)) -> JSONResponse:
    return JSONResponse({})


async def _takes_a_name(name: str) -> str:
    return name


async def _plannable(
    actor: Caller,
    service: Service,
    name: str,
    idempotency_key: IdempotencyKey = None,
    order_by: Annotated[list[str] | None, Query(alias="order")] = None,
    since: datetime | None = None,
) -> JSONResponse:
    return JSONResponse({})


def test_what_has_a_plan() -> None:
    def route(endpoint: Any, dependencies: Any = None) -> LeanRoute:
        return LeanRoute("/models/{name}", endpoint, methods=["GET"], dependencies=dependencies)

    for endpoint in (_caller_and_request, _no_caller, _returns_dict, _old_style_query):
        assert plan_for(route(endpoint)) is None, endpoint.__name__
    assert plan_for(route(_plannable, [Depends(_takes_a_name)])) is None
    with_own = plan_for(route(_plannable, AUTHENTICATED))  # as older FastAPI copies them in
    assert with_own is not None
    assert [(d.name, d.call) for d in with_own.dependencies][:2] == [
        ("", authenticate),
        ("actor", authenticate),
    ]
    plan = plan_for(route(_plannable))
    assert plan is not None
    assert [(p.name, p.where, p.key, p.many) for p in plan.params] == [
        ("name", "path", "name", False),
        ("idempotency_key", "header", "idempotency-key", False),
        ("order_by", "query", "order", True),
        ("since", "query", "since", False),
    ]
