"""Hear that users, groups, memberships, grants or tokens changed, in every process.

What a token stands for (its user, scope and grants) may be remembered between requests
only while nothing it depends on can have changed unheard. ``IdentityWatch.epoch`` is a
counter that moves whenever that may have happened; a remembered answer is good only
for the epoch it was read in, and ``epoch`` is ``None`` (remember nothing) whenever this
process cannot hear changes.

- PostgreSQL: triggers on ``users``, ``groups``, ``group_members``, ``grants`` and
  ``tokens`` (migration 0005; a token's ``last_used_at`` alone does not count) send
  ``NOTIFY cairn_identity`` at commit, whoever made the change: any Cairn process on
  any host, a script, ``psql``. A daemon thread holds one connection that listens; each
  notification moves the epoch. While that connection is down (not yet up, lost,
  reconnecting) the epoch is ``None``; once it listens again the epoch moves, so nothing
  remembered from before counts.
- This process's own changes move the epoch of every watch in the process as soon as
  they commit (the store's ``mark_changed`` flags the transaction, ``Database`` calls
  ``changed_here`` after the commit), without waiting for the notification.
- A change to one user's own grants (every model creation gives its creator one) concerns
  that user alone: its notification names the user (``user:<id>``, migration 0006) and
  moves that user's mark (``user_mark``), not the epoch, so it does not make every
  other caller's token be looked up again. The epoch is a pair: (changes that concern
  anyone, changes that concern one user); what was looked up while either moved is not
  remembered, and a remembered answer holds while the first and its user's mark stay.
- SQLite has no notifications: ``sqlite_watch.SqliteIdentityWatch`` counts changes with
  triggers instead and offers the same ``epoch`` and ``user_mark``.

Another process's change is heard when PostgreSQL delivers its notification, about a
millisecond after its commit on a local network: a request that arrives in between may
still pass with what was true just before, as it would had it arrived a moment earlier.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where it is used: a SQLite server never loads the driver
    import psycopg

CHANNEL = "cairn_identity"
USER_PAYLOAD = "user:"  # a notification that concerns one user: "user:<id>"
# migrations 0005 and 0006: cairn_identity_changed on users, groups, group_members, grants
# (each row) and tokens (deletes); cairn_identity_changed_update on tokens (updates) and
# cairn_identity_changed_truncate on grants
TRIGGER = "cairn_identity_changed"
TRIGGER_NAMES = (TRIGGER, f"{TRIGGER}_update", f"{TRIGGER}_truncate")
TRIGGERS = 7
log = logging.getLogger(__name__)
_PROBE_AFTER_S = 10.0  # a silent connection is asked a question this often: still there?
_MAX_BACKOFF_S = 30.0


class Changes:
    """Whether the transaction being run changes who may do what (``mark_changed``):
    for anyone (``identity``), or for some users alone (``users``, their ids)."""

    __slots__ = ("identity", "users")

    def __init__(self) -> None:
        self.identity = False
        self.users: set[int] = set()

    def __bool__(self) -> bool:
        return self.identity or bool(self.users)


_CURRENT: ContextVar[Changes | None] = ContextVar("cairn_transaction_changes", default=None)


@contextmanager
def recording() -> Iterator[Changes]:
    """Around one transaction's work (``Database._run``): what it marks lands here."""
    changes = Changes()
    token = _CURRENT.set(changes)
    try:
        yield changes
    finally:
        _CURRENT.reset(token)


class _ProcessChanges:
    """Identity changes committed by this process, on any database: every watch of the
    process counts them into its epoch, so another ``Database`` of the same process (two
    local-mode clients, say) forgets at once too, not when the notification arrives."""

    count = 0  # changes that concern anyone
    user_count = 0  # changes that concern one user each...
    users: dict[int, int] = {}  # ...by user id
    guard = threading.Lock()


def changed_here(changes: Changes) -> None:
    """A transaction of this process that made ``changes`` has committed."""
    with _ProcessChanges.guard:
        if changes.identity:
            _ProcessChanges.count += 1
        for user in changes.users:
            _ProcessChanges.users[user] = _ProcessChanges.users.get(user, 0) + 1
            _ProcessChanges.user_count += 1


def mark_changed(user_id: int | None = None) -> None:
    """The running transaction changes users, groups, memberships, grants or tokens
    (``user_id``: only that user's own grants)."""
    changes = _CURRENT.get()
    if changes is not None:
        if user_id is None:
            changes.identity = True
        else:
            changes.users.add(int(user_id))


def _announced(conn: psycopg.Connection[Any]) -> bool:
    """Whether this database has every trigger that announces identity changes, enabled
    (with one dropped or disabled, changes would go unheard: then the watch never counts
    as listening)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s) AND tgenabled <> 'D'",
        (list(TRIGGER_NAMES),),
    ).fetchone()
    return row is not None and row[0] == TRIGGERS


class IdentityWatch:
    """The listening thread and the epoch (see the module docstring)."""

    def __init__(self, conninfo: str, connect_args: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._connect_args = connect_args
        self._epoch = 0
        self._user_count = 0
        self._users: dict[int, int] = {}
        self._listening = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # wakes the thread up at close
        self._thread = threading.Thread(target=self._run, name="cairn-identity-watch", daemon=True)
        self._thread.start()

    @property
    def epoch(self) -> tuple[int, int] | None:
        """The current epoch: (changes that concern anyone, changes that concern one
        user), or ``None`` while changes cannot be heard (counters that only grow, heard
        and made here: each sum moves whenever either of its counters does)."""
        if not self._listening:
            return None
        return (
            self._epoch + _ProcessChanges.count,
            self._user_count + _ProcessChanges.user_count,
        )

    def user_mark(self, user_id: int) -> int:
        """How many changes concerning ``user_id`` alone were heard or made here."""
        return self._users.get(user_id, 0) + _ProcessChanges.users.get(user_id, 0)

    def changed(self, payload: str = "") -> None:
        """A notification (``payload``: ``user:<id>`` for one user's change) or a gap."""
        user = payload.removeprefix(USER_PAYLOAD)
        with self._guard:
            if payload.startswith(USER_PAYLOAD) and user.isdigit():
                self._users[int(user)] = self._users.get(int(user), 0) + 1
                self._user_count += 1
            else:
                self._epoch += 1

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        import psycopg

        backoff = 0.25
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._connect_args) as conn:
                    conn.add_notify_handler(lambda n: self.changed(n.payload))  # in a query
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not _announced(conn):
                        raise RuntimeError("the cairn_identity triggers are missing")
                    self.changed()  # whatever happened while nobody listened
                    self._listening = True
                    backoff = 0.25
                    self._listen(conn)
            except Exception as exc:  # lost, refused, anything: listen again later
                if not self._stop.is_set():
                    log.warning("not hearing identity changes (%s); retrying", exc)
            finally:
                self._listening = False
                self.changed()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        """Wait on the connection's socket (and the wake-up pipe); count notifications."""
        from psycopg import OperationalError
        from psycopg.pq import ConnStatus

        heard = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], _PROBE_AFTER_S)
            if self._stop.is_set():
                return
            if ready:
                conn.pgconn.consume_input()  # raises if the connection is gone
                while (notify := conn.pgconn.notifies()) is not None:
                    self.changed(notify.extra.decode(errors="replace"))
                if conn.pgconn.status != ConnStatus.OK:
                    raise OperationalError("the listening connection was lost")
                heard = time.monotonic()
            elif time.monotonic() - heard >= _PROBE_AFTER_S:
                conn.execute("SELECT 1")  # a dead link raises (libpq's network limits)
                heard = time.monotonic()
