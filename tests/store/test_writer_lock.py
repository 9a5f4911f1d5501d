"""SQLite writers of every process queue on one lock beside the database file."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from cairn.store.metadata import database
from cairn.store.metadata.database import Database, NotInline

PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
sys.exit(0)
"""


def _other_process_may_write(lock_file: Path) -> bool:
    code = subprocess.run([sys.executable, "-c", PROBE, str(lock_file)], check=False).returncode
    assert code in (0, 3)
    return code == 0


def test_a_write_transaction_holds_the_lock_other_processes_wait_on(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    lock_file = tmp_path / "cairn.db-writer.lock"
    try:
        assert not lock_file.exists()  # made by the first write, not by opening the database
        db.write(lambda s: None)
        assert lock_file.exists()
        assert _other_process_may_write(lock_file)
        held = db.write(lambda s: _other_process_may_write(lock_file))
        assert held is False  # inside the transaction, another process would have waited
        assert _other_process_may_write(lock_file)  # released at commit
    finally:
        db.dispose()


def test_a_read_only_folder_falls_back_to_sqlite_locking(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    db.dispose()
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: nothing to check here
            return
        again = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
        again.dispose()
    finally:
        os.chmod(tmp_path, 0o700)


def test_flock_is_released_when_a_transaction_fails(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    lock_file = tmp_path / "cairn.db-writer.lock"

    def boom(_s: object) -> None:
        raise RuntimeError("fails inside the transaction")

    try:
        with pytest.raises(RuntimeError):
            db.write(boom)
        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
        finally:
            os.close(fd)
    finally:
        db.dispose()


def _count(db: Database) -> int:
    return int(db.read(lambda s: s.execute(text("SELECT count(*) FROM probe")).scalar_one()))


def _insert(s: Connection) -> None:
    s.execute(text("INSERT INTO probe VALUES (1)"))


@pytest.mark.parametrize("holder", ["another process", "another thread"])
def test_an_inline_write_does_not_wait_for_a_busy_writer(tmp_path: Path, holder: str) -> None:
    """On the event loop (``Database.inline``) the first write gives up after
    ``INLINE_WAIT_S``, having done nothing, when another process or thread holds the writer
    lock that long; later writes of the same block (the first one has committed) wait as
    usual."""
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    db.write(lambda s: s.execute(text("CREATE TABLE probe (n int)")))
    lock_file = tmp_path / "cairn.db-writer.lock"
    release = threading.Event()
    taken = threading.Event()

    def hold_in_thread() -> None:
        def wait(_s: Connection) -> None:
            taken.set()
            release.wait(10)

        db.write(wait)

    try:
        if holder == "another process":
            fd = os.open(lock_file, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            thread = threading.Thread(target=hold_in_thread)
            thread.start()
            assert taken.wait(10)
        with db.inline(), pytest.raises(NotInline):
            db.write(_insert)
        if holder == "another process":
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            release.set()
            thread.join(10)
        assert _count(db) == 0  # the refused write did nothing
        with db.inline():
            db.write(_insert)  # free: written on the spot
            db.write(_insert)  # a second write of the block takes the blocking path
        assert _count(db) == 2
        assert _other_process_may_write(lock_file)  # released after each
    finally:
        release.set()
        db.dispose()


@pytest.mark.parametrize("holder", ["another process", "another thread"])
def test_an_inline_write_waits_a_moment_for_a_short_writer(
    tmp_path: Path, holder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that finishes within ``INLINE_WAIT_S`` (another worker's create, a fraction
    of a millisecond) is waited for on the spot: the write does not go to the thread pool.
    (The wait is stretched here so that a slow test machine cannot miss it.)"""
    monkeypatch.setattr(database, "INLINE_WAIT_S", 5.0)
    db = Database(f"sqlite:///{tmp_path / 'cairn.db'}")
    db.write(lambda s: s.execute(text("CREATE TABLE probe (n int)")))
    lock_file = tmp_path / "cairn.db-writer.lock"
    taken = threading.Event()

    def hold_for_a_moment() -> None:
        if holder == "another process":
            fd = os.open(lock_file, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            taken.set()
            time.sleep(0.2)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            db.write(lambda _s: (taken.set(), time.sleep(0.2)))

    thread = threading.Thread(target=hold_for_a_moment)
    try:
        thread.start()
        assert taken.wait(10)
        started = time.monotonic()
        with db.inline():
            db.write(_insert)  # no NotInline: it waited
        assert time.monotonic() - started >= 0.05
        assert _count(db) == 1
    finally:
        thread.join(10)
        db.dispose()


def test_a_read_past_its_inline_budget_stops_and_leaves_the_connection_as_it_was(
    tmp_path: Path,
) -> None:
    """``inline(read_budget_s=...)``: a SQLite read still running at the deadline is
    interrupted and raises ``NotInline``; the same read without a budget then completes on
    the same (pinned) connection, which keeps no progress handler."""
    db = Database(f"sqlite:///{tmp_path / 'budget.db'}")
    count = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT count(*) FROM n"
    )

    def long_read(s: Any) -> int:
        return int(s.exec_driver_sql(count).scalar())

    try:
        with db.inline(read_budget_s=0.0001), pytest.raises(NotInline):
            db.read(long_read)
        with db.inline(read_budget_s=10.0):
            assert db.read(long_read) == 300000
        assert db.read(long_read) == 300000
    finally:
        db.dispose()
