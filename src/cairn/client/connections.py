"""How the SDK's HTTP connections read: up to 1 MiB at a time, not httpcore's 64 KiB.

httpcore, under httpx, reads a response 64 KiB at a time, and every read climbs back up
through httpcore's and h11's Python layers: 16,000 trips for a GiB of model. ``WideReads``
lets a read of a plain connection take up to ``READ_SIZE`` (1 MiB) of what has arrived
while data keeps arriving faster than it is read (``recv`` returns what the kernel holds;
it never waits to fill the size). Sends need nothing: the SDK's body chunks are 1 MiB
already. HTTPS is left alone: a TLS socket hands out one 16 KiB record per read whatever
the size asked, and asking 1 MiB for each made a loopback HTTPS download half as fast
(Python allocates the size asked, then shrinks it).

On a 2-core VM a plain loopback GET through httpx went from 680-740 to 720-1,030 MB/s
(median of six ~720 against ~915; curl ~1,600). Pulls through the SDK from a local
server (``benchmarks/transfer.py --only cairn-sdk``, data on disk and the pulled files
fsynced, the old and new client in turn, twice, three runs each): 1 GiB in 2.53-2.61 s
instead of 2.91-2.97, 20 x 50 MB in 2.39-2.54 s instead of 3.15. Pushes did not change.

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
    """A connection whose reads ask for up to ``READ_SIZE`` while data keeps coming
    faster than it is read; the rest as ``inner`` does it.

    Python's ``recv`` allocates the size it is asked for and shrinks the result to what
    came, so asking 1 MiB of a connection that has 16 KiB waiting costs an allocation of
    1 MiB (through ``mmap`` at that size) for nothing. A read asks for more than httpcore
    does only after a read that brought at least httpcore's size, and goes back to
    httpcore's size as soon as one brings less."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._flowing = False  # the last read brought at least what httpcore asks for

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max(READ_SIZE, max_bytes) if self._flowing else max_bytes, timeout)
        self._flowing = len(data) >= max_bytes
        return data

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
        """httpcore's own TLS stream: a TLS socket hands out one record (16 KiB) per read,
        whatever the size asked."""
        return self._inner.start_tls(ssl_context, server_hostname, timeout)

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
