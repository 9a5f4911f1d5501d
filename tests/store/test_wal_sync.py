"""The event loop's SQLite commits are synced by Cairn (``store/metadata/wal_sync.py``):
at once by default, or later by the caller of an ``inline(syncs=...)`` block, and never
left unsynced by either."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from cairn import fileio
from cairn.errors import Unavailable
from cairn.store.metadata import wal_sync
from cairn.store.metadata.database import Database, SyncDebt
from cairn.store.metadata.wal_sync import WalSync


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fdatasync WalSync runs, by descriptor."""
    done: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        done.append(fd)
        real(fd)

    monkeypatch.setattr(wal_sync.os, "fdatasync", counted)
    return done


def _tag(conn: Connection, value: str) -> None:
    conn.execute(
        text(
            "INSERT INTO idempotency_keys (key, actor, operation, fingerprint, model_id,"
            " created_at) VALUES (:k, 'test', 'test', 'f', 1, 0)"
        ),
        {"k": value},
    )


def _keys(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT key FROM idempotency_keys")).scalars())


def _synchronous(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_a_commit_on_the_main_thread_is_synced_before_the_write_returns(
    db: Database, backend: str, syncs: list[int]
) -> None:
    assert threading.current_thread() is threading.main_thread()
    db.write(lambda conn: _tag(conn, "a"))
    if backend == "postgresql":  # PostgreSQL's own commit is durable: nothing of ours
        assert db.wal is None and syncs == []
        return
    assert db.wal is not None
    assert len(syncs) == 1
    assert db.wal.covers(db.wal.last_commit)
    # that connection leaves the syncing to Cairn; everyone else's syncs itself
    assert db.write(_synchronous) == 1  # NORMAL
    assert db.read(_synchronous) == 2  # FULL

    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(db.write(_synchronous)))
    worker.start()
    worker.join()
    assert seen == [2]  # a pooled connection of the thread pool: FULL, SQLite syncs


def test_an_inline_block_leaves_its_sync_to_its_caller_and_one_sync_covers_many(
    db: Database, backend: str, syncs: list[int]
) -> None:
    if backend == "postgresql":
        debt = SyncDebt()
        with db.inline(syncs=debt):
            db.write(lambda conn: _tag(conn, "a"))
        assert debt.commit == 0 and syncs == []
        return
    assert db.wal is not None
    debts = [SyncDebt() for _ in range(3)]
    for i, debt in enumerate(debts):
        with db.inline(syncs=debt):
            db.write(lambda conn, i=i: _tag(conn, f"scope-{i}"))
    assert syncs == []  # committed, not yet synced
    assert set(db.read(_keys)) >= {"scope-0", "scope-1", "scope-2"}  # and seen by readers
    assert [d.commit for d in debts] == [1, 2, 3]
    assert not db.wal.covers(1)
    db.wal.sync_through(debts[0].commit)
    assert len(syncs) == 1
    assert all(db.wal.covers(d.commit) for d in debts)  # the one sync covered all three
    db.wal.sync_through(debts[2].commit)
    assert len(syncs) == 1  # nothing left to do


def test_a_failed_transaction_counts_no_commit(db: Database, backend: str) -> None:
    def boom(conn: Connection) -> None:
        _tag(conn, "never")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError):
        db.write(boom)
    if db.wal is not None:
        assert db.wal.last_commit == 0
    assert "never" not in db.read(_keys)


def test_the_log_is_found_again_when_it_is_replaced(tmp_path: Path, syncs: list[int]) -> None:
    database = tmp_path / "x.db"
    wal = WalSync(str(database))
    wal.sync_through(wal.committed())  # no log yet: nothing to sync, nothing fails
    assert syncs == [] and wal.covers(1)
    log = Path(f"{database}-wal")
    log.write_bytes(b"frames")
    wal.sync_through(wal.committed())
    first = os.fstat(syncs[-1]).st_ino
    log.unlink()  # the last connection closed; another process starts a new log
    log.write_bytes(b"new frames")
    wal.sync_through(wal.committed())
    assert len(syncs) == 2
    assert os.fstat(syncs[-1]).st_ino == log.stat().st_ino != first
    wal.close()


def test_after_a_failed_sync_nothing_is_acknowledged_until_a_checkpoint_mends_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncs: list[int]
) -> None:
    """A disk that cannot sync (EIO, ENOSPC) gives an ``Unavailable`` that says the change
    may not be durable, not a bare OSError. The log is not synced again as if nothing
    happened (Linux may report the retry a success with the pages gone): every later
    sync fails too until a TRUNCATE checkpoint has copied the log into the database,
    synced it and emptied the log. A reader still on the old log makes that wait."""
    db, wal, failed = _after_a_failed_sync(tmp_path, monkeypatch)
    assert "Input/output error): it may not survive" in failed.message
    log = Path(wal.path)
    first = wal.last_commit
    assert not wal.covers(first)

    monkeypatch.setattr(wal_sync, "MEND_WAIT_S", 0.05)
    reader = sqlite3.connect(wal.database)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # holds the old log
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    second = wal.committed()
    with pytest.raises(Unavailable, match="could not finish"):
        wal.sync_through(second)
    assert not wal.covers(first) and log.stat().st_size > 0
    assert syncs == []  # no plain sync of the suspect log, ever

    reader.rollback()
    reader.close()
    wal.sync_through(second)
    assert wal.covers(second) and log.stat().st_size == 0  # all of it in the database
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
        conn.execute(text("INSERT INTO t VALUES (3)"))
        conn.commit()
    wal.sync_through(wal.committed())  # a fresh log: synced as usual again
    assert len(syncs) == 1
    wal.close()
    db.dispose()


def test_the_log_is_checked_without_reading_its_times(
    tmp_path: Path, syncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a file's times (any ``stat``) makes the next write to it record a
    fine-grained time on Linux 6.13+, and the sync after that write must write the inode
    too; so once the log is open, each sync finds out whether it is still the same file
    from ``statx`` asking for the inode number alone (``file_id``)."""
    log = tmp_path / "x.db-wal"
    log.write_bytes(b"frames")
    st = log.stat()
    assert fileio.file_id(str(log)) == (st.st_dev, st.st_ino)
    with pytest.raises(FileNotFoundError):
        fileio.file_id(str(tmp_path / "none"))
    wal = WalSync(str(tmp_path / "x.db"))
    wal.sync_through(wal.committed())  # opens the log (and reads it once)

    def no_stat(*args: object, **kwargs: object) -> None:
        raise AssertionError("the log's times were read")

    with monkeypatch.context() as patch:
        if fileio._statx() is not None:  # Linux: nothing but statx
            patch.setattr(wal_sync.os, "stat", no_stat)
            patch.setattr(wal_sync.os, "fstat", no_stat)
        for _ in range(3):
            with log.open("ab") as f:
                f.write(b"more frames")
            wal.sync_through(wal.committed())
    assert len(syncs) == 4 and len(set(syncs)) == 1
    wal.close()


def test_a_mend_waits_out_a_checkpoint_another_connection_is_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite runs one checkpoint of a log at a time and answers a second one busy at once,
    without waiting (another worker's, say, or this process's ``Checkpointer``). The mend
    after a failed sync waits for the other to finish instead of refusing the write."""
    db, wal, _ = _after_a_failed_sync(tmp_path, monkeypatch)
    monkeypatch.setattr(wal_sync, "MEND_WAIT_S", 5.0)  # room for a loaded machine
    database = wal.database
    # a RESTART checkpoint takes the log's checkpoint lock, then waits for the writer
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(database, timeout=30, check_same_thread=False)
    done: list[tuple[int, int, int]] = []
    checkpoint = threading.Thread(
        target=lambda: done.append(other.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
    )
    checkpoint.start()
    time.sleep(0.2)
    assert checkpoint.is_alive() and not done  # waiting for the writer, holding the lock
    release = threading.Timer(0.3, writer.rollback)
    release.start()
    wal.check()  # waits for it, then mends
    checkpoint.join()
    assert done  # the other checkpoint has finished too
    assert Path(wal.path).stat().st_size == 0
    wal.sync_through(wal.committed())  # writes are acknowledged again
    for conn in (writer, other):
        conn.close()
    wal.close()
    db.dispose()


def _after_a_failed_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Database, WalSync, Unavailable]:
    """A database with a table ``t`` of one row, whose log's last sync failed (EIO)."""
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    wal = WalSync(str(db.url.database))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(wal_sync.os, "fdatasync", failing)
        with pytest.raises(Unavailable) as failed:
            wal.sync_through(wal.committed())
    return db, wal, failed.value
