"""What only the local backend promises: permissions, durability, no symbolic links."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.errors import CairnError, InvalidParameter, Unavailable
from cairn.store.blobs import LocalBlobStore
from cairn.store.blobs.layout import blob_key

DATA = b"model weights" * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path) -> LocalBlobStore:
    return LocalBlobStore(root)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_permissions(store: LocalBlobStore, root: Path) -> None:
    store.put(DIGEST, len(DATA), [DATA])
    path = root / blob_key(DIGEST)
    assert mode(path) == 0o644
    assert mode(path.parent) == 0o755
    assert mode(path.parent.parent) == 0o755

    upload_id = store.begin_upload(DIGEST, len(DATA))
    staged = root / "uploads" / upload_id
    assert mode(staged / "data") == 0o600
    assert mode(staged / "info.json") == 0o600


@pytest.mark.usefixtures("umask_022")
def test_completed_upload_becomes_world_readable(store: LocalBlobStore, root: Path) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA])
    store.complete_upload(upload_id)
    assert mode(root / blob_key(DIGEST)) == 0o644
    assert files(root) == [blob_key(DIGEST)]


def test_fsync_failure_fails_the_put_and_leaves_nothing(
    store: LocalBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(Unavailable, match="Input/output error"):
        store.put(DIGEST, len(DATA), [DATA])
    monkeypatch.undo()
    assert not store.exists(DIGEST)
    assert files(root) == []


def test_fsync_failure_fails_the_append(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(Unavailable, match="Input/output error"):
        store.append(upload_id, 0, [DATA])


def test_an_append_whose_fsync_fails_is_cut_back_to_what_an_earlier_one_made_durable(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed fsync is not retried as if nothing happened (Linux may drop the pages it
    could not write and call the next fsync a success): the staging loses what that
    append wrote, so its offset says what to send again, and the blob is whole."""
    half = len(DATA) // 2
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[:half]])
    real = os.fsync
    failures = [OSError(5, "Input/output error")]

    def fails_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        real(fd)

    monkeypatch.setattr(os, "fsync", fails_once)
    with pytest.raises(Unavailable, match="Input/output error"):
        store.append(upload_id, half, [DATA[half:]])
    monkeypatch.undo()
    assert store.upload_offset(upload_id) == half
    assert store.append(upload_id, half, [DATA[half:]]) == len(DATA)
    assert store.complete_upload(upload_id)
    assert b"".join(store.open_verified(DIGEST)) == DATA


def test_a_linked_directory_below_the_root_is_not_followed(
    store: LocalBlobStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "sha256" / DIGEST[7:9]).mkdir(parents=True)
    (outside / "sha256" / DIGEST[7:9] / DIGEST[7:]).write_bytes(DATA)
    (root / "blobs").symlink_to(outside, target_is_directory=True)

    for call in (
        lambda: store.size(DIGEST),
        lambda: store.open(DIGEST),
        lambda: store.put(DIGEST, len(DATA), [DATA]),
        lambda: store.delete(DIGEST),
        lambda: list(store.iter_blobs()),  # a tampered store is an error, not an empty one
    ):
        with pytest.raises(CairnError, match="symbolic link"):
            call()
    assert (outside / "sha256" / DIGEST[7:9] / DIGEST[7:]).read_bytes() == DATA


def test_a_linked_blob_file_is_not_read(store: LocalBlobStore, root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(DATA)
    path = root / blob_key(DIGEST)
    path.parent.mkdir(parents=True)
    path.symlink_to(secret)
    with pytest.raises(CairnError, match="regular file"):
        store.size(DIGEST)
    with pytest.raises(CairnError):
        store.open(DIGEST)
    assert list(store.iter_blobs()) == []


def test_a_linked_root_is_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    store = LocalBlobStore(tmp_path / "link")
    assert store.root == real
    store.put(DIGEST, len(DATA), [DATA])
    assert (real / blob_key(DIGEST)).read_bytes() == DATA


def test_stray_files_are_not_listed_as_blobs(store: LocalBlobStore, root: Path) -> None:
    store.put(DIGEST, len(DATA), [DATA])
    fan_out = (root / blob_key(DIGEST)).parent
    (fan_out / "notes.txt").write_text("x")
    (fan_out / ("0" * 64)).write_text("wrong fan-out dir")
    (root / "blobs" / "sha256" / "zz").mkdir()
    assert [b.digest for b in store.iter_blobs()] == [DIGEST]


def test_purge_removes_abandoned_temporary_files(store: LocalBlobStore, root: Path) -> None:
    store.check()
    old = root / "tmp" / "put-old"
    new = root / "tmp" / "put-new"
    old.write_bytes(b"half a blob")
    new.write_bytes(b"a put in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.purge_stale(600) == 1
    assert not old.exists()
    assert new.exists()


def test_root_must_be_one_writable_directory(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(Unavailable):
        LocalBlobStore(path)


def test_presigning_is_not_offered_but_arguments_are_checked(store: LocalBlobStore) -> None:
    assert store.presign_get(DIGEST, 60) is None
    assert store.presign_upload("0" * 32, 60) is None
    with pytest.raises(InvalidParameter):
        store.presign_upload("0" * 32, 0)


class CountingSha256:
    """hashlib with a count of the sha256 objects made through it."""

    def __init__(self) -> None:
        self.made = 0

    def sha256(self) -> hashlib._Hash:
        self.made += 1
        return hashlib.sha256()


def test_a_blob_verified_once_is_not_rehashed_until_its_file_changes(
    store: LocalBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.store.blobs import integrity

    store.put(DIGEST, len(DATA), [DATA])  # hashed on the way in: remembered as intact
    counting = CountingSha256()
    monkeypatch.setattr(integrity, "hashlib", counting)
    assert b"".join(store.open_verified(DIGEST)) == DATA
    assert counting.made == 0
    (root / blob_key(DIGEST)).chmod(0o600)  # touched: verified again, then remembered
    assert b"".join(store.open_verified(DIGEST)) == DATA
    assert b"".join(store.open_verified(DIGEST)) == DATA
    assert counting.made == 1
    assert b"".join(LocalBlobStore(root).open_verified(DIGEST)) == DATA
    assert counting.made == 2  # knows nothing: it hashes


def test_a_completed_upload_is_remembered_as_verified(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.store.blobs import integrity

    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[:5000], DATA[5000:]])
    store.complete_upload(upload_id)
    counting = CountingSha256()
    monkeypatch.setattr(integrity, "hashlib", counting)
    assert b"".join(store.open_verified(DIGEST)) == DATA
    assert counting.made == 0


class CountingPread:
    """os.pread, counting the bytes read through it."""

    def __init__(self) -> None:
        self.bytes = 0
        self._pread = os.pread

    def __call__(self, fd: int, n: int, offset: int) -> bytes:
        data = self._pread(fd, n, offset)
        self.bytes += len(data)
        return data


def test_an_upload_hashed_while_appended_completes_without_reading_it_again(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[:5000]])
    store.append(upload_id, 5000, [DATA[5000:]])  # continues the same hash
    reads = CountingPread()
    monkeypatch.setattr(os, "pread", reads)
    assert store.complete_upload(upload_id) is True
    assert reads.bytes == 0
    monkeypatch.undo()
    assert b"".join(store.open(DIGEST)) == DATA


def test_an_upload_appended_elsewhere_is_hashed_on_completion(
    store: LocalBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[:5000]])
    LocalBlobStore(root).append(upload_id, 5000, [DATA[5000:]])  # another server process
    reads = CountingPread()
    monkeypatch.setattr(os, "pread", reads)
    assert store.complete_upload(upload_id) is True
    assert reads.bytes == len(DATA)


def test_staged_bytes_changed_after_the_append_are_caught(
    store: LocalBlobStore, root: Path
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA])
    staged = root / "uploads" / upload_id / "data"
    raw = bytearray(staged.read_bytes())
    raw[10] ^= 0xFF
    staged.write_bytes(bytes(raw))  # same size, other bytes: the remembered hash is stale
    with pytest.raises(InvalidParameter, match="have digest"):
        store.complete_upload(upload_id)
    assert not store.exists(DIGEST)
    assert not (root / "uploads" / upload_id).exists()


def test_wrong_bytes_hashed_while_appended_are_refused(store: LocalBlobStore, root: Path) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [b"x" * len(DATA)])
    with pytest.raises(InvalidParameter, match="have digest"):
        store.complete_upload(upload_id)
    assert not store.exists(DIGEST)
    assert not (root / "uploads" / upload_id).exists()
