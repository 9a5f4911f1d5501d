"""Client-side transfer machinery shared by both SDK modes.

* ``scan``: list a file or folder and hash every file with a streaming sha256, several
  files at once (hashlib releases the GIL on large updates).
* ``BlobCache``: a local content-addressed cache (``$CAIRN_CACHE_DIR`` or
  ``~/.cache/cairn``); a second pull of the same bytes touches no network.
* ``place``: put a cached blob at its path in an output folder atomically (temp file in
  the same folder, then ``os.replace``), so an interrupt never leaves half a file.
* ``Progress``: what a transfer reports; the CLI draws it with Rich, the SDK ignores it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cairn.domain.digests import validate_digest
from cairn.domain.models import FileEntry
from cairn.domain.paths import validate_file_path
from cairn.errors import DataCorrupted, InvalidParameter

CHUNK = 1 << 20
WORKERS = 4


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


def scan(root: Path, progress: Progress | None = None) -> list[LocalFile]:
    """Every regular file under ``root`` (or ``root`` itself), hashed, as manifest entries."""
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
    total = sum(p.stat().st_size for p, _ in paths)
    progress = progress or NoProgress()
    progress.begin("hashing", total)
    with ThreadPoolExecutor(WORKERS) as pool:
        digests = list(pool.map(lambda item: sha256_file(item[0], progress), paths))
    progress.end()
    return [
        LocalFile(FileEntry(rel, path.stat().st_size, digest), path)
        for (path, rel), digest in zip(paths, digests, strict=True)
    ]


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
    """Blobs by digest under ``root/blobs/sha256/ab/<hex>``; partial downloads beside them."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def path(self, digest: str) -> Path:
        validate_digest(digest)  # from a server or an export folder: never a path of its own
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "blobs" / "sha256" / hexdigest[:2] / hexdigest

    def has(self, entry: FileEntry) -> bool:
        path = self.path(entry.digest)
        return path.is_file() and path.stat().st_size == entry.size

    @staticmethod
    def _download(
        partial: Path,
        have: int,
        entry: FileEntry,
        fetch: Callable[[int], Iterator[bytes]],
        progress: Progress | None,
    ) -> bool:
        """Append the rest of the file to ``partial``, hashing as it goes (the prefix a
        previous attempt left is hashed first); True if the whole content matches."""
        hasher = hashlib.sha256()
        with partial.open("a+b") as out:
            out.seek(0)
            while have and (chunk := out.read(CHUNK)):
                hasher.update(chunk)
            out.seek(0, os.SEEK_END)
            if progress is not None:
                progress.advance(have)
            if have < entry.size:
                for chunk in fetch(have):
                    hasher.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress.advance(len(chunk))
        return "sha256:" + hasher.hexdigest() == entry.digest

    def fill(
        self,
        entry: FileEntry,
        fetch: Callable[[int], Iterator[bytes]],
        progress: Progress | None = None,
    ) -> Path:
        """Download into the cache, resuming a partial file, and verify before keeping it."""
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
        ok = self._download(partial, have, entry, fetch, progress)
        if not ok and have:  # the resumed prefix was bad (an old or foreign .part): once more
            partial.unlink()
            if progress is not None:
                progress.advance(-entry.size)
            ok = self._download(partial, 0, entry, fetch, progress)
        if not ok:
            partial.unlink()
            raise DataCorrupted(f"downloaded bytes of {entry.path!r} do not match {entry.digest}")
        os.replace(partial, final)
        return final


def place(cached: Path, out_dir: Path, rel: str) -> Path:
    """Copy a cached blob to ``out_dir/rel`` atomically; never outside ``out_dir``."""
    validate_file_path(rel)
    target = (out_dir / rel).resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise InvalidParameter(f"file path {rel!r} would land outside {out_dir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".cairn-{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as out, cached.open("rb") as src:
            _copy(src.fileno(), out.fileno(), cached.stat().st_size)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


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
