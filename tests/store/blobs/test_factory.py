from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cairn.errors import InvalidParameter
from cairn.store.blobs import LocalBlobStore, open_blob_store
from cairn.store.blobs.s3 import S3BlobStore


def test_plain_absolute_path(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "blobs"))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"
    assert store.root.is_dir()


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_blob_store("data/blobs")
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "data" / "blobs"


@pytest.mark.parametrize("host", ["", "localhost"])
def test_file_uri(tmp_path: Path, host: str) -> None:
    store = open_blob_store(f"file://{host}{tmp_path}/with%20space")
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "with space"


def test_s3_uri_uses_the_aws_environment(s3_uri: str) -> None:
    store = open_blob_store(s3_uri)
    assert isinstance(store, S3BlobStore)
    store.check()
    digest = "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.put(digest, 5, [b"hel", b"lo"])
    assert b"".join(store.open(digest)) == b"hello"


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "http://example.com/blobs",
        "ftp://host/x",
        "file://evil.example/blobs",
        "file://./relative",
        "file:///tmp/blobs?x=1",
        "file:///tmp/blobs#frag",
        "s3://",
        "s3:///prefix",
        "s3://bucket/prefix?versionId=1",
        "C:\\blobs",
        "/tmp/blobs\n",
    ],
)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidParameter, match="artifacts URI"):
        open_blob_store(uri)


@pytest.mark.parametrize("uri", ["s3://bucket/pre//", "s3://bucket//pre", "s3://bucket/a//b"])
def test_a_prefix_with_an_empty_segment_is_refused(s3_env: None, uri: str) -> None:
    """A configuration mistake, refused at start-up: not a store failure to retry later."""
    with pytest.raises(InvalidParameter, match="artifacts URI"):
        open_blob_store(uri)
