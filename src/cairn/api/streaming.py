"""Bridges between Starlette's async request/response streams and the sync service.

The service reads uploads as a plain iterator of chunks, in a worker thread; each
``next`` fetches the next body chunk from the event loop. Memory stays at one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.requests import Request

T = TypeVar("T")


def body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a sync iterator; call only from a worker thread."""
    stream = request.stream()
    while True:
        try:
            chunk = anyio.from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk


async def run_with_body(request: Request, fn: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``fn(body_chunks)`` in a worker thread while the loop feeds it the body."""
    return await anyio.to_thread.run_sync(lambda: fn(body_chunks(request)))
