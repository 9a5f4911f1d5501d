"""Remembered authentication (``service/auth_cache.py``) never outlives a change.

Each server process remembers what a token stood for while no change to users, groups,
grants or tokens can have happened unheard (PostgreSQL: notifications; SQLite: counters
kept by triggers). On both backends: a revocation, a disabled account or a withdrawn
grant takes effect at once in the process that made it and, in another process (a
second service on the same database), as soon as PostgreSQL delivers the notification
(SQLite: at once); so does a change made outside Cairn (SQL). Expiry is checked on every
use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cairn.domain import tokens
from cairn.domain.access import Actor, Role
from cairn.errors import NotFound, Unauthenticated
from cairn.service.registry import RegistryService
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.database import Database

HEARD_WITHIN_S = 5.0
ADMIN_SECRET = "cairn-auth-cache-admin-token-0123456789abcdef"


@pytest.fixture
def other(db_url: str, blob_root: Path) -> Iterator[RegistryService]:
    """Another server process on the same database: its own connections, its own memory."""
    db = Database(db_url)
    yield RegistryService(db, LocalBlobStore(blob_root))
    db.dispose()


@pytest.fixture
def admin(service: RegistryService) -> Actor:
    service.bootstrap(ADMIN_SECRET)
    return service.authenticate(ADMIN_SECRET)


@pytest.fixture
def alice(service: RegistryService, admin: Actor) -> str:
    """A read-only user's token; ``m`` exists and alice holds READ on it."""
    service.create_user(admin, "alice")
    service.create_model(admin, "m")
    service.grant(admin, "user:alice", Role.READ, model="m")
    return str(service.create_token(admin, user="alice", scope="read")["token"])


def _remembers(svc: RegistryService, secret: str) -> None:
    """Authenticate until the answer is remembered (PostgreSQL: once the watch listens)."""
    deadline = time.monotonic() + HEARD_WITHIN_S
    while True:
        svc.authenticate(secret)
        if svc._auth_cache.get(_digest(secret)) is not None:
            return
        assert time.monotonic() < deadline, "the identity watch never started listening"
        time.sleep(0.02)


def _digest(secret: str) -> str:
    return tokens.token_hash(secret)


def _eventually(check: Callable[[], Any]) -> None:
    """``check`` passes within the time a notification takes (it fails at first, at most)."""
    deadline = time.monotonic() + HEARD_WITHIN_S
    while True:
        try:
            check()
            return
        except (AssertionError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _refused(svc: RegistryService, secret: str) -> None:
    with pytest.raises(Unauthenticated):
        svc.authenticate(secret)


def _sql(db_url: str, statement: str) -> None:
    """Run ``statement`` in a transaction of its own, outside Cairn (a script, psql)."""
    outside = create_engine(db_url, poolclass=NullPool)
    try:
        with outside.begin() as conn:
            conn.execute(text(statement))
    finally:
        outside.dispose()


def _token_id(service: RegistryService, admin: Actor, user: str) -> int:
    (token,) = [t for t in service.list_tokens(admin, all_users=True) if t["user"] == user]
    return int(token["id"])


def test_a_token_that_passed_is_remembered(service: RegistryService, alice: str) -> None:
    first = service.authenticate(alice)
    _remembers(service, alice)
    again = service.authenticate(alice)
    assert (again.name, again.grants) == (first.name, first.grants)


def test_a_wrong_token_is_never_remembered(service: RegistryService, alice: str) -> None:
    wrong = alice[:-4] + ("aaaa" if not alice.endswith("aaaa") else "bbbb")
    for _ in range(2):
        _refused(service, wrong)
    assert service._auth_cache.get(_digest(wrong)) is None


def test_a_revocation_is_at_once_here_and_soon_elsewhere(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    _remembers(service, alice)
    _remembers(other, alice)
    service.revoke_token(admin, _token_id(service, admin, "alice"))
    _refused(service, alice)  # the process that revoked it: at once
    _eventually(lambda: _refused(other, alice))


def test_a_disabled_account_is_refused_everywhere(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    _remembers(service, alice)
    _remembers(other, alice)
    other.update_user(admin, "alice", disabled=True)
    _refused(other, alice)
    _eventually(lambda: _refused(service, alice))


def test_a_withdrawn_grant_is_withdrawn_everywhere(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    _remembers(other, alice)
    assert other.get_model(other.authenticate(alice), "m").name == "m"
    service.revoke(admin, "user:alice", model="m")

    def cannot_read() -> None:
        with pytest.raises(NotFound):
            other.get_model(other.authenticate(alice), "m")

    _eventually(cannot_read)


def test_a_change_made_with_sql_is_heard(service: RegistryService, db_url: str, alice: str) -> None:
    _remembers(service, alice)
    _sql(db_url, "UPDATE tokens SET revoked_at = 1 WHERE revoked_at IS NULL")
    _eventually(lambda: _refused(service, alice))


def test_expiry_is_checked_on_every_use(
    service: RegistryService, admin: Actor, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = service.create_token(admin, user="alice", scope="read", expires_days=1)["token"]
    _remembers(service, short)
    later = service.clock() + 2 * 86_400 * 1_000_000
    monkeypatch.setattr(service, "clock", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        service.authenticate(short)


def test_use_alone_does_not_flush_what_is_remembered(
    service: RegistryService, db_url: str, alice: str
) -> None:
    """Refreshing a token's ``last_used_at`` (every few minutes of use) is no change."""
    _remembers(service, alice)
    _sql(db_url, "UPDATE tokens SET last_used_at = 2")
    time.sleep(0.3)  # a notification, had one been sent, would have arrived
    assert service._auth_cache.get(_digest(alice)) is not None


def test_what_was_remembered_before_the_watch_went_deaf_is_forgotten(
    service: RegistryService, db_url: str, alice: str
) -> None:
    """A change made while the listening connection is down is never missed: reconnecting
    moves the epoch."""
    if service.db.dialect == "sqlite":
        return  # no connection to lose: the counters are read from the database file
    _remembers(service, alice)
    _sql(
        db_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN cairn_identity%' AND datname = current_database()",
    )
    _sql(db_url, "UPDATE tokens SET revoked_at = 1 WHERE revoked_at IS NULL")
    _eventually(lambda: _refused(service, alice))


def test_nothing_is_remembered_while_a_trigger_is_disabled(
    db_url: str, blob_root: Path, alice: str
) -> None:
    """The watch checks that every trigger that announces (PostgreSQL) or counts (SQLite)
    changes is there and enabled before it remembers anything."""
    if db_url.startswith("postgresql"):
        off = "ALTER TABLE grants DISABLE TRIGGER cairn_identity_changed"
        on = "ALTER TABLE grants ENABLE TRIGGER cairn_identity_changed"
    else:  # SQLite triggers cannot be disabled, only dropped
        off = "DROP TRIGGER cairn_identity_grants_delete_user"
        on = _sqlite_trigger(db_url, "cairn_identity_grants_delete_user")
    fresh = Database(db_url)
    _sql(db_url, off)
    try:
        service = RegistryService(fresh, LocalBlobStore(blob_root))
        for _ in range(20):
            service.authenticate(alice)
            assert service._auth_cache.get(_digest(alice)) is None
            time.sleep(0.02)
    finally:
        _sql(db_url, on)
        fresh.dispose()


def test_a_trigger_dropped_later_stops_the_remembering(
    service: RegistryService, db_url: str, alice: str
) -> None:
    if not db_url.startswith("sqlite"):
        return  # PostgreSQL checks at each (re)connection of its listener
    _remembers(service, alice)
    definition = _sqlite_trigger(db_url, "cairn_identity_tokens_update")
    _sql(db_url, "DROP TRIGGER cairn_identity_tokens_update")
    try:
        service.authenticate(alice)
        assert service._auth_cache.get(_digest(alice)) is None
        _sql(db_url, "UPDATE tokens SET revoked_at = 1 WHERE revoked_at IS NULL")  # uncounted
        _refused(service, alice)
    finally:
        _sql(db_url, definition)


def _sqlite_trigger(db_url: str, name: str) -> str:
    outside = create_engine(db_url, poolclass=NullPool)
    try:
        with outside.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                    {"n": name},
                ).scalar_one()
            )
    finally:
        outside.dispose()


def test_another_database_of_this_process_forgets_at_once(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    """Two services of one process (two local-mode clients, say) do not wait for the
    notification: a change committed by either is counted by both at once."""
    _remembers(service, alice)
    _remembers(other, alice)
    service.revoke(admin, "user:alice", model="m")
    with pytest.raises(NotFound):
        other.get_model(other.authenticate(alice), "m")


def _remembered(svc: RegistryService, secret: str) -> bool:
    return svc._auth_cache.get(_digest(secret)) is not None


def test_a_grant_of_one_user_forgets_that_user_alone(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    """A model's creation gives its creator a grant: that must not send every caller's
    token to be looked up again, only the creator's, here and in other processes."""
    service.create_user(admin, "bob")
    service.grant(admin, "user:bob", Role.WRITE, pattern="team.*")
    bob_secret = str(service.create_token(admin, user="bob", scope="write")["token"])
    for svc in (service, other):
        _remembers(svc, alice)
        _remembers(svc, bob_secret)
    bob = service.authenticate(bob_secret)
    service.create_model(bob, "team.fraud")  # bob's creator grant
    assert not _remembered(service, bob_secret)  # here: at once
    assert _remembered(service, alice)
    _eventually(lambda: _assert(not _remembered(other, bob_secret)))
    assert _remembered(other, alice)
    # and bob's next lookup carries the new grant, everywhere
    for svc in (service, other):
        fresh = svc.authenticate(bob_secret)
        assert any(g.model_id is not None for g in fresh.grants), fresh.grants


def test_an_administrators_own_grants_change_nothing_it_remembers(
    service: RegistryService, admin: Actor
) -> None:
    """An admin-scoped administrator's grants are moot: creating a model (a creator
    grant) keeps its token remembered."""
    _remembers(service, ADMIN_SECRET)
    service.create_model(admin, "made-by-admin")
    assert _remembered(service, ADMIN_SECRET)
    grants = service.list_grants(admin, subject="user:admin")
    assert [g["model"] for g in grants] == ["made-by-admin"]


def test_a_group_grant_forgets_everyone(
    service: RegistryService, other: RegistryService, admin: Actor, alice: str
) -> None:
    service.create_group(admin, "readers")
    _remembers(other, alice)
    service.grant(admin, "group:readers", Role.READ, model="m")
    _eventually(lambda: _assert(not _remembered(other, alice)))


def test_a_user_grant_changed_with_sql_is_heard(
    service: RegistryService, db_url: str, alice: str
) -> None:
    _remembers(service, alice)
    _sql(db_url, "DELETE FROM grants WHERE subject_kind = 'user'")

    def cannot_read() -> None:
        with pytest.raises(NotFound):
            service.get_model(service.authenticate(alice), "m")

    _eventually(cannot_read)


def _assert(condition: bool) -> None:
    assert condition


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_watch_listens_with_connection_options_in_the_url(
    db_url: str, blob_root: Path, alice: str
) -> None:
    """A backend URL's query (here ``options`` with a space, percent-encoded) reaches the
    listening connection as it reaches every other: the watch must not mangle it."""
    db = Database(db_url + "?options=-c%20statement_timeout%3D60000&application_name=cairn%20x")
    try:
        svc = RegistryService(db, LocalBlobStore(blob_root))
        _remembers(svc, alice)
    finally:
        db.dispose()
