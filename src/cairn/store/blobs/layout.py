"""The one place that knows where blob-store objects live.

Every key is derived from a validated digest or a validated, server-generated upload
id, never from anything a client names::

    blobs/sha256/ab/abcdef…             a verified blob (fan-out on the first two hex digits)
    uploads/<id>/info.json              a resumable upload: declared digest and size
    uploads/<id>/data                   its staged bytes (local backend: one file)
    uploads/<id>/parts/<offset:020d>    its staged bytes (object stores: one object per part)
    tmp/put-<random>                    local backend: a ``put`` being streamed

Keys use ``/`` on every backend; the local backend turns them into paths under its root
component by component (and refuses symbolic links on the way).
"""

from __future__ import annotations

import re
import secrets

from cairn.domain.digests import validate_digest
from cairn.errors import InvalidParameter

BLOBS_PREFIX = "blobs/sha256/"
UPLOADS_PREFIX = "uploads/"
TMP_PREFIX = "tmp/"

UPLOAD_INFO = "info.json"
UPLOAD_DATA = "data"
UPLOAD_PARTS = "parts/"

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")
_HEX_RE = re.compile(r"[0-9a-f]{64}")
_PART_RE = re.compile(r"[0-9]{20}")


def blob_key(digest: str) -> str:
    """``blobs/sha256/ab/abcdef…`` for ``sha256:abcdef…``; the digest is validated first."""
    hex_ = validate_digest(digest).removeprefix("sha256:")
    return f"{BLOBS_PREFIX}{hex_[:2]}/{hex_}"


def digest_from_blob_key(key: str) -> str | None:
    """The inverse of :func:`blob_key`; ``None`` for any key that is not exactly a blob key."""
    if not key.startswith(BLOBS_PREFIX):
        return None
    fan_out, _, hex_ = key.removeprefix(BLOBS_PREFIX).partition("/")
    if not _HEX_RE.fullmatch(hex_) or fan_out != hex_[:2]:
        return None
    return f"sha256:{hex_}"


def new_upload_id() -> str:
    """A fresh upload id: 128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def validate_upload_id(value: object) -> str:
    if not isinstance(value, str) or not _UPLOAD_ID_RE.fullmatch(value):
        raise InvalidParameter(
            f"upload id {value!r} is not valid; use the id returned when the upload began "
            "(32 lowercase hex digits)"
        )
    return value


def upload_prefix(upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{validate_upload_id(upload_id)}/"


def upload_info_key(upload_id: str) -> str:
    return upload_prefix(upload_id) + UPLOAD_INFO


def upload_data_key(upload_id: str) -> str:
    return upload_prefix(upload_id) + UPLOAD_DATA


def upload_part_key(upload_id: str, offset: int) -> str:
    if offset < 0:
        raise InvalidParameter(f"part offset {offset} is negative")
    return f"{upload_prefix(upload_id)}{UPLOAD_PARTS}{offset:020d}"


def upload_id_from_key(key: str) -> str | None:
    """The upload id of any key under ``uploads/<id>/``; ``None`` otherwise."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    candidate, sep, _ = key.removeprefix(UPLOADS_PREFIX).partition("/")
    return candidate if sep and _UPLOAD_ID_RE.fullmatch(candidate) else None


def part_offset_from_key(upload_id: str, key: str) -> int | None:
    """The offset of a part key of this upload; ``None`` for anything else."""
    prefix = upload_prefix(upload_id) + UPLOAD_PARTS
    if not key.startswith(prefix):
        return None
    name = key.removeprefix(prefix)
    return int(name) if _PART_RE.fullmatch(name) else None


def key_parts(key: str) -> tuple[str, ...]:
    """A key's components, for backends that walk directories one component at a time."""
    parts = tuple(key.split("/"))
    if any(p in ("", ".", "..") for p in parts):  # cannot happen for keys built here
        raise InvalidParameter(f"blob-store key {key!r} is malformed")
    return parts
