"""What a token stood for, remembered between requests while nothing it depends on changed.

With PostgreSQL every authenticated request would otherwise spend a round trip (two for
a caller who is not an administrator) on its token's row and grants. An entry holds the
token row and the grants read in one identity epoch (``store/metadata/identity_watch.py``)
and is used only in that same epoch: any change to users, groups, memberships, grants or
tokens, anywhere, moves the epoch, and while changes cannot be heard there is no epoch
and nothing is remembered. What depends on the clock (expiry) is checked on every use,
remembered or not. Only tokens that passed are remembered; a wrong one always costs its
lookup (and counts against the caller's rate limit as before).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cairn.domain.access import Grant
from cairn.store.metadata.database import Database

CAPACITY = 10_000  # tokens; on overflow everything is forgotten (rebuilt within a request each)


@dataclass(slots=True)
class Remembered:
    epoch: int
    row: Any  # the token row joined with its user (IdentityStore.token_by_hash)
    grants: tuple[Grant, ...]
    last_used_at: int | None  # refreshed here when this process touches the token


class AuthCache:
    def __init__(self, db: Database) -> None:
        self._db = db  # its watch starts with the first authentication, not before
        self._entries: dict[str, Remembered] = {}
        self._guard = threading.Lock()

    def epoch(self) -> int | None:
        """Read before looking a token up: what the lookup will be remembered under."""
        watch = self._db.identity_watch
        return None if watch is None else watch.epoch

    def get(self, digest: str) -> Remembered | None:
        epoch = self.epoch()
        if epoch is None:
            return None
        entry = self._entries.get(digest)
        return entry if entry is not None and entry.epoch == epoch else None

    def put(self, digest: str, epoch: int | None, row: Any, grants: tuple[Grant, ...]) -> None:
        if epoch is None or epoch != self.epoch():
            return  # something changed during the lookup: it may already be stale
        with self._guard:
            if len(self._entries) >= CAPACITY:
                self._entries.clear()
            self._entries[digest] = Remembered(epoch, row, grants, row.last_used_at)

    def touched(self, digest: str, now: int) -> None:
        """This process has just refreshed the token's ``last_used_at``."""
        entry = self._entries.get(digest)
        if entry is not None:
            entry.last_used_at = now
