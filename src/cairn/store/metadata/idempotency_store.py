"""Idempotency keys: a retried create with the same key returns the original result.

The key is claimed first in the creating transaction. A concurrent request with the
same key blocks on the row (PostgreSQL) or the database lock (SQLite), then fails the
unique key; the transaction is retried and finds the finished record.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cairn.errors import Conflict
from cairn.store.metadata.database import RetryTransaction
from cairn.store.metadata.schema import idempotency_keys

K = idempotency_keys
RETENTION_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    actor: str
    replay_model_id: int | None = None
    replay_version: int | None = None


class IdempotencyStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def claim(self, key: str, actor: str, operation: str, fingerprint: str, now: int) -> Claim:
        row = self.s.execute(select(K).where(K.c.key == key, K.c.actor == actor)).first()
        if row is not None and row.created_at < now - RETENTION_US:
            self.s.execute(delete(K).where(K.c.key == key, K.c.actor == actor))
            row = None
        if row is not None:
            if row.operation != operation or row.fingerprint != fingerprint:
                raise Conflict(
                    f"Idempotency-Key {key!r} was already used for a different request; "
                    "use a new key for a new request"
                )
            return Claim(key, actor, int(row.model_id), row.version)
        try:
            with self.s.begin_nested():
                self.s.execute(
                    insert(K).values(
                        key=key,
                        actor=actor,
                        operation=operation,
                        fingerprint=fingerprint,
                        model_id=0,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:  # a concurrent request holds the key: start over
            raise RetryTransaction from exc
        return Claim(key, actor)

    def record(self, claim: Claim, model_id: int, version: int | None = None) -> None:
        self.s.execute(
            update(K)
            .where(K.c.key == claim.key, K.c.actor == claim.actor)
            .values(model_id=model_id, version=version)
        )
