"""Where a request's database work runs: on the event loop, or in the thread pool.

Every hop to the thread pool costs a thread hand-off (about 0.2 ms of CPU here, more than
a point read itself). SQLite answers in-process, without waiting on a network, so with
SQLite the short database calls of a request (authentication, point reads) run on the
event loop; with PostgreSQL a call waits on round trips, and runs in the thread pool so
that the event loop serves other requests meanwhile. Long or writing work always runs in
the thread pool: handlers that do it are plain ``def`` endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from cairn.service.registry import RegistryService

T = TypeVar("T")


async def brief(service: RegistryService, fn: Callable[[], T]) -> T:
    """Run ``fn``, a short database call, where it costs least (see the module docstring)."""
    if service.db.in_process:
        return fn()
    return await run_in_threadpool(fn)
