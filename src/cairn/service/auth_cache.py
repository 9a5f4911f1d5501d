"""What a token stood for, remembered between requests while nothing it depends on changed.

Every authenticated request would otherwise spend a lookup of its token's row and
grants: a round trip or two with PostgreSQL, about 45 µs with SQLite. An entry holds the
token row and the grants read in one identity epoch (``store/metadata/identity_watch.py``,
``store/metadata/sqlite_watch.py``)
and is used only while nothing it depends on has moved since: any change to users,
groups, memberships, group grants or tokens, anywhere, moves the epoch; a change to one
user's own grants moves that user's mark (so a model's creation, which gives its creator
a grant, sends only the creator's tokens to be looked up again); and while changes cannot
be heard there is no epoch and nothing is remembered. What depends on the clock
(expiry) is checked on every use, remembered or not. Only tokens that passed are
remembered; a wrong one always costs its lookup (and counts against the caller's rate
limit as before).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cairn.domain.access import Grants, Scope
from cairn.store.metadata.database import Database

CAPACITY = 10_000  # tokens; on overflow everything is forgotten (rebuilt within a request each)


@dataclass(slots=True)
class Remembered:
    epoch: int  # changes that concern anyone, when it was looked up
    user_mark: int  # changes that concern its user alone, then
    row: Any  # the token row joined with its user (IdentityStore.token_by_hash)
    grants: Grants  # indexed (domain/access.py)
    last_used_at: int | None  # refreshed here when this process touches the token


class AuthCache:
    def __init__(self, db: Database) -> None:
        self._db = db  # its watch starts with the first authentication, not before
        self._entries: dict[str, Remembered] = {}
        self._guard = threading.Lock()

    def epoch(self) -> tuple[int, int] | None:
        """Read before looking a token up: what the lookup will be remembered under."""
        watch = self._db.identity_watch
        return None if watch is None else watch.epoch

    def get(self, digest: str) -> Remembered | None:
        watch = self._db.identity_watch
        epoch = None if watch is None else watch.epoch
        if watch is None or epoch is None:
            return None
        entry = self._entries.get(digest)
        if entry is None or entry.epoch != epoch[0]:
            return None
        if moot_grants(entry.row):
            return entry
        return entry if entry.user_mark == watch.user_mark(int(entry.row.user_id)) else None

    def put(self, digest: str, epoch: tuple[int, int] | None, row: Any, grants: Grants) -> None:
        watch = self._db.identity_watch
        if watch is None or epoch is None or epoch != watch.epoch:
            return  # something changed during the lookup: it may already be stale
        mark = watch.user_mark(int(row.user_id))
        with self._guard:
            if len(self._entries) >= CAPACITY:
                self._entries.clear()
            self._entries[digest] = Remembered(epoch[0], mark, row, grants, row.last_used_at)

    def touched(self, digest: str, now: int) -> None:
        """This process has just refreshed the token's ``last_used_at``."""
        entry = self._entries.get(digest)
        if entry is not None:
            entry.last_used_at = now


def moot_grants(row: Any) -> bool:
    """An administrator's admin-scoped token: its user's grants change nothing it may do
    (``IdentityService._authenticate`` does not even load them)."""
    return bool(row.is_admin) and row.scope == Scope.ADMIN.value
