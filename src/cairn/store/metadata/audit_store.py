"""The audit log: append-only and hash-chained.

Each event's hash is SHA-256 over the previous event's hash and the event's canonical JSON,
so changing, removing or reordering any stored event breaks every hash after it. The chain's
tip lives in ``audit_head`` (one row); appending updates that row first, which locks it until
the transaction ends, so concurrent writers append one after another and the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cairn.domain.access import Actor
from cairn.store.metadata.schema import audit_events, audit_head

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "outcome",
    "model",
    "model_id",
    "version",
    "target",
    "before",
    "after",
    "request_id",
    "client",
)


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    body = json.dumps(
        {k: event.get(k) for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class AuditStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def append(
        self,
        actor: Actor,
        action: str,
        *,
        at: int,
        outcome: str = "ok",
        model: Any = None,
        model_name: str | None = None,
        version: int | None = None,
        target: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> int:
        """Append one event; ``model`` is a model row (id and name) when there is one."""
        head = self.s.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(seq=audit_head.c.seq + 1)
            .returning(audit_head.c.seq, audit_head.c.hash)
        ).first()
        assert head is not None, "migration 0003 creates the chain's tip"
        seq, prev = int(head.seq), str(head.hash)
        event: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "actor": actor.name,
            "action": action,
            "outcome": outcome,
            "model": model.name if model is not None else model_name,
            "model_id": model.id if model is not None else None,
            "version": version,
            "target": target,
            "before": _dump(before),
            "after": _dump(after),
            "request_id": actor.request_id,
            "client": actor.client,
        }
        digest = event_hash(prev, event)
        self.s.execute(insert(audit_events).values(**event, prev_hash=prev, hash=digest))
        self.s.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=digest))
        return seq

    def tip(self) -> tuple[int, str]:
        row = self.s.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))
