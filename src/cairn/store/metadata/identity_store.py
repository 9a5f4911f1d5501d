"""Users, groups, grants and tokens: who someone is and what they were given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from cairn.domain.access import Grant, Role
from cairn.domain.names import identity_key, is_identity_name
from cairn.errors import AlreadyExists, NotFound
from cairn.store.metadata.identity_watch import mark_changed
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import (
    grants,
    group_members,
    groups,
    registered_models,
    tokens,
    users,
)

U, G, GM, GR, T = users.c, groups.c, group_members.c, grants.c, tokens.c

# The two statements every authenticated request runs, built once (building them costs
# more than running them on SQLite).
_TOKEN_BY_HASH = Prepared(
    select(tokens, U.name.label("user_name"), U.is_admin, U.disabled_at)
    .join(users, U.id == T.user_id)
    .where(T.secret_hash == bindparam("secret_hash"))
)


def held_by(user_id: Any) -> ColumnElement[bool]:
    """Grants held by the user ``user_id`` (a value or a bind parameter), directly or
    through its groups."""
    return or_(
        and_(GR.subject_kind == "user", GR.subject_id == user_id),
        and_(
            GR.subject_kind == "group",
            GR.subject_id.in_(select(GM.group_id).where(GM.user_id == user_id).scalar_subquery()),
        ),
    )


_GRANTS_OF = Prepared(select(GR.role, GR.model_id, GR.pattern).where(held_by(bindparam("user_id"))))
_INSERT_GRANT = Prepared(
    insert(grants),
    columns=(
        "subject_kind",
        "subject_id",
        "model_id",
        "pattern",
        "role",
        "created_at",
        "created_by",
    ),
)


class IdentityStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- users -----------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        *,
        kind: str,
        password_hash: str | None,
        is_admin: bool,
        now: int,
        created_by: str | None,
    ) -> int:
        mark_changed()
        if self.find_user(name) is not None:
            raise AlreadyExists(f"user {name!r} already exists")
        row = self.s.execute(
            insert(users)
            .values(
                name=name,
                name_key=identity_key(name),
                kind=kind,
                password_hash=password_hash,
                is_admin=is_admin,
                created_at=now,
                created_by=created_by,
            )
            .returning(U.id)
        ).one()
        return int(row.id)

    def find_user(self, name: str) -> Row[Any] | None:
        if not is_identity_name(name):  # never stored; PostgreSQL refuses text with a NUL
            return None
        return self.s.execute(select(users).where(U.name_key == identity_key(name))).first()

    def user(self, name: str) -> Row[Any]:
        row = self.find_user(name)
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return row

    def user_by_id(self, user_id: int) -> Row[Any] | None:
        return self.s.execute(select(users).where(U.id == user_id)).first()

    def list_users(self) -> Sequence[Row[Any]]:
        return self.s.execute(select(users).order_by(U.name_key)).all()

    def update_user(self, user_id: int, **values: Any) -> None:
        mark_changed()
        self.s.execute(update(users).where(U.id == user_id).values(**values))

    def other_admins(self, user_id: int) -> int:
        """How many enabled administrators there are besides ``user_id``. Every enabled
        administrator's row stays locked to the transaction (PostgreSQL; in id order, so
        two such transactions wait for each other instead of deadlocking): two
        administrators cannot each unmake the other at once."""
        rows = self.s.execute(
            select(U.id)
            .where(U.is_admin.is_(True), U.disabled_at.is_(None))
            .order_by(U.id)
            .with_for_update()
        ).all()
        return sum(1 for r in rows if r.id != user_id)

    def has_users(self) -> bool:
        return self.s.execute(select(U.id).limit(1)).first() is not None

    # -- groups ----------------------------------------------------------------------------
    def add_group(self, name: str, now: int, created_by: str | None) -> int:
        mark_changed()
        if self.find_group(name) is not None:
            raise AlreadyExists(f"group {name!r} already exists")
        row = self.s.execute(
            insert(groups)
            .values(name=name, name_key=identity_key(name), created_at=now, created_by=created_by)
            .returning(G.id)
        ).one()
        return int(row.id)

    def find_group(self, name: str) -> Row[Any] | None:
        if not is_identity_name(name):
            return None
        return self.s.execute(select(groups).where(G.name_key == identity_key(name))).first()

    def group(self, name: str) -> Row[Any]:
        row = self.find_group(name)
        if row is None:
            raise NotFound(f"group {name!r} does not exist")
        return row

    def delete_group(self, group_id: int) -> None:
        mark_changed()
        self.s.execute(delete(grants).where(GR.subject_kind == "group", GR.subject_id == group_id))
        self.s.execute(delete(groups).where(G.id == group_id))

    def list_groups(self) -> list[tuple[Row[Any], list[str]]]:
        rows = self.s.execute(select(groups).order_by(G.name_key)).all()
        members = self.s.execute(
            select(GM.group_id, U.name).join(users, U.id == GM.user_id).order_by(U.name_key)
        ).all()
        by_group: dict[int, list[str]] = {}
        for m in members:
            by_group.setdefault(m.group_id, []).append(m.name)
        return [(r, by_group.get(r.id, [])) for r in rows]

    def add_member(self, group_id: int, user_id: int) -> None:
        mark_changed()
        exists = self.s.execute(
            select(GM.user_id).where(GM.group_id == group_id, GM.user_id == user_id)
        ).first()
        if exists is None:
            self.s.execute(insert(group_members).values(group_id=group_id, user_id=user_id))

    def remove_member(self, group_id: int, user_id: int) -> bool:
        mark_changed()
        result = self.s.execute(
            delete(group_members).where(GM.group_id == group_id, GM.user_id == user_id)
        )
        return bool(result.rowcount)

    # -- grants ----------------------------------------------------------------------------
    def put_grant(
        self,
        subject_kind: str,
        subject_id: int,
        role: Role,
        *,
        model_id: int | None = None,
        pattern: str | None = None,
        now: int,
        created_by: str | None,
        new_model: bool = False,
    ) -> None:
        """Give (or change) a subject's role on one model or one pattern (``new_model``: on
        a model created in this transaction, which nobody holds anything on yet)."""
        mark_changed(subject_id if subject_kind == "user" else None)
        if not new_model:
            target = GR.model_id == model_id if model_id is not None else GR.pattern == pattern
            where = and_(GR.subject_kind == subject_kind, GR.subject_id == subject_id, target)
            found = self.s.execute(select(GR.id).where(where)).first()
            if found is not None:
                self.s.execute(update(grants).where(GR.id == found.id).values(role=role.name))
                return
        _INSERT_GRANT.run(
            self.s,
            {
                "subject_kind": subject_kind,
                "subject_id": subject_id,
                "model_id": model_id,
                "pattern": pattern,
                "role": role.name,
                "created_at": now,
                "created_by": created_by,
            },
        )

    def revoke_grant(
        self, subject_kind: str, subject_id: int, *, model_id: int | None, pattern: str | None
    ) -> bool:
        mark_changed(subject_id if subject_kind == "user" else None)
        target = GR.model_id == model_id if model_id is not None else GR.pattern == pattern
        result = self.s.execute(
            delete(grants).where(
                GR.subject_kind == subject_kind, GR.subject_id == subject_id, target
            )
        )
        return bool(result.rowcount)

    def grants_of(self, user_id: int) -> tuple[Grant, ...]:
        """Everything a user holds, directly or through their groups."""
        rows = _GRANTS_OF.all(self.s, {"user_id": user_id})
        return tuple(Grant(Role[r.role], r.model_id, r.pattern) for r in rows)

    def list_grants(
        self, *, model_id: int | None = None, subject: tuple[str, int] | None = None
    ) -> Sequence[Any]:
        """Grants with their subject's and model's names, optionally for one model or subject."""
        query = (
            select(
                GR.id,
                GR.subject_kind,
                GR.subject_id,
                GR.model_id,
                GR.pattern,
                GR.role,
                GR.created_at,
                GR.created_by,
                registered_models.c.name.label("model"),
                U.name.label("user_name"),
                G.name.label("group_name"),
            )
            .select_from(grants)
            .outerjoin(registered_models, registered_models.c.id == GR.model_id)
            .outerjoin(users, and_(GR.subject_kind == "user", U.id == GR.subject_id))
            .outerjoin(groups, and_(GR.subject_kind == "group", G.id == GR.subject_id))
            .order_by(GR.id)
        )
        if model_id is not None:
            query = query.where(GR.model_id == model_id)
        if subject is not None:
            query = query.where(GR.subject_kind == subject[0], GR.subject_id == subject[1])
        return self.s.execute(query).all()

    # -- tokens ----------------------------------------------------------------------------
    def add_token(
        self,
        user_id: int,
        *,
        kind: str,
        name: str,
        prefix: str,
        secret_hash: str,
        scope: str,
        now: int,
        expires_at: int | None,
        csrf_hash: str | None = None,
    ) -> int:
        row = self.s.execute(
            insert(tokens)
            .values(
                user_id=user_id,
                kind=kind,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                scope=scope,
                csrf_hash=csrf_hash,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(T.id)
        ).one()
        return int(row.id)

    def token_by_hash(self, secret_hash: str) -> Any:
        return _TOKEN_BY_HASH.first(self.s, {"secret_hash": secret_hash})

    def token(self, token_id: int) -> Row[Any] | None:
        return self.s.execute(
            select(tokens, U.name.label("user_name"))
            .join(users, U.id == T.user_id)
            .where(T.id == token_id)
        ).first()

    def list_tokens(self, user_id: int | None, *, kind: str = "api") -> Sequence[Row[Any]]:
        query = (
            select(tokens, U.name.label("user_name"))
            .join(users, U.id == T.user_id)
            .where(T.kind == kind)
            .order_by(T.id)
        )
        if user_id is not None:
            query = query.where(T.user_id == user_id)
        return self.s.execute(query).all()

    def touch_token(self, token_id: int, now: int) -> None:
        self.s.execute(update(tokens).where(T.id == token_id).values(last_used_at=now))

    def revoke_token(self, token_id: int, now: int) -> None:
        mark_changed()
        self.s.execute(
            update(tokens).where(T.id == token_id, T.revoked_at.is_(None)).values(revoked_at=now)
        )

    def revoke_user_tokens(
        self, user_id: int, now: int, *, kind: str | None = None, keep: int | None = None
    ) -> None:
        """Revoke a user's tokens and sessions (``kind``: only those; ``keep``: but that one)."""
        mark_changed()
        query = update(tokens).where(T.user_id == user_id, T.revoked_at.is_(None))
        if kind is not None:
            query = query.where(T.kind == kind)
        if keep is not None:
            query = query.where(T.id != keep)
        self.s.execute(query.values(revoked_at=now))
