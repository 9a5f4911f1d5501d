"""Client-side transfer machinery shared by both SDK modes.

* ``scan``: list a file or folder and hash every file with a streaming sha256, several
  files at once (hashlib releases the GIL on large updates), skipping files the
  ``DigestCache`` knows unchanged.
* ``Progress`` (``domain/progress.py``): what a transfer reports; the CLI draws it with
  Rich, the SDK ignores it.

Downloads go through the blob cache in ``cache.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cairn.domain.blob_batch import BATCH_BYTES, BATCH_FILE_MAX, MAX_BATCH_BLOBS
from cairn.domain.digests import validate_digest
from cairn.domain.models import FileEntry
from cairn.domain.paths import validate_file_path
from cairn.domain.progress import NoProgress, Progress
from cairn.errors import InvalidParameter

CHUNK = 1 << 20
T = TypeVar("T")
WORKERS = 4


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


def upload_plan(files: Sequence[LocalFile]) -> tuple[list[LocalFile], list[list[LocalFile]]]:
    """What a push sends: files alone (large ones, and a small one with no company), and
    small files together, a batch per request (``domain/blob_batch.py``), in path order."""
    return batch_plan(files, lambda f: f.entry)


def batch_plan(
    items: Sequence[T], entry: Callable[[T], FileEntry]
) -> tuple[list[T], list[list[T]]]:
    """``items`` to move alone (larger than ``BATCH_FILE_MAX``, or small with no company)
    and in batches (up to ``BATCH_BYTES`` and ``MAX_BATCH_BLOBS`` each), in path order."""
    alone = [item for item in items if entry(item).size > BATCH_FILE_MAX]
    batches: list[list[T]] = []
    batch: list[T] = []
    size = 0
    small = [item for item in items if entry(item).size <= BATCH_FILE_MAX]
    for item in sorted(small, key=lambda item: entry(item).path):
        if batch and (size + entry(item).size > BATCH_BYTES or len(batch) == MAX_BATCH_BLOBS):
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += entry(item).size
    if batch:
        batches.append(batch)
    alone += [b[0] for b in batches if len(b) == 1]
    return alone, [b for b in batches if len(b) > 1]


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
