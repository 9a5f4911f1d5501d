"""``Database``: how vendor failures of its engines reach callers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cairn.errors import Unavailable
from cairn.store.metadata.database import Database


@pytest.fixture
def small(db_url: str) -> Iterator[Database]:
    """The database with a pool that gives up at once when every connection is taken."""
    database = Database(db_url, pool_size=1, pool_timeout_s=0.01)
    yield database
    database.dispose()


def _take_every_connection(db: Database) -> list[Connection]:
    taken: list[Connection] = []
    while True:
        try:
            taken.append(db.engine.connect())
        except PoolTimeout:
            return taken


def test_a_pool_with_no_connection_free_is_a_503_not_an_internal_error(small: Database) -> None:
    """Every pooled connection busy (a burst of slow requests) past the pool's timeout is
    Unavailable (503, worth another try), not SQLAlchemy's TimeoutError escaping the
    store as a 500 INTERNAL_ERROR."""
    taken = _take_every_connection(small)
    try:
        with pytest.raises(Unavailable, match="no metadata database connection"):
            small.write(lambda s: s.execute(text("SELECT 1")).scalar())
    finally:
        for conn in taken:
            conn.close()
    assert small.write(lambda s: s.execute(text("SELECT 1")).scalar()) == 1
