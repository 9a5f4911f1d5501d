"""Webhooks and their outbox of deliveries.

Deliveries of audit events are inserted by a trigger on ``audit_events`` (migration
0017), in the transaction of the change; this module writes pings and redeliveries,
lets the dispatchers claim due rows and record what happened, and lists them. Nothing
here commits: the webhook service and the dispatcher do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from cairn.domain.webhooks import (
    SEALED_PREFIX,
    Delivery,
    Webhook,
    event_payload,
    events_column,
    events_from_column,
)
from cairn.errors import AlreadyExists, NotFound
from cairn.store.metadata.clock import optional_datetime, to_datetime
from cairn.store.metadata.schema import audit_events, webhook_deliveries, webhooks

# the page-token format of every listing (URL-safe base64 JSON bound to the query)
from cairn.store.metadata.search import decode_page_token, encode_page_token

W = webhooks
D = webhook_deliveries
E = audit_events
MAX_ERROR = 500
FINISHED = ("succeeded", "failed")  # a delivery's final states; "pending" is the other


class WebhookStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- webhooks ---------------------------------------------------------------------

    def create(self, values: dict[str, Any]) -> Webhook:
        row = {**values, "events": events_column(values["events"])}
        try:
            with self.s.begin_nested():
                self.s.execute(insert(W).values(row))
        except IntegrityError:
            raise AlreadyExists(f"webhook {values['name']!r} already exists") from None
        return self.get(values["name"])

    def find_row(self, name: str, *, lock: bool = False) -> Row[Any] | None:
        query = select(W).where(W.c.name == name)
        if lock and self.s.dialect.name == "postgresql":
            query = query.with_for_update()
        return self.s.execute(query).first()

    def get_row(self, name: str, *, lock: bool = False) -> Row[Any]:
        row = self.find_row(name, lock=lock)
        if row is None:
            raise NotFound(f"webhook {name!r} does not exist")
        return row

    def get(self, name: str) -> Webhook:
        return to_webhook(self.get_row(name))

    def list_rows(self) -> list[Row[Any]]:
        """Every webhook (an instance has tens, not thousands: filtered in Python)."""
        return list(self.s.execute(select(W).order_by(W.c.name)))

    def update(self, webhook_id: int, values: dict[str, Any]) -> None:
        if "events" in values:
            values = {**values, "events": events_column(values["events"])}
        self.s.execute(update(W).where(W.c.id == webhook_id).values(values))

    def delete(self, webhook_id: int) -> None:
        self.s.execute(delete(W).where(W.c.id == webhook_id))

    # -- signing secrets: opaque text here (sealed by the service, ``v1:...``) ------------

    def secret_rows(self, *, clear_only: bool = False, lock: bool = False) -> list[Row[Any]]:
        """``(id, name, secret)`` of every webhook, or of those whose secret is still in
        the clear (written before secrets were sealed); ``lock``: held until the end of
        the transaction (PostgreSQL; SQLite's writer holds the whole database)."""
        query = select(W.c.id, W.c.name, W.c.secret).order_by(W.c.id)
        if clear_only:
            query = query.where(_in_the_clear())
        if lock and self.s.dialect.name == "postgresql":
            query = query.with_for_update()
        return list(self.s.execute(query))

    def any_secret_in_the_clear(self) -> bool:
        return self.s.execute(select(W.c.id).where(_in_the_clear()).limit(1)).first() is not None

    def set_secret(self, webhook_id: int, stored: str) -> None:
        self.s.execute(update(W).where(W.c.id == webhook_id).values(secret=stored))

    # -- deliveries -------------------------------------------------------------------

    def add_delivery(
        self,
        webhook_id: int,
        event: str,
        payload: Any,
        now: int,
        *,
        event_seq: int | None = None,
        redelivery_of: str | None = None,
    ) -> str:
        uid = uuid.uuid4().hex
        self.s.execute(
            insert(D).values(
                uid=uid,
                webhook_id=webhook_id,
                event=event,
                event_seq=event_seq,
                payload=None if payload is None else json.dumps(payload, separators=(",", ":")),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                redelivery_of=redelivery_of,
                created_at=now,
            )
        )
        return uid

    def delivery_row(self, webhook_id: int, uid: str) -> Row[Any]:
        row = self.s.execute(select(D).where(D.c.webhook_id == webhook_id, D.c.uid == uid)).first()
        if row is None:
            raise NotFound(f"delivery {uid!r} of this webhook does not exist")
        return row

    def delivery(self, webhook: Row[Any], uid: str) -> Delivery:
        return self._deliveries(webhook.name, [self.delivery_row(int(webhook.id), uid)])[0]

    def list_deliveries(
        self,
        webhook: Row[Any],
        *,
        status: str | None,
        max_results: int,
        page_token: str | None,
    ) -> tuple[list[Delivery], str | None]:
        """Newest first; ``status`` keeps to pending, succeeded or failed ones."""
        fingerprint = f"deliveries:{int(webhook.id)}:{status}"
        query = select(D).where(D.c.webhook_id == webhook.id)
        if status is not None:
            query = query.where(D.c.status == status)
        if page_token:
            (last,) = decode_page_token(page_token, fingerprint, [int])
            query = query.where(D.c.id < last)
        rows = list(self.s.execute(query.order_by(D.c.id.desc()).limit(max_results + 1)))
        page = self._deliveries(webhook.name, rows[:max_results])
        token = None
        if len(rows) > max_results:
            token = encode_page_token(fingerprint, [int(rows[max_results - 1].id)])
        return page, token

    def _deliveries(self, webhook: str, rows: Sequence[Row[Any]]) -> list[Delivery]:
        missing = [int(r.event_seq) for r in rows if r.payload is None and r.event_seq is not None]
        payloads = self.payloads_of(missing, webhook)
        return [
            to_delivery(
                r,
                webhook,
                json.loads(r.payload) if r.payload is not None else payloads.get(r.event_seq),
            )
            for r in rows
        ]

    def payloads_of(self, seqs: Sequence[int], webhook: str) -> dict[int, dict[str, Any]]:
        """The payloads of the audit events ``seqs``, by seq."""
        if not seqs:
            return {}
        found = self.s.execute(select(E).where(E.c.seq.in_(sorted(set(seqs))))).all()
        return {int(e.seq): event_payload(_event(e), webhook) for e in found}

    # -- what the dispatchers do --------------------------------------------------------

    def claim(self, now: int, lease_until: int, limit: int) -> list[Row[Any]]:
        """Lease up to ``limit`` due deliveries until ``lease_until``, counting an attempt
        each, with their webhook's url and secret; fills in missing payloads first.

        On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``: dispatchers claiming
        at once take different rows, never waiting on each other. On SQLite the claim runs
        in the single writer's transaction, one dispatcher after the other."""
        due = _due(now).order_by(D.c.next_attempt_at, D.c.id).limit(limit)
        if self.s.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = [int(i) for i in self.s.execute(due).scalars()]
        if not ids:
            return []
        self.s.execute(
            update(D)
            .where(D.c.id.in_(ids))
            .values(claimed_until=lease_until, attempts=D.c.attempts + 1)
        )
        rows = self._leased(ids)
        blank = [r for r in rows if r.payload is None and r.event_seq is not None]
        if not blank:
            return rows
        events = {
            int(e.seq): e
            for e in self.s.execute(select(E).where(E.c.seq.in_([r.event_seq for r in blank])))
        }
        for r in blank:
            event = events.get(r.event_seq)
            payload = None if event is None else event_payload(_event(event), r.webhook_name)
            text = json.dumps(payload, separators=(",", ":"))
            self.s.execute(update(D).where(D.c.id == r.id).values(payload=text))
        return self._leased(ids)

    def _leased(self, ids: list[int]) -> list[Row[Any]]:
        return list(
            self.s.execute(
                select(D, W.c.name.label("webhook_name"), W.c.url, W.c.secret)
                .join(W, W.c.id == D.c.webhook_id)
                .where(D.c.id.in_(ids))
                .order_by(D.c.next_attempt_at, D.c.id)
            )
        )

    def any_due(self, now: int) -> bool:
        """Whether a delivery is due (a read: an idle dispatcher takes no write lock)."""
        return self.s.execute(_due(now).limit(1)).first() is not None

    def record(
        self,
        delivery_id: int,
        lease_until: int,
        *,
        status: str,
        next_attempt_at: int | None,
        status_code: int | None,
        error: str | None,
        delivered_at: int | None,
    ) -> bool:
        """Record an attempt's outcome if the lease it was made under still holds (a
        dispatcher that outlived its lease, whose row another took, changes nothing).
        ``next_attempt_at``: when a pending delivery is due next; for a finished one, when
        it finished (what its retention counts from)."""
        values: dict[str, Any] = {
            "status": status,
            "claimed_until": None,
            "last_status": status_code,
            "last_error": None if error is None else error[:MAX_ERROR],
            "delivered_at": delivered_at,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        done = self.s.execute(
            update(D)
            .where(and_(D.c.id == delivery_id, D.c.claimed_until == lease_until))
            .values(values)
        )
        return bool(done.rowcount)

    # -- retention (gc) -------------------------------------------------------------------

    def count_finished_before(self, cut: int) -> int:
        """How many deliveries finished (succeeded or failed) before ``cut``."""
        query = select(func.count()).select_from(D).where(_finished_before(cut))
        return int(self.s.execute(query).scalar_one())

    def delete_finished_before(self, status: str, cut: int, limit: int) -> int:
        """Delete up to ``limit`` of the deliveries in ``status`` (one of ``FINISHED``:
        never a pending one) that finished before ``cut``, oldest first; how many went. One
        status at a time, in the (status, next_attempt_at) index's order, so that the scan
        stops after ``limit`` rows however many more are due."""
        assert status in FINISHED
        batch = (
            select(D.c.id)
            .where(D.c.status == status, D.c.next_attempt_at < cut)
            .order_by(D.c.next_attempt_at)
            .limit(limit)
        )
        return int(self.s.execute(delete(D).where(D.c.id.in_(batch))).rowcount)


def _finished_before(cut: int) -> Any:
    """Succeeded or failed deliveries that finished before ``cut`` (a finished row's
    next_attempt_at is when it finished)."""
    return and_(D.c.status.in_(FINISHED), D.c.next_attempt_at < cut)


def _in_the_clear() -> Any:
    return W.c.secret.not_like(f"{SEALED_PREFIX}%")


def _due(now: int) -> Any:
    """The pending deliveries of active webhooks whose time has come, not leased now."""
    return select(D.c.id).where(
        D.c.status == "pending",
        D.c.next_attempt_at <= now,
        or_(D.c.claimed_until.is_(None), D.c.claimed_until <= now),
        D.c.webhook_id.in_(select(W.c.id).where(W.c.active)),
    )


def _event(row: Row[Any]) -> dict[str, Any]:
    return {
        "seq": int(row.seq),
        "action": row.action,
        "at": to_datetime(int(row.at)),
        "actor": row.actor,
        "model": row.model,
        "version": row.version,
        "target": row.target,
        "before": _json(row.before),
        "after": _json(row.after),
    }


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def to_webhook(row: Row[Any]) -> Webhook:
    return Webhook(
        id=int(row.id),
        name=row.name,
        url=row.url,
        events=events_from_column(row.events),
        scope=row.scope,
        scope_key=row.scope_key,
        scope_exact=bool(row.scope_exact),
        active=bool(row.active),
        created_at=to_datetime(int(row.created_at)),
        created_by=row.created_by,
        updated_at=to_datetime(int(row.updated_at)),
    )


def to_delivery(row: Row[Any], webhook: str, payload: Any) -> Delivery:
    return Delivery(
        id=row.uid,
        webhook=webhook,
        event=row.event,
        status=row.status,
        attempts=int(row.attempts),
        payload=payload,
        next_attempt_at=None if row.status != "pending" else optional_datetime(row.next_attempt_at),
        last_status_code=row.last_status,
        last_error=row.last_error,
        created_at=to_datetime(int(row.created_at)),
        delivered_at=optional_datetime(row.delivered_at),
        redelivery_of=row.redelivery_of,
    )
