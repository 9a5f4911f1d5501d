"""A disk that fills up during an upload: the client gets a clear 503, nothing half-written
is kept as a blob, and once there is room again the same upload goes through (a
resumable one from where the disk filled)."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn import fileio

MiB = 1 << 20
DATA = os.urandom(3 * MiB)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class FullDisk:
    """``os`` as the blob store's writes see it, on a disk with ``room`` bytes left: a
    write that does not fit is short, the next one fails with ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def writev(self, fd: int, parts: list[bytes]) -> int:
        return self.write(fd, b"".join(parts))

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.room == 0 and len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = os.write(fd, memoryview(data)[: self.room])
        self.room -= done
        return done


@contextmanager
def full_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(fileio, "os", FullDisk(room))
        yield


def new_version(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    made = api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "weights.bin", "size": len(DATA), "digest": DIGEST}]},
    )
    assert made.json()["missing"] == [DIGEST]


def assert_full_disk_answer(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "No space left on device" in body["message"]
    assert int(answer.headers["Retry-After"]) >= 1  # as every 503: it is worth another try


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_whole_upload_that_fills_the_disk_keeps_nothing_and_goes_through_later(
    api: TestClient, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_version(api)
    url = f"/api/v1/models/m/versions/1/blobs/{DIGEST}"
    with full_disk(monkeypatch, room=MiB + 12345):
        assert_full_disk_answer(api.put(url, content=DATA))
    assert files_under(blob_root) == []  # no temporary file, no blob
    assert api.get("/api/v1/models/m/versions/1/missing").json() == [DIGEST]
    assert api.get("/api/v1/models/m/versions/1").json()["status"] == "PENDING"
    assert api.put(url, content=DATA).json()["version_status"] == "READY"
    assert api.get("/api/v1/models/m/versions/1/files/weights.bin").content == DATA


def test_a_resumable_upload_that_fills_the_disk_resumes_where_it_stopped(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_version(api)
    ticket = api.post("/api/v1/models/m/versions/1/uploads", json={"digest": DIGEST}).json()
    patch = f"/api/v1/uploads/{ticket['upload_id']}"
    room = MiB + MiB // 2
    with full_disk(monkeypatch, room=room):
        assert_full_disk_answer(api.patch(patch, content=DATA, headers={"Upload-Offset": "0"}))
    offset = api.get(patch).json()["offset"]
    assert offset == room  # what was written stays staged
    sent = api.patch(patch, content=DATA[offset:], headers={"Upload-Offset": str(offset)})
    assert sent.json()["offset"] == len(DATA)
    assert api.post(f"{patch}/complete").json()["version_status"] == "READY"
    assert api.get("/api/v1/models/m/versions/1/files/weights.bin").content == DATA
