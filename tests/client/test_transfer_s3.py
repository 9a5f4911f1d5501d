"""push and pull through the server with the blobs in S3 (a moto server on loopback).

Large files take the resumable path; on S3 the server answers presigned part URLs, the
client PUTs the parts straight to the bucket, and the server verifies the whole content
before the blob exists. The threshold is lowered here so small files exercise that path.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import save

from cairn.client import http as http_client
from cairn.client.archive import blob_path, export_registry
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.domain.models import ModelVersion, VersionStatus
from cairn.errors import DataCorrupted, InvalidParameter, NotFound, PermissionDenied
from cairn.service.downloads import DownloadsService
from cairn.store.blobs.s3 import S3BlobStore

StoreSdk = Callable[[str, str], AbstractContextManager[BaseClient]]  # conftest's store_sdk


@pytest.fixture(params=["http", "local"])
def s3_client_sdk(
    request: pytest.FixtureRequest, store_sdk: StoreSdk, s3_bucket: str
) -> Iterator[BaseClient]:
    with store_sdk(request.param, f"s3://{s3_bucket}/cairn") as sdk:
        yield sdk


@pytest.fixture
def http_sdk(s3_http_sdk: HttpClient) -> HttpClient:
    return s3_http_sdk


def test_push_pull_on_s3(
    s3_client_sdk: BaseClient,
    tmp_path: Path,
    s3_client: object,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "RESUMABLE_ABOVE", 64 * 1024)  # presigned parts path
    files = {"small.json": b'{"a": 1}', "weights.bin": os.urandom(3 * 1024 * 1024 + 7)}
    src = tmp_path / "src"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    s3_client_sdk.create_model("m")
    v = s3_client_sdk.push(src, name="m", alias="prod")
    assert v.status is VersionStatus.READY
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]  # type: ignore[attr-defined]
    assert sum(k.startswith("cairn/blobs/sha256/") for k in keys) == 2
    out = s3_client_sdk.pull("models:/m@prod", tmp_path / "out", cache_dir=tmp_path / "cache")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    again = s3_client_sdk.push(src, name="m")
    assert again.digest == v.digest
    assert s3_client_sdk.last_transfer is not None
    assert s3_client_sdk.last_transfer.transferred_bytes == 0


def _two_large_files(src: Path) -> dict[str, bytes]:
    files = {"a.bin": os.urandom(2 * 1024 * 1024 + 1), "b.bin": os.urandom(2 * 1024 * 1024 + 3)}
    src.mkdir()
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    return files


def _pushed(sdk: HttpClient, tmp_path: Path) -> tuple[dict[str, bytes], ModelVersion]:
    files = _two_large_files(tmp_path / "src")
    sdk.create_model("m")
    return files, sdk.push(tmp_path / "src", name="m")


def _pulled(sdk: HttpClient, tmp_path: Path) -> dict[str, bytes]:
    out = sdk.pull("models:/m/1", tmp_path / "out", cache_dir=tmp_path / "cache")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _links(monkeypatch: pytest.MonkeyPatch, link: Callable[[str, str], str]) -> None:
    """The store's links become ``link(digest, its real link)``."""
    signed = S3BlobStore.presign_get
    monkeypatch.setattr(
        S3BlobStore,
        "presign_get",
        lambda self, digest, expires_s, **kw: link(digest, signed(self, digest, expires_s, **kw)),
    )


def _no_bytes_through_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def through_the_server(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the bytes should not pass through the server")

    monkeypatch.setattr(DownloadsService, "open_file", through_the_server)


def test_a_pull_takes_large_files_straight_from_the_bucket(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, _ = _pushed(http_sdk, tmp_path)
    _no_bytes_through_the_server(monkeypatch)
    assert _pulled(http_sdk, tmp_path) == files


def test_a_link_that_does_not_answer_leaves_the_file_to_the_server(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, _ = _pushed(http_sdk, tmp_path)
    # a link to nothing: the bucket answers 404 (an expired one: 403)
    _links(monkeypatch, lambda _digest, url: url.replace("/blobs/", "/gone/"))
    assert _pulled(http_sdk, tmp_path) == files


def test_a_link_cut_off_midway_is_finished_by_the_server(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, version = _pushed(http_sdk, tmp_path)
    content = {f.digest: files[f.path] for f in version.files}
    sent: list[int] = []

    class HalfThenHangUp(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            whole = content[self.path.lstrip("/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(whole)))
            self.end_headers()
            self.wfile.write(whole[: len(whole) // 2])
            sent.append(len(whole) // 2)
            self.close_connection = True

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), HalfThenHangUp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _links(monkeypatch, lambda digest, _url: f"{base}/{digest}")
        assert _pulled(http_sdk, tmp_path) == files  # the rest came from the server
    finally:
        server.shutdown()
        server.server_close()
    assert len(sent) == 2


def test_bytes_from_the_bucket_are_checked_against_the_digest(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, version = _pushed(http_sdk, tmp_path)
    other = {
        f.digest: g.digest for f, g in zip(version.files, reversed(version.files), strict=True)
    }
    real = S3BlobStore.presign_get
    monkeypatch.setattr(  # each link serves the other file's bytes
        S3BlobStore,
        "presign_get",
        lambda self, digest, expires_s, **kw: real(self, other[digest], expires_s, **kw),
    )
    with pytest.raises(DataCorrupted, match=r"do not match|is longer than"):
        _pulled(http_sdk, tmp_path)
    assert not any((tmp_path / "out").iterdir())  # nothing placed


def test_direct_links_are_given_after_the_checks_of_a_download(
    http_sdk: HttpClient, tmp_path: Path
) -> None:
    _, version = _pushed(http_sdk, tmp_path)
    answer = http_sdk._request("POST", "/models/m/versions/1/urls", json={"paths": ["a.bin"]})
    assert answer["expires_in"] == 3600
    (listed,) = answer["files"]
    (entry,) = [f for f in version.files if f.path == "a.bin"]
    assert (listed["path"], listed["size"], listed["digest"]) == ("a.bin", entry.size, entry.digest)
    assert "X-Amz-Signature=" in listed["url"]
    with pytest.raises(NotFound):
        http_sdk._request("POST", "/models/m/versions/1/urls", json={"paths": ["nope.bin"]})
    with pytest.raises(InvalidParameter):
        http_sdk._request("POST", "/models/m/versions/1/urls", json={"paths": ["../a.bin"]})


def test_file_links_download_each_file_from_the_bucket(
    s3_client_sdk: BaseClient, tmp_path: Path
) -> None:
    """The SDK's ``file_links`` (``cairn versions files --links``), in-process or not."""
    files = _two_large_files(tmp_path / "src")
    s3_client_sdk.create_model("m")
    s3_client_sdk.push(tmp_path / "src", name="m")
    links = s3_client_sdk.file_links("m", 1)  # every file
    assert [link.file.path for link in links] == sorted(files)
    for link in links:
        assert link.url is not None
        got = httpx.get(link.url)  # no Cairn credentials: the link is one
        assert got.status_code == 200 and got.content == files[link.file.path]
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == link.file.digest
    (one,) = s3_client_sdk.file_links("m", "1", ["b.bin"])
    assert one.file.path == "b.bin"


class _RunsCommand:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("false",))


def test_a_quarantined_version_is_pulled_from_the_bucket_only_on_an_override(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = pickle.dumps({"w": os.urandom(2 * 1024 * 1024), "hook": _RunsCommand()})
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.pkl").write_bytes(evil)
    http_sdk.create_model("m")
    http_sdk.push(tmp_path / "src", name="m")  # quarantined: the default scan policy
    with pytest.raises(PermissionDenied, match="quarantined"):
        _pulled(http_sdk, tmp_path)
    _no_bytes_through_the_server(monkeypatch)
    out = http_sdk.pull(
        "models:/m/1", tmp_path / "out", cache_dir=tmp_path / "cache", override_quarantine=True
    )
    assert (out / "model.pkl").read_bytes() == evil
    (event,) = http_sdk.list_audit(action="artifact.quarantine_override").items
    assert (event.model, event.version, event.target) == ("m", 1, "model.pkl")


def test_an_export_takes_the_bytes_straight_from_the_bucket(
    http_sdk: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, version = _pushed(http_sdk, tmp_path)
    _no_bytes_through_the_server(monkeypatch)
    summary = export_registry(http_sdk, tmp_path / "export")
    assert (summary.blobs, summary.bytes) == (2, sum(map(len, files.values())))
    for f in version.files:
        assert blob_path(tmp_path / "export", f.digest).read_bytes() == files[f.path]


def test_tensor_diff_reads_headers_and_spans_from_the_bucket(
    s3_client_sdk: BaseClient, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    embed, head = rng.standard_normal((64, 8)), rng.standard_normal((3, 8))
    for name, tensors in [("base", {"embed": embed, "head": head}), ("tuned", {"embed": embed})]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.safetensors").write_bytes(save({**tensors, "bias": rng.random(2)}))
        s3_client_sdk.create_model(name)
        s3_client_sdk.push(folder, name=name)
    d = s3_client_sdk.diff_versions("models:/base/1", "models:/tuned/1", tensors=True)
    assert d.tensors is not None
    assert [(c.kind.value, c.name, c.what) for c in d.tensors.changes] == [
        ("changed", "bias", ("values",)),
        ("removed", "head", ()),
    ]
    assert (d.tensors.unchanged, d.tensors.unchanged_bytes) == (1, embed.nbytes)
