"""The SDK against a registry whose blobs live in an object store (S3 or Azure)."""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
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


@pytest.fixture
def s3_http_sdk(store_sdk: StoreSdk, s3_bucket: str) -> Iterator[HttpClient]:
    """The HTTP SDK of a registry on S3 (moto): presigned links are the HTTP client's;
    the local one reads the store itself."""
    with store_sdk("http", f"s3://{s3_bucket}/cairn") as sdk:
        assert isinstance(sdk, HttpClient)
        yield sdk


Policy = Callable[[int, int, int], "int | str | None"]  # (generation, offset, attempt)


class BucketProxy:
    """A hop on loopback between the SDK and the bucket, for presigned links (they sign
    the host, not the route to it). ``link(url, generation)`` is a link through it.

    Each request is forwarded unless ``policy(generation, offset, attempt)`` answers a
    status (sent instead), "reset" (the connection dropped, no answer) or "shifted" (a
    GET answered with the range one byte further on). ``offset``: a part PUT's offset, a
    GET's first byte; ``attempt`` counts requests for that offset.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.attempts: Counter[int] = Counter()  # offset → requests
        self.stored: Counter[int] = Counter()  # offset → forwarded and answered 2xx
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                query = parse_qs(urlsplit(self.path).query)
                proxy._serve(self, query, int(query["o"][0]), body)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                proxy._serve(self, query, int(found.group(1)) if found else 0, None)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def link(self, url: str, generation: int = 1, offset: int | None = None) -> str:
        tags = f"g={generation}" + ("" if offset is None else f"&o={offset}")
        return f"{self.base}?{tags}&u={quote(url, safe='')}"

    def _serve(
        self,
        handler: BaseHTTPRequestHandler,
        query: dict[str, list[str]],
        offset: int,
        body: bytes | None,
    ) -> None:
        with self.lock:
            self.attempts[offset] += 1
            attempt = self.attempts[offset]
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            verdict = self.policy(int(query["g"][0]), offset, attempt)
            if verdict == "reset":
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            if isinstance(verdict, int):
                handler.send_response(verdict)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            headers = {}
            if rng := handler.headers.get("Range"):
                headers["Range"] = rng
                if verdict == "shifted":
                    first, _, last = rng.removeprefix("bytes=").partition("-")
                    headers["Range"] = f"bytes={int(first) + 1}-{last}"
            real = httpx.request(handler.command, query["u"][0], content=body, headers=headers)
            if real.is_success:
                with self.lock:
                    self.stored[offset] += 1
            handler.send_response(real.status_code)
            for name in ("Content-Range", "Content-Type"):
                if name in real.headers:
                    handler.send_header(name, real.headers[name])
            handler.send_header("Content-Length", str(len(real.content)))
            handler.end_headers()
            handler.wfile.write(real.content)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bucket_proxy() -> Iterator[Callable[[Policy], BucketProxy]]:
    """``bucket_proxy(policy)``: a started ``BucketProxy``, closed after the test."""
    started: list[BucketProxy] = []

    def start(policy: Policy) -> BucketProxy:
        started.append(BucketProxy(policy))
        return started[-1]

    yield start
    for proxy in started:
        proxy.close()
