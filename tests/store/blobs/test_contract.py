"""The BlobStore contract, run against every backend (local disk and S3 over moto)."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from cairn.domain.artifacts import UploadPart
from cairn.errors import (
    CairnError,
    Conflict,
    DataCorrupted,
    InvalidParameter,
    NotFound,
    Unavailable,
)
from cairn.store.blobs import BlobStore, UploadStatus
from cairn.store.blobs.layout import blob_key

from .conftest import Harness

MiB = 1 << 20


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.open(digest, start, end))


def interrupted(data: bytes, after: int) -> Iterator[bytes]:
    """The first ``after`` bytes of ``data``, then the client goes away."""
    yield from chunked(data[:after], 1000)
    raise ConnectionResetError("client went away")


DATA = random.Random(20261126).randbytes(300_000)  # fixed: test ids must match across workers
DIGEST = digest_of(DATA)


# --- put, read, dedup ------------------------------------------------------------------


def test_put_then_exists_size_and_read(blob_store: BlobStore, harness: Harness) -> None:
    assert not blob_store.exists(DIGEST)
    assert blob_store.size(DIGEST) is None

    assert blob_store.put(DIGEST, len(DATA), chunked(DATA)) is True

    assert blob_store.exists(DIGEST)
    assert blob_store.size(DIGEST) == len(DATA)
    assert read(blob_store, DIGEST) == DATA
    assert harness.stored() == [blob_key(DIGEST)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA),
        (1000, None, DATA[1000:]),
        (1000, 2000, DATA[1000:2000]),
        (0, 1, DATA[:1]),
        (5, 5, b""),
        (len(DATA) - 10, len(DATA) + 500, DATA[-10:]),  # end clamped, as in HTTP
        (len(DATA), None, b""),
    ],
)
def test_range_reads(blob_store: BlobStore, start: int, end: int | None, expected: bytes) -> None:
    blob_store.put(DIGEST, len(DATA), [DATA])
    assert read(blob_store, DIGEST, start, end) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 5), (len(DATA) + 1, None)])
def test_invalid_ranges_refused(blob_store: BlobStore, start: int, end: int | None) -> None:
    blob_store.put(DIGEST, len(DATA), [DATA])
    with pytest.raises(InvalidParameter):
        blob_store.open(DIGEST, start, end)


def test_reads_come_in_bounded_chunks(blob_store: BlobStore) -> None:
    data = os.urandom(9 * MiB)
    digest = digest_of(data)
    blob_store.put(digest, len(data), chunked(data))
    chunks = list(blob_store.open(digest))
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 4 * MiB
    assert b"".join(chunks) == data


def test_second_put_verifies_the_bytes_and_returns_false(
    blob_store: BlobStore, harness: Harness
) -> None:
    """A put of stored bytes still reads and checks what was sent: an upload is how a
    caller who may not see the existing copy proves it holds them (docs/security.md)."""
    assert blob_store.put(DIGEST, len(DATA), [DATA]) is True
    assert blob_store.put(DIGEST, len(DATA), [DATA]) is False
    with pytest.raises(InvalidParameter):
        blob_store.put(DIGEST, len(DATA), [b"x" * len(DATA)])
    assert harness.stored() == [blob_key(DIGEST)]
    assert read(blob_store, DIGEST) == DATA


def test_empty_blob(blob_store: BlobStore) -> None:
    empty = digest_of(b"")
    assert blob_store.put(empty, 0, []) is True
    assert blob_store.size(empty) == 0
    assert read(blob_store, empty) == b""
    assert blob_store.verify(empty)


# --- put refuses what does not match, leaving nothing ----------------------------------


@pytest.mark.parametrize("length", [300_000, 12 * MiB], ids=["single", "multipart"])
def test_put_with_wrong_digest_leaves_nothing(harness: Harness, length: int) -> None:
    data = os.urandom(length)
    claimed = digest_of(data + b"!")
    with pytest.raises(InvalidParameter, match="digest"):
        harness.store.put(claimed, length, chunked(data))
    assert not harness.store.exists(claimed)
    assert harness.stored() == []


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1, 0])
def test_put_with_wrong_size_leaves_nothing(harness: Harness, declared: int) -> None:
    with pytest.raises(InvalidParameter, match="declared"):
        harness.store.put(DIGEST, declared, chunked(DATA))
    assert not harness.store.exists(DIGEST)
    assert harness.stored() == []


@pytest.mark.parametrize("length", [300_000, 12 * MiB], ids=["single", "multipart"])
def test_put_interrupted_by_client_leaves_nothing(harness: Harness, length: int) -> None:
    data = os.urandom(length)
    with pytest.raises(ConnectionResetError):  # the client's error, not a storage error
        harness.store.put(digest_of(data), len(data), interrupted(data, length // 2))
    assert harness.stored() == []


def test_put_of_stored_bytes_interrupted_by_client_raises_the_clients_error(
    harness: Harness,
) -> None:
    """The second put of a stored blob still reads what is sent; a client that goes away
    meanwhile is its own error, as for a first put (not the store's wrapper of it)."""
    harness.store.put(DIGEST, len(DATA), [DATA])
    with pytest.raises(ConnectionResetError):
        harness.store.put(DIGEST, len(DATA), interrupted(DATA, len(DATA) // 2))
    assert harness.stored() == [blob_key(DIGEST)]


def test_large_blob_streamed_in_small_chunks(blob_store: BlobStore) -> None:
    data = os.urandom(21 * MiB)
    digest = digest_of(data)
    assert blob_store.put(digest, len(data), chunked(data, 16 * 1024))
    assert blob_store.size(digest) == len(data)
    assert hashlib.sha256(b"".join(blob_store.open(digest))).hexdigest() == digest[7:]
    assert read(blob_store, digest, 20 * MiB, 20 * MiB + 5) == data[20 * MiB : 20 * MiB + 5]


# --- resumable uploads -----------------------------------------------------------------


def test_upload_interrupted_then_resumed(blob_store: BlobStore, harness: Harness) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    assert blob_store.upload_offset(upload_id) == 0

    with pytest.raises(ConnectionResetError):
        blob_store.append(upload_id, 0, interrupted(DATA, 123_000))
    offset = blob_store.upload_offset(upload_id)
    assert offset == 123_000  # everything received before the failure is kept

    assert blob_store.append(upload_id, offset, chunked(DATA[offset:200_000])) == 200_000
    assert blob_store.upload_status(upload_id) == UploadStatus(
        upload_id, DIGEST, len(DATA), 200_000
    )
    assert blob_store.append(upload_id, 200_000, chunked(DATA[200_000:])) == len(DATA)
    assert not blob_store.exists(DIGEST)  # staged, not yet a blob

    assert blob_store.complete_upload(upload_id) is True
    assert read(blob_store, DIGEST) == DATA
    assert harness.stored() == [blob_key(DIGEST)]
    with pytest.raises(NotFound):
        blob_store.upload_offset(upload_id)


def test_large_upload_in_two_appends(blob_store: BlobStore) -> None:
    data = os.urandom(21 * MiB)
    digest = digest_of(data)
    upload_id = blob_store.begin_upload(digest, len(data))
    assert blob_store.append(upload_id, 0, chunked(data[: 9 * MiB], 16 * 1024)) == 9 * MiB
    assert blob_store.append(upload_id, 9 * MiB, chunked(data[9 * MiB :])) == len(data)
    assert blob_store.complete_upload(upload_id) is True
    heard: list[int] = []
    assert blob_store.verify(digest, heard.append)
    assert sum(heard) == len(data) and len(heard) > 1  # told as it reads, not once at the end
    assert read(blob_store, digest, 9 * MiB - 3, 9 * MiB + 3) == data[9 * MiB - 3 : 9 * MiB + 3]


def test_upload_ids_are_random(blob_store: BlobStore) -> None:
    ids = {blob_store.begin_upload(DIGEST, len(DATA)) for _ in range(5)}
    assert len(ids) == 5
    assert all(len(i) == 32 for i in ids)


@pytest.mark.parametrize("wrong", [0, 999, 1001, 5000])
def test_append_at_wrong_offset_is_a_conflict(blob_store: BlobStore, wrong: int) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(upload_id, 0, [DATA[:1000]])
    with pytest.raises(Conflict, match="append at offset 1000, not"):
        blob_store.append(upload_id, wrong, [DATA[wrong : wrong + 10]])
    assert blob_store.upload_offset(upload_id) == 1000


def test_append_past_declared_size_is_refused(blob_store: BlobStore) -> None:
    data = b"abcdef"
    upload_id = blob_store.begin_upload(digest_of(data), len(data))
    with pytest.raises(InvalidParameter, match="would exceed"):
        blob_store.append(upload_id, 0, [b"abc", b"def", b"g"])
    assert blob_store.upload_offset(upload_id) == 6  # the chunks that fitted are kept
    with pytest.raises(InvalidParameter, match="would exceed"):
        blob_store.append(upload_id, 6, [b"x"])
    assert blob_store.complete_upload(upload_id) is True
    assert read(blob_store, digest_of(data)) == data


def test_racing_appends_one_wins(blob_store: BlobStore) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    started, release = threading.Event(), threading.Event()
    outcome: list[BaseException | int] = []

    def slow() -> Iterator[bytes]:
        yield DATA[:1000]
        started.set()
        release.wait(10)
        yield DATA[1000:2000]

    def run_slow() -> None:
        try:
            outcome.append(blob_store.append(upload_id, 0, slow()))
        except CairnError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run_slow)
    thread.start()
    assert started.wait(10)
    try:
        fast: BaseException | int = blob_store.append(upload_id, 0, [DATA[:500]])
    except CairnError as exc:
        fast = exc
    release.set()
    thread.join(10)

    results = [fast, *outcome]
    assert sum(isinstance(r, Conflict) for r in results) == 1
    (winner,) = [r for r in results if isinstance(r, int)]
    assert blob_store.upload_offset(upload_id) == winner


def test_complete_before_all_bytes_keeps_the_upload(blob_store: BlobStore) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(upload_id, 0, [DATA[:1000]])
    with pytest.raises(InvalidParameter, match="from offset 1000"):
        blob_store.complete_upload(upload_id)
    blob_store.append(upload_id, 1000, chunked(DATA[1000:]))
    assert blob_store.complete_upload(upload_id) is True


@pytest.mark.parametrize("length", [300_000, 12 * MiB], ids=["single", "multipart"])
def test_complete_with_wrong_content_is_refused_and_cleaned(harness: Harness, length: int) -> None:
    data = os.urandom(length)
    claimed = digest_of(os.urandom(length))
    upload_id = harness.store.begin_upload(claimed, length)
    harness.store.append(upload_id, 0, chunked(data))
    with pytest.raises(InvalidParameter, match="digest"):
        harness.store.complete_upload(upload_id)
    assert not harness.store.exists(claimed)
    with pytest.raises(NotFound):
        harness.store.upload_offset(upload_id)
    assert harness.stored() == []


def test_complete_when_blob_exists_verifies_and_discards(
    blob_store: BlobStore, harness: Harness
) -> None:
    blob_store.put(DIGEST, len(DATA), [DATA])
    good = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(good, 0, [DATA])
    assert blob_store.complete_upload(good) is False

    bad = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(bad, 0, [bytes(len(DATA))])
    with pytest.raises(InvalidParameter):
        blob_store.complete_upload(bad)
    assert harness.stored() == [blob_key(DIGEST)]
    assert read(blob_store, DIGEST) == DATA


def test_empty_upload(blob_store: BlobStore) -> None:
    empty = digest_of(b"")
    upload_id = blob_store.begin_upload(empty, 0)
    assert blob_store.complete_upload(upload_id) is True
    assert blob_store.size(empty) == 0


def test_abort(blob_store: BlobStore, harness: Harness) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(upload_id, 0, chunked(DATA[:100_000]))
    blob_store.abort_upload(upload_id)
    assert harness.stored() == []
    for call in (
        lambda: blob_store.upload_offset(upload_id),
        lambda: blob_store.upload_status(upload_id),
        lambda: blob_store.append(upload_id, 0, [b"x"]),
        lambda: blob_store.complete_upload(upload_id),
        lambda: blob_store.abort_upload(upload_id),
    ):
        with pytest.raises(NotFound, match=upload_id):
            call()


def test_stale_uploads_are_found_and_purged(blob_store: BlobStore, harness: Harness) -> None:
    upload_id = blob_store.begin_upload(DIGEST, len(DATA))
    blob_store.append(upload_id, 0, [DATA[:10]])
    assert blob_store.stale_uploads(3600) == []
    assert blob_store.purge_stale(3600) == 0
    assert blob_store.stale_uploads(0) == [upload_id]
    assert blob_store.purge_stale(0) == 1
    assert harness.stored() == []


# --- blobs at rest ---------------------------------------------------------------------


def test_iter_blobs_and_delete(blob_store: BlobStore, harness: Harness) -> None:
    blobs = {}
    for n in (0, 1, 1000):
        data = os.urandom(n)
        blobs[digest_of(data)] = n
        blob_store.put(digest_of(data), n, [data])
    listed = list(blob_store.iter_blobs())
    assert len(listed) == 3
    assert {(b.digest, b.size) for b in listed} == set(blobs.items())
    assert all(abs(b.modified - time.time()) < 600 for b in listed)

    victim = next(iter(blobs))
    blob_store.delete(victim)
    blob_store.delete(victim)  # deleting again is not an error
    assert not blob_store.exists(victim)
    assert {b.digest for b in blob_store.iter_blobs()} == set(blobs) - {victim}
    assert len(harness.stored()) == 2


def test_verify_detects_a_corrupted_blob(blob_store: BlobStore, harness: Harness) -> None:
    blob_store.put(DIGEST, len(DATA), [DATA])
    assert blob_store.verify(DIGEST) is True
    harness.corrupt(blob_key(DIGEST))
    assert blob_store.verify(DIGEST) is False


def read_verified(store: BlobStore, digest: str) -> tuple[bytes, Exception | None]:
    """What a reader of ``open_verified`` receives, and the error that ended it, if any."""
    received = bytearray()
    try:
        for chunk in store.open_verified(digest):
            received += chunk
    except CairnError as exc:
        return bytes(received), exc
    return bytes(received), None


def test_open_verified_streams_intact_bytes(blob_store: BlobStore) -> None:
    data = random.Random(7).randbytes(9 * MiB + 17)
    blob_store.put(digest_of(data), len(data), chunked(data))
    for _ in range(2):  # fresh from the upload, then again (a backend may remember it)
        assert read_verified(blob_store, digest_of(data)) == (data, None)
    with pytest.raises(NotFound, match=MISSING):
        blob_store.open_verified(MISSING)  # raised by the call, not by the first next()


@pytest.mark.parametrize("read_first", [False, True], ids=["after-put", "after-a-read"])
def test_open_verified_never_completes_corrupt_bytes(
    blob_store: BlobStore, harness: Harness, read_first: bool
) -> None:
    data = random.Random(8).randbytes(9 * MiB + 17)
    digest = digest_of(data)
    blob_store.put(digest, len(data), chunked(data))
    if read_first:  # a verified read: the local store remembers the file as intact
        assert read_verified(blob_store, digest) == (data, None)
    harness.corrupt(blob_key(digest))
    received, error = read_verified(blob_store, digest)
    assert isinstance(error, DataCorrupted)
    assert len(received) < len(data)  # the last chunk was held back
    assert blob_store.verify(digest) is False


MISSING = digest_of(b"never stored")


def test_missing_blob(blob_store: BlobStore) -> None:
    assert not blob_store.exists(MISSING)
    assert blob_store.size(MISSING) is None
    with pytest.raises(NotFound, match=MISSING):
        blob_store.open(MISSING)  # raised by the call, not by the first next()
    with pytest.raises(NotFound):
        blob_store.open(MISSING, 10, 20)
    with pytest.raises(NotFound):
        blob_store.verify(MISSING)
    blob_store.delete(MISSING)
    assert list(blob_store.iter_blobs()) == []


UNKNOWN_UPLOAD = "0123456789abcdef0123456789abcdef"


def test_unknown_upload(blob_store: BlobStore) -> None:
    with pytest.raises(NotFound):
        blob_store.upload_offset(UNKNOWN_UPLOAD)
    with pytest.raises(NotFound):
        blob_store.append(UNKNOWN_UPLOAD, 0, [b"x"])
    with pytest.raises(NotFound):
        blob_store.complete_upload(UNKNOWN_UPLOAD)
    with pytest.raises(NotFound):
        blob_store.abort_upload(UNKNOWN_UPLOAD)


# --- validation happens before any I/O -------------------------------------------------

BAD_DIGESTS = [
    "",
    "sha256:",
    "sha256:" + "A" * 64,
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "sha512:" + "0" * 64,
    "0" * 64,
    "sha256:../../../etc/passwd",
    "sha256:" + "0" * 62 + "/x",
    "sha256:" + "0" * 64 + "\n",
    None,
    42,
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_invalid_digests_are_refused_before_any_io(harness: Harness, bad: object) -> None:
    store = harness.broken()  # every I/O would fail with something else
    calls: list[Callable[[], object]] = [
        lambda: store.exists(bad),  # type: ignore[arg-type]
        lambda: store.size(bad),  # type: ignore[arg-type]
        lambda: store.put(bad, 1, [b"x"]),  # type: ignore[arg-type]
        lambda: store.open(bad),  # type: ignore[arg-type]
        lambda: store.verify(bad),  # type: ignore[arg-type]
        lambda: store.delete(bad),  # type: ignore[arg-type]
        lambda: store.begin_upload(bad, 1),  # type: ignore[arg-type]
        lambda: store.presign_get(bad, 60),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidParameter):
            call()


BAD_UPLOAD_IDS = ["", "../x", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 31 + "/", None]


@pytest.mark.parametrize("bad", BAD_UPLOAD_IDS)
def test_invalid_upload_ids_are_refused_before_any_io(harness: Harness, bad: object) -> None:
    store = harness.broken()
    calls: list[Callable[[], object]] = [
        lambda: store.upload_offset(bad),  # type: ignore[arg-type]
        lambda: store.upload_status(bad),  # type: ignore[arg-type]
        lambda: store.append(bad, 0, [b"x"]),  # type: ignore[arg-type]
        lambda: store.complete_upload(bad),  # type: ignore[arg-type]
        lambda: store.abort_upload(bad),  # type: ignore[arg-type]
        lambda: store.presign_upload(bad, 60),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidParameter):
            call()


@pytest.mark.parametrize("size", [-1, 1.5, True, "10", None])
def test_invalid_sizes_are_refused_before_any_io(harness: Harness, size: object) -> None:
    store = harness.broken()
    with pytest.raises(InvalidParameter):
        store.put(DIGEST, size, [DATA])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        store.begin_upload(DIGEST, size)  # type: ignore[arg-type]


def test_the_store_names_itself_without_failing(harness: Harness) -> None:
    """(obstore's own repr of an Azure store panics when no account name is configured,
    as with the emulator.)"""
    assert repr(harness.store).startswith(("LocalBlobStore(", "S3BlobStore("))
    assert "://" in repr(harness.store) or harness.kind == "local"


def test_a_broken_store_is_unavailable(harness: Harness) -> None:
    store = harness.broken()
    with pytest.raises(Unavailable):
        store.check()
    with pytest.raises(CairnError):
        store.exists(DIGEST)
    harness.store.check()


# --- direct transfer -------------------------------------------------------------------


def test_presigned_download(blob_store: BlobStore, harness: Harness) -> None:
    blob_store.put(DIGEST, len(DATA), [DATA])
    url = blob_store.presign_get(DIGEST, 60)
    if harness.kind == "local":
        assert url is None
        return
    assert url is not None
    with urllib.request.urlopen(url) as response:
        assert response.read() == DATA
    with pytest.raises(NotFound):
        blob_store.presign_get(MISSING, 60)
    # the caller's index vouches for the blob: signed without asking the store
    assert blob_store.presign_get(MISSING, 60, known=True) is not None


@pytest.mark.parametrize("expires", [0, -5, 8 * 24 * 3600])
def test_presign_expiry_is_bounded(blob_store: BlobStore, expires: int) -> None:
    with pytest.raises(InvalidParameter):
        blob_store.presign_get(DIGEST, expires)


def test_presigned_upload_in_parts(blob_store: BlobStore, harness: Harness) -> None:
    data = os.urandom(3 * MiB + 123)
    digest = digest_of(data)
    upload_id = blob_store.begin_upload(digest, len(data))
    blob_store.append(upload_id, 0, [data[:1000]])  # parts cover what is still missing
    parts = blob_store.presign_upload(upload_id, 60, part_size=MiB)
    if harness.kind == "local":
        assert parts is None
        return
    assert parts is not None
    assert [(p.offset, p.length) for p in parts] == [
        (1000, MiB),
        (1000 + MiB, MiB),
        (1000 + 2 * MiB, len(data) - 1000 - 2 * MiB),
    ]

    def send(part: UploadPart) -> None:
        body = data[part.offset : part.offset + part.length]
        request = urllib.request.Request(
            part.url,
            data=body,
            method=part.method,
            headers={"Content-Type": "application/octet-stream", **dict(part.headers)},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status in (200, 201)  # S3 answers 200, Azure 201 Created

    send(parts[-1])  # any order, even in parallel
    assert blob_store.upload_offset(upload_id) == 1000
    again = blob_store.presign_upload(upload_id, 60, part_size=MiB)  # a resumed upload
    assert again is not None
    assert [(p.offset, p.length) for p in again] == [(1000, MiB), (1000 + MiB, MiB)]
    for part in reversed(again):
        send(part)
    assert blob_store.upload_offset(upload_id) == len(data)
    assert blob_store.complete_upload(upload_id) is True
    assert read(blob_store, digest) == data
