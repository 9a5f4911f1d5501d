"""File-descriptor helpers shared by the server's blob store and the client's cache.

Outside the layers on purpose: it imports only ``os``, so the client can use it without
pulling in the store (and its object-store libraries).
"""

from __future__ import annotations

import os
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
