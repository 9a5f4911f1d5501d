"""Tailing the audit log through the service (``tail_events``), on SQLite and PostgreSQL:
the cursor neither skips nor repeats an event, the filters select what the webhook grammar
says, and a caller sees exactly what ``list_audit`` would show them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cairn.domain.access import Actor, Grant, Role
from cairn.domain.audit import FROM_END, AuditEvent
from cairn.errors import InvalidParameter, NotFound, PermissionDenied
from cairn.service.registry import RegistryService

ADMIN = Actor("root", is_admin=True)
ALICE = Actor("alice", user_id=1, grants=(Grant(Role.MANAGE, pattern="*"),))
MIA = Actor("mia", user_id=2, grants=(Grant(Role.MANAGE, pattern="fraud"),))  # one model
RITA = Actor("rita", user_id=3, grants=(Grant(Role.WRITE, pattern="*"),))  # no MANAGE


def tail_all(
    svc: RegistryService, actor: Actor = ADMIN, *, after: int = 0, size: int = 2, **filters: Any
) -> tuple[list[AuditEvent], int]:
    """Every event after ``after`` the tail gives ``actor``, in pages of ``size``, and the
    cursor it ends at (the end: a page shorter than ``size``)."""
    events: list[AuditEvent] = []
    cursor = after
    while True:
        page = svc.tail_events(actor, after_seq=cursor, max_results=size, **filters)
        assert page.next_after_seq >= cursor  # a cursor never goes back
        events.extend(page.events)
        cursor = page.next_after_seq
        if len(page.events) < size:
            return events, cursor


def a_registry(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")  # 1
    svc.create_model(ALICE, "churn")  # 2
    svc.create_version(ALICE, "fraud")  # 3
    svc.set_version_tag(ALICE, "fraud", 1, "k", "v")  # 4
    svc.set_alias(ALICE, "fraud", "production", 1)  # 5
    svc.create_version(ALICE, "churn")  # 6
    svc.set_model_tag(ADMIN, "churn", "team", "growth")  # 7
    svc.delete_alias(ALICE, "fraud", "production")  # 8


def test_pages_follow_the_cursor_without_gaps_or_repeats(service: RegistryService) -> None:
    a_registry(service)
    events, cursor = tail_all(service, size=3)
    assert [e.seq for e in events] == list(range(1, 9))  # oldest first, every one once
    assert cursor == 8
    assert service.tail_events(ADMIN, after_seq=8).events == []
    assert service.tail_events(ADMIN, after_seq=8).next_after_seq == 8
    later, _ = tail_all(service, after=5)
    assert [e.seq for e in later] == [6, 7, 8]
    # the same events as the audit listing, field for field
    listed = service.list_audit(ADMIN, oldest_first=True).items
    assert events == listed
    # what lands after the end is next
    service.create_model(ALICE, "late")
    page = service.tail_events(ADMIN, after_seq=cursor)
    assert [(e.seq, e.action, e.model) for e in page.events] == [(9, "model.create", "late")]
    assert page.next_after_seq == 9
    # a cursor beyond the log (another registry's) waits there, it is not an error
    assert service.tail_events(ADMIN, after_seq=100).next_after_seq == 100
    # FROM_END: none of what is there, and the cursor at the end (tail -f starts there)
    end = service.tail_events(ADMIN, after_seq=FROM_END)
    assert (end.events, end.next_after_seq) == ([], 9)
    service.create_model(ALICE, "later")
    assert [e.model for e in service.tail_events(ADMIN, after_seq=9).events] == ["later"]


def test_a_filtered_tail_moves_its_cursor_past_what_it_did_not_select(
    service: RegistryService,
) -> None:
    a_registry(service)
    page = service.tail_events(ADMIN, events=["alias.*"])
    assert [(e.seq, e.action) for e in page.events] == [(5, "alias.set"), (8, "alias.delete")]
    assert page.next_after_seq == 8  # the head: nothing up to it is read again
    nothing = service.tail_events(ADMIN, after_seq=0, events=["user.create"])
    assert (nothing.events, nothing.next_after_seq) == ([], 8)
    # a full page stops at its last event: the rest comes next
    first = service.tail_events(ADMIN, events="version.*", max_results=1)
    assert [e.seq for e in first.events] == [3] and first.next_after_seq == 3
    rest = service.tail_events(ADMIN, after_seq=3, events="version.*", max_results=1)
    assert [e.seq for e in rest.events] == [4] and rest.next_after_seq == 4


def test_event_patterns_use_the_webhook_grammar(service: RegistryService) -> None:
    a_registry(service)

    def actions(*patterns: str) -> list[str]:
        events, _ = tail_all(service, events=list(patterns))
        return [e.action for e in events]

    everything = actions("*")
    assert len(everything) == 8
    assert actions("alias.set") == ["alias.set"]
    assert actions("alias.*") == ["alias.set", "alias.delete"]
    assert actions("version.tag.*", "model.tag.set") == ["version.tag.set", "model.tag.set"]
    assert actions("version.*") == ["version.create", "version.tag.set", "version.create"]
    assert actions("model.*", "*") == everything  # '*' takes all
    assert actions("alias.*", "alias.set") == ["alias.set", "alias.delete"]
    # a family is a whole prefix of names: 'model.*' is not 'model_x'
    assert actions("model.*") == ["model.create", "model.create", "model.tag.set"]
    # names outside the webhook list are events of the log too
    service.record_denial(RITA, {"action": "grant", "model": "fraud"})  # grant.set
    assert actions("grant.*") == ["grant.set"]
    assert service.tail_events(ADMIN, events="grant.set", outcome="ok").events == []
    assert [e.outcome for e in service.tail_events(ADMIN, outcome="denied").events] == ["denied"]


@pytest.mark.parametrize(
    "bad",
    ["", "alias.", "Alias.set", "alias.**", "a.b.c.*", "alias set", "*.set", "x" * 65, 5, [5]],
)
def test_bad_event_patterns_are_refused(service: RegistryService, bad: Any) -> None:
    with pytest.raises(InvalidParameter, match="event"):
        service.tail_events(ADMIN, events=bad if isinstance(bad, list) else [bad])


def test_bad_cursors_and_sizes_are_refused(service: RegistryService) -> None:
    for cursor in (-2, "3", 1.5, True, None, 1 << 63):
        with pytest.raises(InvalidParameter, match="after_seq"):
            service.tail_events(ADMIN, after_seq=cursor)
    for size in (0, 1001, "5"):
        with pytest.raises(InvalidParameter, match="max_results"):
            service.tail_events(ADMIN, max_results=size)
    with pytest.raises(InvalidParameter, match="outcome"):
        service.tail_events(ADMIN, outcome="maybe")


def test_who_sees_what_is_as_for_the_listing(service: RegistryService) -> None:
    a_registry(service)
    mine, cursor = tail_all(service, MIA, model="fraud")
    assert {e.model for e in mine} == {"fraud"}
    assert [e.seq for e in mine] == [
        e.seq for e in reversed(service.list_audit(MIA, model="fraud").items)
    ]
    assert cursor == 8  # past churn's events too, which are not hers to see
    with pytest.raises(PermissionDenied) as refused:
        service.tail_events(MIA)  # the whole log is for the instance admin
    assert refused.value.denial == {"action": "audit.list"}
    with pytest.raises(PermissionDenied):
        service.tail_events(ALICE)  # MANAGE everywhere is not ADMIN
    with pytest.raises(NotFound):  # cannot read churn: the answer of a missing model
        service.tail_events(MIA, model="churn")
    with pytest.raises(NotFound):
        service.tail_events(MIA, model="nope")
    with pytest.raises(PermissionDenied):  # can write fraud, but not MANAGE it
        service.tail_events(RITA, model="fraud")
    # the admin by name: a refused attempt on a name no model has is there too
    service.record_denial(RITA, {"action": "create_model", "model": "ghost"})
    ghost = service.tail_events(ADMIN, model="ghost").events
    assert [(e.action, e.outcome) for e in ghost] == [("model.create", "denied")]


def test_events_appended_by_other_threads_come_in_order_once(service: RegistryService) -> None:
    """Writers race while a reader follows the cursor: every event arrives, once, in
    ``seq`` order, although the reader reads while transactions commit."""
    service.create_model(ADMIN, "fraud")
    writers, each = 3, 15

    def write(n: int) -> None:
        for i in range(each):
            service.set_model_tag(ADMIN, "fraud", f"k{n}", str(i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    seen: list[int] = []
    cursor = 1
    deadline = time.monotonic() + 120  # generous: only a bug would reach it
    while any(t.is_alive() for t in threads) or cursor < 1 + writers * each:
        assert time.monotonic() < deadline, seen
        page = service.tail_events(ADMIN, after_seq=cursor, max_results=4)
        seen.extend(e.seq for e in page.events)
        cursor = page.next_after_seq
    for t in threads:
        t.join()
    assert seen == list(range(2, 2 + writers * each))
