"""What a server worker on the embedded default loads: not the libraries of the options it
does not use. Each costs memory in every worker (and start-up time in every local CLI
call): the PostgreSQL driver, obstore, Alembic (while the database is at head), the HTTP
client's httpx, cryptography (signatures only). ``cairn server`` execs a fresh interpreter
to serve, so that neither the command line's libraries nor the migration's stay in it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cairn.app import SERVE_COMMAND

NOT_LOADED = ("psycopg", "obstore", "alembic", "httpx", "cryptography")

WORKER = """
import sys
from pathlib import Path
from cairn.app import create_app
from cairn.settings import Settings
create_app(Settings(data_dir=Path(sys.argv[1])))
print(" ".join(m for m in {names!r} if m in sys.modules))
"""


def test_a_sqlite_worker_loads_no_driver_object_store_or_migrator(tmp_path: Path) -> None:
    env = {**os.environ, "CAIRN_BOOTSTRAP_TOKEN": "footprint-throwaway-admin-token-0123456789"}
    code = WORKER.format(names=NOT_LOADED)
    run = [sys.executable, "-c", code, str(tmp_path / "data")]
    first = subprocess.run(run, capture_output=True, text=True, env=env, check=True)
    # it created the database (the last migration reads PEM keys)
    assert first.stdout.split() == ["alembic", "cryptography"]
    again = subprocess.run(run, capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split() == []


def test_cairn_server_serves_from_a_fresh_interpreter(tmp_path: Path) -> None:
    """It migrates a new database (Alembic, cryptography) and parses its flags (Typer, Rich),
    then execs: the process that answers, the same one, holds none of it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "cairn.cli", "server", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[1:4] == list(SERVE_COMMAND)
        # ps tells which server it is: its address and data, nothing secret
        assert argv[4:7] == ["cairn-server", f"127.0.0.1:{port}", str(tmp_path / "data")]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "cryptography" not in maps  # its Rust extension, mapped where it is loaded
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
