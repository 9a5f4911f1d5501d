"""push and pull end to end, in both SDK modes, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cairn.client import cache as blob_cache
from cairn.client import transfer
from cairn.client.base import BaseClient
from cairn.client.cache import BlobCache
from cairn.client.transfer import DigestCache, LocalFile, scan, upload_plan
from cairn.domain.blob_batch import BATCH_BYTES, BATCH_FILE_MAX, MAX_BATCH_BLOBS
from cairn.domain.models import FileEntry, VersionStatus
from cairn.errors import DataCorrupted, InvalidParameter, Unavailable

FILES = {
    "model.bin": os.urandom(300_000),
    "config/params.json": b'{"lr": 0.1}',
    "config/nested/deeper/notes.md": b"# notes\n",
    "empty.txt": b"",
    "données/modèle-é.txt": "ünïcödé".encode(),
}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """push remembers digests in the cache folder: never the user's own here."""
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "default-cache"))


def test_push_pull_round_trip(client: BaseClient, tmp_path: Path, cache: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    client.create_model("fraud")
    v = client.push(src, name="fraud", alias="staging", metrics={"auc": 0.93}, params={"k": "v"})
    assert v.status is VersionStatus.READY
    assert v.aliases == ("staging",)
    assert {f.path for f in v.files} == set(FILES)
    assert client.last_transfer is not None
    assert client.last_transfer.transferred_bytes == sum(len(b) for b in FILES.values())

    out = client.pull("models:/fraud@staging", tmp_path / "out", cache_dir=cache)
    assert read_tree(out) == FILES
    assert not [p for p in out.rglob("*") if p.name.startswith(".cairn-")]


def test_unchanged_push_sends_only_the_manifest(client: BaseClient, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    client.create_model("m")
    first = client.push(src, name="m")
    second = client.push(src, name="m")
    assert second.version == first.version + 1
    assert second.digest == first.digest
    assert client.last_transfer is not None
    assert client.last_transfer.transferred_bytes == 0
    (src / "model.bin").write_bytes(os.urandom(1000))
    client.push(src, name="m")
    assert client.last_transfer.transferred_files == 1


def test_second_pull_comes_from_the_cache(client: BaseClient, tmp_path: Path, cache: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    client.create_model("m")
    client.push(src, name="m")
    client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    client.pull("models:/m/latest", tmp_path / "b", cache_dir=cache)
    assert client.last_transfer is not None and client.last_transfer.transferred_bytes == 0
    assert read_tree(tmp_path / "b") == FILES


def test_tampered_cache_is_not_trusted_blindly(
    client: BaseClient, tmp_path: Path, cache: Path
) -> None:
    src = write_tree(tmp_path / "src", {"w": b"weights" * 100})
    client.create_model("m")
    client.push(src, name="m")
    digest = "sha256:" + hashlib.sha256(b"weights" * 100).hexdigest()
    client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    cached = cache / "blobs" / "sha256" / digest[7:9] / digest[7:]
    cached.write_bytes(b"x" * 700)  # same size, other bytes: no longer the verified file...
    out = client.pull("models:/m/1", tmp_path / "b", cache_dir=cache)
    assert (out / "w").read_bytes() == b"weights" * 100  # ...so hashed, found bad, fetched
    assert client.last_transfer is not None and client.last_transfer.transferred_bytes == 700
    assert cached.read_bytes() == b"weights" * 100
    # a partial download that fails verification is thrown away, never placed
    cached.unlink()
    (cached.with_name(cached.name + ".part")).write_bytes(b"garbage")
    out = client.pull("models:/m/1", tmp_path / "c", cache_dir=cache)
    assert (out / "w").read_bytes() == b"weights" * 100


def test_a_download_longer_than_its_file_is_cut_off(
    client: BaseClient, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server (or a bucket's link) that sends more bytes than the manifest's size is
    not read on into the cache folder: the pull fails at the first byte too many."""
    data = os.urandom(2 * BATCH_FILE_MAX)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", {"w.bin": data}), name="m")
    extra: list[int] = []

    def endless(*_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield data
        for i in range(64):  # stands for a body that never ends
            extra.append(i)
            yield bytes(BATCH_FILE_MAX)

    out = tmp_path / "out"
    with monkeypatch.context() as patched, pytest.raises(DataCorrupted, match="longer"):
        patched.setattr(client, "_fetch", endless)
        client.pull("models:/m/1", out, cache_dir=cache)
    assert len(extra) <= 1
    assert list(out.iterdir()) == []
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    assert read_tree(client.pull("models:/m/1", out, cache_dir=cache)) == {"w.bin": data}


def test_a_verified_cached_blob_is_not_hashed_again(
    client: BaseClient, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its stamp (the identity it had when verified) still matches; an unstamped blob (an
    older cache) is hashed once, then stamped. A blob smaller than ``STAMPED`` gets no
    stamp and is hashed each time, which costs less than writing a stamp."""
    big, small = b"weights" * 10_000, b"vocab"
    assert len(small) < BlobCache.STAMPED <= len(big)
    src = write_tree(tmp_path / "src", {"w": big, "v": small})
    client.create_model("m")
    client.push(src, name="m")
    client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    assert len(list(cache.rglob("*.verified"))) == 1
    hashed: list[int] = []
    real = blob_cache.sha256_file
    monkeypatch.setattr(
        blob_cache, "sha256_file", lambda p, *a: hashed.append(p.stat().st_size) or real(p, *a)
    )
    client.pull("models:/m/1", tmp_path / "b", cache_dir=cache)
    assert hashed == [len(small)]
    for stamp in cache.rglob("*.verified"):
        stamp.unlink()
    hashed.clear()
    client.pull("models:/m/1", tmp_path / "c", cache_dir=cache)
    client.pull("models:/m/1", tmp_path / "d", cache_dir=cache)
    assert sorted(hashed) == [len(small), len(small), len(big)]
    assert client.last_transfer is not None and client.last_transfer.transferred_bytes == 0


@pytest.mark.parametrize("failure", ["corrupt bytes", "refused midway"])
def test_a_pull_that_fails_places_nothing(
    client: BaseClient,
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """A file written while it downloads is renamed into the folder only once every file
    of the version has arrived and matched its digest."""
    src = write_tree(tmp_path / "src", FILES)
    client.create_model("m")
    client.push(src, name="m")
    fetch = client._fetch

    def bad_model_bin(
        name: str, version: int, path: str, start: int, direct: str | None = None, **kw: bool
    ) -> Iterator[bytes]:
        for chunk in fetch(name, version, path, start, direct, **kw):
            if path != "model.bin":
                yield chunk
            elif failure == "corrupt bytes":
                yield bytes(len(chunk))
            else:
                yield chunk[:1000]
                raise Unavailable("connection reset")

    fetch_many = client._fetch_many

    def bad_batch(name: str, version: int, entries: Sequence[FileEntry], **kw: bool) -> list[bytes]:
        received = fetch_many(name, version, entries, **kw)
        if "model.bin" in [e.path for e in entries]:
            if failure != "corrupt bytes":
                raise Unavailable("connection reset")
            received = [
                bytes(len(c)) if e.path == "model.bin" else c
                for e, c in zip(entries, received, strict=True)
            ]
        return received

    monkeypatch.setattr(client, "_fetch", bad_model_bin)  # files fetched on their own
    monkeypatch.setattr(client, "_fetch_many", bad_batch)  # small files, fetched together
    out = tmp_path / "out"
    expected = DataCorrupted if failure == "corrupt bytes" else Unavailable
    with pytest.raises(expected):
        client.pull("models:/m/1", out, cache_dir=cache)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    assert read_tree(client.pull("models:/m/1", out, cache_dir=cache)) == FILES


def test_files_with_the_same_bytes_are_each_placed(
    client: BaseClient, tmp_path: Path, cache: Path
) -> None:
    same = {"a.bin": b"same" * 1000, "copy/a.bin": b"same" * 1000, "b.bin": b"other"}
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", same), name="m")
    assert read_tree(client.pull("models:/m/1", tmp_path / "first", cache_dir=cache)) == same
    assert read_tree(client.pull("models:/m/1", tmp_path / "again", cache_dir=cache)) == same


def test_an_interrupted_pull_stops_its_downloads(
    client: BaseClient, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a pull ends the downloads under way at their next chunk, instead of
    waiting for each one to finish; nothing is placed, and the cache keeps what arrived."""
    data = os.urandom(2 * BATCH_FILE_MAX)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", {"w.bin": data}), name="m")
    pieces = 400
    step = len(data) // pieces
    sent: list[int] = []

    def slow(*_args: object, **_kwargs: object) -> Iterator[bytes]:
        for i in range(pieces):
            if i == 1:  # Ctrl-C, as the terminal delivers it: to the main thread
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            sent.append(i)
            yield data[i * step : (i + 1) * step]
            time.sleep(0.025)

    out = tmp_path / "out"
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(client, "_fetch", slow)
        client.pull("models:/m/1", out, cache_dir=cache)
    assert len(sent) < pieces  # not read to its end after the interrupt
    assert list(out.iterdir()) == []
    assert read_tree(client.pull("models:/m/1", out, cache_dir=cache)) == {"w.bin": data}


@pytest.mark.parametrize("in_the_way", ["a folder at a file's path", "a file at a folder's path"])
def test_a_pull_that_cannot_place_a_file_places_none(
    client: BaseClient, tmp_path: Path, cache: Path, in_the_way: str
) -> None:
    """A file or folder already in the output folder where the version needs the other
    kind is found before anything moves: an error naming the path, and no file placed."""
    files = {"a.bin": b"a" * 100, "b": b"b" * 100, "c.bin": b"c" * 100, "sub/x": b"x"}
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", files), name="m")
    out = tmp_path / "out"
    if in_the_way == "a folder at a file's path":
        write_tree(out, {"b/mine.txt": b"mine"})
    else:
        write_tree(out, {"sub": b"mine"})
    before = read_tree(out), sorted(out.rglob("*"))
    with pytest.raises(InvalidParameter, match=r"cannot place ('b'|'sub/x')"):
        client.pull("models:/m/1", out, cache_dir=cache)
    assert (read_tree(out), sorted(out.rglob("*"))) == before


def _cached(cache: Path, data: bytes) -> Path:
    hexdigest = hashlib.sha256(data).hexdigest()
    return cache / "blobs" / "sha256" / hexdigest[:2] / hexdigest


def test_a_pull_links_its_files_from_the_cache_but_never_shares_one_between_folders(
    client: BaseClient, tmp_path: Path, cache: Path
) -> None:
    """On the cache's filesystem the first folder shares the cache's copy (one copy of the
    bytes on disk); a second folder gets its own, until no folder links the cached blob."""
    data = os.urandom(200_000)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", {"w": data, "same": data}), name="m")
    cached = _cached(cache, data)
    a = client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    inodes = {(a / name).stat().st_ino for name in ("w", "same")}
    assert cached.stat().st_ino in inodes and len(inodes) == 2  # one linked, one copied
    b = client.pull("models:/m/1", tmp_path / "b", cache_dir=cache)
    assert cached.stat().st_ino not in {(b / name).stat().st_ino for name in ("w", "same")}
    assert read_tree(b) == {"w": data, "same": data}
    assert client.last_transfer is not None and client.last_transfer.transferred_bytes == 0
    for name in ("w", "same"):
        (a / name).unlink()
    c = client.pull("models:/m/1", tmp_path / "c", cache_dir=cache)
    assert cached.stat().st_ino in {(c / name).stat().st_ino for name in ("w", "same")}


def test_a_version_pulled_again_into_its_folder_is_left_in_place(
    client: BaseClient, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(100_000)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", {"w": data}), name="m")
    out = client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    before = (out / "w").stat()
    hashed: list[Path] = []
    real = blob_cache.sha256_file
    monkeypatch.setattr(blob_cache, "sha256_file", lambda p, *a: hashed.append(p) or real(p, *a))
    client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    client.pull("models:/m/1", tmp_path / "b", cache_dir=cache)
    assert (out / "w").stat().st_ino == before.st_ino == _cached(cache, data).stat().st_ino
    assert hashed == []  # nothing moved the cached blob's stamp
    assert (tmp_path / "b" / "w").read_bytes() == data


def test_a_pulled_file_edited_in_place_is_not_served_from_the_cache(
    client: BaseClient, tmp_path: Path, cache: Path
) -> None:
    """The edit reaches the cache's copy through the link; the cache's stamp no longer
    matches, so the next pull hashes it, finds it changed and downloads the file again."""
    data = os.urandom(100_000)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", {"w": data}), name="m")
    a = client.pull("models:/m/1", tmp_path / "a", cache_dir=cache)
    with (a / "w").open("r+b") as f:  # in place, same size (as `vim` does to a linked file)
        f.write(b"edited")
    b = client.pull("models:/m/1", tmp_path / "b", cache_dir=cache)
    assert (b / "w").read_bytes() == data
    assert client.last_transfer is not None and client.last_transfer.transferred_bytes == len(data)
    assert (a / "w").read_bytes() == b"edited" + data[6:]  # the user's edit stays theirs


def test_without_hard_links_a_pull_copies(
    client: BaseClient, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    client.create_model("m")
    client.push(write_tree(tmp_path / "src", FILES), name="m")
    out = client.pull("models:/m/1", tmp_path / "out", cache_dir=cache)
    assert read_tree(out) == FILES
    assert (out / "model.bin").stat().st_ino != _cached(cache, FILES["model.bin"]).stat().st_ino


def test_single_file_push(client: BaseClient, tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx" * 10)
    client.create_model("m")
    v = client.push(f, name="m")
    assert [x.path for x in v.files] == ["model.onnx"]


def test_bad_pushes_change_nothing(client: BaseClient, tmp_path: Path) -> None:
    client.create_model("m")
    with pytest.raises(InvalidParameter):
        client.push(tmp_path / "nothing-here", name="m")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidParameter):
        client.push(empty, name="m")
    assert client.list_versions("m").items == []


@pytest.mark.parametrize("alias", ["bad alias!", "latest", "v2"])
def test_a_push_with_an_invalid_alias_creates_no_version(
    client: BaseClient, tmp_path: Path, alias: str
) -> None:
    """The alias is checked before the version is made: the push that fails leaves nothing
    behind (a re-run with the alias corrected would otherwise make a second version)."""
    client.create_model("m")
    with pytest.raises(InvalidParameter, match="alias"):
        client.push(write_tree(tmp_path / "src", {"w": b"w"}), name="m", alias=alias)
    assert client.list_versions("m").items == []


def test_files_listing(client: BaseClient, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    client.create_model("m")
    client.push(src, name="m")
    listed = client.list_files("m", 1)
    assert sorted(f.path for f in listed) == sorted(FILES)
    assert all(f.digest.startswith("sha256:") for f in listed)


# -- the digest cache of scan ---------------------------------------------------------


@pytest.fixture
def counted_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file ``scan`` hashes, in order of hashing."""
    from cairn.client import transfer

    hashed: list[Path] = []
    real = transfer.sha256_file

    def counting(path: Path, progress: transfer.Progress | None = None) -> str:
        hashed.append(path)
        return real(path, progress)

    monkeypatch.setattr(transfer, "sha256_file", counting)
    return hashed


def settled_cache(root: Path) -> DigestCache:
    """A digest cache that trusts files changed just before they were hashed (as if the
    files had been written long before): only the stat identity decides."""
    cache = DigestCache(root)
    cache.RACY_NS = 0
    return cache


def test_a_rescan_of_unchanged_files_hashes_nothing(
    tmp_path: Path, counted_hashes: list[Path]
) -> None:
    src = write_tree(tmp_path / "src", FILES)
    first = scan(src, digests=settled_cache(tmp_path / "c"))
    assert len(counted_hashes) == len(FILES)
    again = scan(src, digests=settled_cache(tmp_path / "c"))  # read back from its file
    assert len(counted_hashes) == len(FILES)
    assert [f.entry for f in again] == [f.entry for f in first]


def test_a_changed_file_is_hashed_again(tmp_path: Path, counted_hashes: list[Path]) -> None:
    src = write_tree(tmp_path / "src", FILES)
    scan(src, digests=settled_cache(tmp_path / "c"))
    changed = bytearray(FILES["model.bin"])
    changed[0] ^= 0xFF
    (src / "model.bin").write_bytes(bytes(changed))  # same size, same second
    # on kernels before 6.13 a write in the same clock tick keeps the timestamps (that
    # case is what RACY_NS covers): make sure this one is seen as the later write it is
    before = os.stat(src / "model.bin")
    os.utime(src / "model.bin", ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    counted_hashes.clear()
    entries = {f.entry.path: f.entry for f in scan(src, digests=settled_cache(tmp_path / "c"))}
    assert counted_hashes == [src / "model.bin"]
    assert entries["model.bin"].digest == "sha256:" + hashlib.sha256(changed).hexdigest()


def test_files_changed_just_before_hashing_are_hashed_every_time(
    tmp_path: Path, counted_hashes: list[Path]
) -> None:
    src = write_tree(tmp_path / "src", FILES)  # "racily clean": a write in the same clock
    scan(src, digests=DigestCache(tmp_path / "c"))  # tick could go unseen by stat
    scan(src, digests=DigestCache(tmp_path / "c"))
    assert len(counted_hashes) == 2 * len(FILES)


def test_a_corrupt_digest_cache_is_an_empty_one(tmp_path: Path, counted_hashes: list[Path]) -> None:
    src = write_tree(tmp_path / "src", FILES)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / DigestCache.FILE).write_text('{"version": 1, "entries": [1, 2')
    entries = [f.entry for f in scan(src, digests=settled_cache(tmp_path / "c"))]
    assert len(counted_hashes) == len(FILES)
    assert {e.path: e.digest for e in entries} == {
        rel: "sha256:" + hashlib.sha256(data).hexdigest() for rel, data in FILES.items()
    }
    scan(src, digests=settled_cache(tmp_path / "c"))  # and it was rewritten, whole
    assert len(counted_hashes) == len(FILES)


@pytest.mark.parametrize("size", [0, 10, transfer.CHUNK, 3 * transfer.CHUNK + 5])
def test_receive_hashes_and_writes_every_batch(tmp_path: Path, size: int) -> None:
    """One batch is hashed and copied in place, more by the helper threads: either way
    the file, its copy and the digest get every byte, in order."""
    data = os.urandom(size)
    chunks = [data[i : i + 65536] for i in range(0, size, 65536)]
    target, copy = tmp_path / "target", tmp_path / "copy"
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT) for p in (target, copy)]
    hasher = hashlib.sha256()
    try:
        blob_cache._receive(fds[0], chunks, hasher, None, fds[1:])
    finally:
        for fd in fds:
            os.close(fd)
    assert hasher.digest() == hashlib.sha256(data).digest()
    assert target.read_bytes() == data and copy.read_bytes() == data


# -- what a push sends together -------------------------------------------------------


def _file(path: str, size: int) -> LocalFile:
    fake = "sha256:" + hashlib.sha256(path.encode()).hexdigest()
    return LocalFile(FileEntry(path, size, fake), Path(path))


def test_upload_plan_batches_small_files_in_path_order() -> None:
    big = _file("big", BATCH_FILE_MAX + 1)
    small = [_file(f"s{i:04d}", BATCH_FILE_MAX // 2) for i in range(40)][::-1]
    alone, batches = upload_plan([big, *small])
    assert alone == [big]
    assert [f.entry.path for b in batches for f in b] == sorted(f.entry.path for f in small)
    assert all(sum(f.entry.size for f in b) <= BATCH_BYTES for b in batches)
    per_batch = BATCH_BYTES // (BATCH_FILE_MAX // 2)
    assert [len(b) for b in batches] == [per_batch, per_batch, 40 - 2 * per_batch]


def test_upload_plan_sends_a_lone_small_file_alone() -> None:
    lone = _file("config.json", 10)
    assert upload_plan([lone]) == ([lone], [])
    many = [_file(f"f{i:05d}", 0) for i in range(MAX_BATCH_BLOBS + 1)]
    alone, batches = upload_plan(many)
    assert [len(b) for b in batches] == [MAX_BATCH_BLOBS] and alone == [many[-1]]


def test_pull_only_the_files_asked_for(client: BaseClient, tmp_path: Path) -> None:
    src = tmp_path / "llm"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_bytes(b"{}")
    (src / "tokenizer" / "vocab.txt").write_bytes(b"a b c")
    (src / "weights.bin").write_bytes(b"w" * 200_000)
    client.create_model("llm")
    client.push(src, name="llm")
    out = client.pull(
        "models:/llm/1",
        tmp_path / "out",
        include=["*.json", "tokenizer/"],
        cache_dir=tmp_path / "c",
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "config.json",
        "tokenizer/vocab.txt",
    ]
    stats = client.last_transfer
    assert stats is not None and (stats.files, stats.bytes) == (2, 7)
    with pytest.raises(InvalidParameter, match="no file matches"):
        client.pull("models:/llm/1", tmp_path / "none", include=["*.onnx"])
    assert not (tmp_path / "none").exists()
