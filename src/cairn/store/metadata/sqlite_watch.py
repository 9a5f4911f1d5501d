"""Know that users, groups, grants or tokens changed, in every process, with SQLite.

The SQLite counterpart of ``identity_watch.IdentityWatch`` (same ``epoch`` and
``user_mark``; the module docstring there says what they mean to ``AuthCache``).
Triggers count every change in ``identity_changes`` (migration 0007), whoever commits
it: a Cairn process, a script, the ``sqlite3`` shell. Reading the counters on every
request would cost a query; instead a connection of the watch's own asks SQLite's
``PRAGMA data_version``, which moves when any other connection, of any process, has
committed anything, at the price of reading a few bytes of the shared WAL index (about a
microsecond). Only then are the counters read again, with the schema's version, in one
statement: one read transaction, as of one moment, where each statement would take and
drop its own lock on the WAL index (a version create made 10 ``fcntl`` calls instead of
12). So a change is seen by the next request of every process after its commit, with no
delay at all.

Fail-safe: the epoch is ``None`` (nothing is remembered) while the database lacks one of
the triggers, checked at start and whenever the schema changed, or when the counters
cannot be read.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

TRIGGER_PREFIX = "cairn_identity_"
TRIGGERS = 17  # migration 0007
# one snapshot: the versions and the counters as of the same moment
COUNTERS = (
    "SELECT (SELECT data_version FROM pragma_data_version),"
    " (SELECT schema_version FROM pragma_schema_version),"
    " (SELECT n FROM identity_changes WHERE scope = 'all'),"
    " (SELECT n FROM identity_changes WHERE scope = 'users')"
)


class SqliteIdentityWatch:
    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._guard = threading.Lock()
        self._data_version: int | None = None  # as of the counters read last
        self._schema_version: int | None = None  # as of the last trigger check
        self._epoch: tuple[int, int] | None = None
        self._marks: dict[int, tuple[int, int]] = {}  # user id → (data version, count)
        self._unread = itertools.count(-1, -1)  # a mark that could not be read: unique

    @property
    def epoch(self) -> tuple[int, int] | None:
        """(changes that concern anyone, changes that concern one user), or ``None`` while
        changes could go uncounted."""
        with self._guard:
            self._refresh()
            return self._epoch

    def user_mark(self, user_id: int) -> int:
        """How many changes concerned ``user_id``'s own grants (as of the last ``epoch``)."""
        with self._guard:
            seen = self._marks.get(user_id)
            if seen is not None and seen[0] == self._data_version:
                return seen[1]
            try:
                row = self._conn.execute(
                    "SELECT n FROM identity_changes WHERE scope = ?", (f"user:{user_id}",)
                ).fetchone()
            except sqlite3.Error:
                self._epoch = self._data_version = None
                return next(self._unread)  # matches nothing remembered, nor itself later
            count = 0 if row is None else int(row[0])
            if self._data_version is not None:
                if len(self._marks) > 10_000:
                    self._marks.clear()
                self._marks[user_id] = (self._data_version, count)
            return count

    def _refresh(self) -> None:
        try:
            (data_version,) = self._conn.execute("PRAGMA data_version").fetchone()
            if data_version == self._data_version:
                return
            data_version, schema_version, everyone, users = self._conn.execute(COUNTERS).fetchone()
            if schema_version != self._schema_version:
                if not self._counted():
                    self._epoch = self._data_version = None
                    return
                self._schema_version = schema_version
            if everyone is None or users is None:
                raise KeyError("identity_changes lacks its 'all' or 'users' row")
            self._epoch = (int(everyone), int(users))
            self._data_version = data_version
        except (sqlite3.Error, KeyError) as exc:
            log.warning("cannot read the identity change counters (%s)", exc)
            self._epoch = self._data_version = self._schema_version = None

    def _counted(self) -> bool:
        """Whether every trigger that counts identity changes is there."""
        (count,) = self._conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ? ESCAPE '!'",
            (TRIGGER_PREFIX.replace("_", "!_") + "%",),
        ).fetchone()
        return bool(count == TRIGGERS)

    def close(self) -> None:
        with self._guard:
            self._conn.close()
