"""Schema migrations: bring an empty or older database to the code's schema.

A database whose revision this code does not know (it was migrated by a newer Cairn)
is refused with a clear message rather than used. Concurrent starters (several server
processes) serialise on a lock: a PostgreSQL advisory lock, or a lock file beside the
SQLite database.

Most starts find the database already at this code's newest revision (``HEAD``): that
is checked with one query, without loading Alembic (about 10 MB and 50 ms in every
server worker and local CLI call). Alembic is imported only to migrate or to explain a
mismatch.

A SQLite file that exists is first looked at read-only (``_look``), before Cairn's own
connections open it: they switch it to WAL for good and Cairn leaves lock files beside
it. Where the file cannot be read in place without a write (a hot journal a crashed
writer left, a log without its ``-shm`` index), a copy of it in a temporary folder is
read instead; a file that cannot be read either way is refused. A file Cairn refuses
(another application's, a newer Cairn's, a damaged one) is thus left exactly as it was,
and a look at the revision (``cairn db current``, ``CAIRN_MIGRATE=false``) writes
nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from cairn.errors import SchemaMismatch, Unavailable
from cairn.store.metadata.database import Database
from cairn.store.metadata.engines import SQLITE_BUSY_TIMEOUT_MS
from cairn.store.metadata.named_lock import named_lock
from cairn.store.metadata.sqlite_lock import on_disk

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest migration's revision: a new migration moves it (tests/store/test_migrate.py
# checks that it is the head of the migrations folder).
HEAD = "0019_secrets"
_MIGRATIONS = Path(__file__).parent / "migrations"
# How every Cairn revision is named (``0014_blob_tombstones``): an unknown revision named
# so was written by a newer Cairn; any other (MLflow's ``dc11669786a5``) by another
# application that keeps its schema with Alembic too.
_SQLITE_NOTADB = 26  # "file is not a database"
_CAIRN_REVISION = re.compile(r"\d{4}_[a-z0-9_]+")
_SQLITE_MAGIC = b"SQLite format 3\x00"  # how a SQLite database file begins
_WAL_VERSION = 2  # the file format bytes (18, 19) of a database in WAL mode
_TIMEOUT_S = SQLITE_BUSY_TIMEOUT_MS / 1000


@dataclass(frozen=True, slots=True)
class _Look:
    """What a read-only look at a SQLite file found: its Cairn revision (None: none), and
    the tables besides ``alembic_version`` (read only when the revision is not ``HEAD``)."""

    revision: str | None
    tables: frozenset[str] = frozenset()


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


def _not_sqlite(db: Database, why: object) -> SchemaMismatch:
    where = db.url.render_as_string(hide_password=True)
    return SchemaMismatch(
        f"the metadata database {where} is not a SQLite database ({why}); point "
        "CAIRN_BACKEND_URI (--backend-uri) at Cairn's database file, or at a path where none "
        "exists yet to create one"
    )


def _look(db: Database) -> _Look | None:
    """A SQLite file's revision (and, unless it is ``HEAD``, its tables), read without
    writing a byte of it or making a file beside it. None where there is no file to look at
    (PostgreSQL, a database in memory or named by a URI, a path with no file yet): Cairn's
    own connection makes it. A file it cannot look at so is refused, never opened by
    Cairn's connection, which would switch it to WAL before knowing whose it is."""
    path = db.url.database
    if db.dialect != "sqlite" or not on_disk(path):
        return None
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except FileNotFoundError:  # none there yet: Cairn's connection makes it
        return None
    except OSError as exc:
        raise _unreadable(db, exc.strerror) from exc
    if not header:
        return _Look(None)  # an empty file is an empty database
    if not header.startswith(_SQLITE_MAGIC):
        raise _not_sqlite(db, "its first bytes are not SQLite's header")
    log = os.path.exists(f"{path}-wal")
    if log and not os.path.exists(f"{path}-shm"):
        # read in place, SQLite would make the log's index (-shm) beside it
        return _look_at_copy(db, path)
    options = "mode=ro"
    if len(header) > 18 and header[18] == _WAL_VERSION and not log:
        # all of it is in the file; read-only, SQLite would still make its -wal and -shm
        options += "&immutable=1"
    uri = f"file:{quote(os.path.abspath(path))}?{options}"
    try:
        return _read_look(db, sqlite3.connect(uri, uri=True, timeout=_TIMEOUT_S))
    except sqlite3.DatabaseError:
        # e.g. a hot journal, which only a writer may roll back: read a copy of it all
        return _look_at_copy(db, path)


def _look_at_copy(db: Database, path: str) -> _Look:
    """``_look`` on a copy of the file (with its log or journal) in a temporary folder,
    where SQLite may recover it as it needs to: the file itself is left as it is."""
    with tempfile.TemporaryDirectory(prefix="cairn-look-") as folder:
        copy = os.path.join(folder, "look.db")
        try:
            shutil.copyfile(path, copy)
            for suffix in ("-wal", "-journal"):
                if os.path.exists(path + suffix):
                    shutil.copyfile(path + suffix, copy + suffix)
        except OSError as exc:
            raise _unreadable(db, f"{exc.strerror} while copying it to look at it") from exc
        try:
            return _read_look(db, sqlite3.connect(copy, timeout=_TIMEOUT_S))
        except sqlite3.DatabaseError as exc:
            raise _unreadable(db, exc) from exc


def _read_look(db: Database, conn: sqlite3.Connection) -> _Look:
    """The look through ``conn``, which it closes; a file that is not a database is
    refused as such."""
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        row = found and conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
        if revision == HEAD:
            return _Look(HEAD)
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite~_%' ESCAPE '~'"
        ).fetchall()
        return _Look(revision, frozenset(name for (name,) in tables) - {"alembic_version"})
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_NOTADB:
            raise _not_sqlite(db, exc) from exc
        raise
    finally:
        conn.close()


def _unreadable(db: Database, why: object) -> Unavailable:
    where = db.url.render_as_string(hide_password=True)
    return Unavailable(
        f"cannot read the metadata database {where} ({why}); Cairn reads an existing SQLite "
        "file before it opens it to write, so that a file it would refuse is left as it "
        "was. Check that it is a SQLite database this user may read, or point "
        "CAIRN_BACKEND_URI (--backend-uri) at another one"
    )


def absent(db: Database) -> str | None:
    """The path of the SQLite file ``db`` names, when there is no file there (yet); None
    otherwise. Opening such a database creates it: a command that only reads asks first."""
    path = db.url.database
    if db.dialect == "sqlite" and on_disk(path) and not os.path.lexists(path):
        return path
    return None


def current_revision(db: Database) -> str | None:
    look = _look(db)
    if look is not None:
        return look.revision
    try:
        with db.engine.connect() as conn:
            return _revision(conn)
    except DBAPIError as exc:  # the first time the database is opened: say which one
        where = db.url.render_as_string(hide_password=True)
        if getattr(exc.orig, "sqlite_errorcode", None) == _SQLITE_NOTADB:
            raise _not_sqlite(db, exc.orig) from exc
        raise Unavailable(
            f"cannot open the metadata database {where}: {exc.orig}; check that it exists "
            "and that this user may read and write it and its folder"
        ) from exc


def check_schema(db: Database) -> None:
    """Raise ``SchemaMismatch`` unless the database is exactly at this code's head."""
    missing = absent(db)
    if missing:  # opening it would create it
        raise SchemaMismatch(
            f"there is no metadata database at {missing} and CAIRN_MIGRATE is false: run "
            f"`cairn db upgrade` to create it ({HEAD}), or let Cairn create it on start "
            "(CAIRN_MIGRATE=true)"
        )
    current = current_revision(db)  # of a SQLite file, read-only (``_look``)
    if current != HEAD:
        raise SchemaMismatch(_mismatch_message(current, HEAD))


def upgrade(db: Database) -> None:
    """Migrate to head; refuse a database newer than this code, or not Cairn's."""
    look = _look(db)
    if look is not None:
        if look.revision == HEAD:
            return  # the usual start: no lock to take, nothing of Alembic's to load
        # refused before anything of Cairn's opens the file to write (WAL, lock files)
        if look.revision is None and look.tables:
            raise SchemaMismatch(_others_tables_message(db, look.tables))
        if look.revision is not None and not _known(_script(), look.revision):
            raise SchemaMismatch(_mismatch_message(look.revision, HEAD))
    elif current_revision(db) == HEAD:
        return
    from alembic import command

    script = _script()
    with named_lock(db, "migrate"), db.engine.connect() as conn:
        current = _revision(conn)
        if current is not None and not _known(script, current):
            raise SchemaMismatch(_mismatch_message(current, HEAD))
        if current == HEAD:
            return  # another process migrated it meanwhile
        if current is None:
            _refuse_others_tables(db, conn)
        conn.commit()  # end the implicit transaction of the revision read
        command.upgrade(_config(conn), "head")
        conn.commit()


def _refuse_others_tables(db: Database, conn: Connection) -> None:
    """Refuse a database with no Cairn revision that holds tables Cairn would not create in
    it: on SQLite any (a file is one application's: migrating it would commit Cairn's first
    migrations into it before failing on, say, its ``users`` table), on PostgreSQL those of
    Cairn's names (another application may share the database, but not the names)."""
    from cairn.store.metadata.schema import metadata

    found = set(inspect(conn).get_table_names()) - {"alembic_version"}
    conn.rollback()  # end the implicit transaction of the reflection
    if db.dialect != "sqlite":
        found &= set(metadata.tables)
    if found:
        raise SchemaMismatch(_others_tables_message(db, found))


def _others_tables_message(db: Database, found: Collection[str]) -> str:
    names = sorted(found)
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    where = db.url.render_as_string(hide_password=True)
    return (
        f"the metadata database {where} has no Cairn schema revision (no alembic_version "
        f"row) but already holds tables ({shown}): it is not a Cairn database, or it lost "
        "its alembic_version table. Point CAIRN_BACKEND_URI (--backend-uri) at Cairn's own "
        "database or at an empty one; Cairn does not migrate over tables it did not make."
    )


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _mismatch_message(current: str | None, head: str | None) -> str:
    script = _script()
    is_known = current is not None and _known(script, current)
    # an unmigrated or older database is refused only where CAIRN_MIGRATE=false (check_schema)
    if current is None:
        return (
            "the metadata database has no Cairn schema and CAIRN_MIGRATE is false: run "
            f"`cairn db upgrade` to create it ({head}), or let Cairn migrate on start "
            "(CAIRN_MIGRATE=true)"
        )
    if not is_known and not _CAIRN_REVISION.fullmatch(current):
        return (
            f"the metadata database is not a Cairn database: its schema revision {current} "
            "is another application's (an MLflow tracking database, say). Point Cairn at its "
            "own database (CAIRN_BACKEND_URI, --backend-uri) or at an empty one; to bring "
            "models over from MLflow, use `cairn import mlflow`."
        )
    if not is_known:
        return (
            f"the metadata database is at schema revision {current}, which this version of "
            f"Cairn does not know (its newest is {head}); it was written by a newer Cairn. "
            "Upgrade Cairn rather than point an older one at it."
        )
    return (
        f"the metadata database is at revision {current} and CAIRN_MIGRATE is false: run "
        f"`cairn db upgrade` to reach {head}, or let Cairn migrate on start (CAIRN_MIGRATE=true)"
    )
