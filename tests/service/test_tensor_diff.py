"""Which tensors changed between two versions, read from real safetensors files (written
by the reference library) in the blob store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save

from cairn.domain.models import Actor, FileEntry, VersionSpec
from cairn.domain.tensors import TensorKind
from cairn.service.registry import RegistryService
from cairn.service.tensor_diff import _same_bytes, tensor_diff

ADMIN = Actor("admin", is_admin=True)
RNG = np.random.default_rng(7)
EMBED = RNG.standard_normal((64, 16), dtype=np.float32)
Q = RNG.standard_normal((16, 16), dtype=np.float32)
K = RNG.standard_normal((16, 16), dtype=np.float32)
HEAD = RNG.standard_normal((10, 16), dtype=np.float32)


def push(service: RegistryService, name: str, files: dict[str, bytes]) -> tuple[FileEntry, ...]:
    def entry(path: str, data: bytes) -> FileEntry:
        return FileEntry(path, len(data), "sha256:" + hashlib.sha256(data).hexdigest())

    service.create_model(ADMIN, name)
    spec = VersionSpec(files=tuple(entry(p, b) for p, b in files.items()))
    version = service.create_version(ADMIN, name, spec).version
    for f in spec.files:
        if f.digest in service.missing_blobs(ADMIN, name, version):
            data = next(b for p, b in files.items() if p == f.path)
            service.put_blob(ADMIN, name, version, f.digest, [data])
    return spec.files


@pytest.fixture
def base(service: RegistryService) -> tuple[FileEntry, ...]:
    return push(
        service,
        "base",
        {
            "model-00001-of-00002.safetensors": save({"embed": EMBED, "q": Q}),
            "model-00002-of-00002.safetensors": save({"k": K, "head": HEAD}),
            "config.json": b"{}",
        },
    )


def test_a_fine_tune_resharded_against_its_base(
    service: RegistryService, base: tuple[FileEntry, ...]
) -> None:
    tuned = {
        "embed": EMBED,  # the same values in another file at another offset
        "q": Q + np.float32(0.5),
        "k": K,
        "head": RNG.standard_normal((11, 16), dtype=np.float32),  # one more class
        "lora_A": RNG.standard_normal((4, 16), dtype=np.float32),
    }
    push(service, "tuned", {"model.safetensors": save(tuned), "config.json": b"{}"})

    d = service.diff_versions(ADMIN, "models:/base/1", "models:/tuned/1", tensors=True)
    assert d.tensors is not None
    assert [(c.kind, c.name, c.what) for c in d.tensors.changes] == [
        (TensorKind.CHANGED, "head", ("shape",)),
        (TensorKind.CHANGED, "q", ("values",)),
        (TensorKind.ADDED, "lora_A", ()),
    ]
    assert (d.tensors.unchanged, d.tensors.unchanged_bytes) == (2, EMBED.nbytes + K.nbytes)
    assert d.tensors.changed_bytes == Q.nbytes + tuned["head"].nbytes + tuned["lora_A"].nbytes
    head = d.tensors.changes[0]
    assert head.old is not None and head.old.path == "model-00002-of-00002.safetensors"
    assert head.new is not None and (head.new.dtype, head.new.shape) == ("F32", (11, 16))
    assert head.new.path == "model.safetensors"
    # without asking, nothing is read
    assert service.diff_versions(ADMIN, "models:/base/1", "models:/tuned/1").tensors is None


def test_values_past_the_read_limit_are_not_compared(
    service: RegistryService, base: tuple[FileEntry, ...]
) -> None:
    bias = np.zeros(3, dtype=np.float32)  # another header: every offset moves
    moved = push(service, "moved", {"all.safetensors": save({"embed": EMBED, "q": Q, "b": bias})})
    d = tensor_diff(service.blobs, base, moved, limit=2 * Q.nbytes)
    # q (small) fits the budget; embed (large) would pass it
    assert [(c.kind, c.name) for c in d.changes] == [
        (TensorKind.ADDED, "b"),
        (TensorKind.REMOVED, "head"),
        (TensorKind.REMOVED, "k"),
        (TensorKind.UNCOMPARED, "embed"),
    ]
    assert d.unchanged == 1 and d.changed_bytes == bias.nbytes


def test_unreadable_files_are_named_and_a_name_in_two_shards_is_kept_apart(
    service: RegistryService, base: tuple[FileEntry, ...]
) -> None:
    odd = push(
        service,
        "odd",
        {
            "a.safetensors": save({"q": Q}),
            "b.safetensors": save({"q": Q, "k": K}),
            "broken.safetensors": b"\xff" * 16,
        },
    )
    d = tensor_diff(service.blobs, base, odd)
    assert d.unreadable == (
        (
            "broken.safetensors",
            "invalid safetensors: header length 18446744073709551615 is over the 100000000 limit",
        ),
    )
    assert [(c.kind, c.name) for c in d.changes] == [
        (TensorKind.ADDED, "a.safetensors:q"),
        (TensorKind.ADDED, "b.safetensors:q"),
        (TensorKind.REMOVED, "embed"),
        (TensorKind.REMOVED, "head"),
        (TensorKind.REMOVED, "q"),
    ]
    assert d.unchanged == 1  # k


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ([b"abc", b"def"], [b"abc", b"def"], True),
        ([b"abc", b"def"], [b"ab", b"cdef"], True),
        ([b"a", b"b", b"cdef"], [b"abcde", b"f"], True),
        ([b"abc", b"def"], [b"ab", b"cdeX"], False),
        ([b"abc", b"def"], [b"abc", b"deX"], False),
        ([], [], True),
    ],
)
def test_bytes_are_compared_however_the_streams_are_cut(
    left: list[bytes], right: list[bytes], same: bool
) -> None:
    assert _same_bytes(left, right)[1] is same


def test_the_comparison_stops_at_the_first_difference() -> None:
    taken: list[int] = []

    def stream(first: bytes) -> Iterator[bytes]:
        for i in range(100):
            taken.append(i)
            yield first if i == 0 else b"same"

    assert _same_bytes(stream(b"one"), stream(b"two")) == (6, False)
    assert taken == [0, 0]


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    st.binary(max_size=64),
    st.binary(max_size=64),
    st.lists(st.integers(0, 64), max_size=8),
    st.lists(st.integers(0, 64), max_size=8),
)
def test_the_comparison_agrees_with_bytes_equality(
    a: bytes, b: bytes, cuts_a: list[int], cuts_b: list[int]
) -> None:
    b = b[: len(a)].ljust(len(a), b"\0")  # the two spans always have one length
    assert _same_bytes(_cut(a, cuts_a), _cut(b, cuts_b))[1] is (a == b)
    assert _same_bytes(_cut(a, cuts_a), _cut(a, cuts_b)) == (2 * len(a), True)
