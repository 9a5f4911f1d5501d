"""What only the object-store backend does: part chains, presign bounds, configuration."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import obstore
import pytest

from cairn.errors import InvalidParameter, NotFound
from cairn.store.blobs import s3
from cairn.store.blobs.layout import upload_part_key
from cairn.store.blobs.s3 import S3BlobStore

from .conftest import PREFIX

DATA = os.urandom(100_000)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(s3_uri: str) -> S3BlobStore:
    return S3BlobStore.from_uri(s3_uri, staging_part_size=30_000)


def keys(client: Any, bucket: str) -> list[str]:
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"].removeprefix(f"{PREFIX}/") for o in objects)


def test_appends_are_staged_as_bounded_part_objects(
    store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[i : i + 7000] for i in range(0, len(DATA), 7000)])
    parts = [k for k in keys(s3_client, s3_bucket) if "/parts/" in k]
    assert parts == [upload_part_key(upload_id, o) for o in (0, 30_000, 60_000, 90_000)]
    assert store.complete_upload(upload_id) is True
    assert keys(s3_client, s3_bucket) == [f"blobs/sha256/{DIGEST[7:9]}/{DIGEST[7:]}"]


def test_a_part_off_the_chain_is_ignored_and_cleaned(
    store: S3BlobStore, s3_client: Any, s3_bucket: str
) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA[:50_000]])
    stray = f"{PREFIX}/{upload_part_key(upload_id, 12_345)}"
    s3_client.put_object(Bucket=s3_bucket, Key=stray, Body=b"junk")
    assert store.upload_offset(upload_id) == 50_000
    store.append(upload_id, 50_000, [DATA[50_000:]])
    assert store.complete_upload(upload_id) is True
    assert b"".join(store.open(DIGEST)) == DATA
    assert not any("uploads/" in k for k in keys(s3_client, s3_bucket))


@pytest.mark.parametrize("part_size", [0, 1000, 6 << 30])
def test_presigned_part_size_is_bounded(store: S3BlobStore, part_size: int) -> None:
    upload_id = store.begin_upload(DIGEST, len(DATA))
    with pytest.raises(InvalidParameter, match="part size"):
        store.presign_upload(upload_id, 60, part_size=part_size)


def test_multipart_chunks_must_respect_the_s3_minimum(s3_uri: str) -> None:
    with pytest.raises(InvalidParameter, match="5 MiB"):
        S3BlobStore.from_uri(s3_uri, upload_part_size=1 << 20)


def test_only_object_store_uris(s3_env: None) -> None:
    with pytest.raises(InvalidParameter, match="s3://"):
        S3BlobStore.from_uri("http://example.com/bucket")


def test_staged_parts_are_read_back_several_ranges_at_once_in_order(
    store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments smaller than a part, and not dividing it: every byte once, in order."""
    monkeypatch.setattr(s3, "READ_SEGMENT", 7_001)
    ranges: list[tuple[int, int]] = []
    real = obstore.get_range

    def recording(store_: Any, key: str, *, start: int, end: int) -> Any:
        ranges.append((start, end))
        return real(store_, key, start=start, end=end)

    monkeypatch.setattr(obstore, "get_range", recording)
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA])  # parts of 30,000 bytes
    assert store.complete_upload(upload_id) is True
    assert b"".join(store.open(DIGEST)) == DATA
    per_part = [(s, min(s + 7_001, n)) for n in (30_000,) for s in range(0, n, 7_001)]
    assert sorted(ranges) == sorted(per_part * 3 + [(0, 7_001), (7_001, 10_000)])


def test_a_part_lost_while_being_read_back_fails_the_completion(
    store: S3BlobStore, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "READ_SEGMENT", 10_000)
    upload_id = store.begin_upload(DIGEST, len(DATA))
    store.append(upload_id, 0, [DATA])
    lost = f"{PREFIX}/{upload_part_key(upload_id, 60_000)}"
    s3_client.delete_object(Bucket=s3_bucket, Key=lost)  # after the chain was listed
    real = S3BlobStore._scan
    monkeypatch.setattr(
        S3BlobStore,
        "_scan",
        lambda self, uid: (True, {0: 30_000, 30_000: 30_000, 60_000: 30_000, 90_000: 10_000}),
    )
    with pytest.raises(NotFound, match="lost a part"):
        store.complete_upload(upload_id)
    monkeypatch.setattr(S3BlobStore, "_scan", real)
    assert not store.exists(DIGEST)
