"""Lineage inputs: their rows, and the lookups a graph walk makes level by level.

Every lookup takes a set of version ids and answers for all of them in one query, so a
walk costs one query per level of depth, whatever the width. Nothing here decides who may
see what: the lineage service does, with the model of each row at hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, text, tuple_
from sqlalchemy.orm import aliased

from cairn.domain.access import ReadFilter
from cairn.domain.lineage import InputKind, LineageInput
from cairn.errors import NotFound
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.schema import (
    aliases,
    deployments,
    lineage_inputs,
    model_versions,
    registered_models,
)
from cairn.store.metadata.search import decode_page_token, encode_page_token, readable_models

# PostgreSQL advisory lock id (Cairn's namespace, as named_lock's)
_PARENTS_LOCK = 0x0CA1_2000_0003
L = lineage_inputs
V = model_versions
M = registered_models
_PV = aliased(model_versions, name="pv")
_PM = aliased(registered_models, name="pm")

# what a graph node of a version needs: its model, number, state and run
VERSION_COLUMNS = (
    V.c.id.label("vid"),
    V.c.version,
    V.c.status,
    V.c.deleted_at,
    V.c.run_id,
    V.c.run_link,
    M.c.id.label("model_id"),
    M.c.name,
    M.c.name_key,
    M.c.deleted_at.label("model_deleted_at"),
)


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def uri_key(uri: str) -> str:
    return _sha(uri)


def input_key(i: LineageInput, parent_version_id: int | None) -> str:
    """The identity of an input on its version: the same fact recorded twice is one row.
    A parent is one input whatever the relation (a second relation is a conflict)."""
    if i.kind is InputKind.MODEL_VERSION:
        return _sha(i.kind.value, str(parent_version_id))
    return _sha(i.kind.value, i.uri, i.ref or "", i.qualifier or "")


class LineageStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- writes ---------------------------------------------------------------------------

    def lock_parents(self) -> None:
        """Serialise the transactions that add version → version edges, until commit: two
        edges added at once could each pass the cycle check and close a cycle together.
        PostgreSQL: a transaction advisory lock; SQLite writers are serial already."""
        if self.s.dialect.name == "postgresql":
            self.s.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PARENTS_LOCK})

    def find(self, version_id: int, key: str) -> Row[Any] | None:
        return self.s.execute(
            select(L).where(L.c.version_id == version_id, L.c.input_key == key)
        ).first()

    def insert(
        self,
        version_id: int,
        i: LineageInput,
        key: str,
        parent_version_id: int | None,
        actor: str | None,
        now: int,
    ) -> int:
        is_parent = i.kind is InputKind.MODEL_VERSION
        return int(
            self.s.execute(
                insert(L)
                .values(
                    version_id=version_id,
                    kind=i.kind.value,
                    input_key=key,
                    uri=None if is_parent else i.uri,
                    uri_key=None if is_parent else uri_key(i.uri),
                    name=i.name,
                    ref=i.ref,
                    qualifier=i.qualifier,
                    parent_version_id=parent_version_id,
                    created_at=now,
                    created_by=actor,
                )
                .returning(L.c.id)
            ).scalar_one()
        )

    def count(self, version_id: int) -> int:
        return int(
            self.s.execute(
                select(func.count()).select_from(L).where(L.c.version_id == version_id)
            ).scalar_one()
        )

    def get(self, version_id: int, input_id: int) -> Row[Any]:
        row = self.s.execute(
            select(L).where(L.c.id == input_id, L.c.version_id == version_id)
        ).first()
        if row is None:
            raise NotFound(f"lineage input {input_id} of this version does not exist")
        return row

    def delete(self, input_id: int) -> None:
        self.s.execute(delete(L).where(L.c.id == input_id))

    # -- reads, a level at a time -----------------------------------------------------------

    def versions(self, version_ids: Collection[int]) -> dict[int, Any]:
        """Each version with its model (``VERSION_COLUMNS``)."""
        if not version_ids:
            return {}
        rows = self.s.execute(
            select(*VERSION_COLUMNS)
            .join(M, M.c.id == V.c.model_id)
            .where(V.c.id.in_(list(version_ids)))
        ).all()
        return {int(r.vid): r for r in rows}

    def inputs_of(self, version_ids: Collection[int]) -> list[Any]:
        """The inputs of these versions, oldest first; a parent's row carries the parent
        version and its model (``p_*`` columns)."""
        if not version_ids:
            return []
        return list(
            self.s.execute(
                select(
                    L,
                    _PV.c.version.label("p_version"),
                    _PV.c.status.label("p_status"),
                    _PV.c.deleted_at.label("p_deleted_at"),
                    _PV.c.run_id.label("p_run_id"),
                    _PV.c.run_link.label("p_run_link"),
                    _PM.c.id.label("p_model_id"),
                    _PM.c.name.label("p_name"),
                    _PM.c.name_key.label("p_name_key"),
                    _PM.c.deleted_at.label("p_model_deleted_at"),
                )
                .outerjoin(_PV, _PV.c.id == L.c.parent_version_id)
                .outerjoin(_PM, _PM.c.id == _PV.c.model_id)
                .where(L.c.version_id.in_(list(version_ids)))
                .order_by(L.c.version_id, L.c.id)
            ).all()
        )

    def children_of(self, version_ids: Collection[int], limit: int) -> list[Any]:
        """The versions derived from these (``VERSION_COLUMNS``, plus ``parent_version_id``
        and the relation in ``qualifier``), at most ``limit`` of them: a version a hundred
        thousand others were tuned from must not load them all for a graph that shows a
        thousand nodes (the caller takes ``limit`` rows back as "there may be more")."""
        if not version_ids:
            return []
        return list(
            self.s.execute(
                select(*VERSION_COLUMNS, L.c.parent_version_id, L.c.qualifier)
                .select_from(L)
                .join(V, V.c.id == L.c.version_id)
                .join(M, M.c.id == V.c.model_id)
                .where(L.c.parent_version_id.in_(list(version_ids)))
                .order_by(L.c.parent_version_id, V.c.id)
                .limit(limit)
            ).all()
        )

    def descends_from(self, version_id: int, ancestor_id: int) -> bool:
        """Whether ``ancestor_id`` is a parent of ``version_id``, or a parent's parent, and
        so on, however far: one recursive query (``UNION`` keeps each version once, so it
        ends on any graph), where a walk a level at a time cost one query per generation
        (a 3,000-version fine-tune chain took minutes to record)."""
        walk = (
            select(L.c.parent_version_id.label("id"))
            .where(L.c.version_id == version_id, L.c.parent_version_id.is_not(None))
            .cte("ancestry", recursive=True)
        )
        walk = walk.union(
            select(L.c.parent_version_id)
            .join(walk, L.c.version_id == walk.c.id)
            .where(L.c.parent_version_id.is_not(None))
        )
        found = select(walk.c.id).where(walk.c.id == ancestor_id).limit(1)
        return self.s.execute(found).first() is not None

    def aliases_of(self, pairs: Collection[tuple[int, int]]) -> dict[tuple[int, int], list[str]]:
        """(model id, version) → the aliases pointing at it now."""
        found: dict[tuple[int, int], list[str]] = {}
        if not pairs:
            return found
        a = aliases.c
        rows = self.s.execute(
            select(a.model_id, a.version, a.alias)
            .where(tuple_(a.model_id, a.version).in_(list(pairs)))
            .order_by(a.model_id, a.version, a.alias_key)
        ).all()
        for model_id, version, alias in rows:
            found.setdefault((int(model_id), int(version)), []).append(str(alias))
        return found

    def deployments_of(
        self, pairs: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], list[Row[Any]]]:
        """(model id, version) → the deployments serving it now (name, environment, url)."""
        found: dict[tuple[int, int], list[Row[Any]]] = {}
        if not pairs:
            return found
        d = deployments.c
        rows: list[Row[Any]] = list(
            self.s.execute(
                select(d.model_id, d.version, d.name, d.environment, d.url)
                .where(tuple_(d.model_id, d.version).in_(list(pairs)))
                .order_by(d.model_id, d.version, d.name_key)
            )
        )
        for row in rows:
            found.setdefault((int(row.model_id), int(row.version)), []).append(row)
        return found

    def users_of(
        self,
        uri: str,
        readable: ReadFilter | None,
        max_results: int,
        page_token: str | None,
    ) -> tuple[list[Row[Any]], str | None]:
        """The dataset inputs naming ``uri`` on versions of live models the caller may read
        (``readable``; None: every model), oldest first, a page at a time."""
        fingerprint = _sha("lineage.users_of", uri)[:32]
        conditions = _naming(uri, readable)
        if page_token:
            (after,) = decode_page_token(page_token, fingerprint, [int])
            conditions.append(L.c.id > after)
        rows = self.s.execute(
            select(
                L, V.c.version, V.c.deleted_at.label("version_deleted_at"), M.c.name.label("model")
            )
            .join(V, V.c.id == L.c.version_id)
            .join(M, M.c.id == V.c.model_id)
            .where(and_(*conditions))
            .order_by(L.c.id)
            .limit(max_results + 1)
        ).all()
        if len(rows) <= max_results:
            return list(rows), None
        page = list(rows[:max_results])
        return page, encode_page_token(fingerprint, [int(page[-1].id)])

    def direct_users(self, uri: str, readable: ReadFilter | None, limit: int) -> list[Row[Any]]:
        """The dataset inputs naming ``uri`` on the first ``limit`` versions (oldest first)
        of live models the caller may read (``readable``; None: every model), each row with
        its version (``VERSION_COLUMNS``, the model's name as ``model``: ``name`` is the
        input's); one query. More than ``limit`` versions: the
        rows of ``limit`` + 1 of them, so the caller can tell."""
        conditions = _naming(uri, readable)
        first = (
            select(V.c.id)
            .select_from(L)
            .join(V, V.c.id == L.c.version_id)
            .join(M, M.c.id == V.c.model_id)
            .where(and_(*conditions))
            .group_by(V.c.id)
            .order_by(V.c.id)
            .limit(limit + 1)
        )
        return list(
            self.s.execute(
                select(
                    L,
                    *(c for c in VERSION_COLUMNS if c.name != "name"),
                    M.c.name.label("model"),
                )
                .join(V, V.c.id == L.c.version_id)
                .join(M, M.c.id == V.c.model_id)
                .where(
                    L.c.uri_key == uri_key(uri),
                    L.c.uri == uri,
                    L.c.kind == InputKind.DATASET.value,
                    V.c.id.in_(first.scalar_subquery()),
                )
                .order_by(V.c.id, L.c.id)
            ).all()
        )


def _naming(uri: str, readable: ReadFilter | None) -> list[Any]:
    """Conditions on dataset inputs naming ``uri``, of live models the caller may read
    (``readable``; None: every model)."""
    conditions: list[Any] = [
        L.c.uri_key == uri_key(uri),
        L.c.uri == uri,
        L.c.kind == InputKind.DATASET.value,
        M.c.deleted_at.is_(None),
    ]
    if readable is not None:
        conditions.append(readable_models(readable))
    return conditions


def to_input(row: Any, *, parent_uri: str | None = None, deleted: bool = False) -> LineageInput:
    """A stored input (``parent_uri``: a parent's ``models:/NAME/VERSION``)."""
    kind = InputKind(row.kind)
    common = {
        "id": int(row.id),
        "created_at": to_datetime(row.created_at),
        "created_by": row.created_by,
    }
    if kind is InputKind.DATASET:
        return LineageInput(
            kind, row.uri, name=row.name, digest=row.ref, role=row.qualifier, **common
        )
    if kind is InputKind.CODE:
        return LineageInput(kind, row.uri, commit=row.ref, **common)
    assert parent_uri is not None
    return LineageInput(kind, parent_uri, relation=row.qualifier, deleted=deleted, **common)
