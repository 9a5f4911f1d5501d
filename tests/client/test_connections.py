"""The SDK's plain HTTP connections read up to 1 MiB at a time (client/connections.py);
HTTPS goes as httpx makes it."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest
import trustme

from cairn.client.connections import READ_SIZE, WideReads, WideStream
from cairn.client.http_transport import HttpTransport

BODY = 4 << 20
HTTPX_READ = 64 << 10  # what httpcore asks a socket for, left alone


def answer_big(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve one request on a loopback port with 4 MiB in one ``sendall``; yields the URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        raw, _ = listener.accept()
        with tls.wrap_socket(raw, server_side=True) if tls else raw as conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n".encode()
            conn.sendall(head + b"x" * BODY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    thread.join(timeout=10)
    listener.close()


@pytest.fixture
def big_answer() -> Iterator[str]:
    yield from answer_big()


@pytest.fixture
def big_answer_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``big_answer`` over TLS, with a certificate the SDK trusts through SSL_CERT_FILE."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    yield from answer_big(server)


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


def test_a_body_over_https_arrives_whole(big_answer_tls: str) -> None:
    """TLS is left to httpcore's own stream (a TLS read gives one 16 KiB record, whatever
    the size asked)."""
    sdk = HttpTransport(big_answer_tls)
    try:
        with sdk._http.stream("GET", "/blob") as response:
            body = b"".join(response.iter_raw())
            stream = response.extensions["network_stream"]
    finally:
        sdk.close()
    assert body == b"x" * BODY
    assert not isinstance(stream, WideStream)


class Planned(httpcore.NetworkStream):
    """A stream that answers each read with the next planned number of bytes (at most
    what was asked) and records the sizes asked for."""

    def __init__(self, *sizes: int) -> None:
        self.sizes = list(sizes)
        self.asked: list[int] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.asked.append(max_bytes)
        return b"x" * min(max_bytes, self.sizes.pop(0))


def test_reads_widen_while_they_bring_httpxs_size_and_narrow_when_one_brings_less() -> None:
    inner = Planned(HTTPX_READ, READ_SIZE, 5_000, 100, HTTPX_READ, 300_000)
    stream = WideStream(inner)
    got = [len(stream.read(HTTPX_READ)) for _ in range(6)]
    assert got == [HTTPX_READ, READ_SIZE, 5_000, 100, HTTPX_READ, 300_000]
    assert inner.asked == [HTTPX_READ, READ_SIZE, READ_SIZE, HTTPX_READ, HTTPX_READ, READ_SIZE]
