"""The permission matrix over HTTP, on SQLite and PostgreSQL, with real users and tokens.

The cast (every one a real user created through the API, each with a write token):

- ``alice``: MANAGE on ``risk.*`` through a pattern grant, and creator of ``risk.fraud``;
- ``bob``: READ on the one model ``risk.fraud`` (a model grant, given by alice);
- ``carol``: WRITE on ``risk.fraud`` through her group ``risk-team``;
- ``dave``: no grant at all;
- ``admin``: the bootstrap administrator.

Each use case is called by each of them and must be allowed or refused as the roles say:
by name (a model they may not read is "not found", whether or not it exists) and by id
(upload ids, token ids, promotion request ids belong to someone). Lists and searches, native
and MLflow-compatible, return only what the caller may read. Also: a re-created name
inherits nothing; creators get MANAGE (or nothing, if so configured); token scopes cap
roles; clients cannot set fields the API does not name; dedup never tells a caller that
someone else holds the bytes they declare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn.app import create_app
from cairn.settings import Settings

V1 = "/api/v1"
FRAUD = "risk.fraud"
DATA = b"the fraud model's weights"
EVERYONE = ("alice", "bob", "carol", "dave", "admin")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.content


def octets(data: bytes) -> dict[str, Any]:
    return {"content": data, "headers": {"Content-Type": "application/octet-stream"}}


@dataclass
class World:
    api: TestClient
    headers: dict[str, dict[str, str]]  # user → Authorization header

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **self.headers[who]}
        return self.api.request(method, url, headers=headers, **kwargs)

    def as_(self, who: str) -> Callable[..., httpx.Response]:
        return lambda method, url, **kw: self.call(who, method, url, **kw)

    def token(self, who: str, scope: str = "write") -> dict[str, str]:
        made = ok(self.api.post(f"{V1}/tokens", json={"user": who, "scope": scope}), 201)
        return {"Authorization": f"Bearer {made['token']}"}

    def user(self, name: str, scope: str = "write") -> None:
        ok(self.api.post(f"{V1}/users", json={"name": name}), 201)
        self.headers[name] = self.token(name, scope)

    def grant(self, subject: str, role: str, *, by: str = "admin", **target: str) -> None:
        ok(self.call(by, "PUT", f"{V1}/grants", json={"subject": subject, "role": role, **target}))

    def version(self, who: str, name: str, data: bytes | None = None) -> int:
        files = [] if data is None else [{"path": "a.bin", "size": len(data), "digest": sha(data)}]
        made = ok(
            self.call(who, "POST", f"{V1}/models/{name}/versions", json={"files": files}), 201
        )
        number = int(made["version"])
        if data is not None and made["missing"]:
            url = f"{V1}/models/{name}/versions/{number}/blobs/{sha(data)}"
            ok(self.call(who, "PUT", url, **octets(data)))
        return number

    def names(self, who: str, url: str, key: str, **params: Any) -> set[str]:
        """Every name a listing shows ``who``, across pages of two."""
        seen: set[str] = set()
        token = None
        for _ in range(50):
            query = {**params, "max_results": 2, **({"page_token": token} if token else {})}
            body = ok(self.call(who, "GET", url, params=query))
            for item in body.get(key, []):
                seen.add(item["name"])
            token = body.get("next_page_token")
            if not token:
                return seen
        raise AssertionError(f"{url} never ends")


@pytest.fixture
def world(api: TestClient, admin_headers: dict[str, str]) -> World:
    w = World(api, {"admin": admin_headers})
    for name in ("alice", "bob", "carol", "dave", "erin"):
        w.user(name)
    ok(api.post(f"{V1}/groups", json={"name": "risk-team"}), 201)
    ok(api.put(f"{V1}/groups/risk-team/members/carol"), 204)
    w.grant("user:alice", "MANAGE", pattern="risk.*")
    ok(w.call("alice", "POST", f"{V1}/models", json={"name": FRAUD}), 201)
    assert w.version("alice", FRAUD, DATA) == 1
    ok(w.call("alice", "PUT", f"{V1}/models/{FRAUD}/aliases/champion", json={"version": 1}))
    w.grant("user:bob", "READ", by="alice", model=FRAUD)
    w.grant("group:risk-team", "WRITE", by="alice", model=FRAUD)
    ok(api.post(f"{V1}/models", json={"name": "risk.other"}), 201)
    ok(api.post(f"{V1}/models", json={"name": "other.secret"}), 201)
    w.version("admin", "risk.other")
    w.version("admin", "other.secret")
    return w


# -- the matrix ----------------------------------------------------------------------------

A, B, C, D, ADM = EVERYONE
R = {A: 200, B: 200, C: 200, D: 404, ADM: 200}  # READ is enough
W = {A: 200, B: 403, C: 200, D: 404, ADM: 200}  # WRITE
M = {A: 200, B: 403, C: 403, D: 404, ADM: 200}  # MANAGE


def _with(expected: dict[str, int], **changes: int) -> dict[str, int]:
    return {**expected, **changes}


Case = tuple[str, Callable[[str], tuple[str, str, dict[str, Any]]], dict[str, int]]


def _req(method: str, url: str, **kwargs: Any) -> Callable[[str], tuple[str, str, dict[str, Any]]]:
    return lambda who: (method, url.format(who=who), kwargs)


MODEL_URL = f"{V1}/models/{FRAUD}"
MLFLOW = "/api/2.0/mlflow"
CASES: list[Case] = [
    ("get model", _req("GET", MODEL_URL), R),
    ("list versions", _req("GET", f"{MODEL_URL}/versions"), R),
    ("get version", _req("GET", f"{MODEL_URL}/versions/1"), R),
    ("resolve alias", _req("GET", f"{V1}/resolve", params={"uri": f"models:/{FRAUD}@champion"}), R),
    (
        "diff two versions",
        _req(
            "GET",
            f"{V1}/diff",
            params={"old": f"models:/{FRAUD}/1", "new": f"models:/{FRAUD}@champion"},
        ),
        R,
    ),
    ("alias history", _req("GET", f"{MODEL_URL}/aliases/champion/history"), R),
    ("get by alias", _req("GET", f"{MODEL_URL}/aliases/champion"), R),
    (
        "mlflow get by alias",
        _req(
            "GET", f"{MLFLOW}/registered-models/alias", params={"name": FRAUD, "alias": "champion"}
        ),
        R,
    ),
    ("list files", _req("GET", f"{MODEL_URL}/versions/1/files"), R),
    ("download a file", _req("GET", f"{MODEL_URL}/versions/1/files/a.bin"), R),
    ("a file's headers", _req("HEAD", f"{MODEL_URL}/versions/1/files/a.bin"), R),
    (
        "a conditional download (304 where read is allowed)",
        _req("GET", f"{MODEL_URL}/versions/1/files/a.bin", headers={"If-None-Match": "*"}),
        _with(R, **{who: 304 for who, code in R.items() if code == 200}),
    ),
    ("download the archive", _req("GET", f"{MODEL_URL}/versions/1/archive"), R),
    ("the archive's headers", _req("HEAD", f"{MODEL_URL}/versions/1/archive"), R),
    ("scan report", _req("GET", f"{MODEL_URL}/versions/1/scan"), R),
    ("mlflow get", _req("GET", f"{MLFLOW}/registered-models/get", params={"name": FRAUD}), R),
    (
        "mlflow get version",
        _req("GET", f"{MLFLOW}/model-versions/get", params={"name": FRAUD, "version": "1"}),
        R,
    ),
    (
        "mlflow-artifacts download",
        _req("GET", f"/api/2.0/mlflow-artifacts/artifacts/cairn-models/{FRAUD}/1/a.bin"),
        R,
    ),
    (
        "create a version",
        _req("POST", f"{MODEL_URL}/versions", json={}),
        _with(W, **{A: 201, C: 201, ADM: 201}),
    ),
    (
        "mlflow create version",
        _req("POST", f"{MLFLOW}/model-versions/create", json={"name": FRAUD, "source": "s3://b/k"}),
        W,
    ),
    ("set a model tag", _req("PUT", f"{MODEL_URL}/tags/team", json={"value": "{who}"}), W),
    (
        "set a version tag",
        _req("PUT", f"{MODEL_URL}/versions/1/tags/t", json={"value": "{who}"}),
        W,
    ),
    ("describe the model", _req("PATCH", MODEL_URL, json={"description": "by {who}"}), W),
    ("set an alias", _req("PUT", f"{MODEL_URL}/aliases/staging", json={"version": 1}), W),
    (
        "roll an alias back (to where it points: a move that changes nothing)",
        _req(
            "POST",
            f"{MODEL_URL}/aliases/champion/rollback",
            params={"as_of": "2100-01-01T00:00:00Z"},
        ),
        W,
    ),
    (
        "mlflow set alias",
        _req(
            "POST",
            f"{MLFLOW}/registered-models/alias",
            json={"name": FRAUD, "alias": "b", "version": "1"},
        ),
        W,
    ),
    (
        "grant a role on the model",
        _req("PUT", f"{V1}/grants", json={"subject": "user:erin", "role": "READ", "model": FRAUD}),
        M,
    ),
    ("list the model's grants", _req("GET", f"{V1}/grants", params={"model": FRAUD}), M),
    ("list the model's audit", _req("GET", f"{V1}/audit", params={"model": FRAUD}), M),
    ("set the scan policy", _req("PUT", f"{MODEL_URL}/scan-policy", json={"action": "label"}), M),
    ("prune old versions (dry run)", _req("POST", f"{MODEL_URL}/prune", json={"keep": 1}), M),
    ("read the retention policy", _req("GET", f"{MODEL_URL}/retention"), R),
    ("set a retention policy", _req("PUT", f"{MODEL_URL}/retention", json={"keep": 50}), M),
    ("drop the retention policy", _req("DELETE", f"{MODEL_URL}/retention"), M),
    (
        "create a model under risk.*",
        _req("POST", f"{V1}/models", json={"name": "risk.new-{who}"}),
        {A: 201, B: 403, C: 403, D: 403, ADM: 201},
    ),
    (
        "create a model elsewhere",
        _req("POST", f"{V1}/models", json={"name": "other.new-{who}"}),
        {A: 403, B: 403, C: 403, D: 403, ADM: 201},
    ),
    (
        "get a model nobody was granted",
        _req("GET", f"{V1}/models/other.secret"),
        {**R, A: 404, B: 404, C: 404},
    ),
    (
        "get a model only the pattern covers",
        _req("GET", f"{V1}/models/risk.other"),
        {**R, B: 404, C: 404},
    ),
    ("list users", _req("GET", f"{V1}/users"), {A: 403, B: 403, C: 403, D: 403, ADM: 200}),
    ("whole audit log", _req("GET", f"{V1}/audit"), {A: 403, B: 403, C: 403, D: 403, ADM: 200}),
]


def test_role_matrix(world: World) -> None:
    wrong = []
    for label, build, expected in CASES:
        for who in EVERYONE:
            method, url, kwargs = build(who)
            if "json" in kwargs:
                kwargs = {**kwargs, "json": _format(kwargs["json"], who)}
            status = world.call(who, method, url, **kwargs).status_code
            if status != expected[who]:
                wrong.append(f"{label}: {who} got {status}, expected {expected[who]}")
    assert not wrong, "\n".join(wrong)


def _format(value: Any, who: str) -> Any:
    if isinstance(value, str):
        return value.replace("{who}", who)
    if isinstance(value, dict):
        return {k: _format(v, who) for k, v in value.items()}
    return value


def test_destructive_use_cases_need_manage(world: World) -> None:
    """Delete a version, rename and delete the model: refused to bob, carol and dave (dave
    without learning that it exists), done by alice through her pattern grant."""
    for _ in (2, 3):
        world.version("admin", FRAUD)
    for who, status in (("bob", 403), ("carol", 403), ("dave", 404)):
        assert world.call(who, "DELETE", f"{MODEL_URL}/versions/2").status_code == status
        assert world.call(who, "DELETE", MODEL_URL).status_code == status
        answer = world.call(who, "POST", f"{MODEL_URL}/rename", json={"new_name": "risk.x"})
        assert answer.status_code == 403  # creating the new name is refused first
    ghost = world.call("dave", "DELETE", f"{V1}/models/risk.ghost")
    assert ghost.status_code == 404
    mine = world.call("dave", "DELETE", MODEL_URL)
    assert (mine.status_code, mine.json()["error_code"]) == (404, ghost.json()["error_code"])
    ok(world.call("alice", "DELETE", f"{MODEL_URL}/versions/2"), 204)
    ok(world.call("admin", "DELETE", f"{MODEL_URL}/versions/3"), 204)
    ok(world.call("alice", "POST", f"{MODEL_URL}/rename", json={"new_name": "risk.renamed"}))
    # a model grant follows the model (by id), not the name
    ok(world.call("bob", "GET", f"{V1}/models/risk.renamed"))
    refused = world.call(
        "alice", "POST", f"{V1}/models/risk.renamed/rename", json={"new_name": "x"}
    )
    assert refused.status_code == 403  # alice may not create names outside risk.*
    ok(world.call("alice", "DELETE", f"{V1}/models/risk.renamed"), 204)
    assert world.call("bob", "GET", f"{V1}/models/risk.renamed").status_code == 404


def test_group_membership_is_what_gives_carol_write(world: World) -> None:
    ok(world.call("carol", "PUT", f"{MODEL_URL}/tags/k", json={"value": "v"}))
    ok(world.api.delete(f"{V1}/groups/risk-team/members/carol"), 204)
    answer = world.call("carol", "PUT", f"{MODEL_URL}/tags/k", json={"value": "v"})
    assert answer.status_code == 404  # no grant left at all: the model is not there for her
    ok(world.api.put(f"{V1}/groups/risk-team/members/carol"), 204)
    ok(world.call("carol", "GET", MODEL_URL))
    ok(world.api.delete(f"{V1}/groups/risk-team"), 204)  # its grants go with it
    assert world.call("carol", "GET", MODEL_URL).status_code == 404


# -- lists and searches ----------------------------------------------------------------------

LISTINGS = [
    (f"{V1}/models", "models", {}),
    (f"{V1}/models", "models", {"filter": "name LIKE '%'"}),
    (f"{V1}/models", "models", {"include_deleted": "true"}),
    (f"{V1}/search/versions", "versions", {}),
    (f"{V1}/search/versions", "versions", {"filter": "name LIKE '%' AND version >= 1"}),
    (f"{MLFLOW}/registered-models/search", "registered_models", {}),
    (f"{MLFLOW}/registered-models/search", "registered_models", {"filter": "name LIKE '%'"}),
    (f"{MLFLOW}/model-versions/search", "model_versions", {}),
    (f"{MLFLOW}/model-versions/search", "model_versions", {"filter": "name LIKE '%'"}),
    ("/ajax-api/2.0/mlflow/registered-models/search", "registered_models", {}),
    ("/ajax-api/2.0/mlflow/model-versions/search", "model_versions", {}),
]


def test_lists_and_searches_return_only_readable_models(world: World) -> None:
    ok(world.call("admin", "DELETE", f"{V1}/models/other.secret"), 204)  # a deleted one too
    ok(world.api.post(f"{V1}/models", json={"name": "other.secret"}), 201)
    world.version("admin", "other.secret")
    visible = {
        "alice": {FRAUD, "risk.other"},
        "bob": {FRAUD},
        "carol": {FRAUD},
        "dave": set(),
        "admin": {FRAUD, "risk.other", "other.secret"},
    }
    wrong = []
    for url, key, params in LISTINGS:
        for who, expected in visible.items():
            seen = world.names(who, url, key, **params)
            if seen != expected:
                wrong.append(f"{url} {params} as {who}: {sorted(seen)} != {sorted(expected)}")
    assert not wrong, "\n".join(wrong)
    # latest versions and aliases of a readable model are only of that model
    body = ok(world.call("bob", "GET", f"{MLFLOW}/registered-models/get", params={"name": FRAUD}))
    assert body["registered_model"]["name"] == FRAUD
    # promotion requests on unreadable models are not listed
    ok(
        world.api.put(
            f"{V1}/policies",
            json={"model_pattern": "*", "alias_pattern": "production", "approvals": 1},
        )
    )
    for name in (FRAUD, "other.secret"):
        ok(
            world.api.post(
                f"{V1}/promotions", json={"model": name, "version": 1, "alias": "production"}
            ),
            201,
        )
    for who, expected in (("bob", {FRAUD}), ("dave", set()), ("admin", {FRAUD, "other.secret"})):
        requests = ok(world.call(who, "GET", f"{V1}/promotions"))["promotions"]
        assert {r["name"] for r in requests} == expected, who


# -- objects addressed by id -----------------------------------------------------------------


def test_upload_ids_belong_to_those_who_may_write_the_model(world: World) -> None:
    data = b"a large file, uploaded in parts"
    files = [{"path": "big.bin", "size": len(data), "digest": sha(data)}]
    made = ok(world.call("alice", "POST", f"{MODEL_URL}/versions", json={"files": files}), 201)
    begin = f"{MODEL_URL}/versions/{made['version']}/uploads"
    upload_id = ok(world.call("alice", "POST", begin, json={"digest": sha(data)}), 201)["upload_id"]
    url = f"{V1}/uploads/{upload_id}"
    attempts = [
        ("GET", url, {}),
        ("PATCH", url, {"content": data[:5], "headers": {"Upload-Offset": "0"}}),
        ("POST", f"{url}/complete", {}),
        ("DELETE", url, {}),
    ]
    ghost = f"{V1}/uploads/{'0' * len(upload_id)}"
    for method, target, kwargs in attempts:
        # bob may read the model, so he is told he may not write it; dave learns nothing
        assert world.call("bob", method, target, **kwargs).status_code == 403
        theirs = world.call("dave", method, target, **kwargs)
        missing = world.call("dave", method, target.replace(url, ghost), **kwargs)
        assert theirs.status_code == missing.status_code == 404, (method, target)
        assert theirs.json()["error_code"] == missing.json()["error_code"]
    assert ok(world.call("alice", "GET", url))["offset"] == 0  # nothing was appended
    ok(world.call("alice", "PATCH", url, content=data, headers={"Upload-Offset": "0"}))
    receipt = ok(world.call("carol", "POST", f"{url}/complete"))  # carol may write it
    assert receipt["version_status"] == "READY"


def test_token_ids_belong_to_their_owner(world: World) -> None:
    alice_tokens = ok(world.call("alice", "GET", f"{V1}/tokens"))["tokens"]
    (alice_token,) = alice_tokens
    assert alice_token["user"] == "alice"
    bob_tokens = ok(world.call("bob", "GET", f"{V1}/tokens"))["tokens"]
    assert [t["user"] for t in bob_tokens] == ["bob"]
    assert world.call("bob", "GET", f"{V1}/tokens", params={"all": "true"}).status_code == 403
    for target in (alice_token["id"], 987654):
        answer = world.call("bob", "DELETE", f"{V1}/tokens/{target}")
        assert answer.status_code == 404, answer.text
    ok(world.call("alice", "GET", f"{V1}/whoami"))  # still works
    everyone = ok(world.call("admin", "GET", f"{V1}/tokens", params={"all": "true"}))["tokens"]
    assert {t["user"] for t in everyone} >= {"alice", "bob", "admin"}
    ok(world.call("admin", "DELETE", f"{V1}/tokens/{alice_token['id']}"), 204)
    assert world.call("alice", "GET", f"{V1}/whoami").status_code == 401


def test_promotion_request_ids_are_only_for_readers_of_the_model(world: World) -> None:
    ok(
        world.api.put(
            f"{V1}/policies",
            json={"model_pattern": FRAUD, "alias_pattern": "production", "approvals": 1},
        )
    )
    body = {"model": FRAUD, "version": 1, "alias": "production"}
    request_id = ok(world.call("alice", "POST", f"{V1}/promotions", json=body), 201)["id"]
    for suffix, method in (("", "GET"), ("/approve", "POST"), ("/cancel", "POST")):
        theirs = world.call("dave", method, f"{V1}/promotions/{request_id}{suffix}", json=None)
        ghost = world.call("dave", method, f"{V1}/promotions/987654{suffix}", json=None)
        assert theirs.status_code == ghost.status_code == 404, theirs.text
    ok(world.call("bob", "GET", f"{V1}/promotions/{request_id}"))
    assert world.call("dave", "POST", f"{V1}/promotions", json=body).status_code == 404


# -- re-created names, creators ----------------------------------------------------------------


def test_a_recreated_name_inherits_nothing(world: World) -> None:
    api = world.api
    ok(api.post(f"{V1}/models", json={"name": "m"}), 201)
    world.version("admin", "m")
    ok(api.put(f"{V1}/models/m/aliases/champion", json={"version": 1}))
    world.grant("user:bob", "READ", model="m")
    world.grant("group:risk-team", "MANAGE", model="m")
    ok(api.put(f"{V1}/models/m/scan-policy", json={"action": "reject"}))
    ok(world.call("bob", "GET", f"{V1}/models/m"))
    ok(api.delete(f"{V1}/models/m"), 204)
    assert world.call("bob", "GET", f"{V1}/models/m").status_code == 404
    ok(api.post(f"{V1}/models", json={"name": "m"}), 201)
    for who in ("bob", "carol"):
        assert world.call(who, "GET", f"{V1}/models/m").status_code == 404, who
        assert "m" not in world.names(who, f"{V1}/models", "models"), who
    fresh = ok(api.get(f"{V1}/models/m"))
    assert fresh["aliases"] == {} and fresh["latest_version"] is None
    grants = ok(api.get(f"{V1}/grants", params={"model": "m"}))["grants"]
    assert [g["subject"] for g in grants] == ["user:admin"]  # its creator's, nobody else's
    assert ok(api.get(f"{V1}/models/m/scan-policy"))["action"] is None
    assert api.get(f"{V1}/models/m/aliases/champion").status_code == 404
    # the old model cannot come back over the new one
    assert api.post(f"{V1}/models/m/restore").status_code in (400, 409)


def test_creators_get_manage(world: World) -> None:
    ok(world.call("alice", "POST", f"{V1}/models", json={"name": "risk.mine"}), 201)
    held = ok(world.call("alice", "GET", f"{V1}/whoami"))["grants"]
    assert {"role": "MANAGE", "pattern": None} in [
        {"role": g["role"], "pattern": g["pattern"]} for g in held
    ]
    ok(world.api.delete(f"{V1}/grants", params={"subject": "user:alice", "pattern": "risk.*"}), 204)
    # the pattern is gone; what she created is still hers, nothing else is
    ok(world.call("alice", "GET", f"{V1}/models/risk.mine"))
    ok(
        world.call(
            "alice",
            "PUT",
            f"{V1}/grants",
            json={"subject": "user:bob", "role": "READ", "model": "risk.mine"},
        )
    )
    assert world.call("alice", "GET", f"{V1}/models/risk.other").status_code == 404
    assert (
        world.call("alice", "POST", f"{V1}/models", json={"name": "risk.more"}).status_code == 403
    )
    ok(world.call("alice", "DELETE", f"{V1}/models/risk.mine"), 204)


def test_creator_role_none_gives_the_creator_nothing(
    settings: Settings, admin_headers: dict[str, str]
) -> None:
    app = create_app(settings.model_copy(update={"creator_role": "NONE"}))
    try:
        with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as api:
            w = World(api, {"admin": admin_headers})
            w.user("alice")
            w.grant("user:alice", "WRITE", pattern="lab.*")
            ok(w.call("alice", "POST", f"{V1}/models", json={"name": "lab.x"}), 201)
            assert ok(w.call("alice", "GET", f"{V1}/whoami"))["grants"] == [
                {"role": "WRITE", "model_id": None, "model": None, "pattern": "lab.*"}
            ]
            ok(w.call("alice", "GET", f"{V1}/models/lab.x"))  # the pattern lets her read
            assert w.call("alice", "DELETE", f"{V1}/models/lab.x").status_code == 403
            ok(
                api.delete(f"{V1}/grants", params={"subject": "user:alice", "pattern": "lab.*"}),
                204,
            )
            assert w.call("alice", "GET", f"{V1}/models/lab.x").status_code == 404
    finally:
        app.state.service.db.dispose()


# -- token scopes ------------------------------------------------------------------------------


def test_token_scopes_cap_roles(world: World) -> None:
    world.headers["alice-read"] = world.token("alice", "read")
    world.headers["admin-write"] = world.token("admin", "write")
    reader = world.as_("alice-read")
    ok(reader("GET", MODEL_URL))
    ok(reader("GET", f"{MODEL_URL}/versions/1/files/a.bin"))
    assert reader("POST", f"{MODEL_URL}/versions", json={}).status_code == 403
    assert reader("PUT", f"{MODEL_URL}/aliases/x", json={"version": 1}).status_code == 403
    assert reader("DELETE", MODEL_URL).status_code == 403
    assert reader("POST", f"{V1}/models", json={"name": "risk.by-reader"}).status_code == 403
    assert reader("POST", f"{V1}/tokens", json={"scope": "write"}).status_code == 403
    assert reader("POST", f"{V1}/tokens", json={"scope": "admin"}).status_code == 403
    ok(reader("POST", f"{V1}/tokens", json={"scope": "read"}), 201)
    # a password would let its holder log in with more than the token has
    password = {"password": "a long enough password"}
    assert reader("PATCH", f"{V1}/users/alice", json=password).status_code == 403
    # the admin's write token is not the instance ADMIN
    writer = world.as_("admin-write")
    for method, url, body in (
        ("GET", f"{V1}/users", None),
        ("POST", f"{V1}/users", {"name": "mallory"}),
        ("GET", f"{V1}/audit", None),
        ("PUT", f"{V1}/grants", {"subject": "user:dave", "role": "READ", "pattern": "*"}),
        ("POST", f"{V1}/tokens", {"scope": "admin"}),
        ("POST", f"{V1}/import/models", {"name": "imported"}),
        ("PATCH", f"{V1}/users/dave", {"admin": True}),
        ("PATCH", f"{V1}/users/admin", password),
    ):
        answer = writer(method, url, json=body)
        assert answer.status_code == 403, (method, url, answer.text)
    # what the admin user holds as grants (creator of these two) is all it sees
    assert writer("GET", MODEL_URL).status_code == 404
    visible = world.names("admin-write", f"{V1}/models", "models")
    assert visible == {"risk.other", "other.secret"}
    assert world.call("alice", "POST", f"{V1}/tokens", json={"scope": "admin"}).status_code == 403
    ok(world.call("alice", "PATCH", f"{V1}/users/alice", json=password))  # a write token may


# -- mass assignment ---------------------------------------------------------------------------


def test_unknown_fields_are_refused(world: World) -> None:
    for who, method, url, body in (
        ("admin", "POST", f"{V1}/users", {"name": "eve", "is_admin": True}),
        ("admin", "POST", f"{V1}/users", {"name": "eve", "role": "ADMIN"}),
        ("alice", "PATCH", f"{V1}/users/alice", {"is_admin": True}),
        ("alice", "POST", f"{V1}/tokens", {"scope": "read", "user_id": 1}),
        ("alice", "POST", f"{V1}/tokens", {"scope": "read", "is_admin": True}),
        (
            "alice",
            "PUT",
            f"{V1}/grants",
            {"subject": "user:bob", "role": "READ", "model": FRAUD, "created_by": "admin"},
        ),
        ("alice", "POST", f"{V1}/models", {"name": "risk.y", "created_by": "admin"}),
        ("alice", "POST", f"{V1}/models", {"name": "risk.y", "owner": "bob"}),
        ("alice", "PATCH", MODEL_URL, {"created_by": "admin"}),
        ("alice", "POST", f"{MODEL_URL}/versions", {"created_by": "admin"}),
        ("alice", "POST", f"{MODEL_URL}/versions", {"status": "READY"}),
        ("alice", "POST", f"{MODEL_URL}/versions", {"version": 7}),
        ("alice", "PATCH", f"{MODEL_URL}/versions/1", {"status": "READY"}),
    ):
        answer = world.call(who, method, url, json=body)
        assert answer.status_code == 400, (method, url, body, answer.text)
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "unknown field" in answer.json()["message"]
    assert world.api.get(f"{V1}/models/risk.y").status_code == 404
    # the MLflow API ignores what its messages do not have: the creator is still the caller
    body = {"name": "risk.z", "created_by": "admin", "user_id": "admin"}
    ok(world.call("alice", "POST", f"{MLFLOW}/registered-models/create", json=body))
    assert ok(world.api.get(f"{V1}/models/risk.z"))["created_by"] == "alice"
    body = {"name": "risk.z", "source": "s3://b/k", "user_id": "admin", "status": "READY"}
    ok(world.call("alice", "POST", f"{MLFLOW}/model-versions/create", json=body))
    assert ok(world.api.get(f"{V1}/models/risk.z/versions/1"))["created_by"] == "alice"


def test_no_one_makes_themself_admin(world: World) -> None:
    for body in ({"admin": True}, {"disabled": False}, {"admin": True, "password": "x" * 16}):
        answer = world.call("alice", "PATCH", f"{V1}/users/alice", json=body)
        assert answer.status_code == 403, (body, answer.text)
    assert (
        world.call("alice", "PATCH", f"{V1}/users/bob", json={"disabled": True}).status_code == 403
    )
    ok(world.call("bob", "GET", f"{V1}/whoami"))
    assert (
        world.call("alice", "POST", f"{V1}/users", json={"name": "x", "admin": True}).status_code
        == 403
    )
    assert world.call("alice", "POST", f"{V1}/groups", json={"name": "admins"}).status_code == 403
    me = ok(world.call("alice", "GET", f"{V1}/whoami"))
    assert me["is_admin"] is False
    users = {u["name"]: u for u in ok(world.api.get(f"{V1}/users"))["users"]}
    assert users["alice"]["is_admin"] is False and users["alice"]["disabled"] is False


def test_a_user_acts_on_their_own_account_whatever_the_case_of_its_name(world: World) -> None:
    """User names are one identity in any case (the store looks them up by their key): alice
    naming herself ALICE sets her own password and makes her own tokens, as herself, and
    still cannot act on another account nor make herself admin that way."""
    ok(world.call("alice", "PATCH", f"{V1}/users/ALICE", json={"password": "x" * 16}))
    made = ok(world.call("alice", "POST", f"{V1}/tokens", json={"user": "Alice"}), 201)
    assert made["user"] == "alice" and made["scope"] == "read"
    for body in ({"admin": True}, {"disabled": False}):
        assert world.call("alice", "PATCH", f"{V1}/users/ALICE", json=body).status_code == 403
    assert world.call("alice", "POST", f"{V1}/tokens", json={"user": "BOB"}).status_code == 403
    assert (
        world.call("alice", "PATCH", f"{V1}/users/Bob", json={"password": "y" * 16}).status_code
        == 403
    )


def test_the_last_administrator_stays_one(world: World) -> None:
    """Unmaking or disabling the only enabled administrator would leave the instance with
    nobody who may manage users over the API: refused (409), until there is another."""
    for body in ({"admin": False}, {"disabled": True}, {"admin": False, "disabled": True}):
        answer = world.api.patch(f"{V1}/users/admin", json=body)
        assert answer.status_code == 409, (body, answer.text)
        assert answer.json()["error_code"] == "RESOURCE_CONFLICT"
        assert "last" in answer.json()["message"]
    me = ok(world.api.get(f"{V1}/whoami"))
    assert me["is_admin"] is True
    # a disabled administrator does not count; an enabled one does
    ok(world.api.patch(f"{V1}/users/dave", json={"admin": True, "disabled": True}))
    assert world.api.patch(f"{V1}/users/admin", json={"admin": False}).status_code == 409
    ok(world.api.patch(f"{V1}/users/dave", json={"disabled": False}))
    dave = ok(world.api.post(f"{V1}/tokens", json={"user": "dave", "scope": "admin"}), 201)
    ok(world.api.patch(f"{V1}/users/admin", json={"disabled": True}))
    as_dave = {"Authorization": f"Bearer {dave['token']}"}
    users = {u["name"]: u for u in ok(world.api.get(f"{V1}/users", headers=as_dave))["users"]}
    assert users["admin"]["disabled"] is True and users["dave"]["is_admin"] is True


def test_import_routes_are_admin_only(world: World) -> None:
    imports = (
        ("POST", f"{V1}/import/models", {"name": "risk.imported", "created_by": "admin"}),
        ("PUT", f"{V1}/import/models/{FRAUD}/versions/9", {"created_by": "admin"}),
        ("POST", f"{V1}/import/models/{FRAUD}/reserve", {"up_to": 100}),
    )
    for method, url, body in imports:
        for who in ("alice", "carol"):
            answer = world.call(who, method, url, json=body)
            assert answer.status_code == 403, (who, method, url, answer.text)
    assert world.api.get(f"{V1}/models/risk.imported").status_code == 404
    assert ok(world.api.get(MODEL_URL))["latest_version"] == 1
    made = ok(world.api.post(imports[0][1], json=imports[0][2]), 201)
    assert made["created_by"] == "admin"


# -- dedup -------------------------------------------------------------------------------------


def test_dedup_does_not_tell_who_else_holds_the_bytes(world: World) -> None:
    """dave may write ``lab.*`` and cannot read risk.fraud, whose v1 stores DATA."""
    dave = world.as_("dave")
    # a manifest naming stored bytes with a wrong size, on a model dave may not write:
    # "not found", the same as for no model at all, and not a word about the bytes
    claim = {"files": [{"path": "w.bin", "size": 3, "digest": sha(DATA)}]}
    for name in (FRAUD, "risk.ghost"):
        answer = dave("POST", f"{V1}/models/{name}/versions", json=claim)
        assert answer.status_code == 404, answer.text
        assert "bytes" not in answer.json()["message"]
    world.grant("user:dave", "WRITE", pattern="lab.*")
    ok(dave("POST", f"{V1}/models", json={"name": "lab.copy"}), 201)
    entry = {"path": "w.bin", "size": len(DATA), "digest": sha(DATA)}
    made = ok(dave("POST", f"{V1}/models/lab.copy/versions", json={"files": [entry]}), 201)
    assert made["status"] == "PENDING" and made["missing"] == [sha(DATA)]
    assert ok(dave("GET", f"{V1}/models/lab.copy/versions/1/missing")) == [sha(DATA)]
    finalize = dave("POST", f"{V1}/models/lab.copy/versions/1/finalize")
    assert finalize.status_code >= 400 and sha(DATA) in finalize.text, finalize.text
    # a second version with the same digest still owes it (the first never became READY)
    again = ok(dave("POST", f"{V1}/models/lab.copy/versions", json={"files": [entry]}), 201)
    assert again["missing"] == [sha(DATA)]
    # a wrong size is not an oracle either
    wrong_size = {**entry, "size": 3}
    answer = dave("POST", f"{V1}/models/lab.copy/versions", json={"files": [wrong_size]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["missing"] == [sha(DATA)]
    # wrong bytes are refused; then the right ones are taken, and only then is it READY
    url = f"{V1}/models/lab.copy/versions/1/blobs/{sha(DATA)}"
    assert dave("PUT", url, **octets(b"x" * len(DATA))).status_code == 400
    assert ok(dave("GET", f"{V1}/models/lab.copy/versions/1"))["status"] == "PENDING"
    receipt = ok(dave("PUT", url, **octets(DATA)))
    assert receipt["stored"] is True and receipt["version_status"] == "READY"
    assert dave("GET", f"{V1}/models/lab.copy/versions/1/files/w.bin").content == DATA
    assert ok(dave("GET", f"{V1}/models/lab.copy/versions/2"))["status"] == "PENDING"
    # once dave may read a version that holds the bytes, they count as present
    ok(world.call("dave", "POST", f"{V1}/models", json={"name": "lab.more"}), 201)
    world.grant("user:dave", "READ", model=FRAUD)
    fresh = ok(dave("POST", f"{V1}/models/lab.more/versions", json={"files": [entry]}), 201)
    assert fresh["missing"] == [] and fresh["status"] == "READY"


def test_bytes_are_checked_even_when_already_stored(world: World) -> None:
    """Uploading to a version of one's own is verified against the digest, stored or not."""
    entry = {"path": "w.bin", "size": len(DATA), "digest": sha(DATA)}
    made = ok(world.call("alice", "POST", f"{MODEL_URL}/versions", json={"files": [entry]}), 201)
    assert made["missing"] == [] and made["status"] == "READY"  # alice reads v1: present
    world.grant("user:dave", "WRITE", pattern="lab.*")
    ok(world.call("dave", "POST", f"{V1}/models", json={"name": "lab.copy"}), 201)
    ok(world.call("dave", "POST", f"{V1}/models/lab.copy/versions", json={"files": [entry]}), 201)
    url = f"{V1}/models/lab.copy/versions/1/uploads"
    ticket = ok(world.call("dave", "POST", url, json={"digest": sha(DATA)}), 201)
    assert ticket["offset"] == 0
    upload = f"{V1}/uploads/{ticket['upload_id']}"
    ok(
        world.call(
            "dave", "PATCH", upload, content=b"y" * len(DATA), headers={"Upload-Offset": "0"}
        )
    )
    assert world.call("dave", "POST", f"{upload}/complete").status_code == 400
    assert ok(world.call("dave", "GET", f"{V1}/models/lab.copy/versions/1"))["status"] == "PENDING"


def test_an_idempotent_replay_is_authorized_like_the_request(world: World) -> None:
    """Repeating a create with its Idempotency-Key gives back what it made only to a caller
    who may still make it: a caller whose grant was revoked meanwhile learns nothing of
    what the model holds now (its description, tags, aliases, newest version)."""
    world.grant("user:dave", "WRITE", pattern="lab.*")
    key, vkey = {"Idempotency-Key": "replay-1"}, {"Idempotency-Key": "replay-2"}
    body = {"name": "lab.model"}
    ok(world.call("dave", "POST", f"{V1}/models", json=body, headers=key), 201)
    made = ok(
        world.call("dave", "POST", f"{V1}/models/lab.model/versions", json={}, headers=vkey), 201
    )
    assert made["version"] == 1
    # what someone else does to the model afterwards
    api = world.api
    ok(api.patch(f"{V1}/models/lab.model", json={"description": "private notes"}))
    ok(api.put(f"{V1}/models/lab.model/aliases/champion", json={"version": 1}))
    # dave loses every grant: the model is "not found" to him, replayed or not
    ok(api.delete(f"{V1}/grants", params={"subject": "user:dave", "pattern": "lab.*"}), 204)
    ok(api.delete(f"{V1}/grants", params={"subject": "user:dave", "model": "lab.model"}), 204)
    assert world.call("dave", "GET", f"{V1}/models/lab.model").status_code == 404
    again = world.call("dave", "POST", f"{V1}/models", json=body, headers=key)
    assert again.status_code == 403, again.text  # creating needs WRITE on the name first
    assert "private notes" not in again.text
    again = world.call("dave", "POST", f"{V1}/models/lab.model/versions", json={}, headers=vkey)
    assert again.status_code == 404, again.text
    assert "champion" not in again.text
