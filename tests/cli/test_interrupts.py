"""Interrupted pushes, killed on either side, with real processes: nothing READY that is not
complete; a re-run resumes; cleanup leaves no stray temporary files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SIZE = 200 << 20  # large enough to take the resumable path and to be caught mid-way


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data: Path, port: int, backend: str) -> subprocess.Popen[bytes]:
    log = data.parent / f"server-{port}.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cairn.cli",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--backend-uri",
                backend,
            ],
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)


def push_cmd(uri: str, path: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cairn.cli",
        "--uri",
        uri,
        "--quiet",
        "push",
        str(path),
        "--model",
        "big",
        "--json",
    ]


def wait_until_some_bytes_arrive(data: Path, minimum: int = 20 << 20) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        staged = sum(
            p.stat().st_size
            for p in data.rglob("*")
            if p.is_file() and not p.name.startswith("cairn.db")
        )
        if staged >= minimum:
            return
        time.sleep(0.05)
    raise AssertionError("no upload progress seen")


@pytest.fixture
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "weights.bin"
    with path.open("wb") as f:
        for _ in range(SIZE >> 20):
            f.write(os.urandom(1 << 20))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["client", "server"])
def test_killed_push_resumes(killed: str, tmp_path: Path, big_file: Path, db_url: str) -> None:
    data = tmp_path / "data"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(data, port, db_url)
    env = {**os.environ, "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    try:
        subprocess.run(
            [sys.executable, "-m", "cairn.cli", "--uri", uri, "models", "create", "big"],
            check=True,
            capture_output=True,
            env=env,
        )
        client = subprocess.Popen(
            push_cmd(uri, big_file, tmp_path),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until_some_bytes_arrive(data)
        if killed == "client":
            stop(client, signal.SIGKILL)
        else:
            stop(server, signal.SIGKILL)
            assert client.wait(timeout=120) != 0
            server = start_server(data, port, db_url)
        client.wait(timeout=60)
        auth = {"Authorization": f"Bearer {os.environ['CAIRN_TOKEN']}"}
        versions = httpx.get(f"{uri}/api/v1/models/big/versions", headers=auth).json()["versions"]
        assert [v["status"] for v in versions] == ["PENDING"]  # never READY half-written
        offset_before = httpx.post(
            f"{uri}/api/v1/models/big/versions/1/uploads",
            json={"digest": versions[0]["files"][0]["digest"]},
            headers=auth,
        ).json()["offset"]
        assert offset_before > 0

        rerun = subprocess.run(
            push_cmd(uri, big_file, tmp_path),
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr.decode()
        statuses = [
            v["status"]
            for v in httpx.get(f"{uri}/api/v1/models/big/versions", headers=auth).json()["versions"]
        ]
        assert statuses == ["READY", "READY"]  # the re-run completed both
        out = tmp_path / "out"
        pulled = subprocess.run(
            [
                sys.executable,
                "-m",
                "cairn.cli",
                "--uri",
                uri,
                "--quiet",
                "pull",
                "models:/big/latest",
                "-o",
                str(out),
            ],
            env=env,
            capture_output=True,
            check=False,
        )
        assert pulled.returncode == 0, pulled.stderr.decode()
        assert (out / "weights.bin").stat().st_size == SIZE
        assert (out / "weights.bin").read_bytes() == big_file.read_bytes()
    finally:
        stop(server)
    gc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--uri", str(data), "gc", "--yes", "--grace", "0"],
        capture_output=True,
        env={**env, "CAIRN_BACKEND_URI": db_url},
        check=False,
    )
    assert gc.returncode == 0, gc.stderr.decode()
    leftovers = [
        p
        for p in data.rglob("*")
        if p.is_file() and (".part" in p.name or p.name.startswith((".tmp", "tmp")))
    ]
    assert leftovers == []
