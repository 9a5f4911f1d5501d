"""What a file download says over HTTP, whatever route serves it: the headers that keep
a browser from running what it receives, the file's name, its digest (``ETag`` and RFC
9530 ``Repr-Digest``), single ``Range`` requests and conditional requests (RFC 9110).

The ETag of a file is its digest, which never changes for a path of a version: a client
that holds it needs no byte again (``If-None-Match``), and a resumed download continues
only while the file is the same one (``If-Range``).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from starlette.responses import Response

from cairn.domain.models import FileEntry
from cairn.errors import InvalidParameter

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=0",
}


def download_headers(entry: FileEntry, path: str, length: int) -> dict[str, str]:
    """The headers of an answer with ``length`` bytes of the file ``entry`` at ``path``."""
    return {
        **DOWNLOAD_HEADERS,
        "Content-Disposition": attachment(path),
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "ETag": etag(entry.digest),
        "Repr-Digest": repr_digest(entry.digest),
    }


def not_modified(digest: str) -> Response:
    """304: what the client holds is current; the validator and caching headers only."""
    return Response(status_code=304, headers={**DOWNLOAD_HEADERS, "ETag": etag(digest)})


def etag(digest: str) -> str:
    return f'"{digest}"'


def names_etag(if_none_match: str | None, digest: str) -> bool:
    """Whether an ``If-None-Match`` matches the file of ``digest``: ``*``, or a list of
    entity tags one of which is its ETag (weak comparison: ``W/`` is ignored, RFC 9110)."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag(digest) in tags


def repr_digest(digest: str) -> str:
    """RFC 9530 ``Repr-Digest`` for a ``sha256:<hex>`` digest."""
    raw = bytes.fromhex(digest.removeprefix("sha256:"))
    return f"sha-256=:{base64.b64encode(raw).decode()}:"


def attachment(path: str) -> str:
    """``Content-Disposition``: always a download, named after the last part of ``path``
    (an ASCII fallback, and the real name in RFC 8187 form)."""
    base = path.rsplit("/", 1)[-1]
    ascii_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in base)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int, bool]:
    """(start, end exclusive, partial?) for a single-range header; ignore what we can't use."""
    if not header:
        return 0, size, False
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        if not header.strip().startswith("bytes=") or "," in header:
            return 0, size, False  # another unit, or several ranges: the whole file (RFC 9110)
        raise InvalidParameter(f"Range header {header!r} is not of the form bytes=START-END")
    first, last = match.groups()
    if not first and not last:
        raise InvalidParameter("Range header has neither start nor end")
    if not first:  # suffix: the last N bytes
        suffix = _position(last, size)
        if size == 0 and suffix > 0:  # all of an empty file: no 206 can say so, a 200 does
            return 0, 0, False
        return max(size - suffix, 0), size, True
    start = _position(first, size)
    end = size if not last else min(_position(last, size) + 1, size)
    return start, max(end, start), True


def _position(digits: str, size: int) -> int:
    """A range's number, or ``size + 1`` for any past the end, however many digits it has
    (``int()`` refuses more than 4,300)."""
    digits = digits.lstrip("0") or "0"
    return size + 1 if len(digits) > len(str(size)) else min(int(digits), size + 1)
