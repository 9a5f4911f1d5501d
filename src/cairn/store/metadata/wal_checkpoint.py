"""SQLite checkpoints of the event loop's commits, run by a thread of their own.

In WAL mode SQLite copies the log back into the database (a checkpoint) inside the
``COMMIT`` that takes the log past ``wal_autocheckpoint`` pages (1,000 by default). A
version create writes about 19 pages, so about one create in fifty also copied a
thousand pages and synced the database before it was answered: 1 to 3.5 ms instead of
0.07 for its commit, 15 to 27% of all the time commits took, and on the event loop
(``api/offload.py``) every other request of the worker waited meanwhile.

The event loop's writer connection (``Database._pinned_session``) therefore leaves its
checkpoints to a ``Checkpointer``: after each of its commits it wakes a thread, which
waits ``CHECKPOINT_DELAY_S`` for more commits to gather and runs one ``PASSIVE``
checkpoint on a connection of its own while the loop goes on (SQLite works without the
GIL; a passive checkpoint never blocks a writer or a reader, and copies only what no
reader still needs). The next write after a complete checkpoint starts the log from its
beginning again, as before.

The writer keeps an automatic checkpoint of its own at ``BACKSTOP_PAGES``, far above
what the thread lets the log reach, so that the log stays bounded if the thread ever
falls behind. Every other connection (the thread pool's, migrations') keeps SQLite's
default. The CLI and the in-process SDK write on the main thread's connection too, so
their commits are checkpointed the same way while the process lives. A checkpoint is
crash-safe at any point (SQLite's guarantee), so a process that dies during one loses
nothing; the log is replayed on the next open.
"""

from __future__ import annotations

import os
import sqlite3
import threading

# how long the thread waits after a commit woke it, for others to join its checkpoint
CHECKPOINT_DELAY_S = 0.05
# the writer's own automatic checkpoint, should the thread fall behind (4,000 pages of
# 4 KiB: a 16 MiB log)
BACKSTOP_PAGES = 4000


class Checkpointer:
    """Passive checkpoints of one SQLite database, in a daemon thread started on the first
    commit it hears of."""

    def __init__(
        self,
        database: str,
        *,
        delay_s: float = CHECKPOINT_DELAY_S,
        lock: threading.Lock | None = None,
    ) -> None:
        self._database = database
        self._delay_s = delay_s
        # held during each checkpoint: the one the log's ``WalSync`` mends it under
        self._lock = lock if lock is not None else threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0  # the process the thread runs in (a forked child has none)
        self._guard = threading.Lock()
        self.checkpoints = 0  # how many have run (tests and diagnostics)

    def committed(self) -> None:
        """Hear of a commit: a checkpoint follows within ``delay_s``."""
        if self._pid != os.getpid():  # the first commit, or the first of a forked child
            self._start()
        elif self._wake.is_set():
            return  # a checkpoint is already due
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._guard:
            self._closing.set()
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)  # (closed from the thread itself: by a finalizer)

    def _start(self) -> None:
        with self._guard:
            if self._pid != os.getpid() and not self._closing.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="cairn-sqlite-checkpoint", daemon=True
                )
                self._thread.start()
                self._pid = os.getpid()

    def _run(self) -> None:
        conn = sqlite3.connect(self._database, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                if self._closing.wait(self._delay_s):  # meanwhile more commits join
                    return
                self._wake.clear()
                try:
                    with self._lock:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    continue  # (a busy database, say): the next commit wakes us again
                self.checkpoints += 1
        finally:
            conn.close()
