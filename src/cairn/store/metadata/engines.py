"""The engines of the metadata databases: how Cairn connects to SQLite and PostgreSQL.

``database.py`` decides what runs where and in which transaction; this module only says
how a connection is made and set up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from cairn.store.metadata.prepared import driver_execute

# libpq's network limits, unless the URL sets its own: a PostgreSQL that stops answering
# (a dead host, a network partition) fails a call within seconds instead of leaving it
# (and, for a call on the event loop, the whole worker) waiting for the kernel's TCP
# timeouts, which run to minutes.
PG_NETWORK = {
    "connect_timeout": 10,  # s
    "tcp_user_timeout": 15_000,  # ms: sent data unacknowledged this long drops the link
    "keepalives_idle": 30,  # s: an idle pooled connection is probed...
    "keepalives_interval": 10,
    "keepalives_count": 3,  # ...and dropped after three missed answers
    # PostgreSQL's default (4.0) prices a random page read as a spinning disk's: on a
    # small registry's tables its planner then scanned all model tags once per model of a
    # search's page (1.0 ms for 55 models; 0.5 by index). Metadata lives in memory or on
    # SSD, where 1.1 is the usual setting; at a million versions no plan got slower.
    "options": "-c random_page_cost=1.1",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000


def pg_budgeted_engine(url: URL, network: dict[str, Any], echo: bool, timeout_s: float) -> Engine:
    """Autocommit connections whose statements PostgreSQL cancels after ``timeout_s``:
    the reads of ``Database.inline(read_budget_s=...)`` blocks, on the event loop. Their own pool,
    so that no other call gets one; the timeout goes in the connection's start-up
    ``options`` (after the URL's own, if it has any) rather than a ``SET``, which a
    transaction-pooling proxy would leave on a server connection another client gets
    next."""
    timeout = f"-c statement_timeout={max(1, round(timeout_s * 1000))}"
    given = url.query.get("options")
    if isinstance(given, str):
        url = url.update_query_dict({"options": f"{given} {timeout}"})
    else:
        network = {**network, "options": f"{network.get('options', '')} {timeout}".strip()}
    return create_engine(
        url,
        pool_size=1,
        max_overflow=2,
        pool_recycle=1800,
        echo=echo,
        connect_args=network,
        isolation_level="AUTOCOMMIT",
    )


def sqlite_engine(url: URL, *, immediate: bool, echo: bool, pool_timeout_s: float = 30.0) -> Engine:
    """WAL, a busy timeout, foreign keys on, every commit synced, case-sensitive LIKE (as on
    PostgreSQL), temporary b-trees in memory; transactions begun with ``BEGIN IMMEDIATE``
    (writers) or ``BEGIN``."""
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=8,
        max_overflow=16,
        pool_timeout=pool_timeout_s,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        # the temporary b-trees of an ORDER BY or an IN (SELECT …) in memory, not in a
        # file: a model search that sorts in one went from 116 to 48 µs per statement.
        # They stay small: every such query pages with LIMIT, which bounds SQLite's sort.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        driver_execute(conn, begin).close()

    return engine
