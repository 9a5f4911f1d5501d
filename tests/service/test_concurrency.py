"""Many writers, one model: every create succeeds and numbers are exactly 1..N.

Runs on SQLite (writers queue on BEGIN IMMEDIATE) and PostgreSQL (the counter row lock),
from threads in one process and from several processes at once.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cairn.domain.models import Actor, VersionSpec
from cairn.errors import NotFound
from cairn.service.registry import RegistryService
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.database import Database

ACTOR = Actor("load", is_admin=True)
THREADS = 16
PER_THREAD = 20
PROCESSES = 4
PER_PROCESS = 25


def _numbers(service: RegistryService, name: str) -> list[int]:
    page = service.list_versions(ACTOR, name, order_by=["version ASC"], max_results=1000)
    return [v.version for v in page.items]


def test_threads_allocate_dense_unique_numbers(service: RegistryService) -> None:
    service.create_model(ACTOR, "hot")

    def create(i: int) -> list[int]:
        spec = VersionSpec(params={"thread": str(i)}, metrics={"i": i})
        # odd threads send idempotency keys: on PostgreSQL their creates take the usual
        # way while the others take one statement (one_trip.py), racing for the same rows
        keys = [f"t{i}-{j}" if i % 2 else None for j in range(PER_THREAD)]
        return [service.create_version(ACTOR, "hot", spec, idempotency_key=k).version for k in keys]

    with ThreadPoolExecutor(THREADS) as pool:
        results = [n for batch in pool.map(create, range(THREADS)) for n in batch]
    total = THREADS * PER_THREAD
    assert sorted(results) == list(range(1, total + 1))
    assert _numbers(service, "hot") == list(range(1, total + 1))
    report = service.verify_audit(ACTOR)  # one chain, every create on it once
    assert report.ok, report.reason
    assert report.events == total + 1


def test_threads_racing_on_one_alias_leave_a_consistent_history(service: RegistryService) -> None:
    service.create_model(ACTOR, "m")
    for _ in range(8):
        service.create_version(ACTOR, "m")

    def move(version: int) -> None:
        for _ in range(5):
            if version == 0:  # one thread keeps taking the alias away
                with contextlib.suppress(NotFound):
                    service.delete_alias(ACTOR, "m", "prod")
            else:
                service.set_alias(ACTOR, "m", "prod", version)

    with ThreadPoolExecutor(9) as pool:
        list(pool.map(move, range(9)))
    service.set_alias(ACTOR, "m", "prod", 1)
    events = list(reversed(service.alias_history(ACTOR, "m", "prod", limit=1000)))
    # each event starts where the previous one ended (None: not set): no lost, stale or
    # interleaved move, whichever way (one statement or the usual one) each move took
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version
    assert service.resolve(ACTOR, "models:/m@prod").version == events[-1].to_version
    report = service.verify_audit(ACTOR)
    assert report.ok, report.reason


def _worker(url: str, blob_root: str, count: int) -> list[int]:
    db = Database(url)
    service = RegistryService(db, LocalBlobStore(Path(blob_root)))
    try:
        return [service.create_version(ACTOR, "hot").version for _ in range(count)]
    finally:
        db.dispose()


def test_processes_allocate_dense_unique_numbers(
    service: RegistryService, db_url: str, blob_root: Path
) -> None:
    service.create_model(ACTOR, "hot")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        batches = pool.starmap(_worker, [(db_url, str(blob_root), PER_PROCESS)] * PROCESSES)
    total = PROCESSES * PER_PROCESS
    assert sorted(n for batch in batches for n in batch) == list(range(1, total + 1))
    assert _numbers(service, "hot") == list(range(1, total + 1))
    report = service.verify_audit(ACTOR)
    assert report.ok, report.reason
    assert report.events == total + 1


@pytest.mark.parametrize("key_count", [1, 4])
def test_concurrent_retries_with_one_idempotency_key(
    service: RegistryService, key_count: int
) -> None:
    service.create_model(ACTOR, "m")

    def create(i: int) -> int:
        return service.create_version(ACTOR, "m", idempotency_key=f"k{i % key_count}").version

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(create, range(24)))
    assert len(set(numbers)) == key_count
    assert _numbers(service, "m") == list(range(1, key_count + 1))
