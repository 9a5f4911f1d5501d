"""``BlobIndexStore.any_missing`` (the check run on every blob an upload records) agrees
with ``missing_for_version`` (the full list) for every way a manifest's digest can be
missing: not stored, stored but corrupt, or owed by the version's creator (a claim)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update

from cairn.domain.access import Actor, Grant, Role
from cairn.domain.models import FileEntry, VersionSpec
from cairn.service.registry import RegistryService
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.schema import blobs, model_versions

WRITER = Actor("wanda", user_id=1, grants=(Grant(Role.MANAGE, pattern="*"),))


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def test_any_missing_agrees_with_the_full_list(service: RegistryService) -> None:
    paths = ["a.bin", "b/c.bin", "d.bin", "e.bin"]
    service.create_model(WRITER, "m")
    spec = VersionSpec(files=tuple(FileEntry(p, 1, _digest(p)) for p in paths))
    service.create_version(WRITER, "m", spec)
    db = service.db
    version_id = db.read(lambda s: s.execute(select(model_versions.c.id)).scalar_one())

    def check() -> None:
        def run(s: object) -> None:
            index = BlobIndexStore(s)  # type: ignore[arg-type]
            missing = index.missing_for_version(version_id)
            assert index.any_missing(version_id) == bool(missing)
            for digest in map(_digest, paths):
                others = [d for d in missing if d != digest]
                assert index.any_missing(version_id, other_than=digest) == bool(others)

        db.read(run)

    check()  # nothing stored
    for path in paths[:3]:
        db.write(lambda s, p=path: BlobIndexStore(s).record(_digest(p), 1, 0))
        check()  # the last paths missing, then only the first
    db.write(lambda s: BlobIndexStore(s).record(_digest("e.bin"), 1, 0))
    check()  # complete
    db.write(
        lambda s: s.execute(
            update(blobs).where(blobs.c.digest == _digest("b/c.bin")).values(corrupt_at=1)
        )
    )
    check()  # one corrupt
    db.write(lambda s: BlobIndexStore(s).record(_digest("b/c.bin"), 1, 0))
    db.write(lambda s: BlobIndexStore(s).add_claims(version_id, [_digest("a.bin")]))
    check()  # one owed
    db.write(lambda s: BlobIndexStore(s).settle_claim(version_id, _digest("a.bin")))
    check()
    assert not db.read(lambda s: BlobIndexStore(s).any_missing(version_id))
