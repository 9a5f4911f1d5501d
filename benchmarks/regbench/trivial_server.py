"""A trivial in-memory HTTP/1.1 endpoint used to measure the load generator's ceiling.

It answers every request with the same small JSON document, honours keep-alive and
``Connection: close`` and does nothing else, so a load generator pointed at it measures
itself (plus loopback TCP), not a server. Several processes share the port through
``SO_REUSEPORT``. Run: ``python trivial_server.py PORT [PROCESSES]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import sys
from typing import cast

BODY = b'{"ok": true, "version": 1, "name": "bench-0"}'
HEAD_KEEP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
HEAD_CLOSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n"
)


class _FixedReply(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (headers, Content-Length body) to answer each request."""

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._answer_one():
            pass

    def _answer_one(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0 or self._transport is None:
            return False
        head = self._buf[:end].lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self._buf) < end + 4 + length:
            return False
        self._buf = self._buf[end + 4 + length :]
        close = b"connection: close" in head
        self._transport.write((HEAD_CLOSE if close else HEAD_KEEP) % len(BODY) + BODY)
        if close:
            self._transport.close()
            return False
        return True


def _serve(port: int) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server = loop.run_until_complete(loop.create_server(_FixedReply, sock=sock, backlog=1024))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()


def main(argv: list[str]) -> None:
    port = int(argv[1])
    processes = int(argv[2]) if len(argv) > 2 else 1
    children = [multiprocessing.Process(target=_serve, args=(port,)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join()


if __name__ == "__main__":
    main(sys.argv)
