"""``/api/v1/audit``: query the audit log, tail it, and verify its hash chain."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.offload import brief, waiting
from cairn.domain.audit import (
    POLL_S,
    EventPage,
    audit_event_to_json,
    audit_report_to_json,
    clean_wait,
    event_page_to_json,
    parse_anchor,
)

router = lean_router(prefix="/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    outcome: str
    model: str | None
    version: int | None
    target: str | None
    before: Any
    after: Any
    request_id: str | None
    client: str | None
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_page_token: str | None


class EventPageOut(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int


class AuditReportOut(BaseModel):
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None


@router.get("", response_model=AuditPage)
def list_audit(
    service: Service,
    actor: Caller,
    model: str | None = None,
    actor_name: Annotated[str | None, Query(alias="actor")] = None,
    action: str | None = None,
    alias: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    oldest_first: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """Audit events, newest first. ``since`` (inclusive) and ``until`` (exclusive) are
    RFC 3339 times; ``alias`` keeps to the moves of one alias of ``model``; ``action``
    matches an action and those below it (``alias`` covers ``alias.set``). The instance
    ADMIN may list everything; MANAGE on a model lets a caller list that model's events."""
    page = service.list_audit(
        actor,
        model=model,
        actor_name=actor_name,
        action=action,
        alias=alias,
        outcome=outcome,
        since=since,
        until=until,
        oldest_first=oldest_first,
        max_results=max_results,
        page_token=page_token,
    )
    return json(
        {
            "events": [audit_event_to_json(e) for e in page.items],
            "next_page_token": page.next_page_token,
        }
    )


# nginx's word for "the client closed the request": nobody reads it, the access log does
CLIENT_CLOSED = 499


@router.get("/tail", response_model=EventPageOut)
async def tail_events(
    request: Request,
    service: Service,
    actor: Caller,
    after_seq: int = 0,
    model: str | None = None,
    event: Annotated[list[str] | None, Query()] = None,
    outcome: str | None = None,
    max_results: int | None = None,
    wait: float = 0.0,
) -> Response:
    """Events after ``after_seq`` (0: the log's start; -1: its end, for only the events
    to come), oldest first, with the cursor to
    pass next (``next_after_seq``). ``event`` (repeatable) selects events by name in the
    webhook grammar: ``*``, ``alias.*``, ``version.tag.*``, ``alias.set``; an event's
    name is its audit action. ``wait`` (0 to 60 seconds): when no event is there yet,
    answer as soon as one is, or with none when the wait ends. Who sees what is as for
    ``GET /audit``: the instance ADMIN everything, MANAGE on a model that model's events."""
    seconds = clean_wait(wait)

    def read(cursor: int) -> EventPage:
        return service.tail_events(
            actor,
            after_seq=cursor,
            model=model,
            events=event,
            outcome=outcome,
            max_results=max_results,
        )

    page = await brief(service, lambda: read(after_seq), bounded=False)
    if page.events or not seconds:
        return json(event_page_to_json(page))
    # Wait without holding a thread: sleep on the event loop, look again every POLL_S
    # (one read of the chain's head while nothing is appended), in the database only,
    # so an event written through any server process ends the wait. Asleep, the request
    # is not counted as one being served (``waiting``): with PostgreSQL, other requests'
    # short calls keep the event loop (api/offload.py).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    gone = asyncio.ensure_future(_disconnect(request.receive))
    try:
        while not page.events and (left := deadline - loop.time()) > 0:
            with waiting():
                await asyncio.wait((gone,), timeout=min(POLL_S, left))
            if gone.done():  # the client left: stop looking for it
                return Response(status_code=CLIENT_CLOSED)
            page = await brief(service, functools.partial(read, page.next_after_seq), bounded=False)
    finally:
        gone.cancel()
    return json(event_page_to_json(page))


async def _disconnect(receive: Receive) -> None:
    """Return when the client disconnects (a GET's body, empty, is read first)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@router.get("/verify", response_model=AuditReportOut)
def verify_audit(service: Service, actor: Caller, anchor: str | None = None) -> JSONResponse:
    """Walk the whole hash chain (instance ADMIN): ``ok`` false names the first bad event.
    ``anchor`` (``SEQ:HASH``): a head recorded earlier that the chain must still pass
    through; without one, the newest events deleted with the head set back go unseen."""
    wanted = None if anchor is None else parse_anchor(anchor)
    return json(audit_report_to_json(service.verify_audit(actor, anchor=wanted)))
