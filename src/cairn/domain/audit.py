"""Values of the audit log: one event, the result of verifying the chain, and their JSON.

An event says who (``actor``, ``request_id``, ``client``) did what (``action``, with
``outcome`` ``ok`` or ``denied``) to what (``model``, ``version``, ``target``), when, and
how the thing looked ``before`` and ``after``. ``hash`` is the event's link in the chain.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cairn.domain.codec import format_time, parse_time
from cairn.domain.webhooks import MAX_FAMILY_DOTS, filter_items
from cairn.errors import InvalidParameter

OUTCOMES = ("ok", "denied")
# Tailing the log (``tail_events``): the longest a call may wait for an event, and how
# often a waiting call looks at the database again (one read of the chain's head when
# nothing was appended).
MAX_WAIT_S = 60.0
POLL_S = 0.25
_ACTION_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")


def clean_anchor(anchor: tuple[int, str]) -> tuple[int, str]:
    """A head recorded earlier, ``(seq, hash)``, that the chain must still pass through."""
    seq, digest = anchor
    digest = digest.strip().lower() if isinstance(digest, str) else ""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 1 << 63:
        raise InvalidParameter(f"the anchor's sequence number must be 1 or more, not {seq!r}")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidParameter("the anchor's hash must be 64 hex digits (a head_hash)")
    return seq, digest


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH``, as ``cairn audit verify`` printed a head (``head_seq``, ``head_hash``)."""
    seq, sep, digest = text.strip().partition(":")
    if not sep or not seq.strip().isdecimal() or len(seq.strip()) > 19:
        raise InvalidParameter(
            f"anchor {text!r} is not SEQ:HASH (a head_seq and head_hash verify printed)"
        )
    return clean_anchor((int(seq), digest))


def clean_outcome(value: str | None) -> str | None:
    if value is None or value in OUTCOMES:
        return value
    raise InvalidParameter(f"outcome must be one of {', '.join(OUTCOMES)}; got {value!r}")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    at: datetime
    actor: str
    action: str
    outcome: str
    model: str | None = None
    version: int | None = None
    target: str | None = None
    before: Any = None
    after: Any = None
    request_id: str | None = None
    client: str | None = None
    hash: str = ""


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of the log's tail: events after a cursor, oldest first, and the cursor to
    pass next. ``next_after_seq`` can be past the last event here: the events between
    were not the caller's to see or not selected, and need not be read again."""

    events: list[AuditEvent]
    next_after_seq: int


# a tail's cursor that stands for the log's end as it is when read: only new events
FROM_END = -1


def clean_after_seq(value: object) -> int:
    """A tail's cursor: 0 (the log's start), an event's ``seq``, or ``FROM_END``."""
    if isinstance(value, bool) or not isinstance(value, int) or not FROM_END <= value < 1 << 63:
        raise InvalidParameter(
            f"after_seq must be 0 (the log's start), an event's seq or {FROM_END} (its end: "
            f"only events to come), not {value!r}"
        )
    return value


def clean_wait(value: object) -> float:
    """How long a tail may wait for an event: 0 (answer at once) to ``MAX_WAIT_S``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_WAIT_S
    ):
        raise InvalidParameter(
            f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, not {value!r}"
        )
    return float(value)


def clean_event_filter(events: object) -> tuple[str, ...] | None:
    """A tail's event filter in the webhook grammar (``domain/webhooks.py``): ``*``,
    families (``alias.*``, ``version.tag.*``) and names, matched against the event's
    audit action, which is its event name. Unlike a webhook's, a name need not be one a
    webhook carries (``grant.set``, ``user.create`` are in the log too). None or ``*``:
    every event. Sorted, without what a family or ``*`` already selects."""
    if events is None:
        return None
    chosen = filter_items(events, _well_formed)
    return None if chosen in ((), ("*",)) else chosen


def _well_formed(item: str) -> None:
    """Refuse a filter item that is not a name or a family of the audit actions' shape."""
    name = item.removesuffix(".*")
    if (
        len(item) > 64
        or not _ACTION_RE.fullmatch(name)
        or (name != item and item.count(".") > MAX_FAMILY_DOTS)
    ):
        raise InvalidParameter(
            f"event filter {item!r} is not valid; use '*', a family such as 'alias.*' "
            "or 'version.tag.*', or an event name such as 'alias.set'"
        )


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The chain checked from its first event to its head.

    ``first_bad_seq`` is the first sequence number where the stored log stops matching
    the chain (a changed, missing, extra or moved event), and ``reason`` says how.
    ``head_seq`` and ``head_hash`` are the chain's tip: record them somewhere else to be
    able to tell later that nothing before them was rewritten.
    """

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def audit_event_to_json(e: AuditEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": format_time(e.at),
        "actor": e.actor,
        "action": e.action,
        "outcome": e.outcome,
        "model": e.model,
        "version": e.version,
        "target": e.target,
        "before": e.before,
        "after": e.after,
        "request_id": e.request_id,
        "client": e.client,
        "hash": e.hash,
    }


def audit_event_from_json(d: dict[str, Any]) -> AuditEvent:
    at = parse_time(d["at"])
    assert at is not None
    return AuditEvent(
        seq=int(d["seq"]),
        at=at,
        actor=d["actor"],
        action=d["action"],
        outcome=d["outcome"],
        model=d.get("model"),
        version=d.get("version"),
        target=d.get("target"),
        before=d.get("before"),
        after=d.get("after"),
        request_id=d.get("request_id"),
        client=d.get("client"),
        hash=d.get("hash", ""),
    )


def event_page_to_json(p: EventPage) -> dict[str, Any]:
    return {
        "events": [audit_event_to_json(e) for e in p.events],
        "next_after_seq": p.next_after_seq,
    }


def event_page_from_json(d: dict[str, Any]) -> EventPage:
    return EventPage(
        events=[audit_event_from_json(e) for e in d["events"]],
        next_after_seq=int(d["next_after_seq"]),
    )


def audit_report_to_json(r: AuditReport) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "events": r.events,
        "head_seq": r.head_seq,
        "head_hash": r.head_hash,
        "first_bad_seq": r.first_bad_seq,
        "reason": r.reason,
    }


def audit_report_from_json(d: dict[str, Any]) -> AuditReport:
    return AuditReport(
        ok=bool(d["ok"]),
        events=int(d["events"]),
        head_seq=int(d["head_seq"]),
        head_hash=str(d["head_hash"]),
        first_bad_seq=d.get("first_bad_seq"),
        reason=d.get("reason"),
    )
