"""Short calls run on the event loop (``api/offload.py``): always with SQLite, with
PostgreSQL while their request is the worker's only one. A write there waits at most a
moment (``INLINE_WAIT_S``) for a writer lock held elsewhere: then it runs again in the
thread pool, and the event loop keeps answering meanwhile."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn.api.offload import InFlight
from cairn.app import create_app
from cairn.settings import Settings

ADMIN_TOKEN = "cairn-offload-admin-token-0123456789abcdefghij"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    settings = Settings(
        data_dir=tmp_path / "data", allowed_hosts=["testserver"], bootstrap_token=ADMIN_TOKEN
    )
    app = create_app(settings)
    try:
        with TestClient(app, raise_server_exceptions=False, headers=ADMIN_HEADERS) as client:
            yield client, tmp_path / "data" / "cairn.db-writer.lock"
    finally:
        app.state.service.db.dispose()


def test_a_create_waits_for_a_busy_writer_off_the_event_loop(
    sqlite_api: tuple[TestClient, Path],
) -> None:
    api, lock_file = sqlite_api
    assert api.post("/api/v1/models", json={"name": "first"}).status_code == 201
    fd = os.open(lock_file, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process (the CLI, say) is writing
    answers: dict[str, int] = {}
    create = threading.Thread(
        target=lambda: answers.update(
            create=api.post("/api/v1/models", json={"name": "second"}).status_code
        )
    )
    try:
        create.start()
        create.join(0.5)
        assert create.is_alive()  # waiting for the writer...
        # ...in the thread pool: the event loop still answers reads and health checks
        assert api.get("/health").status_code == 200
        assert api.get("/api/v1/models/first").status_code == 200
        assert create.is_alive()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        create.join(10)
    assert answers == {"create": 201}
    names = [m["name"] for m in api.get("/api/v1/models").json()["models"]]
    assert names == ["first", "second"]


@pytest.mark.parametrize("others", [0, 1])
def test_where_a_point_read_runs(
    api: TestClient,
    app: Any,
    backend: str,
    others: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the event loop with SQLite, and with PostgreSQL while its request is the only
    one the worker serves; in the thread pool with PostgreSQL under concurrent requests."""
    service = app.state.service
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 201
    loop_thread: list[threading.Thread] = []
    ran_in: list[threading.Thread] = []
    get_model = service.get_model

    def recording(*args: Any, **kwargs: Any) -> Any:
        ran_in.append(threading.current_thread())
        return get_model(*args, **kwargs)

    @app.get("/probe-loop-thread")
    async def probe() -> dict[str, str]:
        loop_thread.append(threading.current_thread())
        return {}

    assert api.get("/probe-loop-thread").status_code == 200
    monkeypatch.setattr(service, "get_model", recording)
    monkeypatch.setattr(InFlight, "count", others)  # the request itself adds one
    assert api.get("/api/v1/models/m").status_code == 200
    on_loop = ran_in == loop_thread
    assert on_loop == (backend == "sqlite" or others == 0)


def test_a_search_runs_on_the_loop_until_its_budget_is_spent(
    api: TestClient, app: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that can grow with the registry (a search of models) runs on the event loop
    while it keeps to its budget (PostgreSQL: while its request is the worker's only one);
    past it, it is interrupted and runs again in the thread pool, with the same answer."""
    from cairn.api import offload
    from cairn.store.metadata import database

    service = app.state.service
    for name in ("m1", "m2"):
        assert api.post("/api/v1/models", json={"name": name}).status_code == 201
    loop_thread: list[threading.Thread] = []

    @app.get("/probe-loop-thread-2")
    async def probe() -> dict[str, str]:
        loop_thread.append(threading.current_thread())
        return {}

    assert api.get("/probe-loop-thread-2").status_code == 200
    ran_in: list[threading.Thread] = []
    search_models = service.search_models

    def recording(*args: Any, **kwargs: Any) -> Any:
        ran_in.append(threading.current_thread())
        return search_models(*args, **kwargs)

    # PostgreSQL plans a statement on a new server connection slowly at first (it loads
    # the tables' and indexes' catalog entries): 14 ms on a busy day here, past the 5 ms
    # budget. A first search does that, wherever it ends up running.
    assert api.get("/api/v1/models").status_code == 200
    monkeypatch.setattr(service, "search_models", recording)
    listed = api.get("/api/v1/models").json()
    assert [m["name"] for m in listed["models"]] == ["m1", "m2"]
    assert ran_in == loop_thread

    ran_in.clear()
    monkeypatch.setattr(InFlight, "count", 1)  # PostgreSQL: another request is in flight
    assert api.get("/api/v1/models").json() == listed
    assert len(ran_in) == 1 and (ran_in[0] is loop_thread[0]) == (backend == "sqlite")

    ran_in.clear()
    monkeypatch.setattr(InFlight, "count", 0)
    if backend == "sqlite":
        monkeypatch.setattr(offload, "INLINE_READ_S", 0.0)  # every statement is past it...
        monkeypatch.setattr(database, "_PROGRESS_STEPS", 1)  # ...and told so at its first step
    else:  # a statement longer than the budget: the statement_timeout cancels it

        def slow(*args: Any, **kwargs: Any) -> Any:
            ran_in.append(threading.current_thread())
            service.db.read(lambda s: s.exec_driver_sql("SELECT pg_sleep(0.05)").all())
            return search_models(*args, **kwargs)

        monkeypatch.setattr(service, "search_models", slow)
    assert api.get("/api/v1/models").json() == listed
    assert ran_in[0] is loop_thread[0] and ran_in[1] is not loop_thread[0]


def test_a_diff_that_reads_files_runs_in_the_thread_pool(
    api: TestClient, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading files from the blob store is long by nature: a diff that compares tensors
    or signatures never holds the event loop; one that does not runs there as other
    bounded reads."""
    service = app.state.service
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 201
    assert api.post("/api/v1/models/m/versions", json={}).status_code == 201
    loop_thread: list[threading.Thread] = []

    @app.get("/probe-loop-thread-3")
    async def probe() -> dict[str, str]:
        loop_thread.append(threading.current_thread())
        return {}

    assert api.get("/probe-loop-thread-3").status_code == 200
    ran_in: list[tuple[str, threading.Thread]] = []
    diff_versions = service.diff_versions

    def recording(*args: Any, **kwargs: Any) -> Any:
        asked = [k for k in ("tensors", "signature") if kwargs[k]]
        ran_in.append((" ".join(asked) or "-", threading.current_thread()))
        return diff_versions(*args, **kwargs)

    query = {"old": "models:/m/1", "new": "models:/m/1"}
    # PostgreSQL plans a statement on a new server connection slowly at first (see above)
    assert api.get("/api/v1/diff", params=query).status_code == 200
    monkeypatch.setattr(service, "diff_versions", recording)
    assert api.get("/api/v1/diff", params=query).json()["tensors"] is None
    answer = api.get("/api/v1/diff", params={**query, "tensors": "true"}).json()
    assert answer["tensors"]["unchanged"] == 0
    answer = api.get("/api/v1/diff", params={**query, "signature": "true"}).json()
    assert answer["signature"] == {
        "old_path": None,
        "new_path": None,
        "breaking": 0,
        "changes": [],
        "unreadable": [],
    }
    # a bounded read starts on the loop (and runs again in the pool only past its budget,
    # which a loaded machine can reach); reading files never touches the loop
    on_loop = [(asked, thread is loop_thread[0]) for asked, thread in ran_in]
    assert on_loop[0] == ("-", True)
    assert [x for x in on_loop if x[0] != "-"] == [("tensors", False), ("signature", False)]
