"""GC, purge, PENDING expiry and verify through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select, update

from cairn.domain.artifacts import Retention
from cairn.domain.models import SYSTEM, FileEntry, VersionSpec, VersionStatus
from cairn.errors import (
    Conflict,
    DataCorrupted,
    InvalidFilter,
    InvalidParameter,
    NotFound,
    Unavailable,
)
from cairn.service import maintenance
from cairn.service.base import Limits
from cairn.service.registry import RegistryService
from cairn.store.blobs.base import BlobStore
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.named_lock import named_lock
from cairn.store.metadata.schema import blobs, model_versions, version_scans

US = 1_000_000
DAY = 86400 * US


def entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path, len(data), "sha256:" + hashlib.sha256(data).hexdigest())


def push(service: RegistryService, name: str, files: dict[str, bytes]) -> int:
    spec = VersionSpec(files=tuple(entry(p, b) for p, b in files.items()))
    version = service.create_version(SYSTEM, name, spec)
    for data in files.values():
        d = entry("x", data).digest
        if d in service.missing_blobs(SYSTEM, name, version.version):
            service.put_blob(SYSTEM, name, version.version, d, [data])
    return version.version


def stored(blob_root: Path) -> int:
    return len([p for p in (blob_root / "blobs").rglob("*") if p.is_file()])


def test_gc_keeps_what_versions_use_and_soft_deleted_until_purged(
    service: RegistryService, blob_root: Path
) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"shared": b"shared", "a": b"only in v1"})
    push(service, "m", {"shared": b"shared", "b": b"only in v2"})
    assert stored(blob_root) == 3
    report = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert report.blobs == ()
    service.delete_version(SYSTEM, "m", 1)  # soft: bytes stay, restore must work
    assert service.gc(SYSTEM, dry_run=False, grace_s=0).blobs == ()
    service.purge_version(SYSTEM, "m", 1)
    dry = service.gc(SYSTEM, dry_run=True, grace_s=0)
    assert [b.size for b in dry.blobs] == [len(b"only in v1")]
    assert stored(blob_root) == 3  # dry run touched nothing
    done = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert done.bytes == len(b"only in v1")
    assert stored(blob_root) == 2
    assert service.create_version(SYSTEM, "m").version == 3  # the purged number stays used
    assert service.open_file(SYSTEM, "m", 2, "shared").chunks is not None


def test_gc_grace_period(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"bytes"})
    service.purge_version(SYSTEM, "m", 1)
    assert service.gc(SYSTEM, dry_run=False, grace_s=3600).blobs == ()
    assert len(service.gc(SYSTEM, dry_run=False, grace_s=0).blobs) == 1


def test_gc_reclaims_bytes_a_crash_left_without_a_row(
    service: RegistryService, blob_root: Path
) -> None:
    """A server that dies between storing a blob and recording it leaves bytes the index
    does not know: gc gives them a row, reclaims them after the grace period unless a
    version waits for them, and then they count as stored."""
    service.create_model(SYSTEM, "m")
    waited, orphan = entry("w", b"waited for"), entry("o", b"orphan")
    service.create_version(SYSTEM, "m", VersionSpec(files=(waited,)))
    service.blobs.put(waited.digest, waited.size, [b"waited for"])  # neither recorded
    service.blobs.put(orphan.digest, orphan.size, [b"orphan"])
    assert service.gc(SYSTEM, dry_run=False, grace_s=3600).blobs == ()  # too young
    dry = service.gc(SYSTEM, dry_run=True, grace_s=0)
    assert [b.digest for b in dry.blobs] == [orphan.digest]
    assert stored(blob_root) == 2  # dry run touched nothing
    done = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert [(b.digest, b.size) for b in done.blobs] == [(orphan.digest, orphan.size)]
    assert not service.blobs.exists(orphan.digest)
    assert service.missing_blobs(SYSTEM, "m", 1) == []
    assert service.finalize_version(SYSTEM, "m", 1).status is VersionStatus.READY
    assert service.verify(SYSTEM).checked == 1


def test_an_upload_whose_completion_was_cut_short_completes(service: RegistryService) -> None:
    """The store moved the bytes into place, then the server died before recording them:
    the upload resumes with nothing left to send, and completing it records them."""
    data = b"x" * 5000
    big = entry("big", data)
    service.create_model(SYSTEM, "m")
    service.create_version(SYSTEM, "m", VersionSpec(files=(big,)))
    ticket = service.begin_upload(SYSTEM, "m", 1, big.digest)
    service.append_upload(SYSTEM, ticket.upload_id, 0, [data])
    service.blobs.complete_upload(ticket.upload_id)  # the store's half only
    again = service.begin_upload(SYSTEM, "m", 1, big.digest)
    assert (again.upload_id, again.offset) == (ticket.upload_id, big.size)
    assert service.upload_status(SYSTEM, ticket.upload_id).offset == big.size
    receipt = service.complete_upload(SYSTEM, ticket.upload_id)
    assert receipt.version_status is VersionStatus.READY
    with pytest.raises(NotFound):
        service.upload_status(SYSTEM, ticket.upload_id)


class Crash(Exception):
    """The process dying where it is raised."""


class RacingStore:
    """The real blob store, with hooks where gc and an upload can meet: ``before_delete``
    runs (once) when ``delete`` is called, before the bytes go; ``crash_on_delete`` makes
    ``delete`` raise ``Crash`` instead; ``after_size`` runs (once, off the main thread)
    after ``size`` has answered."""

    def __init__(self, real: BlobStore) -> None:
        self.real = real
        self.before_delete: Callable[[str], None] | None = None
        self.crash_on_delete = False
        self.after_size: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def delete(self, digest: str) -> None:
        hook, self.before_delete = self.before_delete, None
        if hook is not None:
            hook(digest)
        if self.crash_on_delete:
            raise Crash(f"died before deleting {digest}")
        self.real.delete(digest)

    def size(self, digest: str) -> int | None:
        size = self.real.size(digest)
        if (
            self.after_size is not None
            and threading.current_thread() is not threading.main_thread()
        ):
            hook, self.after_size = self.after_size, None
            hook()
        return size

    def put(self, digest: str, size: int, chunks: Iterable[bytes]) -> bool:
        return self.real.put(digest, size, chunks)


DOOMED = b"bytes gc is about to delete"


def _doomed_blob(service: RegistryService) -> tuple[RacingStore, str]:
    """Model "m" whose only version was purged: its one blob is garbage."""
    store = RacingStore(service.blobs)
    service.blobs = store  # type: ignore[assignment]
    service.create_model(SYSTEM, "m")
    push(service, "m", {"w": DOOMED})
    service.purge_version(SYSTEM, "m", 1)
    return store, entry("w", DOOMED).digest


def _row_and_tombstone(service: RegistryService, digest: str) -> tuple[bool, bool]:
    def read(s: Any) -> tuple[bool, bool]:
        index = BlobIndexStore(s)
        return index.find(digest) is not None, digest in index.tombstoned([digest])

    return service.db.read(read)


def _new_version(service: RegistryService) -> int:
    version = service.create_version(SYSTEM, "m", VersionSpec(files=(entry("w", DOOMED),)))
    assert version.status is VersionStatus.PENDING  # the row is gone
    return version.version


def _sent_again_and_sound(service: RegistryService, version: int, digest: str) -> None:
    assert service.get_version(SYSTEM, "m", version).status is VersionStatus.PENDING
    assert service.missing_blobs(SYSTEM, "m", version) == [digest]
    receipt = service.put_blob(SYSTEM, "m", version, digest, [DOOMED])
    assert receipt.version_status is VersionStatus.READY
    assert service.blobs.exists(digest)
    report = service.verify(SYSTEM)
    assert (report.checked, report.missing, report.corrupt) == (1, (), ())


def test_an_upload_landing_while_gc_deletes_the_bytes_is_refused_until_gc_is_done(
    service: RegistryService,
) -> None:
    """gc has deleted the blob's row and not yet its bytes when a new version names the
    digest and its upload arrives: the store says the bytes are already there, but the
    digest has a tombstone, so recording them is refused (503: send again) and nothing
    is recorded. Once gc is done, sending them again stores them anew."""
    store, digest = _doomed_blob(service)
    raced: list[int] = []

    def upload(deleting: str) -> None:
        assert deleting == digest
        version = _new_version(service)
        raced.append(version)
        with pytest.raises(Unavailable, match="being deleted by gc; send it again"):
            service.put_blob(SYSTEM, "m", version, digest, [DOOMED])
        assert _row_and_tombstone(service, digest) == (False, True)  # nothing recorded
        assert service.missing_blobs(SYSTEM, "m", version) == [digest]

    store.before_delete = upload
    report = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert raced and [b.digest for b in report.blobs] == [digest]
    assert not service.blobs.exists(digest)
    assert _row_and_tombstone(service, digest) == (False, False)
    _sent_again_and_sound(service, raced[0], digest)


def test_an_upload_gc_finishes_under_is_refused(service: RegistryService) -> None:
    """The store says the bytes are already there; then, before the upload records them,
    gc deletes them and its tombstone. Recording a new row looks for the bytes again
    under the row's lock, finds them gone and refuses (503): the version must not become
    READY without them."""
    store, digest = _doomed_blob(service)
    answered, go = threading.Event(), threading.Event()
    outcome: list[BaseException | VersionStatus] = []
    raced: list[int] = []

    def pause() -> None:  # the upload, between the store's answer and recording it
        answered.set()
        assert go.wait(timeout=30)

    def upload() -> None:
        try:
            version = _new_version(service)
            raced.append(version)
            store.after_size = pause
            outcome.append(service.put_blob(SYSTEM, "m", version, digest, [DOOMED]).version_status)
        except BaseException as exc:  # the main thread reports it
            outcome.append(exc)
            answered.set()

    sender = threading.Thread(target=upload)

    def race(_digest: str) -> None:
        sender.start()
        assert answered.wait(timeout=30)

    store.before_delete = race
    service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert not service.blobs.exists(digest)  # gc is done
    go.set()
    sender.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable), outcome
    assert "deleted by gc" in str(outcome[0])
    assert _row_and_tombstone(service, digest) == (False, False)  # nothing recorded
    _sent_again_and_sound(service, raced[0], digest)


def test_a_gc_that_died_before_deleting_the_bytes_is_finished_by_the_next(
    service: RegistryService,
) -> None:
    """gc commits the row's deletion with a tombstone and dies before the bytes go: the
    tombstone stays and refuses uploads of the digest; a dry run reports the bytes and
    changes nothing; the next gc deletes the bytes and the tombstone, and the upload then
    succeeds."""
    store, digest = _doomed_blob(service)
    store.crash_on_delete = True
    with pytest.raises(Crash):
        service.gc(SYSTEM, dry_run=False, grace_s=0)
    store.crash_on_delete = False
    assert service.blobs.exists(digest)
    version = _new_version(service)
    with pytest.raises(Unavailable, match="being deleted by gc"):
        service.put_blob(SYSTEM, "m", version, digest, [DOOMED])
    assert _row_and_tombstone(service, digest) == (False, True)  # nothing recorded

    dry = service.gc(SYSTEM, dry_run=True, grace_s=0)
    assert [(b.digest, b.size) for b in dry.blobs] == [(digest, len(DOOMED))]
    assert _row_and_tombstone(service, digest) == (False, True)  # a dry run changes nothing
    assert service.blobs.exists(digest)

    report = service.gc(SYSTEM, dry_run=False, grace_s=3600)  # a tombstone has no grace
    assert [(b.digest, b.size) for b in report.blobs] == [(digest, len(DOOMED))]
    assert _row_and_tombstone(service, digest) == (False, False)
    assert not service.blobs.exists(digest)
    _sent_again_and_sound(service, version, digest)


def test_one_gc_at_a_time(service: RegistryService) -> None:
    with named_lock(service.db, "gc"):  # another process's gc, say
        with pytest.raises(Conflict, match="another gc is running"):
            service.gc(SYSTEM, dry_run=False)
        assert service.gc(SYSTEM, dry_run=True).dry_run  # a dry run takes no lock
    assert not service.gc(SYSTEM, dry_run=False).dry_run


def test_stuck_pending_versions_fail_with_a_reason(service: RegistryService) -> None:
    service.limits = Limits(pending_timeout_s=60)
    service.create_model(SYSTEM, "m")
    spec = VersionSpec(files=(entry("w", b"never uploaded"),))
    service.create_version(SYSTEM, "m", spec)
    assert service.expire_pending(SYSTEM) == []
    real_clock = service.clock
    service.clock = lambda: real_clock() + 120 * 1_000_000
    assert service.expire_pending(SYSTEM) == [("m", 1)]
    failed = service.get_version(SYSTEM, "m", 1)
    assert failed.status is VersionStatus.FAILED
    assert "never arrived" in failed.status_message


def test_an_upload_finishing_while_pending_versions_expire_keeps_its_version_ready(
    service: RegistryService,
) -> None:
    """The last blob of a stuck version lands while gc fails the stuck versions: the
    version the upload made READY must not be failed afterwards (its bytes would then
    count as unreferenced), nor told READY and left FAILED."""
    service.limits = Limits(pending_timeout_s=60)
    service.create_model(SYSTEM, "m")
    late = entry("w", b"arrives late")
    service.create_version(SYSTEM, "m", VersionSpec(files=(late,)))
    real_clock = service.clock
    service.clock = lambda: real_clock() + 120 * US
    receipts: list[VersionStatus] = []

    def upload() -> None:
        receipt = service.put_blob(SYSTEM, "m", 1, late.digest, [b"arrives late"])
        receipts.append(receipt.version_status)

    landed = threading.Thread(target=upload)

    def before(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        # expire_pending has chosen the version and is about to fail it: the upload lands
        if statement.lstrip().upper().startswith("UPDATE MODEL_VERSIONS") and not landed.ident:
            landed.start()
            landed.join(timeout=2)  # SQLite: it waits for this writer, and runs after it

    event.listen(service.db.engine, "before_cursor_execute", before)
    try:
        failed = service.expire_pending(SYSTEM)
    finally:
        event.remove(service.db.engine, "before_cursor_execute", before)
    landed.join()
    status = service.get_version(SYSTEM, "m", 1).status
    assert receipts == [status]  # the upload was told what became of the version
    assert (failed == [("m", 1)]) == (status is VersionStatus.FAILED)


def test_a_blob_landing_completes_every_version_waiting_for_it(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    spec = VersionSpec(files=(entry("w", b"weights"),))
    service.create_version(SYSTEM, "m", spec)  # v1 interrupted before upload
    service.create_version(SYSTEM, "m", spec)  # v2: the re-run
    service.put_blob(SYSTEM, "m", 2, entry("w", b"weights").digest, [b"weights"])
    assert service.get_version(SYSTEM, "m", 1).status is VersionStatus.READY
    assert service.get_version(SYSTEM, "m", 2).status is VersionStatus.READY


def test_verify_reports_missing_and_corrupt(service: RegistryService, blob_root: Path) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"A" * 100, "b": b"B" * 100})
    assert service.verify(SYSTEM).corrupt == ()
    files = sorted(p for p in (blob_root / "blobs").rglob("*") if p.is_file())
    files[0].chmod(0o644)
    files[0].write_bytes(b"Z" * 100)
    files[1].unlink()
    report = service.verify(SYSTEM)
    assert report.checked == 2
    assert len(report.corrupt) == 1 and len(report.missing) == 1
    assert report.corrupt[0].versions == (("m", 1),)


def test_verify_checks_the_files_of_ready_versions_the_index_has_no_row_for(
    service: RegistryService, blob_root: Path
) -> None:
    """A READY version's file whose digest lost its ``blobs`` row cannot be downloaded
    ("missing or corrupt; run `cairn verify`"): verify finds it. Its bytes gone: reported
    missing; changed: corrupt; intact: the row is given back, and the file reads again."""
    service.create_model(SYSTEM, "m")
    files = {"gone": b"G" * 100, "bad": b"B" * 100, "fine": b"F" * 100}
    push(service, "m", files)
    digests = {p: entry(p, b).digest for p, b in files.items()}
    with service.db.engine.begin() as c:  # the rows lost (a restore, a hand-made delete)
        c.execute(blobs.delete())
    on_disk = {p: blob_root / "blobs" / "sha256" / d[7:9] / d[7:] for p, d in digests.items()}
    on_disk["gone"].unlink()
    on_disk["bad"].chmod(0o644)
    on_disk["bad"].write_bytes(b"Z" * 100)
    with pytest.raises(DataCorrupted):
        b"".join(service.open_file(SYSTEM, "m", 1, "fine").chunks)
    report = service.verify(SYSTEM)
    assert [(b.digest, b.versions) for b in report.missing] == [(digests["gone"], (("m", 1),))]
    assert [(b.digest, b.versions) for b in report.corrupt] == [(digests["bad"], (("m", 1),))]
    assert report.checked == 3
    assert b"".join(service.open_file(SYSTEM, "m", 1, "fine").chunks) == files["fine"]
    again = service.verify(SYSTEM)  # "fine" has its row back and is checked as any other
    assert (again.checked, len(again.missing), len(again.corrupt)) == (3, 1, 1)


def test_verify_names_every_version_that_uses_a_bad_blob(
    service: RegistryService, blob_root: Path
) -> None:
    """A blob shared by many versions (a tokenizer pushed with each) found corrupt is
    reported with all of them: the list is what an operator repairs from, and a cut one
    reads as if the rest were safe."""
    service.create_model(SYSTEM, "m")
    for i in range(25):
        files = {"tok.json": b"T" * 100, "copy/tok.json": b"T" * 100, "w": bytes([i]) * 10}
        push(service, "m", files)  # twice in each: each version is named once
    d = entry("x", b"T" * 100).digest
    path = blob_root / "blobs" / "sha256" / d[7:9] / d[7:]
    path.chmod(0o644)
    path.write_bytes(b"Z" * 100)
    [bad] = service.verify(SYSTEM).corrupt
    assert bad.versions == tuple(("m", v) for v in range(1, 26))


def test_verify_does_not_report_a_blob_gc_reclaimed_while_it_ran(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc and verify each on a schedule may overlap: a blob no version uses, reclaimed
    after verify read its row and before it read the bytes, is gone by design, not
    MISSING (which fails the run with exit 1)."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"kept": b"K" * 100, "dropped": b"D" * 100})
    service.purge_version(SYSTEM, "m", 1)
    push(service, "m", {"kept": b"K" * 100})
    store, real = service.blobs, service.blobs.verify
    dropped = entry("x", b"D" * 100).digest

    def gc_meanwhile(digest: str, read: Any = None) -> bool:
        if digest == dropped:
            service.gc(SYSTEM, dry_run=False, grace_s=0)
        return real(digest, read)

    monkeypatch.setattr(store, "verify", gc_meanwhile)
    report = service.verify(SYSTEM)
    assert (report.corrupt, report.missing) == ((), ())
    assert not store.exists(dropped)


class Recorder:
    """A ``Progress`` that keeps what it heard (from several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.begun: list[tuple[str, int]] = []
        self.advanced = 0
        self.ended = 0

    def begin(self, description: str, total: int) -> None:
        self.begun.append((description, total))

    def advance(self, n: int) -> None:
        with self.lock:
            self.advanced += n

    def end(self) -> None:
        self.ended += 1


def test_verify_in_parallel_reports_progress_and_the_same_findings(
    service: RegistryService, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several blobs at once, the index read a page at a time: every byte is read once
    and told to the progress, and a corrupt and a missing blob are found as they are one
    at a time."""
    monkeypatch.setattr(maintenance, "VERIFY_PAGE", 4)  # 9 blobs: three pages
    service.create_model(SYSTEM, "m")
    files = {f"f{i}": bytes([i]) * (1000 + 4096 * i) for i in range(9)}
    push(service, "m", files)
    total = sum(len(b) for b in files.values())
    heard = Recorder()
    clean = service.verify(SYSTEM, progress=heard, jobs=4)
    assert (clean.checked, clean.bytes, clean.corrupt, clean.missing) == (9, total, (), ())
    assert (heard.begun, heard.advanced, heard.ended) == ([("verifying", total)], total, 1)
    blobs = sorted(p for p in (blob_root / "blobs").rglob("*") if p.is_file())
    blobs[3].chmod(0o644)
    blobs[3].write_bytes(b"Z" * blobs[3].stat().st_size)
    blobs[5].unlink()
    one, many = service.verify(SYSTEM), service.verify(SYSTEM, jobs=8)
    assert one == many
    assert (len(many.corrupt), len(many.missing)) == (1, 1)
    for bad in (0, 65):
        with pytest.raises(InvalidParameter, match="jobs must be 1 to 64"):
            service.verify(SYSTEM, jobs=bad)


def test_verify_older_than_takes_only_blobs_not_verified_since(
    service: RegistryService, blob_root: Path
) -> None:
    """A scrub spread over runs: each run re-hashes the blobs the last ones did not
    verify within the age, and a corrupt blob, never marked verified, every time."""
    now = [1_000_000_000 * US]
    service.clock = lambda: now[0]
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"A" * 100})  # stored (and verified) at t0
    now[0] += 10 * DAY
    push(service, "m", {"b": b"B" * 200})  # at t0 + 10 days
    now[0] += 5 * DAY
    week = 7 * 86400
    assert service.verify(SYSTEM, older_than_s=week).checked == 1  # "a" only
    assert service.verify(SYSTEM, older_than_s=week).checked == 0  # just verified
    now[0] += 1
    both = service.verify(SYSTEM, older_than_s=0)  # verified before now: all of them
    assert (both.checked, both.bytes) == (2, 300)
    [a_blob] = [
        p for p in (blob_root / "blobs").rglob("*") if p.is_file() and p.stat().st_size == 100
    ]
    a_blob.chmod(0o644)
    a_blob.write_bytes(b"Z" * 100)
    now[0] += DAY
    assert len(service.verify(SYSTEM, older_than_s=week * 52).corrupt) == 0  # not due yet
    assert len(service.verify(SYSTEM, older_than_s=3600).corrupt) == 1
    again = service.verify(SYSTEM, older_than_s=3600)  # not marked verified: found again
    assert (again.checked, len(again.corrupt)) == (1, 1)
    for bad in (-1, float("nan"), 1e300):
        with pytest.raises(InvalidParameter, match="age"):
            service.verify(SYSTEM, older_than_s=bad)


def _prunable_model(service: RegistryService) -> None:
    """Versions 1-7 of "m": 1 carries an alias, 2 is in Production, 3 is PENDING (its
    upload never came), 4 and 5 are plain, 6 and 7 are the newest two. Version 4 alone
    holds "old"; 5 and 7 share "shared"."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    push(service, "m", {"a": b"two"})
    service.create_version(SYSTEM, "m", VersionSpec(files=(entry("w", b"never sent"),)))
    push(service, "m", {"a": b"old"})
    push(service, "m", {"a": b"shared"})
    push(service, "m", {"a": b"six"})
    push(service, "m", {"a": b"shared"})
    service.set_alias(SYSTEM, "m", "champion", 1)
    service.transition_stage(SYSTEM, "m", 2, "Production")


def _live(service: RegistryService) -> list[int]:
    return [v.version for v in service.list_versions(SYSTEM, "m", max_results=100).items]


def test_prune_keeps_the_newest_and_what_an_alias_a_stage_or_an_upload_holds(
    service: RegistryService,
) -> None:
    _prunable_model(service)
    dry = service.prune_versions(SYSTEM, "m", keep=2)
    assert dry.dry_run and not dry.purge
    assert (dry.pruned, dry.protected) == ((4, 5), (1, 2, 3))
    assert dry.bytes == len(b"old")  # "shared" is still v7's
    assert _live(service) == [7, 6, 5, 4, 3, 2, 1]  # a dry run changes nothing

    done = service.prune_versions(SYSTEM, "m", keep=2, dry_run=False)
    assert (done.pruned, done.protected, done.bytes) == ((4, 5), (1, 2, 3), len(b"old"))
    assert _live(service) == [7, 6, 3, 2, 1]
    service.restore_version(SYSTEM, "m", 4)  # soft: restorable, bytes kept
    assert service.open_file(SYSTEM, "m", 4, "a").chunks is not None
    events = [
        (e.action, e.version, e.after)
        for e in service.list_audit(SYSTEM, model="m", max_results=100).items
        if e.action == "version.delete"
    ]
    assert sorted(events) == [
        ("version.delete", 4, {"pruned_keeping": 2, "keep_days": None}),
        ("version.delete", 5, {"pruned_keeping": 2, "keep_days": None}),
    ]
    again = service.prune_versions(SYSTEM, "m", keep=5, dry_run=False)
    assert again.pruned == ()  # 4 is back, but among the newest five now


def test_prune_with_a_filter_deletes_only_what_it_matches(service: RegistryService) -> None:
    _prunable_model(service)
    for number in (1, 2, 4, 6, 7):  # the aliased, the Production one, old, a kept one
        service.set_version_tag(SYSTEM, "m", number, "run", "scratch")
    service.set_version_tag(SYSTEM, "m", 5, "run", "keeper")
    scratch = "tags.run = 'scratch'"
    dry = service.prune_versions(SYSTEM, "m", keep=2, filter=scratch)
    assert (dry.filter, dry.pruned, dry.protected) == (scratch, (4,), (1, 2))
    assert dry.bytes == len(b"old")
    done = service.prune_versions(SYSTEM, "m", keep=1, filter=scratch, dry_run=False)
    assert (done.pruned, done.protected) == ((4, 6), (1, 2))  # 7 is the newest: it stays
    assert _live(service) == [7, 5, 3, 2, 1]
    (event, *_) = [
        e
        for e in service.list_audit(SYSTEM, model="m", max_results=100).items
        if e.action == "version.delete" and e.version == 6
    ]
    assert event.after == {"pruned_keeping": 1, "keep_days": None, "filter": scratch}
    by_name = service.prune_versions(SYSTEM, "m", keep=1, filter="name = 'other'")
    assert by_name.pruned == by_name.protected == ()
    with pytest.raises(InvalidFilter, match="position"):
        service.prune_versions(SYSTEM, "m", keep=1, filter="tags.run = ", dry_run=False)
    assert _live(service) == [7, 5, 3, 2, 1]


def test_prune_with_purge_leaves_the_bytes_to_gc(service: RegistryService) -> None:
    _prunable_model(service)
    report = service.prune_versions(SYSTEM, "m", keep=2, dry_run=False, purge=True)
    assert report.pruned == (4, 5) and report.bytes == len(b"old")
    kept = service.list_versions(SYSTEM, "m", include_deleted=True, max_results=100).items
    assert [v.version for v in kept] == [7, 6, 3, 2, 1]  # gone for good, not soft-deleted
    reclaimed = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert reclaimed.bytes == len(b"old")
    assert service.create_version(SYSTEM, "m").version == 8  # numbers are never reused


def test_prune_of_a_model_with_few_versions_does_nothing(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    report = service.prune_versions(SYSTEM, "m", keep=3, dry_run=False)
    assert (report.pruned, report.protected, report.bytes) == ((), (), 0)
    assert _live(service) == [1]


def test_prune_refuses_a_keep_out_of_range_and_changes_nothing(
    service: RegistryService,
) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    for keep in (0, -1, 1_000_001):
        with pytest.raises(InvalidParameter, match="keep must be between 1 and"):
            service.prune_versions(SYSTEM, "m", keep=keep, dry_run=False)
    with pytest.raises(NotFound):
        service.prune_versions(SYSTEM, "nothing-here", keep=1)
    assert _live(service) == [1]


def test_prune_keeps_versions_younger_than_keep_days(service: RegistryService) -> None:
    real_clock = service.clock
    day = 86_400 * 1_000_000
    service.create_model(SYSTEM, "m")
    for age in (40, 30, 20, 10, 0):  # versions 1-5, created that many days ago
        service.clock = lambda age=age: real_clock() - age * day
        service.create_version(SYSTEM, "m")
    service.clock = real_clock
    report = service.prune_versions(SYSTEM, "m", keep=1, keep_days=15)
    assert (report.keep_days, report.pruned, report.protected) == (15, (1, 2, 3), (4,))
    done = service.prune_versions(SYSTEM, "m", keep=1, keep_days=25, dry_run=False)
    assert (done.pruned, done.protected) == ((1, 2), (3, 4))
    assert _live(service) == [5, 4, 3]
    for keep_days in (-1.0, 36_501.0):
        with pytest.raises(InvalidParameter, match="keep_days must be between 0 and"):
            service.prune_versions(SYSTEM, "m", keep=1, keep_days=keep_days)


def test_gc_applies_keep_versions_to_every_model(service: RegistryService) -> None:
    service.create_model(SYSTEM, "a")
    service.create_model(SYSTEM, "b")
    for _ in range(4):
        service.create_version(SYSTEM, "a")
    service.create_version(SYSTEM, "b")
    service.set_alias(SYSTEM, "a", "champion", 1)
    service.limits = replace(service.limits, keep_versions=2)
    dry = service.gc(SYSTEM, grace_s=0)
    assert dry.pruned_versions == (("a", 2),)  # 1 has an alias, 3-4 are the newest two
    assert [v.version for v in service.list_versions(SYSTEM, "a").items] == [4, 3, 2, 1]
    done = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert done.pruned_versions == (("a", 2),)
    assert [v.version for v in service.list_versions(SYSTEM, "a").items] == [4, 3, 1]
    assert [v.version for v in service.list_versions(SYSTEM, "b").items] == [1]
    service.restore_version(SYSTEM, "a", 2)  # soft: the purge setting decides when it goes
    # an explicit keep wins over the setting for one run
    assert service.gc(SYSTEM, grace_s=0, keep=1).pruned_versions == (("a", 2), ("a", 3))
    service.limits = replace(service.limits, keep_versions=None)
    assert service.gc(SYSTEM, grace_s=0).pruned_versions == ()
    with pytest.raises(InvalidParameter, match="keep_days goes with keep"):
        service.gc(SYSTEM, grace_s=0, keep_days=1)


def test_a_models_own_retention_replaces_the_instances(service: RegistryService) -> None:
    for name in ("own", "all", "plain"):
        service.create_model(SYSTEM, name)
        for _ in range(4):
            service.create_version(SYSTEM, name)
    policy = service.get_retention(SYSTEM, "own")
    assert (policy.own, policy.effective) == (None, Retention(None))  # nothing set anywhere
    service.limits = replace(service.limits, keep_versions=3)
    assert service.get_retention(SYSTEM, "own").effective == Retention(3)
    set_own = service.set_retention(SYSTEM, "own", keep=1)
    assert (set_own.own, set_own.effective) == (Retention(1), Retention(1))
    assert service.set_retention(SYSTEM, "all", keep=None).effective == Retention(None)
    dry = service.gc(SYSTEM, grace_s=0)
    assert dry.pruned_versions == (("own", 1), ("own", 2), ("own", 3), ("plain", 1))
    # gc's keep replaces the instance's setting, not a model's own policy
    wide = service.gc(SYSTEM, grace_s=0, keep=2)
    assert wide.pruned_versions == (("own", 1), ("own", 2), ("own", 3), ("plain", 1), ("plain", 2))
    service.gc(SYSTEM, dry_run=False, grace_s=0)
    live = {
        n: [v.version for v in service.list_versions(SYSTEM, n).items]
        for n in ("own", "all", "plain")
    }
    assert live == {"own": [4], "all": [4, 3, 2, 1], "plain": [4, 3, 2]}
    cleared = service.clear_retention(SYSTEM, "all")
    assert (cleared.own, cleared.effective) == (None, Retention(3))
    assert service.gc(SYSTEM, grace_s=0).pruned_versions == (("all", 1),)
    events = [
        e for e in service.list_audit(SYSTEM, model="all").items if e.action == "retention.policy"
    ]
    assert [(e.before, e.after) for e in events] == [
        ({"keep": None, "keep_days": None}, None),
        (None, {"keep": None, "keep_days": None}),
    ]


def test_a_retention_policy_is_checked_and_a_bad_one_changes_nothing(
    service: RegistryService,
) -> None:
    service.create_model(SYSTEM, "m")
    service.set_retention(SYSTEM, "m", keep=5, keep_days=30)
    for keep, days, match in (
        (0, None, "keep must be between 1 and"),
        (1_000_001, None, "keep must be between 1 and"),
        (2, -1.0, "keep_days must be between 0 and"),
        (None, 3.0, "keep_days goes with keep"),
    ):
        with pytest.raises(InvalidParameter, match=match):
            service.set_retention(SYSTEM, "m", keep=keep, keep_days=days)
    assert service.get_retention(SYSTEM, "m").own == Retention(5, 30.0)
    with pytest.raises(NotFound):
        service.set_retention(SYSTEM, "ghost", keep=1)
    # a deleted model's policy is not applied (its versions are gone with it)
    service.create_version(SYSTEM, "m")
    service.create_version(SYSTEM, "m")
    service.set_retention(SYSTEM, "m", keep=1)
    service.delete_model(SYSTEM, "m")
    assert service.gc(SYSTEM, grace_s=0).pruned_versions == ()


def test_prune_counts_only_ready_versions_among_the_newest_kept(
    service: RegistryService,
) -> None:
    """An upload in progress (PENDING) or one that never finished (FAILED) is not one of
    the newest ``keep``: counting it would prune the newest version anyone can use."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    push(service, "m", {"a": b"two"})  # the newest READY version
    service.create_version(SYSTEM, "m", VersionSpec(files=(entry("w", b"never sent"),)))
    report = service.prune_versions(SYSTEM, "m", keep=1, dry_run=False)
    assert (report.pruned, report.protected) == ((1,), ())
    assert _live(service) == [3, 2]
    assert service.resolve(SYSTEM, "models:/m/latest").version == 2


def test_prune_does_not_count_a_quarantined_version_among_the_newest_kept(
    service: RegistryService,
) -> None:
    """A version its scan quarantined is READY, but its files are refused: keeping the
    newest one would then keep nothing anyone can pull. The newest usable one is kept, and
    the quarantined one, newer, is not pruned either (nothing newer than the kept is)."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    push(service, "m", {"a": b"two"})
    push(service, "m", {"a": b"three"})  # quarantined below
    three = service.get_version(SYSTEM, "m", 3)

    def quarantine(s: Any) -> None:
        vid = s.execute(
            select(model_versions.c.id).where(model_versions.c.version == 3)
        ).scalar_one()
        s.execute(delete(version_scans).where(version_scans.c.version_id == vid))
        verdict = {"status": "flagged", "action": "quarantine", "quarantined": True}
        s.execute(insert(version_scans).values(version_id=vid, scanned_at=0, **verdict))

    service.db.write(quarantine)
    assert three.status is VersionStatus.READY
    report = service.prune_versions(SYSTEM, "m", keep=1, dry_run=False)
    assert report.pruned == (1,)
    assert _live(service) == [3, 2]


def _failed_version(service: RegistryService, name: str) -> int:
    """A version whose upload never finished, as ``expire_pending`` leaves it."""
    number = service.create_version(
        SYSTEM, name, VersionSpec(files=(entry("w", b"never sent"),))
    ).version
    service.db.write(
        lambda s: s.execute(
            update(model_versions)
            .where(model_versions.c.version == number)
            .values(status=VersionStatus.FAILED.value)
        )
    )
    return number


def test_prune_deletes_failed_versions_newer_than_the_ready_ones_kept(
    service: RegistryService,
) -> None:
    """``--keep N`` keeps the newest N READY versions: a FAILED version is never one of them,
    so it goes wherever it is (unless something protects it); a PENDING one stays."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})  # 1
    _failed_version(service, "m")  # 2
    push(service, "m", {"a": b"three"})  # 3: the newest READY version
    _failed_version(service, "m")  # 4
    service.create_version(SYSTEM, "m", VersionSpec(files=(entry("w", b"coming"),)))  # 5
    dry = service.prune_versions(SYSTEM, "m", keep=1)
    assert (dry.pruned, dry.protected) == ((1, 2, 4), ())
    done = service.prune_versions(SYSTEM, "m", keep=1, dry_run=False)
    assert done.pruned == (1, 2, 4)
    assert _live(service) == [5, 3]
    # with fewer READY versions than kept, the failed ones go all the same
    _failed_version(service, "m")  # 6
    assert service.prune_versions(SYSTEM, "m", keep=5, dry_run=False).pruned == (6,)
    assert _live(service) == [5, 3]


def test_gc_retention_prunes_failed_versions_of_a_model_within_its_keep(
    service: RegistryService,
) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    _failed_version(service, "m")
    service.limits = replace(service.limits, keep_versions=5)
    assert service.gc(SYSTEM, grace_s=0).pruned_versions == (("m", 2),)


def test_prune_keeps_failed_versions_a_keep_days_holds(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    _failed_version(service, "m")
    report = service.prune_versions(SYSTEM, "m", keep=1, keep_days=1)
    assert (report.pruned, report.protected) == ((), (2,))


def test_prune_never_deletes_a_version_an_alias_points_at_even_failed(
    service: RegistryService,
) -> None:
    """A version can fail after an alias points at it (a rescan under ``reject``): the alias
    keeps it, newest or not, as it keeps any other."""
    service.create_model(SYSTEM, "m")
    push(service, "m", {"a": b"one"})
    push(service, "m", {"a": b"two"})
    service.set_alias(SYSTEM, "m", "champion", 2)
    service.db.write(
        lambda s: s.execute(
            update(model_versions)
            .where(model_versions.c.version == 2)
            .values(status=VersionStatus.FAILED.value)
        )
    )
    report = service.prune_versions(SYSTEM, "m", keep=1, dry_run=False)
    assert (report.pruned, report.protected) == ((), (2,))
    assert _live(service) == [2, 1]
    assert service.get_model(SYSTEM, "m").aliases == {"champion": 2}
