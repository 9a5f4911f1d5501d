"""Aliases and their history: every set, move and delete is an event row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, insert, select, update

from cairn.domain.names import alias_key
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import alias_events, aliases

A = aliases
E = alias_events

# (bind names differ from column names: an UPDATE reserves those for its SET clause)
_KEY = and_(A.c.model_id == bindparam("m_id"), A.c.alias_key == bindparam("a_key"))
_FIND = Prepared(select(A).where(_KEY))
_FIND_LOCKED = Prepared(select(A).where(_KEY).with_for_update())
_INSERT = Prepared(insert(A), columns=("model_id", "alias_key", "alias", "version", "updated_at"))
_MOVE = Prepared(
    update(A)
    .where(_KEY)
    .values(version=bindparam("to"), alias=bindparam("name"), updated_at=bindparam("now"))
)
_RECORD = Prepared(
    insert(E),
    columns=("model_id", "alias_key", "alias", "from_version", "to_version", "actor", "at"),
)


class AliasStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def find(self, model_id: int, alias: str, *, lock: bool = False) -> Any:
        query = _FIND_LOCKED if lock else _FIND
        return query.first(self.s, {"m_id": model_id, "a_key": alias_key(alias)})

    def set(
        self, model_id: int, alias: str, version: int, actor: str | None, now: int
    ) -> int | None:
        """Point ``alias`` at ``version``; return the version it pointed at before."""
        current = self.find(model_id, alias, lock=True)
        previous = None if current is None else int(current.version)
        if previous == version:
            return previous
        key = alias_key(alias)
        if current is None:
            _INSERT.run(
                self.s,
                {
                    "model_id": model_id,
                    "alias_key": key,
                    "alias": alias,
                    "version": version,
                    "updated_at": now,
                },
            )
        else:
            move = {"m_id": model_id, "a_key": key, "to": version, "name": alias, "now": now}
            _MOVE.run(self.s, move)
        self._record(model_id, alias, previous, version, actor, now)
        return previous

    def delete(self, model_id: int, alias: str, actor: str | None, now: int) -> int | None:
        current = self.find(model_id, alias, lock=True)
        if current is None:
            return None
        self.s.execute(delete(A).where(A.c.model_id == model_id, A.c.alias_key == alias_key(alias)))
        self._record(model_id, current.alias, int(current.version), None, actor, now)
        return int(current.version)

    def delete_for_version(self, model_id: int, version: int, actor: str | None, now: int) -> None:
        rows = self.s.execute(select(A).where(A.c.model_id == model_id, A.c.version == version))
        for row in rows.all():
            self.delete(model_id, row.alias, actor, now)

    def for_version(self, model_id: int, version: int) -> list[str]:
        return list(
            self.s.execute(
                select(A.c.alias)
                .where(A.c.model_id == model_id, A.c.version == version)
                .order_by(A.c.alias_key)
            ).scalars()
        )

    def as_of(self, model_id: int, alias: str, at: int) -> Row[Any] | None:
        """The last event of ``alias`` at or before ``at`` (None: never set by then)."""
        return self.s.execute(
            select(E)
            .where(E.c.model_id == model_id, E.c.alias_key == alias_key(alias), E.c.at <= at)
            .order_by(E.c.at.desc(), E.c.id.desc())
            .limit(1)
        ).first()

    def history(self, model_id: int, alias: str | None, limit: int) -> list[Row[Any]]:
        query = select(E).where(E.c.model_id == model_id)
        if alias is not None:
            query = query.where(E.c.alias_key == alias_key(alias))
        return list(self.s.execute(query.order_by(E.c.at.desc(), E.c.id.desc()).limit(limit)))

    def _record(
        self,
        model_id: int,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        actor: str | None,
        now: int,
    ) -> None:
        _RECORD.run(
            self.s,
            {
                "model_id": model_id,
                "alias_key": alias_key(alias),
                "alias": alias,
                "from_version": from_version,
                "to_version": to_version,
                "actor": actor,
                "at": now,
            },
        )
