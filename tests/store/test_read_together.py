"""``Database.read_together``: the reads inside share one transaction (one connection; on
SQLite one snapshot) and nest. (Retried as a whole on a lost connection:
``test_reconnect.py``.)"""

from __future__ import annotations

import threading

from sqlalchemy import Connection, text

from cairn.store.metadata.database import Database


def _connection(s: Connection) -> object:
    return s.connection.driver_connection


def test_reads_inside_share_one_connection(db: Database) -> None:
    def three() -> list[object]:
        return [
            db.read(_connection),
            db.read(_connection),
            db.read_together(lambda: db.read(_connection)),  # nested: the same
        ]

    first, second, nested = db.read_together(three)
    assert first is second is nested


def test_on_sqlite_they_read_one_snapshot(db: Database) -> None:
    """(PostgreSQL reads run in autocommit, under READ COMMITTED: each statement sees what
    was committed before it, together or not.)"""
    db.write(lambda s: s.execute(text("CREATE TABLE probe (n INTEGER)")))

    def count(s: Connection) -> int:
        return int(s.execute(text("SELECT count(*) FROM probe")).scalar_one())

    def insert() -> None:  # another connection commits meanwhile
        db.write(lambda s: s.execute(text("INSERT INTO probe VALUES (1)")))

    def read_write_read() -> tuple[int, int]:
        before = db.read(count)
        writer = threading.Thread(target=insert)
        writer.start()
        writer.join()
        return before, db.read(count)

    assert db.read_together(read_write_read) == ((0, 0) if db.dialect == "sqlite" else (0, 1))
    assert db.read(count) == 1
