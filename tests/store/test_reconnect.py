"""PostgreSQL connections are not pinged before use: a connection the server dropped is
found by the first statement, the pool is invalidated, and the transaction runs again on
a new connection when nothing of it was applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from cairn.store.metadata.database import Database


def _kill(db: Database, pids: set[int]) -> None:
    """Terminate these server backends (``db``'s pooled connections), from outside the pool."""
    outside = create_engine(db.url, poolclass=NullPool)
    try:
        with outside.connect() as admin:
            for pid in pids:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
    finally:
        outside.dispose()


def _backend_pid(s: Connection) -> int:
    return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    """PostgreSQL only: SQLite has no connections to lose."""
    database = Database(postgres_url)
    yield database
    database.dispose()


def test_a_read_on_a_dropped_connection_runs_again_on_a_new_one(pg: Database) -> None:
    first = pg.read(_backend_pid)
    _kill(pg, {first})
    assert pg.read(_backend_pid) != first


def test_a_write_that_failed_before_commit_runs_again(pg: Database) -> None:
    pg.write(lambda s: s.execute(text("CREATE TABLE reconnect_probe (n int)")))
    pooled = {pg.read(_backend_pid), pg.write(_backend_pid)}
    _kill(pg, pooled)
    pg.write(lambda s: s.execute(text("INSERT INTO reconnect_probe VALUES (1)")))
    count = pg.read(lambda s: s.execute(text("SELECT count(*) FROM reconnect_probe")).scalar())
    assert count == 1  # once: the failed attempt applied nothing
    pg.write(lambda s: s.execute(text("DROP TABLE reconnect_probe")))
