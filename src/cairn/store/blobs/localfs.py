"""Filesystem access below one root that never follows a symbolic link.

Paths are walked one component at a time from the root with ``O_NOFOLLOW`` directory
descriptors; callers open files relative to the descriptor they get, with
``O_NOFOLLOW`` too. A link anywhere below the root fails with ``ELOOP``/``ENOTDIR``,
which ``os_errors`` turns into a clear error instead of following it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cairn.errors import CairnError, NotFound, Unavailable
from cairn.store.blobs.integrity import SourceFailed

CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | CLOEXEC


@contextmanager
def open_dir(root: Path, parts: Sequence[str], create: bool = False) -> Iterator[int]:
    """A descriptor for ``root/parts…``; missing directories are made (durably) if asked."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for name in parts:
            child = _open_child_dir(fd, name, create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_child_dir(parent: int, name: str, create: bool) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    else:
        os.fsync(parent)  # the new directory entry is durable before anything goes in it
    return os.open(name, DIR_FLAGS, dir_fd=parent)


@contextmanager
def os_errors(not_found: str | None = None) -> Iterator[None]:
    """Translate OS errors into Cairn errors (``FileNotFoundError`` → ``NotFound`` if asked).

    A failure of the caller's own chunks (``SourceFailed``) is re-raised as it was.
    """
    try:
        yield
    except SourceFailed as exc:
        raise exc.error from exc.error.__cause__
    except FileNotFoundError as exc:
        if not_found is not None:
            raise NotFound(not_found) from exc
        raise Unavailable(f"local blob store: {exc.strerror} ({exc.filename})") from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise CairnError(
                f"local blob store: {exc.filename!r} is a symbolic link or not a directory; "
                "links are never followed below the store root"
            ) from exc
        raise Unavailable(f"local blob store I/O failed: {exc.strerror} ({exc.filename})") from exc
