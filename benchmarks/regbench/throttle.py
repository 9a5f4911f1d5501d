"""A TCP relay on 127.0.0.1 that caps each connection's download rate, to stand in for a
cloud bucket whose one stream carries less than the client and the link could take.

    python benchmarks/regbench/throttle.py LISTEN_PORT UPSTREAM_PORT MB_PER_S

Bytes from the client go upstream as they come; bytes from upstream go to the client at
most ``MB_PER_S`` (10^6 bytes per second) per connection, paced every 64 KiB. It does not
look inside HTTP, so only links that do not sign the host they are sent to pass through
it unchanged (Azure's shared access signatures; not S3's SigV4).
"""

from __future__ import annotations

import asyncio
import sys
import time

CHUNK = 64 << 10


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float | None
) -> None:
    start, sent = time.monotonic(), 0
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
            if rate is not None:
                sent += len(chunk)
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
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
