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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.service.registry import RegistryService
from cairn.store.metadata.database import INLINE_READ_S, NotInline

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


async def brief(service: RegistryService, fn: Callable[[], T], *, bounded: bool = True) -> T:
    """Run ``fn``, a database call bounded by one model (``bounded=False``: a read that can
    grow beyond that), where it costs least (see the module docstring)."""
    db = service.db
    if db.in_process or InFlight.count <= 1:
        try:
            with db.inline(read_budget_s=None if bounded else INLINE_READ_S):
                return fn()
        except NotInline:
            pass  # nothing was written, or the read took too long: the thread pool
    return await run_in_threadpool(fn)
