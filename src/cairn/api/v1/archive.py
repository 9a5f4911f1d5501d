"""Stream a version as a POSIX tar archive without buffering files in memory.

Every header is built before the first byte goes out, so the archive's length is known
in advance (``TarPlan.length``) and the answer carries ``Content-Length``: a client shows
progress, and a stream cut short (a corrupt blob stops it) is seen as short. Members are
stamped with the version's creation time, read-only for others (0o644).
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from cairn.domain.models import FileEntry

BLOCK = 512
_END = 2 * BLOCK  # two zero blocks end a tar


@dataclass(frozen=True)
class TarPlan:
    """The members of an archive, each with its header (PAX where a name needs it)."""

    members: tuple[tuple[FileEntry, bytes], ...]

    @classmethod
    def of(cls, files: Sequence[FileEntry], mtime: float) -> TarPlan:
        members = []
        for entry in files:
            info = tarfile.TarInfo(entry.path)
            info.size = entry.size
            info.mode = 0o644
            info.mtime = int(mtime)
            info.type = tarfile.REGTYPE
            members.append((entry, info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")))
        return cls(tuple(members))

    @property
    def length(self) -> int:
        """The archive's size in bytes: headers, contents, padding, the end blocks."""
        return _END + sum(len(header) + _padded(e.size) for e, header in self.members)

    def stream(self, open_file: Callable[[str], Iterable[bytes]]) -> Iterator[bytes]:
        """Header, bytes and padding for each file, then the two zero blocks."""
        for entry, header in self.members:
            yield header
            sent = 0
            for chunk in open_file(entry.path):
                sent += len(chunk)
                yield chunk
            if sent != entry.size:
                raise RuntimeError(f"{entry.path}: read {sent} bytes, expected {entry.size}")
            if entry.size % BLOCK:
                yield b"\0" * (BLOCK - entry.size % BLOCK)
        yield b"\0" * _END


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK
