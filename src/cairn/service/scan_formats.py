"""Checking the two formats whose headers say what follows: numpy ``.npy`` and safetensors.

Pure parsing, nothing is loaded: a ``.npy`` header is a Python literal read with
``ast.literal_eval`` (as numpy reads it); a safetensors header is JSON, validated the way
the reference implementation validates it before it reads any tensor. Problems raise
``Malformed``.
"""

from __future__ import annotations

import ast
import json
from typing import IO, Any, NamedTuple

from cairn.service.scan_pickle import Malformed

SAFETENSORS_MAX_HEADER = 100_000_000  # the reference implementation's limit
NPY_MAX_HEADER = 64 * 1024
_SAFETENSORS_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def npy_header(f: IO[bytes]) -> dict[str, Any]:
    """Read a .npy header (magic, version, length, dict literal) the way numpy does."""
    prefix = read_at_most(f, 8)
    if len(prefix) < 8:
        raise Malformed("truncated magic", 0)
    major = prefix[6]
    if major not in (1, 2, 3):
        raise Malformed(f"unknown format version {major}.{prefix[7]}", 6)
    width = 2 if major == 1 else 4
    length = int.from_bytes(read_at_most(f, width), "little")
    if length > NPY_MAX_HEADER:
        raise Malformed(f"header of {length} bytes is over {NPY_MAX_HEADER}", 8)
    raw = read_at_most(f, length)
    if len(raw) < length:
        raise Malformed("truncated header", 8 + width)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)  # a literal only, as numpy reads it: nothing runs
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise Malformed(f"header is not a Python literal: {exc}", 8 + width) from None
    if not (
        isinstance(header, dict)
        and {"descr", "fortran_order", "shape"} <= header.keys()
        and isinstance(header["shape"], tuple)
        and isinstance(header["fortran_order"], bool)
    ):
        raise Malformed("header lacks descr, fortran_order or shape", 8 + width)
    return header


def npy_has_object(descr: object) -> bool:
    """Whether numpy's ``descr_to_dtype`` would make a dtype holding objects (the array
    then follows as a pickle) of a header's ``descr``, read as loosely as numpy reads it:
    a string is any dtype string (``O``, ``object``, ``i4,O``, ``(2,)O``); a tuple is a
    subarray ``(descr, shape)``; any other container is a list of fields, each any
    sequence of 2 or 3 items (``[name, descr]``, even the string ``'xO'``) whose second
    item is a descr."""
    if isinstance(descr, str):
        # dtype strings name objects only by the type code O or the type name object
        return "O" in descr or "object" in descr
    if isinstance(descr, tuple):
        return bool(descr) and npy_has_object(descr[0])
    if isinstance(descr, (list, dict, set, frozenset)):
        for field in descr:
            if not isinstance(field, (str, tuple, list, dict, set, frozenset)):
                raise Malformed(f"dtype field {field!r} is not a sequence", 0)
            items = list(field)
            if len(items) in (2, 3) and npy_has_object(items[1]):
                return True
        return False
    raise Malformed(f"dtype description {descr!r} is not one numpy reads", 0)


def check_safetensors(f: IO[bytes], size: int | None) -> None:
    read_safetensors_header(f, size)


def read_safetensors_header(f: IO[bytes], size: int | None) -> list[TensorEntry]:
    """The tensors a safetensors file's header describes, in file order, after checking
    it as the reference implementation does (``f`` at the file's start; ``size``: the
    file's, when known)."""
    prefix = read_at_most(f, 8)
    if len(prefix) < 8:
        raise Malformed("shorter than the 8-byte header length", 0)
    length = int.from_bytes(prefix, "little")
    if length > SAFETENSORS_MAX_HEADER:
        raise Malformed(f"header length {length} is over the {SAFETENSORS_MAX_HEADER} limit", 0)
    if size is not None and 8 + length > size:
        raise Malformed(f"header length {length} runs past the end of the {size}-byte file", 0)
    raw = read_at_most(f, length)
    if len(raw) < length:
        raise Malformed(f"header length {length} runs past the end of the file", 0)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"header is not UTF-8: {exc}", 8) from None
    if not text.startswith("{"):
        raise Malformed("header does not start with '{'", 8)
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"header is not valid JSON: {exc}", 8) from None
    if not isinstance(header, dict):
        raise Malformed("header is not a JSON object", 8)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise Malformed("__metadata__ must map strings to strings", 8)
    tensors = sorted(_tensor(name, info, 8 + length) for name, info in header.items())
    end = 8 + length
    for t in tensors:
        if t.begin < end:
            raise Malformed(f"tensor {t.name!r} overlaps the tensor before it", 8)
        if t.begin > end:
            raise Malformed(f"a gap in the data before tensor {t.name!r} ({t.begin} > {end})", 8)
        end = t.end
    if size is not None and end != size:
        raise Malformed(
            f"the tensors cover {end - 8 - length} bytes "
            f"but the file has {size - 8 - length} after the header",
            8,
        )
    return tensors


class TensorEntry(NamedTuple):
    """A tensor of a safetensors file; ``begin``/``end`` are offsets in the file."""

    begin: int
    end: int
    name: str
    dtype: str
    shape: tuple[int, ...]


def _tensor(name: str, info: object, data_start: int) -> TensorEntry:
    if not isinstance(info, dict):
        raise Malformed(f"tensor {name!r} is not described by an object", 8)
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _SAFETENSORS_BITS:
        raise Malformed(f"tensor {name!r} has unknown dtype {dtype!r}", 8)
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise Malformed(f"tensor {name!r} has an invalid shape {shape!r}", 8)
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_natural(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise Malformed(f"tensor {name!r} has invalid data_offsets {offsets!r}", 8)
    count = 1
    for d in shape:
        count *= d
    bits = count * _SAFETENSORS_BITS[str(dtype)]
    if bits % 8 or offsets[1] - offsets[0] != bits // 8:
        raise Malformed(
            f"tensor {name!r}: {dtype} {shape} needs {bits / 8:g} bytes, "
            f"data_offsets give {offsets[1] - offsets[0]}",
            8,
        )
    begin, end = data_start + offsets[0], data_start + offsets[1]
    return TensorEntry(begin, end, name, str(dtype), tuple(shape))


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # two readers could disagree on which one counts
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_at_most(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes of ``f``, fewer only at its end (a raw stream may return less)."""
    parts, left = [], n
    while left > 0:
        data = f.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
