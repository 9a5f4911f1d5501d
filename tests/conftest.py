"""Shared fixtures: a real metadata database on SQLite and on PostgreSQL.

Every test that takes ``db`` (or anything built on it) runs once per backend. The
PostgreSQL run uses the server on 127.0.0.1:5432 (override with CAIRN_TEST_POSTGRES_URL).
Where it is missing the PostgreSQL half is skipped, except under CI=true, where a
missing PostgreSQL is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from sqlalchemy import create_engine, text

from cairn.app import create_app
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.service.keyring import KEY_FILE, Keyring
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import metadata

POSTGRES_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgresql"]


# The admin token every test app is bootstrapped with (CAIRN_BOOTSTRAP_TOKEN).
ADMIN_TOKEN = "cairn-test-admin-token-0123456789abcdefghij"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# What a run may leave in the checkout: caches. Anything else new (a database, a data
# directory made by a misread URI) is a test writing into the source tree.
_TREE_CACHES = ("__pycache__/", ".pytest_cache/", ".hypothesis/", ".mypy_cache/", ".ruff_cache/")
_REPO = Path(__file__).resolve().parent.parent
_TREE_KEY = pytest.StashKey[set[str] | None]()


def _untracked() -> set[str] | None:
    """Untracked paths of the checkout, ignored ones included (None outside a git tree)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=normal", "-z"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    entries = (e[3:] for e in out.split("\0") if e[:2] in ("??", "!!"))
    return {
        e for e in entries if not any(e.endswith(c) or f"/{c}" in f"/{e}" for c in _TREE_CACHES)
    }


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers run with COLUMNS=80, which the CLI reads once, at import (after
    # this, at collection): tables in `make test` came out 80 wide and cut values ("succ…"),
    # where `-n 0` prints them whole, as in a pipe. Every run now prints as in a pipe; tests
    # of a terminal's width set COLUMNS for the process they start.
    os.environ.pop("COLUMNS", None)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        session.config.stash[_TREE_KEY] = _untracked()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_TREE_KEY, None)
    after = _untracked() if before is not None else None
    if before is None or after is None or not (new := sorted(after - before)):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"\nthe test run left files in the source tree: {', '.join(new)}", red=True
        )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _worker() -> str:
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


CHROMIUM = Path(os.environ.get("CAIRN_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium from the system (Debian's; never a downloaded one), driven by
    Playwright, for one test module (each test opens its own context). Missing: skipped,
    except under CI=true, where that is a failure (.ci/run installs it)."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "the playwright package is not installed (it is in the dev extras)"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"the browser tests need Chromium and Playwright under CI=true: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test worker's own, dropped at the end."""
    admin_url = POSTGRES_URL
    name = f"cairn_test_{_worker()}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the driver's connection error, whatever it is
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {exc}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "cairn.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


def _empty(db: Database) -> None:
    """Delete every row and restart every sequence. DELETE, not TRUNCATE: on tables this
    small it takes 8 ms here where TRUNCATE, which makes new files, takes 80 ms."""
    with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        ).scalars()
        for name in sequences.all():
            conn.execute(text("SELECT setval(:name, 1, false)"), {"name": name})


@pytest.fixture(scope="session")
def reset_postgres() -> Callable[[str], None]:
    """``reset_postgres(url)``: that PostgreSQL database's rows deleted and its sequences
    restarted, as ``db_url`` gives it to every test (for a test that needs two)."""

    def reset(url: str) -> None:
        db = Database(url)
        _empty(db)
        db.dispose()

    return reset


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        path = tmp_path / "cairn.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    db = Database(url)
    _empty(db)
    db.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def service(db: Database, blob_root: Path, tmp_path: Path) -> RegistryService:
    keyring = Keyring(key_file=tmp_path / KEY_FILE)  # webhook secrets are sealed with it
    return RegistryService(db, LocalBlobStore(blob_root), keyring=keyring)


# -- the application, the SDK in both modes, and a live server --------------------------


@pytest.fixture
def settings(tmp_path: Path, db_url: str, blob_root: Path) -> Settings:
    # TestClient sends ``Host: testserver``; live servers are reached on 127.0.0.1 (allowed).
    return Settings(
        data_dir=tmp_path / "data",
        backend_uri=db_url,
        artifacts_uri=str(blob_root),
        allowed_hosts=["testserver"],
        bootstrap_token=ADMIN_TOKEN,
        webhooks=False,  # no background thread; webhook tests run the dispatcher themselves
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.service.db.dispose()


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    """The app in-process, authenticated as the bootstrap admin (``anon`` has no token)."""
    with TestClient(app, raise_server_exceptions=False, headers=ADMIN_HEADERS) as test_client:
        yield test_client


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    """The app in-process with no credentials."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Headers that authenticate a raw HTTP request as the bootstrap admin."""
    return dict(ADMIN_HEADERS)


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """SDK blob and digest caches live in a temporary folder, not the user's home (session
    wide: module-scoped fixtures push and pull before function fixtures run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAIRN_CACHE_DIR", str(tmp_path_factory.mktemp("cairn-cache")))
        yield


@pytest.fixture(autouse=True)
def _admin_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients the tests open by URI (SDK, CLI, MLflow) authenticate as the bootstrap admin."""
    monkeypatch.setenv("CAIRN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("CAIRN_BOOTSTRAP_TOKEN", ADMIN_TOKEN)  # servers started as processes
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ADMIN_TOKEN)


@pytest.fixture(params=["http", "local"])
def client(request: pytest.FixtureRequest, settings: Settings) -> Iterator[BaseClient]:
    """The SDK, once over HTTP (against the real app) and once in-process on a directory."""
    if request.param == "http":
        test_client: TestClient = request.getfixturevalue("api")
        sdk: BaseClient = HttpClient("http://testserver", http_client=test_client)
    else:
        sdk = LocalClient(settings.data_dir, backend_uri=settings.backend_uri)
    yield sdk
    sdk.close()


class LiveServer:
    def __init__(self, app: FastAPI, **options: Any) -> None:
        options.setdefault("log_level", "warning")
        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, **options)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The real app behind a real uvicorn on a loopback port; yields its base URL."""
    with LiveServer(app) as url:
        yield url


@pytest.fixture
def live_server_with(app: FastAPI) -> Callable[..., LiveServer]:
    """``live_server`` with uvicorn options of the test's choosing: ``with
    live_server_with(proxy_headers=False) as url: ...``."""
    return lambda **options: LiveServer(app, **options)


class ServerProcess:
    """``cairn server`` in a process of its own, in a session of its own, so that a kill
    takes all its workers; its output goes to ``server.log`` beside the data folder."""

    def __init__(self, data: Path, backend: str, workers: int = 1) -> None:
        self.data, self.backend, self.workers = data, backend, workers
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        log = self.data.parent / "server.log"
        command = [sys.executable, "-m", "cairn.cli", "server", "--port", str(self.port)]
        command += ["--data-dir", str(self.data), "--backend-uri", self.backend]
        command += ["--workers", str(self.workers)]
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=sink, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"server did not start: {log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start ``cairn server`` processes: ``server_process(data_dir, backend_uri,
    workers=1)``; whatever still runs at the end is stopped."""
    started: list[ServerProcess] = []

    def start(data: Path, backend: str, workers: int = 1) -> ServerProcess:
        started.append(ServerProcess(data, backend, workers).start())
        return started[-1]

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


# -- S3: a moto server speaking real HTTP on loopback -----------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")


@pytest.fixture
def s3_bucket(s3_client: Any, s3_env: None) -> str:
    name = f"cairn-{secrets.token_hex(6)}"
    s3_client.create_bucket(Bucket=name)
    return name


# -- Azure Blob Storage: Azurite (npm, tests/emulators) speaking real HTTP on loopback ----

AZURITE = Path(__file__).parent / "emulators" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's one account and its published key (the emulator's, in every Azure SDK)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service on a port of its own, in memory, for the test session.
    Installed by ``make test`` (``npm ci`` in tests/emulators); where it is missing the
    Azure half of the blob-store tests is skipped, except under CI=true."""
    if not AZURITE.exists():
        reason = f"Azurite is not installed ({AZURITE}): run make test, or npm ci there"
        if IN_CI:
            pytest.fail(f"Azurite is required under CI=true. {reason}")
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(AZURITE),
                *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
                *("--inMemoryPersistence", "--silent", "--skipApiVersionCheck"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/{AZURITE_ACCOUNT}?comp=list", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Azurite did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield endpoint
    finally:  # in memory: nothing to shut down cleanly
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="session")
def azurite_account() -> dict[str, str]:
    """The emulator's account, as obstore's ``AzureStore`` takes it."""
    return {"account_name": AZURITE_ACCOUNT, "access_key": AZURITE_KEY}


@pytest.fixture(scope="session")
def azure_client(azurite_endpoint: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={azurite_endpoint}/{AZURITE_ACCOUNT};"
    )


@pytest.fixture
def azure_env(azurite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """obstore's standard variables for the emulator (``az://`` URIs then reach it)."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "AZURITE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite_endpoint)


@pytest.fixture
def azure_container(azure_client: Any, azure_env: None) -> str:
    name = f"cairn-{secrets.token_hex(6)}"
    with azure_client.create_container(name):
        return name


# -- a webhook receiver: a real HTTP server on loopback ----------------------------------


class Receiver:
    """Answers each POST with the next scripted status (200 once the script is used up);
    ``"hang"`` holds the answer until ``release`` (a client timeout). Keeps what came."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.script: list[int | str] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.released = threading.Event()
        self.got = threading.Event()  # set at each POST kept
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    answer = receiver.script.pop(0) if receiver.script else 200
                    if answer != "hang":
                        receiver.received.append((dict(self.headers.items()), body))
                        receiver.got.set()
                if answer == "hang":
                    receiver.released.wait()
                    answer = 200
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()
