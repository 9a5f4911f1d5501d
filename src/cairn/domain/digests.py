"""Content digests (``sha256:<64 lowercase hex>``) and manifest identity."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from cairn.domain.models import FileEntry
from cairn.errors import InvalidParameter

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()


def validate_digest(value: object) -> str:
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise InvalidParameter(f"digest {value!r} is not of the form sha256:<64 lowercase hex>")
    return value


def manifest_digest(files: Iterable[FileEntry]) -> str:
    """The identity of a version's content: sha256 of its canonical, path-sorted manifest."""
    canonical = json.dumps(
        [[f.path, f.size, f.digest] for f in sorted(files, key=lambda f: f.path)],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


NO_FILES = manifest_digest([])  # the manifest digest of a version without files
