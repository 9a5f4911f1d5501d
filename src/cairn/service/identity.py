"""Identities and what they hold: users, service accounts, groups, grants, tokens, sessions.

Authentication turns a bearer secret into an ``Actor`` (user, scope, grants); everything
else here is administration, which is the instance ADMIN's (a model's MANAGE holder may
grant and revoke roles on that model). Listings are plain JSON-shaped dicts: the API
returns them as they are, the clients hand them back unchanged.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cairn.domain import names, tokens
from cairn.domain.access import Actor, Grant, Grants, Role, Scope, pattern_key
from cairn.domain.codec import format_time
from cairn.errors import InvalidParameter, NotFound, PermissionDenied, Unauthenticated
from cairn.service.auth_cache import moot_grants
from cairn.service.base import ServiceBase
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.identity_store import IdentityStore
from cairn.store.metadata.models_store import ModelStore

US = 1_000_000
SESSION_SECONDS = 12 * 3600
TOUCH_EVERY_S = 300  # last_used_at is refreshed at most this often (a write per request is not)
MAX_TOKEN_DAYS = 3650
_IDENTITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("not a password")  # equal work for unknown users


def validate_identity(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _IDENTITY_RE.fullmatch(name):
        raise InvalidParameter(
            f"{kind} name must be 1-128 characters of letters, digits, '.', '_', '@', '-', "
            f"starting with a letter or digit; got {name!r}"
        )
    return name


def validate_password(password: object) -> str:
    if not isinstance(password, str) or not 12 <= len(password) <= 1024:
        raise InvalidParameter("a password must be 12 to 1024 characters long")
    return password


def parse_subject(subject: str) -> tuple[str, str]:
    """``user:alice`` or ``group:risk-team`` (a bare name is a user)."""
    kind, _, name = subject.rpartition(":")
    kind = kind or "user"
    if kind not in ("user", "group"):
        raise InvalidParameter(f"subject must be user:NAME or group:NAME, not {subject!r}")
    return kind, validate_identity(kind, name)


def _check_token(row: Any, digest: str, kind: str, now: int) -> None:
    """Refuse a token row that does not (or no longer) authenticate a ``kind`` caller."""
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        raise Unauthenticated("invalid token")
    if row.kind != kind:
        raise Unauthenticated("invalid token")
    if row.revoked_at is not None:
        raise Unauthenticated("token revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("token expired")
    if row.disabled_at is not None:
        raise Unauthenticated("account disabled")


class IdentityService(ServiceBase):
    # -- authentication -------------------------------------------------------------------
    def authenticate(
        self, secret: str, *, request_id: str | None = None, client: str | None = None
    ) -> Actor:
        """The actor a bearer secret (API token or session) stands for, or Unauthenticated."""
        return self._authenticate(secret, "api", request_id=request_id, client=client)

    def authenticate_session(
        self, secret: str, csrf: str | None, *, request_id: str | None, client: str | None
    ) -> Actor:
        """A login session; ``csrf`` is checked when given (unsafe methods must give it)."""
        return self._authenticate(
            secret, "session", csrf=csrf, request_id=request_id, client=client
        )

    def _authenticate(
        self,
        secret: str,
        kind: str,
        *,
        csrf: str | None = None,
        request_id: str | None,
        client: str | None,
    ) -> Actor:
        if not tokens.well_formed(secret):
            raise Unauthenticated("malformed token")
        digest = tokens.token_hash(secret)
        now = self.clock()
        remembered = self._auth_cache.get(digest)
        if remembered is not None:
            row, held, last_used_at = remembered.row, remembered.grants, remembered.last_used_at
            _check_token(row, digest, kind, now)
        else:
            epoch = self._auth_cache.epoch()  # before the lookup: see auth_cache.py

            def run(s: Tx) -> tuple[Any, tuple[Grant, ...]]:
                store = IdentityStore(s)
                row = store.token_by_hash(digest)
                _check_token(row, digest, kind, now)  # before the grants are loaded
                if moot_grants(row):
                    return row, ()  # an administrator's admin token: every grant is moot
                return row, store.grants_of(row.user_id)

            row, rows = self.db.read(run)
            held = Grants(rows, holder=row.user_id)  # indexed once, remembered indexed
            last_used_at = row.last_used_at
            self._auth_cache.put(digest, epoch, row, held)
        if (
            kind == "session"
            and csrf is not None
            and not (row.csrf_hash and hmac.compare_digest(row.csrf_hash, tokens.token_hash(csrf)))
        ):
            raise PermissionDenied("missing or wrong CSRF token (X-CSRF-Token header)")
        if last_used_at is None or now - last_used_at > TOUCH_EVERY_S * US:
            self.db.write(lambda s: IdentityStore(s).touch_token(row.id, now))
            self._auth_cache.touched(digest, now)
        return Actor(
            row.user_name,
            is_admin=bool(row.is_admin),
            user_id=int(row.user_id),
            scope=Scope(row.scope),
            grants=held,
            request_id=request_id,
            client=client,
        )

    def login(self, name: str, password: str) -> dict[str, Any]:
        """Password login for the UI: a session secret and its CSRF token (shown once)."""
        now = self.clock()
        row = self.db.read(lambda s: IdentityStore(s).find_user(name)) if name else None
        stored = row.password_hash if row is not None else None
        try:
            _HASHER.verify(stored or _DUMMY_HASH, password)
            ok = stored is not None and row is not None and row.disabled_at is None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            raise Unauthenticated("wrong user name or password")
        secret, csrf = tokens.new_token(), tokens.new_token()
        scope = Scope.ADMIN if row.is_admin else Scope.WRITE
        self.db.write(
            lambda s: IdentityStore(s).add_token(
                row.id,
                kind="session",
                name="login",
                prefix=tokens.display_prefix(secret),
                secret_hash=tokens.token_hash(secret),
                scope=scope.value,
                now=now,
                expires_at=now + SESSION_SECONDS * US,
                csrf_hash=tokens.token_hash(csrf),
            )
        )
        return {
            "session": secret,
            "csrf_token": csrf,
            "user": row.name,
            "expires_in": SESSION_SECONDS,
        }

    def logout(self, secret: str) -> None:
        digest = tokens.token_hash(secret)
        now = self.clock()

        def run(s: Tx) -> None:
            store = IdentityStore(s)
            row = store.token_by_hash(digest)
            if row is not None and row.kind == "session":
                store.revoke_token(row.id, now)

        self.db.write(run)

    def bootstrap(self, secret: str | None = None) -> str | None:
        """On an empty registry: create the ``admin`` user and its token.

        Returns the token (``secret`` if given, else a new one), or None when users exist.
        """
        if secret is not None and not tokens.well_formed(secret):
            raise InvalidParameter(
                f"CAIRN_BOOTSTRAP_TOKEN must be a cairn_ token or at least "
                f"{tokens.MIN_FOREIGN_LENGTH} printable characters without spaces"
            )
        token = secret or tokens.new_token()
        now = self.clock()

        def run(s: Tx) -> str | None:
            store = IdentityStore(s)
            if store.has_users():
                return None
            user_id = store.add_user(
                "admin", kind="user", password_hash=None, is_admin=True, now=now, created_by=None
            )
            store.add_token(
                user_id,
                kind="api",
                name="bootstrap",
                prefix=tokens.display_prefix(token),
                secret_hash=tokens.token_hash(token),
                scope=Scope.ADMIN.value,
                now=now,
                expires_at=None,
            )
            return token

        return self.db.write(run)

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
        validate_identity("user", name)
        if password is not None and service:
            raise InvalidParameter("service accounts authenticate with tokens, not passwords")
        hashed = None if password is None else _HASHER.hash(validate_password(password))
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
        own_password_only = admin is None and disabled is None and name == actor.name
        if not own_password_only:
            self._require_admin(actor, "update_user")
        elif password is not None:
            # a password logs in with the scope a login gets: never more than this token has
            session = Scope.ADMIN if actor.is_admin else Scope.WRITE
            if _SCOPE_RANK[actor.scope] < _SCOPE_RANK[session]:
                raise PermissionDenied(
                    f"a {actor.scope.value} token cannot set a password (logging in with it "
                    f"would give a {session.value} session); use a {session.value} token",
                    denial={"action": "update_user"},
                )
        hashed = None if password is None else _HASHER.hash(validate_password(password))
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            store = IdentityStore(s)
            row = store.user(name)
            values: dict[str, Any] = {}
            if hashed is not None:
                if row.kind == "service":
                    raise InvalidParameter("service accounts have no password")
                values["password_hash"] = hashed
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
        validate_identity("group", name)
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
        self._require_admin(actor, "set_membership")

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

    # -- tokens -----------------------------------------------------------------------------
    def create_token(
        self,
        actor: Actor,
        *,
        name: str = "",
        scope: str | Scope = Scope.READ,
        expires_days: int | None = 90,
        user: str | None = None,
    ) -> dict[str, Any]:
        """A new API token, shown once. ``user``: for another account (ADMIN only).

        A token never gets more than the token that created it: a read token mints read
        tokens only.
        """
        wanted = Scope.parse(scope)
        names.validate_text("token name", name, 256, allow_newlines=False)
        if actor.user_id is None:
            raise PermissionDenied("tokens belong to users; this caller is not one")
        if _SCOPE_RANK[wanted] > _SCOPE_RANK[actor.scope]:
            raise PermissionDenied(
                f"a {actor.scope.value} token cannot create a {wanted.value} token"
            )
        if user is not None and user != actor.name:
            self._require_admin(actor, "create_token_for_user")
        if expires_days is not None and (
            isinstance(expires_days, bool) or not 1 <= expires_days <= MAX_TOKEN_DAYS
        ):
            raise InvalidParameter(f"expires_days must be between 1 and {MAX_TOKEN_DAYS}")
        secret = tokens.new_token()
        now = self.clock()

        def run(s: Tx) -> dict[str, Any]:
            store = IdentityStore(s)
            owner = store.user(user) if user is not None else store.user_by_id(actor.user_id or 0)
            if owner is None or owner.disabled_at is not None:
                raise InvalidParameter("the token's user does not exist or is disabled")
            expires = None if expires_days is None else now + expires_days * 86400 * US
            token_id = store.add_token(
                owner.id,
                kind="api",
                name=name,
                prefix=tokens.display_prefix(secret),
                secret_hash=tokens.token_hash(secret),
                scope=wanted.value,
                now=now,
                expires_at=expires,
            )
            self._audit(
                s,
                actor,
                "token.create",
                target=f"{owner.name}:{tokens.display_prefix(secret)}",
                after={"scope": wanted.value, "expires_days": expires_days, "name": name},
            )
            info = store.token(token_id)
            assert info is not None
            return {**_token_json(info), "token": secret}

        return self.db.write(run)

    def list_tokens(self, actor: Actor, *, all_users: bool = False) -> list[dict[str, Any]]:
        if all_users:
            self._require_admin(actor, "list_tokens")
        user_id = None if all_users else actor.user_id
        if user_id is None and not all_users:
            return []
        return self.db.read(
            lambda s: [_token_json(r) for r in IdentityStore(s).list_tokens(user_id)]
        )

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        if isinstance(token_id, bool) or not 1 <= token_id < 1 << 63:  # 64-bit ids
            raise NotFound(f"token {token_id} does not exist")
        now = self.clock()

        def run(s: Tx) -> None:
            store = IdentityStore(s)
            row = store.token(token_id)
            if (
                row is None
                or row.kind != "api"
                or (row.user_id != actor.user_id and not actor.admin)
            ):
                raise NotFound(f"token {token_id} does not exist")
            store.revoke_token(row.id, now)
            self._audit(s, actor, "token.revoke", target=f"{row.user_name}:{row.prefix}")

        self.db.write(run)


_SCOPE_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}


def _time(value: int | None) -> str | None:
    return None if value is None else format_time(to_datetime(value))


def _user_json(row: Any, groups: list[str]) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "is_admin": bool(row.is_admin),
        "has_password": row.password_hash is not None,
        "created_at": _time(row.created_at),
        "created_by": row.created_by,
        "disabled": row.disabled_at is not None,
        "groups": groups,
    }


def _token_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "user": row.user_name,
        "name": row.name,
        "prefix": row.prefix,
        "scope": row.scope,
        "created_at": _time(row.created_at),
        "expires_at": _time(row.expires_at),
        "last_used_at": _time(row.last_used_at),
        "revoked": row.revoked_at is not None,
    }


def _grant_json(row: Any) -> dict[str, Any]:
    who = row.user_name if row.subject_kind == "user" else row.group_name
    return {
        "subject": f"{row.subject_kind}:{who}",
        "model": row.model,
        "pattern": row.pattern,
        "role": row.role,
        "created_at": _time(row.created_at),
        "created_by": row.created_by,
    }
