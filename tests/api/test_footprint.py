"""What a server worker on the embedded default loads: not the libraries of the options it
does not use. Each costs memory in every worker (and start-up time in every local CLI
call): the PostgreSQL driver, obstore, Alembic (while the database is at head), the HTTP
client's httpx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOT_LOADED = ("psycopg", "obstore", "alembic", "httpx")

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
    assert first.stdout.split() == ["alembic"]  # it created the database
    again = subprocess.run(run, capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split() == []
