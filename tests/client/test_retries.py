"""The SDK's retries (client/http_transport.py) against servers on loopback: a stub that
answers what each test scripts, and Cairn itself refusing writes on a read-only database
(SQLite and PostgreSQL) or refusing a locked-out address (429).

A 503 or 429 carries ``Retry-After`` (RFC 9110 §10.2.3, seconds or an HTTP-date): the
client waits that long, within its budget for a call (``RETRY_BUDGET_S``), and fails at
once with the server's error when the wait asked for would not fit. No test measures time:
the transport's clock and sleep are stand-ins that record the waits asked for.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from cairn.api import auth
from cairn.app import create_app
from cairn.client import http_transport
from cairn.client.http import HttpClient
from cairn.domain import tokens
from cairn.errors import CairnError, RateLimited, Unauthenticated, Unavailable
from cairn.settings import Settings
from cairn.store.metadata.database import READ_ONLY_RETRY_S

NOW = 1_900_000_000.0  # the stand-in clock's time: 2030-03-17


class FakeTime:
    """Stands in for ``time`` in the transport: ``sleep`` records the wait and moves the
    clock on (and, when given, the server's limiter clock with it)."""

    def __init__(self, also: Any = None) -> None:
        self.now = NOW
        self.waits: list[float] = []
        self.also = also

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self.also is not None:
            self.also.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(http_transport, "time", fake)
    return fake


class Stub:
    """A server on 127.0.0.1 answering each request with the next scripted answer
    (status, headers); the last one is repeated. Records each request's method and path."""

    def __init__(self, *script: tuple[int, dict[str, str]]) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, str]] = []

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        handler.rfile.read(length)
        self.seen.append((handler.command, handler.path))
        status, headers = self.script[min(len(self.seen), len(self.script)) - 1]
        if status == DROP:  # the request arrived; its answer is lost
            handler.close_connection = True
            return
        if status < 400:
            body = {"user": "admin", "scope": "admin", "is_admin": True}
        else:
            code = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "TEMPORARILY_UNAVAILABLE"
            body = {"error_code": code, "message": "busy, come back"}
        data = json.dumps(body).encode()
        handler.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@contextmanager
def serving(stub: Stub) -> Iterator[HttpClient]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.answer(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = HttpClient(f"http://127.0.0.1:{server.server_address[1]}", token="t")
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def busy(retry_after: str | None = None, status: int = 503) -> tuple[int, dict[str, str]]:
    return status, {} if retry_after is None else {"Retry-After": retry_after}


OK = (200, {})
DROP = 0  # as a status: close the connection without answering


def http_date(at: float) -> str:
    return format_datetime(datetime.fromtimestamp(at, UTC), usegmt=True)


# -- against a stub ----------------------------------------------------------------------------


def test_a_503_is_retried_after_the_seconds_it_asks_for(clock: FakeTime) -> None:
    stub = Stub(busy("3"), busy("4"), OK)
    with serving(stub) as client:
        assert client.whoami()["user"] == "admin"
    assert len(stub.seen) == 3 and clock.waits == [3, 4]


@pytest.mark.parametrize(
    ("when", "waited"), [(NOW + 7, 7.0), (NOW - 3600, 0.0)], ids=["ahead", "past"]
)
def test_a_retry_after_date_is_waited_for_until_then(
    clock: FakeTime, when: float, waited: float
) -> None:
    stub = Stub(busy(http_date(when)), OK)
    with serving(stub) as client:
        client.whoami()
    assert len(stub.seen) == 2 and clock.waits == [waited]


def test_a_429_is_retried_after_its_retry_after_too(clock: FakeTime) -> None:
    stub = Stub(busy("2", 429), OK)
    with serving(stub) as client:
        client.whoami()
    assert len(stub.seen) == 2 and clock.waits == [2]


@pytest.mark.parametrize("retry_after", [None, "soon", "-1", "1.5"])
def test_without_a_readable_retry_after_the_client_backs_off_as_before(
    clock: FakeTime, retry_after: str | None
) -> None:
    stub = Stub(busy(retry_after), busy(retry_after), OK)
    with serving(stub) as client:
        client.whoami()
    assert len(stub.seen) == 3 and clock.waits == [0.1, 0.2]


@pytest.mark.parametrize("status", [503, 429])
def test_a_wait_longer_than_the_budget_fails_at_once_saying_when_to_retry(
    clock: FakeTime, status: int
) -> None:
    stub = Stub(busy("3600", status), OK)
    with serving(stub) as client, pytest.raises((Unavailable, RateLimited)) as caught:
        client.whoami()
    assert len(stub.seen) == 1 and clock.waits == []
    assert caught.value.http_status == status and caught.value.retry_after == 3600
    assert "busy, come back" in str(caught.value) and "3600 s" in str(caught.value)


def test_the_waits_of_one_call_add_up_within_the_budget(clock: FakeTime) -> None:
    wait = http_transport.RETRY_BUDGET_S / 2.5
    stub = Stub(busy(str(int(wait))))
    with serving(stub) as client, pytest.raises(Unavailable) as caught:
        client.whoami()
    # two waits fit the budget, a third would not: the third answer is the error
    assert len(stub.seen) == 3 and clock.waits == [int(wait)] * 2
    assert caught.value.retry_after == int(wait)


def test_the_server_s_wait_is_on_the_error_when_the_attempts_run_out(clock: FakeTime) -> None:
    stub = Stub(busy("1"))
    with serving(stub) as client, pytest.raises(Unavailable) as caught:
        client.whoami()
    assert len(stub.seen) == http_transport.MAX_ATTEMPTS
    assert clock.waits == [1] * (http_transport.MAX_ATTEMPTS - 1)
    assert caught.value.retry_after == 1


# -- what may be sent again ------------------------------------------------------------------


def test_a_call_that_may_have_been_applied_is_not_sent_again(clock: FakeTime) -> None:
    """A POST without an ``Idempotency-Key`` (a rename, a promotion request, a new user) may
    have been applied when the answer is a 503 (a connection lost during the commit), a
    proxy's 502/504, or lost on the way: a second one would rename what is no longer
    there, or file a second request. It is sent once and the failure raised."""
    for answer in (busy("1"), busy(None, 502), busy(None, 504), (DROP, {})):
        stub = Stub(answer, OK)
        with (
            serving(stub) as client,
            pytest.raises(CairnError),
        ):
            client.rename_model("fraud", "fraud-v2")
        assert stub.seen == [("POST", "/api/v1/models/fraud/rename")], answer
    assert clock.waits == []


def test_a_call_refused_before_it_ran_is_sent_again_whatever_it_is(clock: FakeTime) -> None:
    """A 429 (the limiter refuses before anything runs) is retried even for a POST that is
    not safe to repeat; the 503 after it is not."""
    stub = Stub(busy("2", 429), busy("2", 429), busy("1"))
    with serving(stub) as client, pytest.raises(Unavailable):
        client.rename_model("fraud", "fraud-v2")
    assert len(stub.seen) == 3 and clock.waits == [2, 2]


def test_a_connection_that_never_opened_is_tried_again_for_any_call(clock: FakeTime) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with (
        HttpClient(f"http://127.0.0.1:{port}", token="t") as client,
        pytest.raises(Unavailable, match="cannot reach"),
    ):
        client.rename_model("fraud", "fraud-v2")
    assert len(clock.waits) == http_transport.MAX_ATTEMPTS - 1


def test_calls_safe_to_repeat_are_sent_again(clock: FakeTime) -> None:
    """Reads, PUT and DELETE, creates with their ``Idempotency-Key``, and the POSTs that
    are the same done twice (finalize) are retried after any transient failure."""
    calls = {
        ("GET", "/api/v1/models/fraud"): lambda c: c.get_model("fraud"),
        ("DELETE", "/api/v1/models/fraud"): lambda c: c.delete_model("fraud"),
        ("POST", "/api/v1/models"): lambda c: c.create_model("fraud"),
        ("POST", "/api/v1/models/fraud/versions/1/finalize"): lambda c: c.finalize_version(
            "fraud", 1
        ),
    }
    for (method, path), call in calls.items():
        stub = Stub((DROP, {}), busy(None, 502), busy("1"))
        with serving(stub) as client, pytest.raises(Unavailable):
            call(client)
        assert stub.seen == [(method, path)] * http_transport.MAX_ATTEMPTS, method


# -- against Cairn ---------------------------------------------------------------------------


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_only(settings: Settings) -> Settings:
    """``settings`` on the same database, which this server may only read."""
    uri = settings.backend_uri
    assert uri is not None
    if uri.startswith("sqlite:///"):
        uri = f"sqlite:///file:{uri.removeprefix('sqlite:///')}?mode=ro&uri=true"
    else:
        uri += "?options=-c%20default_transaction_read_only%3Don"
    return settings.model_copy(update={"backend_uri": uri})


def test_a_read_only_cairn_is_waited_for_as_it_asks_then_its_error_given(
    api: Any, settings: Settings, admin_headers: dict[str, str], clock: FakeTime
) -> None:
    """A write to a read-only database answers 503 with ``Retry-After: 10``: the client
    waits 10 s between tries for as long as its budget allows, then raises the server's
    error with that wait; a read answers at once."""
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    app = create_app(read_only(settings))
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    try:
        with serve(app) as url, HttpClient(url, token=token) as client:
            assert client.get_model("fraud").name == "fraud"
            assert clock.waits == []
            with pytest.raises(Unavailable, match="read-only") as caught:
                client.create_model("churn")
    finally:
        app.state.service.db.dispose()
    fits = int(http_transport.RETRY_BUDGET_S // READ_ONLY_RETRY_S)
    assert clock.waits == [READ_ONLY_RETRY_S] * min(fits, http_transport.MAX_ATTEMPTS - 1)
    assert caught.value.retry_after == READ_ONLY_RETRY_S
    assert api.get("/api/v1/models/churn").status_code == 404


class LimiterClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_locked_out_address_is_waited_out_when_the_wait_fits(
    app: FastAPI, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cairn's limiter answers 429 with Retry-After to an address that failed too often,
    good tokens included: the SDK waits as asked when that fits its budget (its stand-in
    sleep moves the limiter's clock on) and then gets its answer; a longer wait fails at
    once with the server's 429."""
    limiter_clock = LimiterClock()
    monkeypatch.setattr(auth, "time", limiter_clock)
    fake = FakeTime(also=limiter_clock)
    monkeypatch.setattr(http_transport, "time", fake)
    app.state.limiter = auth.RateLimiter(limit=3, window_s=60)
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    with serve(app) as url:
        with HttpClient(url, token=tokens.new_token()) as stranger:
            for _ in range(3):
                with pytest.raises(Unauthenticated):
                    stranger.whoami()
        with HttpClient(url, token=token) as client:
            with pytest.raises(RateLimited) as caught:  # 60 s: more than the budget
                client.whoami()
            assert fake.waits == [] and caught.value.retry_after == 61
            limiter_clock.now += 50  # the failures expire in about 10 s
            assert client.whoami()["user"] == "admin"
    assert fake.waits == [11]
