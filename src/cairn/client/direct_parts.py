"""Send a large file straight to the object store, through the presigned part URLs of its
upload ticket.

* Several parts travel at once (``PART_WORKERS``): one TCP stream to S3 or Azure seldom
  carries more than ~100 MB/s, and the store takes parts in any order.
* Each part is streamed from the file (``Content-Length`` set, as presigned PUTs
  require), so memory stays at a chunk per part in flight whatever the part size.
* A part that fails transiently (connection reset, 408, 429, 5xx: S3's ``SlowDown`` and
  ``InternalError`` ask to be retried) is sent again with backoff, and only that part.
* Links expire (``PRESIGN_SECONDS`` on the server; the store answers 403). The parts
  still to send are then sent through a fresh ticket, once per round; the parts already
  stored are not sent again.

The server verifies the whole content at ``complete``, so nothing here is trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cairn.client.http_transport import STORE_RETRY_STATUSES
from cairn.client.transfer import CHUNK
from cairn.domain.progress import Progress
from cairn.errors import CairnError, Unavailable

PART_WORKERS = 4
MAX_ATTEMPTS = 5
EXPIRED = frozenset({401, 403})  # an expired or revoked signature
Part = Mapping[str, Any]  # a ticket's part: offset, length, url, method, headers


class _Expired(Exception):
    """The store refused a part's link: a fresh ticket may carry a valid one."""


def send_parts(
    bucket: httpx.Client,
    source: Path,
    parts: Sequence[Part],
    progress: Progress,
    fresh_parts: Callable[[], Sequence[Part]],
) -> None:
    """PUT ``parts`` of ``source``, ``PART_WORKERS`` at once; ``fresh_parts()`` asks the
    server for the upload's current links when some have expired."""
    done: set[tuple[int, int]] = set()
    for _ in range(MAX_ATTEMPTS):
        todo = [p for p in parts if _span(p) not in done]
        if not todo:
            return
        expired = _send_round(bucket, source, todo, progress, done)
        if not expired:
            return
        parts = fresh_parts()
    raise Unavailable(f"the object store keeps refusing the links for {source.name!r}")


def _send_round(
    bucket: httpx.Client,
    source: Path,
    parts: Sequence[Part],
    progress: Progress,
    done: set[tuple[int, int]],
) -> bool:
    """Send ``parts``, adding each stored one to ``done``; True if any link had expired."""

    def send(part: Part) -> bool:
        try:
            _send_part(bucket, source, part, progress)
        except _Expired:
            return True
        done.add(_span(part))
        return False

    with ThreadPoolExecutor(min(PART_WORKERS, len(parts)), "cairn-part") as pool:
        return any(list(pool.map(send, parts)))


def _send_part(bucket: httpx.Client, source: Path, part: Part, progress: Progress) -> None:
    offset, length = _span(part)
    headers = {**dict(part.get("headers") or {}), "Content-Length": str(length)}
    delay = 0.2
    for attempt in range(1, MAX_ATTEMPTS + 1):
        sent = [0]
        try:
            response = bucket.request(
                part.get("method", "PUT"),
                part["url"],
                content=_read(source, offset, length, progress, sent),
                headers=headers,
            )
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                return
            if response.status_code in EXPIRED:
                progress.advance(-sent[0])
                raise _Expired
            if response.status_code not in STORE_RETRY_STATUSES:
                raise CairnError(
                    f"object store refused the part at {offset} of {source.name!r}: "
                    f"HTTP {response.status_code} {response.text[:200]}"
                )
            failure = f"HTTP {response.status_code}"
        progress.advance(-sent[0])  # the retry starts the part again
        if attempt == MAX_ATTEMPTS:
            raise Unavailable(
                f"the part at {offset} of {source.name!r} failed {attempt} times: {failure}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _read(
    source: Path, offset: int, length: int, progress: Progress, sent: list[int]
) -> Iterator[bytes]:
    with source.open("rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise CairnError(f"{source} became shorter while it was being sent")
            left -= len(chunk)
            sent[0] += len(chunk)
            progress.advance(len(chunk))
            yield chunk


def _span(part: Part) -> tuple[int, int]:
    return int(part["offset"]), int(part["length"])
