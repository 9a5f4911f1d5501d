"""Identities and what they hold: users, service accounts, groups and grants.

This is administration, which is the instance ADMIN's (a model's MANAGE holder may grant
and revoke roles on that model); the secrets that prove an identity, and turning one
into an ``Actor``, are ``credentials``. Listings are plain JSON-shaped dicts: the API
returns them as they are, the clients hand them back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn.domain import names
from cairn.domain.access import Actor, Grant, Role, Scope, pattern_key
from cairn.domain.codec import format_time
from cairn.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service.base import ServiceBase
from cairn.service.credentials import PASSWORDS
from cairn.store.metadata.clock import optional_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.identity_store import IdentityStore
from cairn.store.metadata.models_store import ModelStore


def validate_password(password: object) -> str:
    if not isinstance(password, str) or not 12 <= len(password) <= 1024:
        raise InvalidParameter("a password must be 12 to 1024 characters long")
    # argon2 hashes the UTF-8 bytes: half a surrogate pair (JSON's \ud800) has none
    return names.validate_text("password", password, 1024)


def parse_subject(subject: str) -> tuple[str, str]:
    """``user:alice`` or ``group:risk-team`` (a bare name is a user)."""
    kind, _, name = subject.rpartition(":")
    kind = kind or "user"
    if kind not in ("user", "group"):
        raise InvalidParameter(f"subject must be user:NAME or group:NAME, not {subject!r}")
    return kind, names.validate_identity(kind, name)


class IdentityService(ServiceBase):
    def whoami(self, actor: Actor) -> dict[str, Any]:
        """The caller, their token's scope and what they hold (model grants by name)."""

        def run(s: Tx) -> tuple[Iterable[Grant], dict[int, str]]:
            held: Iterable[Grant] = actor.grants
            if actor.admin and actor.user_id is not None:  # authentication skips these
                held = IdentityStore(s).grants_of(actor.user_id)
            ids = sorted({g.model_id for g in held if g.model_id is not None})
            return held, ModelStore(s).names_by_ids(ids)

        held, model_names = self.db.read(run)
        return {
            "user": actor.name,
            "is_admin": actor.admin,
            "scope": actor.scope.value,
            "grants": [
                {
                    "role": g.role.name,
                    "model_id": g.model_id,
                    "model": None if g.model_id is None else model_names.get(g.model_id),
                    "pattern": g.pattern,
                }
                for g in held
            ],
        }

    # -- users ------------------------------------------------------------------------------
    def create_user(
        self,
        actor: Actor,
        name: str,
        *,
        password: str | None = None,
        service: bool = False,
        admin: bool = False,
    ) -> dict[str, Any]:
        self._require_admin(actor, "create_user")
        names.validate_identity("user", name)
        if password is not None and service:
            raise InvalidParameter("service accounts authenticate with tokens, not passwords")
        hashed = None if password is None else PASSWORDS.hash(validate_password(password))
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            store = IdentityStore(s)
            store.add_user(
                name,
                kind="service" if service else "user",
                password_hash=hashed,
                is_admin=admin,
                now=now,
                created_by=actor.name,
            )
            self._audit(s, actor, "user.create", target=name, after={"admin": admin})
            return _user_json(store.user(name), [])

        return self.db.write(run)

    def list_users(self, actor: Actor) -> list[dict[str, Any]]:
        self._require_admin(actor, "list_users")

        def run(s: Tx) -> list[dict[str, Any]]:
            store = IdentityStore(s)
            members: dict[str, list[str]] = {}
            for group, names_ in store.list_groups():
                for member in names_:
                    members.setdefault(member, []).append(group.name)
            return [_user_json(r, members.get(r.name, [])) for r in store.list_users()]

        return self.db.read(run)

    def update_user(
        self,
        actor: Actor,
        name: str,
        *,
        password: str | None = None,
        admin: bool | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change a password (your own, or anyone's as ADMIN), the admin flag or disable."""
        # the store finds ``name`` by its identity key: ALICE is alice's own account
        own_password_only = (
            admin is None and disabled is None and names.same_identity(name, actor.name)
        )
        if not own_password_only:
            self._require_admin(actor, "update_user")
        elif password is not None:
            # a password logs in with the scope a login gets: never more than this token has
            session = Scope.ADMIN if actor.is_admin else Scope.WRITE
            if not actor.scope.covers(session):
                raise PermissionDenied(
                    f"a {actor.scope.value} token cannot set a password (logging in with it "
                    f"would give a {session.value} session); use a {session.value} token",
                    denial={"action": "update_user"},
                )
        hashed = None if password is None else PASSWORDS.hash(validate_password(password))
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            store = IdentityStore(s)
            row = store.user(name)
            values: dict[str, Any] = {}
            if hashed is not None:
                if row.kind == "service":
                    raise InvalidParameter("service accounts have no password")
                values["password_hash"] = hashed
                # whoever logged in with the old password is logged out (the session that
                # sets the new one stays: its owner just proved who they are)
                keep = actor.token_id if row.id == actor.user_id else None
                store.revoke_user_tokens(row.id, now, kind="session", keep=keep)
            was_admin = row.is_admin and row.disabled_at is None
            stays_admin = (admin is None or admin) and not disabled
            if was_admin and not stays_admin and store.other_admins(row.id) == 0:
                raise Conflict(
                    f"{row.name!r} is the last enabled administrator: make another user "
                    "an administrator first (cairn users set NAME --admin)"
                )
            if admin is not None:
                values["is_admin"] = admin
            if disabled is not None:
                values["disabled_at"] = now if disabled else None
                if disabled:
                    store.revoke_user_tokens(row.id, now)
            if values:
                store.update_user(row.id, **values)
                shown = {k: v for k, v in values.items() if k != "password_hash"}
                if hashed is not None:
                    shown["password_changed"] = True
                self._audit(s, actor, "user.update", target=row.name, after=shown)
            return _user_json(store.user(name), [])

        return self.db.write(run)

    # -- groups -----------------------------------------------------------------------------
    def create_group(self, actor: Actor, name: str) -> dict[str, Any]:
        self._require_admin(actor, "create_group")
        names.validate_identity("group", name)
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            IdentityStore(s).add_group(name, now, actor.name)
            self._audit(s, actor, "group.create", target=name)
            return {"name": name, "members": []}

        return self.db.write(run)

    def delete_group(self, actor: Actor, name: str) -> None:
        self._require_admin(actor, "delete_group")

        def run(s: Tx) -> None:
            store = IdentityStore(s)
            store.delete_group(store.group(name).id)
            self._audit(s, actor, "group.delete", target=name)

        self.db.write(run)

    def set_membership(self, actor: Actor, group: str, user: str, *, member: bool) -> None:
        self._require_admin(actor, "add_group_member" if member else "remove_group_member")

        def run(s: Tx) -> None:
            store = IdentityStore(s)
            g, u = store.group(group), store.user(user)
            if member:
                store.add_member(g.id, u.id)
            elif not store.remove_member(g.id, u.id):
                raise NotFound(f"user {user!r} is not in group {group!r}")
            action = "group.add_member" if member else "group.remove_member"
            self._audit(s, actor, action, target=f"{g.name}:{u.name}")

        self.db.write(run)

    def list_groups(self, actor: Actor) -> list[dict[str, Any]]:
        self._require_admin(actor, "list_groups")
        return self.db.read(
            lambda s: [
                {"name": g.name, "members": members}
                for g, members in IdentityStore(s).list_groups()
            ]
        )

    # -- grants -----------------------------------------------------------------------------
    def grant(
        self,
        actor: Actor,
        subject: str,
        role: str | Role,
        *,
        model: str | None = None,
        pattern: str | None = None,
    ) -> dict[str, Any]:
        """Give ``subject`` a role on one model (MANAGE on it, or ADMIN) or a pattern (ADMIN)."""
        parsed = role if isinstance(role, Role) else Role.parse(role)
        return self._change_grant(actor, subject, parsed, model, pattern)

    def revoke(
        self, actor: Actor, subject: str, *, model: str | None = None, pattern: str | None = None
    ) -> None:
        self._change_grant(actor, subject, None, model, pattern)

    def _change_grant(
        self,
        actor: Actor,
        subject: str,
        role: Role | None,
        model: str | None,
        pattern: str | None,
    ) -> dict[str, Any]:
        kind, who = parse_subject(subject)
        if (model is None) == (pattern is None):
            raise InvalidParameter("give exactly one of model or pattern")
        key = None if pattern is None else pattern_key(pattern)
        action = "grant" if role is not None else "revoke"
        if model is not None:
            names.validate_model_name(model)
        else:
            self._require_admin(actor, f"{action}_pattern")
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            store = IdentityStore(s)
            target = None
            if model is not None:  # authorize first: who exists is not for everyone to learn
                target = self._model(s, actor, model, Role.MANAGE, action)
            row = store.group(who) if kind == "group" else store.user(who)
            model_id = None if target is None else target.id
            if role is None:
                if not store.revoke_grant(kind, row.id, model_id=model_id, pattern=key):
                    raise NotFound(f"{subject} holds no grant on {model or pattern!r}")
            else:
                store.put_grant(
                    kind,
                    row.id,
                    role,
                    model_id=model_id,
                    pattern=key,
                    now=now,
                    created_by=actor.name,
                )
            self._audit(
                s,
                actor,
                f"grant.{'set' if role else 'revoke'}",
                model=target,
                target=f"{kind}:{row.name}" + ("" if key is None else f" on {key}"),
                after=None if role is None else {"role": role.name},
            )
            return {
                "subject": f"{kind}:{row.name}",
                "model": None if target is None else target.name,
                "pattern": key,
                "role": None if role is None else role.name,
            }

        return self.db.write(run)

    def list_grants(
        self, actor: Actor, *, model: str | None = None, subject: str | None = None
    ) -> list[dict[str, Any]]:
        """A model's grants (MANAGE on it), or everyone's / one subject's (ADMIN)."""
        if model is None:
            self._require_admin(actor, "list_grants")

        def run(s: Tx) -> list[dict[str, Any]]:
            store = IdentityStore(s)
            model_id = None
            if model is not None:
                model_id = self._model(s, actor, model, Role.MANAGE, "list_grants").id
            who = None
            if subject is not None:
                kind, name = parse_subject(subject)
                row = store.group(name) if kind == "group" else store.user(name)
                who = (kind, int(row.id))
            return [_grant_json(r) for r in store.list_grants(model_id=model_id, subject=who)]

        return self.db.read(run)


def _user_json(row: Any, groups: list[str]) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "is_admin": bool(row.is_admin),
        "has_password": row.password_hash is not None,
        "created_at": format_time(optional_datetime(row.created_at)),
        "created_by": row.created_by,
        "disabled": row.disabled_at is not None,
        "groups": groups,
    }


def _grant_json(row: Any) -> dict[str, Any]:
    who = row.user_name if row.subject_kind == "user" else row.group_name
    return {
        "subject": f"{row.subject_kind}:{who}",
        "model": row.model,
        "pattern": row.pattern,
        "role": row.role,
        "created_at": format_time(optional_datetime(row.created_at)),
        "created_by": row.created_by,
    }
