"""Credentials: turning a bearer secret into an ``Actor``, and the secrets themselves
(API tokens, login sessions, the bootstrap admin's token).

Authentication is the hot path of every request: a remembered token (``auth_cache``)
costs no query. A token never gets more than the token that created it.
"""

from __future__ import annotations

import hmac
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cairn.domain import names, tokens
from cairn.domain.access import SYSTEM, Actor, Grant, Grants, Scope
from cairn.domain.codec import format_time, require_int
from cairn.errors import InvalidParameter, NotFound, PermissionDenied, Unauthenticated, Unavailable
from cairn.service.auth_cache import moot_grants
from cairn.service.base import ServiceBase
from cairn.store.metadata.clock import optional_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.identity_store import IdentityStore

US = 1_000_000
SESSION_SECONDS = 12 * 3600
TOUCH_EVERY_S = 300  # last_used_at is refreshed at most this often (a write per request is not)
_CSRF_REFUSED = "missing or wrong CSRF token"
PASSWORDS = PasswordHasher()  # argon2id, the library's current recommended parameters
# Verified in place of an unknown user's hash, for equal work. A literal: hashing it at
# import took 64 MiB and ~0.1 s in every server worker and CLI call. Its parameters are
# PASSWORDS' (tests/security/test_sessions.py checks they still are).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$xPCYSba/FRfO3a3NMGMBeQ$"
    "+KjKVoLx9jFArdwlcmK4uUUqW5ooHrwhZOdNVIEYiwk"
)


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


class CredentialsService(ServiceBase):
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
            raise PermissionDenied(
                f"{_CSRF_REFUSED} (X-CSRF-Token header)",
                # on record as a refused authentication: by nobody known (a forged
                # cross-site request is not the user's), naming whose session it was
                denial={
                    "action": "authenticate",
                    "target": tokens.display_prefix(secret),
                    "user": row.user_name,
                    "reason": _CSRF_REFUSED,
                },
            )
        if last_used_at is None or now - last_used_at > TOUCH_EVERY_S * US:
            try:
                self.db.write(lambda s: IdentityStore(s).touch_token(row.id, now))
            except Unavailable:
                # a database that takes no writes (a standby after a failover) still serves
                # reads: when the token was last used is recorded once it takes them again
                pass
            else:
                self._auth_cache.touched(digest, now)
        return Actor(
            row.user_name,
            is_admin=bool(row.is_admin),
            user_id=int(row.user_id),
            scope=Scope(row.scope),
            grants=held,
            request_id=request_id,
            client=client,
            token_id=int(row.id),
        )

    def login(
        self,
        name: str,
        password: str,
        *,
        request_id: str | None = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Password login for the UI: a session secret and its CSRF token (shown once),
        audited as ``session.create`` by the user; a refused one carries its ``login``
        denial, which names the account only if there is one by that name)."""
        now = self.clock()
        row = self.db.read(lambda s: IdentityStore(s).find_user(name)) if name else None
        stored = row.password_hash if row is not None else None
        try:
            PASSWORDS.verify(stored or DUMMY_HASH, password)
            ok = stored is not None and row is not None and row.disabled_at is None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            # the audit log names an account only: a name no account has may be a password
            # typed into the wrong field, and is not kept
            known = {"target": row.name} if row is not None else {"unknown_user": True}
            raise Unauthenticated(
                "wrong user name or password", denial={"action": "login", **known}
            )
        secret, csrf = tokens.new_token(), tokens.new_token()
        scope = Scope.ADMIN if row.is_admin else Scope.WRITE
        user = Actor(row.name, user_id=int(row.id), request_id=request_id, client=client)

        def run(s: Tx) -> None:
            IdentityStore(s).add_token(
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
            after = {"scope": scope.value, "expires_in": SESSION_SECONDS}
            self._audit(s, user, "session.create", target=row.name, after=after)

        self.db.write(run)
        return {
            "session": secret,
            "csrf_token": csrf,
            "user": row.name,
            "expires_in": SESSION_SECONDS,
        }

    def logout(self, actor: Actor, secret: str) -> None:
        """End the login session ``secret`` (audited as ``session.revoke``)."""
        digest = tokens.token_hash(secret)
        now = self.clock()

        def run(s: Tx) -> None:
            store = IdentityStore(s)
            row = store.token_by_hash(digest)
            if row is not None and row.kind == "session" and row.revoked_at is None:
                store.revoke_token(row.id, now)
                self._audit(s, actor, "session.revoke", target=row.user_name)

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
            self._audit(s, SYSTEM, "user.create", target="admin", after={"admin": True})
            self._audit(
                s,
                SYSTEM,
                "token.create",
                target=f"admin:{tokens.display_prefix(token)}",
                after={"scope": Scope.ADMIN.value, "expires_days": None, "name": "bootstrap"},
            )
            return token

        return self.db.write(run)

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
        # refused like any unauthorized call: on record (an attempt to widen a token)
        denial = {"action": "token.create", "scope": wanted.value}
        if actor.user_id is None:
            raise PermissionDenied("tokens belong to users; this caller is not one", denial=denial)
        if not actor.scope.covers(wanted):
            raise PermissionDenied(
                f"a {actor.scope.value} token cannot create a {wanted.value} token",
                denial=denial,
            )
        if user is not None and not names.same_identity(user, actor.name):
            self._require_admin(actor, "create_token_for_user")
        if expires_days is not None and (
            not 1 <= require_int("expires_days", expires_days) <= tokens.MAX_TOKEN_DAYS
        ):
            raise InvalidParameter(f"expires_days must be between 1 and {tokens.MAX_TOKEN_DAYS}")
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
        if not 1 <= require_int("token id", token_id) < 1 << 63:  # 64-bit ids
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
            shown = tokens.display_prefix(row.prefix)  # stored before external ones were hidden
            self._audit(s, actor, "token.revoke", target=f"{row.user_name}:{shown}")

        self.db.write(run)


def _token_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "user": row.user_name,
        "name": row.name,
        "prefix": tokens.display_prefix(row.prefix),
        "scope": row.scope,
        "created_at": format_time(optional_datetime(row.created_at)),
        "expires_at": format_time(optional_datetime(row.expires_at)),
        "last_used_at": format_time(optional_datetime(row.last_used_at)),
        "revoked": row.revoked_at is not None,
    }
