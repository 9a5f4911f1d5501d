"""``import_version`` and friends in the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from cairn.domain.models import SYSTEM, Actor, FileEntry, Stage, VersionSpec, VersionStatus
from cairn.errors import AlreadyExists, Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService

BYTES = b"weights"
ENTRY = FileEntry("model.bin", len(BYTES), "sha256:" + hashlib.sha256(BYTES).hexdigest())
WHEN = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def spec(*files: FileEntry, description: str = "") -> VersionSpec:
    return VersionSpec(description=description, files=files)


def test_a_version_gets_the_number_it_is_given(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    v5 = service.import_version(SYSTEM, "m", 5, spec())
    assert v5.version == 5 and v5.status is VersionStatus.READY
    v9 = service.import_version(SYSTEM, "m", 9, spec())
    assert v9.version == 9
    assert [v.version for v in service.list_versions(SYSTEM, "m").items] == [9, 5]
    assert service.create_version(SYSTEM, "m").version == 10  # the counter moved up


def test_a_number_below_the_counter_is_never_reused(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    service.import_version(SYSTEM, "m", 3, spec())
    with pytest.raises(Conflict, match="never reuses"):
        service.import_version(SYSTEM, "m", 2, spec())
    service.create_version(SYSTEM, "m")  # 4
    service.purge_version(SYSTEM, "m", 4)
    with pytest.raises(Conflict, match="never reuses"):
        service.import_version(SYSTEM, "m", 4, spec())


def test_re_import_returns_the_same_version_and_other_content_conflicts(
    service: RegistryService,
) -> None:
    service.create_model(SYSTEM, "m")
    first = service.import_version(SYSTEM, "m", 2, spec(ENTRY, description="a"))
    assert first.status is VersionStatus.PENDING
    again = service.import_version(SYSTEM, "m", 2, spec(ENTRY, description="changed"))
    assert again == first  # the same manifest: returned unchanged
    with pytest.raises(Conflict, match="other content"):
        service.import_version(SYSTEM, "m", 2, spec())
    service.delete_version(SYSTEM, "m", 2)
    with pytest.raises(Conflict, match="deleted"):
        service.import_version(SYSTEM, "m", 2, spec(ENTRY))


def test_files_arrive_as_for_a_push(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    pending = service.import_version(SYSTEM, "m", 7, spec(ENTRY))
    assert pending.status is VersionStatus.PENDING
    assert service.missing_blobs(SYSTEM, "m", 7) == [ENTRY.digest]
    receipt = service.put_blob(SYSTEM, "m", 7, ENTRY.digest, [BYTES])
    assert receipt.version_status is VersionStatus.READY
    service.create_model(SYSTEM, "other")
    ready = service.import_version(SYSTEM, "other", 1, spec(ENTRY))
    assert ready.status is VersionStatus.READY  # the bytes are already stored


def test_history_is_kept(service: RegistryService) -> None:
    model = service.import_model(
        SYSTEM, "m", description="d", tags={"t": "1"}, created_at=WHEN, created_by="alice"
    )
    assert (model.created_at, model.created_by, model.tags) == (WHEN, "alice", {"t": "1"})
    with pytest.raises(AlreadyExists):
        service.import_model(SYSTEM, "M")
    version = service.import_version(
        Actor("importer", is_admin=True), "m", 4, spec(), stage="production", created_at=WHEN
    )
    assert version.stage is Stage.PRODUCTION
    assert version.created_at == WHEN
    assert version.created_by == "importer"


def test_a_failed_record_holds_the_number_until_a_retry_replaces_it(
    service: RegistryService,
) -> None:
    service.create_model(SYSTEM, "m")
    failed = service.import_version(
        SYSTEM, "m", 3, spec(), status="FAILED", status_message="download failed"
    )
    assert failed.status is VersionStatus.FAILED
    assert failed.status_message == "download failed"
    service.import_version(SYSTEM, "m", 5, spec())
    # asking for FAILED again leaves it; asking for READY retries it, files and all
    assert service.import_version(SYSTEM, "m", 3, spec(), status="FAILED") == failed
    retried = service.import_version(SYSTEM, "m", 3, spec(ENTRY, description="now"))
    assert retried.status is VersionStatus.PENDING
    assert retried.description == "now" and retried.files == (ENTRY,)
    service.put_blob(SYSTEM, "m", 3, ENTRY.digest, [BYTES])
    assert service.get_version(SYSTEM, "m", 3).status is VersionStatus.READY


def test_bad_input_is_refused(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    with pytest.raises(InvalidParameter, match="status must be READY"):
        service.import_version(SYSTEM, "m", 1, spec(), status="PENDING")
    with pytest.raises(InvalidParameter):
        service.import_version(SYSTEM, "m", 1, spec(), status="DONE")
    with pytest.raises(InvalidParameter):
        service.import_version(SYSTEM, "m", 0, spec())
    with pytest.raises(InvalidParameter):
        service.import_version(SYSTEM, "m", 1, spec(), stage="Live")
    with pytest.raises(NotFound):
        service.import_version(SYSTEM, "nope", 1, spec())
    assert service.list_versions(SYSTEM, "m").items == []


def test_reserve_moves_the_counter_up_only(service: RegistryService) -> None:
    service.create_model(SYSTEM, "m")
    service.reserve_versions(SYSTEM, "m", 6)
    service.reserve_versions(SYSTEM, "m", 2)
    assert service.create_version(SYSTEM, "m").version == 7
    with pytest.raises(InvalidParameter):
        service.reserve_versions(SYSTEM, "m", -1)
