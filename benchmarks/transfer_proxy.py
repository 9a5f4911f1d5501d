"""A counting TCP relay on 127.0.0.1: how many bytes a client really sends to a server.

Used for the re-push measurement: the client talks to the relay, the relay to the
server, and ``sent``/``received`` count the bytes each way. Threads, one pair per
connection; ``close`` stops accepting, shuts every connection and joins the threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

_BUFFER = 1 << 16
_MAX_CONNECTIONS = 256


class CountingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = 0  # client → server
        self.received = 0  # server → client
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CountingProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def close(self) -> None:
        self._closing.set()
        self._acceptor.join(5.0)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5.0)

    def _accept(self) -> None:
        while not self._closing.is_set() and self.connections < _MAX_CONNECTIONS:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            upstream.settimeout(None)
            client.settimeout(None)
            self.connections += 1
            self._sockets += [client, upstream]
            for src, dst, outbound in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(
                    target=self._pipe, args=(src, dst, outbound), name="proxy-pipe", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pipe(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while data := src.recv(_BUFFER):
                with self._lock:  # before forwarding: the answer can only follow the count
                    if outbound:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
