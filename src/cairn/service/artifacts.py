"""Use cases that bring a version's bytes in: whole, batched and resumable uploads, finalize.

Bytes first, rows second: the blob store verifies and makes the bytes durable, and only
then does a transaction record the blob and, when the manifest is complete, flip the
version to READY. A version is never READY with a missing or unverified file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.artifacts import BlobReceipt, UploadTicket
from cairn.domain.blob_batch import parse_frames
from cairn.domain.digests import validate_digest
from cairn.domain.models import Actor, ModelVersion, VersionStatus
from cairn.domain.uris import parse_version_number
from cairn.errors import Conflict, InvalidParameter, NotFound, Unavailable
from cairn.service.base import PRESIGN_SECONDS, authorize
from cairn.service.scan_engine import scanner_name
from cairn.service.scans import ScansService
from cairn.store.blobs.integrity import Verifier
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import load_versions
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.scans_store import ScansStore
from cairn.store.metadata.versions_store import VersionStore


class ArtifactsService(ScansService):
    # -- upload --------------------------------------------------------------------------
    def missing_blobs(self, actor: Actor, name: str, version: int | str) -> list[str]:
        """Digests the server still needs before the version can become READY."""
        row = self._version_row(actor, name, version, Role.WRITE, "missing_blobs")
        return self.db.read(lambda s: BlobIndexStore(s).missing_for_version(row.id))

    def put_blob(
        self, actor: Actor, name: str, version: int | str, digest: str, chunks: Iterable[bytes]
    ) -> BlobReceipt:
        """Store one whole blob of a PENDING version's manifest, verified while streaming."""
        row, size = self._pending_blob(actor, name, version, digest)
        self._clear_if_corrupt(digest)
        stored = self.blobs.put(digest, size, chunks)
        return self._record_blobs(actor, row.id, [(digest, size, stored)])[0]

    def put_blobs(
        self, actor: Actor, name: str, version: int | str, body: bytes
    ) -> list[BlobReceipt]:
        """Store several whole blobs of a PENDING version's manifest at once, framed in
        ``body`` (small files: ``domain/blob_batch.py``). Every one is checked against its
        declared size and digest before any is stored, so a bad one stores none; all are
        recorded in one transaction."""
        row = self._pending_version(actor, name, version)  # before the body is looked at
        blobs = parse_frames(body)
        digests = [digest for digest, _ in blobs]
        if len(set(digests)) != len(digests):
            raise InvalidParameter("a batch holds each digest once")
        declared, corrupt = self.db.read(
            lambda s: (
                BlobIndexStore(s).declared_sizes(row.id, digests),
                BlobIndexStore(s).corrupt(digests),
            )
        )
        for digest, content in blobs:
            if digest not in declared:
                raise InvalidParameter(self._not_in_manifest(digest, name, row))
            verifier = Verifier(digest, declared[digest])
            verifier.update(content)
            verifier.finish()
        for digest in corrupt:
            self.blobs.delete(digest)  # known corrupt: the new bytes replace them
        items = [
            (d, len(content), self.blobs.put(d, len(content), (content,))) for d, content in blobs
        ]
        return self._record_blobs(actor, row.id, items)

    def begin_upload(
        self, actor: Actor, name: str, version: int | str, digest: str
    ) -> UploadTicket:
        """Start (or resume) a resumable upload of one blob of a PENDING version."""
        row, size = self._pending_blob(actor, name, version, digest)
        existing = self.db.read(lambda s: BlobIndexStore(s).find_model_upload(row.model_id, digest))
        if existing is not None:
            try:
                return self._ticket(existing.upload_id, digest, size)
            except NotFound:  # staging vanished (purged): start over
                self.db.write(lambda s: BlobIndexStore(s).remove_upload(existing.upload_id))
        upload_id = self.blobs.begin_upload(digest, size)

        def run(s: Tx) -> None:
            index = BlobIndexStore(s)
            if index.find_upload(row.id, digest) is None:
                index.add_upload(upload_id, row.id, digest, size, self.clock())

        self.db.write(run)
        current = self.db.read(lambda s: BlobIndexStore(s).find_model_upload(row.model_id, digest))
        if current is not None and current.upload_id != upload_id:  # a concurrent begin won
            self.blobs.abort_upload(upload_id)
            upload_id = current.upload_id
        return self._ticket(upload_id, digest, size)

    def upload_status(self, actor: Actor, upload_id: str) -> UploadTicket:
        upload = self._upload_row(actor, upload_id)
        return self._ticket(upload_id, upload.digest, int(upload.size), presign=False)

    def append_upload(
        self, actor: Actor, upload_id: str, offset: int, chunks: Iterable[bytes]
    ) -> int:
        self._upload_row(actor, upload_id)
        return self.blobs.append(upload_id, offset, chunks)

    def complete_upload(self, actor: Actor, upload_id: str) -> BlobReceipt:
        upload = self._upload_row(actor, upload_id)
        self._clear_if_corrupt(upload.digest)
        try:
            stored = self.blobs.complete_upload(upload_id)
        except NotFound:
            if not self.blobs.exists(upload.digest):
                raise
            stored = False  # an earlier completion, cut short, moved the bytes into place
        except InvalidParameter:
            if self._staging_gone(upload_id):  # bad content: the store discarded it
                self.db.write(lambda s: BlobIndexStore(s).remove_upload(upload_id))
            raise
        receipts = [(upload.digest, int(upload.size), stored)]
        return self._record_blobs(actor, upload.version_id, receipts, upload_id=upload_id)[0]

    def abort_upload(self, actor: Actor, upload_id: str) -> None:
        self._upload_row(actor, upload_id)
        with contextlib.suppress(NotFound):
            self.blobs.abort_upload(upload_id)
        self.db.write(lambda s: BlobIndexStore(s).remove_upload(upload_id))

    def finalize_version(self, actor: Actor, name: str, version: int | str) -> ModelVersion:
        """Make a PENDING version READY if every blob is present; else say which are not."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        target = self._version_row(actor, name, number, Role.WRITE, "finalize_version")
        self._scan_version_blobs(target.id)  # reads bytes: before the transaction

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "finalize_version")
            row = VersionStore(s).get(model.id, name, number)
            if row.status == VersionStatus.PENDING.value:
                self._promote_if_complete(s, actor, row.id)
            return load_versions(s, [row.id])[0]

        result = self.db.write(run)
        if result.status is VersionStatus.PENDING:
            missing = self.missing_blobs(actor, name, number)
            raise InvalidParameter(
                f"version {number} of {name!r} still lacks {len(missing)} blob(s), "
                f"first {missing[0] if missing else '?'}; upload them, then finalize"
            )
        return result

    # -- helpers -------------------------------------------------------------------------
    def _pending_blob(
        self, actor: Actor, name: str, version: int | str, digest: str
    ) -> tuple[Any, int]:
        validate_digest(digest)
        row = self._pending_version(actor, name, version)
        size = self.db.read(lambda s: BlobIndexStore(s).declared_size(row.id, digest))
        if size is None:
            raise InvalidParameter(self._not_in_manifest(digest, name, row))
        return row, size

    def _pending_version(self, actor: Actor, name: str, version: int | str) -> Any:
        row = self._version_row(actor, name, version, Role.WRITE, "upload")
        if row.status != VersionStatus.PENDING.value:
            raise Conflict(
                f"version {row.version} of {name!r} is {row.status}; blobs are uploaded only "
                "to PENDING versions"
            )
        return row

    @staticmethod
    def _not_in_manifest(digest: str, name: str, row: Any) -> str:
        return f"{digest} is not in the manifest of version {row.version} of {name!r}"

    def _upload_row(self, actor: Actor, upload_id: str) -> Any:
        """An upload in progress, if the caller may write to the model it belongs to."""
        if not isinstance(upload_id, str) or len(upload_id) > 64:
            raise NotFound("no such upload")

        def run(s: Tx) -> Any:
            upload = BlobIndexStore(s).get_upload(upload_id)
            model = None
            if upload is not None:
                version = VersionStore(s).get_by_id(upload.version_id)
                model = ModelStore(s).get_by_id(version.model_id)
                model = None if model.deleted_at is not None else model
            missing = f"upload {upload_id!r} does not exist (finished, aborted or expired)"
            authorize(actor, model, Role.WRITE, "upload", missing)
            return upload

        return self.db.read(run)

    def _ticket(
        self, upload_id: str, digest: str, size: int, *, presign: bool = True
    ) -> UploadTicket:
        try:
            offset = self.blobs.upload_offset(upload_id)
        except NotFound:
            if not self.blobs.exists(digest):
                raise
            # the staging is gone because a completion, cut short, moved the bytes into
            # place: nothing is left to send; completing records them
            return UploadTicket(upload_id, digest, size, offset=size)
        parts = self.blobs.presign_upload(upload_id, PRESIGN_SECONDS) if presign else None
        return UploadTicket(
            upload_id=upload_id,
            digest=digest,
            size=size,
            offset=offset,
            parts=None if parts is None else tuple(parts),
        )

    def _staging_gone(self, upload_id: str) -> bool:
        try:
            self.blobs.upload_offset(upload_id)
        except NotFound:
            return True
        return False

    def _clear_if_corrupt(self, digest: str) -> None:
        """Bytes known to be corrupt are removed, so a new upload can replace them."""
        row = self.db.read(lambda s: BlobIndexStore(s).find(digest))
        if row is not None and row.corrupt_at is not None:
            self.blobs.delete(digest)

    def _record_blobs(
        self,
        actor: Actor,
        version_id: int,
        items: Sequence[tuple[str, int, bool]],
        *,
        upload_id: str | None = None,
    ) -> list[BlobReceipt]:
        """Record verified blobs ``(digest, size, stored)`` of a version in one transaction,
        and re-check every PENDING version that waits for one of them; the upload
        ``upload_id`` that brought them is forgotten in the same transaction.

        gc may be deleting bytes the store just called "already stored": a blob gc has a
        tombstone for is refused (``BlobIndexStore.record``), and one whose row is new is
        looked for in the store inside the transaction, which then holds its row: a gc
        that finished between the store's answer and now has left no tombstone but has
        taken the bytes. Either way ``Unavailable`` (503): the client sends them again."""
        for digest, size, stored in items:
            if stored:
                continue
            held = self.blobs.size(digest)
            if held is None:  # gc deleted them since the store said they were there
                raise Unavailable(_deleted(digest))
            if held != size:  # pre-existing, other size
                raise InvalidParameter(f"{digest} is stored with another size than {size} bytes")
        # reading bytes comes before the transaction that may promote: these blobs' scans
        # (recorded with the blobs), and once nothing else is missing, any of the version's
        # blobs the scanner has not seen
        scans = self._blob_scans([(digest, size) for digest, size, _ in items])
        sent = set(scans)
        if not self.db.read(lambda s: self._missing_but(BlobIndexStore(s), version_id, sent)):
            self._scan_version_blobs(version_id)

        def run(s: Tx) -> tuple[VersionStatus, set[str]]:
            index, now = BlobIndexStore(s), self.clock()
            if upload_id is not None:
                index.remove_upload(upload_id)
            owed = set()
            for digest, size, _ in items:
                if index.record(digest, size, now) and not self.blobs.exists(digest):
                    raise Unavailable(_deleted(digest))
                if (scan := scans[digest]) is not None:
                    ScansStore(s).record_blob(digest, scan, now)
                # the uploader proved it holds the bytes; saying they were "already stored"
                # would tell them that someone else had them
                if index.settle_claim(version_id, digest):
                    owed.add(digest)
            others = set(index.pending_versions_with(sent)) - {version_id}
            for other in sorted(others):
                self._promote_if_complete(s, actor, other)
            return self._promote_if_complete(s, actor, version_id, scanned=True), owed

        status, owed = self.db.write(run)
        if status is VersionStatus.PENDING and not self.db.read(
            lambda s: BlobIndexStore(s).any_missing(version_id)
        ):  # complete, but a blob went unscanned (a concurrent last upload): scan, promote
            self._scan_version_blobs(version_id)
            status = self.db.write(
                lambda s: self._promote_if_complete(s, actor, version_id, scanned=True)
            )
        return [
            BlobReceipt(digest=d, size=size, stored=stored or d in owed, version_status=status)
            for d, size, stored in items
        ]

    @staticmethod
    def _missing_but(index: BlobIndexStore, version_id: int, sent: set[str]) -> bool:
        """Whether the version still misses a blob other than those ``sent``: one probe for
        a single blob (``any_missing`` walks back from the last path), the version's whole
        missing list for a batch."""
        if len(sent) == 1:
            return index.any_missing(version_id, other_than=next(iter(sent)))
        return not set(index.missing_for_version(version_id)) <= sent

    def _promote_if_complete(
        self, s: Tx, actor: Actor, version_id: int, *, scanned: bool = False
    ) -> VersionStatus:
        """Make the version READY if no blob is missing; with ``scanned``, also only if the
        current scanner has seen every one of them (else the caller scans, then retries)."""
        store = VersionStore(s)
        row = store.get_by_id(version_id, lock=True)  # concurrent last blobs: one promotes
        if row.status != VersionStatus.PENDING.value:
            return VersionStatus(row.status)
        if BlobIndexStore(s).any_missing(version_id):
            return VersionStatus.PENDING
        if scanned and ScansStore(s).any_unscanned(version_id, scanner_name()):
            return VersionStatus.PENDING
        store.update(version_id, self.clock(), status=VersionStatus.READY.value)
        self._audit(
            s,
            actor,
            "version.finalize",
            model=ModelStore(s).get_by_id(row.model_id),
            version=int(row.version),
            before={"status": VersionStatus.PENDING.value},
            after={"status": VersionStatus.READY.value},
        )
        return self._apply_scan_policy(s, version_id)  # its scan verdict, and the policy


def _deleted(digest: str) -> str:
    return f"blob {digest} was deleted by gc while it was being sent; send it again"
