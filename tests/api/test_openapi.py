"""The OpenAPI document tells the truth, checked by hand and fuzzed by Schemathesis.

The hand-written tests: the errors each operation can answer are documented in the one
error shape (no FastAPI 422 that Cairn never sends), every operation but the public ones
says how to authenticate, and a 405 names every method of its path.

The fuzzing (property-based): Schemathesis's engine runs what ``st run`` runs, against
the real app in-process, as the bootstrap admin: the document's examples, its coverage
cases (boundary values, missing and wrong-typed parameters, methods a path does not
serve), generated requests for every operation, and chains of operations through the
links it infers from the document (create a model, then read, tag, version and alias
it), so that requests reach existing objects and not only 404s. Every answer must be no
server error, a status the document lists for its operation, in the documented media
type and shape, and a 405 must name in ``Allow`` every method its path serves. It runs
on SQLite and on PostgreSQL.

Left out: the operations that would lock the admin out halfway (revoking tokens, logging
out, changing users: tests/security covers them) and the binary batch upload, whose
media type Schemathesis cannot generate (tests/api/test_artifacts.py covers it).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from schemathesis import engine, openapi
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from cairn.api.auth import PUBLIC_PATHS
from cairn.errors import Unavailable

EXCLUDED = r"^/api/v1/(tokens/|logout|users/)|/blobs$"
MLFLOW = r"^/api/[23]\.0/"

CONFIG: dict[str, object] = {
    "seed": 20261128,  # the same cases every run; change it to explore further
    "generation": {"max-examples": 6, "database": "none"},
    # Most requests name the objects _seed made, so that they reach them and not a 404.
    "dictionaries": {
        "models": {"values": ["fuzzed", "FUZZED", "absent"]},
        "versions": {"values": [1, 2, 3, 99]},
        "texts": {"values": ["1", "2", "3"]},
        "aliases": {"values": ["champion", "latest", "absent"]},
        "paths": {"values": ["weights.bin", "conf/a.json", "absent.bin"]},
    },
    "parameters": {
        key: {"dictionary": dictionary, "probability": 0.8}
        for key, dictionary in [
            ("path.name", "models"),
            ("query.name", "models"),
            ("body.name", "models"),
            ("path.version", "versions"),
            ("query.version", "texts"),
            ("body.version", "texts"),
            ("path.alias", "aliases"),
            ("query.alias", "aliases"),
            ("path.path", "paths"),
        ]
    },
    "phases": {"stateful": {"max-steps": 8}},
    "checks": {
        # Not claimed: the document cannot say all that the server checks (canonical
        # names, paths, filters), and times are read leniently (a number is a Unix time).
        "negative_data_rejection": {"enabled": False},
        "positive_data_acceptance": {"enabled": False},
    },
    "operations": [
        # A wrong method on an MLflow route answers MLflow's ENDPOINT_NOT_FOUND (404),
        # which MLflow's client reads to fall back from POST to GET.
        {"include-path-regex": MLFLOW, "checks": {"unsupported_method": {"enabled": False}}}
    ],
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_errors_are_documented_in_the_one_shape_the_server_sends(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = api.post("/api/v1/models", json={"name": 5})  # FastAPI would answer 422
    assert error.status_code == 400
    assert set(error.json()) == set(spec["components"]["schemas"]["Error"]["required"])
    for method, path, op in _operations(spec):
        assert "422" not in op["responses"], (method, path)
        for status, response in op["responses"].items():
            if status >= "400" and status != "416":  # a Range past the end: no body
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    models = spec["paths"]["/api/v1/models"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "429"} <= set(models)


def test_every_operation_but_the_public_ones_names_its_authentication(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic"}
    for method, path, op in _operations(spec):
        if path in PUBLIC_PATHS:
            assert "security" not in op, (method, path)
        else:
            assert op["security"] == [{"bearer": []}, {"basic": []}], (method, path)
            assert "401" in op["responses"], (method, path)


def test_path_parameters_say_what_they_accept(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    op = spec["paths"]["/api/v1/models/{name}/aliases/{alias}"]["put"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert params["alias"]["pattern"] == "^[A-Za-z][A-Za-z0-9_-]*$"
    op = spec["paths"]["/api/v1/models/{name}/versions/{version}"]["get"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert params["version"]["type"] == "integer" and params["version"]["minimum"] == 1
    api.post("/api/v1/models", json={"name": "m"})
    assert api.get("/api/v1/models/m/versions/0").status_code == 400
    assert api.put("/api/v1/models/m/aliases/9x", json={"version": 1}).status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/models", "GET, POST"),
        ("POST", "/api/v1/models/m", "GET, PATCH, DELETE"),
        ("OPTIONS", "/api/v1/models/m/aliases/prod", "GET, PUT, DELETE"),
        ("DELETE", "/health", "GET"),
    ],
)
def test_405_names_every_method_of_its_path(
    api: TestClient, method: str, path: str, allowed: str
) -> None:
    answer = api.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed


def _served(app: FastAPI) -> dict[str, set[str]]:
    """The methods of every path the app serves under /api/v1 and documents, as the
    document writes the path (``{path:path}`` is ``{path}``)."""
    served: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        if not route.path.startswith("/api/v1/") or not route.include_in_schema:
            continue
        methods = {m.lower() for m in route.methods or ()}
        if not isinstance(route.original_route, APIRoute):
            methods.discard("head")  # Starlette's own HEAD of a GET route
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        served.setdefault(path, set()).update(methods)
    return served


def test_every_route_is_documented_with_its_methods_and_nothing_else(
    app: FastAPI, api: TestClient
) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    documented = {p: set(ops) for p, ops in spec["paths"].items() if p.startswith("/api/v1/")}
    assert _served(app) == documented


# A value for each path parameter, so that every documented operation can be called.
SAMPLES = {
    "name": "m",
    "version": "1",
    "alias": "prod",
    "key": "k",
    "path": "w.bin",
    "digest": "sha256:" + "0" * 64,
    "upload_id": "0" * 32,
    "token_id": "1",
    "request_id": "1",
    "policy_id": "1",
    "input_id": "1",
    "user": "bob",
    "delivery_id": "0" * 32,
    "deployment": "d",
}


def _call(api: TestClient, method: str, path: str) -> Any:
    url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
    return api.request(method.upper(), url, json={} if method in ("post", "put", "patch") else None)


def test_every_operation_documents_the_503_it_answers_while_the_database_is_down(
    app: FastAPI, api: TestClient
) -> None:
    """api.md: any request may answer 503 ``TEMPORARILY_UNAVAILABLE`` (the database busy
    past the retries, or unreachable), and the SDK retries on it: a client generated from
    the document must know it too."""
    spec = api.get("/api/v1/openapi.json").json()

    def down(*_: Any, **__: Any) -> Any:
        raise Unavailable("metadata database unavailable: gone")

    app.state.service.db.read = app.state.service.db.write = down
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            answer = _call(api, method, path)  # login's empty body is refused first: 400
            assert str(answer.status_code) in op["responses"], (method, path, answer.text)
            assert "503" in op["responses"], (method, path)
            assert "Retry-After" in op["responses"]["503"].get("headers", {}), (method, path)
            if answer.status_code == 503:  # every 503 says when to come back
                assert int(answer.headers["Retry-After"]) >= 1, (method, path)


def test_reads_of_lost_bytes_document_their_500(api: TestClient, blob_root: Path) -> None:
    """api.md: bytes gone from the store or changed answer 500 ``DATA_LOSS``: each
    operation that reads them documents it."""
    spec = api.get("/api/v1/openapi.json").json()
    data = b"weights" * 10
    manifest = [{"path": "w.bin", "size": len(data), "digest": sha(data)}]
    api.post("/api/v1/models", json={"name": "m"})
    api.post("/api/v1/models/m/versions", json={"files": manifest})
    assert api.put(f"/api/v1/models/m/versions/1/blobs/{sha(data)}", content=data).is_success
    [stored] = [p for p in blob_root.rglob("*") if p.is_file() and p.name == sha(data)[7:]]
    stored.unlink()
    version = "/api/v1/models/{name}/versions/{version}"
    for method, path, body in [
        ("get", version + "/files/{path}", None),
        ("head", version + "/files/{path}", None),
        ("post", version + "/files", {"paths": ["w.bin"]}),
        ("post", version + "/urls", {"paths": ["w.bin"]}),
    ]:
        url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
        answer = api.request(method.upper(), url, json=body)
        assert answer.status_code == 500, (method, path, answer.text)
        assert "500" in spec["paths"][path][method]["responses"], (method, path)


def _run(app: FastAPI, headers: dict[str, str]) -> tuple[list[str], int]:
    """What failed (a failed check and how to reproduce it, each) and how many requests
    were checked."""
    config = SchemathesisConfig.from_dict({**CONFIG, "headers": headers})
    schema = openapi.from_asgi("/api/v1/openapi.json", app, config=config)
    schema = schema.exclude(path_regex=EXCLUDED)
    failed: list[str] = []
    checked = 0
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                checked += 1
                failed += [
                    f"{event.phase.value} {event.recorder.label}: {node.name}: "
                    f"{node.failure_info.failure.title}\n{node.failure_info.code_sample}"
                    for node in nodes
                    if node.status is Status.FAILURE and node.failure_info is not None
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failed.append(f"error: {event!r}")
    return failed, checked


def _seed(api: TestClient) -> None:
    """Model ``fuzzed``: version 1 READY with two files (alias ``champion``), version 2
    READY with none, version 3 PENDING."""
    files = {"weights.bin": b"w" * 1000, "conf/a.json": b"{}"}
    manifest = [
        {"path": path, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
        for path, data in files.items()
    ]
    assert api.post("/api/v1/models", json={"name": "fuzzed"}).status_code == 201
    assert api.post("/api/v1/models/fuzzed/versions", json={"files": manifest}).status_code == 201
    for entry, data in zip(manifest, files.values(), strict=True):
        url = f"/api/v1/models/fuzzed/versions/1/blobs/{entry['digest']}"
        assert api.put(url, content=data).status_code == 200
    assert api.post("/api/v1/models/fuzzed/versions", json={}).status_code == 201
    assert api.put("/api/v1/models/fuzzed/aliases/champion", json={"version": 1}).is_success
    api.post("/api/v1/models/fuzzed/versions", json={"files": manifest[:1]})


def test_every_operation_keeps_its_documented_contract(
    app: FastAPI, api: TestClient, admin_headers: dict[str, str]
) -> None:
    app.state.limiter.limit = 1_000_000  # generated credentials fail on purpose
    _seed(api)
    failed, checked = _run(app, admin_headers)
    assert not failed, "\n\n".join(failed)
    assert checked > 1_000  # the run reached the operations
