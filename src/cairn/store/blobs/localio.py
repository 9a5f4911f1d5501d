"""Fast, careful file I/O for the local blob store: batched writes and a memo of verified files.

``write_chunks`` writes a stream of chunks with one ``os.writev`` per ~1 MiB (no copying
them into a buffer first) and asks the kernel to start writing back every few MiB
(``sync_file_range``), so the final ``fsync`` mostly finds the data already on its way to
the disk instead of starting all of it at the end. The hint changes nothing about
durability: the caller still fsyncs, and that fsync is what a success waits for.

``VerifiedFiles`` remembers which blob files were hashed and found intact, by their stat
identity (device, inode, size, mtime, ctime), so a download does not hash the same
unchanged file again and again. Any write to a file, a rename over it or a ``chmod``
changes its ctime, which the kernel sets and no caller can set back, so a remembered
identity stops matching as soon as the file is touched. Entries expire after ``ttl_s``.
Silent corruption that changes no metadata (bit rot) is out of its sight: ``cairn
verify`` and the client's own end-to-end check cover that (see docs/artifacts.md).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final

from cairn.fileio import MAX_IOVECS, write_all

WRITE_BATCH: Final = 1 << 20
WRITEBACK_EVERY: Final = 16 << 20
_SYNC_FILE_RANGE_WRITE: Final = 2

Identity = tuple[int, int, int, int, int]
HashObject = Any  # hashlib's sha256 object (its type is private)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):  # not Linux/glibc: no hint, fsync does it all
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


class _Writeback:
    """Starts asynchronous writeback of what was written so far, every ``WRITEBACK_EVERY``."""

    __slots__ = ("_enabled", "_fd", "_started")

    def __init__(self, fd: int, position: int) -> None:
        self._fd = fd
        self._started = position
        self._enabled = _sync_file_range is not None

    def written_up_to(self, position: int) -> None:
        if not self._enabled or position - self._started < WRITEBACK_EVERY:
            return
        assert _sync_file_range is not None
        length = position - self._started
        if _sync_file_range(self._fd, self._started, length, _SYNC_FILE_RANGE_WRITE) != 0:
            self._fail(ctypes.get_errno())
            return
        self._started = position

    def _fail(self, code: int) -> None:
        if code == errno.EIO:  # the device failed: as fatal as a failed fsync
            raise OSError(code, os.strerror(code))
        self._enabled = False  # unsupported here (e.g. some filesystems): fsync alone


def write_chunks(
    fd: int, chunks: Iterable[bytes], check: Callable[[bytes], None], position: int = 0
) -> int:
    """Write ``chunks`` at the file offset of ``fd`` (``position``); returns the new position.

    ``check(chunk)`` runs on each chunk before it is queued for writing (to count and hash
    it) and may refuse it by raising. Chunks accepted before a failure (of ``check`` or of
    ``chunks`` itself) are written before the exception propagates, as an unbuffered
    writer would have.
    """
    pending: list[bytes] = []
    pending_bytes = 0
    writeback = _Writeback(fd, position)
    try:
        for chunk in chunks:
            check(chunk)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= WRITE_BATCH or len(pending) >= MAX_IOVECS:
                position += write_all(fd, pending)
                pending, pending_bytes = [], 0
                writeback.written_up_to(position)
    finally:
        if pending:
            position += write_all(fd, pending)
    return position


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedFiles:
    """Digest → stat identity of the file last verified for it (bounded, thread-safe)."""

    def __init__(self, ttl_s: float = 3600.0, capacity: int = 100_000) -> None:
        self._ttl_ns = int(ttl_s * 1e9)
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[Identity, int]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, digest: str, st: os.stat_result) -> None:
        with self._lock:
            self._entries[digest] = (identity(st), time.monotonic_ns())
            self._entries.move_to_end(digest)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def intact(self, digest: str, st: os.stat_result) -> bool:
        """Whether the file ``st`` describes is the one verified for ``digest``, recently."""
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None:
            return False
        known, at = entry
        if known != identity(st) or time.monotonic_ns() - at >= self._ttl_ns:
            self.forget(digest)
            return False
        return True


class StagedHashes:
    """Upload id → the sha256 of its staged bytes so far, and the staged file's stat identity.

    An append from offset 0 (or continuing a remembered hash) hashes the bytes as it writes
    them, so ``complete_upload`` in the same process need not read the whole staged file
    again; if anything else touched the file, or another process served an append, the
    identity or the entry is missing and the staged bytes are re-hashed as before.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[HashObject, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, upload_id: str, hasher: HashObject, st: os.stat_result) -> None:
        with self._lock:
            self._entries[upload_id] = (hasher, identity(st))
            self._entries.move_to_end(upload_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def take(self, upload_id: str, st: os.stat_result) -> HashObject | None:
        """The hash of exactly the bytes ``st`` describes, or ``None``; forgotten either way."""
        with self._lock:
            entry = self._entries.pop(upload_id, None)
        if entry is None or entry[1] != identity(st):
            return None
        return entry[0]
