"""The body of a batch upload: several small blobs of one version in one request.

A version of many small files would otherwise cost a request, a transaction or two and
their round trips per file. The body is a sequence of frames, each an ASCII header line
``sha256:<64 hex> <size>\\n`` followed by exactly ``size`` bytes; nothing else, nothing
between frames. The client decides what goes in a batch (``BATCH_FILE_MAX`` and
``BATCH_BYTES`` per file and per body); the server bounds the body by its request limit and
the count by ``MAX_BATCH_BLOBS``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cairn.domain.digests import validate_digest
from cairn.errors import InvalidParameter

MEDIA_TYPE = "application/vnd.cairn.blobs"
MAX_BATCH_BLOBS = 1000  # frames per request
BATCH_FILE_MAX = 1 << 20  # the client batches files up to this size
BATCH_BYTES = 8 << 20  # and up to this many bytes of them per request
_HEADER_MAX = 7 + 64 + 1 + 20 + 1  # "sha256:" hex " " size "\n"


def frame_header(digest: str, size: int) -> bytes:
    return f"{digest} {size}\n".encode("ascii")


def frames(items: Sequence[tuple[str, bytes]]) -> Iterator[bytes]:
    """The body for ``(digest, content)`` pairs, as chunks."""
    for digest, content in items:
        yield frame_header(digest, len(content))
        yield content


def parse_frames(body: bytes) -> list[tuple[str, bytes]]:
    """``(digest, content)`` pairs of a batch body; a malformed body is InvalidParameter."""
    found: list[tuple[str, bytes]] = []
    view = memoryview(body)
    position = 0
    while position < len(body):
        if len(found) == MAX_BATCH_BLOBS:
            raise InvalidParameter(f"a batch holds at most {MAX_BATCH_BLOBS} blobs")
        end = body.find(b"\n", position, position + _HEADER_MAX)
        if end < 0:
            raise InvalidParameter(f"batch frame at byte {position}: no '<digest> <size>' line")
        digest, _, size_text = bytes(view[position:end]).decode("ascii", "replace").partition(" ")
        if not (size_text.isascii() and size_text.isdigit()):
            raise InvalidParameter(f"batch frame at byte {position}: size {size_text!r}")
        size, start = int(size_text), end + 1
        if start + size > len(body):
            raise InvalidParameter(
                f"batch frame at byte {position} ({digest}) declares {size} bytes; "
                f"{len(body) - start} follow"
            )
        found.append((validate_digest(digest), bytes(view[start : start + size])))
        position = start + size
    if not found:
        raise InvalidParameter("an empty batch: send at least one blob")
    return found
