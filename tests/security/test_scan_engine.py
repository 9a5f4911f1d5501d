"""The unsafe-file scanner on bytes built in the test: no database, nothing ever loaded.

Every malicious payload would create a marker file if it were unpickled; each test checks
the scan flags it and that the marker never appears.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import pickle
import random
import struct
import subprocess
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from cairn.domain.scans import BlobScan
from cairn.service.scan_engine import scan_blob, scan_file, scanner_name, sniff

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


class RunsCommand:
    """Unpickling this runs a shell command (os.system)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class CallsEval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, (self.code,))


class Spawns:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self) -> tuple[object, tuple[list[str]]]:
        return (subprocess.call, (self.argv,))


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran: the scanner must never unpickle"


def evil(marker: Path) -> RunsCommand:
    return RunsCommand(f"touch {marker}")


def scan(data: bytes) -> BlobScan:
    return scan_file(io.BytesIO(data), len(data))


def dangerous(result: BlobScan) -> set[tuple[str | None, str | None, str | None]]:
    return {(f.module, f.name, f.member) for f in result.findings if f.kind == "dangerous_global"}


def assert_flags_system(result: BlobScan, member: str | None = None) -> None:
    assert result.status == "flagged", result
    assert (os.system.__module__, "system", member) in dangerous(result)


def fitted(model: object) -> object:
    rng = np.random.default_rng(0)
    x = rng.random((60, 4))
    y = (x[:, 0] > 0.5).astype(int)
    model.fit(x, y)  # type: ignore[attr-defined]
    return model


# -- plain pickles -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(6))
def test_malicious_pickle_is_flagged_in_every_protocol(marker: Path, protocol: int) -> None:
    data = pickle.dumps({"weights": [1.0, 2.0], "hook": evil(marker)}, protocol=protocol)
    result = scan(data)
    assert result.format == "pickle"
    assert_flags_system(result)
    assert result.scanner == scanner_name()
    assert scanner_name().startswith("picklescan-1.")


@pytest.mark.parametrize(
    ("payload", "module", "name"),
    [
        (CallsEval("__import__('os').system('true')"), "builtins", "eval"),
        (Spawns(["touch", "/nonexistent/x"]), "subprocess", "call"),
    ],
)
def test_other_dangerous_imports(payload: object, module: str, name: str) -> None:
    result = scan(pickle.dumps(payload, protocol=4))
    assert result.status == "flagged"
    assert (module, name, None) in dangerous(result)


def test_protocol_0_payload_followed_by_junk_is_flagged(marker: Path) -> None:
    # an unpickler runs os.system before it reaches the junk
    data = f"cos\nsystem\n(S'touch {marker}'\ntR".encode() + b"\xff\xfe junk"
    result = scan(data)
    assert result.format == "pickle"
    assert result.status == "flagged"
    assert ("os", "system", None) in dangerous(result)


def test_protocol_0_payload_after_a_long_line_is_flagged(marker: Path) -> None:
    padding = b"S'" + b"a" * 200_000 + b"'\n0"  # a 200 kB string, popped
    data = padding + f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    result = scan(data)
    assert result.format == "pickle"
    assert ("os", "system", None) in dangerous(result)


def test_an_import_too_long_to_name_is_flagged() -> None:
    data = b"c" + b"x" * 100_000 + b"\nsystem\n(S'true'\ntR."
    result = scan(data)
    assert result.status == "flagged"
    assert ("unknown", "unknown", None) in dangerous(result)


def test_text_with_a_long_first_line_is_not_taken_for_a_pickle() -> None:
    # 'S' is the STRING opcode: only walking the whole line shows it is not one
    result = scan(b"Symbol," + b"1.5,2.25," * 20_000 + b"\nAAPL,1,2\n")
    assert (result.format, result.status, result.findings) == ("other", "clean", ())


def test_payload_in_a_second_pickle_is_flagged(marker: Path) -> None:
    data = pickle.dumps({"ok": 1}) + pickle.dumps(evil(marker))
    assert_flags_system(scan(data))


def test_payload_after_a_large_payload_is_flagged_with_bounded_memory(marker: Path) -> None:
    big = bytes(48 << 20)
    data = pickle.dumps([big, evil(marker)], protocol=4)
    tracemalloc.start()
    try:
        result = scan_file(io.BytesIO(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_flags_system(result)
    assert peak < 8 << 20, f"scanning a {len(data) >> 20} MiB pickle peaked at {peak >> 20} MiB"


@pytest.mark.parametrize("protocol", [2, 5])
def test_benign_sklearn_and_numpy_pickles_are_clean(protocol: int) -> None:
    for model in (fitted(LogisticRegression()), np.arange(1000.0), {"a": np.ones((3, 3))}):
        result = scan(pickle.dumps(model, protocol=protocol))
        assert result.format == "pickle"
        assert result.status == "clean", result.findings
        assert not dangerous(result)


def test_imports_not_known_to_be_safe_are_reported_not_flagged() -> None:
    result = scan(pickle.dumps(fitted(LogisticRegression())))
    names = {(f.module, f.name) for f in result.findings if f.kind == "suspicious_global"}
    assert ("sklearn.linear_model._logistic", "LogisticRegression") in names
    assert result.status == "clean"


def test_truncated_pickle_is_an_error() -> None:
    data = pickle.dumps({"weights": list(range(100))}, protocol=4)
    result = scan(data[: len(data) // 2])
    assert result.format == "pickle"
    assert result.status == "error"
    assert any(f.kind == "malformed" for f in result.findings)


def test_truncated_malicious_pickle_is_still_flagged(marker: Path) -> None:
    data = pickle.dumps([evil(marker), list(range(100))], protocol=2)
    result = scan(data[:-20])
    assert_flags_system(result)


# -- joblib --------------------------------------------------------------------------------


def joblib_bytes(value: object, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer, **kwargs)
    return buffer.getvalue()


def test_benign_joblib_model_with_arrays_is_clean() -> None:
    model = RandomForestClassifier(n_estimators=3, random_state=0)
    result = scan(joblib_bytes(fitted(model)))
    assert result.format == "joblib"
    assert result.status == "clean", result.findings


def test_joblib_payload_after_raw_arrays_is_flagged(marker: Path) -> None:
    # picklescan alone stops at the first raw array; the payload comes after three
    data = joblib_bytes([np.arange(5000.0), np.ones((50, 50)), np.zeros(7), evil(marker)])
    result = scan(data)
    assert result.format == "joblib"
    assert_flags_system(result)


def test_joblib_object_array_payload_is_flagged(marker: Path) -> None:
    data = joblib_bytes({"objs": np.array([1, evil(marker)], dtype=object)})
    assert_flags_system(scan(data))


@pytest.mark.parametrize(
    ("compress", "fmt"),
    [
        (3, "zlib"),
        (("gzip", 3), "gzip"),
        (("bz2", 3), "bz2"),
        (("xz", 3), "xz"),
        (("lzma", 3), "lzma"),
    ],
)
def test_compressed_joblib_is_decompressed_and_scanned(
    marker: Path, compress: object, fmt: str
) -> None:
    data = joblib_bytes([np.arange(100.0), evil(marker)], compress=compress)
    result = scan(data)
    assert result.format == f"{fmt}+joblib"
    assert_flags_system(result)


# -- torch-style archives, legacy torch, numpy -------------------------------------------


def torch_zip(data_pkl: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/data/0", np.ones(64, dtype=np.float32).tobytes())
    return buffer.getvalue()


def test_torch_zip_with_malicious_data_pkl_is_flagged(marker: Path) -> None:
    result = scan(torch_zip(pickle.dumps({"state": evil(marker)}, protocol=2)))
    assert result.format == "torch"
    assert_flags_system(result, member="archive/data.pkl")


def test_torch_zip_with_benign_data_pkl_is_clean() -> None:
    result = scan(torch_zip(pickle.dumps({"layer.weight": [1.0, 2.0]}, protocol=2)))
    assert (result.format, result.status) == ("torch", "clean")


def test_pickle_inside_nested_archives_is_flagged(marker: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("weights.bin", pickle.dumps(evil(marker)))
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as tar:
        info = tarfile.TarInfo("bundle/model.zip")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    result = scan(gzip.compress(tar_buffer.getvalue()))
    assert result.format == "gzip+tar"
    assert_flags_system(result, member="bundle/model.zip/weights.bin")


def test_a_tar_whose_first_name_is_a_pickle_is_scanned_as_one(marker: Path) -> None:
    # pickle.load reads a tar from byte 0, where the first member's name is: anything
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        # short, so the name fits the header whatever the test's temporary path (a longer
        # one would be stored as a GNU long-name record first)
        info = tarfile.TarInfo("cos\nsystem\n(S'true'\ntR.")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    data = buffer.getvalue()
    assert data[257:262] == b"ustar"
    result = scan(data)
    assert result.format == "pickle"
    assert ("os", "system", None) in dangerous(result)


def legacy_torch(obj: object) -> bytes:
    buffer = io.BytesIO()
    for value in (
        TORCH_MAGIC,
        1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}},
        obj,
        ["0"],
    ):
        pickle.dump(value, buffer, protocol=2)
    buffer.write(struct.pack("<q", 16) + os.urandom(64))  # raw storage bytes follow
    return buffer.getvalue()


def test_legacy_torch_file_is_scanned(marker: Path) -> None:
    result = scan(legacy_torch({"w": evil(marker)}))
    assert result.format == "torch-legacy"
    assert_flags_system(result)
    clean = scan(legacy_torch({"w": [1.0, 2.0]}))
    assert (clean.format, clean.status) == ("torch-legacy", "clean")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_npy_with_object_array_is_flagged(marker: Path) -> None:
    result = scan(npy_bytes(np.array([1, "x", evil(marker)], dtype=object)))
    assert result.format == "numpy"
    assert_flags_system(result)


def test_npy_of_numbers_is_clean_and_npz_members_are_scanned(marker: Path) -> None:
    assert scan(npy_bytes(np.arange(10.0))).status == "clean"
    buffer = io.BytesIO()
    np.savez(buffer, good=np.arange(3), bad=np.array([evil(marker)], dtype=object))
    result = scan(buffer.getvalue())
    assert result.format == "zip"
    assert_flags_system(result, member="bad.npy")


def npy_with_descr(descr: object, body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": (1,)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


@pytest.mark.parametrize(
    "descr",
    ["object", "object_", "(2,)O", "2O", "i4,O", [["a", "O"]], ["xO"], [("a", ("O", (2,)))]],
)
def test_npy_object_dtypes_in_every_spelling_numpy_reads_are_scanned(
    marker: Path, descr: object
) -> None:
    # numpy.load(allow_pickle=True) unpickles what follows each of these headers
    result = scan(npy_with_descr(descr, pickle.dumps([evil(marker)], protocol=2)))
    assert result.format == "numpy"
    assert_flags_system(result)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, dtype=[("Offset", "<f8"), ("objects", "<i4"), ("O", "u1")]),
        np.zeros((2, 2), dtype=[(("Title O", "b"), "<f4", (3,))]),
        np.array(["a", "bc"]),
        np.array([b"O", b"x"]),
        np.array(["2024-01-01"], dtype="datetime64[ns]"),
    ],
)
def test_npy_without_objects_is_clean_whatever_its_field_names(array: np.ndarray) -> None:
    result = scan(npy_bytes(array))
    assert (result.format, result.status) == ("numpy", "clean"), result


def test_npy_with_a_broken_header_is_an_error() -> None:
    data = npy_bytes(np.arange(3.0))
    broken = data[:10] + b"{'descr': __import__('os')}".ljust(len(data) - 10)
    assert scan(broken).status == "error"


# -- safetensors -------------------------------------------------------------------------


def safetensors_bytes(header: object, data: bytes, *, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def valid_safetensors() -> bytes:
    weight = np.arange(6, dtype=np.float32).tobytes()
    bias = np.arange(2, dtype=np.float16).tobytes()
    header = {
        "__metadata__": {"format": "pt"},
        "weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "bias": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
    }
    return safetensors_bytes(header, weight + bias)


def test_valid_safetensors_is_clean() -> None:
    result = scan(valid_safetensors())
    assert (result.format, result.status, result.findings) == ("safetensors", "clean", ())


def tensor(dtype: str, shape: list[int], offsets: list[int]) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (struct.pack("<Q", 4096) + b'{"a": 1}', "runs past the end"),
        (safetensors_bytes(None, b"", raw_header=b'{"w": {"dtype": '), "not valid JSON"),
        (safetensors_bytes(None, b"", raw_header=b"{\xff\xfe}"), "not UTF-8"),
        (
            safetensors_bytes(
                {"a": tensor("F32", [2], [0, 8]), "b": tensor("F32", [2], [4, 12])}, bytes(12)
            ),
            "overlaps",
        ),
        (safetensors_bytes({"a": tensor("F32", [2], [0, 8])}, bytes(4)), "cover 8 bytes"),
        (safetensors_bytes({"a": tensor("F32", [2], [-8, 0])}, bytes(8)), "data_offsets"),
        (safetensors_bytes({"a": tensor("F32", [2], [8, 0])}, bytes(8)), "data_offsets"),
        (safetensors_bytes({"a": tensor("F32", [3], [0, 8])}, bytes(8)), "needs 12 bytes"),
        (safetensors_bytes({"a": tensor("F32", [-2], [0, 8])}, bytes(8)), "invalid shape"),
        (safetensors_bytes({"a": tensor("Q9", [2], [0, 8])}, bytes(8)), "unknown dtype"),
        (safetensors_bytes({"a": tensor("U8", [2], [4, 6])}, bytes(6)), "a gap"),
        (
            safetensors_bytes(
                None,
                bytes(8),
                raw_header=b'{"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},'
                b' "a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}',
            ),
            "duplicate key",
        ),
        (safetensors_bytes({"__metadata__": {"k": 1}}, b""), "__metadata__"),
        (struct.pack("<Q", 200_000_000) + b'{"a": 1}', "over the 100000000 limit"),
    ],
)
def test_malformed_safetensors_is_an_error(data: bytes, why: str) -> None:
    result = scan(data)
    assert result.format == "safetensors"
    assert result.status == "error"
    (finding,) = result.findings
    assert finding.kind == "malformed"
    assert why in finding.detail


# -- recognition by bytes, not names -----------------------------------------------------


def test_format_comes_from_bytes_whatever_the_file_is_called(marker: Path, tmp_path: Path) -> None:
    lying_pickle = tmp_path / "model.safetensors"
    lying_pickle.write_bytes(pickle.dumps(evil(marker)))
    lying_safetensors = tmp_path / "model.pkl"
    lying_safetensors.write_bytes(valid_safetensors())
    with lying_pickle.open("rb") as f:
        result = scan_file(f)
    assert result.format == "pickle"
    assert_flags_system(result)
    with lying_safetensors.open("rb") as f:
        assert (scan_file(f).format, scan_file(f).status) == ("safetensors", "clean")


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"", "other"),
        (b"# README\nThis model was trained on...\n", "other"),
        (b'{"architectures": ["Bert"]}', "other"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "other"),
        (b"0000000000", "other"),
        (b"channels:\n- conda-forge\ndependencies:\n- python=3.11\n", "other"),
        (b"cat\ndog\nfish\n(bird)\n", "other"),
        (b"cbuiltins\nprint\n(S'hi'\ntR\xff", "pickle"),  # it would run, then fail
        (b"x^ marks the spot\n", "other"),
        (b"\x80\x02\xff\x00" + bytes(60), "other"),  # raw weights that start like a pickle
        (pickle.dumps(list(range(50)), protocol=2)[:30], "pickle"),  # a truncated one
        (pickle.dumps([1, 2], protocol=0), "pickle"),
        (b"\x04\x22\x4d\x18" + bytes(16), "lz4"),
    ],
)
def test_sniff(data: bytes, fmt: str) -> None:
    assert sniff(data, len(data)) == fmt


def _random_bytes_with_a_zlib_header() -> bytes:
    """Random bytes (raw weights, say) that start with a valid zlib header and even give up
    a first byte when inflated: about one file in 8,000 of random bytes starts so."""
    rng = random.Random(7)
    while True:
        data = rng.randbytes(1 << 16)
        if data[0] != 0x78 or (data[0] << 8 | data[1]) % 31:
            continue
        with contextlib.suppress(zlib.error):
            zlib.decompressobj().decompress(data, 1)
            return data


def test_random_bytes_that_start_like_zlib_are_not_zlib() -> None:
    data = _random_bytes_with_a_zlib_header()
    assert sniff(data[:4096], len(data)) == "other"
    assert (scan(data).format, scan(data).status) == ("other", "clean")
    stream = zlib.compress(os.urandom(1 << 16))  # a real stream, its head cut short
    assert sniff(stream[:4096], len(stream)) == "zlib"


def test_other_files_are_clean_and_unknown_compression_is_an_error() -> None:
    assert scan(b"hello, world\n") == BlobScan("other", "clean", (), scanner_name())
    result = scan(b"\x04\x22\x4d\x18" + bytes(16))
    assert (result.format, result.status) == ("lz4", "error")
    assert scan(gzip.compress(b"just text")).status == "clean"
    assert scan(b"\x1f\x8b\x08" + b"not really gzip").status == "error"


def test_scan_blob_reads_only_the_head_of_other_files() -> None:
    data = os.urandom(1 << 20)
    data = b"\x00" + data[1:]  # not a pickle opcode, not any magic
    reads: list[tuple[int, int]] = []

    def read(start: int, end: int) -> Iterator[bytes]:
        reads.append((start, end))
        for at in range(start, end, 65536):
            yield data[at : min(end, at + 65536)]

    assert scan_blob(read, len(data)).status == "clean"
    assert reads == [(0, len(data))]  # one open; iteration stopped after the head

    def read_pickle(start: int, end: int) -> Iterator[bytes]:
        payload = pickle.dumps(CallsEval("1"))
        yield payload[start:end]

    assert scan_blob(read_pickle, len(pickle.dumps(CallsEval("1")))).status == "flagged"


def test_compressed_streams_of_every_kind(marker: Path) -> None:
    payload = pickle.dumps(evil(marker))
    for fmt, data in (
        ("gzip", gzip.compress(payload)),
        ("bz2", bz2.compress(payload)),
        ("xz", lzma.compress(payload)),
    ):
        result = scan(data)
        assert result.format == f"{fmt}+pickle"
        assert_flags_system(result)


def _short_unicode(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


_OS = b"\x80\x04" + _short_unicode("os")
_GETCWD = _short_unicode("getcwd") + b"\x93)R."


@pytest.mark.parametrize(
    "data",
    [
        _OS + b"2\x94" + b"00" + b"h\x00" + _GETCWD,  # DUP, MEMOIZE: the opcode before has no value
        _OS + _short_unicode("x") + b"0\x94" + b"0" + b"h\x00" + _GETCWD,  # MEMOIZE after a POP
        _OS + b"\x94" + b"h\x00\x94" + b"00" + b"h\x01" + _GETCWD,  # memo 1 from a BINGET
    ],
)
def test_stack_global_names_come_from_the_stack_not_the_opcodes_before_it(data: bytes) -> None:
    # an unpickler imports os.getcwd (the module name comes back from the memo); picklescan
    # takes a memo entry from the argument of the opcode before MEMOIZE, and saw 'None' or '0'
    result = scan(data)
    assert result.status == "flagged", result
    assert ("os", "getcwd", None) in dangerous(result)


@pytest.mark.parametrize(
    ("data", "module", "name"),
    [
        (b"\x80\x02ccPickle\nloads\nq\x00.", "pickle", "loads"),  # a pickle in a pickle
        (b"curllib2\nurlopen\n(S'http://127.0.0.1:9/'\ntR.", "urllib.request", "urlopen"),
        (
            b"\x80\x02" + _short_unicode("cPickle") + _short_unicode("loads") + b"\x93.",
            "pickle",
            "loads",
        ),
    ],
)
def test_python_2_names_are_judged_as_the_modules_they_import(
    data: bytes, module: str, name: str
) -> None:
    # below protocol 3 an unpickler maps Python 2 module names (fix_imports): cPickle is
    # pickle, urllib2 is urllib.request; picklescan knew neither old name
    result = scan(data)
    assert result.status == "flagged", result
    assert (module, name, None) in dangerous(result)


@pytest.mark.parametrize(
    ("module", "name", "flagged"),
    [
        ("builtins", "eval.__call__", ("builtins", "eval")),  # a prefix is dangerous
        ("posixpath", "os.getcwd", ("os", "getcwd")),  # a module reached as an attribute
        ("torch", "serialization.load", ("torch.serialization", "load")),  # a submodule
    ],
)
def test_a_dotted_name_is_judged_by_what_it_reaches(
    module: str, name: str, flagged: tuple[str, str]
) -> None:
    # from protocol 4 find_class follows a dotted name attribute by attribute:
    # builtins 'eval.__call__' is eval; picklescan matched only the whole name
    data = b"\x80\x04" + _short_unicode(module) + _short_unicode(name) + b"\x93)R."
    result = scan(data)
    assert result.status == "flagged", result
    assert (*flagged, None) in dangerous(result)


def safetensors_that_is_a_pickle(payload: bytes, strings: int) -> bytes:
    """Valid safetensors whose header length starts with b'T' (BINSTRING): an unpickler
    reads a string up to an 'S' (STRING) in a tensor name, a second one to the end of a
    header line, two EMPTY_DICTs from the header's closing braces, then tensor data:
    ``payload``."""
    length = 0x54 + 256 * strings  # BINSTRING's length is the next three bytes
    key = "a" * (strings - 5) + "S"  # BINSTRING ends at byte 5 + strings: this 'S'
    tensor = {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}

    def header(pad: int) -> bytes:
        entry = json.dumps(tensor, separators=(",", ":"))
        text = f'{{"{key}":{entry},"__metadata__":{{"x":"{"y" * pad}"\n}}}}'
        return text.encode()

    text = header(length - len(header(0)))
    assert len(text) == length
    return length.to_bytes(8, "little") + text + payload


@pytest.mark.parametrize("strings", [16, 300])  # the call within, or past, the sniffed head
def test_safetensors_that_is_also_a_pickle_is_scanned_as_one(marker: Path, strings: int) -> None:
    data = safetensors_that_is_a_pickle(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(), strings)
    result = scan(data)
    assert (result.format, result.status) == ("safetensors", "flagged"), result
    assert ("os", "system", None) in dangerous(result)


def test_safetensors_whose_header_length_reads_as_opcodes_is_still_clean() -> None:
    data = safetensors_that_is_a_pickle(b"\x00" * 16, 16)  # a string, a string, no call
    result = scan(data)
    assert (result.format, result.status) == ("safetensors", "clean"), result
