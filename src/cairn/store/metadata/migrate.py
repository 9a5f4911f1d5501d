"""Schema migrations: bring an empty or older database to the code's schema.

A database whose revision this code does not know (it was migrated by a newer Cairn)
is refused with a clear message rather than used. Concurrent starters (several server
processes) serialise on a lock: a PostgreSQL advisory lock, or a lock file beside the
SQLite database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

from cairn.errors import SchemaMismatch
from cairn.store.metadata.database import Database

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x0CA1_2000_0001


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(db: Database) -> None:
    """Raise ``SchemaMismatch`` unless the database is exactly at this code's head."""
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SchemaMismatch(_mismatch_message(current, head))


def upgrade(db: Database) -> None:
    """Migrate to head; refuse a database newer than this code."""
    script = ScriptDirectory.from_config(_config())
    with _migration_lock(db), db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and not _known(script, current):
            raise SchemaMismatch(_mismatch_message(current, script.get_current_head()))
        if current == script.get_current_head():
            return
        conn.commit()  # end the implicit transaction of the revision read
        command.upgrade(_config(conn), "head")
        conn.commit()


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _mismatch_message(current: str | None, head: str | None) -> str:
    script = ScriptDirectory.from_config(_config())
    is_known = current is not None and _known(script, current)
    if current is None:
        return (
            "the metadata database has no Cairn schema; run `cairn db upgrade` or start the server"
        )
    if not is_known:
        return (
            f"the metadata database is at schema revision {current}, which this version of "
            f"Cairn does not know (its newest is {head}); it was written by a newer Cairn. "
            "Upgrade Cairn rather than point an older one at it."
        )
    return f"the metadata database is at revision {current}; run `cairn db upgrade` to reach {head}"


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    database = db.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_suffix(".migrate.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
