"""Bridges between Starlette's async request/response streams and the sync service.

The service reads uploads as a plain iterator of chunks, in a worker thread; each
``next`` fetches the next body chunk from the event loop. Memory stays at one chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.requests import Request

T = TypeVar("T")


BATCH = 1 << 20


async def _batched(request: Request) -> AsyncIterator[bytes]:
    """The body in ~1 MiB pieces: the server hands over ~64 KiB at a time, and one thread
    hop per small chunk would cost more than the hashing and writing together."""
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) >= BATCH:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a sync iterator; call only from a worker thread."""
    stream = _batched(request)

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        yield chunk


async def run_with_body(request: Request, fn: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``fn(body_chunks)`` in a worker thread while the loop feeds it the body."""
    return await anyio.to_thread.run_sync(lambda: fn(body_chunks(request)))
