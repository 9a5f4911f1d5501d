"""Batched writes and the memo of verified files, under the local blob store."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.store.blobs import localio
from cairn.store.blobs.localio import VerifiedFiles, write_chunks

MiB = 1 << 20
DIGEST = "sha256:" + "ab" * 32


def test_write_chunks_writes_every_byte_in_order(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(40 * MiB + 5)  # past the writeback hint, several times
    pieces = [data[i : i + 65_536] for i in range(0, len(data), 65_536)]
    seen: list[int] = []
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert write_chunks(fd, pieces, lambda c: seen.append(len(c))) == len(data)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data
    assert sum(seen) == len(data)


def test_many_tiny_chunks_stay_under_the_iovec_limit(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_chunks(fd, [data[i : i + 1] for i in range(len(data))], lambda c: None)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_chunks_accepted_before_a_failure_are_written(tmp_path: Path) -> None:
    def source() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000
        raise ConnectionResetError("client went away")

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ConnectionResetError):
            write_chunks(fd, source(), lambda c: None)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"a" * 1000 + b"b" * 1000


def test_a_refused_chunk_is_not_written(tmp_path: Path) -> None:
    def check(chunk: bytes) -> None:
        if chunk.startswith(b"x"):
            raise ValueError("too much")

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ValueError):
            write_chunks(fd, [b"ok", b"xx", b"never"], check)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"ok"


def test_a_short_write_is_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def short_writev(fd: int, parts: list[bytes]) -> int:
        return real(fd, [parts[0][:3]])

    monkeypatch.setattr(os, "writev", short_writev)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_chunks(fd, [b"hello", b" ", b"world"], lambda c: None)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"hello world"


def test_writeback_hint_failing_with_eio_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int, offset: int, length: int, flags: int) -> int:
        localio.ctypes.set_errno(5)
        return -1

    monkeypatch.setattr(localio, "_sync_file_range", failing)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="Input/output error"):
            write_chunks(fd, [b"x" * MiB] * 20, lambda c: None)
    finally:
        os.close(fd)


def test_an_unsupported_writeback_hint_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(fd: int, offset: int, length: int, flags: int) -> int:
        localio.ctypes.set_errno(22)  # EINVAL
        return -1

    monkeypatch.setattr(localio, "_sync_file_range", unsupported)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert write_chunks(fd, [b"x" * MiB] * 40, lambda c: None) == 40 * MiB
    finally:
        os.close(fd)


def test_a_verified_file_stays_intact_until_touched(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"bytes")
    memo = VerifiedFiles()
    memo.remember(DIGEST, os.stat(path))
    assert memo.intact(DIGEST, os.stat(path))
    assert not memo.intact("sha256:" + "cd" * 32, os.stat(path))  # another digest
    path.chmod(0o600)  # any metadata change moves the ctime
    assert not memo.intact(DIGEST, os.stat(path))
    assert not memo.intact(DIGEST, os.stat(path))  # forgotten, not only mismatched


def test_a_rewritten_file_is_not_intact(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"bytes")
    memo = VerifiedFiles()
    memo.remember(DIGEST, os.stat(path))
    with path.open("r+b") as f:  # same size, in place
        f.write(b"B")
    assert not memo.intact(DIGEST, os.stat(path))


def test_a_replaced_file_is_not_intact(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"bytes")
    memo = VerifiedFiles()
    memo.remember(DIGEST, os.stat(path))
    (tmp_path / "other").write_bytes(b"bytes")
    os.replace(tmp_path / "other", path)
    assert not memo.intact(DIGEST, os.stat(path))


def test_memo_entries_expire_and_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"bytes")
    st = os.stat(path)
    expired = VerifiedFiles(ttl_s=0)
    expired.remember(DIGEST, st)
    assert not expired.intact(DIGEST, st)
    small = VerifiedFiles(capacity=2)
    digests = [f"sha256:{i:064x}" for i in range(3)]
    for d in digests:
        small.remember(d, st)
    assert [small.intact(d, st) for d in digests] == [False, True, True]
    small.forget(digests[2])
    assert not small.intact(digests[2], st)
