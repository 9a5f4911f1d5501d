"""Reading a pickle stream without running it: the opcode walker behind the pickle scan.

picklescan decides which imports in a pickle are dangerous, but it holds every opcode
and argument of a stream in memory (a pickle with a 1 GiB array costs 1 GiB) and stops
at the first thing that does not parse, such as the raw numpy array bytes joblib writes
in the middle of its pickle stream. So the stream is walked here first, once, opcode by
opcode (pickletools' own argument readers decode every argument), and a *skeleton* is
written for picklescan to judge:

- the same opcodes in the same order, except that every import (``GLOBAL``, ``INST``,
  ``STACK_GLOBAL``) is written as the two names the walker resolved for it followed by
  ``STACK_GLOBAL``: picklescan reads a ``STACK_GLOBAL``'s names from the opcodes just
  before it and its own idea of the memo (the argument of the opcode before a ``PUT``,
  not the value on the stack), which a stream can make differ from what an unpickler
  imports;
- byte payloads over ``MAX_INLINE`` replaced by empty ones, and longer strings by the
  string ``unknown``, which picklescan treats as a dangerous import if it is used as one;
- no ``FRAME`` opcodes (framing carries no meaning, and picklescan's memo bookkeeping
  counts a frame as a value);
- joblib's numpy arrays stepped over: after a ``NumpyArrayWrapper`` is built, its shape
  and dtype (literal values in the stream) say how many raw bytes follow. They are
  skipped only when a plain unpickler could not run them either: a joblib alignment
  byte (never an opcode) comes first, or the bytes do not read as opcodes that import
  something and call it;
- every further pickle in the file (a file may hold several), and data after the last
  complete pickle only if it reads as opcodes that import something.

Nothing here builds an object from the stream: values are tracked symbolically (ints,
short strings, tuples, dicts; everything else is opaque), only to read joblib's array
headers and to tell whether two strings are about to be imported.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pickle import decode_long as _decode_long
from typing import IO, Any

MAX_INLINE = 64 * 1024  # argument bytes kept in the skeleton (and in memory) per opcode
MAX_OPS = 2_000_000  # opcodes in one file: beyond this the file is too large to scan
PROBE_WINDOW = 64 * 1024  # bytes read when checking whether data reads as opcodes
TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy format)
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE"}
    | {"BINUNICODE8"}
)
_IMPORT_OPS = frozenset({"GLOBAL", "INST", "STACK_GLOBAL"})
_BY_CODE = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_CODES = {op.name: op.code.encode("latin-1") for op in pickletools.opcodes}
_READ_AHEAD = 1 << 16
_UNKNOWN = "unknown"  # what picklescan calls an import it cannot name: dangerous


class Malformed(Exception):
    """The stream stops being a pickle at ``offset``."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class TooLarge(Exception):
    """More opcodes than ``MAX_OPS``."""


@dataclass
class WalkResult:
    """What walking a stream found (the skeleton went to the writer given)."""

    pickles: int = 0  # complete top-level pickles
    error: Malformed | None = None  # set when the first pickle does not parse
    notes: list[str] = field(default_factory=list)  # e.g. data after the last pickle
    joblib_arrays: int = 0
    torch_legacy: bool = False
    ops: int = 0
    # further skeletons to judge on their own: pickles nested in joblib's stream (object
    # arrays) and raw bytes that read as importing opcodes; each ends in STOP, at offset 0
    units: list[IO[bytes]] = field(default_factory=list)
    first_calls: int = 0  # calls of something imported in the first pickle

    def discard_units(self) -> None:
        for unit in self.units:
            unit.close()
        self.units.clear()


class _Opaque:
    """A value the walker does not model (lists, objects it would build, buffers)."""

    __slots__ = ()


OPAQUE = _Opaque()
_MARK = object()


@dataclass(frozen=True, slots=True)
class _Global:
    module: str
    name: str


@dataclass(slots=True)
class _Obj:
    """An object the stream would build by calling ``callable`` (never called here)."""

    callable: Any
    args: Any
    state: Any = None


@dataclass(frozen=True, slots=True)
class _Big:
    """A payload too large to keep: only its size is known."""

    size: int


class _Source:
    """A sequential reader that knows its offset and can skip without keeping bytes.

    It reads ahead into a buffer of its own (opcodes are read a byte or a few at a time)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.buf = b""
        self.i = 0  # position in buf
        self.base = 0  # offset of buf[0] in the stream

    @property
    def pos(self) -> int:
        return self.base + self.i

    def _fill(self, n: int) -> None:
        """Make ``n`` bytes available from ``i`` if the stream has them."""
        parts = [self.buf[self.i :]]
        have = len(parts[0])
        self.base += self.i
        while have < n:
            data = self.f.read(max(n - have, _READ_AHEAD))
            if not data:
                break
            parts.append(data)
            have += len(data)
        self.buf, self.i = b"".join(parts), 0

    def read(self, n: int) -> bytes:
        i = self.i
        if i + n > len(self.buf):
            self._fill(n)
            i = 0
        data = self.buf[i : i + n]
        self.i = i + len(data)
        return data

    def exact(self, n: int, what: str) -> bytes:
        start = self.pos
        data = self.read(n)
        if len(data) != n:
            raise Malformed(f"truncated: {what} needs {n} bytes, {len(data)} left", start)
        return data

    def skip(self, n: int, what: str) -> None:
        """Step over ``n`` bytes without keeping them."""
        start = self.pos
        buffered = min(n, len(self.buf) - self.i)
        self.i += buffered
        left = n - buffered
        while left > 0:  # the buffer is used up: read past it directly
            data = self.f.read(min(left, 1 << 20))
            if not data:
                raise Malformed(f"truncated: {what} needs {n} bytes, {n - left} left", start)
            left -= len(data)
            self.base += len(data)

    def line(self) -> bytes | None:
        """The next line with its newline, or None when longer than ``MAX_INLINE``
        (skipped up to its newline)."""
        start = self.pos
        end = self.buf.find(b"\n", self.i, self.i + MAX_INLINE + 1)
        if end < 0:
            self._fill(MAX_INLINE + 1)
            end = self.buf.find(b"\n", 0, MAX_INLINE + 1)
        if end >= 0:
            data = self.buf[self.i : end + 1]
            self.i = end + 1
            return data
        if len(self.buf) - self.i <= MAX_INLINE:
            raise Malformed("truncated: a line argument has no newline", start)
        while True:  # too long: skip to the newline
            end = self.buf.find(b"\n", self.i)
            if end >= 0:
                self.i = end + 1
                return None
            self.skip(len(self.buf) - self.i, "a line")
            self._fill(1)
            if self.i >= len(self.buf):
                raise Malformed("truncated: a line argument has no newline", start)


def _signed(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _unsigned(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def _utf8(raw: bytes) -> str:
    return str(raw, "utf-8", "surrogatepass")


# Arguments decoded here directly (the same results as pickletools' readers, without a
# file object per argument); ``raw`` is the argument without its length prefix.
_DECODE: dict[str, Callable[[bytes], Any]] = {
    "uint1": _unsigned,
    "uint2": _unsigned,
    "uint4": _unsigned,
    "uint8": _unsigned,
    "int4": _signed,
    "float8": lambda raw: struct.unpack(">d", raw)[0],
    "long1": _decode_long,
    "long4": _decode_long,
    "string1": lambda raw: raw.decode("latin-1"),
    "string4": lambda raw: raw.decode("latin-1"),
    "bytes1": bytes,
    "bytes4": bytes,
    "bytes8": bytes,
    "bytearray8": lambda raw: None,  # pushed as an opaque value anyway
    "unicodestring1": _utf8,
    "unicodestring4": _utf8,
    "unicodestring8": _utf8,
}
_PREFIX = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}


def _placeholder(op: pickletools.OpcodeInfo, size: int, start: int) -> tuple[bytes, Any]:
    """What the skeleton says instead of an argument too large to keep, and its value."""
    name = op.name
    if name in ("GLOBAL", "INST"):  # an import nobody can name is dangerous
        return op.code.encode("latin-1") + b"unknown\nunknown\n", (_UNKNOWN, _UNKNOWN)
    if name in _STRING_OPS:
        return b"\x8c\x07" + _UNKNOWN.encode(), _UNKNOWN
    if name == "PERSID":
        return b"P" + _UNKNOWN.encode() + b"\n", _UNKNOWN
    if name in ("LONG4", "LONG"):
        return b"\x8a\x00", OPAQUE
    if name in ("BINBYTES", "BINBYTES8", "BYTEARRAY8"):
        return b"C\x00", _Big(size)
    raise Malformed(f"{name} argument of over {MAX_INLINE} bytes", start)


class Walker:
    """Walks one stream; see the module docstring. Use ``walk``."""

    def __init__(self, src: IO[bytes], skeleton: IO[bytes]) -> None:
        self.src = _Source(src)
        self.out = skeleton
        self.result = WalkResult()
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.nested: list[tuple[list[Any], list[int], dict[int, Any], IO[bytes], int]] = []
        self.proto = 0  # the unpickler's protocol: 0 until a PROTO opcode says otherwise
        self.first_value: Any = None
        self.imports = 0  # import-shaped opcodes seen in the current segment
        self.calls = 0  # opcodes that call something already imported
        self.underflow = False
        self._ops: dict[str, Callable[[Any], None]] = {
            name[3:].upper(): getattr(self, name) for name in dir(self) if name.startswith("op_")
        }

    # -- driving ------------------------------------------------------------------------
    def walk(self) -> WalkResult:
        while True:
            start = self.src.pos
            first = self.src.read(1)
            if not first:
                return self.result
            if self.result.pickles == 0:
                try:
                    self._pickle(first)
                except Malformed as exc:
                    self.result.error = exc
                    self.result.first_calls = self.calls
                    while self.nested:  # what was read of a nested pickle is judged too
                        self._leave_nested()
                    self._end_segment(keep=True)
                    return self.result
                self._end_segment(keep=True)
                self.result.first_calls = self.calls
                self.result.torch_legacy = self.first_value == TORCH_MAGIC
                continue
            if self.result.torch_legacy and self.result.pickles >= 5:
                # torch.load reads five pickles, then raw storage bytes
                self.result.notes.append(f"tensor storage data from byte {start}")
                return self.result
            mark = self.out.tell()
            try:
                self._pickle(first)
            except Malformed as exc:
                keep = self.imports > 0
                self._end_segment(keep=keep, mark=mark)
                self.result.notes.append(
                    f"data after the last complete pickle, from byte {start}, does not "
                    f"parse ({exc}); "
                    + ("its opcodes up to there were scanned" if keep else "it imports nothing")
                )
                return self.result
            self._end_segment(keep=True)

    def _end_segment(self, *, keep: bool, mark: int | None = None) -> None:
        if not keep and mark is not None:
            self.out.seek(mark)
            self.out.truncate()
            return
        self.out.write(b".")  # every skeleton segment ends in STOP: picklescan reads it whole

    def _pickle(self, first: bytes) -> None:
        """Walk opcodes from ``first`` until the top-level STOP."""
        self.stack, self.marks, self.memo, self.nested = [], [], {}, []
        self.imports = self.calls = self.proto = 0
        code = first
        while True:
            if self._op(code):
                self.result.pickles += 1
                return
            code = self.src.read(1)
            if not code:
                raise Malformed("truncated: the pickle ends before its STOP opcode", self.src.pos)

    def _op(self, code: bytes) -> bool:
        """Walk one opcode; True at the top-level STOP."""
        src = self.src
        start = src.base + src.i - 1
        op = _BY_CODE.get(code)
        if op is None:
            raise Malformed(f"byte {code!r} is not a pickle opcode", start)
        result = self.result
        result.ops += 1
        if result.ops > MAX_OPS:
            raise TooLarge(f"more than {MAX_OPS:,} pickle opcodes")
        name = op.name
        raw, value = (_CODES[name], None) if op.arg is None else self._argument(op, start)
        if name == "STOP":
            if self.nested:  # the end of a pickle nested in joblib's stream
                self._leave_nested()
                return False
            if result.pickles == 0 and self.first_value is None and self.stack:
                self.first_value = self.stack[-1]
            return True  # the segment's STOP is written by whoever ends the segment
        if name != "FRAME" and name not in _IMPORT_OPS:  # imports are written by name
            self.out.write(raw)
        self._ops[name](value)
        return False

    def _argument(self, op: pickletools.OpcodeInfo, start: int) -> tuple[bytes, Any]:
        """The opcode with its argument as the skeleton keeps it, and the argument's value."""
        code = _CODES[op.name]
        arg = op.arg
        if arg is None:
            return code, None
        n = arg.n
        prefix = b""
        if n >= 0:
            raw = self.src.exact(n, op.name)
        elif n == pickletools.UP_TO_NEWLINE:
            lines = 2 if arg.name == "stringnl_noescape_pair" else 1
            parts = [self.src.line() for _ in range(lines)]
            if any(p is None for p in parts):
                return _placeholder(op, MAX_INLINE, start)
            raw = b"".join(p for p in parts if p is not None)
        else:
            prefix = self.src.exact(_PREFIX[n], op.name)
            size = int.from_bytes(prefix, "little", signed=n == pickletools.TAKEN_FROM_ARGUMENT4)
            if size < 0:
                raise Malformed(f"{op.name} has a negative length {size}", start)
            if size > MAX_INLINE:
                self.src.skip(size, op.name)
                return _placeholder(op, size, start)
            raw = self.src.exact(size, op.name)
        decode = _DECODE.get(arg.name)
        try:
            value = arg.reader(io.BytesIO(prefix + raw)) if decode is None else decode(raw)
        except Exception as exc:  # pickletools raises ValueError; decoding UnicodeError
            raise Malformed(f"bad {op.name} argument: {exc}", start) from None
        return code + prefix + raw, value

    # -- the symbolic stack ---------------------------------------------------------------
    def _push(self, value: Any) -> None:
        self.stack.append(value)

    def _pop(self) -> Any:
        if len(self.stack) > (self.marks[-1] if self.marks else 0):
            return self.stack.pop()
        self.underflow = True
        return OPAQUE

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            self.underflow = True
            items, self.stack = self.stack, []
            return items
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items

    def _top(self) -> Any:
        return self.stack[-1] if self.stack else OPAQUE

    def op_mark(self, _: Any) -> None:
        self.marks.append(len(self.stack))

    def op_pop(self, _: Any) -> None:
        if self.stack and self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()  # POP of a mark, as the C unpickler does
        else:
            self._pop()

    def op_pop_mark(self, _: Any) -> None:
        self._pop_mark()

    def op_dup(self, _: Any) -> None:
        self._push(self._top())

    def _value(self, value: Any) -> None:
        if isinstance(value, (str, bytes)) and len(value) > 1024:
            value = _Big(len(value))
        self._push(value)

    op_int = op_binint = op_binint1 = op_binint2 = op_long = op_long1 = op_long4 = _value
    op_float = op_binfloat = _value
    op_string = op_binstring = op_short_binstring = _value
    op_unicode = op_binunicode = op_short_binunicode = op_binunicode8 = _value
    op_binbytes = op_short_binbytes = op_binbytes8 = _value

    def op_bytearray8(self, _: Any) -> None:
        self._push(OPAQUE)

    def op_none(self, _: Any) -> None:
        self._push(None)

    def op_newtrue(self, _: Any) -> None:
        self._push(True)

    def op_newfalse(self, _: Any) -> None:
        self._push(False)

    def op_next_buffer(self, _: Any) -> None:
        self._push(OPAQUE)

    def op_readonly_buffer(self, _: Any) -> None:
        pass

    def op_empty_list(self, _: Any) -> None:
        self._push(OPAQUE)  # lists never matter here: their items are dropped

    op_empty_set = op_empty_list

    def op_list(self, _: Any) -> None:
        self._pop_mark()
        self._push(OPAQUE)

    op_frozenset = op_list

    def op_append(self, _: Any) -> None:
        self._pop()

    def op_appends(self, _: Any) -> None:
        self._pop_mark()

    op_additems = op_appends

    def op_empty_tuple(self, _: Any) -> None:
        self._push(())

    def op_tuple(self, _: Any) -> None:
        self._push(tuple(self._pop_mark()))

    def op_tuple1(self, _: Any) -> None:
        self._push((self._pop(),))

    def op_tuple2(self, _: Any) -> None:
        b, a = self._pop(), self._pop()
        self._push((a, b))

    def op_tuple3(self, _: Any) -> None:
        c, b, a = self._pop(), self._pop(), self._pop()
        self._push((a, b, c))

    def op_empty_dict(self, _: Any) -> None:
        self._push({})

    def op_dict(self, _: Any) -> None:
        items = self._pop_mark()
        target: dict[Any, Any] = {}
        self._set_items(target, items)
        self._push(target)

    def op_setitem(self, _: Any) -> None:
        value, key = self._pop(), self._pop()
        self._set_items(self._top(), [key, value])

    def op_setitems(self, _: Any) -> None:
        items = self._pop_mark()
        self._set_items(self._top(), items)

    @staticmethod
    def _set_items(target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict):
            return
        for key, value in zip(items[::2], items[1::2], strict=False):
            if isinstance(key, (str, int)) and len(target) < 64:
                target[key] = value

    def _import(self, module: Any, name: Any) -> _Global | _Opaque:
        """What an unpickler imports, written to the skeleton as two literal strings and a
        STACK_GLOBAL: picklescan then judges the names the walker resolved (through the
        memo, say), not its own guess from the opcodes that precede the import. A name
        that is not a string (or too long to keep) is ``unknown``: dangerous (and no
        import: an unpickler stops there)."""
        named = isinstance(module, str) and isinstance(name, str)
        if named and self.proto < 3:  # Unpickler.find_class(fix_imports=True), as pickle does
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if not named:
            self._write_import(_UNKNOWN, _UNKNOWN)
            return OPAQUE
        if self.proto >= 4 and "." in name:  # find_class follows the dotted path
            for steps in _dotted_steps(module, name):
                self._write_import(*steps)
                self.out.write(_CODES["POP"])
        self._write_import(module, name)
        self.imports += 1
        return _Global(module, name)

    def _write_import(self, module: str, name: str) -> None:
        for text in (module, name):
            encoded = text.encode("utf-8", "surrogatepass")
            self.out.write(_CODES["BINUNICODE"] + len(encoded).to_bytes(4, "little") + encoded)
        self.out.write(_CODES["STACK_GLOBAL"])

    def op_global(self, value: Any) -> None:
        module, name = value.split(" ", 1) if isinstance(value, str) else value
        self._push(self._import(module, name))

    def op_stack_global(self, _: Any) -> None:
        name, module = self._pop(), self._pop()
        self.out.write(_CODES["POP"] * 2)  # the two strings, named again by _import
        self._push(self._import(module, name))

    def op_inst(self, value: Any) -> None:
        module, name = value.split(" ", 1) if isinstance(value, str) else value
        cls = self._import(module, name)
        self.out.write(_CODES["POP"] + _CODES["POP_MARK"] + _CODES["NONE"])  # INST's effect
        self.calls += 1
        self._push(_Obj(cls, tuple(self._pop_mark())))

    def _call(self) -> None:
        if self.imports:
            self.calls += 1

    def op_obj(self, _: Any) -> None:
        self._call()
        items = self._pop_mark()
        self._push(_Obj(items[0], tuple(items[1:])) if items else OPAQUE)

    def op_newobj(self, _: Any) -> None:
        self._call()
        args, cls = self._pop(), self._pop()
        self._push(_Obj(cls, args))

    def op_newobj_ex(self, _: Any) -> None:
        self._call()
        _kwargs, args, cls = self._pop(), self._pop(), self._pop()
        self._push(_Obj(cls, args))

    def op_reduce(self, _: Any) -> None:
        self._call()
        args, fn = self._pop(), self._pop()
        self._push(_Obj(fn, args))

    def op_build(self, _: Any) -> None:
        self._call()
        state = self._pop()
        target = self._top()
        if isinstance(target, _Obj):
            target.state = state
            if _wrapper_class(target) == _JOBLIB_WRAPPER:
                self._joblib_array(target)

    def op_persid(self, _: Any) -> None:
        self._push(OPAQUE)

    def op_binpersid(self, _: Any) -> None:
        self._pop()
        self._push(OPAQUE)

    def op_ext1(self, _: Any) -> None:
        self._push(OPAQUE)

    op_ext2 = op_ext4 = op_ext1

    def op_put(self, index: Any) -> None:
        self.memo[int(index)] = self._top()

    op_binput = op_long_binput = op_put

    def op_memoize(self, _: Any) -> None:
        self.memo[len(self.memo)] = self._top()

    def op_get(self, index: Any) -> None:
        self._push(self.memo.get(int(index), OPAQUE))

    op_binget = op_long_binget = op_get

    def op_proto(self, value: Any) -> None:
        if not 0 <= int(value) <= 5:
            raise Malformed(f"unsupported pickle protocol {value}", self.src.pos - 2)
        self.proto = int(value)

    def op_frame(self, _: Any) -> None:
        pass

    # -- joblib ----------------------------------------------------------------------------
    def _joblib_array(self, wrapper: _Obj) -> None:
        """Step over the array bytes joblib writes right after a NumpyArrayWrapper."""
        state = wrapper.state
        layout = _array_layout(state) if isinstance(state, dict) else None
        if layout is None:
            raise Malformed(
                "a joblib NumpyArrayWrapper whose shape or dtype is not literal data; "
                "the bytes after it cannot be located",
                self.src.pos,
            )
        nbytes, has_object = layout
        if has_object:  # the array follows as a nested pickle: walk it as a unit of its own
            self.nested.append((self.stack, self.marks, self.memo, self.out, self.proto))
            self.stack, self.marks, self.memo, self.proto = [], [], {}, 0  # a new Unpickler
            self.out = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 (a unit)
            self.result.joblib_arrays += 1
            return
        start = self.src.pos
        prefix = b""
        if isinstance(state.get("numpy_array_alignment_bytes"), int):
            length = self.src.exact(1, "a joblib alignment byte")  # joblib reads this many
            prefix = length + self.src.exact(length[0], "joblib alignment padding")
        head = self.src.exact(min(PROBE_WINDOW, nbytes), "a joblib numpy array")
        region = prefix + head
        if region[:1] in _BY_CODE:  # a plain unpickler would read on here: does it import?
            self._probe(region[:PROBE_WINDOW], start)
        if not prefix:
            self.result.notes.append(
                f"joblib array at byte {start} has no alignment byte (joblib < 1.2): a plain "
                f"unpickler would read its bytes as opcodes; the first {PROBE_WINDOW // 1024} "
                "KiB were checked for imports"
            )
        self.src.skip(nbytes - len(head), "a joblib numpy array")
        self.result.joblib_arrays += 1

    def discard(self) -> None:
        """Close the further skeletons (units, and nested ones still being written)."""
        for unit in self.result.units:
            unit.close()
        while self.nested:
            self.out.close()
            self.stack, self.marks, self.memo, self.out, self.proto = self.nested.pop()

    def _leave_nested(self) -> None:
        unit = self.out
        unit.write(b".")
        unit.seek(0)
        self.result.units.append(unit)
        self.stack, self.marks, self.memo, self.out, self.proto = self.nested.pop()

    def _probe(self, data: bytes, start: int) -> None:
        """If ``data`` (which a plain unpickler would read as opcodes) imports something and
        calls it, judge those opcodes as a pickle of their own."""
        found = probe(data, self.memo)
        if found.calls:
            self.result.units.append(io.BytesIO(found.skeleton + b"."))
            self.result.notes.append(
                f"raw array bytes at byte {start} read as pickle opcodes that import; scanned"
            )


def _dotted_steps(module: str, name: str) -> list[tuple[str, str]]:
    """What a dotted name (``eval.__call__``, ``os.system`` in ``posixpath``) reaches on
    its way, as imports picklescan can judge: each prefix of the path in ``module``
    (``builtins.eval``), each step as a submodule (``posixpath.os`` → ``system``), and
    each step as the module an attribute of that name usually is (``os.system``)."""
    parts = name.split(".")
    steps = [(module, ".".join(parts[:i])) for i in range(1, len(parts))]
    for i in range(1, len(parts)):
        steps.append((".".join([module, *parts[:i]]), parts[i]))
        steps.append((parts[i - 1], parts[i]))
    return steps


def _wrapper_class(obj: _Obj) -> tuple[str, str] | None:
    fn = obj.callable
    if isinstance(fn, _Global) and (fn.module, fn.name) == ("copyreg", "_reconstructor"):
        fn = obj.args[0] if isinstance(obj.args, tuple) and obj.args else None
    if isinstance(fn, _Global):
        return fn.module, fn.name
    return None


def _array_layout(state: dict[Any, Any]) -> tuple[int, bool] | None:
    """(bytes of array data, whether the dtype holds objects) from a wrapper's state."""
    shape, dtype = state.get("shape"), state.get("dtype")
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return None
    if not isinstance(dtype, _Obj) or dtype.callable != _Global("numpy", "dtype"):
        return None
    args, dstate = dtype.args, dtype.state
    if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
        return None
    if not (isinstance(dstate, tuple) and len(dstate) >= 8):
        return None
    flags, elsize = dstate[7], dstate[5]  # (version, order, subarray, names, fields,
    # elsize, alignment, flags[, metadata]) as numpy.dtype.__reduce__ gives it
    if not isinstance(flags, int) or not isinstance(elsize, int):
        return None
    if flags & 1:  # NPY_ITEM_HASOBJECT
        return 0, True
    if elsize <= 0:
        digits = "".join(c for c in args[0] if c.isdigit())
        if not digits:
            return None
        elsize = int(digits)
    count = 1
    for d in shape:
        count *= d
    return count * elsize, False


@dataclass
class Probe:
    ops: int = 0
    imports: int = 0
    calls: int = 0  # calls of something imported: what running code takes
    skeleton: bytes = b""
    clean_to_end: bool = False  # every byte read as opcodes, no STOP, no error
    stopped: bool = False  # reached a STOP
    error: str | None = None


def probe(data: bytes, memo: dict[int, Any] | None = None, *, at_eof: bool = True) -> Probe:
    """Read ``data`` as pickle opcodes until the first error or STOP (nothing kept beyond
    ``data``): how many opcodes, whether any imports, and the skeleton of those opcodes.

    A stack underflow counts as an error (a real unpickler stops there)."""
    out = io.BytesIO()
    walker = Walker(io.BytesIO(data), out)
    walker.memo = dict(memo or {})
    result = Probe()
    try:
        while True:
            code = walker.src.read(1)
            if not code:
                result.clean_to_end = True
                break
            if walker._op(code):
                result.stopped = True
                break
            if walker.underflow:
                result.error = "stack underflow"
                break
    except Malformed as exc:
        if not at_eof and str(exc).startswith("truncated"):
            result.clean_to_end = True
        else:
            result.error = str(exc)
    except TooLarge:
        result.error = "too many opcodes"
    finally:
        walker.discard()
    result.ops = walker.result.ops
    result.imports = walker.imports
    result.calls = walker.calls
    result.skeleton = out.getvalue()
    return result


def walk(src: IO[bytes], skeleton: IO[bytes]) -> WalkResult:
    """Walk the pickle stream(s) in ``src`` from its current position, writing the
    skeleton to ``skeleton``. Raises ``TooLarge``; a stream that stops parsing is
    reported in ``WalkResult.error`` (first pickle) or ``notes`` (later data)."""
    walker = Walker(src, skeleton)
    try:
        return walker.walk()
    except BaseException:
        walker.discard()
        raise
