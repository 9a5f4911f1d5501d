"""Blob-store fixtures: every contract test runs on local disk, on S3 and on Azure.

The S3 third talks real HTTP to a moto server on loopback (``moto_endpoint`` in
tests/conftest.py, one per test session), one fresh bucket per test, configured
through the same ``AWS_*`` variables and ``open_blob_store`` path production uses.
The Azure third does the same with Azurite (``azurite_endpoint``), one fresh container
per test, through ``az://`` and obstore's ``AZURE_*`` variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from obstore.store import AzureStore, S3Store

from cairn.store.blobs import BlobStore, LocalBlobStore
from cairn.store.blobs.s3 import S3BlobStore

BACKENDS = ["local", "s3", "azure"]
PREFIX = "cairn-test"
STAGING_PART = 256 * 1024  # small staging parts, so uploads span several of them
_NO_RETRY: Any = {
    "max_retries": 0,
    "retry_timeout": timedelta(seconds=1),
    "backoff": {
        "init_backoff": timedelta(milliseconds=1),
        "max_backoff": timedelta(milliseconds=1),
        "base": 2,
    },
}


@dataclass
class Harness:
    """A backend under test plus a look behind its back (what is physically stored)."""

    kind: str
    store: BlobStore
    stored: Callable[[], list[str]]  # every stored file/object (and pending upload)
    corrupt: Callable[[str], None]  # flip one byte of a stored blob, by key
    broken: Callable[[], BlobStore]  # the same backend with every I/O failing


def _local_harness(root: Path) -> Harness:
    def stored() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def corrupt(key: str) -> None:
        path = root / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    def broken() -> BlobStore:
        bad_root = root.parent / f"{root.name}-broken"
        store = LocalBlobStore(bad_root)
        bad_root.rmdir()
        bad_root.write_bytes(b"not a directory")
        return store

    return Harness("local", LocalBlobStore(root), stored, corrupt, broken)


def _s3_harness(bucket: str, client: Any) -> Harness:
    uri = f"s3://{bucket}/{PREFIX}"

    def stored() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        keys = [o["Key"] for o in objects] + [f"(multipart) {u['Key']}" for u in pending]
        return sorted(k.removeprefix(f"{PREFIX}/") for k in keys)

    def corrupt(key: str) -> None:
        full = f"{PREFIX}/{key}"
        data = bytearray(client.get_object(Bucket=bucket, Key=full)["Body"].read())
        data[len(data) // 2] ^= 0xFF
        client.put_object(Bucket=bucket, Key=full, Body=bytes(data))

    def broken() -> BlobStore:
        return S3BlobStore(
            S3Store(
                bucket,
                prefix=PREFIX,
                endpoint="http://127.0.0.1:1",
                region="us-east-1",
                access_key_id="testing",
                secret_access_key="testing",
                client_options={"allow_http": True},
                retry_config=_NO_RETRY,
            )
        )

    store = S3BlobStore.from_uri(uri, staging_part_size=STAGING_PART)
    return Harness("s3", store, stored, corrupt, broken)


def _azure_harness(container: str, service: Any, account: dict[str, str]) -> Harness:
    def stored() -> list[str]:
        """Committed blobs only: Azure has no call that drops the uncommitted blocks of a
        block upload that never committed (S3's abort); they stay invisible and Azure
        discards them after seven days, which ``exists`` and reads never see."""
        with service.get_container_client(container) as client:
            keys = [blob.name for blob in client.list_blobs(name_starts_with=f"{PREFIX}/")]
        return sorted(k.removeprefix(f"{PREFIX}/") for k in keys)

    def corrupt(key: str) -> None:
        with service.get_blob_client(container, f"{PREFIX}/{key}") as blob:
            data = bytearray(blob.download_blob().readall())
            data[len(data) // 2] ^= 0xFF
            blob.upload_blob(bytes(data), overwrite=True)

    def broken() -> BlobStore:
        return S3BlobStore(
            AzureStore(
                container,
                prefix=PREFIX,
                **account,
                use_emulator=False,  # (the environment says true, for the real one)
                endpoint="http://127.0.0.1:1",
                client_options={"allow_http": True},
                retry_config=_NO_RETRY,
            )
        )

    store = S3BlobStore.from_uri(f"az://{container}/{PREFIX}", staging_part_size=STAGING_PART)
    return Harness("azure", store, stored, corrupt, broken)


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "local":
        return _local_harness(tmp_path / "blobs")
    if request.param == "azure":
        container: str = request.getfixturevalue("azure_container")
        service, account = (request.getfixturevalue(f) for f in ("azure_client", "azurite_account"))
        return _azure_harness(container, service, account)
    bucket: str = request.getfixturevalue("s3_bucket")
    return _s3_harness(bucket, request.getfixturevalue("s3_client"))


@pytest.fixture
def blob_store(harness: Harness) -> BlobStore:
    return harness.store


@pytest.fixture
def s3_uri(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/{PREFIX}"
