"""Where a request's database work runs: on the event loop, or in the thread pool.

Every hop to the thread pool costs a thread hand-off: about 0.4 ms of CPU on this kind of
2-core machine (waking a worker, waking the loop, handing the GIL back and forth), more
than a point read, a one-model search or a create takes with SQLite. SQLite answers
in-process, without waiting on a network, so with SQLite the calls whose work is bounded
by one model run on the event loop (``brief``): authentication, point reads, creating a
model or a version, moving an alias, searching one model's versions. Work that can grow
with the whole registry (searching every model, gc, verify, imports) runs in the thread
pool (``def`` handlers, or ``brief(..., inline=False)``), and so does everything with
PostgreSQL, whose calls wait on round trips while the event loop serves other requests.

A write on the event loop never waits there for the SQLite writer lock: if another thread
or process holds it, the write gives up before doing anything (``WriterBusy``) and the
call runs again in the thread pool, where waiting costs nobody else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from cairn.service.registry import RegistryService
from cairn.store.metadata.database import WriterBusy

T = TypeVar("T")


async def brief(service: RegistryService, fn: Callable[[], T], *, inline: bool = True) -> T:
    """Run ``fn``, a database call bounded by one model (``inline=False``: one that is
    not), where it costs least (see the module docstring)."""
    if inline and service.db.in_process:
        try:
            with service.db.inline():
                return fn()
        except WriterBusy:
            pass  # nothing was written: wait for the writer in the thread pool
    return await run_in_threadpool(fn)
