"""Concurrent writes on the event loop share syncs of the SQLite log (``api/offload.py``,
``store/metadata/wal_sync.py``), and none is answered before the sync that covers it.

The requests run on an event loop in the main thread, as they do in a server worker
(``TestClient`` runs the app in a thread of its own, where writes take the thread pool's
connections and SQLite syncs each commit itself)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cairn.api import offload
from cairn.store.metadata import wal_sync

ADMIN_HEADERS = {"Authorization": "Bearer cairn-test-admin-token-0123456789abcdefghij"}

CREATES = 24


def test_concurrent_creates_share_syncs_and_each_waits_for_its_own(
    app: FastAPI, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert threading.current_thread() is threading.main_thread()
    wal = app.state.service.db.wal
    syncs: list[int] = []
    real_sync = os.fdatasync
    monkeypatch.setattr(wal_sync.os, "fdatasync", lambda fd: (syncs.append(fd), real_sync(fd)))
    waited: list[tuple[int, bool]] = []  # (commit, on disk when its request went on)
    real_synced = offload._synced

    async def synced(log: Any, commit: int) -> None:
        await real_synced(log, commit)
        waited.append((commit, log.covers(commit)))

    monkeypatch.setattr(offload, "_synced", synced)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=ADMIN_HEADERS
        ) as client:
            created = await client.post("/api/v1/models", json={"name": "busy"})
            assert created.status_code == 201, created.text
            return await asyncio.gather(
                *(
                    client.post("/api/v1/models/busy/versions", json={"source": f"s3://b/{i}"})
                    for i in range(CREATES)
                )
            )

    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [201] * CREATES
    assert sorted(a.json()["version"] for a in answers) == list(range(1, CREATES + 1))
    if backend == "postgresql":
        assert wal is None and waited == [] and syncs == []
        return
    # every create (the model's too) waited for a sync that covered its commit...
    assert len(waited) >= CREATES + 1
    assert all(on_disk for _, on_disk in waited)
    # ...and far fewer syncs than commits ran (one for the model, a few for the rest)
    assert 1 < len(syncs) < len(waited) // 2
    assert wal.covers(wal.last_commit)


def test_a_failed_sync_fails_every_request_waiting_on_it(
    app: FastAPI, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that cannot sync answers every request of the group with an error (503,
    saying the change may not be durable), and keeps none of them waiting (PostgreSQL
    makes its own commits durable: they succeed)."""

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=ADMIN_HEADERS
        ) as client:
            assert (await client.get("/api/v1/models")).status_code == 200  # signed in
            monkeypatch.setattr(wal_sync.os, "fdatasync", broken)
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(client.post("/api/v1/models", json={"name": f"m{i}"}) for i in range(6))
                ),
                timeout=30,
            )
            return [(a.status_code, a.json().get("message", "")) for a in answers]

    answers = asyncio.run(run())
    if backend == "postgresql":
        assert [status for status, _ in answers] == [201] * 6
    else:  # a clear 503 that says what happened, not a bare 500
        assert {status for status, _ in answers} == {503}
        assert all("may not survive a power loss" in message for _, message in answers)


def test_after_a_failed_sync_the_server_is_not_ready_until_the_log_is_mended(
    app: FastAPI, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed sync leaves the log suspect (``WalSync._mend``): ``/ready`` says so (503)
    while it cannot be mended, mends it once it can, and writes are taken again
    (PostgreSQL syncs its own log: nothing of this concerns it)."""
    real_sync = os.fdatasync

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    def cannot_mend(self: wal_sync.WalSync) -> None:
        raise OSError(5, "Input/output error")

    async def run() -> list[tuple[str, object]]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=ADMIN_HEADERS
        ) as client:
            seen: list[tuple[str, object]] = [("ready", (await client.get("/ready")).status_code)]
            assert (await client.get("/api/v1/models")).status_code == 200  # signed in
            monkeypatch.setattr(wal_sync.os, "fdatasync", broken)
            monkeypatch.setattr(wal_sync.WalSync, "_mend", cannot_mend)
            seen.append(
                ("create", (await client.post("/api/v1/models", json={"name": "a"})).status_code)
            )
            monkeypatch.setattr(wal_sync.os, "fdatasync", real_sync)  # the disk is back...
            seen.append(
                ("create", (await client.post("/api/v1/models", json={"name": "b"})).status_code)
            )
            not_ready = await client.get("/ready")
            if not_ready.status_code == 503:
                assert "writes are refused" in not_ready.json()["message"]
            seen.append(("ready", not_ready.status_code))
            monkeypatch.undo()  # ...and the log can be mended
            seen.append(("ready", (await client.get("/ready")).status_code))
            seen.append(
                ("create", (await client.post("/api/v1/models", json={"name": "c"})).status_code)
            )
            names = (await client.get("/api/v1/models")).json()["models"]
            seen.append(("models", sorted(m["name"] for m in names)))
            return seen

    seen = asyncio.run(run())
    if backend == "postgresql":
        assert [answer for _, answer in seen] == [200, 201, 201, 200, 200, 201, ["a", "b", "c"]]
        return
    assert seen == [
        ("ready", 200),
        ("create", 503),  # written, not known durable
        ("create", 503),  # the log is suspect: not acknowledged either
        ("ready", 503),
        ("ready", 200),  # mended by the probe
        ("create", 201),
        ("models", ["a", "b", "c"]),  # written all along: now durable too
    ]
