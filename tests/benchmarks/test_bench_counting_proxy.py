"""The byte-counting relay of the re-push measurement (``transfer_proxy.CountingProxy``)."""

from __future__ import annotations

import socket
import threading

from transfer_proxy import CountingProxy


def _reply_server() -> tuple[socket.socket, threading.Thread]:
    """Reads one request of 100,000 bytes, answers b'ok'."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            got = 0
            while got < 100_000:
                got += len(conn.recv(65536))
            conn.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_every_byte_sent_is_counted_by_the_time_the_answer_arrives() -> None:
    listener, thread = _reply_server()
    with listener, CountingProxy(listener.getsockname()[1]) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(b"x" * 100_000)
            assert client.recv(2) == b"ok"
            assert proxy.sent == 100_000  # read as the re-push reads it: right after
        thread.join(5)
    assert proxy.received == 2
