"""``tail_events`` and ``follow_events`` end to end, over HTTP against the real app and
in-process on a directory, on SQLite and PostgreSQL; and ``follow_events`` riding out a
server that answers 503 for a while."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.domain.audit import AuditEvent
from cairn.errors import InvalidParameter
from cairn.settings import Settings


@pytest.fixture
def writer(settings: Settings) -> Iterator[LocalClient]:
    """Another client on the registry's database: writes that no server saw coming."""
    other = LocalClient(settings.data_dir, backend_uri=settings.backend_uri)
    yield other
    other.close()


def after_a_while(action: Callable[[], object], delay: float = 0.5) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_tail_pages_and_waits(client: BaseClient, writer: LocalClient) -> None:
    start = client.tail_events().next_after_seq  # past whatever bootstrapping wrote
    client.create_model("fraud")
    client.create_version("fraud")
    client.set_alias("fraud", "production", 1)
    first = client.tail_events(after=start, max_results=2)
    assert [e.action for e in first.events] == ["model.create", "version.create"]
    rest = client.tail_events(after=first.next_after_seq, max_results=2)
    assert [e.action for e in rest.events] == ["alias.set"]
    assert rest.next_after_seq == start + 3
    assert [e.seq for e in client.tail_events(after=start, events="alias.*").events] == [start + 3]
    # nothing yet: the call waits, and an event written elsewhere ends the wait
    thread = after_a_while(lambda: writer.create_model("churn"))
    began = time.monotonic()
    page = client.tail_events(after=rest.next_after_seq, wait=30)
    thread.join()
    assert [(e.action, e.model) for e in page.events] == [("model.create", "churn")]
    assert time.monotonic() - began < 25
    # nothing at all: an empty page once the wait is over
    began = time.monotonic()
    empty = client.tail_events(after=page.next_after_seq, wait=0.6)
    assert time.monotonic() - began >= 0.5
    assert (empty.events, empty.next_after_seq) == ([], page.next_after_seq)
    for bad in ({"wait": 61}, {"after": -2}, {"events": ["Bad"]}, {"max_results": 0}):
        with pytest.raises(InvalidParameter):
            client.tail_events(**bad)  # type: ignore[arg-type]


def test_follow_yields_the_backlog_then_what_lands(client: BaseClient, writer: LocalClient) -> None:
    start = client.tail_events().next_after_seq
    client.create_model("fraud")
    client.create_model("churn")
    stream = client.follow_events(after=start, events=["model.*"], wait=1)
    backlog = list(itertools.islice(stream, 2))
    assert [e.model for e in backlog] == ["fraud", "churn"]
    thread = after_a_while(
        lambda: (writer.set_model_tag("fraud", "k", "v"), writer.create_version("fraud"))
    )
    landed = next(stream)  # the version is not a model.* event
    thread.join()
    stream.close()
    assert (landed.action, landed.model, landed.seq) == ("model.tag.set", "fraud", start + 3)
    with pytest.raises(InvalidParameter):
        next(client.follow_events(events=["Bad"]))
    with pytest.raises(InvalidParameter):
        next(client.follow_events(max_backoff=0))


def test_follow_ends_when_its_stop_is_set_though_no_event_comes(client: BaseClient) -> None:
    """A long-running consumer (``cairn serve``'s follower, say) can end its follow from
    another thread: with no event at all, the iteration ends after the poll in progress."""
    stop = threading.Event()
    seen: list[AuditEvent] = []

    def consume() -> None:
        seen.extend(client.follow_events(after=-1, events=["model.*"], wait=1, stop=stop))

    consumer = threading.Thread(target=consume)
    consumer.start()
    after_a_while(stop.set).join()
    consumer.join(timeout=30)
    assert not consumer.is_alive() and seen == []


class FlakyTail(httpx.BaseTransport):
    """A real transport to the server, but the tail requests numbered in ``fail`` are
    answered 503 by a "proxy" that asks for longer than the client's retry budget."""

    def __init__(self, fail: set[int]) -> None:
        self.inner = httpx.HTTPTransport()
        self.fail = fail
        self.cursors: list[tuple[int, bool]] = []  # (after_seq sent, failed)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/audit/tail"):
            return self.inner.handle_request(request)
        cursor = int(parse_qs(request.url.query.decode()).get("after_seq", ["0"])[0])
        failed = len(self.cursors) + 1 in self.fail
        self.cursors.append((cursor, failed))
        if failed:
            body = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "restarting"}
            return httpx.Response(503, headers={"Retry-After": "120"}, json=body)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_follow_resumes_from_its_cursor_after_transient_failures(
    live_server: str, admin_headers: dict[str, str], writer: LocalClient
) -> None:
    flaky = FlakyTail(fail={2, 3})
    http = httpx.Client(base_url=live_server, transport=flaky, headers=admin_headers)
    sdk = HttpClient(live_server, http_client=http)
    start = sdk.tail_events().next_after_seq  # request 1
    sdk.create_model("fraud")
    stream = sdk.follow_events(after=start, wait=5, max_backoff=0.05)
    # request 2 fails, 3 fails, 4 gives the backlog
    first: AuditEvent = next(stream)
    assert (first.seq, first.model) == (start + 1, "fraud")
    thread = after_a_while(lambda: writer.create_model("churn"), 0.3)
    second = next(stream)  # request 5 waits for it
    thread.join()
    stream.close()
    http.close()
    assert (second.seq, second.model) == (start + 2, "churn")
    assert flaky.cursors[:5] == [
        (0, False),
        (start, True),
        (start, True),  # the same cursor again: nothing skipped
        (start, False),
        (start + 1, False),  # resumed after what it gave
    ]
