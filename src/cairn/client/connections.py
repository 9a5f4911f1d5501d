"""How the SDK's HTTP connections read: up to 1 MiB at a time, not httpcore's 64 KiB.

httpcore, under httpx, reads a response 64 KiB at a time, and every read climbs back up
through httpcore's and h11's Python layers: 16,000 trips for a GiB of model. ``WideReads``
lets each socket read take up to ``READ_SIZE`` (1 MiB) of what has arrived (``recv``
returns what the kernel holds; it never waits to fill the size). Sends need nothing: the
SDK's body chunks are 1 MiB already.

On a 2-core machine a plain loopback GET through httpx went from ~800 to ~1,300 MB/s
(curl: ~1,700), and a 1 GiB pull through the SDK from a local server with its data on
tmpfs took 1.8-2.0 s instead of 2.5-2.9 (four alternating rounds). With the data on disk
and the pulled files fsynced (``benchmarks/transfer.py``, the old and new client in
turn, twice), 20 x 50 MB took 2.56-2.58 s instead of 2.96-3.41, and 1 GiB did not change
(2.80-3.32 s against 2.78-3.18): the disk bounds it there. Pushes did not change.

httpx takes no network backend, so ``transport()`` puts one into the connection pool of
an ordinary ``httpx.HTTPTransport``, through its private ``_pool``. If a release of httpx
moves it, the transport stays as httpx made it: slower, never wrong. The test suite
checks that it is in place with the httpx this project installs.
"""

from __future__ import annotations

from typing import Any, Final

import httpcore
import httpx

READ_SIZE: Final = 1 << 20


class WideStream(httpcore.NetworkStream):
    """A connection whose reads take up to ``READ_SIZE``; the rest as ``inner`` does it."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max(max_bytes, READ_SIZE), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return WideStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class WideReads(httpcore.NetworkBackend):
    """Opens connections as ``inner`` does, each wrapped in a ``WideStream``."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return WideStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return WideStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport() -> httpx.HTTPTransport:
    """httpx's default transport, its connections opened through ``WideReads``."""
    made = httpx.HTTPTransport()
    pool = getattr(made, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if pool is not None and isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = WideReads(backend)  # httpx has no argument for it
    return made
