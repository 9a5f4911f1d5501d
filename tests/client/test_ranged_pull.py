"""Large pulls from S3 through presigned links: several ranges at once, handed to the
cache in order; a range that fails transiently fetched again; a link that fails for good
leaves the rest of the file to the server.

Segments are 1 MiB here (8 MiB in the SDK) and the links go through a ``BucketProxy``
in front of the moto server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.client import http as http_client
from cairn.client import ranged
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.errors import DataCorrupted, InvalidParameter
from cairn.service.downloads import DownloadsService
from cairn.store.blobs.s3 import S3BlobStore

from .conftest import BucketProxy, Policy

MiB = 1 << 20
SIZE = 6 * MiB + 3  # seven segments: offsets 0 … 6 MiB
OFFSETS = [i * MiB for i in range(7)]


@pytest.fixture
def sdk(s3_http_sdk: HttpClient) -> HttpClient:
    return s3_http_sdk


@pytest.fixture
def pushed(sdk: HttpClient, tmp_path: Path) -> bytes:
    data = os.urandom(SIZE)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "w.bin").write_bytes(data)
    sdk.create_model("m")
    sdk.push(tmp_path / "src", name="m")
    return data


@pytest.fixture
def through(
    monkeypatch: pytest.MonkeyPatch, bucket_proxy: Callable[[Policy], BucketProxy]
) -> Callable[[Policy], BucketProxy]:
    """``through(policy)``: segments of 1 MiB, download links through a proxy."""
    monkeypatch.setattr(ranged, "SEGMENT", MiB)
    monkeypatch.setattr(http_client, "RANGED_ABOVE", 2 * MiB)
    real = S3BlobStore.presign_get

    def start(policy: Policy) -> BucketProxy:
        proxy = bucket_proxy(policy)
        monkeypatch.setattr(
            S3BlobStore,
            "presign_get",
            lambda self, digest, expires_s, **kw: proxy.link(
                str(real(self, digest, expires_s, **kw))
            ),
        )
        return proxy

    return start


def _server_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets the server is asked to stream a file from (not its size probe before
    a Range, which reads nothing)."""
    starts: list[int] = []
    real = DownloadsService.open_file

    def open_file(self: DownloadsService, *args: object, **kwargs: object) -> object:
        if kwargs.get("end") != 0:
            starts.append(int(kwargs.get("start", 0)))  # type: ignore[call-overload]
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DownloadsService, "open_file", open_file)
    return starts


def _pulled(sdk: BaseClient, tmp_path: Path) -> bytes:
    out = sdk.pull("models:/m/1", tmp_path / "out", cache_dir=tmp_path / "cache")
    return (out / "w.bin").read_bytes()


def test_a_large_file_comes_in_several_ranges_at_once(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arrived = threading.Condition()
    count = [0]

    def hold_until_two(_generation: int, _offset: int, _attempt: int) -> None:
        with arrived:  # one range at a time would wait here in vain
            count[0] += 1
            arrived.notify_all()
            arrived.wait_for(lambda: count[0] >= 2, timeout=10)

    proxy = through(hold_until_two)
    server = _server_reads(monkeypatch)
    assert _pulled(sdk, tmp_path) == pushed
    assert proxy.most_in_flight >= 2
    assert sorted(proxy.stored.elements()) == OFFSETS  # each range once
    assert server == []


def test_a_range_that_fails_transiently_is_fetched_again(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def flaky(_generation: int, offset: int, attempt: int) -> int | str | None:
        if offset == MiB and attempt == 1:
            return 503
        if offset == 4 * MiB and attempt <= 2:
            return "reset" if attempt == 1 else 500
        return None

    proxy = through(flaky)
    server = _server_reads(monkeypatch)
    assert _pulled(sdk, tmp_path) == pushed
    assert proxy.attempts[MiB] == 2 and proxy.attempts[4 * MiB] == 3
    assert server == []


@pytest.mark.parametrize("failure", [403, "shifted"])
def test_a_link_that_fails_for_good_midway_leaves_the_rest_to_the_server(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
    failure: int | str,
) -> None:
    """403: the link expired; "shifted": the store answered another range than asked."""
    through(lambda _g, offset, _a: failure if offset == 3 * MiB else None)
    server = _server_reads(monkeypatch)
    assert _pulled(sdk, tmp_path) == pushed
    assert server == [3 * MiB]  # the first three segments came from the bucket


def test_ranges_are_checked_against_the_digest(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through(lambda _g, _o, _a: None)
    real = ranged._segment

    def tampered(*args: object) -> bytes:
        data = real(*args)  # type: ignore[arg-type]
        return bytes([data[0] ^ 1]) + data[1:] if args[2] == 2 * MiB else data

    monkeypatch.setattr(ranged, "_segment", tampered)
    with pytest.raises(DataCorrupted, match="do not match"):
        _pulled(sdk, tmp_path)
    assert not any((tmp_path / "out").iterdir())


def test_one_stream_when_the_environment_asks(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = through(lambda _g, _o, _a: None)
    monkeypatch.setenv("CAIRN_LINK_STREAMS", "1")
    assert _pulled(sdk, tmp_path) == pushed
    assert proxy.attempts == {0: 1}  # one GET of the whole file


@pytest.mark.parametrize("value", ["0", "many", "33", "-1"])
def test_a_bad_stream_count_is_a_clear_error(
    sdk: HttpClient,
    pushed: bytes,
    tmp_path: Path,
    through: Callable[[Policy], BucketProxy],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    through(lambda _g, _o, _a: None)
    monkeypatch.setenv("CAIRN_LINK_STREAMS", value)
    with pytest.raises(InvalidParameter, match="CAIRN_LINK_STREAMS must be a whole number"):
        _pulled(sdk, tmp_path)
    assert not any((tmp_path / "out").iterdir())
