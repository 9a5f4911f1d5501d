"""push and pull through the server with the blobs in S3 (a moto server on loopback).

Large files take the resumable path; on S3 the server answers presigned part URLs, the
client PUTs the parts straight to the bucket, and the server verifies the whole content
before the blob exists. The threshold is lowered here so small files exercise that path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cairn.app import create_app
from cairn.client import http as http_client
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.domain.models import VersionStatus
from cairn.settings import Settings


@pytest.fixture(params=["http", "local"])
def s3_client_sdk(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    s3_bucket: str,
    admin_headers: dict[str, str],
) -> Iterator[BaseClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        backend_uri=db_url,
        artifacts_uri=f"s3://{s3_bucket}/cairn",
        allowed_hosts=["testserver"],  # TestClient's Host
        bootstrap_token=admin_headers["Authorization"].removeprefix("Bearer "),
    )
    if request.param == "local":
        sdk: BaseClient = LocalClient(
            settings.data_dir, backend_uri=db_url, artifacts_uri=settings.artifacts_uri
        )
        yield sdk
        sdk.close()
        return
    app = create_app(settings)
    with TestClient(app, headers=admin_headers) as test_client:
        sdk = HttpClient("http://testserver", http_client=test_client)
        yield sdk
    app.state.service.db.dispose()


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
