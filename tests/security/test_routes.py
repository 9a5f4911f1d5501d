"""The route-table sweep: every route of the real app, found by enumerating ``app.routes``.

For each route (native ``/api/v1``, MLflow-compatible ``/api/2.0/mlflow`` and ``/ajax-api``,
``mlflow-artifacts``, and the MLflow catch-alls) a concrete request is built and sent:

- anonymously: refused with 401, except for an explicit allow-list (health, readiness,
  login, the API schema and its docs);
- as a real user holding no grant (created over the API, with a write token): refused with
  401/403/404, or for the few self-service routes (who am I, my tokens, lists filtered to
  what I may read) answered without a trace of anything they may not read; and the answer
  for an object that exists is the answer for one that does not (same status, same error
  code, the same message once the names are swapped), so names and ids do not leak;
- statically: the route's dependency tree contains ``authenticate``.

The requests are sent once per backend, in a module-scoped fixture that builds its own app
(nothing it needs outlives its setup), and each route is then checked by its own test item,
so a failure names the route. A route that this file has no sample for fails
``test_every_route_has_a_sample``: new routes must be added here, deliberately.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import Match, Mount

from cairn.api.auth import PUBLIC_PATHS, authenticate
from cairn.app import create_app
from cairn.settings import Settings
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import metadata
from cairn.ui.web import UiRoute

pytestmark = pytest.mark.xdist_group("security-route-sweep")  # one worker computes the sweep

ADMIN_TOKEN = "cairn-sweep-admin-token-0123456789abcdefghij"
MODEL, GHOST = "vault.m", "vault.ghost"
DEPLOYMENT = "vault.dep"
DATA_A, DATA_B = b"weights of version one", b"weights of version two, still uploading"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- what may be called without credentials, and what a grant-less user may call -----------

ANONYMOUS_ALLOWED = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/api/v1/login"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/docs"),  # Swagger UI and its files (api/docs_page.py); no OAuth2 redirect page
    ("GET", "/docs/swagger-ui-bundle.js"),
    ("GET", "/docs/swagger-ui-start.js"),
    ("GET", "/docs/swagger-ui.css"),
    ("GET", "/docs/favicon.png"),
}
# Answered for any authenticated caller: about themselves, or lists filtered to what they
# may read (which for a user without grants is nothing).
SELF_SERVICE = {
    "whoami",
    "logout",
    "list_tokens",
    "create_token",
    "list_models",
    "search_versions",
    "list_promotions",
    "list_webhooks",
    "list_dataset_users",
    "dataset_impact",
    "list_deployments",
    "search_registered_models",
    "search_model_versions",
    "server_info",
}
# Refusals that are not about who is calling: the same for everyone.
FIXED_REFUSALS = {"refuse_artifact_writes": 405, "unknown_endpoint": 404}

# Path parameters that are numbers; HUGE fills them beyond what a 64-bit id holds.
NUMBERED = re.compile(r"\{(version|token_id|policy_id|request_id|input_id)\}")
BIG = "9" * 25
HUGE = {
    "version": BIG,
    "token_id": BIG,
    "policy_id": BIG,
    "request_id": BIG,
    "input_id": BIG,
    "user": "admin",
    "member": "admin",
    "group": "team",
    "signer": "release",
    "digest": sha(DATA_B),
    "upload_id": "0" * 32,
    "pem": "",
    "webhook": "hook",
    "delivery": "0" * 32,
}

# -- how to call each route ------------------------------------------------------------------
# Placeholders in braces are filled from the world (the real objects) or its ghosts.

QUERY: dict[str, dict[str, str]] = {
    "resolve": {"uri": "models:/{model}/1"},
    "list_dataset_users": {"uri": "s3://lake/{model}"},
    "dataset_impact": {"uri": "s3://lake/{model}", "depth": "3"},
    "diff_versions": {"old": "models:/{model}/1", "new": "models:/{model}@champion"},
    "list_grants": {"model": "{model}"},
    "revoke_grant": {"subject": "user:{user}", "model": "{model}"},
    "list_audit": {"model": "{model}"},
    "list_policies": {"model": "{model}"},
    "deployment_at": {"at": "2030-01-01T00:00:00Z"},
    "list_artifacts": {"path": "cairn-models/{model}/1"},
    "get_registered_model": {"name": "{model}"},
    "search_registered_models": {"filter": "name = '{model}'"},
    "get_latest_versions_by_get": {"name": "{model}"},
    "get_model_version_by_alias": {"name": "{model}", "alias": "champion"},
    "get_model_version": {"name": "{model}", "version": "1"},
    "search_model_versions": {"filter": "name = '{model}'"},
    "get_model_version_download_uri": {"name": "{model}", "version": "1"},
}
BODY: dict[str, dict[str, Any]] = {
    "login": {"user": "admin", "password": "not the password"},
    "create_model": {"name": "{model}"},
    "update_model": {"description": "changed"},
    "rename_model": {"new_name": "{model}-renamed"},
    "set_model_tag": {"value": "v2"},
    "set_retention": {"keep": 3},
    "create_version": {},
    "update_version": {"description": "changed"},
    "transition_stage": {"stage": "Staging"},
    "set_version_tag": {"value": "v2"},
    "set_alias": {"version": 1},
    "begin_upload": {"digest": "{digest}"},
    "import_model": {"name": "{model}"},
    "import_version": {},
    "reserve_versions": {"up_to": 5},
    "create_user": {"name": "eve"},
    "update_user": {"disabled": True},
    "create_group": {"name": "team2"},
    "set_grant": {"subject": "user:{user}", "role": "MANAGE", "model": "{model}"},
    "create_token": {"scope": "read"},
    "add_signer": {"name": "release", "kind": "key", "material": "{pem}"},
    "add_signature": {"bundle": {}},
    "put_policy": {"model_pattern": "{model}", "alias_pattern": "prod*"},
    "promote": {"model": "{model}", "version": 1, "alias": "staging"},
    "set_scan_policy": {"action": "label"},
    "read_files": {"paths": ["a.bin"]},
    "file_urls": {"paths": ["a.bin"]},
    "prune_versions": {"keep": 1},
    "create_webhook": {"name": "hook2", "url": "http://127.0.0.1:9/", "scope": "{model}"},
    "update_webhook": {"active": False},
    "record_lineage_inputs": {"inputs": [{"kind": "dataset", "uri": "s3://lake/{model}"}]},
    "import_openlineage": {
        "eventTime": "2026-11-30T00:00:00Z",
        "run": {"runId": "00000000-0000-0000-0000-000000000007"},
        "job": {"namespace": "ci", "name": "train"},
        "outputs": [{"namespace": "cairn", "name": "models:/{model}/1"}],
        "producer": "https://example.com/ci",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    },
    "set_deployment": {"model_uri": "models:/{model}/1", "environment": "prod"},
    "retire_deployment": {"reason": "sweep"},
    "push_feedback": {"points": [{"key": "k", "value": 1, "timestamp": "2020-01-01T00:00:00Z"}]},
}
# The MLflow registry API reads a JSON body for POST, PATCH and DELETE: one that names
# everything any of its routes needs.
MLFLOW_BODY = {
    "name": "{model}",
    "version": "1",
    "alias": "champion",
    "key": "k",
    "value": "v2",
    "new_name": "{model}-renamed",
    "stage": "Staging",
    "description": "changed",
    "source": "models:/{model}/1",
}
RAW: dict[str, bytes] = {
    "put_blob": DATA_B,
    "put_blobs": f"{sha(DATA_B)} {len(DATA_B)}\n".encode() + DATA_B,
    "append_upload": DATA_B[:4],
}
HEADERS: dict[str, dict[str, str]] = {"append_upload": {"Upload-Offset": "0"}}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the route's path template
    name: str  # the endpoint function's name

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    error_code: str | None
    message: str
    text: str

    @classmethod
    def of(cls, response: Any) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("error_code") if isinstance(body, dict) else None
        message = body.get("message", "") if isinstance(body, dict) else ""
        return cls(response.status_code, code, str(message), response.text)


def route_contexts(app: FastAPI) -> Iterator[Any]:
    """Every API route as the app serves it (included routers flattened, their prefixes
    and dependencies applied; a router mounted at a prefix, as the MLflow API is, seen
    under its full paths). The web UI's pages are left out: they answer a visitor without
    a session with a redirect to sign in, not a 401, and tests/ui/test_ui_routes.py sweeps
    them the same way."""
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, APIRouter):
            outer = APIRouter()
            outer.include_router(route.app, prefix=route.path)
            yield from iter_route_contexts(outer.routes)
        else:
            found = iter_route_contexts([route])
            yield from (rc for rc in found if not isinstance(rc.original_route, UiRoute))


def endpoints(app: FastAPI) -> list[Endpoint]:
    """(method, path) pairs in dispatch order; a pair an earlier route already serves (the
    MLflow catch-alls behind the artifact-write refusal) is unreachable and left out."""
    found: dict[tuple[str, str], Endpoint] = {}
    for rc in route_contexts(app):
        methods = set(rc.methods or ())
        if not isinstance(rc.original_route, APIRoute):
            methods.discard("HEAD")  # Starlette adds HEAD to every GET route
        for method in sorted(methods):
            found.setdefault((method, rc.path), Endpoint(method, rc.path, rc.name))
    return list(found.values())


def _depends_on_authenticate(dependant: Any) -> bool:
    for sub in dependant.dependencies:
        if sub.call is authenticate or _depends_on_authenticate(sub):
            return True
    return False


def _matching(app: FastAPI, method: str, path: str) -> Endpoint | None:
    """The route the app dispatches ``method path`` to (the first full match)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for rc in route_contexts(app):
        match, _ = rc.matches(scope)
        if match is Match.FULL:
            return Endpoint(method, str(rc.path), str(rc.name))
    return None


# -- the world the sweep runs against --------------------------------------------------------


@dataclass
class World:
    values: dict[str, str]  # placeholder → real object
    ghosts: dict[str, str]  # placeholder → an object that does not exist


def _fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], template)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def path_values(path: str, values: dict[str, str]) -> dict[str, str]:
    """What each path parameter of ``path`` stands for."""
    if path.startswith("/api/v1/users/"):
        name = values["user"]
    elif path.startswith("/api/v1/groups/"):
        name = values["group"]
    elif path.startswith("/api/v1/signers/"):
        name = values["signer"]
    elif path.startswith("/api/v1/webhooks/"):
        name = values["webhook"]
    else:
        name = values["model"]
    if "/mlflow-artifacts/" in path:
        file_path = f"cairn-models/{values['model']}/1/a.bin"
    elif "/mlflow/" in path:
        file_path = "runs/get"  # the catch-all: no such MLflow endpoint
    else:
        file_path = "a.bin"
    return {
        "name": name,
        "version": values.get("version", "1"),
        "key": "k",
        "alias": "champion",
        "digest": values["digest"],
        "upload_id": values["upload_id"],
        "path": file_path,
        "token_id": values["token_id"],
        "policy_id": values["policy_id"],
        "request_id": values["request_id"],
        "input_id": values.get("input_id", "1"),
        "user": values["member"],
        "delivery_id": values["delivery"],
        "deployment": values.get("deployment", DEPLOYMENT),
    }


def build_call(endpoint: Endpoint, values: dict[str, str]) -> Call:
    params = path_values(endpoint.path, values)

    def segment(m: re.Match[str]) -> str:
        value = params[m[1]]
        return quote(value, safe="/") if m[2] else quote(value, safe="")

    url = re.sub(r"\{(\w+)(:path)?\}", segment, endpoint.path)
    mlflow = "/mlflow/" in endpoint.path and endpoint.name != "unknown_endpoint"
    query = _fill(QUERY.get(endpoint.name, {}), values)
    body: Any = None
    content = None
    if endpoint.name in RAW:
        content = RAW[endpoint.name]
    elif endpoint.method in ("POST", "PUT", "PATCH", "DELETE"):
        if mlflow:
            body = _fill(MLFLOW_BODY, values)
        elif endpoint.name in BODY:
            body = _fill(BODY[endpoint.name], values)
    headers = dict(HEADERS.get(endpoint.name, {}))
    if content is not None:
        headers["Content-Type"] = "application/octet-stream"
    return Call(endpoint.method, url, query, body, content, headers)


def send(client: TestClient, call: Call, headers: dict[str, str] | None = None) -> Answer:
    response = client.request(
        call.method,
        call.url,
        params=call.params,
        json=call.json,
        content=call.content,
        headers={**call.headers, **(headers or {})},
    )
    return Answer.of(response)


def _ok(response: Any, expected: int = 200) -> Any:
    assert response.status_code == expected, response.text
    return response.json() if response.content else None


def build_world(api: TestClient) -> World:
    """As the admin: a model with a READY version, tags, an alias, a PENDING version with
    an upload in progress, a protected alias with a pending promotion request, a
    deployment, a group, and a user without grants."""
    _ok(api.post("/api/v1/models", json={"name": MODEL, "tags": {"k": "v"}}), 201)
    files = [{"path": "a.bin", "size": len(DATA_A), "digest": sha(DATA_A)}]
    _ok(api.post(f"/api/v1/models/{MODEL}/versions", json={"files": files}), 201)
    _ok(
        api.put(
            f"/api/v1/models/{MODEL}/versions/1/blobs/{sha(DATA_A)}",
            content=DATA_A,
            headers={"Content-Type": "application/octet-stream"},
        )
    )
    _ok(api.put(f"/api/v1/models/{MODEL}/versions/1/tags/k", json={"value": "v"}))
    _ok(api.put(f"/api/v1/models/{MODEL}/aliases/champion", json={"version": 1}))
    files = [{"path": "b.bin", "size": len(DATA_B), "digest": sha(DATA_B)}]
    _ok(api.post(f"/api/v1/models/{MODEL}/versions", json={"files": files}), 201)
    ticket = _ok(
        api.post(f"/api/v1/models/{MODEL}/versions/2/uploads", json={"digest": sha(DATA_B)}),
        201,
    )
    policy = _ok(
        api.put(
            "/api/v1/policies",
            json={"model_pattern": MODEL, "alias_pattern": "production", "approvals": 1},
        )
    )
    promotion = _ok(
        api.post("/api/v1/promotions", json={"model": MODEL, "version": 1, "alias": "production"}),
        201,
    )
    assert promotion["status"] == "pending", promotion
    deployment = {"model_uri": f"models:/{MODEL}/1", "environment": "prod"}
    _ok(api.put(f"/api/v1/deployments/{DEPLOYMENT}", json=deployment))
    _ok(api.post("/api/v1/groups", json={"name": "team"}), 201)
    _ok(api.put("/api/v1/groups/team/members/admin"), 204)
    _ok(api.post("/api/v1/users", json={"name": "dave"}), 201)
    hook = {"name": "hook", "url": "http://127.0.0.1:9/", "scope": MODEL}
    _ok(api.post("/api/v1/webhooks", json=hook), 201)
    ping = _ok(api.post("/api/v1/webhooks/hook/ping"), 202)
    (admin_token,) = _ok(api.get("/api/v1/tokens"))["tokens"]
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    real = {
        "pem": pem,
        "model": MODEL,
        "user": "admin",
        "member": "admin",
        "group": "team",
        "signer": "release",
        "digest": sha(DATA_B),
        "upload_id": ticket["upload_id"],
        "token_id": str(admin_token["id"]),
        "policy_id": str(policy["id"]),
        "request_id": str(promotion["id"]),
        "webhook": "hook",
        "delivery": ping["id"],
        "deployment": DEPLOYMENT,
    }
    ghosts = {
        **real,
        "model": GHOST,
        "user": "ghost-user",
        "member": "ghost-user",
        "group": "ghost-group",
        "signer": "ghost-signer",
        "upload_id": "0" * len(ticket["upload_id"]),
        "token_id": "987654",
        "policy_id": "987654",
        "request_id": "987654",
        "webhook": "ghost-hook",
        "delivery": "0" * len(ping["id"]),
        "deployment": "ghost-dep",
    }
    return World(real, ghosts)


@dataclass
class Sweep:
    anonymous: dict[Endpoint, Answer]
    huge: dict[Endpoint, Answer]  # as the admin, with numbers no 64-bit id can hold
    real: dict[Endpoint, Answer]  # as the grant-less user, on existing objects
    ghost: dict[Endpoint, Answer]  # as the grant-less user, on objects that do not exist
    world: World
    leaks: dict[str, str]  # text that must not appear in a self-service answer


def _database_url(backend: str, request: pytest.FixtureRequest, root: Path) -> str:
    if backend == "sqlite":
        path = root / "cairn.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    db = Database(url)
    with db.engine.begin() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()
    return url


def _order(found: list[Endpoint]) -> list[Endpoint]:
    """Deletes and logout last, so a route that wrongly succeeds cannot change what a
    later route answers."""
    return sorted(found, key=lambda e: (e.method == "DELETE", e.name == "logout"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sweep(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Every route called anonymously and as ``dave`` (no grants), on one app per backend.

    Everything happens here, during setup: the answers are plain data, so nothing depends
    on the database after other tests of this worker have reused it.
    """
    root = tmp_path_factory.mktemp(f"sweep-{request.param}")
    settings = Settings(
        data_dir=root / "data",
        backend_uri=_database_url(request.param, request, root),
        artifacts_uri=str(root / "blobs"),
        allowed_hosts=["testserver"],
        bootstrap_token=ADMIN_TOKEN,
        webhooks=False,
        webhook_allow_private=True,  # the world's webhook posts to loopback
    )
    app = create_app(settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            world = build_world(client)
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            created = client.post("/api/v1/tokens", json={"user": "dave", "scope": "write"})
            dave = {"Authorization": f"Bearer {_ok(created, 201)['token']}"}
            del client.headers["Authorization"]
            found = endpoints(app)
            assert found == ENDPOINTS, "the app's routes changed between two builds"
            anonymous = {e: send(client, build_call(e, world.values)) for e in found}
            real, ghost = {}, {}
            for e in _order(found):
                call = build_call(e, world.values)
                real[e] = send(client, call, dave)
                ghost_call = build_call(e, world.ghosts)
                ghost[e] = real[e] if ghost_call == call else send(client, ghost_call, dave)
            # last: the admin passes every check, so these reach the database
            huge = {
                e: send(client, build_call(e, HUGE | {"model": MODEL}), admin)
                for e in found
                if NUMBERED.search(e.path)
            }
    finally:
        app.state.service.db.dispose()
    leaks = {  # what the grant-less user must never see a trace of
        "model": MODEL,
        "digest": sha(DATA_A).removeprefix("sha256:"),
        "upload": world.values["upload_id"],
    }
    return Sweep(anonymous, huge, real, ghost, world, leaks)


# -- the routes, known at collection time: one app built on a throwaway SQLite file ---------


@dataclass(frozen=True)
class Static:
    endpoints: list[Endpoint]
    authenticated: dict[Endpoint, bool]  # authenticate is in the route's dependency tree
    dispatched: dict[Endpoint, Endpoint | None]  # the route a sample request reaches


def _static() -> Static:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            backend_uri=None,
            artifacts_uri=None,
            bootstrap_token=ADMIN_TOKEN,
        )
        app = create_app(settings)
        try:
            found = endpoints(app)
            contexts: dict[tuple[str, str], Any] = {}
            for rc in route_contexts(app):
                if isinstance(rc.original_route, APIRoute):
                    for method in rc.methods:
                        contexts.setdefault((method, rc.path), rc)
            shape = {  # values of the right shape: dispatch looks at nothing else
                "model": MODEL,
                "user": "admin",
                "member": "admin",
                "group": "team",
                "signer": "release",
                "digest": sha(DATA_B),
                "upload_id": "0" * 32,
                "token_id": "1",
                "policy_id": "1",
                "request_id": "1",
                "pem": "",
                "webhook": "hook",
                "delivery": "0" * 32,
                "deployment": DEPLOYMENT,
            }
            authenticated, dispatched = {}, {}
            for e in found:
                rc = contexts.get((e.method, e.path))
                authenticated[e] = rc is not None and _depends_on_authenticate(rc.dependant)
                dispatched[e] = _matching(app, e.method, build_call(e, shape).url)
            return Static(found, authenticated, dispatched)
        finally:
            app.state.service.db.dispose()


STATIC = _static()
ENDPOINTS = STATIC.endpoints
PROTECTED = [e for e in ENDPOINTS if (e.method, e.path) not in ANONYMOUS_ALLOWED]
NUMBERED_ENDPOINTS = [e for e in ENDPOINTS if NUMBERED.search(e.path)]


def _ids(found: list[Endpoint]) -> list[str]:
    return [e.label for e in found]


def test_the_sweep_sees_every_family_of_routes() -> None:
    paths = {e.path for e in ENDPOINTS}
    for prefix in (
        "/api/v1/models",
        "/api/v1/tokens",
        "/api/v1/users",
        "/api/v1/grants",
        "/api/v1/audit",
        "/api/v1/signers",
        "/api/v1/promotions",
        "/api/v1/deployments",
        "/api/v1/import/models",
        "/api/v1/uploads/",
        "/api/2.0/mlflow/registered-models/",
        "/api/2.0/mlflow/model-versions/",
        "/ajax-api/2.0/mlflow/",
        "/api/2.0/mlflow-artifacts/",
        "/api/3.0/mlflow/",
    ):
        assert any(p.startswith(prefix) for p in paths), f"no route under {prefix}"
    assert len(ENDPOINTS) > 120
    assert {(e.method, e.path) for e in ENDPOINTS} >= ANONYMOUS_ALLOWED


def test_the_allow_list_is_the_code_allow_list() -> None:
    """The public paths the auth module names are exactly those allowed here."""
    assert {path for _, path in ANONYMOUS_ALLOWED} == set(PUBLIC_PATHS)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_every_route_depends_on_authenticate(endpoint: Endpoint) -> None:
    """Statically, and exactly: the allow-list needs no credentials, nothing else is
    served without them. The sample the sweep sends reaches this very route."""
    allowed = (endpoint.method, endpoint.path) in ANONYMOUS_ALLOWED
    assert STATIC.authenticated[endpoint] is not allowed, (
        f"{endpoint.label}: allow-listed, yet requires authentication (update the allow-list)"
        if allowed
        else f"{endpoint.label}: no authenticate dependency on this route"
    )
    assert STATIC.dispatched[endpoint] == endpoint, (
        f"the sweep's request for {endpoint.label} reaches {STATIC.dispatched[endpoint]}: "
        "give the route a sample in this file"
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_anonymous_calls_are_refused(endpoint: Endpoint, sweep: Sweep) -> None:
    answer = sweep.anonymous[endpoint]
    assert answer.status < 500, f"{endpoint.label}: {answer.status} {answer.text}"
    if (endpoint.method, endpoint.path) in ANONYMOUS_ALLOWED:
        # login refuses a wrong password itself; nothing here asks for credentials first
        assert "authentication required" not in answer.message, answer.text
        return
    assert answer.status == 401, f"{endpoint.label}: {answer.status} {answer.text}"
    if endpoint.method != "HEAD":
        assert answer.error_code == "UNAUTHENTICATED", answer.text


@pytest.mark.parametrize("endpoint", NUMBERED_ENDPOINTS, ids=_ids(NUMBERED_ENDPOINTS))
def test_out_of_range_numbers_are_not_server_errors(endpoint: Endpoint, sweep: Sweep) -> None:
    """Ids are 64-bit in the database; a larger one must be refused before it gets there."""
    answer = sweep.huge[endpoint]
    assert answer.status < 500, f"{endpoint.label}: {answer.status} {answer.text}"


@pytest.mark.parametrize("endpoint", PROTECTED, ids=_ids(PROTECTED))
def test_a_user_without_grants_is_refused_alike_for_real_and_ghost_objects(
    endpoint: Endpoint, sweep: Sweep
) -> None:
    real, ghost = sweep.real[endpoint], sweep.ghost[endpoint]
    for answer in (real, ghost):
        assert answer.status < 500, f"{endpoint.label}: {answer.status} {answer.text}"
    if endpoint.name in SELF_SERVICE:
        assert 200 <= real.status < 300, f"{endpoint.label}: {real.status} {real.text}"
        for what, secret in sweep.leaks.items():
            assert secret not in real.text, f"{endpoint.label} shows the {what}: {real.text}"
    elif endpoint.name in FIXED_REFUSALS:
        assert real.status == FIXED_REFUSALS[endpoint.name], real.text
    else:
        assert real.status in (401, 403, 404), f"{endpoint.label}: {real.status} {real.text}"
    # the same answer whether the object exists or not
    assert (real.status, real.error_code) == (ghost.status, ghost.error_code), (
        f"{endpoint.label}: existing → {real.status} {real.text}; "
        f"missing → {ghost.status} {ghost.text}"
    )
    if real.status >= 400:
        swapped = ghost.message
        values, ghosts = sweep.world.values, sweep.world.ghosts
        for key in sorted(ghosts, key=lambda k: -len(ghosts[k])):
            if ghosts[key] != values[key]:
                swapped = swapped.replace(ghosts[key], values[key])
        assert real.message == swapped, f"{endpoint.label}: {real.message!r} vs {ghost.message!r}"
