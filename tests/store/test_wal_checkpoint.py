"""The event loop's SQLite commits are checkpointed by a thread of their own
(``store/metadata/wal_checkpoint.py``), not inside the commit that fills the log."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from cairn.store.metadata.database import Database
from cairn.store.metadata.wal_checkpoint import BACKSTOP_PAGES, Checkpointer


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A migrated SQLite database of the test's own (checkpoints are SQLite's alone)."""
    path = tmp_path / "cairn.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def _tag(conn: Connection, value: str) -> None:
    conn.execute(
        text(
            "INSERT INTO idempotency_keys (key, actor, operation, fingerprint, model_id,"
            " created_at) VALUES (:k, 'test', 'test', :f, 1, 0)"
        ),
        {"k": value, "f": "x" * 3000},  # about a page a row
    )


def _wait_for(done: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _rows_in_the_file_alone(db: Database, tmp_path: Path) -> int:
    """How many rows the database file holds without its log: what checkpoints copied."""
    alone = tmp_path / "alone.db"
    shutil.copy(str(db.url.database), alone)
    conn = sqlite3.connect(alone)
    try:
        return int(conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0])
    finally:
        conn.close()


def test_the_main_threads_writer_leaves_checkpoints_to_the_thread(
    db: Database, tmp_path: Path
) -> None:
    assert threading.current_thread() is threading.main_thread()
    checkpointer = db._checkpointer
    assert checkpointer is not None
    for i in range(40):
        db.write(lambda conn, i=i: _tag(conn, f"k{i}"))
    # the writer's own automatic checkpoint is only a backstop
    writer = db._pinned[db.engine]
    assert writer.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == BACKSTOP_PAGES
    _wait_for(lambda: checkpointer.checkpoints >= 1, "a checkpoint")
    _wait_for(lambda: _rows_in_the_file_alone(db, tmp_path) == 40, "the rows in the file")
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()
    db.dispose()
    assert not thread.is_alive()


def test_a_commit_that_fills_the_log_does_not_checkpoint_it_itself(
    db: Database, tmp_path: Path
) -> None:
    assert db._checkpointer is not None
    db._checkpointer._delay_s = 60  # the thread stays out of it

    def fill(conn: Connection) -> None:
        for i in range(1200):  # more pages than SQLite's automatic checkpoint waits for
            _tag(conn, f"k{i}")

    db.write(fill)
    assert _rows_in_the_file_alone(db, tmp_path) == 0  # all of it still only in the log
    assert (
        db.read(
            lambda conn: conn.execute(text("SELECT count(*) FROM idempotency_keys")).scalar_one()
        )
        == 1200
    )


def test_commits_that_come_together_share_one_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    checkpointer = Checkpointer(str(path), delay_s=0.2)
    try:
        for i in range(20):
            conn.execute("INSERT INTO t VALUES (?)", (str(i),))
            checkpointer.committed()
        _wait_for(lambda: checkpointer.checkpoints >= 1, "a checkpoint")
        time.sleep(0.4)  # nothing more was committed: no second checkpoint
        assert checkpointer.checkpoints == 1
        conn.execute("INSERT INTO t VALUES ('late')")
        checkpointer.committed()
        _wait_for(lambda: checkpointer.checkpoints >= 2, "a second checkpoint")
    finally:
        checkpointer.close()
        conn.close()
    assert checkpointer._thread is None


def test_a_closed_checkpointer_starts_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer(str(path))
    checkpointer.close()
    checkpointer.committed()
    assert checkpointer._thread is None


def test_no_checkpoint_runs_while_its_lock_is_held(tmp_path: Path) -> None:
    """The lock a checkpointer is given is the one ``WalSync`` mends the log under after a
    failed sync: SQLite would answer the mend busy while the thread's checkpoint runs."""
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    lock = threading.Lock()
    checkpointer = Checkpointer(str(path), delay_s=0.01, lock=lock)
    try:
        with lock:
            conn.execute("INSERT INTO t VALUES ('a')")
            checkpointer.committed()
            time.sleep(0.3)
            assert checkpointer.checkpoints == 0
        _wait_for(lambda: checkpointer.checkpoints == 1, "the checkpoint, once let go")
    finally:
        checkpointer.close()
        conn.close()
