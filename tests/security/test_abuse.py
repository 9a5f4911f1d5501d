"""Input abuse at the HTTP edge, on SQLite and PostgreSQL: pagination and filters, bodies
too large or lying about their size, content types, CORS, the Host allow-list, and the
security headers on every kind of response. Nothing here may ever answer 5xx.

The JSON body limit is lowered to 64 KiB for this module (the ``settings`` override), so
bodies past it stay cheap to send.
"""

from __future__ import annotations

import base64
import json
import select
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cairn.app import create_app
from cairn.settings import Settings

LIMIT = 64 << 10
MLFLOW = "/api/2.0/mlflow"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_request_bytes": LIMIT})


@pytest.fixture
def auth(request: pytest.FixtureRequest) -> dict[str, str]:
    """Credentials for raw HTTP requests (the admin's, once authentication is on)."""
    try:
        return dict(request.getfixturevalue("admin_headers"))
    except pytest.FixtureLookupError:
        return {}


def error(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["message"], body
    return response.status_code, body["error_code"]


def names(api: TestClient) -> list[str]:
    response = api.get("/api/v1/models", params={"max_results": 1000})
    assert response.status_code == 200, response.text
    return sorted(m["name"] for m in response.json()["models"])


@pytest.fixture
def populated(api: TestClient) -> list[str]:
    """Three models with two versions each: enough for every listing to have pages."""
    for name in ("alpha", "beta", "gamma"):
        assert api.post("/api/v1/models", json={"name": name}).status_code == 201
        for _ in range(2):
            assert api.post(f"/api/v1/models/{name}/versions", json={}).status_code == 201
    return names(api)


@pytest.fixture
def app_with(settings: Settings) -> Iterator[Any]:
    """Build another app on the same database with some settings changed."""
    built: list[FastAPI] = []

    def build(**changes: Any) -> TestClient:
        app = create_app(settings.model_copy(update=changes))
        built.append(app)
        return TestClient(app, raise_server_exceptions=False, headers=_auth_of(settings))

    yield build
    for app in built:
        app.state.service.db.dispose()


def _auth_of(settings: Settings) -> dict[str, str]:
    token = getattr(settings, "bootstrap_token", None)
    if token is None:
        return {}
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


# -- pagination ---------------------------------------------------------------------------

LISTINGS = [
    "/api/v1/models",
    "/api/v1/models/alpha/versions",
    "/api/v1/search/versions",
    f"{MLFLOW}/registered-models/search",
    f"{MLFLOW}/model-versions/search",
]


def _token(api: TestClient, url: str, **params: Any) -> str:
    response = api.get(url, params={"max_results": 1, **params})
    assert response.status_code == 200, response.text
    token: str = response.json()["next_page_token"]
    assert token
    return token


@pytest.mark.parametrize(
    "value",
    ["0", "-1", "-9223372036854775809", "abc", "1.5", "1e3", "0x10", " ", "NaN"],
)
def test_a_bad_max_results_is_a_400(api: TestClient, populated: list[str], value: str) -> None:
    for url in LISTINGS:
        response = api.get(url, params={"max_results": value})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, value, response.text)


@pytest.mark.parametrize("value", ["1001", "2147483648", "9223372036854775808", "9" * 400])
def test_a_huge_max_results_is_refused_or_capped(
    api: TestClient, populated: list[str], value: str
) -> None:
    """The native API refuses past 1000; the MLflow API serves at most 1000 (its client
    asks for 10 000 by default)."""
    for url in LISTINGS:
        response = api.get(url, params={"max_results": value})
        if url.startswith(MLFLOW):
            assert response.status_code == 200, (url, response.text)
        else:
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, value)


def _forged_tokens(real: str) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(real + "=" * (-len(real) % 4))
    data = json.loads(raw)

    def encode(payload: object) -> str:
        text = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    keys = data["k"]
    return {
        "garbage": "not-a-token",
        "truncated": real[: len(real) // 2],
        "flipped": real[:-2] + ("A" if real[-2] != "A" else "B") + real[-1],
        "padding": real + "====",
        "not-base64": "%%%%",
        "json-list": encode([1, 2, 3]),
        "no-fingerprint": encode({"k": keys}),
        "wrong-fingerprint": encode({"q": "0" * 32, "k": keys}),
        "wrong-types": encode({"q": data["q"], "k": [str(k) for k in keys]}),
        "too-few-keys": encode({"q": data["q"], "k": keys[:-1]}),
        "huge-int": encode({"q": data["q"], "k": [*keys[:-1], 2**80]}),
        "float": encode({"q": data["q"], "k": [*keys[:-1], 1.5]}),
        "not-json": encode(b"\xff\xfe{"),
        "very-long": "A" * 50_000,
    }


@pytest.mark.parametrize("url", LISTINGS)
def test_a_forged_or_tampered_page_token_is_a_400(
    api: TestClient, populated: list[str], url: str
) -> None:
    real = _token(api, url)
    assert api.get(url, params={"max_results": 1, "page_token": real}).status_code == 200
    forged = _forged_tokens(real) if not url.startswith(MLFLOW) else {}
    forged.update(
        {
            "garbage": "not-a-token",
            "truncated": real[: len(real) // 2],
            "very-long": "A" * 50_000,
            "sql": "' OR 1=1 --",
        }
    )
    for kind, token in forged.items():
        response = api.get(url, params={"max_results": 1, "page_token": token})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (kind, response.text)


def test_a_page_token_from_another_query_is_a_400(api: TestClient, populated: list[str]) -> None:
    models = _token(api, "/api/v1/models")
    ordered = _token(api, "/api/v1/models", order_by="name DESC")
    filtered = _token(api, "/api/v1/models", filter="name LIKE '%a%'")
    versions = _token(api, "/api/v1/models/alpha/versions")
    searched = _token(api, "/api/v1/search/versions")
    cases = [
        ("/api/v1/models", {"order_by": "name DESC"}, models),
        ("/api/v1/models", {}, ordered),
        ("/api/v1/models", {}, filtered),
        ("/api/v1/models", {"filter": "name LIKE '%e%'"}, filtered),
        ("/api/v1/models", {}, versions),
        ("/api/v1/models/beta/versions", {}, versions),
        ("/api/v1/models/alpha/versions", {}, searched),
        ("/api/v1/search/versions", {}, versions),
        ("/api/v1/search/versions", {"filter": "version = 1"}, searched),
    ]
    for url, params, token in cases:
        response = api.get(url, params={**params, "max_results": 1, "page_token": token})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, params)
        assert "does not belong to this query" in response.json()["message"]


def test_a_forged_token_cannot_inject_sql_through_its_keys(
    api: TestClient, populated: list[str]
) -> None:
    """A token with this query's fingerprint and hostile key values is still data."""
    real = _token(api, "/api/v1/models")
    data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    for value in ("' OR 1=1 --", "zzz') UNION SELECT token_hash FROM tokens --", "\\"):
        forged = {"q": data["q"], "k": [value, *data["k"][1:]]}
        token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        response = api.get("/api/v1/models", params={"page_token": token})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            listed = [m["name"] for m in response.json()["models"]]
            assert set(listed) <= set(populated)
            assert listed == sorted(n for n in populated if n > value)
    assert names(api) == populated


def test_walking_every_page_visits_each_item_once(api: TestClient, populated: list[str]) -> None:
    for url, key in (
        ("/api/v1/models", "models"),
        ("/api/v1/search/versions", "versions"),
        (f"{MLFLOW}/registered-models/search", "registered_models"),
        (f"{MLFLOW}/model-versions/search", "model_versions"),
    ):
        seen: list[Any] = []
        token = None
        for _ in range(20):
            params: dict[str, Any] = {"max_results": 1}
            if token:
                params["page_token"] = token
            body = api.get(url, params=params).json()
            seen += [(i["name"], i.get("version")) for i in body.get(key, [])]
            token = body.get("next_page_token")
            if not token:
                break
        assert len(seen) == len(set(seen)) == (3 if "models" in key else 6), (url, seen)


# -- filters ------------------------------------------------------------------------------

SEARCHES = [
    "/api/v1/models",
    "/api/v1/search/versions",
    f"{MLFLOW}/registered-models/search",
    f"{MLFLOW}/model-versions/search",
]
INJECTIONS = [
    "name = 'x' OR 1=1 --",
    "name = 'x' OR 1=1",
    "name = 'x'; DROP TABLE registered_models; --",
    "name = 'x' UNION SELECT token_hash FROM tokens",
    "name = 'x' /* comment */",
    "name = x",
    "1 = 1",
    "name = 'x' AND (SELECT 1) = 1",
    "tags.`k` = 'v' OR tags.`k` != 'v' --",
    "name = 'x\\' OR 1=1 --'",
    "name LIKE 'x' ESCAPE '!'",
    "version = 99999999999999999999999",
    "version = -99999999999999999999999",
    "metrics.auc >= 1e99999",
    "metrics.auc >= NaN",
    "creation_timestamp > 99999999999999999999999",
    "name = '",
    "name = ''''",
    "()",
    ")",
    "name IN ()",
    "name IN ('a',)",
    "tags. = 'x'",
    "tags.`",
    "`name` = 'x' AND",
]


def test_filter_injection_is_a_400_or_a_literal(api: TestClient, populated: list[str]) -> None:
    """Every hostile filter is refused or matched literally: it never widens the result,
    never touches the schema, and never answers 5xx."""
    for url in SEARCHES:
        for text in INJECTIONS:
            response = api.get(url, params={"filter": text})
            assert response.status_code in (200, 400), (url, text, response.text)
            if response.status_code == 400:
                assert error(response)[1] == "INVALID_PARAMETER_VALUE"
            else:
                body = response.json()
                items = body.get("models") or body.get("versions") or []
                items += body.get("registered_models", []) + body.get("model_versions", [])
                assert items == [], (url, text, items)
    assert names(api) == populated


def test_a_quote_in_a_filter_value_is_data(api: TestClient, populated: list[str]) -> None:
    assert api.post("/api/v1/models", json={"name": "o-brien"}).status_code == 201
    api.put("/api/v1/models/o-brien/tags/owner", json={"value": "O'Brien ' OR 1=1 --"})
    response = api.get("/api/v1/models", params={"filter": "tags.owner = 'O''Brien '' OR 1=1 --'"})
    assert response.status_code == 200, response.text
    assert [m["name"] for m in response.json()["models"]] == ["o-brien"]


@pytest.mark.parametrize(
    "kind",
    ["very-long", "deep-nesting", "deep-nesting-short", "huge-in", "in-over-limit", "many-ands"],
)
def test_oversized_filters_are_a_400(api: TestClient, populated: list[str], kind: str) -> None:
    text = {
        "very-long": "name = '" + "x" * 50_000 + "'",
        "deep-nesting": "(" * 8_000 + "name = 'x'" + ")" * 8_000,
        "deep-nesting-short": "(" * 500 + "name = 'x'" + ")" * 500,
        "huge-in": "name IN (" + ",".join(f"'{i}'" for i in range(4_000)) + ")",
        "in-over-limit": "name IN (" + ",".join("'a'" for _ in range(1001)) + ")",
        "many-ands": " AND ".join(f"name != 'm{i}'" for i in range(200)),
    }[kind]
    for url in SEARCHES:
        response = api.get(url, params={"filter": text})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, kind, response.text)


@pytest.mark.parametrize(
    "order_by",
    [
        "name; DROP TABLE registered_models",
        "name DESC NULLS FIRST",
        "(SELECT 1)",
        "name ASC DESC",
        "1",
        "x" * 10_000,
    ],
)
def test_a_hostile_order_by_is_a_400(api: TestClient, populated: list[str], order_by: str) -> None:
    for url in SEARCHES:
        response = api.get(url, params={"order_by": order_by})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, order_by)
    many = api.get("/api/v1/models", params={"order_by": ["name"] * 1000})
    assert error(many) == (400, "INVALID_PARAMETER_VALUE")
    assert names(api) == populated


def test_a_nul_anywhere_in_the_url_is_a_400(api: TestClient, populated: list[str]) -> None:
    """PostgreSQL cannot hold NUL; every route answers 400 before a query meets one."""
    for url, params in [
        ("/api/v1/models/alpha%00", {}),
        ("/api/v1/models/alpha/aliases/a%00", {}),
        ("/api/v1/models/alpha/versions/1/files/a%00", {}),
        ("/api/v1/uploads/u%00", {}),
        ("/api/v1/models", {"filter": "name = 'a\x00'"}),
        ("/api/v1/models", {"page_token": "a\x00"}),
        ("/api/v1/resolve", {"uri": "models:/alpha@a\x00"}),
        (f"{MLFLOW}/registered-models/alias", {"name": "alpha", "alias": "a\x00"}),
        (f"{MLFLOW}/model-versions/get", {"name": "alpha", "version": "1\x00"}),
    ]:
        response = api.get(url, params=params)
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (url, params)


def test_a_lone_surrogate_in_json_text_is_a_400(api: TestClient, populated: list[str]) -> None:
    """JSON's \\ud800 escape decodes to a lone surrogate, which is no character and which no
    database driver can encode as UTF-8: free text holding one is refused, not a 500."""
    lone = "x\ud800"
    for method, url, body in [
        ("POST", "/api/v1/models", {"name": "delta", "description": lone}),
        ("POST", "/api/v1/models", {"name": "delta", "tags": {"k": lone}}),
        ("PATCH", "/api/v1/models/alpha", {"description": lone}),
        ("PUT", "/api/v1/models/alpha/tags/k", {"value": lone}),
        ("POST", "/api/v1/models/alpha/versions", {"description": lone}),
        ("POST", "/api/v1/models/alpha/versions", {"params": {"p": lone}}),
        ("PATCH", "/api/v1/models/alpha/versions/1", {"description": lone}),
        ("POST", f"{MLFLOW}/registered-models/create", {"name": "delta", "description": lone}),
        (
            "POST",
            f"{MLFLOW}/registered-models/set-tag",
            {"name": "alpha", "key": "k", "value": lone},
        ),
    ]:
        content = json.dumps(body).encode()  # ASCII: the surrogate as its \\u escape
        response = api.request(
            method, url, content=content, headers={"Content-Type": "application/json"}
        )
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (method, url, response.text)
    assert names(api) == populated


# -- oversized bodies ---------------------------------------------------------------------


def _connect(base: str) -> socket.socket:
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    return sock


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response (status, body) off ``sock``; (0, b"") if it was closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return 0, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    while length is not None and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def test_a_declared_oversize_body_is_refused_before_it_is_sent(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    """Only the headers go out; the 413 comes back without one byte of body."""
    with _connect(live_server) as sock:
        headers = {
            "Host": "127.0.0.1",
            "Content-Type": "application/json",
            "Content-Length": str(10**12),
            **auth,
        }
        sock.sendall(_head("POST", "/api/v1/models", headers))
        status, body = _response(sock)
    assert status == 413, body
    assert json.loads(body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert names(api) == []


@pytest.mark.parametrize(
    "url", ["/api/v1/models", f"{MLFLOW}/registered-models/create", "/api/v1/import/models"]
)
def test_a_body_over_the_limit_is_a_413(api: TestClient, url: str) -> None:
    body = json.dumps({"name": "big", "description": "x" * LIMIT}).encode()
    response = api.post(url, content=body, headers={"Content-Type": "application/json"})
    assert error(response) == (413, "REQUEST_LIMIT_EXCEEDED")
    assert names(api) == []
    small = json.dumps({"name": "small", "description": "x" * (LIMIT // 2)}).encode()
    response = api.post(url, content=small, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 201), response.text


def test_a_chunked_body_over_the_limit_is_a_413(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    """No length declared: counted as it arrives and refused once past the limit."""
    payload = b'{"name": "chunked", "description": "' + b"x" * (LIMIT * 4) + b'"}'
    with _connect(live_server) as sock:
        headers = {
            "Host": "127.0.0.1",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            **auth,
        }
        sock.sendall(_head("POST", "/api/v1/models", headers))
        for start in range(0, len(payload), 8192):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the server has answered: stop sending
                break
            piece = payload[start : start + 8192]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            sock.sendall(b"0\r\n\r\n")
        status, body = _response(sock)
    assert status == 413, body
    assert names(api) == []


def test_a_chunked_body_under_the_limit_is_accepted(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    payload = b'{"name": "chunked-ok"}'
    with _connect(live_server) as sock:
        headers = {
            "Host": "127.0.0.1",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            **auth,
        }
        sock.sendall(_head("POST", "/api/v1/models", headers))
        for i in range(0, len(payload), 5):
            piece = payload[i : i + 5]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        status, body = _response(sock)
    assert status == 201, body
    assert names(api) == ["chunked-ok"]


def test_a_content_length_shorter_than_the_body_does_not_smuggle_a_request(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    """The server reads what was declared; the bytes after it are not a request that
    creates anything (they start mid-JSON, so the parser refuses them)."""
    hidden = _head(
        "POST",
        "/api/v1/models",
        {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": "16", **auth},
    )
    body = b'{"name": "a"}' + hidden + b'{"name": "evil"}'
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": "5",
        **auth,
    }
    with _connect(live_server) as sock:
        sock.sendall(_head("POST", "/api/v1/models", headers) + body)
        status, reply = _response(sock)
        assert 400 <= status < 500, reply  # '{"nam' is not JSON
        while _response(sock)[0]:  # whatever else the server says about the tail
            pass
    assert names(api) == []


def test_a_content_length_longer_than_the_body_creates_nothing(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": "1000",
        **auth,
    }
    with _connect(live_server) as sock:
        sock.sendall(_head("POST", "/api/v1/models", headers) + b'{"name": "short"}')
        sock.shutdown(socket.SHUT_WR)  # the client gives up: the body never completes
        status, _ = _response(sock)
    assert not 200 <= status < 300
    assert names(api) == []
    with _connect(live_server) as sock:  # and the server still answers
        sock.sendall(_head("GET", "/health", {"Host": "127.0.0.1"}))
        assert _response(sock)[0] == 200


# -- content types ------------------------------------------------------------------------

REFUSED_TYPES = [
    None,
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/json",
    "application/jsonx",
    "application/json-seq",
    "application/x-json",
    "application/javascript",
    "application/octet-stream",
    "",
]
ACCEPTED_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json ; charset=UTF-8",
    "application/merge-patch+json",
    "application/vnd.cairn+json",
]


def _send(api: TestClient, method: str, url: str, body: bytes, content_type: str | None) -> Any:
    """``content_type`` None: no Content-Type at all (httpx adds none for raw content)."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    return api.request(method, url, content=body, headers=headers)


JSON_CALLS = [
    ("POST", "/api/v1/models", {"name": "posted"}),
    ("PATCH", "/api/v1/models/m", {"description": "patched"}),
    ("PUT", "/api/v1/models/m/tags/k", {"value": "v"}),
    ("POST", "/api/v1/models/m/versions", {}),
    ("PUT", "/api/v1/models/m/aliases/prod", {"version": 1}),
    ("POST", f"{MLFLOW}/registered-models/create", {"name": "posted"}),
    ("PATCH", f"{MLFLOW}/registered-models/update", {"name": "m", "description": "x"}),
    ("DELETE", f"{MLFLOW}/registered-models/delete", {"name": "m"}),
    ("POST", "/ajax-api/2.0/mlflow/registered-models/create", {"name": "posted"}),
]


@pytest.mark.parametrize("content_type", REFUSED_TYPES)
def test_a_json_route_refuses_a_body_that_is_not_json(
    api: TestClient, content_type: str | None
) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    api.post("/api/v1/models/m/versions", json={})
    before = api.get("/api/v1/models/m").json()
    for method, url, payload in JSON_CALLS:
        response = _send(api, method, url, json.dumps(payload).encode(), content_type)
        assert error(response) == (415, "INVALID_PARAMETER_VALUE"), (method, url, response.text)
        assert "application/json" in response.json()["message"]
    assert api.get("/api/v1/models/m").json() == before
    assert names(api) == ["m"]


def test_a_form_post_from_another_site_changes_nothing(api: TestClient) -> None:
    """What a cross-site HTML form can send without a preflight: refused, not parsed."""
    for content_type, body in (
        ("application/x-www-form-urlencoded", b"name=evil"),
        ("text/plain", b'{"name": "evil"}'),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nevil\r\n--b--\r\n',
        ),
    ):
        response = api.post("/api/v1/models", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415
        response = api.post(
            f"{MLFLOW}/registered-models/create",
            content=body,
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 415
    assert names(api) == []


@pytest.mark.parametrize("content_type", ACCEPTED_TYPES)
def test_json_media_types_with_parameters_are_accepted(api: TestClient, content_type: str) -> None:
    response = api.post(
        "/api/v1/models", content=b'{"name": "ok"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 201, response.text


def test_bodiless_requests_and_uploads_need_no_json_type(api: TestClient) -> None:
    import hashlib

    data = b"bytes of a file"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    api.post("/api/v1/models", json={"name": "m"})
    created = api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "f.bin", "size": len(data), "digest": digest}]},
    )
    assert created.status_code == 201
    upload = api.put(
        f"/api/v1/models/m/versions/1/blobs/{digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 200, upload.text
    assert api.post("/api/v1/models/m/versions", json={}).status_code == 201
    # Bodiless POST and DELETE, with no type or a stray one: not 415.
    finalize = api.post("/api/v1/models/m/versions/2/finalize")
    assert finalize.status_code != 415, finalize.text
    stray = api.post(
        "/api/v1/models/m/versions/2/finalize",
        headers={"Content-Type": "text/plain", "Content-Length": "0"},
    )
    assert stray.status_code != 415, stray.text
    assert api.delete("/api/v1/models/m/versions/2").status_code == 204
    # A resumable upload's PATCH carries raw bytes too.
    second = b"another file"
    digest2 = "sha256:" + hashlib.sha256(second).hexdigest()
    api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "g.bin", "size": len(second), "digest": digest2}]},
    )
    ticket = api.post("/api/v1/models/m/versions/3/uploads", json={"digest": digest2}).json()
    patch = api.patch(
        f"/api/v1/uploads/{ticket['upload_id']}",
        content=second,
        headers={"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert patch.status_code == 200, patch.text
    # MLflow's read-only artifact routes answer their own 405, whatever the body.
    put = api.put(
        "/api/2.0/mlflow-artifacts/artifacts/x",
        content=b"bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert error(put) == (405, "BAD_REQUEST")


# -- CORS -----------------------------------------------------------------------------------

ORIGIN = "https://ml.example.com"
EVIL = "https://evil.example"


def _cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def _preflight(api: TestClient, url: str, origin: str) -> Any:
    return api.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


CORS_URLS = [
    "/api/v1/models",
    "/api/v1/models/m",
    f"{MLFLOW}/registered-models/create",
    f"{MLFLOW}/registered-models/search",
    "/api/2.0/mlflow-artifacts/artifacts",
    "/health",
    "/nope",
]


def test_cors_is_closed_by_default(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    for url in CORS_URLS:
        for origin in (EVIL, ORIGIN, "null"):
            preflight = _preflight(api, url, origin)
            assert _cors_headers(preflight) == {}, (url, origin, preflight.headers)
            assert not 200 <= preflight.status_code < 300, (url, preflight.status_code)
            simple = api.get(url, headers={"Origin": origin})
            assert _cors_headers(simple) == {}, (url, origin)
    assert names(api) == ["m"]


def test_cors_origins_open_exactly_those_origins_without_credentials(
    api: TestClient, app_with: Any
) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    with app_with(cors_origins=[ORIGIN]) as client:
        allowed = _preflight(client, "/api/v1/models", ORIGIN)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in allowed.headers
        assert "POST" in allowed.headers["access-control-allow-methods"]
        simple = client.get("/api/v1/models/m", headers={"Origin": ORIGIN})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        assert "origin" in simple.headers.get("vary", "").lower()
        for origin in (EVIL, ORIGIN + ".evil.example", "http://ml.example.com", "null"):
            refused = _preflight(client, "/api/v1/models", origin)
            assert "access-control-allow-origin" not in refused.headers, origin
            assert not 200 <= refused.status_code < 300
            other = client.get("/api/v1/models/m", headers={"Origin": origin})
            assert "access-control-allow-origin" not in other.headers, origin
        # CORS does not loosen the rest: a text/plain body is still refused.
        text = client.post(
            "/api/v1/models",
            content=b'{"name": "x"}',
            headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
        )
        assert text.status_code == 415
        assert text.headers["access-control-allow-origin"] == ORIGIN  # so the page can read why


@pytest.mark.parametrize(
    "value", ["*", "https://*.example.com", "https://ml.example.com/path", "ml.example.com"]
)
def test_cors_origins_must_be_exact_origins(value: str) -> None:
    with pytest.raises(ValidationError, match="exact origin"):
        Settings(cors_origins=value)


def test_cors_origins_and_allowed_hosts_read_comma_separated_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAIRN_CORS_ORIGINS", "https://a.example.com, http://localhost:3000/")
    monkeypatch.setenv("CAIRN_ALLOWED_HOSTS", "registry.example.com,*.internal.example")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example.com", "http://localhost:3000"]
    assert settings.allowed_hosts == ["registry.example.com", "*.internal.example"]
    assert "registry.example.com" in settings.resolved_allowed_hosts()


# -- Host allow-list ------------------------------------------------------------------------


def test_the_default_allow_list_serves_loopback_names_only(app_with: Any) -> None:
    with app_with(allowed_hosts=[]) as client:
        for host in (
            "localhost",
            "localhost:8080",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8080",
        ):
            response = client.get("/api/v1/models", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in (
            "testserver",  # the test client's own name: not served unless configured
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "evil.example@127.0.0.1",
            "127.0.0.2",
            "[::2]",
            "0.0.0.0",
            "localhost:http",
            "local host",
            "[::1",
        ):
            response = client.get("/api/v1/models", headers={"Host": host})
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), host
            assert "CAIRN_ALLOWED_HOSTS" in response.json()["message"]
        # Probes address the server by IP; health and readiness answer any Host.
        assert client.get("/health", headers={"Host": "10.1.2.3:8080"}).status_code == 200
        assert client.get("/ready", headers={"Host": "10.1.2.3:8080"}).status_code == 200


def test_allowed_hosts_add_names_patterns_and_the_bind_host(app_with: Any) -> None:
    with app_with(
        allowed_hosts=["registry.example.com", "*.models.example"], host="cairn.internal"
    ) as client:
        for host in (
            "registry.example.com",
            "Registry.Example.Com:443",
            "a.models.example",
            "a.b.models.example",
            "cairn.internal:8080",
            "localhost",
        ):
            assert client.get("/api/v1/models", headers={"Host": host}).status_code == 200, host
        for host in (
            "models.example",
            "evilmodels.example",
            "a.models.example.evil.org",
            "registry.example.com.evil.org",
            "testserver",
        ):
            response = client.get("/api/v1/models", headers={"Host": host})
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), host
    with app_with(allowed_hosts=["*"]) as client:
        assert client.get("/api/v1/models", headers={"Host": "anything.example"}).status_code == 200


def test_a_wildcard_bind_address_is_not_a_host_name() -> None:
    for bind in ("0.0.0.0", "::", "[::]"):
        assert Settings(host=bind).resolved_allowed_hosts() == ["localhost", "127.0.0.1", "::1"]
    assert "10.0.0.5" in Settings(host="10.0.0.5").resolved_allowed_hosts()


def test_an_invalid_allowed_host_stops_the_server_from_starting(settings: Settings) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        create_app(settings.model_copy(update={"allowed_hosts": ["not a host"]}))


def test_a_rebinding_host_is_refused_over_real_http(
    api: TestClient, live_server: str, auth: dict[str, str]
) -> None:
    port = urlsplit(live_server).port
    for host, expected in ((f"127.0.0.1:{port}", 200), ("attacker.example", 400), (None, 400)):
        with _connect(live_server) as sock:
            if host is None:  # HTTP/1.0 allows leaving Host out
                head = b"GET /api/v1/models HTTP/1.0\r\n"
                head += b"".join(f"{k}: {v}\r\n".encode() for k, v in auth.items()) + b"\r\n"
                sock.sendall(head)
            else:
                sock.sendall(_head("GET", "/api/v1/models", {"Host": host, **auth}))
            status, body = _response(sock)
        assert status == expected, (host, body)


# -- security headers ---------------------------------------------------------------------


def _boom() -> None:
    raise RuntimeError("an unexpected failure")


def test_security_headers_are_on_every_response(
    api: TestClient, anon: TestClient, app: FastAPI
) -> None:
    import hashlib

    app.add_api_route("/api/v1/test-boom", _boom, methods=["GET"])
    data = b"file"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    api.post("/api/v1/models", json={"name": "m"})
    api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "f.txt", "size": len(data), "digest": digest}]},
    )
    api.put(
        f"/api/v1/models/m/versions/1/blobs/{digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    cases: dict[str, tuple[Any, int]] = {
        "json 200": (api.get("/api/v1/models/m"), 200),
        "json 201": (api.post("/api/v1/models", json={"name": "n"}), 201),
        "204": (api.delete("/api/v1/models/n"), 204),
        "400": (api.post("/api/v1/models", json={"name": "a/b"}), 400),
        "400 body": (api.post("/api/v1/models", json={"nope": 1}), 400),
        "404 resource": (api.get("/api/v1/models/none"), 404),
        "404 path": (api.get("/no/such/path"), 404),
        "404 api path": (api.get("/api/v1/no-such-thing"), 404),
        "404 mlflow": (api.get(f"{MLFLOW}/runs/get"), 404),
        "405": (api.delete("/health"), 405),
        "413": (
            api.post(
                "/api/v1/models",
                content=b"{" + b" " * LIMIT + b"}",
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        "415": (
            api.post("/api/v1/models", content=b"{}", headers={"Content-Type": "text/plain"}),
            415,
        ),
        "host": (api.get("/api/v1/models", headers={"Host": "evil.example"}), 400),
        "500": (api.get("/api/v1/test-boom"), 500),
        "401": (anon.get("/api/v1/models"), 401),
        "download": (api.get("/api/v1/models/m/versions/1/files/f.txt"), 200),
        "archive": (api.get("/api/v1/models/m/versions/1/archive"), 200),
        "mlflow download": (
            api.get("/api/2.0/mlflow-artifacts/artifacts/cairn-models/m/1/f.txt"),
            200,
        ),
        "openapi": (api.get("/api/v1/openapi.json"), 200),
        "docs page": (api.get("/docs"), 200),
        "health": (api.get("/health"), 200),
        "preflight": (_preflight(api, "/api/v1/models", EVIL), 405),
    }
    for what, (response, status) in cases.items():
        assert response.status_code == status, (what, response.status_code, response.text[:200])
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (what, name, dict(response.headers))
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            assert response.headers["cache-control"] == "no-store", what
            assert "default-src 'none'" in response.headers["content-security-policy"], what
            if status >= 400:
                assert error(response)[0] == status, what
    downloaded = cases["download"][0]
    assert downloaded.headers["cache-control"] == "private, max-age=0"  # its own, kept
    assert downloaded.headers["content-type"] == "application/octet-stream"
