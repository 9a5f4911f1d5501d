"""Transactions for SQLite and PostgreSQL (their engines: ``engines.py``).

``Database.write(fn)`` and ``Database.read(fn)`` run ``fn(session)`` in one transaction
and commit (or roll back) it. Writes that lose a race the database can detect
(SQLite busy, PostgreSQL serialization failure or deadlock) are retried a bounded number
of times; every vendor error is translated to a Cairn error here, so nothing above
``store/`` sees SQLAlchemy or a driver.

SQLite: WAL, a busy timeout, foreign keys on, case-sensitive LIKE (as on PostgreSQL),
and write transactions opened with ``BEGIN IMMEDIATE`` so concurrent writers queue on
the database lock instead of failing at commit. The main thread's writer connection (the
event loop's, in a server) commits with ``synchronous=NORMAL`` and Cairn syncs the log
itself, at once or for a group of commits (``wal_sync.py``), and leaves checkpoints to
a thread (``wal_checkpoint.py``); every other connection keeps ``synchronous=FULL``.
Reads use plain ``BEGIN`` (one snapshot for all their statements) and never block
writers.

PostgreSQL: reads run in autocommit. Under PostgreSQL's READ COMMITTED every statement
sees its own snapshot even inside a transaction, so ``BEGIN``/``COMMIT`` around a read
bought no consistency, only two round trips. Pooled connections are not pinged before
use (another round trip on every checkout); a connection found dead instead invalidates
the pool and a read runs again at once on a new one, as does a write whose transaction
failed before its commit (nothing of it was applied). A connection lost during COMMIT
leaves the outcome unknown and is reported as ``Unavailable``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cairn.errors import CairnError, Conflict, InvalidParameter, Unavailable
from cairn.store.metadata.engines import (
    PG_NETWORK,
    pg_budgeted_engine,
    sqlite_engine,
)
from cairn.store.metadata.identity_watch import IdentityWatch, changed_here, recording
from cairn.store.metadata.prepared import compile_all, driver_execute
from cairn.store.metadata.sqlite_lock import Busy, WriterLock, on_disk
from cairn.store.metadata.sqlite_watch import SqliteIdentityWatch
from cairn.store.metadata.wal_checkpoint import BACKSTOP_PAGES, Checkpointer
from cairn.store.metadata.wal_sync import WalSync

T = TypeVar("T")
Tx = Connection  # what a transaction function receives; services name it without SQLAlchemy

MAX_ATTEMPTS = 8
# How long a transaction waits for a pooled connection when all are in use (SQLAlchemy's
# default) before it gives up with ``Unavailable``.
POOL_TIMEOUT_S = 30.0
# How long a write on the event loop (``Database.inline``) may wait for the SQLite writer
# lock before it gives up and runs in the thread pool: long enough for another worker's
# write to commit (a fraction of a millisecond; handing every contended write to the pool
# instead cost a third of the throughput of two workers' concurrent creates), short
# enough that a long writer elsewhere (gc, an import) stalls this worker's loop at most
# this long.
INLINE_WAIT_S = 0.002
# How long a read on the event loop that can grow with the registry
# (``Database.inline(read_budget_s=...)``: a search across models) may run before it is
# interrupted and runs again in the thread pool: its SQLite statements together, or each of
# its PostgreSQL statements (the ``statement_timeout`` of the connections it uses there). A
# search takes a fraction of a millisecond to a millisecond here; one whose filter makes it
# scan much of a large registry then holds the loop this long before it moves.
INLINE_READ_S = 0.005
_PROGRESS_STEPS = 1000  # SQLite VM instructions between two looks at the clock
_RETRYABLE_PG = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_QUERY_CANCELED = "57014"  # e.g. by statement_timeout
_READ_ONLY_PG = "25006"  # read_only_sql_transaction: a standby, default_transaction_read_only
READ_ONLY = (
    "metadata database is read-only (a standby server, or default_transaction_read_only "
    "is on): writes are refused"
)
_READ_ONLY_SQLITE = 8  # SQLITE_READONLY, the primary code of every "readonly" extended code
SQLITE_READ_ONLY = (
    "metadata database is read-only (this user may not write its SQLite file or folder, "
    "its file system is mounted read-only, or it is opened with mode=ro): writes are refused"
)
# What a write refused for that asks the caller to wait (Retry-After): about as long as a
# failover takes to promote a standby.
READ_ONLY_RETRY_S = 10


class NotInline(BaseException):
    """A call on the event loop (``Database.inline``) stopped having changed nothing: its
    write found the SQLite writer lock taken, or its PostgreSQL transaction met a concurrent
    one (a serialization failure, a deadlock) and was rolled back; or its read ran past its
    budget. Run the call again where it may wait and take its time (the thread pool). A
    BaseException, so that no ``except Exception`` between the call and ``inline``'s
    caller swallows it."""


_INLINE: ContextVar[bool] = ContextVar("cairn_inline_write", default=False)
_UNBUDGETED = nullcontext()  # the budget of a transaction that has none (reusable)
# set within an ``inline(read_budget_s=...)`` block: until when (monotonic) its reads may
# run on SQLite; on PostgreSQL, that they go to the connections with a statement_timeout
_READ_DEADLINE: ContextVar[float | None] = ContextVar("cairn_inline_read_deadline", default=None)
# set within an ``inline(syncs=...)`` block: the debt its commits leave (``wal_sync.py``)
_DEFERRED: ContextVar[SyncDebt | None] = ContextVar("cairn_deferred_sync", default=None)
# the transaction that ``read`` calls join inside ``Database.read_together``
_JOINED: ContextVar[tuple[Database, Connection] | None] = ContextVar(
    "cairn_joined_read", default=None
)


def _first_inline() -> bool:
    """Whether this is the first write of an ``inline`` block; the next ones are not."""
    first = _INLINE.get()
    if first:
        _INLINE.set(False)
    return first


class SyncDebt:
    """The last commit of an ``inline(syncs=...)`` block whose sync was left to the
    caller (0: none): ``Database.wal.sync_through(debt.commit)`` before answering."""

    __slots__ = ("commit",)

    def __init__(self) -> None:
        self.commit = 0


class RetryTransaction(Exception):
    """Raised by a store inside a transaction to have the whole transaction run again."""


class _Reconnect(Exception):
    """A pooled connection was found dead before the transaction committed."""


class Database:
    """One metadata database: a write engine and a read engine over the same URL."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout_s: float = POOL_TIMEOUT_S,
        echo: bool = False,
    ) -> None:
        self.url: URL = make_url(url)
        self._pool_timeout_s = pool_timeout_s
        self.dialect = self.url.get_backend_name()
        # SQLite writers queue on a lock that hands over at once (``sqlite_lock.py``)
        self._write_lock: AbstractContextManager[object] = nullcontext()
        self._pinned: dict[Engine, Connection] = {}  # the main thread's own, per engine
        self._pinned_busy: set[Engine] = set()  # of those, the ones in use
        self._watch: IdentityWatch | SqliteIdentityWatch | None = None
        self._watch_guard = threading.Lock()
        self.wal: WalSync | None = None  # SQLite in a file: the event loop's commits
        self._checkpointer: Checkpointer | None = None  # ...and their checkpoints
        if self.dialect == "sqlite":
            self._writer = sqlite_engine(
                self.url, immediate=True, echo=echo, pool_timeout_s=pool_timeout_s
            )
            self._reader = sqlite_engine(
                self.url, immediate=False, echo=echo, pool_timeout_s=pool_timeout_s
            )
            self._write_lock = WriterLock(self.url.database)
            self._budgeted = self._reader  # budgeted by a progress handler (_budget)
            if on_disk(self.url.database):
                self.wal = WalSync(self.url.database)
                self._checkpointer = Checkpointer(self.url.database, lock=self.wal.checkpointing)
        elif self.dialect == "postgresql":
            if self.url.drivername == "postgresql":
                self.url = self.url.set(drivername="postgresql+psycopg")
            engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=pool_timeout_s,
                pool_recycle=1800,
                echo=echo,
                connect_args=self._network_args(),
            )
            self._writer = engine
            # reads, and writes that are one statement (``write_statement``)
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._budgeted = pg_budgeted_engine(self.url, self._network_args(), echo, INLINE_READ_S)
        else:
            raise InvalidParameter(
                f"backend URI scheme {self.url.drivername!r} is not supported; "
                "use sqlite:///PATH or postgresql://USER@HOST/DB"
            )

    @property
    def engine(self) -> Engine:
        return self._writer

    def compile_statements(self) -> int:
        """Compile the stores' statements for this database now instead of on first use
        (``prepared.compile_all``); how many. A server worker does it before its first
        request; a CLI call, which runs a few, does not."""
        return compile_all(self._writer.dialect)

    def _network_args(self) -> dict[str, Any]:
        return {k: v for k, v in PG_NETWORK.items() if k not in self.url.query}

    @property
    def identity_watch(self) -> IdentityWatch | SqliteIdentityWatch | None:
        """Who knows of changes to users, grants and tokens (started on first use): see
        ``identity_watch.py`` (PostgreSQL) and ``sqlite_watch.py``; None for an
        in-memory SQLite database, which no other process can change."""
        if self._watch is not None:
            return self._watch
        with self._watch_guard:
            if self._watch is None:
                if self.dialect == "postgresql":
                    # what the engines pass psycopg, the URL's query (options=...) as it
                    # means: rendered back to a URL, a space in it would come out as '+',
                    # which libpq does not read as a space
                    _, params = self._writer.dialect.create_connect_args(self.url)
                    params.pop("context", None)  # SQLAlchemy's adapters: not the watch's
                    self._watch = IdentityWatch("", {**params, **self._network_args()})
                elif self.url.database not in (None, "", ":memory:"):
                    self._watch = SqliteIdentityWatch(self.url.database)
            return self._watch

    @property
    def in_process(self) -> bool:
        """True when a query waits on no network (SQLite): short calls may run inline."""
        return self.dialect == "sqlite"

    def dispose(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for conn in self._pinned.values():
            conn.close()
        self._pinned.clear()
        self._writer.dispose()
        self._reader.dispose()
        if self._budgeted is not self._reader:
            self._budgeted.dispose()
        if isinstance(self._write_lock, WriterLock):
            self._write_lock.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self.wal is not None:
            self.wal.close()

    @contextmanager
    def inline(
        self, read_budget_s: float | None = None, syncs: SyncDebt | None = None
    ) -> Iterator[None]:
        """Within this block, on the event loop, the first write hardly waits: if another
        thread or process holds the SQLite writer lock beyond ``INLINE_WAIT_S``, or its
        PostgreSQL transaction would have to be retried, it raises ``NotInline`` having
        changed nothing (later writes of the block wait and retry as usual, since the
        first one has committed and the block must not be run again). With
        ``read_budget_s`` (``INLINE_READ_S``), reads still running that long after the
        block began (SQLite), or a statement running that long (PostgreSQL), are
        interrupted: ``NotInline`` (a read changes nothing, so it may run again).

        With ``syncs`` (SQLite), the block's commits are not synced to disk before it
        ends: ``syncs.commit`` says which one the caller must see synced
        (``wal.sync_through``) before it answers (``wal_sync.py``)."""
        token = _INLINE.set(True)
        deadline = None if read_budget_s is None else time.monotonic() + read_budget_s
        budget = _READ_DEADLINE.set(deadline)
        deferred = _DEFERRED.set(syncs)
        try:
            yield
        finally:
            _DEFERRED.reset(deferred)
            _READ_DEADLINE.reset(budget)
            _INLINE.reset(token)

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction, retrying races the database reports."""
        lock = self._write_lock
        first_inline = _first_inline()
        if first_inline and isinstance(lock, WriterLock):
            lock = lock.within(INLINE_WAIT_S)
        try:
            with lock:
                return self._run(self._writer, fn, give_up=first_inline)
        except Busy:  # raised only while taking the lock: nothing was written
            raise NotInline from None

    def write_statement(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn``, whose one statement is the whole write, as a transaction of its own:
        with PostgreSQL in autocommit, without the BEGIN and COMMIT round trips (about
        150 µs here); with SQLite as ``write``. A statement that applied nothing (a
        serialization failure, a deadlock) is retried as ``write`` retries; one whose
        connection was lost while it ran is not, since whether it committed cannot be
        known: ``Unavailable``, as for a connection lost during a COMMIT."""
        if self.dialect != "postgresql":
            return self.write(fn)
        return self._run(self._reader, fn, give_up=_first_inline(), whole=True)

    def read(self, fn: Callable[[Connection], T]) -> T:
        joined = self._joined()
        return self._run(self._read_engine(), fn) if joined is None else fn(joined)

    def read_together(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, whose ``read`` calls then share one transaction: one snapshot on
        SQLite (what they read is consistent), one connection on PostgreSQL, and one
        check-out, begin and commit instead of one each. Retried as a whole, as a read is."""
        if self._joined() is not None:  # nested: the outer one's transaction
            return fn()

        def joined(session: Connection) -> T:
            token = _JOINED.set((self, session))
            try:
                return fn()
            finally:
                _JOINED.reset(token)

        return self._run(self._read_engine(), joined)

    def _read_engine(self) -> Engine:
        """Where a read runs: within a read budget, on connections that keep to it."""
        return self._reader if _READ_DEADLINE.get() is None else self._budgeted

    def _joined(self) -> Connection | None:
        """The transaction of this database's ``read_together`` around the caller."""
        joined = _JOINED.get()
        return joined[1] if joined is not None and joined[0] is self else None

    def _run(
        self,
        engine: Engine,
        fn: Callable[[Connection], T],
        *,
        give_up: bool = False,
        whole: bool = False,
    ) -> T:
        """``give_up``: a race that would be retried after a sleep raises ``NotInline``
        instead (the transaction was rolled back: nothing of it was applied). ``whole``:
        ``fn``'s statement commits by itself (``write_statement``): a connection lost while
        it ran is not retried."""
        delay = 0.002
        on_main = threading.current_thread() is threading.main_thread()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    self._pinned_session(engine) if on_main else self._session(engine) as session,
                    recording() as changes,
                    self._budget(session, engine),
                ):
                    try:
                        result = fn(session)
                    except DBAPIError as exc:
                        if exc.connection_invalidated:  # before COMMIT: nothing was applied
                            raise _Reconnect from exc
                        raise
                if (
                    self.wal is not None
                    and self._checkpointer is not None
                    and engine is self._writer
                    and self._pinned.get(engine) is session
                ):
                    _sync_or_defer(self.wal, self.wal.committed())
                    self._checkpointer.committed()
                if changes:  # committed
                    changed_here(changes)
                return result
            except _Reconnect as exc:
                if whole:
                    raise Unavailable(
                        "the metadata database's connection was lost during a write, which "
                        "may or may not have been applied; look before trying again"
                    ) from exc
                if attempt < MAX_ATTEMPTS:
                    continue  # the pool was invalidated: the next checkout connects anew
                raise Unavailable(f"metadata database unreachable: {exc.__cause__}") from exc
            except PoolTimeout as exc:  # waited pool_timeout_s already: no retry here
                raise Unavailable(
                    f"no metadata database connection came free within "
                    f"{self._pool_timeout_s:g} s (every pooled one is in use); try again"
                ) from exc
            except RetryTransaction:
                if give_up:
                    raise NotInline from None
                if attempt < MAX_ATTEMPTS:
                    time.sleep(delay * (1 + random.random()))  # noqa: S311
                    delay = min(delay * 2, 0.25)
                    continue
                raise Unavailable("a concurrent request kept conflicting; try again") from None
            except (OperationalError, IntegrityError, DBAPIError) as exc:
                if engine is self._budgeted and _sqlstate(exc) == _QUERY_CANCELED:
                    # past the read's statement_timeout, the statement or one the new
                    # connection ran for SQLAlchemy: a read, it changed nothing
                    raise NotInline from None
                if attempt < MAX_ATTEMPTS and _is_retryable(exc):
                    if give_up:
                        raise NotInline from None
                    time.sleep(delay * (1 + random.random()))  # noqa: S311 (jitter, not crypto)
                    delay = min(delay * 2, 0.25)
                    continue
                raise translate(exc) from exc
        raise Unavailable("the database stayed busy; try again")  # pragma: no cover

    def _budget(self, session: Connection, engine: Engine) -> AbstractContextManager[None]:
        """What keeps a transaction to a read budget: for a SQLite read of an
        ``inline(read_budget_s=...)`` block, a progress handler (``_interrupted_at``);
        for every other transaction nothing at all (PostgreSQL cancels the budgeted
        engine's statements itself: ``_run``)."""
        deadline = _READ_DEADLINE.get()
        if deadline is None or engine is not self._budgeted or self.dialect != "sqlite":
            return _UNBUDGETED
        return _interrupted_at(session, deadline)

    @contextmanager
    def _pinned_session(self, engine: Engine) -> Iterator[Connection]:
        """A transaction on the main thread's own connection of ``engine``.

        Short calls run inline on the event loop (``api/offload.py``), in uvicorn's main
        thread, one after the other: one connection per engine kept open serves them all,
        without a pool check-out and check-in per transaction (about a third of a SQLite
        point read's cost, 100 µs of a PostgreSQL one). A transaction nested in another,
        or on a connection found closed, takes the usual way.
        """
        conn = self._pinned.get(engine)
        if conn is not None and engine in self._pinned_busy:
            with self._session(engine) as session:
                yield session
            return
        if conn is None or conn.closed or conn.invalidated:
            conn = self._pinned[engine] = engine.connect()
            if engine is self._writer and self.wal is not None:
                # Cairn syncs this connection's commits itself (wal_sync.py), and a
                # thread checkpoints them (wal_checkpoint.py)
                driver_execute(conn, "PRAGMA synchronous=NORMAL").close()
                driver_execute(conn, f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}").close()
        self._pinned_busy.add(engine)
        try:
            with self._transaction(engine, conn):
                yield conn
        finally:
            self._pinned_busy.discard(engine)

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Connection]:
        """One transaction on one pooled connection (Core: no ORM unit of work to pay for)."""
        with engine.connect() as conn, self._transaction(engine, conn):
            yield conn

    @contextmanager
    def _transaction(self, engine: Engine, conn: Connection) -> Iterator[None]:
        if engine is self._writer or self.dialect != "postgresql":
            with conn.begin():
                yield
            return
        # autocommit: every statement is a transaction of its own, so SQLAlchemy's
        # begin and commit bookkeeping would only cost time (~40 µs, a fifth of a read)
        try:
            yield
        finally:
            if conn.in_transaction():  # begun by a statement run through SQLAlchemy
                conn.rollback()  # nothing to undo on the server: it ends the bookkeeping

    def ping(self) -> None:
        """Raise ``Unavailable`` unless the database answers, and takes writes (SQLite: no
        failed sync of the log is left unmended, ``WalSync.check``)."""
        try:
            with self._reader.connect() as conn:
                if self.dialect == "postgresql":
                    # a standby (after a failover) or default_transaction_read_only answers
                    # reads and refuses every write
                    read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
                else:
                    conn.exec_driver_sql("SELECT 1")
                    read_only = "on" if _sqlite_read_only(self.url) else "off"
        except DBAPIError as exc:
            if _sqlite_code(exc) == _READ_ONLY_SQLITE:  # not even readable so (no -shm)
                raise Unavailable(SQLITE_READ_ONLY, retry_after=READ_ONLY_RETRY_S) from exc
            raise Unavailable(f"metadata database unreachable: {exc.orig}") from exc
        if read_only != "off":
            message = READ_ONLY if self.dialect == "postgresql" else SQLITE_READ_ONLY
            raise Unavailable(message, retry_after=READ_ONLY_RETRY_S)
        if self.wal is not None:
            self.wal.check()


def _sqlite_read_only(url: URL) -> bool:
    """Whether SQLite refuses every write to the database ``url`` names, as far as can be
    told without writing (which would queue the probe behind the writers): opened
    read-only (a ``mode=ro`` or ``immutable`` URI), or a file this process may not write
    (its mode or owner, a file system mounted read-only)."""
    query = {key: str(value).lower() for key, value in url.query.items()}
    if query.get("mode") == "ro" or query.get("immutable") in ("1", "true", "yes", "on"):
        return True
    path = url.database
    return on_disk(path) and os.path.exists(path) and not os.access(path, os.W_OK)


def _sync_or_defer(wal: WalSync, commit: int) -> None:
    """A commit of the event loop's SQLite writer connection, which SQLite does not sync
    (``wal_sync.py``): synced now, or left to the ``inline(syncs=...)`` block around it."""
    debt = _DEFERRED.get()
    if debt is None:
        wal.sync_through(commit)
    else:
        debt.commit = commit


@contextmanager
def _interrupted_at(session: Connection, deadline: float) -> Iterator[None]:
    """SQLite: the transaction's statements are interrupted once ``deadline`` (monotonic)
    has passed, and the read gives up with ``NotInline``."""
    driver = session.connection.dbapi_connection
    spent = False

    def past_deadline() -> bool:
        nonlocal spent
        spent = time.monotonic() > deadline
        return spent

    driver.set_progress_handler(past_deadline, _PROGRESS_STEPS)  # type: ignore[union-attr]
    try:
        yield
    except Exception:
        if spent:  # SQLite's "interrupted", raw or wrapped: nothing to keep
            raise NotInline from None
        raise
    finally:
        driver.set_progress_handler(None, 0)  # type: ignore[union-attr]


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def _sqlite_code(exc: DBAPIError) -> int | None:
    """SQLite's primary result code of the error (its extended code's low byte)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_retryable(exc: DBAPIError) -> bool:
    if _sqlstate(exc) in _RETRYABLE_PG:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database table is locked" in text


def translate(exc: DBAPIError) -> CairnError:
    """Turn a database error that escaped a store into a Cairn error."""
    if isinstance(exc, IntegrityError):
        return Conflict("the change conflicts with a concurrent change; try again")
    if _is_retryable(exc):
        return Unavailable("the database is busy; try again")
    if _sqlstate(exc) == _READ_ONLY_PG:  # nothing was written: the transaction is rolled back
        return Unavailable(f"{READ_ONLY}; try again later", retry_after=READ_ONLY_RETRY_S)
    if _sqlite_code(exc) == _READ_ONLY_SQLITE:  # refused before anything was written
        return Unavailable(f"{SQLITE_READ_ONLY}; try again later", retry_after=READ_ONLY_RETRY_S)
    if isinstance(exc, OperationalError):
        return Unavailable(f"metadata database unavailable: {exc.orig}")
    return CairnError(f"metadata database error: {exc.orig}")
