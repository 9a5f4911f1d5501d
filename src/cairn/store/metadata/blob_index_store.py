"""What the metadata database knows about blobs: which are stored, verified, referenced.

A ``blobs`` row is written only after the blob store holds the verified bytes (bytes
first, rows second). Readers that rely on a blob (a version becoming READY) lock its
row ``FOR SHARE``; garbage collection locks it ``FOR UPDATE`` and re-checks references
in a fresh statement, so the two can never both win (PostgreSQL; SQLite serialises
writers anyway).

Deleting is rows first, bytes second, so between the two gc leaves a tombstone
(``blob_tombstones``), written in the transaction that deletes the row and deleted once
the bytes are gone. A row and a tombstone of the same digest are never both committed:
``record`` refuses a digest with a tombstone and ``adopt`` skips it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cairn.domain.access import ReadFilter
from cairn.domain.models import FileEntry
from cairn.errors import InvalidParameter, Unavailable
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import (
    blob_claims,
    blob_tombstones,
    blobs,
    model_versions,
    registered_models,
    uploads,
    version_files,
)
from cairn.store.metadata.search import readable_models

_FAILED = "FAILED"
B = blobs
C = blob_claims
T = blob_tombstones
F = version_files
U = uploads

# any_missing, run for every blob an upload records ("" is never a digest)
_OWED = Prepared(
    select(C.c.digest)
    .where(
        C.c.version_id == bindparam("version_id"),
        C.c.digest != bindparam("other_than"),
        select(F.c.digest)
        .where(F.c.version_id == bindparam("version_id"), F.c.digest == C.c.digest)
        .exists(),
    )
    .limit(1)
)
_ABSENT = Prepared(
    select(F.c.path)
    .where(
        F.c.version_id == bindparam("version_id"),
        F.c.digest != bindparam("other_than"),
        ~select(B.c.digest).where(B.c.digest == F.c.digest, B.c.corrupt_at.is_(None)).exists(),
    )
    .order_by(F.c.path.desc())
    .limit(1)
)


class BlobIndexStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def present(self, files: Iterable[FileEntry], *, lock: bool = False) -> set[str]:
        """Digests of ``files`` that are stored, not known corrupt, and of the declared size.

        A declared size that contradicts a stored blob of that digest is refused: the
        digest fixes the content, so the manifest is wrong.
        """
        stored = self._stored(files, lock=lock)
        _check_sizes(files, stored)
        return set(stored)

    def present_for(
        self, files: Iterable[FileEntry], readable: ReadFilter | None, *, lock: bool = False
    ) -> tuple[set[str], set[str]]:
        """``present`` as a caller who may read ``readable`` (None: everything) may see it:
        (present, owed). Stored bytes that no READY version the caller may read uses are
        ``owed``: the caller uploads them like anyone else, and learns neither that they
        exist nor their size (sizes are checked only for what is present to them)."""
        stored = self._stored(files, lock=lock)
        owed = set() if readable is None else set(stored) - self.reachable(stored, readable)
        visible = {d: size for d, size in stored.items() if d not in owed}
        _check_sizes(files, visible)
        return set(visible), owed

    def _stored(self, files: Iterable[FileEntry], *, lock: bool) -> dict[str, int]:
        """Stored, not known corrupt: digest -> stored size, for the digests of ``files``."""
        digests = sorted({f.digest for f in files})
        if not digests:
            return {}
        query = select(B.c.digest, B.c.size).where(
            B.c.digest.in_(digests), B.c.corrupt_at.is_(None)
        )
        if lock:
            query = query.with_for_update(read=True)
        return {digest: int(size) for digest, size in self.s.execute(query)}

    def record(self, digest: str, size: int, now: int) -> bool:
        """Record verified bytes the blob store holds: insert the blob's row, or mark the
        row there as verified (and not corrupt). True if the row is new: the caller must
        then make sure, in this transaction, that the bytes are still in the store.

        A new row is refused with ``Unavailable`` (the transaction rolls back; the client
        sends the blob again) while gc is deleting the digest: it has a tombstone. That
        check is a statement after the insert. On PostgreSQL (READ COMMITTED) the insert
        waits for a gc transaction that has locked or deleted the row and not committed;
        once gc commits, the next statement sees its tombstone. On SQLite gc's transaction
        and this one run one after the other, whole. A new row with no tombstone means
        either that no gc has claimed the digest since it last had a row, or that its gc
        has finished: the bytes are gone, unless they were sent again, and the caller's
        look at the store tells which. From the insert on, this transaction holds the row
        (or SQLite's writer lock), so a gc that comes later waits for it, then finds the
        version that names the digest and leaves it alone.

        An existing row needs neither check: a committed row never has a tombstone, and
        its bytes are there (gc deletes them only after it has deleted the row). The
        update locks the row; if gc deleted it meanwhile (PostgreSQL: the update waited
        for gc, then found nothing), the insert is tried again."""
        dialect = self.s.dialect.name
        new = (
            (pg_insert if dialect == "postgresql" else sqlite_insert)(B)
            .values(digest=digest, size=size, created_at=now, verified_at=now)
            .on_conflict_do_nothing(index_elements=["digest"])
            .returning(B.c.digest)
        )
        again = update(B).where(B.c.digest == digest).values(corrupt_at=None, verified_at=now)
        for _ in range(3):
            if self.s.execute(new).first() is not None:
                if self.tombstoned([digest]):
                    raise Unavailable(
                        f"blob {digest} is being deleted by gc; send it again in a moment"
                    )
                return True
            if self.s.execute(again).rowcount:
                return False
        raise Unavailable(f"blob {digest} kept changing while it was recorded; send it again")

    def tombstoned(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` gc is deleting (or a crash left it deleting)."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        return set(self.s.execute(select(T.c.digest).where(T.c.digest.in_(wanted))).scalars())

    def tombstones(self) -> list[str]:
        """Every digest gc has deleted the row of and not yet finished deleting."""
        return list(self.s.execute(select(T.c.digest).order_by(T.c.digest)).scalars())

    def add_tombstone(self, digest: str, now: int) -> None:
        dialect = self.s.dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(T).values(
            digest=digest, created_at=now
        )
        self.s.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))

    def remove_tombstone(self, digest: str) -> None:
        self.s.execute(delete(T).where(T.c.digest == digest))

    def find(self, digest: str) -> Row[Any] | None:
        return self.s.execute(select(B).where(B.c.digest == digest)).first()

    def mark(self, digest: str, now: int, *, corrupt: bool) -> None:
        values = {"corrupt_at": now} if corrupt else {"verified_at": now, "corrupt_at": None}
        self.s.execute(update(B).where(B.c.digest == digest).values(**values))

    def page(
        self, after: str, limit: int, verified_before: int | None = None
    ) -> list[tuple[str, int]]:
        """(digest, size) of up to ``limit`` blobs whose digest sorts after ``after``, in
        digest order (keyset paging: each page is one step down the primary key); with
        ``verified_before``, only those last verified before it (or never)."""
        query = select(B.c.digest, B.c.size).where(B.c.digest > after, *_stale(verified_before))
        return [(d, int(n)) for d, n in self.s.execute(query.order_by(B.c.digest).limit(limit))]

    def unreferenced(self, created_before: int) -> list[Row[Any]]:
        """Blob rows no version (live, deleted or pending; not failed) refers to, older than
        the cut."""
        referenced = (
            select(F.c.digest)
            .join(model_versions, model_versions.c.id == F.c.version_id)
            .where(F.c.digest == B.c.digest, model_versions.c.status != _FAILED)
            .exists()
        )
        return list(
            self.s.execute(
                select(B).where(~referenced, B.c.created_at < created_before).order_by(B.c.digest)
            )
        )

    def claim_for_deletion(self, digest: str) -> bool:
        """Lock the row and re-check references; True if it may be deleted now (the caller
        deletes it and writes its tombstone in the same transaction: ``add_tombstone``)."""
        row = self.s.execute(select(B.c.digest).where(B.c.digest == digest).with_for_update())
        if row.first() is None:
            return False
        return not self.is_referenced(digest)

    def held_only_by(self, version_ids: Select[tuple[int]]) -> int:
        """Bytes of the blobs that the versions ``version_ids`` name and no other version
        (live, deleted or pending; not failed) does: what gc may reclaim once they are
        gone."""
        other_file = F.alias("other_file")
        other = model_versions.alias("other")
        used_elsewhere = (
            select(other_file.c.digest)
            .join(other, other.c.id == other_file.c.version_id)
            .where(
                other_file.c.digest == B.c.digest,
                other.c.status != _FAILED,
                other.c.id.not_in(version_ids),
            )
            .exists()
        )
        named = select(F.c.digest).where(F.c.version_id.in_(version_ids))
        total = self.s.execute(
            select(func.coalesce(func.sum(B.c.size), 0)).where(
                B.c.digest.in_(named), ~used_elsewhere
            )
        ).scalar_one()
        return int(total)

    def unknown(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that have no row."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        known = self.s.execute(select(B.c.digest).where(B.c.digest.in_(wanted))).scalars()
        return set(wanted) - set(known)

    def adopt(self, digest: str, size: int, stored_at: int) -> None:
        """Give bytes the store holds without a row one, dated when they were stored (and
        not counted as verified); a row written meanwhile is left as it is. The caller
        leaves out digests with a tombstone (``tombstoned``): gc is deleting them."""
        dialect = self.s.dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(B).values(
            digest=digest, size=size, created_at=stored_at
        )
        self.s.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))

    def is_referenced(self, digest: str) -> bool:
        used = self.s.execute(
            select(F.c.version_id)
            .join(model_versions, model_versions.c.id == F.c.version_id)
            .where(F.c.digest == digest, model_versions.c.status != _FAILED)
            .limit(1)
        )
        pending = self.s.execute(select(U.c.upload_id).where(U.c.digest == digest).limit(1))
        return used.first() is not None or pending.first() is not None

    def delete(self, digest: str) -> None:
        self.s.execute(delete(B).where(B.c.digest == digest))

    def users(self, digest: str) -> list[tuple[str, int]]:
        """(model name, version) pairs whose manifest holds ``digest``, every one."""
        rows = self.s.execute(
            select(registered_models.c.name, model_versions.c.version)
            .join(model_versions, model_versions.c.id == F.c.version_id)
            .join(registered_models, registered_models.c.id == model_versions.c.model_id)
            .where(F.c.digest == digest)
            .group_by(  # once per version, however many of its paths hold the digest
                model_versions.c.id,
                registered_models.c.name_key,
                registered_models.c.name,
                model_versions.c.version,
            )
            .order_by(registered_models.c.name_key, model_versions.c.version)
        )
        return [(name, int(version)) for name, version in rows]

    def missing_for_version(self, version_id: int) -> list[str]:
        """Digests of the version's manifest that are not stored (or are corrupt), or that
        its creator still owes an upload of (``blob_claims``)."""
        stored = select(B.c.digest).where(B.c.digest == F.c.digest, B.c.corrupt_at.is_(None))
        claimed = select(C.c.digest).where(C.c.version_id == version_id, C.c.digest == F.c.digest)
        rows = self.s.execute(
            select(F.c.digest)
            .where(F.c.version_id == version_id, or_(~stored.exists(), claimed.exists()))
            .distinct()
            .order_by(F.c.digest)
        )
        return list(rows.scalars())

    def any_missing(self, version_id: int, *, other_than: str | None = None) -> bool:
        """Whether any digest of the version's manifest (but ``other_than``) is missing, as
        ``missing_for_version`` counts them; stops at the first one.

        Owed uploads are looked up from the version's claims (few). Absent or corrupt bytes
        are looked for backwards through the version's paths, one index probe per path (an
        anti-join, so that no engine hashes the whole blob table first): clients send files
        in path order, so while a version's files are uploaded one by one, its last paths
        are the ones still missing, and each check reads a row or two, not the manifest."""
        params = {"version_id": version_id, "other_than": other_than or ""}
        return any(q.first(self.s, params) is not None for q in (_OWED, _ABSENT))

    def reachable(self, digests: Iterable[str], readable: ReadFilter) -> set[str]:
        """Those of ``digests`` that a live version of a model the caller may read uses."""
        wanted = sorted(set(digests))
        if not wanted or readable.empty:
            return set()
        rows = self.s.execute(
            select(F.c.digest)
            .join(model_versions, model_versions.c.id == F.c.version_id)
            .join(registered_models, registered_models.c.id == model_versions.c.model_id)
            .where(
                F.c.digest.in_(wanted),
                model_versions.c.deleted_at.is_(None),
                model_versions.c.status == "READY",
                readable_models(readable),
            )
            .distinct()
        )
        return set(rows.scalars())

    def add_claims(self, version_id: int, digests: Iterable[str]) -> None:
        rows = [{"version_id": version_id, "digest": d} for d in sorted(set(digests))]
        if rows:
            self.s.execute(insert(C), rows)

    def settle_claim(self, version_id: int, digest: str) -> bool:
        """The version's creator uploaded (and the server verified) these bytes."""
        result = self.s.execute(delete(C).where(C.c.version_id == version_id, C.c.digest == digest))
        return bool(result.rowcount)

    def files_with_blobs(self, version_id: int, paths: Iterable[str]) -> dict[str, Row[Any]]:
        """Path → (``path``, ``size``, ``digest``, ``stored``, ``corrupt_at``) of each of
        ``paths`` the version holds, with its blob row's state (``stored`` false when the
        bytes are not recorded), in one query."""
        rows = self.s.execute(
            select(
                F.c.path,
                F.c.size,
                F.c.digest,
                B.c.digest.isnot(None).label("stored"),
                B.c.corrupt_at,
            )
            .select_from(F.outerjoin(B, B.c.digest == F.c.digest))
            .where(F.c.version_id == version_id, F.c.path.in_(sorted(set(paths))))
        )
        return {row.path: row for row in rows}

    def declared_size(self, version_id: int, digest: str) -> int | None:
        size = self.s.execute(
            select(func.max(F.c.size)).where(F.c.version_id == version_id, F.c.digest == digest)
        ).scalar_one_or_none()
        return None if size is None else int(size)

    def declared_sizes(self, version_id: int, digests: Iterable[str]) -> dict[str, int]:
        """``declared_size`` of each of ``digests`` the version's manifest holds."""
        rows = self.s.execute(
            select(F.c.digest, func.max(F.c.size))
            .where(F.c.version_id == version_id, F.c.digest.in_(sorted(set(digests))))
            .group_by(F.c.digest)
        )
        return {digest: int(size) for digest, size in rows}

    def corrupt(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` whose stored bytes are known to be corrupt."""
        rows = self.s.execute(
            select(B.c.digest).where(
                B.c.digest.in_(sorted(set(digests))), B.c.corrupt_at.isnot(None)
            )
        )
        return list(rows.scalars())

    def unindexed(self) -> list[tuple[str, int]]:
        """(digest, size) of the files of READY versions (soft-deleted ones too) whose
        digest has no row: bytes the registry once held and the index has lost (a
        restored backup, a hand-made delete). Nothing else makes one: a version becomes
        READY only once every row is there, and gc leaves a referenced row alone."""
        row = select(B.c.digest).where(B.c.digest == F.c.digest)
        query = (
            select(F.c.digest, func.max(F.c.size))
            .join(model_versions, model_versions.c.id == F.c.version_id)
            .where(model_versions.c.status == "READY", ~row.exists())
            .group_by(F.c.digest)
            .order_by(F.c.digest)
        )
        return [(d, int(n)) for d, n in self.s.execute(query)]

    def total(self, verified_before: int | None = None) -> tuple[int, int]:
        """How many blobs, and their bytes (``verified_before``: as ``page`` counts them)."""
        count, size = self.s.execute(
            select(func.count(), func.coalesce(func.sum(B.c.size), 0)).where(
                *_stale(verified_before)
            )
        ).one()
        return int(count), int(size)

    # -- resumable uploads ---------------------------------------------------------------

    def find_upload(self, version_id: int, digest: str) -> Row[Any] | None:
        return self.s.execute(
            select(U).where(U.c.version_id == version_id, U.c.digest == digest)
        ).first()

    def find_model_upload(self, model_id: int, digest: str) -> Row[Any] | None:
        """An upload of ``digest`` for any version of the model (resuming a re-run push)."""
        return self.s.execute(
            select(U)
            .join(model_versions, model_versions.c.id == U.c.version_id)
            .where(model_versions.c.model_id == model_id, U.c.digest == digest)
            .order_by(U.c.created_at)
            .limit(1)
        ).first()

    def pending_versions_with(self, digests: Iterable[str], limit: int = 1000) -> list[int]:
        """Ids of PENDING versions whose manifest holds one of ``digests``."""
        rows = self.s.execute(
            select(model_versions.c.id)
            .join(F, F.c.version_id == model_versions.c.id)
            .where(F.c.digest.in_(sorted(set(digests))), model_versions.c.status == "PENDING")
            .distinct()
            .limit(limit)
        )
        return [int(i) for i in rows.scalars()]

    def get_upload(self, upload_id: str) -> Row[Any] | None:
        return self.s.execute(select(U).where(U.c.upload_id == upload_id)).first()

    def add_upload(self, upload_id: str, version_id: int, digest: str, size: int, now: int) -> None:
        self.s.execute(
            insert(U).values(
                upload_id=upload_id, version_id=version_id, digest=digest, size=size, created_at=now
            )
        )

    def remove_upload(self, upload_id: str) -> None:
        self.s.execute(delete(U).where(U.c.upload_id == upload_id))

    def stale_uploads(self, created_before: int) -> list[Row[Any]]:
        return list(self.s.execute(select(U).where(U.c.created_at < created_before)))


def _stale(verified_before: int | None) -> tuple[Any, ...]:
    """The condition of blobs last verified before a time, or never (none: every blob)."""
    if verified_before is None:
        return ()
    return (or_(B.c.verified_at.is_(None), B.c.verified_at < verified_before),)


def _check_sizes(files: Iterable[FileEntry], stored: dict[str, int]) -> None:
    for f in files:
        size = stored.get(f.digest)
        if size is not None and size != f.size:
            raise InvalidParameter(
                f"{f.digest} is {size} bytes, not {f.size} as the manifest declares"
            )
