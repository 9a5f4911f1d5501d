"""Push and pull of versions made of many small files, through a fresh local server.

    .venv/bin/python benchmarks/many_files.py [--files 1000,3000] [--size 10000]
                                              [--backend sqlite|postgresql]

Not part of ``make bench``: an attribution tool beside ``transfer.py`` (which moves a few
large files). Each count gets a fresh ``cairn server --workers 1`` (SQLite, local blobs)
and a new model (``--backend postgresql``: a fresh database on 127.0.0.1:5432, dropped
afterwards); ``cairn.Client.push`` sends a folder of that many random files of
``--size`` bytes (the SDK's digest cache emptied first, as on a first push), then
``pull`` downloads the version into an empty cache and folder. Every file is a blob, so
this measures the per-file path: one upload request, its fsyncs and its transactions.
The time per file should not grow with the number of files; if it does, some step costs
in proportion to the version's size. Then it times reads of that version over HTTP
(median of ``READS`` each): MLflow's get-model-version, search-registered-models and
get-latest-versions, whose answers show no files and should cost what a version of none
does; the native get, which returns the whole manifest; and the native listing of the
model's versions, with and without their manifests (``files=false``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from regbench import auth
from regbench.servers import exit_on_sigterm
from transfer_contenders import CAIRN_BIN
from transfer_procs import Server, free_port, start_server

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
READS = 20
MLFLOW = "/api/2.0/mlflow"


def _start(work: Path, backend_uri: str | None) -> Server:
    port = free_port()
    cmd = [str(CAIRN_BIN), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(work / "data"), "--workers", "1"]
    env = auth.server_env()
    if backend_uri is not None:
        env["CAIRN_BACKEND_URI"] = backend_uri
    return start_server(
        "many-files", cmd, port=port, health_path="/health", log_path=work / "server.log", env=env
    )


def _make_tree(root: Path, count: int, size: int) -> None:
    for i in range(count):
        folder = root / f"d{i % 30:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        # a fixed first byte: random bytes that begin as a pickle does (0x80, then a
        # protocol number) would be scanned as a broken pickle and quarantine the version
        data = bytearray(os.urandom(size))
        data[:1] = b"\0"[: len(data)]
        (folder / f"f{i:06d}.bin").write_bytes(data)


def _time_reads(base_url: str, version: int) -> list[float]:
    """Median ms of each read of version ``version`` of model ``many`` (``main``'s columns)."""
    reads = [
        ("GET", f"{MLFLOW}/model-versions/get", {"name": "many", "version": str(version)}),
        ("GET", f"{MLFLOW}/registered-models/search", {"filter": "name = 'many'"}),
        ("POST", f"{MLFLOW}/registered-models/get-latest-versions", {"name": "many"}),
        ("GET", f"/api/v1/models/many/versions/{version}", {}),
        ("GET", "/api/v1/models/many/versions", {}),
        ("GET", "/api/v1/models/many/versions", {"files": "false"}),
    ]
    headers = {"Authorization": f"Bearer {auth.BENCH_TOKEN}"}
    medians = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for method, path, args in reads:
            times = []
            for _ in range(READS):
                t0 = time.perf_counter()
                if method == "GET":
                    response = http.get(path, params=args)
                else:
                    response = http.post(path, json=args)
                times.append(time.perf_counter() - t0)
                response.raise_for_status()
            medians.append(statistics.median(times) * 1e3)
    return medians


def _measure(
    work: Path, count: int, size: int, backend_uri: str | None
) -> tuple[float, float, list[float]]:
    import cairn

    src = work / "src"
    _make_tree(src, count, size)
    server = _start(work, backend_uri)
    try:
        os.environ["CAIRN_CACHE_DIR"] = str(work / "push-cache")
        client = cairn.Client(server.base_url, token=auth.BENCH_TOKEN)
        client.create_model("many")
        os.sync()
        t0 = time.perf_counter()
        version = client.push(src, name="many")
        push_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.pull(f"models:/many/{version.version}", work / "out", cache_dir=work / "cache")
        pull_s = time.perf_counter() - t0
        client.close()
        reads = _time_reads(server.base_url, version.version)
    finally:
        server.stop()
    return push_s, pull_s, reads


def main() -> None:
    exit_on_sigterm()  # servers stopped, databases dropped on `kill`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="1000,3000", help="comma-separated file counts")
    p.add_argument("--size", type=int, default=10_000, help="bytes per file")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    a = p.parse_args()
    print(
        "| files | push s | push ms per file | pull s | pull ms per file "
        "| MLflow get version ms | MLflow search models ms | MLflow latest versions ms "
        "| native get version ms | native list ms | native list, files=false ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in (int(c) for c in a.files.split(",")):
        work = Path(tempfile.mkdtemp(prefix="cairn-many-files-"))
        database = f"cairn_many_files_{os.getpid()}"
        backend_uri = None
        if a.backend == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {database}")
            backend_uri = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
        try:
            push_s, pull_s, reads = _measure(work, count, a.size, backend_uri)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if backend_uri is not None:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {database}")
        print(
            f"| {count:,} | {push_s:.1f} | {push_s / count * 1e3:.1f} | {pull_s:.1f} "
            f"| {pull_s / count * 1e3:.1f} | " + " | ".join(f"{ms:.1f}" for ms in reads) + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
