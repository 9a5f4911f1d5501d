"""Schema migrations: bring an empty or older database to the code's schema.

A database whose revision this code does not know (it was migrated by a newer Cairn)
is refused with a clear message rather than used. Concurrent starters (several server
processes) serialise on a lock: a PostgreSQL advisory lock, or a lock file beside the
SQLite database.

Most starts find the database already at this code's newest revision (``HEAD``): that
is checked with one query, without loading Alembic (about 10 MB and 50 ms in every
server worker and local CLI call). Alembic is imported only to migrate or to explain a
mismatch.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from cairn.errors import SchemaMismatch
from cairn.store.metadata.database import Database

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest migration's revision: a new migration moves it (tests/store/test_migrate.py
# checks that it is the head of the migrations folder).
HEAD = "0013_require_compatible"
_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x0CA1_2000_0001


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    return HEAD


def _revision(conn: Connection) -> str | None:
    """The revision Alembic recorded, or None in a database it never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return _revision(conn)


def check_schema(db: Database) -> None:
    """Raise ``SchemaMismatch`` unless the database is exactly at this code's head."""
    current = current_revision(db)
    if current != HEAD:
        raise SchemaMismatch(_mismatch_message(current, HEAD))


def upgrade(db: Database) -> None:
    """Migrate to head; refuse a database newer than this code."""
    if current_revision(db) == HEAD:
        return  # the usual start: no lock to take, nothing of Alembic's to load
    from alembic import command

    script = _script()
    with _migration_lock(db), db.engine.connect() as conn:
        current = _revision(conn)
        if current is not None and not _known(script, current):
            raise SchemaMismatch(_mismatch_message(current, HEAD))
        if current == HEAD:
            return  # another process migrated it meanwhile
        conn.commit()  # end the implicit transaction of the revision read
        command.upgrade(_config(conn), "head")
        conn.commit()


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _mismatch_message(current: str | None, head: str | None) -> str:
    script = _script()
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
