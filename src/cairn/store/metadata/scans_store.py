"""Scan results: per blob and scanner (``blob_scans``), per version (``version_scans``), and
each model's scan policy (``model_settings.scan_action``, NULL for the instance default).

A blob's scan is keyed by digest and scanner name, so a new scanner version (another
name) sees no result and scans again, while identical bytes are scanned once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, select

from cairn.domain.scans import BlobScan, Finding, finding_from_json, finding_to_json
from cairn.store.metadata.prepared import Prepared, Upsert
from cairn.store.metadata.schema import (
    blob_scans,
    blobs,
    model_settings,
    version_files,
    version_scans,
)

B = blob_scans
VS = version_scans
F = version_files


# what every version that becomes READY runs: built once
_FILES = Prepared(
    select(F.c.path, F.c.size, F.c.digest, B.c.format, B.c.status, B.c.findings, B.c.scanned_at)
    .select_from(F)
    .outerjoin(B, and_(B.c.digest == F.c.digest, B.c.scanner == bindparam("scanner")))
    .where(F.c.version_id == bindparam("version_id"))
    .order_by(F.c.path)
)
_SCAN_ACTION = Prepared(
    select(model_settings.c.scan_action).where(model_settings.c.model_id == bindparam("model_id"))
)
_RECORD_BLOB = Upsert(B, ("digest", "scanner"), ("format", "status", "findings", "scanned_at"))
_RECORD_VERSION = Upsert(
    VS, ("version_id",), ("status", "action", "quarantined", "summary", "scanned_at")
)
_SET_SCAN_ACTION = Upsert(model_settings, ("model_id",), ("scan_action",))


def _unscanned(version_id: int, scanner: str) -> Select[Any]:
    """The version's stored, intact blobs (digest, size) that ``scanner`` has not scanned."""
    scanned = select(B.c.digest).where(B.c.digest == F.c.digest, B.c.scanner == scanner)
    return (
        select(F.c.digest, blobs.c.size)
        .join(blobs, and_(blobs.c.digest == F.c.digest, blobs.c.corrupt_at.is_(None)))
        .where(F.c.version_id == version_id, ~scanned.exists())
    )


class ScansStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- blobs ----------------------------------------------------------------------------
    def find_blob(self, digest: str, scanner: str) -> Row[Any] | None:
        return self.s.execute(select(B).where(B.c.digest == digest, B.c.scanner == scanner)).first()

    def scanned_blobs(self, digests: Iterable[str], scanner: str) -> set[str]:
        """Those of ``digests`` that ``scanner`` has a result for."""
        rows = self.s.execute(
            select(B.c.digest).where(B.c.digest.in_(sorted(set(digests))), B.c.scanner == scanner)
        )
        return set(rows.scalars())

    def record_blob(self, digest: str, scan: BlobScan, now: int) -> None:
        """Store (or replace) the result of ``scan.scanner`` for ``digest``."""
        row = {
            "digest": digest,
            "scanner": scan.scanner,
            "format": scan.format[:32],
            "status": scan.status,
            "findings": json.dumps([finding_to_json(f) for f in scan.findings]),
            "scanned_at": now,
        }
        _RECORD_BLOB.run_many(self.s, [row])

    def unscanned(self, version_id: int, scanner: str) -> list[tuple[str, int]]:
        """(digest, size) of the version's stored, intact blobs ``scanner`` has not scanned."""
        rows = self.s.execute(_unscanned(version_id, scanner).distinct().order_by(F.c.digest))
        return [(str(r.digest), int(r.size)) for r in rows]

    def any_unscanned(self, version_id: int, scanner: str) -> bool:
        """Whether ``unscanned`` would name at least one blob."""
        return self.s.execute(_unscanned(version_id, scanner).limit(1)).first() is not None

    def files(self, version_id: int, scanner: str) -> list[Any]:
        """The version's files (path, size, digest) with ``scanner``'s result where there is
        one (format, status, findings, scanned_at; NULL otherwise), by path."""
        return _FILES.all(self.s, {"version_id": version_id, "scanner": scanner})

    # -- versions -------------------------------------------------------------------------
    def find_version(self, version_id: int) -> Row[Any] | None:
        return self.s.execute(select(VS).where(VS.c.version_id == version_id)).first()

    def record_version(
        self,
        version_id: int,
        *,
        status: str,
        action: str,
        quarantined: bool,
        summary: str,
        now: int,
    ) -> None:
        row = {
            "version_id": version_id,
            "status": status,
            "action": action,
            "quarantined": quarantined,
            "summary": summary,
            "scanned_at": now,
        }
        _RECORD_VERSION.run_many(self.s, [row])

    # -- policy ---------------------------------------------------------------------------
    def scan_action(self, model_id: int) -> str | None:
        """The model's own scan policy, or None (the instance default applies)."""
        value = _SCAN_ACTION.scalar(self.s, {"model_id": model_id})
        return None if value is None else str(value)

    def set_scan_action(self, model_id: int, action: str | None) -> None:
        _SET_SCAN_ACTION.run_many(self.s, [{"model_id": model_id, "scan_action": action}])


def findings(text: str | None) -> tuple[Finding, ...]:
    """Findings as stored (a JSON list) back to domain values."""
    if not text:
        return ()
    return tuple(finding_from_json(d) for d in json.loads(text))
