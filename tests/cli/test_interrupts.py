"""Interrupted pushes, killed on either side, with real processes: nothing READY that is not
complete; a re-run resumes; cleanup leaves no stray temporary files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import ServerProcess

SIZE = 200 << 20  # large enough to take the resumable path and to be caught mid-way


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
def test_killed_push_resumes(
    killed: str,
    tmp_path: Path,
    big_file: Path,
    db_url: str,
    server_process: Callable[..., ServerProcess],
) -> None:
    data = tmp_path / "data"
    server = server_process(data, db_url)
    uri = server.url
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
            os.killpg(client.pid, signal.SIGKILL)
            client.wait(timeout=30)
        else:
            server.stop(signal.SIGKILL)
            assert client.wait(timeout=120) != 0
            server.start()
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
        server.stop()
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
