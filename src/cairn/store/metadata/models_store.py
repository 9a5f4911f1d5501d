"""Registered models: rows, tags and the per-model version counter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from cairn.domain.names import name_key
from cairn.errors import AlreadyExists, NotFound
from cairn.store.metadata.prepared import Prepared, Upsert, per_engine
from cairn.store.metadata.schema import model_tags, registered_models

M = registered_models

# Statements every create and read runs, built once and run on the driver (prepared.py);
# the values come as parameters.
_FIND = select(M).where(M.c.name_key == bindparam("name_key"), M.c.deleted_at.is_(None))
_FIND_LIVE = Prepared(_FIND)
_FIND_LIVE_LOCKED = Prepared(_FIND.with_for_update())
_BY_ID = Prepared(select(M).where(M.c.id == bindparam("model_id")))
_NAMES = Prepared(select(M.c.id, M.c.name).where(M.c.id.in_(bindparam("ids", expanding=True))))
_LIVE_IDS = Prepared(
    select(M.c.id, M.c.name_key).where(
        M.c.name_key.in_(bindparam("keys", expanding=True)), M.c.deleted_at.is_(None)
    )
)
# ON CONFLICT DO NOTHING: a taken live name returns no id
_NEW_COLUMNS = ("name", "name_key", "description", "created_at", "updated_at", "created_by")
_INSERT_NEW = per_engine(
    lambda insert: insert(M).on_conflict_do_nothing().returning(M.c.id), columns=_NEW_COLUMNS
)
_SET_TAGS = Upsert(model_tags, ("model_id", "key"), ("value",))
_TOUCH = Prepared(
    update(M).where(M.c.id == bindparam("model_id")).values(updated_at=bindparam("now"))
)
_ALLOCATE = Prepared(
    update(M)
    .where(M.c.name_key == bindparam("name_key"), M.c.deleted_at.is_(None))
    .values(last_version=M.c.last_version + 1, updated_at=bindparam("now"))
    .returning(*M.c)
)


class ModelStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def get_live(self, name: str, *, lock: bool = False) -> Any:
        row = self.find_live(name, lock=lock)
        if row is None:
            raise NotFound(f"registered model {name!r} does not exist")
        return row

    def find_live(self, name: str, *, lock: bool = False) -> Any:
        query = _FIND_LIVE_LOCKED if lock else _FIND_LIVE
        return query.first(self.s, {"name_key": name_key(name)})

    def live_ids(self, key_names: Sequence[str]) -> list[tuple[int, str]]:
        """(id, name key) of the live models among these name keys, in one query."""
        rows = _LIVE_IDS.all(self.s, {"keys": list(key_names)}) if key_names else []
        return [(int(r.id), str(r.name_key)) for r in rows]

    def names_by_ids(self, model_ids: Sequence[int]) -> dict[int, str]:
        """The names of these models (deleted ones included), in one query."""
        rows = _NAMES.all(self.s, {"ids": list(model_ids)}) if model_ids else []
        return {int(r.id): str(r.name) for r in rows}

    def get_by_id(self, model_id: int) -> Any:
        row = _BY_ID.first(self.s, {"model_id": model_id})
        if row is None:
            raise NotFound(f"registered model #{model_id} does not exist")
        return row

    def find_deleted(self, name: str) -> Row[Any] | None:
        """The most recently deleted model of that name, if any."""
        return self.s.execute(
            select(M)
            .where(M.c.name_key == name_key(name), M.c.deleted_at.is_not(None))
            .order_by(M.c.deleted_at.desc(), M.c.id.desc())
            .limit(1)
        ).first()

    def insert(self, name: str, description: str, created_by: str | None, now: int) -> int:
        """A new live model; AlreadyExists if a live one has that name key (the unique
        index decides, concurrent creates included: no look-up first, no savepoint)."""
        model_id = _INSERT_NEW[self.s.dialect.name].scalar(
            self.s,
            {
                "name": name,
                "name_key": name_key(name),
                "description": description,
                "created_at": now,
                "updated_at": now,
                "created_by": created_by,
            },
        )
        if model_id is None:
            raise AlreadyExists(f"registered model {name!r} already exists")
        return int(model_id)

    def update(self, model_id: int, now: int, **values: object) -> None:
        if not values:  # a change below the model (an alias, a version): its time only
            _TOUCH.run(self.s, {"model_id": model_id, "now": now})
            return
        self.s.execute(update(M).where(M.c.id == model_id).values(updated_at=now, **values))

    def rename(self, model_id: int, old: str, new: str, now: int) -> None:
        existing = self.find_live(new)
        if existing is not None and existing.id != model_id:
            raise AlreadyExists(f"registered model {new!r} already exists")
        try:
            with self.s.begin_nested():
                self.update(model_id, now, name=new, name_key=name_key(new))
        except IntegrityError as exc:
            raise AlreadyExists(f"registered model {new!r} already exists") from exc

    def restore(self, model_id: int, name: str, now: int) -> None:
        if self.find_live(name) is not None:
            raise AlreadyExists(
                f"cannot restore {name!r}: a live model of that name exists; rename it first"
            )
        try:
            with self.s.begin_nested():
                self.update(model_id, now, deleted_at=None)
        except IntegrityError as exc:
            raise AlreadyExists(f"registered model {name!r} already exists") from exc

    def allocate_version(self, name: str, now: int) -> Any:
        """The live model ``name`` with its next version number taken (``last_version``),
        or None: one statement, and the counter row is the lock (no MAX()+1). A caller
        refused afterwards gives the number back with the transaction's rollback."""
        return _ALLOCATE.first(self.s, {"name_key": name_key(name), "now": now})

    def set_tags(self, model_id: int, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        rows = [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()]
        _SET_TAGS.run_many(self.s, rows)

    def delete_tag(self, model_id: int, key: str) -> bool:
        result = self.s.execute(
            delete(model_tags).where(model_tags.c.model_id == model_id, model_tags.c.key == key)
        )
        return bool(result.rowcount)

    def count_live(self) -> int:
        return int(
            self.s.execute(select(func.count()).where(M.c.deleted_at.is_(None))).scalar_one()
        )
