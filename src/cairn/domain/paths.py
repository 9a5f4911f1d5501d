"""File paths inside a version: validated, opaque metadata, never server filesystem paths.

A path is decoded to a fixed point first (so ``%252e%252e`` cannot hide ``..``), then
must be relative POSIX text: no ``..`` or ``.`` segments, no empty segments, no
backslashes, no absolute or drive paths, no NUL or control characters, no ``#`` or ``?``.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import unquote

from cairn.domain.digests import validate_digest
from cairn.domain.models import FileEntry
from cairn.errors import InvalidParameter

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
_DRIVE = re.compile(r"^[A-Za-z]:")
# Slashes that NFKC keeps but that Windows' best-fit code pages (and eyes) take for / or \
_SLASH_LOOKALIKES = frozenset("\u2044\u2215\u2216\u29f5\u29f8\u29f9\ufe68\uff0f\uff3c")


def _fixed_point(value: str) -> str:
    for _ in range(8):
        decoded = unquote(value)
        if decoded == value:
            return value
        value = decoded
    raise InvalidParameter("file path is encoded too many times")


def validate_file_path(path: object) -> str:
    """Return ``path`` if it is a safe relative path inside a version, else raise."""
    if not isinstance(path, str) or not path:
        raise InvalidParameter("file path must be a non-empty string")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidParameter(f"file path is longer than {MAX_PATH_LENGTH} characters")
    decoded = _fixed_point(path)
    if decoded != path:
        raise InvalidParameter(f"file path {path!r} is percent-encoded; send it decoded")
    for ch in path:
        if unicodedata.category(ch)[0] == "C":
            raise InvalidParameter(f"file path {path!r} contains a control character")
    for ch in path:
        if ch in _SLASH_LOOKALIKES:
            raise InvalidParameter(
                f"file path {path!r} contains U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'unnamed')}), which passes for a slash; use '/'"
            )
    _check_structure(path, path)
    folded = unicodedata.normalize("NFKC", path)
    if folded != path:  # fullwidth '.' and '/' (U+FF0E, U+FF0F) are '../' once normalised
        _check_structure(folded, path)
    return path


def _check_structure(path: str, shown: str) -> None:
    if "\\" in path:
        raise InvalidParameter(f"file path {shown!r} contains a backslash; use '/'")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidParameter(f"file path {shown!r} is absolute; paths are relative")
    if "#" in path or "?" in path:
        raise InvalidParameter(f"file path {shown!r} contains '#' or '?'")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidParameter(
                f"file path {shown!r} has an empty, '.' or '..' segment (or a look-alike of "
                "'.' or '/'); write it normalised"
            )
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidParameter(f"file path {shown!r} has a segment over 255 characters")
        if segment != segment.strip():
            raise InvalidParameter(f"file path {shown!r} has a segment with outer white space")


def validate_manifest(files: Sequence[FileEntry], max_files: int) -> tuple[FileEntry, ...]:
    """Check every entry, and that the paths form a tree (no file is also a folder)."""
    if len(files) > max_files:
        raise InvalidParameter(f"{len(files)} files given; the limit is {max_files}")
    seen: set[str] = set()
    folded: dict[str, str] = {}  # case- and form-folded path -> the path
    sized: dict[str, FileEntry] = {}  # digest -> its first entry: one digest, one size
    for entry in files:
        validate_file_path(entry.path)
        validate_digest(entry.digest)
        if isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size < 0:
            raise InvalidParameter(f"size of {entry.path!r} must be a non-negative integer")
        first = sized.setdefault(entry.digest, entry)
        if first.size != entry.size:
            raise InvalidParameter(
                f"{first.path!r} and {entry.path!r} have the same digest {entry.digest} but "
                f"sizes {first.size} and {entry.size}; a digest names one content, of one size"
            )
        key = unicodedata.normalize("NFC", entry.path).casefold()
        if entry.path in seen or key in folded:
            raise InvalidParameter(
                f"file path {entry.path!r} appears twice (paths that differ only by case or "
                "Unicode form would collide on many filesystems)"
            )
        seen.add(entry.path)
        folded[key] = entry.path
    # folded too: on a case-insensitive disk 'a' and 'A/b' make 'a' a file and a folder
    folders = {p.rsplit("/", i)[0] for p in folded for i in range(1, p.count("/") + 1)}
    clash = sorted(folders & folded.keys())
    if clash:
        raise InvalidParameter(
            f"{folded[clash[0]]!r} is both a file and a folder in this manifest (paths that "
            "differ only by case or Unicode form count as one)"
        )
    return tuple(sorted(files, key=lambda f: f.path))


def select_files(
    files: Sequence[FileEntry], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[FileEntry, ...]:
    """The files whose path matches one of ``include`` (all when none is given) and none
    of ``exclude``: shell-style patterns (``fnmatch``, case-sensitive), where ``*`` also
    crosses folders (``*.json`` is every JSON file) and a pattern ending in ``/`` is
    everything under that folder (``tokenizer/``). An ``include`` that selects nothing is
    refused: an empty download is more likely a typo than a wish."""

    def pattern(p: str) -> str:
        if not isinstance(p, str) or not p:
            raise InvalidParameter("a file pattern is a non-empty string")
        return p + "*" if p.endswith("/") else p

    wanted = [pattern(p) for p in include]
    unwanted = [pattern(p) for p in exclude]
    chosen = tuple(
        f
        for f in files
        if (not wanted or any(fnmatch.fnmatchcase(f.path, p) for p in wanted))
        and not any(fnmatch.fnmatchcase(f.path, p) for p in unwanted)
    )
    if wanted and not chosen:
        raise InvalidParameter(
            f"no file matches {', '.join(map(repr, include))}"
            + (f" once {', '.join(map(repr, exclude))} is left out" if exclude else "")
        )
    return chosen
