"""The client's content-addressed blob cache, and how pulled files get into a folder.

* ``BlobCache``: verified blobs by digest (``$CAIRN_CACHE_DIR`` or ``~/.cache/cairn``); a
  second pull of the same bytes touches no network.
* ``Placement``: a file of an output folder, written atomically (temp file in the same
  folder, then ``os.replace``), so an interrupt never leaves half a file. On the cache's
  filesystem a blob a pull downloads is hard-linked into its first place (one copy of the
  bytes on disk); otherwise a download writes it as it fills the cache. Every other place
  gets its own copy from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cairn.client.transfer import CHUNK, default_cache_dir, sha256_file
from cairn.domain.digests import validate_digest
from cairn.domain.models import FileEntry
from cairn.domain.paths import validate_file_path
from cairn.domain.progress import Progress
from cairn.errors import DataCorrupted, InvalidParameter
from cairn.fileio import MAX_IOVECS, write_all

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class BlobCache:
    """Blobs by digest under ``root/blobs/sha256/ab/<hex>``; partial downloads beside them.

    With ``stamps`` (a pull's cache), a blob is used without hashing it again only while
    it is exactly the file that was verified: ``<hex>.verified`` beside it records the
    blob's device, inode, size, modification and change time (ns) when its digest was
    last checked, and any write, ``touch`` or replacement changes one of them. A blob
    whose stamp is missing (an older cache) or no longer matches is hashed once more:
    kept (and stamped) if it still matches its digest, deleted (and downloaded again)
    if not. Blobs smaller than ``STAMPED`` get no stamp: hashing one again costs less
    than writing its stamp did (a pull of 3,000 files of 10 kB spent a fifth of its time
    writing stamps). Without ``stamps`` (an export folder, which must hold blobs only) a
    blob of the right size counts as present, as the export's own checks expect.
    """

    STAMP = ".verified"
    STAMPED = 64 << 10  # bytes: the smallest blob that gets a stamp

    def __init__(self, root: Path | None = None, *, stamps: bool = True) -> None:
        self.root = root or default_cache_dir()
        self.stamps = stamps

    def path(self, digest: str) -> Path:
        validate_digest(digest)  # from a server or an export folder: never a path of its own
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "blobs" / "sha256" / hexdigest[:2] / hexdigest

    def has(self, entry: FileEntry) -> bool:
        path = self.path(entry.digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            return False
        if not self.stamps or (
            st.st_size >= self.STAMPED and self._stamp_of(path) == _identity(st)
        ):
            return True
        if sha256_file(path) == entry.digest:  # unstamped, or changed since it was checked
            self._stamp(path)
            return True
        path.unlink(missing_ok=True)
        path.with_name(path.name + self.STAMP).unlink(missing_ok=True)
        return False

    @staticmethod
    def _still_there(path: Path, entry: FileEntry) -> bool:
        try:
            return path.stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def restamp(self, path: Path) -> None:
        """Stamp ``path`` again after a link to it was made or removed (which changes its
        ctime, as does the rename that places a link), if nothing has written to it since
        it was checked: the same device, inode, size and mtime as its stamp records."""
        now = _identity(path.stat())
        if now[2] < self.STAMPED:
            return
        stamped = self._stamp_of(path)
        if stamped is not None and stamped[:4] == now[:4] and stamped != now:
            self._stamp(path)

    def _stamp_of(self, path: Path) -> list[int] | None:
        try:
            found = json.loads(path.with_name(path.name + self.STAMP).read_bytes())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, list) else None

    def _stamp(self, path: Path) -> None:
        """Record ``path``'s identity now that its bytes have been checked."""
        identity = _identity(path.stat())
        if not self.stamps or identity[2] < self.STAMPED:
            return
        stamp = path.with_name(path.name + self.STAMP)
        tmp = stamp.with_name(f".{stamp.name}.{secrets.token_hex(8)}")
        try:
            tmp.write_text(json.dumps(identity))
            os.replace(tmp, stamp)
        except OSError:  # a cache that cannot be stamped is hashed again next time
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _download(
        partial: Path,
        have: int,
        entry: FileEntry,
        fetch: Callable[[int], Iterator[bytes]],
        progress: Progress | None,
        copies: Sequence[int] = (),
    ) -> bool:
        """Append the rest of the file to ``partial``, hashing as it goes (the prefix a
        previous attempt left is hashed first); True if the whole content matches.

        Received chunks are written ~1 MiB at a time with one ``writev``, while a helper
        thread hashes the same batch (both release the GIL, so they overlap); ``copies``
        (file descriptors, only for a download from the first byte) get every batch too,
        from a second helper."""
        hasher = hashlib.sha256()
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_APPEND | _CLOEXEC, 0o666)
        try:
            position = 0
            while position < have and (chunk := os.pread(fd, CHUNK, position)):
                hasher.update(chunk)
                position += len(chunk)
            if progress is not None:
                progress.advance(have)
            if have < entry.size:
                _receive(fd, _at_most(fetch(have), entry.size - have), hasher, progress, copies)
        except _TooLong:
            os.close(fd)
            fd = -1
            partial.unlink(missing_ok=True)
            raise DataCorrupted(
                f"the download of {entry.path!r} is longer than its {entry.size} bytes"
            ) from None
        finally:
            if fd >= 0:
                os.close(fd)
        return "sha256:" + hasher.hexdigest() == entry.digest

    def fill(
        self,
        entry: FileEntry,
        fetch: Callable[[int], Iterator[bytes]],
        progress: Progress | None = None,
        placements: Sequence[Placement] = (),
        *,
        checked: bool = False,
    ) -> Path:
        """Download into the cache, resuming a partial file, and verify before keeping it.

        A download from the first byte also writes ``placements`` as it goes (and marks
        them ``written``), so that a pull does not copy the blob once more afterwards.
        ``checked``: the caller's ``has`` found the blob a moment ago; it is not hashed
        again if it is still there at its size."""
        final = self.path(entry.digest)
        if self._still_there(final, entry) if checked else self.has(entry):
            if progress is not None:
                progress.advance(entry.size)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part")
        have = partial.stat().st_size if partial.exists() else 0
        if have > entry.size:
            partial.unlink()
            have = 0
        copies = [p.open() for p in placements] if have == 0 else []
        ok = False
        try:
            ok = self._download(partial, have, entry, fetch, progress, copies)
        finally:
            for placement in placements:
                placement.close(written=bool(copies) and ok)
        if not ok and have:  # the resumed prefix was bad (an old or foreign .part): once more
            partial.unlink()
            if progress is not None:
                progress.advance(-entry.size)
            ok = self._download(partial, 0, entry, fetch, progress)
        if not ok:
            partial.unlink()
            raise DataCorrupted(f"downloaded bytes of {entry.path!r} do not match {entry.digest}")
        os.replace(partial, final)
        self._stamp(final)
        return final


class _TooLong(Exception):
    """A download delivered more bytes than the file has."""


def checked_chunks(chunks: Iterator[bytes], check: Callable[[bytes], None]) -> Iterator[bytes]:
    """``chunks``, each passed to ``check`` first (which raises to stop them); the source
    (a download's response) is closed when they stop, not when the traceback goes."""
    try:
        for chunk in chunks:
            check(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _at_most(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """``chunks`` while they add up to at most ``limit`` bytes: a body that runs on (a
    broken or hostile server, or link) is not written on into the cache folder."""
    left = limit

    def count(chunk: bytes) -> None:
        nonlocal left
        left -= len(chunk)
        if left < 0:
            raise _TooLong

    return checked_chunks(chunks, count)


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _receive(
    fd: int,
    chunks: Iterable[bytes],
    hasher: Any,
    progress: Progress | None,
    copies: Sequence[int] = (),
) -> None:
    """Write ``chunks`` to ``fd`` in ~1 MiB ``writev`` batches while a helper thread hashes
    each batch into ``hasher``, in order, and another writes it to each of ``copies``.
    The helpers start with the second batch: a file that fits in one is hashed and
    copied in place (starting threads for it cost more than the work)."""
    with contextlib.ExitStack() as stack:
        helpers: ThreadPoolExecutor | None = None
        pending: list[Future[None]] = []
        batch: list[bytes] = []
        size = 0

        def flush(last: bool) -> None:
            nonlocal helpers, pending, batch, size
            for job in pending:  # the previous batch's: one batch in flight at a time
                job.result()
            pending = []
            if last and helpers is None:
                _update_all(hasher, batch)
                _write_copies(copies, batch)
            else:
                if helpers is None:
                    workers = 2 if copies else 1
                    helpers = stack.enter_context(ThreadPoolExecutor(workers, "cairn-receive"))
                pending.append(helpers.submit(_update_all, hasher, batch))
                if copies:
                    pending.append(helpers.submit(_write_copies, copies, batch))
            write_all(fd, batch)
            if progress is not None:
                progress.advance(size)
            batch, size = [], 0

        try:
            for chunk in chunks:
                if chunk:
                    batch.append(chunk)
                    size += len(chunk)
                    if size >= CHUNK or len(batch) >= MAX_IOVECS:
                        flush(last=False)
        except BaseException:
            if batch:  # what arrived stays in the partial file, for a resumed download
                write_all(fd, batch)
            raise
        if batch:
            flush(last=True)
        for job in pending:
            job.result()


def _write_copies(fds: Sequence[int], batch: list[bytes]) -> None:
    for fd in fds:
        write_all(fd, batch)


def _update_all(hasher: Any, batch: list[bytes]) -> None:
    for chunk in batch:
        hasher.update(chunk)


class Placement:
    """A file on its way to ``out_dir/rel``: written into a temp file beside its target,
    renamed over the target by ``commit`` (an interrupt never leaves half a file) or
    removed by ``abort``. The path is checked at once: the target never lands outside
    ``out_dir``, and a folder where the file goes (or a file where one of its folders
    goes) is refused before anything moves. The temp file is open only while it is being
    written."""

    def __init__(self, out_dir: Path, rel: str) -> None:
        validate_file_path(rel)
        root = out_dir.resolve()
        target = (out_dir / rel).resolve()
        if not target.is_relative_to(root):
            raise InvalidParameter(f"file path {rel!r} would land outside {out_dir}")
        if target.is_dir():
            raise InvalidParameter(f"cannot place {rel!r}: {out_dir / rel} is a folder")
        for folder in target.parents:
            if folder.exists() and not folder.is_dir():
                raise InvalidParameter(f"cannot place {rel!r}: {folder} is not a folder")
            if folder == root:
                break
        self.target = target
        self.tmp: Path | None = None
        self.fd = -1
        self.written = False  # the temp file holds the whole content

    def open(self) -> int:
        self.tmp = self._new_tmp()
        # the umask applies to the mode
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        return self.fd

    def close(self, *, written: bool) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.written = written

    def _new_tmp(self) -> Path:
        """A fresh temporary name beside the target (its folder made if missing)."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        return self.target.parent / f".cairn-{secrets.token_hex(8)}.part"

    def link_from(self, cached: Path) -> bool:
        """Hard-link the cache's ``cached`` as this file if no other file links it yet:
        the cache and this file then share one copy of the bytes. False (nothing placed)
        where links cannot be made, or when another link appeared meanwhile (a
        concurrent pull): two output folders never share a file, so an edit in one never
        shows in another. True without a new link when the target already is that file
        (the same version pulled into the same folder again)."""
        st = cached.stat()
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(st, os.stat(self.target, follow_symlinks=False)):
                self.written = True  # nothing to place
                return True
        if st.st_nlink != 1:
            return False
        tmp = self._new_tmp()
        try:
            os.link(cached, tmp)
        except OSError:  # no hard links here (another filesystem, a limit): copy instead
            return False
        if tmp.stat().st_nlink != 2:
            tmp.unlink()
            return False
        self.tmp, self.written = tmp, True
        return True

    def copy_from(self, cached: Path) -> None:
        fd = self.open()
        copied = False
        try:
            with cached.open("rb") as src:
                _copy(src.fileno(), fd, os.fstat(src.fileno()).st_size)
            copied = True
        finally:
            self.close(written=copied)

    def commit(self) -> Path:
        assert self.written
        if self.tmp is not None:
            os.replace(self.tmp, self.target)
            self.tmp = None
        return self.target

    def abort(self) -> None:
        self.close(written=False)
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def _copy(src: int, dst: int, size: int) -> None:
    """Copy in the kernel (copy_file_range: a reflink on filesystems that clone)."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, size - done)
            if n == 0:
                break
            done += n
    except OSError:  # another filesystem, or no kernel support: copy by hand
        os.lseek(src, done, os.SEEK_SET)
        os.lseek(dst, done, os.SEEK_SET)
        while chunk := os.read(src, CHUNK):
            os.write(dst, chunk)
