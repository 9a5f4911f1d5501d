from __future__ import annotations

import pytest

from cairn.errors import InvalidParameter
from cairn.store.blobs import layout

HEX = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"
DIGEST = f"sha256:{HEX}"
UPLOAD = "0123456789abcdef0123456789abcdef"


def test_blob_key_fans_out_on_the_first_two_hex_digits() -> None:
    assert layout.blob_key(DIGEST) == f"blobs/sha256/ab/{HEX}"


@pytest.mark.parametrize(
    "bad", ["", f"sha256:{HEX.upper()}", f"sha256:{HEX[:-1]}", "sha256:../../etc/passwd", HEX]
)
def test_blob_key_refuses_anything_but_a_digest(bad: str) -> None:
    with pytest.raises(InvalidParameter, match="sha256:<64 lowercase hex>"):
        layout.blob_key(bad)


def test_digest_from_blob_key_inverts_blob_key() -> None:
    assert layout.digest_from_blob_key(layout.blob_key(DIGEST)) == DIGEST


@pytest.mark.parametrize(
    "key",
    [
        f"blobs/sha256/cd/{HEX}",  # wrong fan-out directory
        f"blobs/sha256/ab/{HEX.upper()}",
        f"blobs/sha256/ab/{HEX}/x",
        f"blobs/sha256/ab/{HEX}.tmp",
        f"other/sha256/ab/{HEX}",
        f"blobs/sha256/{HEX}",
        "blobs/sha256/ab/",
    ],
)
def test_digest_from_blob_key_ignores_other_keys(key: str) -> None:
    assert layout.digest_from_blob_key(key) is None


def test_upload_ids_are_random_and_valid() -> None:
    ids = {layout.new_upload_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(layout.validate_upload_id(i) == i for i in ids)


@pytest.mark.parametrize("bad", ["", UPLOAD.upper(), UPLOAD[:-1], UPLOAD + "0", "../" + UPLOAD[3:]])
def test_upload_id_validation(bad: str) -> None:
    with pytest.raises(InvalidParameter, match="upload id"):
        layout.validate_upload_id(bad)
    with pytest.raises(InvalidParameter):
        layout.upload_prefix(bad)


def test_upload_keys() -> None:
    assert layout.upload_info_key(UPLOAD) == f"uploads/{UPLOAD}/info.json"
    assert layout.upload_data_key(UPLOAD) == f"uploads/{UPLOAD}/data"
    part = layout.upload_part_key(UPLOAD, 1234)
    assert part == f"uploads/{UPLOAD}/parts/00000000000000001234"
    assert layout.part_offset_from_key(UPLOAD, part) == 1234
    assert layout.part_offset_from_key(UPLOAD, layout.upload_info_key(UPLOAD)) is None
    assert layout.part_offset_from_key(UPLOAD, part + "x") is None
    assert layout.upload_id_from_key(part) == UPLOAD
    assert layout.upload_id_from_key(f"uploads/{UPLOAD}") is None
    assert layout.upload_id_from_key("uploads/nope/info.json") is None
    with pytest.raises(InvalidParameter):
        layout.upload_part_key(UPLOAD, -1)


def test_part_keys_sort_by_offset() -> None:
    offsets = [0, 9, 10, 5 * 2**30, 10**15]
    keys = [layout.upload_part_key(UPLOAD, o) for o in offsets]
    assert sorted(keys) == keys


@pytest.mark.parametrize("key", ["a//b", "a/../b", "./a", "a/"])
def test_key_parts_refuses_malformed_keys(key: str) -> None:
    with pytest.raises(InvalidParameter):
        layout.key_parts(key)
