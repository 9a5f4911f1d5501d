"""The pure rules of tailing the audit log (``domain/audit.py``): the cursor, the wait,
the event filter in the webhook grammar, and a page's JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cairn.domain.audit import (
    AuditEvent,
    EventPage,
    clean_after_seq,
    clean_event_filter,
    clean_wait,
    event_page_from_json,
    event_page_to_json,
)
from cairn.domain.webhooks import EVENTS, clean_events, selects
from cairn.errors import InvalidParameter


@pytest.mark.parametrize("bad", [-1, 61, 60.001, float("nan"), float("inf"), "5", True, None])
def test_a_wait_is_0_to_60_seconds(bad: Any) -> None:
    with pytest.raises(InvalidParameter, match="wait"):
        clean_wait(bad)


def test_good_waits_and_cursors() -> None:
    assert (clean_wait(0), clean_wait(0.5), clean_wait(60)) == (0.0, 0.5, 60.0)
    assert (clean_after_seq(0), clean_after_seq(42), clean_after_seq(-1)) == (0, 42, -1)
    for bad in (-2, "3", 1.5, True, None, 1 << 63):
        with pytest.raises(InvalidParameter, match="after_seq"):
            clean_after_seq(bad)


def test_the_filter_is_the_webhook_grammar_over_every_action() -> None:
    assert clean_event_filter(None) is None
    assert clean_event_filter("*") is None
    assert clean_event_filter(["alias.*", "*"]) is None
    assert clean_event_filter("alias.set") == ("alias.set",)
    # what a family already selects is dropped, as a webhook's filter drops it
    given = ["alias.set", "alias.*", "version.create", "version.tag.*", "version.tag.set"]
    assert clean_event_filter(given) == ("alias.*", "version.create", "version.tag.*")
    assert clean_event_filter(given) == clean_events(given)
    # actions a webhook never carries are events of the log too
    assert "grant.set" not in EVENTS
    assert clean_event_filter(["grant.set", "user.*"]) == ("grant.set", "user.*")
    assert selects(("user.*",), "user.create") and not selects(("user.*",), "users.create")


@pytest.mark.parametrize(
    "bad",
    ["", "alias.", "Alias.set", "alias.**", "a.b.c.*", "alias set", "*.set", "x" * 65, 5, [5], {}],
)
def test_bad_filters_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidParameter, match="event"):
        clean_event_filter(bad if isinstance(bad, list | dict | int) else [bad])


def test_a_page_round_trips_through_json() -> None:
    at = datetime(2026, 11, 30, 9, 12, 3, tzinfo=UTC)
    event = AuditEvent(7, at, "alice", "alias.set", "ok", "fraud", 2, "production", 1, 2)
    page = EventPage([event], 9)
    data = event_page_to_json(page)
    assert data["next_after_seq"] == 9 and data["events"][0]["at"] == "2026-11-30T09:12:03.000000Z"
    assert event_page_from_json(data) == page
