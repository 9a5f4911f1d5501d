"""Crash at any point: each write use case, killed at every step, leaves the registry whole
(as it was before or as it is after, never in between) and able to carry on.

For each use case in ``CASES``, a forked child process runs it on connections of its own
and dies (``os._exit``: no ``finally``, no rollback, no clean-up) just before its k-th
step, for k = 1, 2, ... until the use case finishes. A step is a change: an SQL statement
that is not a read, a commit, or a call of the local blob store that changes the file
system (creating open, write, fsync, rename, unlink, mkdir, ...). A crash just before a
read leaves what a crash before the next change leaves, so reads are not steps. Every k
starts from the same registry (a copy of its database and blob folder). The parent then
opens the registry, as a restarted server would, and checks:

- the database holds exactly the rows it held before the use case, or exactly those a
  run that was not killed leaves: every table, every column but those that differ
  between two clean runs (random ids and secrets). Use cases that are several
  transactions by design (``gc``, ``prune``) are held to the checks below only;
- every blob the database counts as stored is in the store and hashes to its digest, and
  every file of every READY version is there; the audit chain is unbroken;
- the caller gives up: the clean-up a server does (``gc``, which also drops stale
  uploads; here with no grace period) leaves exactly the blobs the database counts in
  the blob folder: no temporary file, staged upload or orphaned blob;
- or, where the crash came before the commit, the caller tries again, and it succeeds.

The same use cases are then failed in-process at each step in turn, reads included, as a
full disk fails them (``ENOSPC``; the driver's disk-full error): the caller must get a
Cairn error (not a 500), nothing may change, and the same service, with its caches and
connections as the failure left them, must then do the use case exactly as a clean run
does (``fail_everywhere``). The use cases that touch the blob store also run so on S3,
each object-store request failing in turn (``BLOB_CASES``), and crashed there at each
step (by a child of a fork server: ``crash_harness.child``); and they are crashed with a
power loss: what a ``Journal`` of the child's syncs shows a power loss could take is
taken (``lose_power``) before the registry is reopened, and a use case that returned
must then be there in full.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_harness import (
    ACTOR,
    Bucket,
    Folder,
    Registry,
    crash_everywhere,
    fail_everywhere,
)
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from cairn.domain.blob_batch import frames
from cairn.domain.models import Actor, FileEntry, VersionSpec
from cairn.service.registry import RegistryService

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child per crash")

BOOTSTRAP = "cairn-crash-admin-token-0123456789abcdefghij"
CONTENTS = [b"weights " * 300, b"config", b"", b"tokenizer " * 50]
DIGESTS = ["sha256:" + hashlib.sha256(c).hexdigest() for c in CONTENTS]
BIG = b"b" * 4096  # sent as a resumable upload
BIG_DIGEST = "sha256:" + hashlib.sha256(BIG).hexdigest()


def entry(path: str, i: int) -> FileEntry:
    return FileEntry(path, len(CONTENTS[i]), DIGESTS[i])


def put(svc: RegistryService, name: str, version: int, i: int) -> None:
    svc.put_blob(ACTOR, name, version, DIGESTS[i], [CONTENTS[i]])


# -- the registry ---------------------------------------------------------------------------


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """An empty registry on a local folder, on the database of ``db_url`` (on SQLite a
    new ``cairn.db`` in ``tmp_path``, on PostgreSQL the test worker's own, emptied)."""
    engine = create_engine(db_url, poolclass=NullPool)
    yield Registry(tmp_path, db_url, Folder(tmp_path), engine)
    engine.dispose()


@pytest.fixture
def s3_registry(registry: Registry, s3_client: Any, s3_bucket: str) -> Registry:
    """``registry`` on an S3 bucket of its own instead."""
    registry.blobs = Bucket(s3_client, s3_bucket)
    return registry


# -- the use cases -------------------------------------------------------------------------


def two_versions(svc: RegistryService) -> None:
    """Model "m": v1 READY (files 0, 1), v2 READY (files 0, 3), "champion" on v1."""
    svc.create_model(ACTOR, "m")
    for files in ((0, 1), (0, 3)):
        made = svc.create_version(
            ACTOR, "m", VersionSpec(files=tuple(entry(f"f{i}", i) for i in files))
        )
        for i in files:
            if not svc.blobs.exists(DIGESTS[i]):
                put(svc, "m", made.version, i)
    svc.set_alias(ACTOR, "m", "champion", 1)


def pending(svc: RegistryService) -> None:
    """``two_versions``, and v3 PENDING on file 2 (empty) and new file ``big`` (0 stored)."""
    two_versions(svc)
    spec = VersionSpec(files=(entry("empty", 2), big_entry()))
    svc.create_version(ACTOR, "m", spec)


def begun(svc: RegistryService) -> str:
    """``pending`` with a resumable upload of ``big`` begun and 1,000 bytes in."""
    pending(svc)
    ticket = svc.begin_upload(ACTOR, "m", 3, BIG_DIGEST)
    svc.append_upload(ACTOR, ticket.upload_id, 0, [BIG[:1000]])
    return ticket.upload_id


def upload_id(svc: RegistryService) -> str:
    return svc.begin_upload(ACTOR, "m", 3, BIG_DIGEST).upload_id  # resumes the one begun


def resume(svc: RegistryService) -> str:
    """Send the rest of ``big`` from where the staged bytes end, as a client resumes."""
    ticket = svc.begin_upload(ACTOR, "m", 3, BIG_DIGEST)
    if ticket.offset < len(BIG):
        svc.append_upload(ACTOR, ticket.upload_id, ticket.offset, [BIG[ticket.offset :]])
    return ticket.upload_id


def big_entry() -> FileEntry:
    return FileEntry("big", len(BIG), BIG_DIGEST)


def with_users(svc: RegistryService) -> None:
    """An admin (signed in with ``BOOTSTRAP``) and a user "ann"."""
    svc.bootstrap(BOOTSTRAP)
    svc.create_user(ACTOR, "ann")


def admin(svc: RegistryService) -> Actor:
    return svc.authenticate(BOOTSTRAP)


def ann_token(svc: RegistryService) -> int:
    (token,) = [t for t in svc.list_tokens(admin(svc), all_users=True) if t["user"] == "ann"]
    return int(token["id"])


CASES: dict[
    str, tuple[Callable[[RegistryService], object], Callable[[RegistryService], object], bool]
] = {
    "create model": (
        lambda svc: None,
        lambda svc: svc.create_model(
            ACTOR, "new", description="d", tags={"team": "risk"}, idempotency_key="k1"
        ),
        True,
    ),
    "create version, blobs stored": (
        two_versions,
        lambda svc: svc.create_version(
            ACTOR,
            "m",
            VersionSpec(
                tags={"t": "1"},
                params={"lr": "0.1"},
                metrics={"auc": 0.9},
                files=(entry("a", 0), entry("b/c", 1)),
            ),
            idempotency_key="k2",
        ),
        True,
    ),
    "create version, blobs missing": (
        two_versions,
        lambda svc: svc.create_version(
            ACTOR, "m", VersionSpec(files=(entry("a", 0), entry("big", 2)))
        ),
        True,
    ),
    "upload the last blob": (pending, lambda svc: put(svc, "m", 3, 2), True),
    "begin an upload": (pending, lambda svc: svc.begin_upload(ACTOR, "m", 3, BIG_DIGEST), True),
    "append to an upload": (begun, resume, True),
    "complete an upload": (
        lambda svc: (begun(svc), resume(svc)),
        lambda svc: svc.complete_upload(ACTOR, resume(svc)),
        True,
    ),
    "abort an upload": (begun, lambda svc: svc.abort_upload(ACTOR, upload_id(svc)), True),
    "upload a batch": (
        lambda svc: (
            two_versions(svc),
            svc.create_version(
                ACTOR, "m", VersionSpec(files=(entry("c", 1), entry("e", 2), big_entry()))
            ),
        ),
        lambda svc: svc.put_blobs(
            ACTOR, "m", 3, b"".join(frames([(DIGESTS[2], CONTENTS[2]), (BIG_DIGEST, BIG)]))
        ),
        True,
    ),
    "import a version": (
        two_versions,
        lambda svc: svc.import_version(
            ACTOR,
            "m",
            7,
            VersionSpec(tags={"from": "mlflow"}, files=(entry("a", 0),)),
            stage="Staging",
        ),
        True,
    ),
    "approve a promotion": (
        lambda svc: (
            two_versions(svc),
            # the requester as an account: a request applies only while its requester holds
            # the gate's role, as the identity tables say
            svc.create_user(ACTOR, ACTOR.name, admin=True),
            svc.set_policy(ACTOR, "m", "prod*", approvals=1),
            svc.promote(ACTOR, "m", 2, "production"),
        ),
        lambda svc: svc.approve(Actor("bob", is_admin=True), svc.list_requests(ACTOR).items[0].id),
        True,
    ),
    "fail stuck uploads": (pending, lambda svc: svc.expire_pending(ACTOR), True),
    "restore a version": (
        lambda svc: (two_versions(svc), svc.delete_version(ACTOR, "m", 2)),
        lambda svc: svc.restore_version(ACTOR, "m", 2),
        True,
    ),
    "move an alias": (
        two_versions,
        lambda svc: svc.set_alias(ACTOR, "m", "champion", 2, expect=1),
        True,
    ),
    "roll an alias back": (
        lambda svc: (two_versions(svc), svc.set_alias(ACTOR, "m", "champion", 2)),
        lambda svc: svc.rollback_alias(ACTOR, "m", "champion"),
        True,
    ),
    "stage, archiving the rest": (
        lambda svc: (two_versions(svc), svc.transition_stage(ACTOR, "m", 1, "Production")),
        lambda svc: svc.transition_stage(
            ACTOR, "m", 2, "production", archive_existing_versions=True
        ),
        True,
    ),
    "delete a version": (two_versions, lambda svc: svc.delete_version(ACTOR, "m", 2), True),
    "purge a version": (
        lambda svc: (two_versions(svc), svc.delete_version(ACTOR, "m", 2)),
        lambda svc: svc.purge_version(ACTOR, "m", 2),
        True,
    ),
    "rename a model": (two_versions, lambda svc: svc.rename_model(ACTOR, "m", "n"), True),
    "delete a model": (two_versions, lambda svc: svc.delete_model(ACTOR, "m"), True),
    "grant a role": (
        lambda svc: svc.create_user(ACTOR, "ann"),
        lambda svc: svc.grant(ACTOR, "ann", "WRITE", pattern="risk.*"),
        True,
    ),
    "create a token": (
        with_users,
        lambda svc: svc.create_token(admin(svc), user="ann", scope="WRITE", name="ci"),
        True,
    ),
    "revoke a token": (
        lambda svc: (with_users(svc), svc.create_token(admin(svc), user="ann", name="ci")),
        lambda svc: svc.revoke_token(admin(svc), ann_token(svc)),
        True,
    ),
    "prune and purge": (
        lambda svc: (
            two_versions(svc),
            svc.create_version(ACTOR, "m", VersionSpec(files=(entry("z", 0),))),
        ),
        lambda svc: svc.prune_versions(ACTOR, "m", keep=1, dry_run=False, purge=True),
        False,
    ),
    "gc": (
        lambda svc: (
            two_versions(svc),
            svc.delete_version(ACTOR, "m", 1),
            svc.purge_version(ACTOR, "m", 1),
        ),
        lambda svc: svc.gc(ACTOR, dry_run=False, grace_s=0),
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crash_at_any_step_leaves_the_registry_whole(registry: Registry, case: str) -> None:
    setup, op, whole = CASES[case]
    assert crash_everywhere(registry, setup, op, whole=whole) > 0


# the use cases that touch the blob store: run on S3 too, and through a power loss
BLOB_CASES = [
    "create version, blobs stored",
    "upload the last blob",
    "begin an upload",
    "append to an upload",
    "complete an upload",
    "abort an upload",
    "upload a batch",
    "purge a version",
    "gc",
]


@pytest.mark.parametrize("case", BLOB_CASES)
def test_a_power_loss_at_any_step_keeps_what_was_acknowledged_and_leaves_the_registry_whole(
    registry: Registry, case: str
) -> None:
    setup, op, whole = CASES[case]
    assert crash_everywhere(registry, setup, op, whole=whole, power=True) > 0


@pytest.mark.parametrize("case", BLOB_CASES)
def test_a_crash_at_any_step_on_s3_leaves_the_registry_whole(
    s3_registry: Registry, case: str
) -> None:
    setup, op, whole = CASES[case]
    assert crash_everywhere(s3_registry, setup, op, whole=whole, case=case) > 0


@pytest.mark.parametrize("case", BLOB_CASES)
def test_a_failing_s3_request_at_any_step_changes_nothing_and_the_service_carries_on(
    s3_registry: Registry, case: str
) -> None:
    setup, op, whole = CASES[case]
    assert fail_everywhere(s3_registry, setup, op, whole=whole) > 0


@pytest.mark.parametrize("case", list(CASES))
def test_a_full_disk_at_any_step_changes_nothing_and_the_service_carries_on(
    registry: Registry, case: str
) -> None:
    setup, op, whole = CASES[case]
    assert fail_everywhere(registry, setup, op, whole=whole) > 0
