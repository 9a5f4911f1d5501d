"""PostgreSQL connections are not pinged before use: a connection the server dropped is
found by the first statement, the pool is invalidated, and the transaction runs again on
a new connection when nothing of it was applied."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from cairn.store.metadata.database import Database


def _kill_pooled_connections(db: Database) -> None:
    """Terminate every server backend of ``db``'s pool, from a connection outside it."""
    outside = create_engine(db.url, poolclass=NullPool)
    try:
        with outside.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            admin.commit()
    finally:
        outside.dispose()


def _backend_pid(s: Connection) -> int:
    return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pg(db: Database, backend: str) -> Database:
    if backend != "postgresql":
        pytest.skip("PostgreSQL's connection handling")
    return db


def test_a_read_on_a_dropped_connection_runs_again_on_a_new_one(pg: Database) -> None:
    first = pg.read(_backend_pid)
    _kill_pooled_connections(pg)
    assert pg.read(_backend_pid) != first


def test_a_write_that_failed_before_commit_runs_again(pg: Database) -> None:
    pg.write(lambda s: s.execute(text("CREATE TABLE reconnect_probe (n int)")))
    pg.read(_backend_pid)  # a pooled connection to drop
    pg.write(_backend_pid)
    _kill_pooled_connections(pg)
    pg.write(lambda s: s.execute(text("INSERT INTO reconnect_probe VALUES (1)")))
    count = pg.read(lambda s: s.execute(text("SELECT count(*) FROM reconnect_probe")).scalar())
    assert count == 1  # once: the failed attempt applied nothing
    pg.write(lambda s: s.execute(text("DROP TABLE reconnect_probe")))
