"""Large pushes to S3 through presigned part URLs: several parts at once, a part that
fails transiently sent again (and only it), expired links replaced by a fresh ticket.

The parts go through a proxy on loopback (``BucketProxy``) that forwards to the moto
server and can refuse, hang up or hold requests.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.client import http as http_client
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.domain.models import VersionStatus
from cairn.errors import CairnError
from cairn.store.blobs.s3 import S3BlobStore

from .conftest import BucketProxy, Policy

MiB = 1 << 20
SIZE = 4 * MiB + 5  # five parts of 1 MiB: offsets 0, 1, 2, 3 and 4 MiB


@pytest.fixture
def sdk(s3_http_sdk: HttpClient) -> HttpClient:
    return s3_http_sdk


@pytest.fixture
def through(
    monkeypatch: pytest.MonkeyPatch, bucket_proxy: Callable[[Policy], BucketProxy]
) -> Callable[[Policy], BucketProxy]:
    """``through(policy)``: parts of 1 MiB, each link a hop through a ``BucketProxy``;
    the links of the n-th ticket carry generation n."""
    monkeypatch.setattr(http_client, "RESUMABLE_ABOVE", 64 * 1024)
    tickets = [0]
    real = S3BlobStore.presign_upload

    def start(policy: Policy) -> BucketProxy:
        proxy = bucket_proxy(policy)

        def presign(self: S3BlobStore, upload_id: str, expires_s: int, part_size: object = None):  # type: ignore[no-untyped-def]
            tickets[0] += 1
            return [
                dataclasses.replace(p, url=proxy.link(p.url, tickets[0], p.offset))
                for p in real(self, upload_id, expires_s, MiB) or []
            ]

        monkeypatch.setattr(S3BlobStore, "presign_upload", presign)
        return proxy

    return start


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
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], BucketProxy]
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
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], BucketProxy]
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
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], BucketProxy]
) -> None:
    def expire_first_ticket(generation: int, offset: int, _attempt: int) -> int | None:
        return 403 if generation == 1 and offset != 0 else None

    proxy = through(expire_first_ticket)
    data, _ = _push(sdk, tmp_path)
    assert sorted(proxy.stored.elements()) == OFFSETS  # offset 0 went once, in the first round
    assert proxy.attempts[0] == 1 and all(proxy.attempts[o] == 2 for o in OFFSETS[1:])
    assert _pulled(sdk, tmp_path) == data


def test_a_part_refused_for_good_fails_the_push_and_nothing_is_ready(
    sdk: HttpClient, tmp_path: Path, through: Callable[[Policy], BucketProxy]
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


def test_a_completion_whose_answer_was_lost_is_not_sent_again_in_vain(
    sdk: HttpClient,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server verified and recorded the blob, but the answer never came back (a proxy's
    timeout, a reset): the retry finds the upload gone, and the version no longer lacks
    the blob, so the push goes on."""
    through(lambda _g, _o, _a: None)
    real = sdk._http.request
    completes: list[int] = []

    def answer_lost_once(method: str, url: object, **kwargs: Any) -> httpx.Response:
        response = real(method, url, **kwargs)  # type: ignore[arg-type]
        if str(url).endswith("/complete"):
            completes.append(response.status_code)
            if len(completes) == 1:
                raise httpx.ReadError("connection reset before the answer")
        return response

    monkeypatch.setattr(sdk._http, "request", answer_lost_once)
    data, _ = _push(sdk, tmp_path)
    assert completes == [200, 404]  # done the first time; gone the second
    assert sdk.get_version("m", 1).status is VersionStatus.READY
    assert _pulled(sdk, tmp_path) == data


def test_a_completion_is_awaited_as_long_as_verifying_the_file_may_take(
    sdk: HttpClient,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through(lambda _g, _o, _a: None)
    real = sdk._http.request
    waits: list[float | None] = []

    def recording(method: str, url: object, **kwargs: Any) -> httpx.Response:
        if str(url).endswith("/complete"):
            waits.append(kwargs["extensions"]["timeout"]["read"])
        return real(method, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sdk._http, "request", recording)
    monkeypatch.setattr(http_client, "COMPLETE_MIN_RATE", 1_000)  # bytes/s
    _push(sdk, tmp_path)
    assert waits == [SIZE / 1_000]  # over an hour for this file at that rate
