"""Blobs in an object store through ``obstore``: S3 and S3-compatible endpoints first.

The code only uses what every obstore store offers (get, ranged get, head, list, put,
conditional create, delete, sign), so the same class serves GCS and Azure stores too
(see ``factory``); S3 is what the tests run against.

Writes: ``put`` streams the caller's chunks through a ``Verifier`` straight into
obstore's multipart upload. The verifier raises from inside the iterator when the size
or digest is wrong, which makes obstore abort the multipart upload, so an unverified
object never becomes visible under a blob key (no write-then-delete window). Blobs up to
one part are verified in memory first and written with a single PUT.

Resumable uploads keep their staged bytes as ordinary objects, one per part::

    uploads/<id>/info.json              declared digest and size
    uploads/<id>/parts/<offset:020d>    bytes [offset, offset + object size)

Why not a native S3 multipart upload: obstore exposes no UploadPart/ListParts API, part
numbers are capped at 10,000 and parts must be >= 5 MiB, and every process would have
to share the multipart id and part ETags somewhere. Part objects need none of that:

* The staged length is recomputed from a LIST by walking the chain of parts from offset
  0; no state is kept in memory, so any server process can take the next append, and a
  restart between appends loses nothing that was acknowledged.
* Each part is written with a conditional create (``If-None-Match: *``), so two racing
  appends at the same offset cannot both succeed: the loser gets ``Conflict``.
* An append buffers at most ``staging_part_size`` bytes; an interrupted append loses only
  its last, unwritten part, and what was received before the failure is still written.
* Presigned uploads are simply presigned PUTs of part objects, so clients can send
  parts in parallel, straight to the bucket.
* sha256 state cannot be saved between requests, so ``complete_upload`` re-reads the
  parts in order, hashes them while streaming them into the final key's multipart
  upload, and raises before that upload completes if the digest or size is wrong: the
  final key exists only once the whole content is verified. One read, one write.

Incomplete multipart uploads that an abort could not clean up (a crash mid-``put``) are
invisible and cost storage: give the bucket an AbortIncompleteMultipartUpload lifecycle
rule. Stale staged uploads are found and removed with ``stale_uploads``/``purge_stale``.

Every obstore call sits inside ``obstore_errors``, which translates its exceptions.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import timedelta
from time import time
from typing import Any

import obstore
import obstore.exceptions as obstore_exceptions
from obstore.store import AzureStore, GCSStore, S3Store

from cairn.domain.artifacts import UploadPart
from cairn.domain.digests import validate_digest
from cairn.errors import CairnError, Conflict, InvalidParameter, NotFound
from cairn.store.blobs import layout
from cairn.store.blobs.base import BlobInfo, UploadStatus
from cairn.store.blobs.integrity import (
    Verifier,
    clamp_range,
    guarded,
    held_back,
    validate_expiry,
    validate_offset,
    validate_older_than,
    validate_range,
    validate_size,
)
from cairn.store.blobs.obstore_errors import obstore_errors, translated_stream
from cairn.store.blobs.pump import Pump

MiB = 1 << 20
_MAX_PARTS = 9_000  # S3 allows 10,000 parts per multipart upload; keep a margin
_MAX_PRESIGNED_PART = 5 << 30  # largest single PUT S3 accepts
READ_SEGMENT = 8 * MiB  # staged parts are read back in ranges of this size,
READ_STREAMS = 4  # this many at once

SignableStore = S3Store | GCSStore | AzureStore


class S3BlobStore:
    """A ``BlobStore`` over an obstore S3 (or GCS/Azure) store.

    ``staging_part_size`` bounds an append's memory and the loss on interruption;
    ``upload_part_size`` is the smallest multipart chunk for ``put`` and completes (grown
    for very large blobs to stay under S3's part-count limit); ``max_concurrency`` parts
    are in flight at once.
    """

    def __init__(
        self,
        store: SignableStore,
        *,
        staging_part_size: int = 16 * MiB,
        upload_part_size: int = 8 * MiB,
        max_concurrency: int = 4,
        read_chunk_size: int = 1 * MiB,
        label: str | None = None,
    ) -> None:
        """``label``: how the store is named in messages (``from_uri``: its URI)."""
        if upload_part_size < 5 * MiB:
            raise InvalidParameter("upload_part_size must be at least 5 MiB (an S3 limit)")
        self._store = store
        self._staging_part_size = staging_part_size
        self._upload_part_size = upload_part_size
        self._max_concurrency = max_concurrency
        self._read_chunk_size = read_chunk_size
        self._label = label or type(store).__name__

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> S3BlobStore:
        """``s3://``, ``gs://`` or ``az://`` bucket[/prefix], configured from the
        environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``) by obstore."""
        scheme = uri.partition("://")[0].lower()
        options.setdefault("label", uri)
        with obstore_errors():
            if scheme == "s3":
                return cls(S3Store.from_url(uri), **options)
            if scheme == "gs":
                return cls(GCSStore.from_url(uri), **options)
            if scheme == "az":
                return cls(AzureStore.from_url(uri), **options)
        raise InvalidParameter(f"object-store URI {uri!r} is not s3://, gs:// or az://")

    def __repr__(self) -> str:
        # not the obstore store's own repr: an AzureStore configured without an account
        # name (the emulator, some credential chains) panics in it (obstore 0.12)
        return f"S3BlobStore({self._label!r})"

    # --- blobs -------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self.size(digest) is not None

    def size(self, digest: str) -> int | None:
        key = layout.blob_key(digest)
        with obstore_errors():
            try:
                return obstore.head(self._store, key)["size"]
            except FileNotFoundError:
                return None

    def put(self, digest: str, size: int, chunks: Iterable[bytes]) -> bool:
        verifier = Verifier(digest, size)
        if self.exists(digest):  # already stored: still read and verify what was sent, so
            for _ in verifier.wrap(chunks):  # an upload proves the bytes are held
                pass
            return False
        key = layout.blob_key(digest)
        self._write_verified(key, verifier, lambda: guarded(chunks), threaded=False)
        return True

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        start, end = validate_range(start, end)
        key = layout.blob_key(digest)
        not_found = f"blob {digest} not found"
        if start == 0 and end is None:
            with obstore_errors(not_found):
                result = obstore.get(self._store, key)
        else:
            size = self.size(digest)
            if size is None:
                raise NotFound(not_found)
            start, stop = clamp_range(digest, size, start, end)
            if start == stop:
                return iter(())
            with obstore_errors(not_found):
                result = obstore.get(self._store, key, options={"range": (start, stop)})
        return translated_stream(result.stream(self._read_chunk_size), not_found)

    def open_verified(self, digest: str) -> Iterator[bytes]:
        return held_back(self.open(digest), digest)

    def verify(self, digest: str, read: Callable[[int], None] | None = None) -> bool:
        size = self.size(digest)
        if size is None:
            raise NotFound(f"blob {digest} not found")
        try:
            for chunk in Verifier(digest, size).wrap(self.open(digest)):
                if read is not None:
                    read(len(chunk))
        except InvalidParameter:
            return False
        return True

    def delete(self, digest: str) -> None:
        key = layout.blob_key(digest)
        with obstore_errors(), suppress(FileNotFoundError, obstore_exceptions.NotFoundError):
            obstore.delete(self._store, key)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        with obstore_errors():
            for batch in obstore.list(self._store, prefix=layout.BLOBS_PREFIX, chunk_size=1000):
                for meta in batch:
                    digest = layout.digest_from_blob_key(meta["path"])
                    if digest is not None:
                        yield BlobInfo(digest, meta["size"], meta["last_modified"].timestamp())

    # --- resumable uploads -------------------------------------------------------------

    def begin_upload(self, digest: str, size: int) -> str:
        info = json.dumps({"digest": validate_digest(digest), "size": validate_size(size)})
        upload_id = layout.new_upload_id()
        with obstore_errors():
            obstore.put(
                self._store, layout.upload_info_key(upload_id), info.encode(), mode="create"
            )
        return upload_id

    def upload_status(self, upload_id: str) -> UploadStatus:
        digest, size = self._load_info(upload_id)
        return UploadStatus(upload_id, digest, size, self.upload_offset(upload_id))

    def upload_offset(self, upload_id: str) -> int:
        has_info, parts = self._scan(upload_id)
        if not has_info:
            raise NotFound(_upload_not_found(upload_id))
        return _chain(parts)[0]

    def append(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        offset = validate_offset(offset)
        digest, size = self._load_info(upload_id)
        current = _chain(self._scan(upload_id)[1])[0]
        if offset != current:
            raise Conflict(
                f"upload {upload_id} has {current} bytes staged; append at offset {current}, "
                f"not {offset}"
            )
        position, pending = offset, bytearray()
        failure: Exception | None = None
        for chunk in _until_failure(chunks):
            if isinstance(chunk, Exception):  # the client went away: keep what arrived
                failure = chunk
                break
            if position + len(pending) + len(chunk) > size:
                failure = InvalidParameter(
                    f"upload {upload_id} was declared as {size} bytes for {digest}; appending "
                    f"{len(chunk)} bytes at offset {position + len(pending)} would exceed it"
                )
                break
            pending += chunk
            while len(pending) >= self._staging_part_size:
                self._put_part(upload_id, position, pending[: self._staging_part_size])
                position += self._staging_part_size
                del pending[: self._staging_part_size]
        if pending:
            self._put_part(upload_id, position, pending)
            position += len(pending)
        if failure is not None:
            raise failure
        return position

    def complete_upload(self, upload_id: str) -> bool:
        digest, size = self._load_info(upload_id)
        staged, chain = _chain(self._scan(upload_id)[1])
        if staged < size:
            raise InvalidParameter(
                f"upload {upload_id} has {staged} of {size} bytes; append the rest from "
                f"offset {staged}, then complete"
            )
        verifier = Verifier(digest, size)
        try:
            if self.exists(digest):  # verify anyway: the answer must not depend on it
                for _ in verifier.wrap(self._read_parts(upload_id, chain)):
                    pass
                created = False
            else:
                key = layout.blob_key(digest)
                self._write_verified(
                    key, verifier, lambda: self._read_parts(upload_id, chain), threaded=True
                )
                created = True
        except InvalidParameter:
            self._remove_upload(upload_id)
            raise
        self._remove_upload(upload_id)
        return created

    def abort_upload(self, upload_id: str) -> None:
        if not self._remove_upload(upload_id):
            raise NotFound(_upload_not_found(upload_id))

    def stale_uploads(self, older_than_seconds: float) -> list[str]:
        cutoff = time() - validate_older_than(older_than_seconds)
        touched: dict[str, float] = {}
        with obstore_errors():
            for batch in obstore.list(self._store, prefix=layout.UPLOADS_PREFIX, chunk_size=1000):
                for meta in batch:
                    upload_id = layout.upload_id_from_key(meta["path"])
                    if upload_id is not None:
                        when = meta["last_modified"].timestamp()
                        touched[upload_id] = max(when, touched.get(upload_id, when))
        return sorted(u for u, when in touched.items() if when < cutoff)

    def purge_stale(self, older_than_seconds: float) -> int:
        return sum(self._remove_upload(u) > 0 for u in self.stale_uploads(older_than_seconds))

    # --- direct transfer and health ----------------------------------------------------

    def presign_get(self, digest: str, expires_s: int, *, known: bool = False) -> str | None:
        expires = timedelta(seconds=validate_expiry(expires_s))
        if not known and not self.exists(digest):
            raise NotFound(f"blob {digest} not found")
        with obstore_errors():
            return obstore.sign(self._store, "GET", layout.blob_key(digest), expires)

    def presign_upload(
        self, upload_id: str, expires_s: int, part_size: int | None = None
    ) -> list[UploadPart] | None:
        expires = timedelta(seconds=validate_expiry(expires_s))
        part_size = 64 * MiB if part_size is None else part_size
        if not isinstance(part_size, int) or not MiB <= part_size <= _MAX_PRESIGNED_PART:
            raise InvalidParameter(f"part size {part_size!r} must be 1 MiB to 5 GiB")
        _, size = self._load_info(upload_id)
        _, staged = self._scan(upload_id)
        spans = [(o, min(part_size, size - o)) for o in range(_chain(staged)[0], size, part_size)]
        plan = [(o, n) for o, n in spans if staged.get(o) != n]  # stored ones are not sent again
        keys = [layout.upload_part_key(upload_id, offset) for offset, _ in plan]
        with obstore_errors():
            urls = obstore.sign(self._store, "PUT", keys, expires) if keys else []
        # Azure's Put Blob names the kind of blob it creates; a signed URL cannot
        headers = (("x-ms-blob-type", "BlockBlob"),) if isinstance(self._store, AzureStore) else ()
        return [
            UploadPart(o, n, url, "PUT", headers) for (o, n), url in zip(plan, urls, strict=True)
        ]

    def check(self) -> None:
        with obstore_errors():
            next(iter(obstore.list(self._store, prefix=layout.BLOBS_PREFIX, chunk_size=1)), None)

    # --- internals ---------------------------------------------------------------------

    def _write_verified(
        self,
        key: str,
        verifier: Verifier,
        make_source: Callable[[], Iterable[bytes]],
        *,
        threaded: bool,
    ) -> None:
        """Write ``key`` from a source, completing the write only if ``verifier`` agrees.

        ``threaded`` reads the source on a helper thread (needed when the source calls
        obstore itself; see ``pump``).
        """
        if verifier.size <= self._upload_part_size:  # small: verify in memory, one PUT
            with obstore_errors():
                data = b"".join(verifier.wrap(make_source()))
                obstore.put(self._store, key, data, use_multipart=False)
            return
        part = -(-verifier.size // _MAX_PARTS)
        chunk_size = max(self._upload_part_size, -(-part // MiB) * MiB)
        with obstore_errors(), _source(make_source, threaded) as source:
            obstore.put(
                self._store,
                key,
                verifier.wrap(source),
                chunk_size=chunk_size,
                max_concurrency=self._max_concurrency,
            )

    def _load_info(self, upload_id: str) -> tuple[str, int]:
        key = layout.upload_info_key(upload_id)
        with obstore_errors(_upload_not_found(upload_id)):
            raw = obstore.get(self._store, key).bytes().to_bytes()
        try:
            info = json.loads(raw)
            return validate_digest(info["digest"]), validate_size(info["size"])
        except (ValueError, KeyError, TypeError, InvalidParameter) as exc:
            raise CairnError(f"upload {upload_id} has a corrupt info object") from exc

    def _scan(self, upload_id: str) -> tuple[bool, dict[int, int]]:
        """Whether the upload's info object exists, and its parts (offset → size)."""
        prefix = layout.upload_prefix(upload_id)
        has_info, parts = False, {}
        with obstore_errors():
            for batch in obstore.list(self._store, prefix=prefix, chunk_size=1000):
                for meta in batch:
                    if meta["path"] == prefix + layout.UPLOAD_INFO:
                        has_info = True
                    offset = layout.part_offset_from_key(upload_id, meta["path"])
                    if offset is not None:
                        parts[offset] = meta["size"]
        return has_info, parts

    def _put_part(self, upload_id: str, offset: int, data: bytearray) -> None:
        key = layout.upload_part_key(upload_id, offset)
        with obstore_errors():
            try:
                obstore.put(self._store, key, data, mode="create")
            except (obstore_exceptions.AlreadyExistsError, obstore_exceptions.PreconditionError):
                raise Conflict(
                    f"upload {upload_id} already has bytes at offset {offset}: another append "
                    "raced this one; resume from the upload offset"
                ) from None

    def _read_parts(self, upload_id: str, chain: list[tuple[int, int]]) -> Iterator[bytes]:
        """The staged bytes in order, read ``READ_STREAMS`` ranges of ``READ_SEGMENT`` at a
        time: one stream from a remote bucket is slower than the hashing, and ``complete``
        reads every byte of an upload that may be tens of GB."""
        not_found = f"upload {upload_id} lost a part while being read; it was aborted or purged"

        def read(key: str, start: int, end: int) -> Any:
            with obstore_errors(not_found):
                return obstore.get_range(self._store, key, start=start, end=end)

        spans = (
            (layout.upload_part_key(upload_id, offset), start, min(start + READ_SEGMENT, size))
            for offset, size in chain
            for start in range(0, size, READ_SEGMENT)
        )
        with ThreadPoolExecutor(READ_STREAMS, "cairn-s3-read") as pool:
            queued: deque[Future[Any]] = deque()
            try:
                for span in itertools.islice(spans, READ_STREAMS):
                    queued.append(pool.submit(read, *span))
                while queued:
                    data = queued.popleft().result()
                    if (following := next(spans, None)) is not None:
                        queued.append(pool.submit(read, *following))
                    yield data
            finally:
                for pending in queued:
                    pending.cancel()

    def _remove_upload(self, upload_id: str) -> int:
        """Delete everything under the upload's prefix; returns how many objects."""
        prefix = layout.upload_prefix(upload_id)
        with obstore_errors():
            paths = [
                meta["path"]
                for batch in obstore.list(self._store, prefix=prefix, chunk_size=1000)
                for meta in batch
            ]
            if paths:
                obstore.delete(self._store, paths)
        return len(paths)


def _chain(parts: dict[int, int]) -> tuple[int, list[tuple[int, int]]]:
    """Follow parts from offset 0 while each starts where the previous ended.

    Anything off the chain (a part orphaned by a race or a bad presigned PUT) is ignored
    and removed with the upload.
    """
    end, chain = 0, []
    while parts.get(end):
        chain.append((end, parts[end]))
        end += parts[end]
    return end, chain


def _until_failure(chunks: Iterable[bytes]) -> Iterator[bytes | Exception]:
    """Yield the chunks, then (instead of raising) the exception that ended them early."""
    try:
        for chunk in chunks:
            if chunk:
                yield chunk
    except Exception as exc:
        yield exc


@contextmanager
def _source(
    make_source: Callable[[], Iterable[bytes]], threaded: bool
) -> Iterator[Iterable[bytes]]:
    if threaded:
        with Pump(make_source) as chunks:
            yield chunks
    else:
        yield make_source()


def _upload_not_found(upload_id: str) -> str:
    return f"upload {upload_id} not found; it was completed, aborted or never begun"
