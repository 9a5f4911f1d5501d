"""Fixtures for moving registries: a Cairn to write into (a data directory or a live
server, on SQLite and PostgreSQL), the CLI, and a real ``mlflow server`` on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from cairn.cli.main import app
from cairn.client import Client
from cairn.client.base import BaseClient
from cairn.settings import Settings

runner = CliRunner()
HERE = Path(__file__).parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` work for this directory under ``--dist loadgroup``.

    pytest-xdist 3.8 groups tests by appending ``@group`` to ``item._nodeid``, but pytest 9
    keeps node ids in ``item._id``, so the grouping silently does nothing and each worker
    would start its own MLflow server. Here the suffix is put where pytest 9 reads it.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        if not item.path.is_relative_to(HERE) or "@" in item.nodeid:
            continue
        marks = item.iter_markers("xdist_group")
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name")) for m in marks})
        if names:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")


def cairn(uri: str, *args: str, code: int = 0) -> Result:
    """Run the ``cairn`` command in-process; check its exit status."""
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(params=["local", "http"])
def target(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The Cairn an import writes into: a data directory used in-process (on the backend
    under test), or a live server over HTTP."""
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    monkeypatch.setenv("CAIRN_BACKEND_URI", str(settings.backend_uri))
    monkeypatch.setenv("CAIRN_ARTIFACTS_URI", str(settings.artifacts_uri))
    return str(settings.data_dir)


@pytest.fixture
def target_client(target: str) -> Iterator[BaseClient]:
    sdk = Client(target)
    yield sdk
    sdk.close()


def snapshot(sdk: BaseClient) -> dict[str, Any]:
    """Everything a listing shows, minus the times that change on every write."""
    state: dict[str, Any] = {}
    for model in sdk.iter_models(max_results=1000):
        versions = sdk.list_versions(model.name, order_by=["version ASC"], max_results=1000)
        state[model.name] = {
            "description": model.description,
            "tags": dict(model.tags),
            "aliases": dict(model.aliases),
            "latest_version": model.latest_version,
            "last_version": model.last_version,
            "created_at": model.created_at,
            "created_by": model.created_by,
            "versions": {
                v.version: {
                    "status": v.status.value,
                    "status_message": v.status_message,
                    "description": v.description,
                    "tags": dict(v.tags),
                    "params": dict(v.params),
                    "metrics": dict(v.metrics),
                    "aliases": v.aliases,
                    "stage": v.stage.value,
                    "semver": v.semver,
                    "source": v.source,
                    "run_id": v.run_id,
                    "run_link": v.run_link,
                    "files": v.files,
                    "size": v.size,
                    "digest": v.digest,
                    "created_at": v.created_at,
                    "created_by": v.created_by,
                }
                for v in versions.items
            },
        }
    return state


# -- a real MLflow server ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


QUIET_MLFLOW = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


@contextlib.contextmanager
def mlflow_server(root: Path, while_starting: Callable[[], object] | None = None) -> Iterator[str]:
    """``mlflow server`` (SQLite, proxied artifacts) in its own process group.

    ``while_starting`` runs while the server boots (it takes several seconds).
    """
    with mlflow_process(root, while_starting) as (url, _stop):
        yield url


@contextlib.contextmanager
def mlflow_process(
    root: Path, while_starting: Callable[[], object] | None = None
) -> Iterator[tuple[str, Callable[[], None]]]:
    """``mlflow_server``, with a function that stops the server (as a crash would)."""
    port = _free_port()
    log = (root / "server.log").open("wb")
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, **QUIET_MLFLOW}
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if while_starting is not None:
            while_starting()
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer /health within 180 s")
            time.sleep(0.3)
        yield url, lambda: _stop(proc)
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:  # uvicorn waits for idle keep-alive clients
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
