"""Locks that span transactions and processes: one holder at a time per name and database.

Schema migrations hold one (``migrate.py``), and so does garbage collection while it
changes anything (``MaintenanceService.gc``). On PostgreSQL it is a session advisory
lock on a connection of its own; on SQLite an ``flock`` of a file beside the database
(``cairn.<name>.lock``); an in-memory database, which no other process can open, needs
none. The operating system releases either when the holder dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from cairn.errors import Conflict
from cairn.store.metadata.database import Database, translate

# PostgreSQL advisory lock ids, one per name (a namespace of Cairn's own: 0x0CA1...)
_IDS = {"migrate": 0x0CA1_2000_0001, "gc": 0x0CA1_2000_0002}


@contextmanager
def named_lock(db: Database, name: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the lock ``name`` of ``db``. ``wait`` False: raise ``Conflict`` at once if
    another holds it."""
    busy = Conflict(f"another {name} is running on this registry; try again once it ends")
    if db.dialect == "postgresql":
        take = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        with db.engine.connect() as conn:
            if _run(conn, f"SELECT {take}(:id)", _IDS[name]) is False:
                raise busy
            try:
                yield
            finally:
                _run(conn, "SELECT pg_advisory_unlock(:id)", _IDS[name])
        return
    database = db.url.database
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(Path(database).with_suffix(f".{name}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _run(conn: Connection, sql: str, lock_id: int) -> object:
    try:
        result = conn.execute(text(sql), {"id": lock_id}).scalar()
        conn.commit()
    except DBAPIError as exc:
        raise translate(exc) from exc
    return result
