"""Blobs on a local filesystem, under one root directory (see ``layout`` for the keys).

Every write follows the durability recipe: stream into a temporary file under the same
root while hashing, fsync it, compare size and digest, ``os.replace`` it into place,
fsync the directory. An fsync error fails the request; it is never swallowed. The whole
root must be one filesystem (``tmp/``, ``uploads/`` and ``blobs/`` are renamed across).

Paths are walked one component at a time from the root with ``O_NOFOLLOW`` directory
descriptors, and files are opened relative to them with ``O_NOFOLLOW``: a symbolic link
anywhere below the root is refused, never followed (the root itself is resolved once,
so an administrator may point it through a link). Blobs are 0o644, staging files
0o600, directories 0o755 (all further narrowed by the umask).

Concurrent appends to one upload are serialised with ``flock``; the loser gets
``Conflict`` at once rather than waiting behind a slow client.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path

from cairn.domain.artifacts import UploadPart
from cairn.domain.digests import validate_digest
from cairn.errors import CairnError, Conflict, InvalidParameter, NotFound, Unavailable
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
from cairn.store.blobs.localfs import CLOEXEC, DIR_FLAGS, NEW_FILE_FLAGS, open_dir, os_errors
from cairn.store.blobs.localio import StagedHashes, VerifiedFiles, write_chunks

log = logging.getLogger(__name__)

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | CLOEXEC


class LocalBlobStore:
    """A ``BlobStore`` on local disk. ``root`` is created if it does not exist."""

    def __init__(self, root: Path | str, *, chunk_size: int = 1 << 20) -> None:
        self.root = Path(root).resolve()
        self._chunk_size = chunk_size
        self._verified = VerifiedFiles()  # blob files hashed and found intact, by stat identity
        self._staged = StagedHashes()  # uploads hashed as they were appended, in this process
        with os_errors():
            self.root.mkdir(mode=0o755, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # --- blobs -------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self.size(digest) is not None

    def size(self, digest: str) -> int | None:
        *dirs, name = layout.key_parts(layout.blob_key(digest))
        with os_errors():
            try:
                with self._dir(dirs) as d:
                    st = os.stat(name, dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                return None
        if not stat.S_ISREG(st.st_mode):
            raise CairnError(f"blob {digest} is stored as something other than a regular file")
        return st.st_size

    def put(self, digest: str, size: int, chunks: Iterable[bytes]) -> bool:
        verifier = Verifier(digest, size)
        if self.exists(digest):  # already stored: still read and verify what was sent, so
            for _ in verifier.wrap(chunks):  # an upload proves the bytes are held
                pass
            return False
        *dirs, name = layout.key_parts(layout.blob_key(digest))
        tmp_name = f"put-{secrets.token_hex(16)}"
        with os_errors(), self._dir(("tmp",), create=True) as tmp:
            try:
                fd = os.open(tmp_name, NEW_FILE_FLAGS, 0o600, dir_fd=tmp)
                try:
                    write_chunks(fd, guarded(chunks), verifier.update)
                    verifier.finish()
                    os.fsync(fd)
                    os.fchmod(fd, 0o644)
                    with self._dir(dirs, create=True) as dst:
                        os.replace(tmp_name, name, src_dir_fd=tmp, dst_dir_fd=dst)
                        os.fsync(dst)
                    self._verified.remember(digest, os.fstat(fd))  # after the rename's ctime
                finally:
                    os.close(fd)
            except BaseException:
                with suppress(OSError):  # cleanup only; the original error propagates
                    os.unlink(tmp_name, dir_fd=tmp)
                raise
        return True

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        start, end = validate_range(start, end)
        size = self.size(digest)
        if size is None:
            raise NotFound(f"blob {digest} not found")
        return self._read(digest, *clamp_range(digest, size, start, end))

    def open_verified(self, digest: str) -> Iterator[bytes]:
        if self.size(digest) is None:
            raise NotFound(f"blob {digest} not found")
        return self._read_verified(digest)

    def verify(self, digest: str, read: Callable[[int], None] | None = None) -> bool:
        fd, st = self._open_blob(digest)
        try:
            verifier = Verifier(digest, st.st_size)
            try:
                with os_errors():
                    for chunk in verifier.wrap(self._pread(fd, 0, st.st_size)):
                        if read is not None:
                            read(len(chunk))
            except InvalidParameter:
                self._verified.forget(digest)
                return False
        finally:
            os.close(fd)
        self._verified.remember(digest, st)
        return True

    def delete(self, digest: str) -> None:
        *dirs, name = layout.key_parts(layout.blob_key(digest))
        self._verified.forget(digest)
        with os_errors(), suppress(FileNotFoundError), self._dir(dirs) as d:
            os.unlink(name, dir_fd=d)
            os.fsync(d)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        prefix = layout.key_parts(layout.BLOBS_PREFIX.rstrip("/"))
        with os_errors():
            try:
                with self._dir(prefix) as d:
                    fan_outs = sorted(os.listdir(d))
            except FileNotFoundError:
                return
        for fan_out in fan_outs:
            with os_errors():
                found: list[BlobInfo] = []
                try:
                    with self._dir((*prefix, fan_out)) as d:
                        for name in os.listdir(d):
                            digest = layout.digest_from_blob_key(
                                f"{layout.BLOBS_PREFIX}{fan_out}/{name}"
                            )
                            st = os.stat(name, dir_fd=d, follow_symlinks=False)
                            if digest is not None and stat.S_ISREG(st.st_mode):
                                found.append(BlobInfo(digest, st.st_size, st.st_mtime))
                except (FileNotFoundError, NotADirectoryError):
                    continue
            yield from found

    # --- resumable uploads -------------------------------------------------------------

    def begin_upload(self, digest: str, size: int) -> str:
        info = json.dumps({"digest": validate_digest(digest), "size": validate_size(size)})
        upload_id = layout.new_upload_id()
        with os_errors(), self._dir(self._upload_dir(upload_id), create=True) as d:
            for name, content in ((layout.UPLOAD_INFO, info.encode()), (layout.UPLOAD_DATA, b"")):
                fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=d)
                try:
                    os.write(fd, content)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.fsync(d)
        return upload_id

    def upload_status(self, upload_id: str) -> UploadStatus:
        digest, size = self._load_info(upload_id)
        return UploadStatus(upload_id, digest, size, self.upload_offset(upload_id))

    def upload_offset(self, upload_id: str) -> int:
        dirs = self._upload_dir(upload_id)
        with os_errors(not_found=_upload_not_found(upload_id)), self._dir(dirs) as d:
            return os.stat(layout.UPLOAD_DATA, dir_fd=d, follow_symlinks=False).st_size

    def append(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        offset = validate_offset(offset)
        digest, size = self._load_info(upload_id)
        with os_errors(not_found=_upload_not_found(upload_id)):
            fd = self._open_staged(upload_id, os.O_WRONLY)
            try:
                current = os.fstat(fd).st_size
                if offset != current:
                    raise Conflict(
                        f"upload {upload_id} has {current} bytes staged; append at offset "
                        f"{current}, not {offset}"
                    )
                os.lseek(fd, current, os.SEEK_SET)
                position = current
                # hash as we write when we know the hash of what is staged (nothing, or what
                # this process appended last), so complete_upload need not read it all again
                hasher = self._staged.take(upload_id, os.fstat(fd))
                if hasher is None and current == 0:
                    hasher = hashlib.sha256()

                def check(chunk: bytes) -> None:
                    nonlocal position
                    if position + len(chunk) > size:
                        raise InvalidParameter(
                            f"upload {upload_id} was declared as {size} bytes for "
                            f"{digest}; appending {len(chunk)} bytes at offset "
                            f"{position} would exceed it"
                        )
                    position += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)

                try:
                    write_chunks(fd, guarded(chunks), check, current)
                finally:
                    _sync_appended(fd, current)  # what was received stays staged, durably
                if hasher is not None:
                    self._staged.put(upload_id, hasher, os.fstat(fd))
            finally:
                os.close(fd)
        return position

    def complete_upload(self, upload_id: str) -> bool:
        digest, size = self._load_info(upload_id)
        *dirs, name = layout.key_parts(layout.blob_key(digest))
        with os_errors(not_found=_upload_not_found(upload_id)):
            fd = self._open_staged(upload_id, os.O_RDWR)
            try:
                staged = os.fstat(fd).st_size
                if staged < size:
                    raise InvalidParameter(
                        f"upload {upload_id} has {staged} of {size} bytes; append the rest "
                        f"from offset {staged}, then complete"
                    )
                verifier = Verifier(digest, size)
                hashed = self._staged.take(upload_id, os.fstat(fd))
                try:
                    if hashed is not None and staged == size:  # hashed while appended
                        verifier.check_hash("sha256:" + hashed.hexdigest())
                    else:
                        for chunk in verifier.wrap(self._pread(fd, 0, staged)):
                            del chunk
                except InvalidParameter:
                    self._remove_upload(upload_id)
                    raise
                if self.exists(digest):
                    self._remove_upload(upload_id)
                    return False
                os.fchmod(fd, 0o644)
                os.fsync(fd)
                with self._dir(self._upload_dir(upload_id)) as src, self._dir(dirs, True) as dst:
                    os.replace(layout.UPLOAD_DATA, name, src_dir_fd=src, dst_dir_fd=dst)
                    os.fsync(dst)
                self._verified.remember(digest, os.fstat(fd))
            finally:
                os.close(fd)
        try:
            self._remove_upload(upload_id)
        except OSError as exc:  # the blob is in place: what is left, purge_stale removes
            log.warning("upload %s is complete, but its staging stays: %s", upload_id, exc)
        return True

    def abort_upload(self, upload_id: str) -> None:
        layout.validate_upload_id(upload_id)
        with os_errors(not_found=_upload_not_found(upload_id)):
            self._remove_upload(upload_id)

    def stale_uploads(self, older_than_seconds: float) -> list[str]:
        cutoff = time.time() - validate_older_than(older_than_seconds)
        stale = []
        with os_errors():
            try:
                with self._dir(("uploads",)) as d:
                    names = os.listdir(d)
            except FileNotFoundError:
                return []
            for name in sorted(names):
                if layout.upload_id_from_key(f"{layout.UPLOADS_PREFIX}{name}/") is None:
                    continue
                try:
                    with self._dir(self._upload_dir(name)) as u:
                        touched = max(
                            [os.fstat(u).st_mtime]
                            + [
                                os.stat(n, dir_fd=u, follow_symlinks=False).st_mtime
                                for n in os.listdir(u)
                            ]
                        )
                except FileNotFoundError:
                    continue
                if touched < cutoff:
                    stale.append(name)
        return stale

    def purge_stale(self, older_than_seconds: float) -> int:
        cutoff = time.time() - validate_older_than(older_than_seconds)
        purged = 0
        for upload_id in self.stale_uploads(older_than_seconds):
            with suppress(NotFound):
                self.abort_upload(upload_id)
                purged += 1
        with os_errors():
            try:
                with self._dir(("tmp",)) as d:
                    for name in os.listdir(d):
                        st = os.stat(name, dir_fd=d, follow_symlinks=False)
                        if name.startswith("put-") and st.st_mtime < cutoff:
                            with suppress(FileNotFoundError):
                                os.unlink(name, dir_fd=d)
                                purged += 1
            except FileNotFoundError:
                pass
        return purged

    # --- direct transfer and health ----------------------------------------------------

    def presign_get(self, digest: str, expires_s: int, *, known: bool = False) -> str | None:
        validate_digest(digest)
        validate_expiry(expires_s)
        return None

    def presign_upload(
        self, upload_id: str, expires_s: int, part_size: int | None = None
    ) -> list[UploadPart] | None:
        layout.validate_upload_id(upload_id)
        validate_expiry(expires_s)
        return None

    def check(self) -> None:
        try:
            for dirs in (("tmp",), ("uploads",), layout.key_parts("blobs/sha256")):
                with self._dir(dirs, create=True):
                    pass
                if not os.access(self.root.joinpath(*dirs), os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "not writable", "/".join(dirs))
        except (OSError, CairnError) as exc:
            raise Unavailable(f"local blob store at {self.root} is not usable: {exc}") from exc

    # --- internals ---------------------------------------------------------------------

    def _dir(self, parts: Sequence[str], create: bool = False) -> AbstractContextManager[int]:
        return open_dir(self.root, parts, create)

    @staticmethod
    def _upload_dir(upload_id: str) -> tuple[str, ...]:
        return layout.key_parts(layout.upload_prefix(upload_id).rstrip("/"))

    def _load_info(self, upload_id: str) -> tuple[str, int]:
        dirs = self._upload_dir(upload_id)
        with os_errors(not_found=_upload_not_found(upload_id)), self._dir(dirs) as d:
            fd = os.open(layout.UPLOAD_INFO, _READ_FLAGS, dir_fd=d)
            with open(fd, "rb") as f:
                raw = f.read(4096)
        try:
            info = json.loads(raw)
            return validate_digest(info["digest"]), validate_size(info["size"])
        except (ValueError, KeyError, TypeError, InvalidParameter) as exc:
            raise CairnError(f"upload {upload_id} has a corrupt info file") from exc

    def _open_staged(self, upload_id: str, flags: int) -> int:
        """The staged data file, opened and exclusively locked (``Conflict`` if busy)."""
        with self._dir(self._upload_dir(upload_id)) as d:
            fd = os.open(layout.UPLOAD_DATA, flags | os.O_NOFOLLOW | CLOEXEC, dir_fd=d)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(
                f"upload {upload_id} is busy with another request; retry from its upload offset"
            ) from None
        return fd

    def _remove_upload(self, upload_id: str) -> None:
        with self._dir(("uploads",)) as uploads:
            child = os.open(upload_id, DIR_FLAGS, dir_fd=uploads)
            try:
                for name in os.listdir(child):
                    os.unlink(name, dir_fd=child)
            finally:
                os.close(child)
            os.rmdir(upload_id, dir_fd=uploads)
            os.fsync(uploads)

    def _pread(self, fd: int, start: int, stop: int) -> Iterator[bytes]:
        position = start
        while position < stop:
            data = os.pread(fd, min(self._chunk_size, stop - position), position)
            if not data:
                raise Unavailable(f"a file shrank while being read, at offset {position}")
            position += len(data)
            yield data

    def _open_blob(self, digest: str) -> tuple[int, os.stat_result]:
        """A read descriptor on the blob file and its stat (``NotFound`` if not stored)."""
        *dirs, name = layout.key_parts(layout.blob_key(digest))
        with os_errors(not_found=f"blob {digest} not found"), self._dir(dirs) as d:
            fd = os.open(name, _READ_FLAGS, dir_fd=d)
        try:
            with os_errors():
                st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CairnError(f"blob {digest} is stored as something other than a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _stream(self, fd: int, stop: int, start: int = 0) -> Iterator[bytes]:
        """``fd``'s bytes ``[start, stop)``; closes ``fd`` when done (or dropped)."""
        try:
            with os_errors():
                yield from self._pread(fd, start, stop)
        finally:
            os.close(fd)

    def _read_verified(self, digest: str) -> Iterator[bytes]:
        fd, st = self._open_blob(digest)
        chunks = self._stream(fd, st.st_size)
        if not self._verified.intact(digest, st):  # else: hashed before, untouched since
            chunks = held_back(chunks, digest, lambda: self._verified.remember(digest, st))
        yield from chunks

    def _read(self, digest: str, start: int, end: int | None) -> Iterator[bytes]:
        fd, st = self._open_blob(digest)
        yield from self._stream(fd, st.st_size if end is None else end, start)


def _upload_not_found(upload_id: str) -> str:
    return f"upload {upload_id} not found; it was completed, aborted or never begun"


def _sync_appended(fd: int, durable: int) -> None:
    """fsync what an append wrote to a staging file, whose first ``durable`` bytes an
    earlier append synced.

    If the fsync fails, what this append wrote cannot be trusted, and syncing again is
    no test: Linux may drop the pages it could not write and report the next fsync a
    success, while the file's size still counts them. So the file is cut back to
    ``durable`` (and that synced) before the error goes up: the upload's offset then
    says what to send again. Should that fail too, the error says so and the staging is
    left to ``abort_upload`` or the stale-upload sweep."""
    try:
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, durable)
        os.fsync(fd)
        raise
