"""Client-side transfer machinery shared by both SDK modes.

* ``scan``: list a file or folder and hash every file with a streaming sha256, several
  files at once (hashlib releases the GIL on large updates).
* ``BlobCache``: a local content-addressed cache (``$CAIRN_CACHE_DIR`` or
  ``~/.cache/cairn``); a second pull of the same bytes touches no network.
* ``Placement``: a file of an output folder, written atomically (temp file in the same
  folder, then ``os.replace``), so an interrupt never leaves half a file. On the cache's
  filesystem a blob a pull downloads is hard-linked into its first place (one copy of the
  bytes on disk); otherwise a download writes it as it fills the cache. Every other place
  gets its own copy from the cache.
* ``Progress``: what a transfer reports; the CLI draws it with Rich, the SDK ignores it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cairn.domain.digests import validate_digest
from cairn.domain.models import FileEntry
from cairn.domain.paths import validate_file_path
from cairn.errors import DataCorrupted, InvalidParameter

CHUNK = 1 << 20
WORKERS = 4
_MAX_IOVECS = 512  # below IOV_MAX (1024 on Linux)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Progress(Protocol):
    def begin(self, description: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    def begin(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LocalFile:
    entry: FileEntry
    source: Path


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    return "sha256:" + hasher.hexdigest()


def scan(
    root: Path, progress: Progress | None = None, digests: DigestCache | None = None
) -> list[LocalFile]:
    """Every regular file under ``root`` (or ``root`` itself), hashed, as manifest entries.

    A file whose digest ``digests`` (by default the one in the cache folder) remembers,
    and that has not changed since, is not hashed again."""
    root = root.expanduser()
    if not root.exists():
        raise InvalidParameter(f"{root} does not exist")
    if root.is_file():
        paths = [(root, root.name)]
    else:
        paths = []
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                raise InvalidParameter(f"{path} is a symbolic link; push real files only")
            if path.is_file():
                paths.append((path, path.relative_to(root).as_posix()))
        if not paths:
            raise InvalidParameter(f"{root} holds no files")
    for _, rel in paths:
        validate_file_path(rel)
    cache = DigestCache(default_cache_dir()) if digests is None else digests
    stats = [os.stat(p) for p, _ in paths]
    known = [cache.find(p, st) for (p, _), st in zip(paths, stats, strict=True)]
    progress = progress or NoProgress()
    progress.begin("hashing", sum(st.st_size for st in stats))
    progress.advance(sum(st.st_size for st, d in zip(stats, known, strict=True) if d))
    todo = [i for i, d in enumerate(known) if d is None]
    hashed_at = time.time_ns()
    with ThreadPoolExecutor(WORKERS) as pool:
        fresh = list(pool.map(lambda i: sha256_file(paths[i][0], progress), todo))
    progress.end()
    for i, digest in zip(todo, fresh, strict=True):
        known[i] = digest
        cache.remember(paths[i][0], stats[i], digest, hashed_at)
    cache.save()
    files = []
    for (path, rel), st, found in zip(paths, stats, known, strict=True):
        assert found is not None
        files.append(LocalFile(FileEntry(rel, st.st_size, found), path))
    return files


class DigestCache:
    """Digests of local files by path and stat identity, in ``root/digests.json``.

    An entry is used only while the file has the same device, inode, size, modification
    and change time (ns) as when it was hashed, and only if the file had not changed for
    ``RACY_NS`` before it was hashed: a write in the same clock tick as the hashing would
    otherwise leave the stat unchanged (git calls such entries "racily clean"). The change
    time is set by the kernel on every write, ``chmod`` or ``touch`` and cannot be set
    back. A file that changes while it is hashed is not remembered. Reading or writing the
    cache file never fails a push: a missing, unreadable or corrupt file is an empty cache.
    """

    FILE = "digests.json"
    RACY_NS = 2_000_000_000
    CAPACITY = 50_000

    def __init__(self, root: Path | None) -> None:
        self.path = None if root is None else root / self.FILE
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_bytes())
                if isinstance(loaded, dict) and loaded.get("version") == 1:
                    self._entries = dict(loaded["entries"])
            except (OSError, ValueError, KeyError, TypeError):
                self._entries = {}

    @staticmethod
    def _key(path: Path) -> str:
        return str(path.absolute())

    @staticmethod
    def _identity(st: os.stat_result) -> list[int]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def find(self, path: Path, st: os.stat_result) -> str | None:
        entry = self._entries.get(self._key(path))
        try:
            if entry is None or entry[:5] != self._identity(st):
                return None
            digest, hashed_at = entry[5], entry[6]
            if max(st.st_mtime_ns, st.st_ctime_ns) >= hashed_at - self.RACY_NS:
                return None  # changed just before it was hashed: hash it again
            return validate_digest(digest)
        except (IndexError, TypeError, InvalidParameter):
            return None

    def remember(self, path: Path, before: os.stat_result, digest: str, hashed_at: int) -> None:
        """Record ``digest`` for ``path``, hashed from ``hashed_at`` on; ``before`` is the
        stat taken before hashing (nothing is recorded if the file has changed since)."""
        try:
            after = os.stat(path)
        except OSError:
            return
        if self._identity(after) != self._identity(before):
            return
        self._entries[self._key(path)] = [*self._identity(before), digest, hashed_at]
        self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        entries = self._entries
        if len(entries) > self.CAPACITY:  # keep the most recently hashed
            kept = sorted(entries.items(), key=lambda kv: kv[1][6])[-self.CAPACITY :]
            entries = dict(kept)
        tmp = self.path.with_name(f".{self.FILE}.{secrets.token_hex(8)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": 1, "entries": entries}))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
        self._dirty = False


def read_chunks(path: Path, start: int = 0, progress: Progress | None = None) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        while chunk := f.read(CHUNK):
            if progress is not None:
                progress.advance(len(chunk))
            yield chunk


def default_cache_dir() -> Path:
    configured = os.environ.get("CAIRN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn"


class BlobCache:
    """Blobs by digest under ``root/blobs/sha256/ab/<hex>``; partial downloads beside them.

    With ``stamps`` (a pull's cache), a blob is used without hashing it again only while
    it is exactly the file that was verified: ``<hex>.verified`` beside it records the
    blob's device, inode, size, modification and change time (ns) when its digest was
    last checked, and any write, ``touch`` or replacement changes one of them. A blob
    whose stamp is missing (an older cache) or no longer matches is hashed once more:
    kept (and stamped) if it still matches its digest, deleted (and downloaded again)
    if not. Without ``stamps`` (an export folder, which must hold blobs only) a blob of
    the right size counts as present, as the export's own checks expect.
    """

    STAMP = ".verified"

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
        if not self.stamps or self._stamp_of(path) == _identity(st):
            return True
        if sha256_file(path) == entry.digest:  # unstamped, or changed since it was checked
            self._stamp(path)
            return True
        path.unlink(missing_ok=True)
        path.with_name(path.name + self.STAMP).unlink(missing_ok=True)
        return False

    def restamp(self, path: Path) -> None:
        """Stamp ``path`` again after a link to it was made or removed (which changes its
        ctime, as does the rename that places a link), if nothing has written to it since
        it was checked: the same device, inode, size and mtime as its stamp records."""
        stamped, now = self._stamp_of(path), _identity(path.stat())
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
        if not self.stamps:
            return
        stamp = path.with_name(path.name + self.STAMP)
        tmp = stamp.with_name(f".{stamp.name}.{secrets.token_hex(8)}")
        try:
            tmp.write_text(json.dumps(_identity(path.stat())))
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
                _receive(fd, fetch(have), hasher, progress, copies)
        finally:
            os.close(fd)
        return "sha256:" + hasher.hexdigest() == entry.digest

    def fill(
        self,
        entry: FileEntry,
        fetch: Callable[[int], Iterator[bytes]],
        progress: Progress | None = None,
        placements: Sequence[Placement] = (),
    ) -> Path:
        """Download into the cache, resuming a partial file, and verify before keeping it.

        A download from the first byte also writes ``placements`` as it goes (and marks
        them ``written``), so that a pull does not copy the blob once more afterwards."""
        final = self.path(entry.digest)
        if self.has(entry):
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
    each batch into ``hasher``, in order, and another writes it to each of ``copies``."""
    with ThreadPoolExecutor(2 if copies else 1, "cairn-receive") as helpers:
        pending: list[Future[None]] = []
        batch: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal pending, batch, size
            for job in pending:  # the previous batch's: one batch in flight at a time
                job.result()
            pending = [helpers.submit(_update_all, hasher, batch)]
            if copies:
                pending.append(helpers.submit(_write_copies, copies, batch))
            _write_all(fd, batch)
            if progress is not None:
                progress.advance(size)
            batch, size = [], 0

        try:
            for chunk in chunks:
                if chunk:
                    batch.append(chunk)
                    size += len(chunk)
                    if size >= CHUNK or len(batch) >= _MAX_IOVECS:
                        flush()
        except BaseException:
            if batch:  # what arrived stays in the partial file, for a resumed download
                _write_all(fd, batch)
            raise
        if batch:
            flush()
        for job in pending:
            job.result()


def _write_copies(fds: Sequence[int], batch: list[bytes]) -> None:
    for fd in fds:
        _write_all(fd, batch)


def _update_all(hasher: Any, batch: list[bytes]) -> None:
    for chunk in batch:
        hasher.update(chunk)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """``os.writev`` until every byte of ``parts`` is written."""
    total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    while done < total:
        skipped = 0
        for part in parts:
            if done < skipped + len(part):
                done += os.write(fd, memoryview(part)[done - skipped :])
                break
            skipped += len(part)


class Placement:
    """A file on its way to ``out_dir/rel``: written into a temp file beside its target,
    renamed over the target by ``commit`` (an interrupt never leaves half a file) or
    removed by ``abort``. The path is checked at once; the target never lands outside
    ``out_dir``. The temp file is open only while it is being written."""

    def __init__(self, out_dir: Path, rel: str) -> None:
        validate_file_path(rel)
        target = (out_dir / rel).resolve()
        if not target.is_relative_to(out_dir.resolve()):
            raise InvalidParameter(f"file path {rel!r} would land outside {out_dir}")
        self.target = target
        self.tmp: Path | None = None
        self.fd = -1
        self.written = False  # the temp file holds the whole content

    def open(self) -> int:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.parent / f".cairn-{secrets.token_hex(8)}.part"
        # the umask applies to the mode
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        return self.fd

    def close(self, *, written: bool) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.written = written

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
        self.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.target.parent / f".cairn-{secrets.token_hex(8)}.part"
        try:
            os.link(cached, tmp, follow_symlinks=False)
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
