"""The contenders of the transfer benchmark: each pushes a data set, then pulls it back.

A contender gets a fresh server (and fresh storage) for every round, so nothing is
deduplicated between rounds and every server starts from the same idle state. Every
write is durable before the clock stops: Cairn and the HTTP references fsync on the
server; for ``cp``, MLflow (which does not fsync) and every pull, the harness fsyncs
the written files inside the timed region.

Cairn servers run with authentication on (the default): each starts with the benchmarks'
bootstrap admin token (``regbench/auth.py``) and every Cairn request, raw or through the
SDK, sends it as ``Authorization: Bearer``. MLflow and the references have no authentication.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import transfer_wire as wire
from regbench import auth
from transfer_data import Dataset, fsync_paths, sha256_files, tree_files
from transfer_procs import Server, free_port, process_tree, start_server

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CAIRN_BIN = REPO / ".venv" / "bin" / "cairn"
MLFLOW_BIN = BENCH_DIR / ".venv-mlflow" / "bin" / "mlflow"
MODEL = "bench"


@dataclass
class Timing:
    seconds: float
    hash_s: float = 0.0  # the part of ``seconds`` spent hashing before the upload
    note: str = ""


class Contender(ABC):
    """Push then pull a data set; ``start``/``stop`` bracket one round."""

    key: str = ""
    label: str = ""
    fresh_per_round = True  # a new server (and empty storage) for every round

    def __init__(self) -> None:
        self.server: Server | None = None
        self.workdir = Path()
        self.url_override: str | None = None  # e.g. a byte-counting relay in front

    def start(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def server_pid(self) -> int | None:
        return None if self.server is None else self.server.pid

    @property
    def rss_root(self) -> int | None:
        """The process whose tree serves the transfers (its RSS is what we report)."""
        return self.server_pid

    @property
    def base_url(self) -> str:
        if self.url_override is not None:
            return self.url_override
        assert self.server is not None, "start() first"
        return self.server.base_url

    @abstractmethod
    def push(self, ds: Dataset) -> Timing: ...

    @abstractmethod
    def pull(self, ds: Dataset, out: Path) -> Timing: ...


def _timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# --- cp ----------------------------------------------------------------------------------


class Copy(Contender):
    key = "cp"
    label = "cp (same disk, + fsync)"

    def _copy(self, files: list[Path], dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "--", *map(str, files), str(dest)], check=True, timeout=600)
        fsync_paths([dest / f.name for f in files])

    def push(self, ds: Dataset) -> Timing:
        return Timing(_timed(self._copy, ds.files, self.workdir / "store"))

    def pull(self, ds: Dataset, out: Path) -> Timing:
        stored = [self.workdir / "store" / f.name for f in ds.files]
        return Timing(_timed(self._copy, stored, out))


# --- HTTP references ---------------------------------------------------------------------


class Reference(Contender):
    """transfer_refserver.py (stdlib+sendfile, or bare ASGI on uvicorn); curl or httpx."""

    fresh_per_round = False  # no deduplication: a PUT of the same name overwrites

    def __init__(self, impl: str, client: str) -> None:
        super().__init__()
        self.impl, self.client = impl, client
        server_label = {"stdlib": "loopback HTTP", "asgi": "bare ASGI on uvicorn"}[impl]
        self.key = f"{'http' if impl == 'stdlib' else 'asgi'}-ref/{client}"
        self.label = f"{server_label} ({client})"

    def start(self, workdir: Path) -> None:
        super().start(workdir)
        port = free_port()
        cmd = [sys.executable, str(BENCH_DIR / "transfer_refserver.py"), "--impl", self.impl]
        cmd += ["--port", str(port), "--root", str(workdir / "store")]
        self.server = start_server(
            self.key, cmd, port=port, health_path="/health", log_path=workdir / "server.log"
        )

    def push(self, ds: Dataset) -> Timing:
        pairs = [(f, f"{self.base_url}/files/{f.name}") for f in ds.files]
        return Timing(_timed(self._put, pairs))

    def pull(self, ds: Dataset, out: Path) -> Timing:
        out.mkdir(parents=True, exist_ok=True)
        pairs = [(f"{self.base_url}/files/{f.name}", out / f.name) for f in ds.files]
        sizes = [f.stat().st_size for f in ds.files]
        return Timing(_timed(self._get, pairs, sizes))

    def _put(self, pairs: list[tuple[Path, str]]) -> None:
        if self.client == "curl":
            wire.curl_put(pairs)
        else:
            with wire.new_client(self.base_url) as c:
                wire.httpx_put(c, pairs)

    def _get(self, pairs: list[tuple[str, Path]], sizes: list[int]) -> None:
        if self.client == "curl":
            wire.curl_get(pairs, sizes)
        else:
            with wire.new_client(self.base_url) as c:
                wire.httpx_get(c, pairs, sizes)
        fsync_paths([p for _, p in pairs])


# --- MLflow ------------------------------------------------------------------------------


class Mlflow(Contender):
    """``mlflow server --serve-artifacts``, PUT/GET /api/2.0/mlflow-artifacts/artifacts/…"""

    key = "mlflow/curl"
    label = "MLflow artifact proxy (curl)"
    prefix = "/api/2.0/mlflow-artifacts/artifacts/bench"
    fresh_per_round = False  # no deduplication; its start-up takes 10 s or more

    ENV = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # the background job runner (7 huey processes) has nothing to do with artifacts;
        # off, it neither competes for the 2 cores nor adds RSS
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }

    def __init__(self, workers: int = 1) -> None:
        super().__init__()
        self.workers = workers

    def command(self, workdir: Path, port: int) -> list[str]:
        """Stock MLflow at its best, as in registry_ops: no access log line per request."""
        cmd = [str(MLFLOW_BIN), "server", "--serve-artifacts"]
        cmd += ["--artifacts-destination", str(workdir / "artifacts")]
        cmd += ["--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers)]
        return [*cmd, "--uvicorn-opts", "--no-access-log"]

    def start(self, workdir: Path) -> None:
        super().start(workdir)
        port = free_port()
        self.server = start_server(
            self.key,
            self.command(workdir, port),
            port=port,
            health_path="/health",
            log_path=workdir / "server.log",
            cwd=workdir,
            env=self.ENV,
            timeout_s=180.0,
        )

    @property
    def rss_root(self) -> int | None:
        """The uvicorn process (``mlflow server`` is only its launcher)."""
        if self.server is None:
            return None
        for pid in process_tree(self.server.pid):
            with contextlib.suppress(OSError):
                if is_uvicorn(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")):
                    return pid
        return self.server.pid

    def push(self, ds: Dataset) -> Timing:
        pairs = [(f, f"{self.base_url}{self.prefix}/{f.name}") for f in ds.files]

        def put_and_sync() -> None:
            wire.curl_put(pairs)
            fsync_paths([self.workdir / "artifacts" / "bench" / f.name for f in ds.files])

        return Timing(_timed(put_and_sync), note="harness fsyncs MLflow's stored files")

    def pull(self, ds: Dataset, out: Path) -> Timing:
        out.mkdir(parents=True, exist_ok=True)
        pairs = [(f"{self.base_url}{self.prefix}/{f.name}", out / f.name) for f in ds.files]
        sizes = [f.stat().st_size for f in ds.files]

        def get_and_sync() -> None:
            wire.curl_get(pairs, sizes)
            fsync_paths([p for _, p in pairs])

        return Timing(_timed(get_and_sync))


def is_uvicorn(argv: list[bytes]) -> bool:
    """Whether ``argv`` runs uvicorn (``python -m uvicorn ...``, as ``mlflow server`` starts
    it), not merely mentions it (the launcher's own ``--uvicorn-opts``)."""
    return argv[1:3] == [b"-m", b"uvicorn"] or Path(argv[0].decode()).name == "uvicorn"


# --- Cairn -------------------------------------------------------------------------------


def start_cairn(workdir: Path, name: str, workers: int = 1) -> Server:
    port = free_port()
    cmd = [str(CAIRN_BIN), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(workdir / "data"), "--workers", str(workers)]
    return start_server(
        name,
        cmd,
        port=port,
        health_path="/health",
        log_path=workdir / "server.log",
        env=auth.server_env(),
    )


class CairnApi:
    """The few JSON calls a raw-HTTP push needs (authenticated as the bootstrap admin)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers=auth.headers(), timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def ensure_model(self, name: str) -> None:
        r = self.http.post("/api/v1/models", json={"name": name})
        if r.status_code != 201 and "ALREADY_EXISTS" not in r.text:
            raise wire.TransferError(f"create model answered {r.status_code}: {r.text[:300]}")

    def create_version(self, name: str, manifest: list[dict[str, Any]]) -> tuple[int, list[str]]:
        r = self.http.post(f"/api/v1/models/{name}/versions", json={"files": manifest})
        if r.status_code != 201:
            raise wire.TransferError(f"create version answered {r.status_code}: {r.text[:300]}")
        body = r.json()
        return int(body["version"]), list(body["missing"])

    def status(self, name: str, version: int) -> str:
        r = self.http.get(f"/api/v1/models/{name}/versions/{version}")
        r.raise_for_status()
        return str(r.json()["status"])


def raw_manifest(files: list[Path], threads: int) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    digests = sha256_files(files, threads)
    manifest = [{"path": f.name, "size": f.stat().st_size, "digest": digests[f]} for f in files]
    return manifest, {d: f for f, d in digests.items()}


class CairnRaw(Contender):
    """Cairn's artifact API by hand: hash, create the version, PUT the missing blobs."""

    def __init__(self, client: str, hash_threads: int) -> None:
        super().__init__()
        self.client, self.hash_threads = client, hash_threads
        self.key = f"cairn-raw/{client}"
        self.label = f"Cairn, raw HTTP ({client})"
        self.version = 0

    def start(self, workdir: Path) -> None:
        super().start(workdir)
        self.server = start_cairn(workdir, self.key)

    def push(self, ds: Dataset) -> Timing:
        api = CairnApi(self.base_url)
        try:
            t0 = time.perf_counter()
            manifest, by_digest = raw_manifest(ds.files, self.hash_threads)
            t_hash = time.perf_counter()
            api.ensure_model(MODEL)
            self.version, missing = api.create_version(MODEL, manifest)
            blobs = f"{self.base_url}/api/v1/models/{MODEL}/versions/{self.version}/blobs"
            pairs = [(by_digest[d], f"{blobs}/{d}") for d in missing]
            if pairs:  # none on an unchanged re-push, which then opens no upload client
                self._put(pairs)
            t_end = time.perf_counter()
            if (status := api.status(MODEL, self.version)) != "READY":
                raise wire.TransferError(f"version {self.version} is {status} after the push")
        finally:
            api.close()
        return Timing(t_end - t0, hash_s=t_hash - t0)

    def _put(self, pairs: list[tuple[Path, str]]) -> None:
        if self.client == "curl":
            wire.curl_put(pairs, auth.headers())
        else:
            with wire.new_client(self.base_url, auth.headers()) as c:
                wire.httpx_put(c, pairs)

    def pull(self, ds: Dataset, out: Path) -> Timing:
        out.mkdir(parents=True, exist_ok=True)
        files = f"{self.base_url}/api/v1/models/{MODEL}/versions/{self.version}/files"
        pairs = [(f"{files}/{f.name}", out / f.name) for f in ds.files]
        sizes = [f.stat().st_size for f in ds.files]

        def get_and_sync() -> None:
            if self.client == "curl":
                wire.curl_get(pairs, sizes, auth.headers())
            else:
                with wire.new_client(self.base_url, auth.headers()) as c:
                    wire.httpx_get(c, pairs, sizes)
            fsync_paths([p for _, p in pairs])

        return Timing(_timed(get_and_sync))


class CairnSdk(Contender):
    """``cairn.Client(url).push(dir, name=…)`` / ``.pull("models:/NAME/V", out)``.

    The pull goes through an empty cache directory (the SDK downloads into its cache,
    verifies, then copies into ``out``); the timed region includes all of it. A push
    hashes every file, as a first push does: the SDK's digest cache (``digests.json`` in
    its cache folder) is emptied before it, unless ``reuse_digests`` is set (the re-push
    measurement, where remembering the digests of unchanged files is the point).
    """

    key = "cairn-sdk"
    label = "Cairn SDK (push/pull)"

    def __init__(self) -> None:
        super().__init__()
        self.version = 0
        self.reuse_digests = False

    def start(self, workdir: Path) -> None:
        super().start(workdir)
        self.server = start_cairn(workdir, self.key)

    def _client(self) -> Any:
        import cairn

        return cairn.Client(self.base_url, token=auth.BENCH_TOKEN)

    def push(self, ds: Dataset) -> Timing:
        cache = self.workdir / "sdk-cache"
        os.environ["CAIRN_CACHE_DIR"] = str(cache)  # where the SDK keeps file digests
        if not self.reuse_digests:
            (cache / "digests.json").unlink(missing_ok=True)
        client = self._client()
        api = CairnApi(self.base_url)
        t0 = time.perf_counter()
        api.ensure_model(MODEL)  # push makes versions, not models (as in the raw push)
        pushed = client.push(str(ds.root), name=MODEL)
        seconds = time.perf_counter() - t0
        self.version = int(pushed.version)
        _close(client)
        api.close()
        return Timing(seconds)

    def pull(self, ds: Dataset, out: Path) -> Timing:
        client = self._client()
        cache = self.workdir / "sdk-cache"  # empty: a warm cache would download nothing
        remove_tree(cache)
        t0 = time.perf_counter()
        client.pull(f"models:/{MODEL}/{self.version}", str(out), cache_dir=str(cache))
        fsync_paths(tree_files(out))
        seconds = time.perf_counter() - t0
        _close(client)
        return Timing(seconds)


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


def sdk_available() -> bool:
    """Whether this checkout's SDK has ``push`` and ``pull`` yet."""
    try:
        from cairn.client.base import BaseClient
    except ImportError:
        return False
    return all(callable(getattr(BaseClient, m, None)) for m in ("push", "pull"))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
