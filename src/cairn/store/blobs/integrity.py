"""Checks shared by every backend: argument validation and the streaming verifier."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

from cairn.domain.digests import validate_digest
from cairn.errors import DataCorrupted, InvalidParameter

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 ceiling


def validate_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidParameter(f"size {size!r} is not valid; use a whole number of bytes >= 0")
    return size


def validate_offset(offset: object) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidParameter(f"offset {offset!r} is not valid; use a whole number >= 0")
    return offset


def validate_range(start: object, end: object) -> tuple[int, int | None]:
    """Check a ``[start, end)`` request before any I/O; the size check comes later."""
    start = validate_offset(start)
    if end is None:
        return start, None
    if isinstance(end, bool) or not isinstance(end, int) or end < start:
        raise InvalidParameter(f"range end {end!r} is not valid; use None or an integer >= {start}")
    return start, end


def clamp_range(digest: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """Fit a validated range to a blob of ``size`` bytes (``end`` is clamped, as in HTTP)."""
    if start > size:
        raise InvalidParameter(
            f"range start {start} is past the end of blob {digest} ({size} bytes); "
            f"use a start between 0 and {size}"
        )
    return start, size if end is None else min(end, size)


def validate_expiry(expires_s: object) -> int:
    if (
        isinstance(expires_s, bool)
        or not isinstance(expires_s, int)
        or not 1 <= expires_s <= MAX_PRESIGN_SECONDS
    ):
        raise InvalidParameter(
            f"expiry {expires_s!r} is not valid; use 1 to {MAX_PRESIGN_SECONDS} seconds"
        )
    return expires_s


def validate_older_than(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise InvalidParameter(f"age {seconds!r} is not valid; use a number of seconds >= 0")
    return float(seconds)


class Verifier:
    """Counts and hashes bytes as they stream past, against a declared digest and size.

    ``update`` refuses a chunk that would go past the declared size before it is
    stored anywhere; ``finish`` checks the total and the digest.
    """

    __slots__ = ("_hash", "digest", "received", "size")

    def __init__(self, digest: str, size: int) -> None:
        self.digest = validate_digest(digest)
        self.size = validate_size(size)
        self.received = 0
        self._hash = hashlib.sha256()

    def check_room(self, length: int) -> None:
        if self.received + length > self.size:
            raise InvalidParameter(
                f"blob {self.digest} was declared as {self.size} bytes but more were sent; "
                "send exactly the declared size"
            )

    def update(self, chunk: bytes) -> None:
        self.check_room(len(chunk))
        self._hash.update(chunk)
        self.received += len(chunk)

    def finish(self) -> None:
        if self.received != self.size:
            raise InvalidParameter(
                f"blob {self.digest} was declared as {self.size} bytes but {self.received} "
                "were sent; send exactly the declared size"
            )
        self.check_hash("sha256:" + self._hash.hexdigest())

    def check_hash(self, actual: str) -> None:
        """Compare a digest computed elsewhere of the declared bytes with the declared one."""
        if actual != self.digest:
            raise InvalidParameter(
                f"the bytes sent for {self.digest} have digest {actual}; nothing was stored. "
                "Re-send the right content (or declare its real digest)"
            )

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``chunks`` through, verifying each; raises at the end on any mismatch.

        Raising from inside the iterator (rather than after it) is what lets an object
        store abort its multipart upload so the object never becomes visible.
        """
        for chunk in chunks:
            if chunk:
                self.update(chunk)
                yield chunk
        self.finish()


def held_back(
    chunks: Iterable[bytes], digest: str, on_match: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """Stored bytes on their way out, hashed as they pass; the last chunk is held back
    until the digest matches, so a reader never receives a complete wrong blob.

    A mismatch raises ``DataCorrupted`` instead of yielding the last chunk; ``on_match``
    runs once the bytes are known to be intact.
    """
    hasher = hashlib.sha256()
    held: bytes | None = None
    for chunk in chunks:
        hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if "sha256:" + hasher.hexdigest() != digest:
        raise DataCorrupted(f"stored bytes of {digest} do not match their digest")
    if on_match is not None:
        on_match()
    if held is not None:
        yield held


def sha256_of(chunks: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


class SourceFailed(Exception):
    """The caller's chunks raised ``error``; carried past OS-error translation unchanged."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def guarded(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The caller's chunks, with their failures wrapped in ``SourceFailed``.

    A client that disconnects may surface as ``ConnectionResetError``, an ``OSError``;
    this keeps it from being mistaken for a storage failure. The backends' error
    translators re-raise the original.
    """
    try:
        for chunk in chunks:
            if chunk:
                yield chunk
    except Exception as exc:
        raise SourceFailed(exc) from exc
