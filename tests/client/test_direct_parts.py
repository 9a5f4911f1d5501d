"""Large pushes to S3 through presigned part URLs: several parts at once, a part that
fails transiently sent again (and only it), expired links replaced by a fresh ticket.

The parts go through a proxy on loopback that forwards to the moto server (a presigned
URL signs the host, not the route to it) and can refuse, hang up or hold requests.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from cairn.client import http as http_client
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.domain.models import VersionStatus
from cairn.errors import CairnError
from cairn.store.blobs.s3 import S3BlobStore

MiB = 1 << 20
SIZE = 4 * MiB + 5  # five parts of 1 MiB: offsets 0, 1, 2, 3 and 4 MiB
StoreSdk = Callable[[str, str], AbstractContextManager[BaseClient]]
Policy = Callable[[int, int, int], "int | str | None"]  # (generation, offset, attempt)


class _Proxy:
    """Forwards part PUTs to their real URL unless ``policy(generation, offset, attempt)``
    answers a status (sent instead) or "reset" (the connection dropped, no answer)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.attempts: Counter[int] = Counter()  # offset → requests
        self.stored: Counter[int] = Counter()  # offset → forwarded and stored
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                query = parse_qs(urlsplit(self.path).query)
                generation, offset = int(query["g"][0]), int(query["o"][0])
                with proxy.lock:
                    proxy.attempts[offset] += 1
                    attempt = proxy.attempts[offset]
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                try:
                    verdict = proxy.policy(generation, offset, attempt)
                    if verdict == "reset":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    if verdict is None:
                        real = httpx.put(query["u"][0], content=body)
                        verdict = real.status_code
                        if real.is_success:
                            with proxy.lock:
                                proxy.stored[offset] += 1
                    self.send_response(int(verdict))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sdk(store_sdk: StoreSdk, s3_bucket: str) -> Iterator[HttpClient]:
    with store_sdk("http", f"s3://{s3_bucket}/cairn") as client:
        assert isinstance(client, HttpClient)
        yield client


@pytest.fixture
def through(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Policy], _Proxy]]:
    """``through(policy)``: parts of 1 MiB, each link a hop through a ``_Proxy``; the
    links of the n-th ticket carry generation n."""
    monkeypatch.setattr(http_client, "RESUMABLE_ABOVE", 64 * 1024)
    proxies: list[_Proxy] = []
    tickets = [0]
    real = S3BlobStore.presign_upload

    def start(policy: Policy) -> _Proxy:
        proxy = _Proxy(policy)
        proxies.append(proxy)

        def presign(self: S3BlobStore, upload_id: str, expires_s: int, part_size: object = None):  # type: ignore[no-untyped-def]
            tickets[0] += 1
            return [
                dataclasses.replace(
                    p, url=f"{proxy.base}?g={tickets[0]}&o={p.offset}&u={quote(p.url, safe='')}"
                )
                for p in real(self, upload_id, expires_s, MiB) or []
            ]

        monkeypatch.setattr(S3BlobStore, "presign_upload", presign)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


def _push(sdk: HttpClient, tmp_path: Path) -> tuple[bytes, BaseClient]:
    data = os.urandom(SIZE)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "w.bin").write_bytes(data)
    sdk.create_model("m")
    sdk.push(tmp_path / "src", name="m")
    return data, sdk


def _pulled(sdk: BaseClient, tmp_path: Path) -> bytes:
    out = sdk.pull("models:/m/1", tmp_path / "out", cache_dir=tmp_path / "cache")
    return (out / "w.bin").read_bytes()


OFFSETS = [0, MiB, 2 * MiB, 3 * MiB, 4 * MiB]


def test_parts_travel_several_at_once(
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], _Proxy]
) -> None:
    arrived = threading.Condition()
    count = [0]

    def hold_until_two(_generation: int, _offset: int, _attempt: int) -> None:
        with arrived:  # a client sending one part at a time would wait here in vain
            count[0] += 1
            arrived.notify_all()
            arrived.wait_for(lambda: count[0] >= 2, timeout=10)

    proxy = through(hold_until_two)
    data, _ = _push(sdk, tmp_path)
    assert proxy.most_in_flight >= 2
    assert sorted(proxy.stored.elements()) == OFFSETS  # each part stored once
    assert _pulled(sdk, tmp_path) == data


def test_a_part_that_fails_transiently_is_sent_again_alone(
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], _Proxy]
) -> None:
    def flaky(_generation: int, offset: int, attempt: int) -> int | str | None:
        if offset == MiB and attempt == 1:
            return 503  # S3's SlowDown
        if offset == 3 * MiB and attempt <= 2:
            return "reset" if attempt == 1 else 500
        return None

    proxy = through(flaky)
    data, _ = _push(sdk, tmp_path)
    assert proxy.attempts == {0: 1, MiB: 2, 2 * MiB: 1, 3 * MiB: 3, 4 * MiB: 1}
    assert sorted(proxy.stored.elements()) == OFFSETS
    assert _pulled(sdk, tmp_path) == data


def test_expired_links_are_replaced_and_stored_parts_not_sent_again(
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], _Proxy]
) -> None:
    def expire_first_ticket(generation: int, offset: int, _attempt: int) -> int | None:
        return 403 if generation == 1 and offset != 0 else None

    proxy = through(expire_first_ticket)
    data, _ = _push(sdk, tmp_path)
    assert sorted(proxy.stored.elements()) == OFFSETS  # offset 0 went once, in the first round
    assert proxy.attempts[0] == 1 and all(proxy.attempts[o] == 2 for o in OFFSETS[1:])
    assert _pulled(sdk, tmp_path) == data


def test_a_part_refused_for_good_fails_the_push_and_nothing_is_ready(
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], _Proxy]
) -> None:
    proxy = through(lambda _g, offset, _a: 400 if offset == 2 * MiB else None)
    with pytest.raises(CairnError, match="refused the part at 2097152"):
        _push(sdk, tmp_path)
    assert proxy.attempts[2 * MiB] == 1  # not retried: a 400 will not change
    assert sdk.get_version("m", 1).status is VersionStatus.PENDING
    # the next push resumes the same upload: only what is missing goes again
    proxy.policy = lambda _g, _o, _a: None
    again = sdk.push(tmp_path / "src", name="m")
    assert again.status is VersionStatus.READY
    assert proxy.stored[0] == 1
