"""SQLite commits made durable by Cairn itself, so that concurrent ones share one sync.

With ``synchronous=FULL`` SQLite syncs the write-ahead log inside every ``COMMIT``: one
``fdatasync`` per transaction (0.05 to 0.85 ms on this project's machines), and a write
on the event loop (``api/offload.py``) holds the loop for it. The event loop's own writer
connection (``Database._pinned_session``) therefore commits with ``synchronous=NORMAL``,
where SQLite writes the log's frames without syncing them, and ``WalSync`` syncs the log
after the commit, before the request is answered:

- ``committed()`` after each such commit counts it;
- ``sync_through(n)`` returns once commit ``n`` is on disk: at once if a sync that began
  after it already finished, else after one ``fdatasync`` of the log, which covers every
  commit counted before it began.

Run right after its commit (the default), this is what ``synchronous=FULL`` does. Run
later (``api/offload.py`` defers it while other requests are in flight), the commits of
one turn of the event loop share one sync. A commit is never answered before the sync
that covers it, so acknowledged writes survive a power loss as before. Until then, other
requests can read what it wrote, as they can on PostgreSQL with ``synchronous_commit =
off``; a write that depends on it comes later in the same log and cannot outlive it. A
crash in between loses at most the commits not yet answered, and leaves the database
consistent: that is SQLite's guarantee for ``synchronous=NORMAL`` in WAL mode, whose
checkpoints still sync the log before they copy it into the database. Every other
connection (the thread pool's, migrations, other processes) keeps ``synchronous=FULL``.

A sync that fails answers its commits with ``Unavailable`` (503: written, maybe not
durable), and so does every later sync until a checkpoint has made the whole log durable
in the database and emptied it (``WalSync._mend``): after a failed sync the log itself is
suspect, not only the commits it was syncing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time

from cairn.errors import Unavailable
from cairn.fileio import file_id

# how long a checkpoint that recovers from a failed sync waits for readers to let go, and
# for another process's checkpoint to finish
MEND_WAIT_S = 1.0
# how often it asks again meanwhile (SQLite refuses a second checkpoint without waiting)
MEND_RETRY_S = 0.005


class WalSync:
    """Syncs of one SQLite database's write-ahead log (``<database>-wal``), shared by
    the threads of one process."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = f"{database}-wal"
        self._folder = os.path.dirname(os.path.abspath(database))
        self._count = threading.Lock()  # guards _committed
        self._syncing = threading.Lock()  # one sync at a time
        self._committed = 0  # commits counted so far
        self._synced = 0  # of those, how many are known to be on disk
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._broken = False  # a sync failed, and no checkpoint has mended the log since
        # held by whoever checkpoints this log in this process (``Checkpointer``, _mend)
        self.checkpointing = threading.Lock()

    @property
    def last_commit(self) -> int:
        """The number of the last commit counted."""
        return self._committed

    def covers(self, commit: int) -> bool:
        """Whether commit number ``commit`` is known to be on disk."""
        return self._synced >= commit

    def committed(self) -> int:
        """Count a commit whose log frames SQLite has written; its number."""
        with self._count:
            self._committed += 1
            return self._committed

    def sync_through(self, commit: int) -> None:
        """Return once commit number ``commit`` (and every one before it) is on disk."""
        if self._synced >= commit:
            return
        with self._syncing:
            if self._synced >= commit:  # a sync that began after it has finished
                return
            covered = self._committed  # every commit counted now has written its frames
            try:
                if self._broken:
                    self._mend()
                else:
                    fd = self._log()
                    if fd is not None:
                        os.fdatasync(fd)
            except (OSError, sqlite3.Error) as exc:
                self._broken = True
                raise Unavailable(
                    f"the change was written, but the disk failed to make it durable "
                    f"({_why(exc)}): it may not survive a power loss; the server's disk "
                    "needs attention"
                ) from exc
            self._synced = max(self._synced, covered)

    def check(self) -> None:
        """Raise ``Unavailable`` while a failed sync has not been mended, trying to mend
        it first: the server's readiness probe, so that the log is mended once the disk
        is back even if no write comes to do it."""
        if not self._broken:
            return
        with self._syncing:
            try:
                if self._broken:  # (another thread may have mended it meanwhile)
                    self._mend()
            except (OSError, sqlite3.Error) as exc:
                raise Unavailable(
                    f"a sync of the database's log failed and the log is not mended yet "
                    f"({_why(exc)}): writes are refused until it is; the server's disk "
                    "needs attention"
                ) from exc

    def _mend(self) -> None:
        """Make the log trustworthy again after a failed sync, or raise.

        A failed ``fdatasync`` cannot simply be tried again: Linux may have dropped the
        pages it could not write and report the next sync as a success, and a frame lost
        from the middle of the log makes SQLite's recovery stop there, dropping every
        later commit however well it was synced. So nothing is acknowledged until a
        ``TRUNCATE`` checkpoint (on a connection of its own, ``synchronous=FULL``) has
        copied the whole log into the database from the page cache, synced the database
        and emptied the log, so that later commits begin a fresh one.

        SQLite runs one checkpoint of a log at a time and answers another one busy at
        once, without waiting: the mend waits for this process's ``Checkpointer``
        (``checkpointing``) and asks again until ``MEND_WAIT_S`` while another process
        checkpoints. Readers still on the old log make it give up after ``MEND_WAIT_S``
        too; the next sync tries again.
        """
        deadline = time.monotonic() + MEND_WAIT_S
        with (
            self.checkpointing,
            contextlib.closing(sqlite3.connect(self.database, timeout=MEND_WAIT_S)) as conn,
        ):
            while conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:  # busy
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        "a checkpoint to recover from it could not finish"
                    )
                time.sleep(MEND_RETRY_S)
        self._broken = False

    def close(self) -> None:
        with self._syncing:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = self._inode = None

    def _log(self) -> int | None:
        """A descriptor of the log file as it is now (SQLite deletes it when the last
        connection closes, and another process may create it anew), or None if there is
        none: then nothing is left in it to sync (closing checkpointed it, and synced)."""
        try:
            current = file_id(self.path)
        except FileNotFoundError:
            return None
        if self._fd is not None and self._inode == current:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._inode = None
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        # a new log file's name must survive a power loss too, as SQLite's first sync of
        # one makes it do (the folder is synced once per log file)
        folder = os.open(self._folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        st = os.fstat(fd)  # once per log file
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        return fd


def _why(exc: OSError | sqlite3.Error) -> str:
    return str(exc.strerror) if isinstance(exc, OSError) else str(exc)
