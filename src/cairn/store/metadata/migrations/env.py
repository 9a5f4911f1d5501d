"""Alembic environment: Cairn runs migrations in-process (see ``store/metadata/migrate.py``).

On SQLite a batch operation that cannot alter a table in place rebuilds it: a copy, a
``DROP`` of the original, a rename. With foreign keys on (every Cairn connection has them,
``engines.py``) that ``DROP`` deletes the table's rows first and cascades the deletion to
every row referencing them: rebuilding ``model_versions`` would empty ``version_files``,
``version_tags`` and the rest. So, as SQLite's documentation prescribes for such rebuilds,
foreign keys are off while the migrations run (the pragma only takes effect outside a
transaction), each migration checks before it commits that every reference still holds
(``PRAGMA foreign_key_check``; rows that were already broken, written with foreign keys
off, say by the ``sqlite3`` shell, do not count), and they are on again afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection

from cairn.store.metadata.schema import metadata

connection: Connection = context.config.attributes["connection"]
sqlite = connection.dialect.name == "sqlite"


def _driver() -> Any:
    """The connection's sqlite3 connection: what it runs is not wrapped in a transaction."""
    return connection.connection.driver_connection


def _foreign_keys(on: bool) -> bool:
    """Set SQLite's foreign key enforcement on this connection; whether it took effect."""
    _driver().execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    return bool(_driver().execute("PRAGMA foreign_keys").fetchone()[0]) is on


def _broken(rows: Any) -> Counter[tuple[str, str]]:
    """``PRAGMA foreign_key_check``'s rows counted by (table, referenced table)."""
    return Counter((table, parent) for table, _rowid, parent, _fk in rows)


broken_before: Counter[tuple[str, str]] = Counter()


def _references_hold(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """After each migration, in its transaction: it left no row referencing one that is gone
    (rows that did so before, written with foreign keys off, are not its doing)."""
    grown = _broken(connection.exec_driver_sql("PRAGMA foreign_key_check")) - broken_before
    if grown:
        (table, parent), count = next(iter(grown.items()))
        raise RuntimeError(
            f"migration {step.up_revision_id or step.down_revision_ids} would leave {count} "
            f"row(s) of {table} referencing {parent} rows that are gone; nothing of it was "
            "applied"
        )


try:
    if sqlite:
        if not _foreign_keys(False):
            raise RuntimeError("SQLite migrations must start outside a transaction")
        broken_before = _broken(_driver().execute("PRAGMA foreign_key_check"))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=sqlite,
        compare_type=True,
        on_version_apply=_references_hold if sqlite else None,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite and connection.in_transaction():
        connection.commit()  # what Alembic began outside a migration (its version table)
finally:
    if sqlite:
        if connection.in_transaction():  # a failed migration's, already rolled back
            connection.rollback()
        if not _foreign_keys(True):  # never hand the pool a connection without them
            connection.invalidate()
