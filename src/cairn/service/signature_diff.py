"""Reading what ``domain/mlmodel.py`` compares: the ``MLmodel`` file of each version,
from the blob store (YAML, at most ``MAX_MLMODEL`` bytes, parsed safely)."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from cairn.domain.mlmodel import (
    Signature,
    SignatureDiff,
    diff_signatures,
    find_mlmodel,
    parse_signature,
)
from cairn.domain.models import FileEntry
from cairn.errors import InvalidParameter, NotFound
from cairn.store.blobs.base import BlobStore

MAX_MLMODEL = 1 << 20  # MLflow writes a few kilobytes


def signature_diff(
    blobs: BlobStore, old: Sequence[FileEntry], new: Sequence[FileEntry]
) -> SignatureDiff:
    """The signature in ``new``'s MLmodel file against ``old``'s."""
    unreadable: list[tuple[str, str]] = []

    def side(files: Sequence[FileEntry]) -> tuple[str, Signature] | None:
        path = find_mlmodel(f.path for f in files)
        if path is None:
            return None
        entry = next(f for f in files if f.path == path)
        try:
            signature = _read(blobs, entry)
        except (InvalidParameter, NotFound) as exc:
            unreadable.append((path, str(exc)))
            return None
        return None if signature is None else (path, signature)

    before, after = side(old), side(new)
    return diff_signatures(before, after, tuple(unreadable))


def _read(blobs: BlobStore, entry: FileEntry) -> Signature | None:
    if entry.size > MAX_MLMODEL:
        raise InvalidParameter(f"over {MAX_MLMODEL:,} bytes")
    try:
        data = b"".join(blobs.open(entry.digest))
    except NotFound:
        raise NotFound("its bytes are not in the store") from None
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("not a YAML mapping")
    return parse_signature(doc.get("signature"))
