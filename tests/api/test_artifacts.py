"""Version files over the native API: manifest, upload, verify, download, archive."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn.api.v1.artifacts import INLINE_BYTES
from cairn.app import create_app
from cairn.client.http import HttpClient
from cairn.domain.blob_batch import BATCH_FILE_MAX, MEDIA_TYPE, frames, parse_frames
from cairn.settings import Settings


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


FILES = {
    "model.bin": b"\x00\x01weights" * 1000,
    "conf/config.json": b'{"layers": 3}',
    "empty.txt": b"",
    "données/é.txt": "unicode ünïcödé".encode(),
}


def manifest(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [{"path": p, "size": len(b), "digest": digest(b)} for p, b in files.items()]


def push(api: TestClient, files: dict[str, bytes], name: str = "m") -> dict[str, Any]:
    if api.get(f"/api/v1/models/{name}").status_code == 404:
        api.post("/api/v1/models", json={"name": name})
    r = api.post(f"/api/v1/models/{name}/versions", json={"files": manifest(files)})
    assert r.status_code == 201, r.text
    created = r.json()
    by_digest = {digest(b): b for b in files.values()}
    for d in created["missing"]:
        put = api.put(
            f"/api/v1/models/{name}/versions/{created['version']}/blobs/{d}", content=by_digest[d]
        )
        assert put.status_code == 200, put.text
    return created


def test_upload_makes_version_ready_and_dedups(api: TestClient) -> None:
    created = push(api, FILES)
    assert created["status"] == "PENDING"
    assert len(created["missing"]) == 4
    v = api.get("/api/v1/models/m/versions/1").json()
    assert v["status"] == "READY"
    assert v["size"] == sum(len(b) for b in FILES.values())
    assert [f["path"] for f in v["files"]] == sorted(FILES)
    again = push(api, FILES)  # same bytes: only the manifest travels
    assert again["missing"] == [] and again["status"] == "READY"
    assert again["digest"] == v["digest"]


def test_download_range_and_headers(api: TestClient) -> None:
    push(api, FILES)
    r = api.get("/api/v1/models/m/versions/1/files/model.bin")
    assert r.content == FILES["model.bin"]
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"] == f'"{digest(FILES["model.bin"])}"'
    part = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"Range": "bytes=2-9"})
    assert part.status_code == 206
    assert part.content == FILES["model.bin"][2:10]
    assert part.headers["content-range"] == f"bytes 2-9/{len(FILES['model.bin'])}"
    tail = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"Range": "bytes=-5"})
    assert tail.content == FILES["model.bin"][-5:]
    r = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"Range": "bytes=999999-"})
    assert r.status_code == 416
    r = api.get("/api/v1/models/m/versions/1/files/donn%C3%A9es/%C3%A9.txt")
    assert r.content == FILES["données/é.txt"]
    assert api.get("/api/v1/models/m/versions/1/files/empty.txt").content == b""
    assert api.get("/api/v1/models/m/versions/1/files/nope").status_code == 404


def test_ranges_of_an_empty_file(api: TestClient) -> None:
    """An empty file has no byte to send in a 206 (``bytes 0--1/0`` is no Content-Range):
    a range that names a position is unsatisfiable (416, ``bytes */0``), as a start past
    the end of any file is, and a suffix of some bytes is the whole empty file (RFC 9110
    §14.1.2), sent as a plain 200."""
    push(api, {"empty.txt": b""})
    url = "/api/v1/models/m/versions/1/files/empty.txt"
    for unsatisfiable in ("bytes=0-0", "bytes=0-", "bytes=-0", "bytes=9-", "bytes=0-999"):
        r = api.get(url, headers={"Range": unsatisfiable})
        assert r.status_code == 416, (unsatisfiable, r.status_code, r.text)
        assert r.headers["content-range"] == "bytes */0"
    for suffix in ("bytes=-1", "bytes=-100"):
        r = api.get(url, headers={"Range": suffix})
        assert (r.status_code, r.content) == (200, b""), suffix
        assert "content-range" not in r.headers
        assert r.headers["content-length"] == "0"


def test_range_positions_of_any_length(api: TestClient) -> None:
    """RFC 9110 puts no bound on a range's digits: a start past the end is 416, an end
    past it is clamped, a suffix longer than the file is all of it, however many digits
    they have (Python refuses int() of over 4,300 digits: that was a 500)."""
    data = b"0123456789"
    push(api, {"w.bin": data})
    url = "/api/v1/models/m/versions/1/files/w.bin"
    huge = "9" * 5000
    past = api.get(url, headers={"Range": f"bytes={huge}-"})
    assert (past.status_code, past.headers["content-range"]) == (416, "bytes */10")
    for clamped in (f"bytes=0-{huge}", f"bytes=-{huge}", f"bytes={'0' * 5000}3-4"):
        r = api.get(url, headers={"Range": clamped})
        assert r.status_code == 206, (clamped[:20], r.text)
        start = 3 if clamped.endswith("3-4") else 0
        end = 5 if clamped.endswith("3-4") else 10
        assert r.content == data[start:end]
        assert r.headers["content-range"] == f"bytes {start}-{end - 1}/10"


def test_head_and_conditional_downloads(api: TestClient) -> None:
    """HEAD tells size and digest without the bytes; the ETag (the digest) makes
    If-None-Match answer 304 and decides whether If-Range lets a Range through."""
    push(api, FILES)
    url = "/api/v1/models/m/versions/1/files/model.bin"
    data, etag = FILES["model.bin"], f'"{digest(FILES["model.bin"])}"'
    head = api.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == etag
    assert head.headers["content-disposition"].startswith("attachment;")
    assert head.headers["x-content-type-options"] == "nosniff"
    assert api.head(url, headers={"Range": "bytes=0-3"}).status_code == 200  # GET's only
    assert api.head("/api/v1/models/m/versions/1/files/nope").status_code == 404
    assert api.head("/api/v1/models/m/versions/9/files/model.bin").status_code == 404
    assert api.head(url, headers={"If-None-Match": etag}).status_code == 304

    for held in (etag, f"W/{etag}", f'"sha256:{"0" * 64}", {etag}', "*"):
        same = api.get(url, headers={"If-None-Match": held})
        assert (same.status_code, same.content) == (304, b""), held
        assert same.headers["etag"] == etag
    other = api.get(url, headers={"If-None-Match": f'"sha256:{"0" * 64}"'})
    assert (other.status_code, other.content) == (200, data)

    ranged = {"Range": "bytes=2-9"}
    kept = api.get(url, headers={**ranged, "If-Range": etag})
    assert (kept.status_code, kept.content) == (206, data[2:10])
    for stale in (f'"sha256:{"0" * 64}"', "Sat, 28 Nov 2026 10:00:00 GMT"):
        whole = api.get(url, headers={**ranged, "If-Range": stale})
        assert (whole.status_code, whole.content) == (200, data), stale
    empty = api.head("/api/v1/models/m/versions/1/files/empty.txt")
    assert (empty.status_code, empty.headers["content-length"]) == (200, "0")


def test_head_checks_what_a_download_checks(api: TestClient, app: Any) -> None:
    """HEAD needs read access as GET does: someone else sees no such model."""
    push(api, FILES)
    url = "/api/v1/models/m/versions/1/files/model.bin"
    assert api.head(url, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_archive(api: TestClient) -> None:
    """Every file, its length announced up front (PAX headers for the unicode and the
    long names counted), members stamped with the version's creation time."""
    files = {**FILES, "deep/" * 30 + "w.bin": b"x" * 513}
    push(api, files)
    r = api.get("/api/v1/models/m/versions/1/archive")
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-length"] == str(len(r.content))
    head = api.head("/api/v1/models/m/versions/1/archive")  # the same, without the bytes
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(r.content))
    assert head.headers["content-disposition"] == r.headers["content-disposition"]
    created = datetime.fromisoformat(api.get("/api/v1/models/m/versions/1").json()["created_at"])
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        members = tar.getmembers()
        got = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert got == files
    assert {m.mtime for m in members} == {int(created.timestamp())}
    assert {m.mode for m in members} == {0o644}


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "/abs",
        "a/../b",
        "a\\b",
        "C:/x",
        "%2e%2e/x",
        "%252e%252e/x",
        "a//b",
        "./a",
        "a/./b",
        "nul\x00",
        "a\nb",
        "q?x",
        "h#x",
        "",
    ],
)
def test_hostile_paths_are_refused(api: TestClient, path: str) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    files = [{"path": path, "size": 1, "digest": digest(b"x")}]
    r = api.post("/api/v1/models/m/versions", json={"files": files})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api.get("/api/v1/models/m").json()["latest_version"] is None
    assert api.get("/api/v1/models/m/versions").json()["versions"] == []


def test_manifest_clashes_are_refused(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    for files in (
        [
            {"path": "a", "size": 1, "digest": digest(b"x")},
            {"path": "a/b", "size": 1, "digest": digest(b"x")},
        ],
        [
            {"path": "A.txt", "size": 1, "digest": digest(b"x")},
            {"path": "a.txt", "size": 1, "digest": digest(b"x")},
        ],
        [  # on a case-insensitive disk (macOS, Windows) 'a' is both a file and a folder
            {"path": "a", "size": 1, "digest": digest(b"x")},
            {"path": "A/b", "size": 1, "digest": digest(b"x")},
        ],
        [  # the same with Unicode forms: the NFD folder of the NFC file
            {"path": "\u00e9", "size": 1, "digest": digest(b"x")},
            {"path": "e\u0301/b", "size": 1, "digest": digest(b"x")},
        ],
        [{"path": "a", "size": -1, "digest": digest(b"x")}],
        [{"path": "a", "size": 1, "digest": "sha256:ABC"}],
        [  # one digest, two sizes: the short path would be READY and serve the long bytes
            {"path": "a", "size": 1, "digest": digest(b"xyz")},
            {"path": "b", "size": 3, "digest": digest(b"xyz")},
        ],
    ):
        r = api.post("/api/v1/models/m/versions", json={"files": files})
        assert r.status_code == 400, (files, r.text)
    assert api.get("/api/v1/models/m/versions").json()["versions"] == []  # nothing made


def test_mismatched_bytes_are_refused_and_leave_nothing(api: TestClient, blob_root: Path) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    good = b"the real bytes"
    created = api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "w", "size": len(good), "digest": digest(good)}]},
    ).json()
    url = f"/api/v1/models/m/versions/1/blobs/{created['missing'][0]}"
    for bad in (b"the fake bytes", b"short", good + b"!"):
        r = api.put(url, content=bad)
        assert r.status_code == 400, r.text
    assert api.get("/api/v1/models/m/versions/1").json()["status"] == "PENDING"
    stored = [p for p in blob_root.rglob("*") if p.is_file()]
    assert stored == [], stored
    other = digest(b"not in the manifest")
    r = api.put(f"/api/v1/models/m/versions/1/blobs/{other}", content=b"not in the manifest")
    assert r.status_code == 400
    assert api.put(url, content=good).json()["version_status"] == "READY"
    assert api.put(url, content=good).status_code == 409  # READY versions take no uploads


def test_resumable_upload(api: TestClient) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    api.post("/api/v1/models", json={"name": "m"})
    api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "big", "size": len(data), "digest": digest(data)}]},
    )
    ticket = api.post("/api/v1/models/m/versions/1/uploads", json={"digest": digest(data)}).json()
    assert ticket["offset"] == 0
    uid = ticket["upload_id"]
    r = api.patch(f"/api/v1/uploads/{uid}", content=data[:300_000], headers={"Upload-Offset": "0"})
    assert r.json()["offset"] == 300_000
    # the client "crashed"; it asks again and resumes from the server's offset
    again = api.post("/api/v1/models/m/versions/1/uploads", json={"digest": digest(data)}).json()
    assert again["upload_id"] == uid and again["offset"] == 300_000
    wrong = api.patch(f"/api/v1/uploads/{uid}", content=data[:10], headers={"Upload-Offset": "5"})
    assert wrong.status_code == 409
    api.patch(f"/api/v1/uploads/{uid}", content=data[300_000:], headers={"Upload-Offset": "300000"})
    done = api.post(f"/api/v1/uploads/{uid}/complete").json()
    assert done["version_status"] == "READY"
    assert api.get(f"/api/v1/uploads/{uid}").status_code == 404
    assert api.get("/api/v1/models/m/versions/1/files/big").content == data


@pytest.mark.parametrize("size", [70_000, INLINE_BYTES + 1])
def test_corrupt_blob_is_caught_by_download_and_verify(
    api: TestClient, app: Any, blob_root: Path, live_server: str, size: int
) -> None:
    push(api, {"w.bin": b"A" * size})
    [path] = [p for p in blob_root.rglob("*") if p.is_file() and "blobs" in p.parts]
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    url = f"{live_server}/api/v1/models/m/versions/1/files/w.bin"
    auth = {"Authorization": api.headers["Authorization"]}
    if size > INLINE_BYTES:
        # over real HTTP a streamed file is cut before its last chunk: the client sees an
        # error, never a complete response with bad bytes
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url, headers=auth)
    else:  # a small file is read whole before its answer starts: an error, and no bytes
        r = httpx.get(url, headers=auth)
        assert r.status_code == 500 and r.json()["error_code"] == "DATA_LOSS"
    # marked corrupt: the next request fails before sending a byte
    r = api.get("/api/v1/models/m/versions/1/files/w.bin")
    assert r.status_code == 500 and r.json()["error_code"] == "DATA_LOSS"
    from cairn.domain.models import SYSTEM

    report = app.state.service.verify(SYSTEM)
    assert [b.versions for b in report.corrupt] == [(("m", 1),)]


def test_bytes_gone_from_the_store_are_data_loss_not_a_missing_file(
    api: TestClient, blob_root: Path
) -> None:
    """A file the version lists whose bytes the store no longer holds is 500 `DATA_LOSS`
    (what api.md promises for missing bytes), for a whole read, a range and a batch, not
    404 as if the client had asked for a file that does not exist; and it is marked, so
    the next read says so before touching the store."""
    data = b"weights" * 100
    push(api, {"w.bin": data, "x.txt": b"x"})
    [path] = [p for p in blob_root.rglob("*") if p.is_file() and p.name == digest(data)[7:]]
    path.unlink()
    url = "/api/v1/models/m/versions/1/files/w.bin"
    for r in (
        api.get(url, headers={"Range": "bytes=0-9"}),
        api.get(url),
        api.post("/api/v1/models/m/versions/1/files", json={"paths": ["w.bin"]}),
    ):
        assert r.status_code == 500, r.text
        assert r.json()["error_code"] == "DATA_LOSS"
        assert "missing or corrupt" in r.json()["message"]


def test_a_range_of_bytes_cut_short_in_the_store_is_data_loss(
    api: TestClient, blob_root: Path
) -> None:
    """Stored bytes shorter than the file they hold: a range past where they now end is
    500 `DATA_LOSS`, not 400 blaming the client's (valid) range, and a range across the
    cut is not answered short; the blob is marked, so a whole read says so at once."""
    data = bytes(range(256)) * 40
    push(api, {"w.bin": data})
    [path] = [p for p in blob_root.rglob("*") if p.is_file() and p.name == digest(data)[7:]]
    path.chmod(0o644)
    path.write_bytes(data[:1000])
    url = "/api/v1/models/m/versions/1/files/w.bin"
    for asked in ("bytes=1500-2000", "bytes=500-1500", "bytes=-10"):
        r = api.get(url, headers={"Range": asked})
        assert r.status_code == 500, (asked, r.status_code, r.text)
        assert r.json()["error_code"] == "DATA_LOSS"
    assert api.get(url).json()["error_code"] == "DATA_LOSS"


def test_an_archive_never_runs_a_member_past_its_size(
    api: TestClient, blob_root: Path, live_server: str
) -> None:
    """A stored blob that grew past its file's size (here by a forged tar member) ends
    the archive before the excess: a reader of the stream (``curl | tar x``) must not get
    a member the version does not have, nor a complete member of wrong bytes."""
    good = b"A" * (1 << 20)  # one store chunk, then the forged member starts a header block
    push(api, {"a.bin": good, "z.bin": b"Z" * (3 << 20)})
    [path] = [p for p in blob_root.rglob("*") if p.is_file() and p.name.endswith(digest(good)[7:])]
    forged = io.BytesIO()
    with tarfile.open(fileobj=forged, mode="w", format=tarfile.PAX_FORMAT) as tar:
        evil = tarfile.TarInfo("evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    path.chmod(0o644)
    path.write_bytes(good + forged.getvalue().ljust(1 << 20, b"\0") + b"more")
    url = f"{live_server}/api/v1/models/m/versions/1/archive"
    received = bytearray()
    auth = {"Authorization": api.headers["Authorization"]}
    with (
        pytest.raises(httpx.RemoteProtocolError),  # cut short: Content-Length not reached
        httpx.stream("GET", url, headers=auth) as r,
    ):
        for chunk in r.iter_bytes():
            received += chunk
    with tarfile.open(fileobj=io.BytesIO(bytes(received)), mode="r|") as tar:
        names = [m.name for m in tar]
    assert "evil.txt" not in names
    r = api.get("/api/v1/models/m/versions/1/files/a.bin")  # and the blob is marked corrupt
    assert r.status_code == 500 and r.json()["error_code"] == "DATA_LOSS"


def test_a_lying_size_for_a_stored_digest_is_refused(api: TestClient) -> None:
    push(api, {"config.json": b'{"a": 1, "b": [1, 2, 3]}'})
    real = digest(b'{"a": 1, "b": [1, 2, 3]}')
    r = api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "config.json", "size": 12, "digest": real}]},
    )
    assert r.status_code == 400, r.text
    assert "bytes, not 12" in r.json()["message"]
    assert api.get("/api/v1/models/m/versions/1/files/config.json").status_code == 200


def test_re_push_repairs_corrupt_bytes(api: TestClient, app: Any, blob_root: Path) -> None:
    from cairn.domain.models import SYSTEM

    data = b"HELLO cairn" * 100
    push(api, {"w": data})
    [path] = [p for p in blob_root.rglob("*") if p.is_file() and "sha256" in p.parts]
    path.chmod(0o644)
    path.write_bytes(b"x" * len(data))
    assert len(app.state.service.verify(SYSTEM).corrupt) == 1
    again = push(api, {"w": data})  # the corrupt blob counts as missing: bytes are re-sent
    assert again["missing"] == [digest(data)]
    assert api.get(f"/api/v1/models/m/versions/{again['version']}").json()["status"] == "READY"
    assert api.get("/api/v1/models/m/versions/1/files/w").content == data
    assert app.state.service.verify(SYSTEM).corrupt == ()


def test_archive_of_a_pending_version_is_refused(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "w", "size": 1, "digest": digest(b"x")}]},
    )
    r = api.get("/api/v1/models/m/versions/1/archive")
    assert r.status_code == 400 and "PENDING" in r.json()["message"]
    assert api.head("/api/v1/models/m/versions/1/archive").status_code == 400


def test_listings_can_leave_the_manifests_out(api: TestClient) -> None:
    push(api, {"a.bin": b"a" * 10, "b.bin": b"b" * 20})
    for url in ("/api/v1/models/m/versions", "/api/v1/search/versions?filter=name%3D'm'"):
        joiner = "&" if "?" in url else "?"
        full = api.get(url).json()["versions"][0]
        brief = api.get(f"{url}{joiner}files=false").json()["versions"][0]
        assert [f["path"] for f in full["files"]] == ["a.bin", "b.bin"]
        assert brief["files"] is None and brief == {**full, "files": None}
    assert api.get("/api/v1/models/m/versions?files=maybe").status_code == 400


# -- batch uploads: several small blobs in one request ----------------------------------

BATCH_HEADERS = {"Content-Type": MEDIA_TYPE}


def batch(items: list[tuple[str, bytes]]) -> bytes:
    return b"".join(frames(items))


def test_batch_upload_makes_version_ready(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    assert api.post("/api/v1/models/m/versions", json={"files": manifest(FILES)}).is_success
    items = [(digest(b), b) for b in FILES.values()]  # an empty file among them
    r = api.post("/api/v1/models/m/versions/1/blobs", content=batch(items), headers=BATCH_HEADERS)
    assert r.status_code == 200, r.text
    receipts = r.json()["blobs"]
    assert [x["digest"] for x in receipts] == [d for d, _ in items]
    assert all(x["stored"] and x["version_status"] == "READY" for x in receipts)
    for path, content in FILES.items():
        assert api.get(f"/api/v1/models/m/versions/1/files/{path}").content == content


def test_a_bad_batch_stores_nothing(api: TestClient, blob_root: Path) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    files = {"a": b"first", "b": b"second", "c": b"third"}
    assert api.post("/api/v1/models/m/versions", json={"files": manifest(files)}).is_success
    url = "/api/v1/models/m/versions/1/blobs"
    good = [(digest(b), b) for b in files.values()]
    stranger = b"not in the manifest"
    for body in (
        batch([*good[:2], (good[2][0], b"THIRD")]),  # other bytes of the declared size
        batch([*good[:2], (good[2][0], b"thi")]),  # a size the manifest does not declare
        batch([*good, (digest(stranger), stranger)]),  # a digest not in the manifest
        batch([good[0], good[0]]),  # one digest twice
        batch(good)[:-2],  # cut short
        b"sha256:abc 3\nabc",  # not a digest
        b"sha256:" + b"a" * 64 + b" -3\nabc",  # not a size
        b"no header line at all",
        b"",
    ):
        r = api.post(url, content=body, headers=BATCH_HEADERS)
        assert r.status_code == 400, (body[:50], r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert [p for p in blob_root.rglob("*") if p.is_file()] == []
    assert api.get("/api/v1/models/m/versions/1").json()["status"] == "PENDING"
    first = api.post(url, content=batch(good[:2]), headers=BATCH_HEADERS).json()["blobs"]
    assert [x["version_status"] for x in first] == ["PENDING", "PENDING"]
    last = api.post(url, content=batch(good[2:]), headers=BATCH_HEADERS).json()["blobs"]
    assert last[0]["version_status"] == "READY"
    assert api.post(url, content=batch(good[:1]), headers=BATCH_HEADERS).status_code == 409


def test_push_sends_small_files_one_by_one_past_a_low_request_limit(
    settings: Settings, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    """A batch larger than the server's request limit is refused (413) before it is read;
    the SDK then sends those files one by one, as uploads of any size are allowed."""
    app = create_app(settings.model_copy(update={"max_request_bytes": 1024}))
    folder = tmp_path / "model"
    folder.mkdir()
    for i in range(3):
        (folder / f"part{i}.bin").write_bytes(bytes([i]) * 600)
    try:
        with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as api:
            api.post("/api/v1/models", json={"name": "m"})
            files = [(digest(p.read_bytes()), p.read_bytes()) for p in sorted(folder.iterdir())]
            manifest_ = [{"path": "x", "size": 600, "digest": files[0][0]}]
            api.post("/api/v1/models/m/versions", json={"files": manifest_})
            r = api.post(
                "/api/v1/models/m/versions/1/blobs", content=batch(files), headers=BATCH_HEADERS
            )
            assert r.status_code == 413, r.text
            sdk = HttpClient("http://testserver", http_client=api)
            pushed = sdk.push(folder, name="m")
            assert pushed.status.value == "READY" and len(pushed.files) == 3
    finally:
        app.state.service.db.dispose()


def test_several_small_files_in_one_answer(api: TestClient) -> None:
    big = b"x" * (BATCH_FILE_MAX + 1)
    push(api, {**FILES, "big.bin": big})
    url = "/api/v1/models/m/versions/1/files"
    paths = ["empty.txt", "données/é.txt", "model.bin"]
    r = api.post(url, json={"paths": paths})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert parse_frames(r.content) == [(digest(FILES[p]), FILES[p]) for p in paths]
    for paths, status in (
        (["model.bin", "nope.bin"], 404),
        (["model.bin", "big.bin"], 400),  # larger than a batch takes: fetched on its own
        (["../etc/passwd"], 400),
        ([], 400),
    ):
        answer = api.post(url, json={"paths": paths})
        assert answer.status_code == status, (paths, answer.text)
    assert api.post(url, json={"paths": ["model.bin"], "extra": 1}).status_code in (400, 422)
    api.post("/api/v1/models/m/versions", json={"files": manifest({"new": b"never sent"})})
    pending = api.post("/api/v1/models/m/versions/2/files", json={"paths": ["new"]})
    assert pending.status_code == 400 and "PENDING" in pending.text


def test_direct_links_on_local_disk_are_none(api: TestClient) -> None:
    """The links route answers what a download would check; local disk has no links
    (S3: tests/client/test_transfer_s3.py)."""
    push(api, FILES)
    url = "/api/v1/models/m/versions/1/urls"
    r = api.post(url, json={"paths": ["model.bin", "données/é.txt"]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "expires_in": 3600,
        "files": [
            {"path": p, "size": len(FILES[p]), "digest": digest(FILES[p]), "url": None}
            for p in ("model.bin", "données/é.txt")
        ],
    }
    for paths, status in ((["nope.bin"], 404), (["../etc/passwd"], 400), ([], 400)):
        answer = api.post(url, json={"paths": paths})
        assert answer.status_code == status, (paths, answer.text)
    api.post("/api/v1/models/m/versions", json={"files": manifest({"new": b"never sent"})})
    pending = api.post("/api/v1/models/m/versions/2/urls", json={"paths": ["new"]})
    assert pending.status_code == 400 and "PENDING" in pending.text
