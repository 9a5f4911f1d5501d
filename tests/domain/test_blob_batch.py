"""The batch-upload body: frames of ``<digest> <size>\\n`` and the bytes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.blob_batch import MAX_BATCH_BLOBS, frames, parse_frames
from cairn.errors import InvalidParameter


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_frames_round_trip(contents: list[bytes]) -> None:
    items = [(digest(c), c) for c in contents]
    assert parse_frames(b"".join(frames(items))) == items


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"sha256:" + b"0" * 64 + b" 5\nabc",  # shorter than declared
        b"sha256:" + b"0" * 64 + b"\nabc",  # no size
        b"sha256:" + b"0" * 64 + b" +3\nabc",
        b"sha256:" + b"0" * 64 + " ３\nabc".encode(),  # a digit, not an ASCII one
        b"sha256:" + b"0" * 64 + b" 1" + b"0" * 40 + b"\n",  # header line too long
        b"md5:abc 3\nabc",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidParameter):
        parse_frames(body)


def test_a_batch_holds_at_most_max_frames() -> None:
    one = b"".join(frames([(digest(b""), b"")]))
    assert len(parse_frames(one * MAX_BATCH_BLOBS)) == MAX_BATCH_BLOBS
    with pytest.raises(InvalidParameter, match="at most"):
        parse_frames(one * (MAX_BATCH_BLOBS + 1))
