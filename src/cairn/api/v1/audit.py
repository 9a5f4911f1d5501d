"""``/api/v1/audit``: query the audit log and verify its hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.domain.audit import audit_event_to_json, audit_report_to_json, parse_anchor

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


@router.get("/verify", response_model=AuditReportOut)
def verify_audit(service: Service, actor: Caller, anchor: str | None = None) -> JSONResponse:
    """Walk the whole hash chain (instance ADMIN): ``ok`` false names the first bad event.
    ``anchor`` (``SEQ:HASH``): a head recorded earlier that the chain must still pass
    through; without one, the newest events deleted with the head set back go unseen."""
    wanted = None if anchor is None else parse_anchor(anchor)
    return json(audit_report_to_json(service.verify_audit(actor, anchor=wanted)))
