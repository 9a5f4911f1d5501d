"""Reading what ``domain/tensors.py`` compares: the safetensors headers of two versions'
files, and the bytes of tensors that moved, from the blob store.

Headers are read with ranged reads (each blob's once); a tensor's values are compared
only when its dtype and shape agree on both sides and it is not at the same place of the
same blob, by reading both spans side by side and stopping at the first difference. The
bytes read for values are bounded (``limit``); past it a tensor is "not compared".
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from cairn.domain.models import FileEntry
from cairn.domain.tensors import Tensor, TensorDiff, diff_tensors, is_safetensors
from cairn.errors import NotFound
from cairn.service.scan_engine import ChunkReader
from cairn.service.scan_formats import (
    SAFETENSORS_MAX_HEADER,
    TensorEntry,
    read_safetensors_header,
)
from cairn.service.scan_pickle import Malformed
from cairn.store.blobs.base import BlobStore

#: At most this many bytes of tensor data are read to compare values, both sides together.
VALUE_READ_LIMIT = 16 << 30


def tensor_diff(
    blobs: BlobStore,
    old: Sequence[FileEntry],
    new: Sequence[FileEntry],
    limit: int = VALUE_READ_LIMIT,
) -> TensorDiff:
    """The tensors of ``new``'s safetensors files against ``old``'s."""
    headers = _Headers(blobs)
    before, after = headers.tensors(old), headers.tensors(new)
    reader = _ValueReader(blobs, limit)
    return diff_tensors(before, after, reader.same, tuple(headers.unreadable))


class _Headers:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.seen: dict[str, list[TensorEntry] | str] = {}  # digest -> its tensors, or why not
        self.unreadable: list[tuple[str, str]] = []

    def tensors(self, files: Sequence[FileEntry]) -> dict[str, Tensor]:
        """A version's tensors by name; a name in two of its files is kept as
        ``path:name`` in both, since neither is the tensor."""
        found: dict[str, list[Tensor]] = {}
        for f in files:
            if not is_safetensors(f.path):
                continue
            read = self._read(f)
            if isinstance(read, str):
                self.unreadable.append((f.path, read))
                continue
            for t in read:
                found.setdefault(t.name, []).append(t)
        out: dict[str, Tensor] = {}
        for name, ts in found.items():
            if len(ts) == 1:
                out[name] = ts[0]
            else:
                out.update((f"{t.path}:{name}", t) for t in ts)
        return out

    def _read(self, f: FileEntry) -> list[Tensor] | str:
        cached = self.seen.get(f.digest)
        if cached is None:
            cached = self.seen[f.digest] = self._parse(f)
        if isinstance(cached, str):
            return cached
        return [Tensor(t.name, t.dtype, t.shape, f.path, f.digest, t.begin, t.end) for t in cached]

    def _parse(self, f: FileEntry) -> list[TensorEntry] | str:
        try:
            chunks = self.blobs.open(f.digest, 0, min(f.size, 8 + SAFETENSORS_MAX_HEADER))
            with io.BufferedReader(ChunkReader(chunks), 1 << 20) as head:
                return read_safetensors_header(head, f.size)
        except Malformed as exc:
            return f"invalid safetensors: {exc}"
        except NotFound:
            return "its bytes are not in the store"


class _ValueReader:
    def __init__(self, blobs: BlobStore, limit: int) -> None:
        self.blobs = blobs
        self.budget = limit

    def same(self, a: Tensor, b: Tensor) -> bool | None:
        """Whether two tensors of one size hold the same bytes; None past the budget."""
        if 2 * a.size > self.budget:
            return None
        try:
            left = self.blobs.open(a.digest, a.begin, a.end)
            right = self.blobs.open(b.digest, b.begin, b.end)
            read, same = _same_bytes(left, right)
        except NotFound:  # purged meanwhile
            return None
        self.budget -= read
        return same


def _same_bytes(left: Iterable[bytes], right: Iterable[bytes]) -> tuple[int, bool]:
    """Whether two byte streams of one length are equal, read side by side up to the
    first difference; and how many bytes that read (both streams). Chunks are compared
    as ``bytes`` (a memcmp; a memoryview compares byte by byte, thousands of times
    slower), whole where both streams cut them alike, as the stores do."""
    a_chunks, b_chunks = (c for c in left if c), (c for c in right if c)
    a = b = b""
    read = 0
    try:
        while True:
            if not a:
                a = next(a_chunks, b"")
                read += len(a)
            if not b:
                b = next(b_chunks, b"")
                read += len(b)
            if not a or not b:
                return read, not a and not b
            if len(a) == len(b):
                if a != b:
                    return read, False
                a = b = b""
                continue
            n = min(len(a), len(b))
            if a[:n] != b[:n]:
                return read, False
            a, b = a[n:], b[n:]
    finally:
        for stream in (left, right):  # the store's streams: their files, their requests
            close = getattr(stream, "close", None)
            if close is not None:
                close()
