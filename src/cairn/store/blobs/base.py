"""The ``BlobStore`` protocol: content-addressed, verified, resumable byte storage.

A blob is named by its digest (``sha256:<64 hex>``) and nothing else. Every write path
hashes and counts the bytes as they stream past and stores nothing unless both the size
and the digest match what the caller declared; a blob that already exists is not written
again. Memory stays flat whatever the blob size: bytes move as an iterable of chunks.

Two ways in:

* ``put(digest, size, chunks)``: one streamed request, all or nothing.
* Resumable uploads: ``begin_upload`` → ``append`` (as many times as needed, each at the
  offset the store reports through ``upload_offset``) → ``complete_upload``, which
  re-hashes the staged bytes and only then makes the blob exist. An upload id is 128
  random bits; the store keeps no state in memory, so any server process can serve
  any call of an upload, and a restart between calls loses nothing that was
  acknowledged.

Errors are Cairn errors only: ``InvalidParameter`` (bad digest, size, range or upload id;
content that does not match its declaration), ``NotFound`` (no such blob or upload),
``Conflict`` (an append at the wrong offset, or racing another append), ``Unavailable``
(the storage itself failed). Arguments are validated before any I/O.

Authorisation is not this layer's business, and neither is hiding existence: ``exists``
and ``put``'s return value reveal whether some bytes are stored. The service must only
tell a caller about blobs that caller is allowed to reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from cairn.domain.artifacts import UploadPart


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob, as listed by ``iter_blobs``: when it was stored, in Unix seconds."""

    digest: str
    size: int
    modified: float


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """A resumable upload in progress: what it will become and how much is staged."""

    upload_id: str
    digest: str
    size: int
    offset: int


class BlobStore(Protocol):
    """Persistence of verified, content-addressed blobs. See the module docstring."""

    # --- blobs -------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        ...

    def size(self, digest: str) -> int | None:
        """The stored blob's size in bytes, or ``None`` when it is not stored."""
        ...

    def put(self, digest: str, size: int, chunks: Iterable[bytes]) -> bool:
        """Stream ``chunks`` into the blob ``digest`` of ``size`` bytes.

        Returns ``False`` without reading ``chunks`` when the blob already exists, ``True``
        once the bytes are durable and verified. A size or digest mismatch raises
        ``InvalidParameter`` and leaves nothing behind. On object stores ``chunks`` is
        iterated inside the object-store client and must not itself call ``obstore``.
        """
        ...

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a blob, in chunks.

        ``end`` defaults to (and is clamped at) the blob's size; ``start`` may equal the
        size (no bytes). ``NotFound`` is raised by this call, not by the first ``next``
        (except if the blob is deleted in between).
        """
        ...

    def open_verified(self, digest: str) -> Iterator[bytes]:
        """The whole blob, checked against its digest as it streams.

        The last chunk is held back until the bytes are known to match; a mismatch raises
        ``DataCorrupted`` instead of yielding it. A backend may skip re-hashing bytes it
        has verified before and can tell are unchanged since (local disk: the same file,
        untouched, verified within the last hour). ``NotFound`` is raised by this call.
        """
        ...

    def verify(self, digest: str, read: Callable[[int], None] | None = None) -> bool:
        """Re-read and re-hash the stored blob; ``False`` if its bytes no longer match.
        ``read(n)`` hears of every ``n`` bytes read (a progress bar)."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the blob; deleting a blob that is not there is not an error."""
        ...

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for garbage collection and verification), in no set order."""
        ...

    # --- resumable uploads -------------------------------------------------------------

    def begin_upload(self, digest: str, size: int) -> str:
        """Start staging a blob; returns a new random upload id."""
        ...

    def upload_status(self, upload_id: str) -> UploadStatus:
        """Declared digest and size and the staged length, or ``NotFound``."""
        ...

    def upload_offset(self, upload_id: str) -> int:
        """How many bytes are staged: where the next ``append`` must start."""
        ...

    def append(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Stage ``chunks`` at ``offset``; returns the new staged length.

        ``offset`` must equal the staged length (else ``Conflict`` naming the right
        offset). Bytes past the declared size raise ``InvalidParameter``. If ``chunks``
        fails mid-way, what was received before the failure stays staged, so the client
        resumes from ``upload_offset``.
        """
        ...

    def complete_upload(self, upload_id: str) -> bool:
        """Verify the staged bytes and make them the blob.

        Fewer bytes than declared: ``InvalidParameter``, staging kept (keep appending).
        More bytes, or the wrong digest: ``InvalidParameter``, staging removed. Returns
        ``True`` if the blob was stored, ``False`` if it already existed (the staged bytes
        are still verified, then discarded). The upload id is gone afterwards.
        """
        ...

    def abort_upload(self, upload_id: str) -> None:
        """Discard an upload and its staged bytes (``NotFound`` if there is none)."""
        ...

    def stale_uploads(self, older_than_seconds: float) -> list[str]:
        """Ids of uploads untouched for longer than ``older_than_seconds``."""
        ...

    def purge_stale(self, older_than_seconds: float) -> int:
        """Abort stale uploads and remove abandoned temporary files; returns how many."""
        ...

    # --- direct transfer ---------------------------------------------------------------

    def presign_get(self, digest: str, expires_s: int, *, known: bool = False) -> str | None:
        """A URL that downloads the blob directly, or ``None`` if the backend has none.
        A blob not stored is ``NotFound``, unless the caller ``known``s it is stored (the
        metadata index says so): then nothing asks the store, whose check costs a round
        trip per blob on an object store."""
        ...

    def presign_upload(
        self, upload_id: str, expires_s: int, part_size: int | None = None
    ) -> list[UploadPart] | None:
        """URLs for the client to ``PUT`` the rest of an upload's bytes directly.

        The parts cover ``[upload_offset, size)`` in ``part_size`` pieces, leaving out
        those already stored whole (a resumed upload sends only what is missing), and may
        be sent in parallel; ``complete_upload`` then verifies them like appended bytes.
        ``None`` if the backend cannot presign (local disk: use ``append``).
        """
        ...

    # --- health ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``Unavailable`` unless the store answers (local disk: and is writable)."""
        ...
