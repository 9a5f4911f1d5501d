"""Keeping the store honest: expire stuck uploads, purge, prune old versions, collect
garbage, verify bytes.

Garbage collection deletes a blob only when no version (live, soft-deleted or pending)
and no upload refers to it, it is older than the grace period, and a re-check under the
row lock still finds no reference; the row goes first, with a tombstone written in its
place, then the bytes, then the tombstone (``_reclaim``). Tombstones a crash left are
finished first (``_finish_tombstones``). Bytes a crash left in the store without a row
are given one (``_strays``), so they are reclaimed the same way. Soft-deleted versions
keep their bytes until purged (``purge_version``, or the configured retention).

Nothing automatic takes a version something holds (``store/metadata/holds.py``): an
alias, the ``Staging`` or ``Production`` stage, a live deployment, or a lineage child one
of those holds (through any relation but ``retrain``). Pruning keeps such versions
(``protected``), and the configured purge of soft-deleted versions passes over them. A
version a live deployment serves cannot be deleted or purged by hand either
(``_refuse_if_served``).
"""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.artifacts import MAX_VERIFY_JOBS, BlobUse, GcReport, PruneReport, VerifyReport
from cairn.domain.filters import parse_filter
from cairn.domain.models import Actor, VersionStatus
from cairn.domain.progress import NoProgress, Progress
from cairn.domain.uris import parse_version_number
from cairn.errors import InvalidParameter, NotFound
from cairn.service.base import ServiceBase
from cairn.service.retention import check_keep
from cairn.service.row_retention import expire_deliveries, expire_feedback
from cairn.store.blobs.base import BlobInfo
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.database import Tx
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.named_lock import named_lock
from cairn.store.metadata.retention_store import RetentionStore
from cairn.store.metadata.search import version_matches
from cairn.store.metadata.versions_store import VersionStore, prunable_ids

US = 1_000_000
VERIFY_PAGE = 1000  # blob rows `verify` reads at a time
MAX_AGE_S = 100 * 365 * 86400  # a bound for ages given in seconds (a century)


class MaintenanceService(ServiceBase):
    def purge_version(self, actor: Actor, name: str, version: int | str) -> None:
        """Delete a version for good; its bytes become garbage once nothing else uses them.
        A version a live deployment serves is refused (``Conflict``), as by ``delete_version``."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> None:
            model = self._model(s, actor, name, Role.MANAGE, "purge_version", lock=True)
            row = VersionStore(s).find(model.id, number)
            if row is None:
                raise NotFound(f"version {number} of model {name!r} does not exist")
            self._refuse_if_served(s, model, number, "purge")
            aliases = AliasStore(s)
            removed = aliases.for_version(model.id, number)
            aliases.delete_for_version(model.id, number, actor.name, self.clock())
            VersionStore(s).purge(row.id)
            self._audit(s, actor, "version.purge", model=model, version=number)
            for alias in removed:
                self._audit(
                    s,
                    actor,
                    "alias.delete",
                    model=model,
                    version=number,
                    target=alias,
                    before=number,
                )

        self.db.write(run)

    def prune_versions(
        self,
        actor: Actor,
        name: str,
        *,
        keep: int,
        keep_days: float | None = None,
        dry_run: bool = True,
        purge: bool = False,
        filter: str | None = None,
    ) -> PruneReport:
        """Delete the model's live versions older than its newest ``keep`` READY ones, and
        its FAILED ones wherever they are (an upload that never finished is never one of the
        versions kept), except those something holds (``holds.held``: an alias, the
        ``Staging`` or ``Production`` stage, a live deployment, or a lineage child one of
        those holds through any relation but ``retrain``), those an upload in progress
        holds, and (``keep_days``) those created within that many days:
        soft (restorable, bytes kept) or, with ``purge``, for good. ``filter`` (the search
        grammar): only the versions it matches are candidates (``tags.run = 'scratch'``).
        ``dry_run``: only say what."""
        names.validate_model_name(name)
        check_keep(keep, keep_days)
        expr = parse_filter(filter, "versions")
        since = None if keep_days is None else self.clock() - int(keep_days * 86400 * US)

        def run(s: Tx) -> PruneReport:
            doing = "purge_versions" if purge and not dry_run else "prune_versions"
            model = self._model(s, actor, name, Role.MANAGE, doing, lock=not dry_run)
            report = PruneReport(
                model.name, keep, dry_run, purge, keep_days=keep_days, filter=filter
            )
            versions = VersionStore(s)
            matching = None if expr is None else version_matches(expr, model.id)
            below = versions.nth_newest_ready(model.id, keep)  # None: keeps every READY one
            older = versions.live_below(model.id, below, since, matching)
            doomed = [r for r in older if r.prunable]
            freed = BlobIndexStore(s).held_only_by(prunable_ids(model.id, below, since, matching))
            if not dry_run and doomed:
                ids = [r.id for r in doomed]
                if purge:
                    versions.purge_many(ids)
                else:
                    versions.delete_many(ids, self.clock())
                action = "version.purge" if purge else "version.delete"
                for row in doomed:
                    self._audit(
                        s,
                        actor,
                        action,
                        model=model,
                        version=row.version,
                        after={
                            "pruned_keeping": keep,
                            "keep_days": keep_days,
                            **({} if filter is None else {"filter": filter}),
                        },
                    )
            return replace(
                report,
                pruned=tuple(r.version for r in doomed),
                protected=tuple(r.version for r in older if not r.prunable),
                bytes=freed,
            )

        # a dry run reads (no lock, no writer): gc's dry run does one per model
        return self.db.read(run) if dry_run else self.db.write(run)

    def expire_pending(self, actor: Actor) -> list[tuple[str, int]]:
        """Versions PENDING for longer than the limit become FAILED, with the reason."""
        self._require_admin(actor, "expire_pending")
        now = self.clock()
        cut = now - self.limits.pending_timeout_s * US

        def run(s: Tx) -> list[tuple[str, int]]:
            failed = []
            store = VersionStore(s)
            for row in store.pending_before(cut):
                missing = BlobIndexStore(s).missing_for_version(row.id)
                store.update(
                    row.id,
                    now,
                    status=VersionStatus.FAILED.value,
                    status_message=(
                        f"upload did not finish within {self.limits.pending_timeout_s}s; "
                        f"{len(missing)} blob(s) never arrived"
                    ),
                )
                model = ModelStore(s).get_by_id(row.model_id)
                failed.append((model.name, int(row.version)))
                self._audit(
                    s,
                    actor,
                    "version.expire",
                    model=model,
                    version=int(row.version),
                    before={"status": VersionStatus.PENDING.value},
                    after={"status": VersionStatus.FAILED.value, "missing_blobs": len(missing)},
                )
            return failed

        return self.db.write(run)

    def gc(
        self,
        actor: Actor,
        *,
        dry_run: bool = True,
        grace_s: int | None = None,
        keep: int | None = None,
        keep_days: float | None = None,
    ) -> GcReport:
        """Apply the retention policies, then reclaim blobs nothing refers to. Dry run by
        default: report, change nothing. Each model with a policy of its own
        (``set_retention``) is pruned by it (``prune_versions``); every other model by
        ``keep``/``keep_days`` if given, else by the instance's ``keep_versions``
        settings. Finished webhook deliveries and feedback points older than their
        retention settings are deleted too (``row_retention``)."""
        self._require_admin(actor, "gc")
        grace = self.limits.gc_grace_s if grace_s is None else grace_s
        if grace < 0:
            raise InvalidParameter("grace must not be negative")
        if keep is None:
            if keep_days is not None:
                raise InvalidParameter("keep_days goes with keep: how many versions stay")
            keep, keep_days = self.limits.keep_versions, self.limits.keep_versions_days
        # one gc at a time changes things: a second one could give a row to bytes the
        # first is about to delete (``_strays``)
        with contextlib.nullcontext() if dry_run else named_lock(self.db, "gc", wait=False):
            return self._gc(actor, grace, keep, keep_days, dry_run=dry_run)

    def _gc(
        self, actor: Actor, grace: int, keep: int | None, keep_days: float | None, *, dry_run: bool
    ) -> GcReport:
        now = self.clock()
        finished = self._finish_tombstones(dry_run=dry_run)  # before anything else
        failed = [] if dry_run else self.expire_pending(actor)
        pruned = self._prune_all(actor, keep, keep_days, dry_run)
        purged = [] if dry_run else self._purge_expired(actor, now)
        stale = 0 if dry_run else self._drop_stale_uploads(now)
        limits = self.limits
        deliveries = expire_deliveries(
            self.db, now, limits.webhook_delivery_retention_s, dry_run=dry_run
        )
        points = expire_feedback(self.db, now, limits.feedback_retention_s, dry_run=dry_run)
        cut = now - grace * US
        reclaimed = finished + self._strays(cut, dry_run=dry_run)
        candidates = self.db.read(lambda s: BlobIndexStore(s).unreferenced(cut))
        for row in candidates:
            if not dry_run and not self._reclaim(row.digest):
                continue
            reclaimed.append(BlobUse(row.digest, int(row.size)))
        if not dry_run:
            summary = {
                "blobs": len(reclaimed),
                "bytes": sum(b.size for b in reclaimed),
                "purged_versions": [list(v) for v in purged[:1000]],
                "failed_versions": [list(v) for v in failed[:1000]],
                "pruned_versions": [list(v) for v in pruned[:1000]],
                "stale_uploads": stale,
                "webhook_deliveries": deliveries,
                "feedback_points": points,
            }
            self.db.write(lambda s: self._audit(s, actor, "gc.run", after=summary))
        return GcReport(
            dry_run=dry_run,
            blobs=tuple(reclaimed),
            bytes=sum(b.size for b in reclaimed),
            purged_versions=tuple(purged),
            failed_versions=tuple(failed),
            stale_uploads=stale,
            pruned_versions=tuple(pruned),
            webhook_deliveries=deliveries,
            feedback_points=points,
        )

    def _prune_all(
        self, actor: Actor, keep: int | None, keep_days: float | None, dry_run: bool
    ) -> list[tuple[str, int]]:
        """``prune_versions`` on every live model with a policy of its own, by it, and on
        every other live model with more than ``keep`` live versions (None: none)."""
        own = self.db.read(lambda s: RetentionStore(s).all_live())
        plan = [(name, k, days) for name, k, days in own if k > 0]  # 0: it keeps every one
        if keep is not None:
            mine = {name for name, _, _ in own}
            others = self.db.read(lambda s: VersionStore(s).models_over(keep))
            plan += [(name, keep, keep_days) for name in others if name not in mine]
        pruned: list[tuple[str, int]] = []
        for name, k, days in sorted(plan, key=lambda p: p[0].casefold()):
            with contextlib.suppress(NotFound):  # deleted meanwhile
                report = self.prune_versions(actor, name, keep=k, keep_days=days, dry_run=dry_run)
                pruned += [(report.model, v) for v in report.pruned]
        return pruned

    def verify(
        self,
        actor: Actor,
        *,
        progress: Progress | None = None,
        jobs: int = 1,
        older_than_s: float | None = None,
    ) -> VerifyReport:
        """Re-hash every stored blob, ``jobs`` at a time; mark and report the ones whose
        bytes changed. ``progress`` hears of the bytes as they are read (from the worker
        threads). ``older_than_s``: only blobs last verified longer ago than that, or
        never (a scrub spread over several runs: each run takes what the last ones did
        not; a corrupt blob is never marked verified, so every run reports it again)."""
        self._require_admin(actor, "verify")
        if not 1 <= jobs <= MAX_VERIFY_JOBS:
            raise InvalidParameter(f"jobs must be 1 to {MAX_VERIFY_JOBS}, not {jobs}")
        cut = None
        if older_than_s is not None:
            if not 0 <= older_than_s <= MAX_AGE_S:  # NaN fails too
                raise InvalidParameter(f"age {older_than_s!r} must be 0 to {MAX_AGE_S} seconds")
            cut = self.clock() - int(older_than_s * US)
        shown = progress or NoProgress()
        # the files of READY versions the index lost the rows of: never verified, so due
        lost = self.db.read(lambda s: BlobIndexStore(s).unindexed())
        indexed = self.db.read(lambda s: BlobIndexStore(s).total(cut))[1]
        shown.begin("verifying", indexed + sum(size for _, size in lost))

        def check(blob: tuple[str, int], *, has_row: bool = True) -> tuple[BlobUse, bool] | None:
            """The blob's users and whether its bytes are there, if they do not match."""
            digest, size = blob
            try:  # one call: the store says itself when the bytes are gone
                ok, present = self.blobs.verify(digest, shown.advance), True
            except NotFound:
                if has_row and not self.db.read(partial(_has_row, digest)):
                    return None  # gc reclaimed it meanwhile: gone by design, not lost
                ok = present = False
            if has_row:
                self._mark(digest, corrupt=not ok)
            elif ok:  # intact: the row it lost is given back, and it reads again
                self.db.write(partial(_restore, digest, size, self.clock()))
            return None if ok else (BlobUse(digest, size, tuple(self._users(digest))), present)

        checked = total = 0
        bad: list[tuple[BlobUse, bool]] = []
        with ThreadPoolExecutor(jobs, thread_name_prefix="cairn-verify") as pool:
            after = ""  # the index a page at a time: a million rows at once take hundreds of MB
            while page := self.db.read(partial(_index_page, after, cut)):
                bad += [found for found in pool.map(check, page) if found is not None]
                checked, total = checked + len(page), total + sum(size for _, size in page)
                after = page[-1][0]
            unrowed = pool.map(partial(check, has_row=False), lost)
            bad += [found for found in unrowed if found is not None]
            checked, total = checked + len(lost), total + sum(size for _, size in lost)
        shown.end()
        return VerifyReport(
            checked=checked,
            bytes=total,
            corrupt=tuple(use for use, present in bad if present),
            missing=tuple(use for use, present in bad if not present),
        )

    def _strays(self, cut: int, *, dry_run: bool) -> list[BlobUse]:
        """Bytes the blob store holds without a row, stored before ``cut``: what a crash
        left between storing a blob and recording it (an upload) or between forgetting it
        and deleting it (``_reclaim``). Each gets a row dated when it was stored, so the
        reclaim that follows takes it with the same grace, lock and re-check as any other
        blob (one a version names stays, and counts as stored). A dry run adopts none and
        returns those the reclaim would take."""
        would: list[BlobUse] = []
        old = (b for b in self.blobs.iter_blobs() if b.modified * US < cut)
        while batch := list(itertools.islice(old, 500)):
            strays = self.db.read(partial(_unknown, batch))
            if strays and dry_run:
                would += self.db.read(partial(_unused, strays))
            elif strays:
                self.db.write(partial(_adopt, strays))
        return would

    def _reclaim(self, digest: str) -> bool:
        """Delete one blob if a re-check under its row lock finds it still unused: in one
        transaction the row goes and a tombstone takes its place; then the bytes go, then
        the tombstone (``_bury``).

        The tombstone is what keeps an upload of the same digest from landing between the
        commit and the bytes' deletion: a new version naming the digest is PENDING (the
        row is gone), the blob store says its bytes are "already stored", and recording
        them would make the version READY just before the bytes vanish. While the
        tombstone stands, ``BlobIndexStore.record`` refuses them (503: send again); once
        it is gone, the bytes are too, and the upload's check of the store (in its
        recording transaction, ``ArtifactsService._record_blobs``) finds that out. Deleting
        the bytes before the commit instead would let a crash leave a row without bytes.
        A crash after the commit leaves the tombstone: the next gc finishes it."""
        now = self.clock()

        def claim(s: Tx) -> bool:
            index = BlobIndexStore(s)
            if not index.claim_for_deletion(digest):
                return False
            index.delete(digest)
            index.add_tombstone(digest, now)
            return True

        if not self.db.write(claim):
            return False
        self._bury(digest)
        return True

    def _bury(self, digest: str) -> None:
        """Delete a tombstoned blob's bytes (gone already is fine), then its tombstone."""
        self.blobs.delete(digest)
        self.db.write(lambda s: BlobIndexStore(s).remove_tombstone(digest))

    def _finish_tombstones(self, *, dry_run: bool) -> list[BlobUse]:
        """Finish the deletions a crashed gc left between its commit and its tombstone's
        removal: the bytes that are still there (what this returns; a dry run only says
        so), then the tombstone. Runs under gc's lock, before anything else: until it has
        run, uploads of those digests are refused."""
        left: list[BlobUse] = []
        for digest in self.db.read(lambda s: BlobIndexStore(s).tombstones()):
            size = self.blobs.size(digest)
            if size is not None:
                left.append(BlobUse(digest, size))
            if not dry_run:
                self._bury(digest)
        return left

    def _mark(self, digest: str, *, corrupt: bool) -> None:
        now = self.clock()
        self.db.write(lambda s: BlobIndexStore(s).mark(digest, now, corrupt=corrupt))

    def _users(self, digest: str) -> list[tuple[str, int]]:
        return self.db.read(lambda s: BlobIndexStore(s).users(digest))

    def _drop_upload(self, upload_id: str) -> None:
        with contextlib.suppress(NotFound):
            self.blobs.abort_upload(upload_id)
        self.db.write(lambda s: BlobIndexStore(s).remove_upload(upload_id))

    def _purge_expired(self, actor: Actor, now: int) -> list[tuple[str, int]]:
        """Purge the versions soft-deleted longer ago than the retention allows, but those
        something still holds (``VersionStore.deleted_before``), each one audited as
        ``version.purge`` in the transaction that purges it."""
        keep = self.limits.purge_deleted_after_s
        if keep is None:
            return []

        def run(s: Tx) -> list[tuple[str, int]]:
            purged = []
            for row in VersionStore(s).deleted_before(now - keep * US):
                model = ModelStore(s).get_by_id(row.model_id)
                purged.append((model.name, int(row.version)))
                VersionStore(s).purge(row.id)
                self._audit(
                    s,
                    actor,
                    "version.purge",
                    model=model,
                    version=int(row.version),
                    after={"deleted_longer_than_s": keep},
                )
            return purged

        return self.db.write(run)

    def _drop_stale_uploads(self, now: int) -> int:
        cut = now - self.limits.pending_timeout_s * US
        stale = self.db.read(lambda s: BlobIndexStore(s).stale_uploads(cut))
        for upload in stale:
            self._drop_upload(upload.upload_id)
        return len(stale) + self.blobs.purge_stale(self.limits.pending_timeout_s)


def _index_page(after: str, verified_before: int | None, s: Tx) -> list[tuple[str, int]]:
    return BlobIndexStore(s).page(after, VERIFY_PAGE, verified_before)


def _has_row(digest: str, s: Tx) -> bool:
    return BlobIndexStore(s).find(digest) is not None


def _restore(digest: str, size: int, now: int, s: Tx) -> None:
    """Give the intact bytes of a READY version's file back the row the index lost, as
    verified (not while gc is deleting the digest: it has a tombstone)."""
    index = BlobIndexStore(s)
    if not index.tombstoned([digest]):
        index.adopt(digest, size, now)
        index.mark(digest, now, corrupt=False)


def _unknown(blobs: list[BlobInfo], s: Tx) -> list[BlobInfo]:
    """Those of ``blobs`` the index has no row for and no tombstone (gc is deleting those:
    ``_finish_tombstones`` counts them)."""
    index = BlobIndexStore(s)
    unknown = index.unknown(b.digest for b in blobs)
    unknown -= index.tombstoned(unknown)
    return [b for b in blobs if b.digest in unknown]


def _unused(blobs: list[BlobInfo], s: Tx) -> list[BlobUse]:
    """Those of ``blobs`` no version or upload refers to."""
    index = BlobIndexStore(s)
    return [BlobUse(b.digest, b.size) for b in blobs if not index.is_referenced(b.digest)]


def _adopt(blobs: list[BlobInfo], s: Tx) -> None:
    """Give ``blobs`` rows, but those with a tombstone: they are being deleted."""
    index = BlobIndexStore(s)
    doomed = index.tombstoned(b.digest for b in blobs)
    for b in blobs:
        if b.digest not in doomed:
            index.adopt(b.digest, b.size, int(b.modified * US))
