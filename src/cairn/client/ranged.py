"""Download a large object through a presigned link as several ranges at once, handed on
in order.

One TCP stream from S3 or Azure seldom carries more than ~100 MB/s; the stores serve
ranges of one object in parallel. The consumer (the cache, which writes and hashes) sees
one ordered stream, so resuming and verifying work as for a single GET. Memory stays at
``link_streams()`` segments in flight and the one being handed on.

A segment that fails transiently (reset, 408, 429, 5xx) is fetched again; one that fails
for good (an expired link: 403) ends the stream there, and the caller fetches the rest
another way.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from cairn.client.http_transport import STORE_RETRY_STATUSES
from cairn.errors import InvalidParameter

SEGMENT = 8 << 20
STREAMS = 4  # unless CAIRN_LINK_STREAMS says otherwise
MAX_STREAMS = 32
RANGED_ABOVE = 64 << 20  # smaller objects come in one GET (as uploads: parts above 64 MiB)
MAX_ATTEMPTS = 3


def link_streams() -> int:
    """How many ranges of one link to fetch at once: ``CAIRN_LINK_STREAMS`` or ``STREAMS``.
    1 reads each link as one GET (a bucket on the same machine or LAN gains nothing from
    more, and an emulator may lose)."""
    raw = os.environ.get("CAIRN_LINK_STREAMS", "").strip()
    if not raw:
        return STREAMS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_STREAMS:
        raise InvalidParameter(
            f"CAIRN_LINK_STREAMS must be a whole number from 1 to {MAX_STREAMS}, not {raw!r}"
        )
    return int(raw)


class _Refused(Exception):
    """A segment that will not come through this link."""


def ranged_get(
    bucket: httpx.Client,
    url: str,
    start: int,
    end: int,
    streams: int,
) -> Generator[bytes, None, int]:
    """Bytes ``[start, end)`` of ``url`` in order, ``streams`` ranges at a time; returns
    how many were delivered (all of them, or those before a segment that could not be
    had)."""
    spans = iter([(o, min(o + SEGMENT, end)) for o in range(start, end, SEGMENT)])
    came = 0
    with ThreadPoolExecutor(streams, "cairn-range") as pool:
        queued: deque[Future[bytes]] = deque()

        def more() -> None:
            if (span := next(spans, None)) is not None:
                queued.append(pool.submit(_segment, bucket, url, *span))

        for _ in range(streams):
            more()
        try:
            while queued:
                segment = queued.popleft()
                try:
                    data = segment.result()
                except (_Refused, httpx.HTTPError):
                    return came
                more()
                came += len(data)
                yield data
        finally:
            for pending in queued:
                pending.cancel()
    return came


def _segment(bucket: httpx.Client, url: str, first: int, stop: int) -> bytes:
    headers = {"Range": f"bytes={first}-{stop - 1}"}
    delay = 0.2
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = bucket.get(url, headers=headers)
        except httpx.TransportError:
            if attempt == MAX_ATTEMPTS:
                raise
        else:
            if response.status_code == 206 and len(response.content) == stop - first:
                if response.headers.get("content-range", "").startswith(f"bytes {first}-"):
                    return response.content
                raise _Refused  # another range than the one asked for
            if response.status_code not in STORE_RETRY_STATUSES or attempt == MAX_ATTEMPTS:
                raise _Refused
        time.sleep(delay)
        delay *= 2
    raise _Refused  # pragma: no cover
