"""GC, purge, PENDING expiry and verify through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cairn.domain.models import SYSTEM, FileEntry, VersionSpec, VersionStatus
from cairn.service.base import Limits
from cairn.service.registry import RegistryService


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
