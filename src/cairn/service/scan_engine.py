"""Unsafe-file scanning: what a blob's bytes are and whether they import something dangerous.

Pure: no database, no blob store. The service hands over a way to read a blob's bytes
(``scan_blob``) or an open file (``scan_file``) and gets back a frozen ``BlobScan``:
its format, ``clean`` / ``flagged`` / ``error``, and the findings.

- A format is recognised by its bytes, never by its name: zip (``PK\\x03\\x04``; a torch
  archive when it holds a ``data.pkl``), numpy ``.npy`` (``\\x93NUMPY``), pickle
  (``\\x80`` + protocol 2-5, or protocol 0/1 opcodes that parse), safetensors (an 8-byte
  little-endian header length then ``{``), tar, and gzip / bz2 / xz / lzma / zlib streams,
  which are decompressed and sniffed again (joblib's ``compress=``). Anything else is
  ``other`` and ``clean``: it is not a format that runs code when loaded.
- Pickle streams (plain, joblib, legacy torch, inside zips and tars, object arrays in
  ``.npy``) are walked without being run (``scan_pickle``) and judged by picklescan:
  ``flagged`` when it names a dangerous import (``os.system``, ``builtins.eval``,
  ``subprocess.*`` …). Imports it does not know are reported as ``suspicious_global``.
- safetensors headers are validated as the reference implementation does: header size
  limit, JSON object, known dtypes, shapes that match their byte ranges, ranges that
  neither overlap nor leave gaps and that end exactly at the end of the file. A header
  length whose bytes read as pickle opcodes gets the file walked as a pickle too.
- ``error``: the bytes claim a format and do not parse, or could not be inspected (7z,
  lz4, encrypted zip members, too large, too deeply nested). Fail closed.

Memory stays bounded whatever the file size: pickles are streamed (large payloads are
skipped, not read into memory), safetensors headers are capped at 100 MB, and archives and
compressed streams are spooled to temporary files (``TMPDIR``), within ``MAX_EXPANDED``.

A scanner is a blocklist. ``clean`` means nothing known to be dangerous was found; it is
not a promise that loading the file is safe, and nothing here ever loads it.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import lzma
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version as _dist_version
from typing import IO, Any

from picklescan.relaxed_zipfile import RelaxedZipFile  # type: ignore[import-untyped]
from picklescan.scanner import SafetyLevel, scan_pickle_bytes  # type: ignore[import-untyped]

from cairn.domain.scans import CLEAN, ERROR, FLAGGED, BlobScan, Finding
from cairn.errors import CairnError
from cairn.service.scan_formats import (
    check_safetensors,
    npy_has_object,
    npy_header,
    read_at_most,
)
from cairn.service.scan_pickle import Malformed, TooLarge, probe, walk

ENGINE_VERSION = "cairn-7"  # bump when the engine's verdicts change: blobs are re-scanned
HEAD_BYTES = 64 * 1024  # what sniffing reads
MAX_DEPTH = 4  # containers inside containers
MAX_MEMBERS = 100_000  # per archive
MAX_EXPANDED = 16 << 30  # bytes decompressed or extracted from archives, per blob
MAX_FINDINGS = 200  # kept per blob, most severe first
_CHUNK = 1 << 20

Opener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
_COMPRESSED = ("gzip", "bz2", "xz", "lzma", "zlib")
HEADERLESS_PICKLE = "pickle?"  # protocol 0/1 opcodes, no header: confirmed by walking
_KIND_ORDER = {"dangerous_global": 0, "malformed": 1, "unscannable": 2, "suspicious_global": 3}


@functools.cache
def scanner_name() -> str:
    """Names the scanner and its rules: a scan by another name is stale (re-scanned)."""
    return f"picklescan-{_dist_version('picklescan')}/{ENGINE_VERSION}"


# -- recognising bytes ---------------------------------------------------------------------


def sniff(head: bytes, size: int | None = None) -> str:
    """The format the leading bytes of a file claim (``other`` when none).

    ``head`` is the first ``HEAD_BYTES`` bytes (or the whole file when shorter); ``size``
    the file's size when known."""
    fmt = _sniff(head, size)
    return "pickle" if fmt == HEADERLESS_PICKLE else fmt


def _sniff(head: bytes, size: int | None) -> str:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5 and _pickle_header(head, size):
        return "pickle"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"BZh") and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):  # lzma "alone" (joblib's compress="lzma")
        return "lzma"
    if (
        len(head) >= 2
        and head[0] == 0x78
        and (head[0] << 8 | head[1]) % 31 == 0
        and _inflates(head)
    ):
        return "zlib"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 32:
        return "safetensors"
    if head[257:262] == b"ustar":  # a tar's first bytes are a member's name: any text
        return HEADERLESS_PICKLE if probe(head).calls else "tar"
    if head and _reads_as_pickle(head, at_eof=size is not None and size <= len(head)):
        return HEADERLESS_PICKLE
    return "other"


def _pickle_header(head: bytes, size: int | None) -> bool:
    """``\x80`` and a protocol number: a pickle, unless the opcodes after it break at once
    without having called anything (bytes of some other kind that start that way)."""
    found = probe(head, at_eof=size is not None and size <= len(head))
    if found.calls or found.error is None or found.ops >= 4:
        return True
    return found.error.startswith("truncated")


def _inflates(head: bytes) -> bool:
    """A zlib header is two bytes that one file in about 8,000 of random bytes (weights,
    say) starts with: does what follows inflate? All of the first 4 KiB must (output
    bounded at 1 MiB); random bytes break well before that, a real stream cut short
    does not."""
    try:
        zlib.decompressobj().decompress(head[:4096], 1 << 20)
    except zlib.error:
        return False
    return True


def _reads_as_pickle(head: bytes, *, at_eof: bool) -> bool:
    """Protocol 0 and 1 pickles have no magic: do the bytes read as pickle opcodes?

    Yes when they import and call something before any error (an unpickler runs that far),
    end in a STOP, or still parse where the sniffed bytes end (a first line longer than
    them, say): then the whole file is walked, and is a pickle only if it parses or calls.
    """
    found = probe(head, at_eof=at_eof)
    if found.calls or found.clean_to_end:
        return True
    return found.stopped and found.error is None and found.ops >= 2


# -- entry points --------------------------------------------------------------------------


def scan_blob(read: Callable[[int, int], Iterable[bytes]], size: int) -> BlobScan:
    """Scan a blob of ``size`` bytes; ``read(start, end)`` yields its bytes ``[start, end)``.

    Errors raised by ``read`` (the store's) propagate; anything wrong with the bytes is a
    finding."""

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        raw = ChunkReader(read(0, size))
        with io.BufferedReader(raw, _CHUNK) as f:
            yield f

    return _run(opener, size, None)


def scan_file(f: IO[bytes], size: int | None = None) -> BlobScan:
    """Scan a seekable binary file from its start."""

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        f.seek(0)
        yield f

    return _run(opener, size, f)


def _run(opener: Opener, size: int | None, seekable: IO[bytes] | None) -> BlobScan:
    scan = _Scan()
    try:
        fmt = scan.source(opener, size, None, 0, seekable)
    except CairnError:
        raise
    except Exception as exc:  # hostile input must not take the scanner down: fail closed
        fmt = scan.format or "other"
        scan.add("unscannable", detail=f"the scanner failed: {type(exc).__name__}: {exc}")
    return scan.result(fmt)


# -- one scan ------------------------------------------------------------------------------


class _Scan:
    def __init__(self) -> None:
        self.findings: dict[tuple[str, str | None, str | None, str | None, str], None] = {}
        self.expanded = 0
        self.format: str | None = None

    def add(
        self,
        kind: str,
        *,
        module: str | None = None,
        name: str | None = None,
        member: str | None = None,
        detail: str = "",
    ) -> None:
        self.findings[(kind, module, name, member, detail[:500])] = None

    def result(self, fmt: str) -> BlobScan:
        kinds = {key[0] for key in self.findings}
        if "dangerous_global" in kinds:
            status = FLAGGED
        elif kinds & {"malformed", "unscannable"}:
            status = ERROR
        else:
            status = CLEAN
        ordered = sorted(
            self.findings,
            key=lambda k: (_KIND_ORDER.get(k[0], 9), k[3] or "", k[1] or "", k[2] or "", k[4]),
        )
        findings = [Finding(k, module=m, name=n, member=mb, detail=d) for k, m, n, mb, d in ordered]
        if len(findings) > MAX_FINDINGS:
            dropped = len(findings) - MAX_FINDINGS + 1
            findings = findings[: MAX_FINDINGS - 1]
            findings.append(Finding("note", detail=f"{dropped} more findings not kept"))
        return BlobScan(format=fmt, status=status, findings=tuple(findings), scanner=scanner_name())

    def charge(self, nbytes: int, member: str | None) -> bool:
        """Count bytes extracted or decompressed; False (and a finding) past the budget."""
        self.expanded += nbytes
        if self.expanded <= MAX_EXPANDED:
            return True
        self.add(
            "unscannable",
            member=member,
            detail=f"more than {MAX_EXPANDED >> 30} GiB to decompress or extract; not inspected",
        )
        return False

    # -- dispatch by format ----------------------------------------------------------------
    def source(
        self,
        opener: Opener,
        size: int | None,
        member: str | None,
        depth: int,
        seekable: IO[bytes] | None = None,
    ) -> str:
        with opener() as f:
            head = read_at_most(f, HEAD_BYTES)
        fmt = _sniff(head, size)
        if depth == 0:
            self.format = fmt
        if fmt == "other":
            return fmt
        if fmt in ("pickle", HEADERLESS_PICKLE):
            with opener() as f:
                return self.pickle(f, member, headerless=fmt == HEADERLESS_PICKLE)
        if fmt == "numpy":
            with opener() as f:
                return self.numpy(f, member)
        if fmt == "safetensors":
            with opener() as f:
                self.safetensors(f, size, member)
            # its first bytes are a header length, which pickle.load / torch.load read as
            # opcodes: a file can be valid safetensors and a pickle that runs code
            if _reads_as_pickle(head, at_eof=size is not None and size <= len(head)):
                with opener() as f:
                    self.pickle(f, member, headerless=True)
            return fmt
        if fmt in ("lz4", "7z"):
            self.add("unscannable", member=member, detail=f"{fmt} content cannot be inspected")
            return fmt
        if depth >= MAX_DEPTH:
            self.add("unscannable", member=member, detail=f"{fmt} nested too deeply to inspect")
            return fmt
        if fmt in _COMPRESSED:
            return self.compressed(fmt, opener, member, depth)
        if seekable is not None:
            return self.archive(fmt, seekable, member, depth)
        with tempfile.TemporaryFile() as spool:
            with opener() as f:
                if not self._copy(f, spool, member, charge=depth > 0):
                    return fmt
            return self.archive(fmt, spool, member, depth)

    def archive(self, fmt: str, f: IO[bytes], member: str | None, depth: int) -> str:
        f.seek(0)
        return self.zip(f, member, depth) if fmt == "zip" else self.tar(f, member, depth)

    def _copy(self, src: IO[bytes], dst: IO[bytes], member: str | None, *, charge: bool) -> bool:
        while chunk := src.read(_CHUNK):
            if charge and not self.charge(len(chunk), member):
                return False
            dst.write(chunk)
        return True

    # -- pickles ---------------------------------------------------------------------------
    def pickle(self, f: IO[bytes], member: str | None, *, headerless: bool = False) -> str:
        """Walk and judge a pickle stream. A ``headerless`` one (protocol 0/1 guessed from
        its opcodes) that stops parsing before calling anything is not a pickle after all:
        nothing in it would run."""
        with tempfile.TemporaryFile() as skeleton:
            try:
                walked = walk(f, skeleton)
            except TooLarge as exc:
                self.add("unscannable", member=member, detail=f"{exc}; too large to scan")
                return "pickle"
            if headerless and walked.error is not None and not walked.first_calls:
                walked.discard_units()
                return "other"
            skeleton.seek(0)
            self.judge(skeleton, member)
        for unit in walked.units:
            with unit:
                self.judge(unit, member)
        if walked.error is not None:
            self.add(
                "malformed",
                member=member,
                detail=f"not a complete pickle: {walked.error} (at byte {walked.error.offset})",
            )
        for note in walked.notes:
            self.add("note", member=member, detail=note)
        if walked.torch_legacy:
            return "torch-legacy"
        return "joblib" if walked.joblib_arrays else "pickle"

    def judge(self, skeleton: IO[bytes], member: str | None) -> None:
        """picklescan's verdict on the imports of a skeleton."""
        try:
            verdict = scan_pickle_bytes(skeleton, member or "blob")
        except Exception as exc:  # picklescan raises on some hostile streams
            self.add("unscannable", member=member, detail=f"picklescan failed: {exc}")
            return
        for g in verdict.globals:
            if g.safety is SafetyLevel.Dangerous:
                self.add("dangerous_global", module=g.module, name=g.name, member=member)
            elif g.safety is SafetyLevel.Suspicious:
                self.add("suspicious_global", module=g.module, name=g.name, member=member)
        if verdict.scan_err:
            self.add("malformed", member=member, detail="picklescan could not parse the stream")

    # -- numpy -----------------------------------------------------------------------------
    def numpy(self, f: IO[bytes], member: str | None) -> str:
        try:
            header = npy_header(f)
        except Malformed as exc:
            self.add("malformed", member=member, detail=f"not a valid .npy file: {exc}")
            return "numpy"
        if npy_has_object(header["descr"]):  # the array follows as a pickle
            self.pickle(f, member)
        return "numpy"

    # -- safetensors -----------------------------------------------------------------------
    def safetensors(self, f: IO[bytes], size: int | None, member: str | None) -> None:
        try:
            check_safetensors(f, size)
        except Malformed as exc:
            self.add("malformed", member=member, detail=f"invalid safetensors: {exc}")

    # -- archives --------------------------------------------------------------------------
    def zip(self, f: IO[bytes], member: str | None, depth: int) -> str:
        try:
            archive = RelaxedZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            self.add("malformed", member=member, detail=f"not a readable zip archive: {exc}")
            return "zip"
        with archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if len(infos) > MAX_MEMBERS:
                self.add("unscannable", member=member, detail=f"over {MAX_MEMBERS} members")
                return "zip"
            for info in infos:
                inner = _join(member, info.filename)
                if info.flag_bits & 0x1:
                    self.add("unscannable", member=inner, detail="encrypted zip member")
                    continue

                def opener(
                    info: zipfile.ZipInfo = info,
                ) -> contextlib.AbstractContextManager[IO[bytes]]:
                    member_file: IO[bytes] = archive.open(info)
                    return member_file

                try:
                    self.member(opener, info.file_size, inner, depth)
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    EOFError,
                    OSError,
                    NotImplementedError,
                ) as exc:
                    self.add("malformed", member=inner, detail=f"unreadable zip member: {exc}")
            torch = any(i.filename.endswith("/data.pkl") or i.filename == "data.pkl" for i in infos)
        return "torch" if torch else "zip"

    def tar(self, f: IO[bytes], member: str | None, depth: int) -> str:
        try:
            with tarfile.open(fileobj=f, mode="r:") as archive:
                count = 0
                for info in archive:
                    if not info.isfile():
                        continue
                    count += 1
                    if count > MAX_MEMBERS:
                        self.add("unscannable", member=member, detail=f"over {MAX_MEMBERS} members")
                        break

                    @contextlib.contextmanager
                    def opener(info: tarfile.TarInfo = info) -> Iterator[IO[bytes]]:
                        extracted = archive.extractfile(info)
                        assert extracted is not None  # a regular file
                        with extracted:
                            yield extracted

                    self.member(opener, info.size, _join(member, info.name), depth)
        except (tarfile.TarError, EOFError, OSError) as exc:
            self.add("malformed", member=member, detail=f"not a readable tar archive: {exc}")
        return "tar"

    def member(self, opener: Opener, size: int, name: str, depth: int) -> None:
        """One file inside an archive: sniffed and scanned like a blob of its own."""
        with opener() as f:
            head = read_at_most(f, HEAD_BYTES)
        if _sniff(head, size) in ("pickle", HEADERLESS_PICKLE, "numpy") and not self.charge(
            size, name
        ):
            return
        self.source(opener, size, name, depth + 1)

    def compressed(self, fmt: str, opener: Opener, member: str | None, depth: int) -> str:
        with tempfile.TemporaryFile() as spool:
            try:
                with opener() as f:
                    if not self._decompress(fmt, f, spool, member):
                        return fmt
            except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
                self.add("malformed", member=member, detail=f"corrupt {fmt} stream: {exc}")
                return fmt
            size = spool.tell()

            @contextlib.contextmanager
            def inner() -> Iterator[IO[bytes]]:
                spool.seek(0)
                yield spool

            found = self.source(inner, size, member, depth + 1, spool)
        return fmt if found == "other" else f"{fmt}+{found}"

    def _decompress(self, fmt: str, f: IO[bytes], out: IO[bytes], member: str | None) -> bool:
        if fmt == "zlib":
            stream = zlib.decompressobj()
            while True:
                chunk = f.read(_CHUNK)
                data = stream.decompress(chunk, _CHUNK) if chunk else stream.flush()
                while True:
                    if not self.charge(len(data), member):
                        return False
                    out.write(data)
                    if not stream.unconsumed_tail:
                        break
                    data = stream.decompress(stream.unconsumed_tail, _CHUNK)
                if not chunk or stream.eof:
                    return True
        with _decompressor(fmt, f) as reader:
            return self._copy(reader, out, member, charge=True)


def _decompressor(fmt: str, f: IO[bytes]) -> IO[bytes]:
    if fmt == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if fmt == "bz2":
        return bz2.BZ2File(f)
    return lzma.LZMAFile(f)


# -- small helpers -------------------------------------------------------------------------


def _join(member: str | None, name: str) -> str:
    return name if member is None else f"{member}/{name}"


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (closing it closes the iterator)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()
