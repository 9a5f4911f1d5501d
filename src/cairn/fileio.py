"""File helpers shared by the server's stores and the client's cache.

Outside the layers on purpose: it imports only the standard library, so the client can
use it without pulling in the store (and its object-store libraries).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from typing import Final

MAX_IOVECS: Final = 512  # parts per ``write_all``: well below IOV_MAX (1024 on Linux)


def write_all(fd: int, parts: list[bytes]) -> int:
    """``os.writev`` until every byte of ``parts`` is written (a short write continues);
    how many bytes that was."""
    total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    while done < total:  # rare for regular files: write the rest one part at a time
        skipped = 0
        for part in parts:
            if done < skipped + len(part):
                done += os.write(fd, memoryview(part)[done - skipped :])
                break
            skipped += len(part)
    return total


class _Statx(ctypes.Structure):
    """Linux's ``struct statx`` (``linux/stat.h``), up to the fields read here, with room
    for the rest."""

    _fields_ = [
        ("mask", ctypes.c_uint32),
        ("blksize", ctypes.c_uint32),
        ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16),
        ("spare0", ctypes.c_uint16),
        ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("attributes_mask", ctypes.c_uint64),
        ("times", ctypes.c_byte * 64),  # atime, btime, ctime, mtime
        ("rdev_major", ctypes.c_uint32),
        ("rdev_minor", ctypes.c_uint32),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("spare", ctypes.c_uint64 * 46),  # the kernel writes 256 bytes; this is 512
    ]


_STATX_INO = 0x100
_AT_FDCWD = -100


@functools.cache
def _statx() -> Callable[..., int] | None:
    """libc's ``statx``, looked up on first use (the client imports this module too)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        statx: Callable[..., int] = ctypes.CDLL(None, use_errno=True).statx
    except (AttributeError, OSError):  # glibc before 2.28, musl before 1.2.5
        return None
    return statx


def file_id(path: str) -> tuple[int, int]:
    """The device and inode number of the file at ``path`` (``FileNotFoundError`` if
    there is none), found without asking for its times.

    Since Linux 6.13, a ``stat`` that reads a file's times makes the next write to it
    record a fine-grained modification time (so that the change shows), which dirties the
    inode; on an ext4 without a journal, as this machine's is, ``fdatasync`` then writes
    the inode's block too, one more disk write per sync (a journal, or the ``lazytime``
    mount option, would keep it out of the sync). The log is written on every commit and
    synced after it, so ``WalSync`` (``store/metadata/wal_sync.py``) asks ``statx`` for
    the inode number only: here the
    syncs of 3,000 version creates took 200 µs (p50) with ``os.stat`` and 163 µs without
    (``benchmarks/asgi_costs.py``). Elsewhere it falls back to ``os.stat``.
    """
    statx = _statx()
    if statx is None:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    out = _Statx()
    if statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_INO, ctypes.byref(out)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)  # FileNotFoundError for ENOENT
    return os.makedev(out.dev_major, out.dev_minor), out.ino
