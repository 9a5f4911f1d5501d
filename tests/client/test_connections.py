"""The SDK's connections read up to 1 MiB at a time (client/connections.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cairn.client.connections import READ_SIZE, WideReads
from cairn.client.http_transport import HttpTransport

BODY = 4 << 20
HTTPX_READ = 64 << 10  # what httpcore asks a socket for, left alone


@pytest.fixture
def big_answer() -> Iterator[str]:
    """A loopback server that answers any request with 4 MiB in one ``sendall``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n".encode()
            conn.sendall(head + b"x" * BODY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    thread.join(timeout=10)
    listener.close()


def test_the_sdk_opens_its_connections_through_wide_reads() -> None:
    """Fails when an httpx release moves what ``transport()`` reaches into."""
    sdk = HttpTransport("http://127.0.0.1:1")
    try:
        for client in (sdk._http, sdk._bucket()):
            backend = client._transport._pool._network_backend  # type: ignore[attr-defined]
            assert isinstance(backend, WideReads)
    finally:
        sdk.close()


def test_a_read_takes_more_than_httpx_would_when_more_has_arrived(big_answer: str) -> None:
    sdk = HttpTransport(big_answer)
    try:
        with sdk._http.stream("GET", "/blob") as response:
            time.sleep(0.3)  # let the kernel buffer more than one 64 KiB read
            sizes = [len(chunk) for chunk in response.iter_raw()]
    finally:
        sdk.close()
    assert sum(sizes) == BODY
    assert HTTPX_READ < max(sizes) <= READ_SIZE
