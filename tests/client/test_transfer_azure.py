"""push and pull through the server with the blobs in Azure Blob Storage (Azurite on
loopback), as ``test_transfer_s3.py`` does for S3: the same ``az://`` configuration a
deployment uses, the large file sent in presigned parts straight to the container (a
signed Put Blob, with the blob-type header the ticket names) and pulled straight from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from cairn.client import http as http_client
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.domain.models import VersionStatus
from cairn.service.downloads import DownloadsService

StoreSdk = Callable[[str, str], AbstractContextManager[BaseClient]]  # conftest's store_sdk


@pytest.fixture(params=["http", "local"])
def azure_sdk(
    request: pytest.FixtureRequest, store_sdk: StoreSdk, azure_container: str
) -> Iterator[BaseClient]:
    with store_sdk(request.param, f"az://{azure_container}/cairn") as sdk:
        yield sdk


def test_push_pull_on_azure(
    azure_sdk: BaseClient,
    tmp_path: Path,
    azure_client: Any,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "RESUMABLE_ABOVE", 64 * 1024)  # presigned parts path
    files = {"small.json": b'{"a": 1}', "weights.bin": os.urandom(3 * 1024 * 1024 + 7)}
    src = tmp_path / "src"
    src.mkdir()
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    azure_sdk.create_model("m")
    v = azure_sdk.push(src, name="m", alias="prod")
    assert v.status is VersionStatus.READY
    with azure_client.get_container_client(azure_container) as container:
        names = [b.name for b in container.list_blobs(name_starts_with="cairn/")]
    assert sum(n.startswith("cairn/blobs/sha256/") for n in names) == 2
    assert not any(n.startswith("cairn/uploads/") for n in names)  # staging cleaned up

    if isinstance(azure_sdk, HttpClient):  # the large file comes straight from the container

        def through_the_server(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("the bytes should not pass through the server")

        monkeypatch.setattr(DownloadsService, "open_file", through_the_server)
    out = azure_sdk.pull("models:/m@prod", tmp_path / "out", cache_dir=tmp_path / "cache")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    again = azure_sdk.push(src, name="m")
    assert again.digest == v.digest
    assert azure_sdk.last_transfer is not None
    assert azure_sdk.last_transfer.transferred_bytes == 0
