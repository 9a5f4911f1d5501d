"""Stream a version as a POSIX tar archive without buffering files in memory."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator

from cairn.domain.models import FileEntry

BLOCK = 512


def tar_stream(
    files: Iterable[FileEntry], open_file: Callable[[str], Iterable[bytes]]
) -> Iterator[bytes]:
    """Header, bytes and padding for each file, then the two zero blocks that end a tar."""
    for entry in files:
        info = tarfile.TarInfo(entry.path)
        info.size = entry.size
        info.mode = 0o644
        info.type = tarfile.REGTYPE
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")
        sent = 0
        for chunk in open_file(entry.path):
            sent += len(chunk)
            yield chunk
        if sent != entry.size:
            raise RuntimeError(f"{entry.path}: read {sent} bytes, expected {entry.size}")
        if entry.size % BLOCK:
            yield b"\0" * (BLOCK - entry.size % BLOCK)
    yield b"\0" * (2 * BLOCK)
