"""``GET /api/v1/audit/tail`` against the real app, on SQLite and PostgreSQL: the cursor,
the long-poll (woken by a write through another app on the same database, ended by its
wait or by the client going away), the filters and who sees what."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from starlette.types import Message

from cairn.api.offload import InFlight
from cairn.app import create_app
from cairn.settings import Settings

TAIL = "/api/v1/audit/tail"


def tail(api: TestClient, status: int = 200, **params: Any) -> dict[str, Any]:
    r = api.get(TAIL, params=params)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def head(api: TestClient) -> int:
    seq: int = api.get("/api/v1/audit/verify").json()["head_seq"]
    return seq


def token_for(api: TestClient, user: str, *grants: dict[str, str]) -> dict[str, str]:
    """A write token of a new user holding ``grants`` (made through the API as the admin)."""
    assert api.post("/api/v1/users", json={"name": user}).status_code == 201
    for grant in grants:
        r = api.put("/api/v1/grants", json={"subject": f"user:{user}", **grant})
        assert r.status_code == 200, r.text
    r = api.post("/api/v1/tokens", json={"user": user, "scope": "write"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def other(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A second app (another server process, as far as the tail knows) on the same
    database and blob store."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as client:
        yield client
    app.state.service.db.dispose()


def test_pages_after_a_cursor(api: TestClient) -> None:
    start = head(api)  # the bootstrap's admin user and token come first
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    assert api.post("/api/v1/models/fraud/versions", json={}).status_code == 201
    r = api.put("/api/v1/models/fraud/aliases/production", json={"version": 1})
    assert r.status_code == 200
    first = tail(api, after_seq=start, max_results=2)
    assert [e["action"] for e in first["events"]] == ["model.create", "version.create"]
    assert first["next_after_seq"] == start + 2
    assert set(first["events"][0]) == set(api.get("/api/v1/audit").json()["events"][0])
    rest = tail(api, after_seq=first["next_after_seq"], max_results=2)
    assert [e["action"] for e in rest["events"]] == ["alias.set"]
    assert rest["next_after_seq"] == start + 3
    everything = tail(api)  # from the log's start
    assert [e["seq"] for e in everything["events"]] == list(range(1, start + 4))
    aliases = tail(api, event=["alias.*", "model.create"])
    assert [e["action"] for e in aliases["events"]] == ["model.create", "alias.set"]
    assert tail(api, after_seq=start + 3, wait=0) == {"events": [], "next_after_seq": start + 3}
    # -1: the log's end, whatever it is now (a tail -f starts there)
    assert tail(api, after_seq=-1) == {"events": [], "next_after_seq": start + 3}


def test_a_waiting_tail_wakes_for_an_event_written_through_another_server(
    api: TestClient, other: TestClient
) -> None:
    cursor = head(api)

    def later() -> None:
        time.sleep(0.5)
        assert other.post("/api/v1/models", json={"name": "fraud"}).status_code == 201

    writer = threading.Thread(target=later)
    began = time.monotonic()
    writer.start()
    page = tail(api, after_seq=cursor, wait=30)
    took = time.monotonic() - began
    writer.join()
    assert [(e["action"], e["model"]) for e in page["events"]] == [("model.create", "fraud")]
    assert page["next_after_seq"] == cursor + 1
    assert took < 25  # woken by the event, not by the end of its wait


def test_a_waiting_tail_is_not_counted_as_a_request_being_served(api: TestClient) -> None:
    """Asleep between its reads, a long poll leaves other requests' short calls on the
    event loop (api/offload.py counts the requests a worker serves)."""
    cursor = head(api)
    counts: list[int] = []

    def probe() -> None:
        time.sleep(0.5)
        for _ in range(10):  # a sample may fall on one of the tail's reads
            counts.append(InFlight.count)
            time.sleep(0.03)
        assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201

    prober = threading.Thread(target=probe)
    prober.start()
    page = tail(api, after_seq=cursor, wait=30)
    prober.join()
    assert [e["model"] for e in page["events"]] == ["fraud"]
    assert 0 in counts, counts
    assert InFlight.count == 0  # and counted back before it ended


def test_a_wait_with_no_event_ends_empty_past_what_it_may_not_see(api: TestClient) -> None:
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    cursor = head(api)
    began = time.monotonic()
    page = tail(api, after_seq=0, event="alias.*", wait=0.6)
    assert time.monotonic() - began >= 0.5  # it did wait
    assert page == {"events": [], "next_after_seq": cursor}  # and moved past the rest


def test_a_client_going_away_ends_the_wait(
    app: FastAPI, api: TestClient, admin_headers: dict[str, str]
) -> None:
    """The app driven by hand as a server drives it: the client disconnects 0.3 s into a
    30 s wait, and the request ends then, answering nobody."""
    del api  # started the app's lifespan
    sent: list[Message] = []
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0.3)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": TAIL,
        "raw_path": TAIL.encode(),
        "root_path": "",
        "query_string": b"after_seq=1000000&wait=30",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", admin_headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def request() -> float:
        began = time.monotonic()
        await asyncio.wait_for(app(scope, receive, send), timeout=20)
        return time.monotonic() - began

    took = asyncio.run(request())
    assert took < 20
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499


def test_a_closed_connection_ends_the_wait_on_a_real_server(
    live_server: str, admin_headers: dict[str, str]
) -> None:
    """uvicorn in this process: a client sends a 30 s tail and hangs up; the tail stops
    reading the database for it within moments instead of sitting out its wait."""
    reads = 0

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        nonlocal reads
        if "audit_head" in statement:
            reads += 1

    event.listen(Engine, "before_cursor_execute", count)  # the app's read engines among them
    host, port = live_server.removeprefix("http://").split(":")
    request = (
        f"GET {TAIL}?after_seq=1000000&wait=30 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {admin_headers['Authorization']}\r\n\r\n"
    )
    try:
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(request.encode())
            deadline = time.monotonic() + 20
            while reads < 3:  # it is waiting: reading the head again and again
                assert time.monotonic() < deadline
                time.sleep(0.05)
        deadline = time.monotonic() + 10  # generous: a third of the wait
        last = -1
        while reads != last:  # until a whole second passes without a read
            assert time.monotonic() < deadline, "the tail went on waiting for a client gone"
            last = reads
            time.sleep(1)
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def test_who_sees_what(api: TestClient) -> None:
    for name in ("fraud", "churn"):
        assert api.post("/api/v1/models", json={"name": name}).status_code == 201
    mia = token_for(api, "mia", {"role": "MANAGE", "pattern": "fraud"})
    cursor = head(api)
    for name in ("fraud", "churn", "fraud"):
        r = api.put(f"/api/v1/models/{name}/tags/k", json={"value": "v"})
        assert r.status_code == 200, r.text
    r = api.get(TAIL, params={"model": "fraud", "after_seq": cursor, "wait": 5}, headers=mia)
    assert r.status_code == 200, r.text
    assert [e["model"] for e in r.json()["events"]] == ["fraud", "fraud"]
    assert r.json()["next_after_seq"] == cursor + 3
    refused = api.get(TAIL, params={"wait": 5}, headers=mia)  # refused at once, not waited
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert api.get(TAIL, params={"model": "churn"}, headers=mia).status_code == 404
    denied = tail(api, outcome="denied", event="audit.list")["events"]
    assert [(e["actor"], e["action"], e["model"]) for e in denied] == [
        ("mia", "audit.list", None),  # the whole log
        ("mia", "audit.list", "churn"),  # a model she may not read
    ]


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"wait": 61}, "wait"),
        ({"wait": -1}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"after_seq": -2}, "after_seq"),
        ({"after_seq": "x"}, "after_seq"),
        ({"event": "Alias.Set"}, "event"),
        ({"max_results": 0}, "max_results"),
        ({"outcome": "maybe"}, "outcome"),
        ({"model": "a/b"}, "model"),
    ],
)
def test_bad_parameters_are_400_and_change_nothing(
    api: TestClient, params: dict[str, Any], word: str
) -> None:
    before = head(api)
    r = api.get(TAIL, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and word in r.json()["message"]
    assert head(api) == before
