"""Where a request's database work runs: on the event loop, or in the thread pool.

Every hop to the thread pool costs a thread hand-off: about 0.4 ms of CPU on this kind of
2-core machine (waking a worker, waking the loop, handing the GIL back and forth), more
than a point read, a one-model search or a create takes with SQLite. The calls whose work
is bounded by one model (``brief``: authentication, point reads, creating a model or a
version, moving an alias, searching one model's versions) therefore run on the event loop
when that delays nobody:

- with SQLite always: it answers in-process, without waiting on a network;
- with PostgreSQL when the call's request is the only one this worker is serving
  (``InFlight`` counts them): while the loop waits on PostgreSQL's answer there is
  nothing else for it to do. A request that arrives meanwhile waits for that call (a few
  round trips; libpq's network limits in ``store/metadata/database.py`` bound a lost
  connection to seconds). Under concurrent requests the calls go to the thread pool,
  where their round trips overlap.

Reads that can grow with the registry, or with one model or version (searching every
model, listing versions with their manifests: ``brief(..., bounded=False)``), run there
too, on a budget: with SQLite as long as their statements finish within
``INLINE_READ_S`` (5 ms), with PostgreSQL (again only while their request is the only
one) as long as each statement does. Past that they are interrupted and run again in the
thread pool: a request whose filter scans a large registry holds the loop that long first.
Work that is long by nature (gc, verify, imports) runs in the thread pool (``def``
handlers).

A write on the event loop does not wait there beyond 2 ms for the SQLite writer lock
(``INLINE_WAIT_S``: enough for another worker's write to commit), nor to retry a
PostgreSQL transaction that met a concurrent one: it gives up having changed nothing
(``NotInline``) and the call runs again in the thread pool, where waiting costs nobody
else.

With SQLite, the event loop's commits are not synced to disk one by one: each request
waits, before it is answered, for a sync of the log that covers its commit, and the
commits of requests that run meanwhile share that sync (``_GroupSync``; why that is safe:
``store/metadata/wal_sync.py``). Eight clients creating versions at once got a quarter to
a third more done per second, at half the p99 latency; one client alone neither gains
nor loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.service.registry import RegistryService
from cairn.store.metadata.database import INLINE_READ_S, NotInline, SyncDebt
from cairn.store.metadata.wal_sync import WalSync

T = TypeVar("T")


class InFlight:
    """ASGI middleware (the outermost): how many HTTP requests this process is serving."""

    count = 0  # one event loop per worker process: a plain counter

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        InFlight.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            InFlight.count -= 1


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """While a request only waits (a long poll asleep between its reads), it is not one
    the worker is serving: the calls of others may take the event loop meanwhile."""
    InFlight.count -= 1
    try:
        yield
    finally:
        InFlight.count += 1


async def brief(service: RegistryService, fn: Callable[[], T], *, bounded: bool = True) -> T:
    """Run ``fn``, a database call bounded by one model (``bounded=False``: a read that can
    grow beyond that), where it costs least (see the module docstring)."""
    db = service.db
    if db.in_process or InFlight.count <= 1:
        # the commits of one turn of the event loop share one sync of the log
        wal, debt = db.wal, SyncDebt()
        try:
            with db.inline(
                read_budget_s=None if bounded else INLINE_READ_S,
                syncs=debt if wal is not None else None,
            ):
                return fn()
        except NotInline:
            pass  # nothing was written, or the read took too long: the thread pool
        finally:
            if wal is not None and debt.commit:
                await _synced(wal, debt.commit)  # before the answer, or an error
    return await run_in_threadpool(fn)


class _GroupSync:
    """Group commit of one SQLite log on the event loop (``store/metadata/wal_sync.py``).

    A commit that asks for its sync joins the group the loop will sync next, or starts
    one. The sync is a callback of the loop, put off for another turn of the loop as long
    as more commits came in during the last one (at most ``GROUP_TURNS`` turns): the
    requests ready to run meanwhile commit first and share it. With one client at a time
    the sync runs in the next turn, which costs an idle loop next to nothing.
    """

    def __init__(self, wal: WalSync) -> None:
        self.wal = wal
        self.next: asyncio.Future[None] | None = None

    async def synced(self, commit: int) -> None:
        """Return once ``commit`` is on disk."""
        loop = asyncio.get_running_loop()
        while not self.wal.covers(commit):
            if self.next is None or self.next.get_loop() is not loop:  # (a test's new loop)
                self.next = loop.create_future()
                loop.call_soon(self._sync, loop, self.wal.last_commit, GROUP_TURNS)
            await asyncio.shield(self.next)  # a caller that goes away cancels nobody's

    def _sync(self, loop: asyncio.AbstractEventLoop, seen: int, turns: int) -> None:
        if turns > 1 and self.wal.last_commit > seen:  # others committed: wait for more
            loop.call_soon(self._sync, loop, self.wal.last_commit, turns - 1)
            return
        group, self.next = self.next, None
        assert group is not None
        try:
            self.wal.sync_through(self.wal.last_commit)
        except BaseException as exc:  # the database's disk failed: nobody's commit is durable
            group.set_exception(exc)  # every waiter hears of it, none waits forever
            if not isinstance(exc, Exception):
                raise
        else:
            group.set_result(None)


# at most this many turns of the event loop a group sync waits for more commits to join
GROUP_TURNS = 4
_GROUPS: weakref.WeakKeyDictionary[WalSync, _GroupSync] = weakref.WeakKeyDictionary()


async def _synced(wal: WalSync, commit: int) -> None:
    group = _GROUPS.get(wal)
    if group is None:
        group = _GROUPS[wal] = _GroupSync(wal)
    await group.synced(commit)
