"""The SDK against a registry whose blobs live in an object store (S3 or Azure)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cairn.app import create_app
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.settings import Settings

StoreSdk = Callable[[str, str], AbstractContextManager[BaseClient]]


@pytest.fixture
def store_sdk(tmp_path: Path, db_url: str, admin_headers: dict[str, str]) -> StoreSdk:
    """``store_sdk(mode, artifacts_uri)``: a context giving the SDK (``mode`` "http":
    through a server in-process; "local": on the data directory) of a registry on this
    test's database with its blobs at ``artifacts_uri``."""

    @contextmanager
    def sdk(mode: str, artifacts_uri: str) -> Iterator[BaseClient]:
        settings = Settings(
            data_dir=tmp_path / "data",
            backend_uri=db_url,
            artifacts_uri=artifacts_uri,
            allowed_hosts=["testserver"],  # TestClient's Host
            bootstrap_token=admin_headers["Authorization"].removeprefix("Bearer "),
        )
        if mode == "local":
            local = LocalClient(settings.data_dir, backend_uri=db_url, artifacts_uri=artifacts_uri)
            try:
                yield local
            finally:
                local.close()
            return
        app = create_app(settings)
        with TestClient(app, headers=admin_headers) as test_client:
            http = HttpClient("http://testserver", http_client=test_client)
            try:
                yield http
            finally:
                http.close()  # and its client for the bucket's signed links
        app.state.service.db.dispose()

    return sdk
