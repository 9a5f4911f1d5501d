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
- SQLite: no watch (``Database.identity_watch`` is ``None``); other processes' changes
  could not be heard, and a token lookup there costs tens of microseconds anyway.

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
from typing import Any

import psycopg
from psycopg.pq import ConnStatus

CHANNEL = "cairn_identity"
TRIGGER = "cairn_identity_changed"  # migration 0005: on users, groups, group_members,
TRIGGERS = 6  # grants and tokens (deletes), and cairn_identity_changed_update on tokens
log = logging.getLogger(__name__)
_PROBE_AFTER_S = 10.0  # a silent connection is asked a question this often: still there?
_MAX_BACKOFF_S = 30.0


class Changes:
    """Whether the transaction being run changes who may do what (``mark_changed``)."""

    __slots__ = ("identity",)

    def __init__(self) -> None:
        self.identity = False


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

    count = 0
    guard = threading.Lock()


def changed_here() -> None:
    """A transaction of this process that changed identities has committed."""
    with _ProcessChanges.guard:
        _ProcessChanges.count += 1


def mark_changed() -> None:
    """The running transaction changes users, groups, memberships, grants or tokens."""
    changes = _CURRENT.get()
    if changes is not None:
        changes.identity = True


def _announced(conn: psycopg.Connection[Any]) -> bool:
    """Whether this database has every trigger that announces identity changes, enabled
    (with one dropped or disabled, changes would go unheard: then the watch never counts
    as listening)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname IN (%s, %s) AND tgenabled <> 'D'",
        (TRIGGER, f"{TRIGGER}_update"),
    ).fetchone()
    return row is not None and row[0] == TRIGGERS


class IdentityWatch:
    """The listening thread and the epoch (see the module docstring)."""

    def __init__(self, conninfo: str, connect_args: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._connect_args = connect_args
        self._epoch = 0
        self._listening = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # wakes the thread up at close
        self._thread = threading.Thread(target=self._run, name="cairn-identity-watch", daemon=True)
        self._thread.start()

    @property
    def epoch(self) -> int | None:
        """The current epoch, or ``None`` while changes cannot be heard (two counters that
        only grow: their sum moves whenever either does)."""
        return self._epoch + _ProcessChanges.count if self._listening else None

    def changed(self) -> None:
        with self._guard:
            self._epoch += 1

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._connect_args) as conn:
                    conn.add_notify_handler(lambda _n: self.changed())  # during a query
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
        heard = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], _PROBE_AFTER_S)
            if self._stop.is_set():
                return
            if ready:
                conn.pgconn.consume_input()  # raises if the connection is gone
                while conn.pgconn.notifies() is not None:
                    self.changed()
                if conn.pgconn.status != ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection was lost")
                heard = time.monotonic()
            elif time.monotonic() - heard >= _PROBE_AFTER_S:
                conn.execute("SELECT 1")  # a dead link raises (libpq's network limits)
                heard = time.monotonic()
