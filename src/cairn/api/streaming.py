"""Bridges between Starlette's async request/response streams and the sync service.

The service reads an upload as a plain iterator of chunks in a worker thread. The event
loop reads the body ahead into a small bounded queue of ~1 MiB batches, so receiving
overlaps with hashing and writing, and memory stays at ``QUEUE_DEPTH`` batches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from starlette.requests import Request

T = TypeVar("T")

BATCH = 1 << 20
QUEUE_DEPTH = 2  # 4 held 9 to 12 MB more in four concurrent uploads, no faster (RESULTS.md)


async def _batched(request: Request) -> AsyncIterator[bytes]:
    """The body in ~1 MiB pieces: the server hands over ~64 KiB at a time, and one thread
    hop per small chunk would cost more than the hashing and writing together.

    The chunks are joined (one copy, on the event loop) rather than handed over as a list:
    the worker then makes one hash update and one write per MiB, and every such call
    releases and re-takes the GIL, which the event loop holds most of the time. Measured
    (benchmarks/transfer_attribution.py), handing over the unjoined chunks was ~15% slower.
    """
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if chunk:
            parts.append(chunk)
            size += len(chunk)
            if size >= BATCH:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts, size = [], 0
    if parts:
        yield b"".join(parts)


async def _read_ahead(request: Request, send: ObjectSendStream[bytes]) -> None:
    async with send:
        async for batch in _batched(request):
            await send.send(batch)


def _drain(receive: ObjectReceiveStream[bytes]) -> Iterator[bytes]:
    """The queued batches as a sync iterator; runs in the worker thread."""

    async def next_batch() -> bytes | None:
        try:
            return await receive.receive()
        except anyio.EndOfStream:
            return None

    while (batch := anyio.from_thread.run(next_batch)) is not None:
        yield batch


async def run_with_body(request: Request, fn: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``fn(body)`` in a worker thread while the loop reads the body ahead of it.

    When ``fn`` is done (or fails: a size or digest mismatch) the reader is cancelled, and
    ``fn``'s own exception is raised as it is, not wrapped in an exception group.
    """
    send, receive = anyio.create_memory_object_stream[bytes](QUEUE_DEPTH)
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_read_ahead, request, send)
        with receive:
            try:
                result.append(await anyio.to_thread.run_sync(lambda: fn(_drain(receive))))
            except Exception as exc:
                failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return result[0]
