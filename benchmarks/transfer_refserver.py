"""The loopback-HTTP references of the transfer benchmark: PUT and GET of files, nothing else.

    python transfer_refserver.py --impl stdlib|asgi --port P --root DIR

``PUT /files/NAME`` streams the body (Content-Length required) into ``DIR/tmp``, fsyncs
it, renames it to ``DIR/files/NAME`` and fsyncs the directory: the same durability recipe
as Cairn's local blob store, without hashing. ``GET /files/NAME`` sends the file.
``GET /health`` answers 200.

- ``stdlib``: ``http.server.ThreadingHTTPServer`` (HTTP/1.1 keep-alive); GET uses
  ``socket.sendfile`` (zero-copy). This is the "plain loopback HTTP" reference.
- ``asgi``: a bare ASGI callable on uvicorn with the same settings Cairn's server uses
  (uvloop, httptools), reading and sending 1 MiB chunks in user space. A diagnostic: the
  ceiling of Cairn's HTTP stack without Cairn.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
PREFIX = "/files/"


class Store:
    """Files under ``root/files``, staged in ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, url_path: str) -> Path | None:
        name = url_path[len(PREFIX) :] if url_path.startswith(PREFIX) else ""
        if not name or "/" in name or name.startswith("."):
            return None
        return self.files / name

    def staging(self) -> tuple[Path, int]:
        tmp = self.tmp / f"put-{secrets.token_hex(8)}"
        return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def commit(self, tmp: Path, fd: int, final: Path) -> None:
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(self.files, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- stdlib ------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store

    def setup(self) -> None:
        super().setup()
        # as uvicorn (asyncio) does: without it, a small reply written as header + body
        # waits on Nagle + delayed ACK (~40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        target = self.store.path(self.path)
        length = int(self.headers.get("Content-Length", "-1"))
        if target is None or length < 0:
            self.close_connection = True
            self._reply(400, b"need /files/NAME and Content-Length\n")
            return
        tmp, fd = self.store.staging()
        buffer = memoryview(bytearray(CHUNK))
        remaining = length
        with open(fd, "wb", buffering=CHUNK, closefd=False) as f:
            while remaining:
                got = self.rfile.readinto(buffer[: min(CHUNK, remaining)])
                if not got:
                    os.close(fd)
                    tmp.unlink()
                    self.close_connection = True
                    return
                f.write(buffer[:got])
                remaining -= got
        self.store.commit(tmp, fd, target)
        self._reply(201, b'{"stored": true}\n')

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok\n")
            return
        target = self.store.path(self.path)
        if target is None or not target.is_file():
            self._reply(404, b"not found\n")
            return
        with target.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.connection.sendfile(f)


def serve_stdlib(store: Store, port: int) -> None:
    Handler.store = store
    ThreadingHTTPServer.daemon_threads = True
    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as httpd:
        httpd.serve_forever()


# --- asgi --------------------------------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_asgi(store: Store) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def reply(send: Send, code: int, body: bytes) -> None:
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def put(scope: Scope, receive: Receive, send: Send, target: Path) -> None:
        tmp, fd = store.staging()
        with open(fd, "wb", buffering=CHUNK, closefd=False) as f:
            more = True
            while more:
                message = await receive()
                f.write(message.get("body", b""))
                more = message.get("more_body", False)
        store.commit(tmp, fd, target)
        await reply(send, 201, b'{"stored": true}\n')

    async def get(send: Send, target: Path) -> None:
        with target.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            headers = [
                (b"content-length", str(size).encode()),
                (b"content-type", b"application/octet-stream"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while chunk := f.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await reply(send, 200, b"ok\n")
            return
        target = store.path(path)
        if target is None:
            await reply(send, 400, b"need /files/NAME\n")
        elif method == "PUT":
            await put(scope, receive, send, target)
        elif method == "GET" and target.is_file():
            await get(send, target)
        else:
            await reply(send, 404, b"not found\n")

    return app


def serve_asgi(store: Store, port: int) -> None:
    import uvicorn

    uvicorn.run(
        make_asgi(store),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("stdlib", "asgi"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    store = Store(args.root)
    (serve_stdlib if args.impl == "stdlib" else serve_asgi)(store, args.port)


if __name__ == "__main__":
    main()
