"""A TCP relay on 127.0.0.1 that caps each connection's download rate, to stand in for a
cloud bucket whose one stream carries less than the client and the link could take.

    python benchmarks/regbench/throttle.py LISTEN_PORT UPSTREAM_PORT MB_PER_S

Bytes from the client go upstream as they come; bytes from upstream go to the client at
most ``MB_PER_S`` (10^6 bytes per second) per connection, paced every 64 KiB, with no
burst after an idle spell. It does not
look inside HTTP, so only links that do not sign the host they are sent to pass through
it unchanged (Azure's shared access signatures; not S3's SigV4).
"""

from __future__ import annotations

import asyncio
import sys
import time

CHUNK = 64 << 10
SLACK = 0.05  # seconds


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float | None
) -> None:
    due = 0.0  # when the bytes sent so far may all have left, at ``rate``
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
            if rate is not None:  # at most SLACK of credit: a kept-alive connection does
                now = time.monotonic()  # not burst after a pause, and late wake-ups do
                due = max(due, now - SLACK) + len(chunk) / rate  # not slow it down
                if due > now:
                    await asyncio.sleep(due - now)
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen: int, upstream: int, rate: float) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w, None), _pipe(up_r, client_w, rate))

    server = await asyncio.start_server(relay, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) * 1e6))
