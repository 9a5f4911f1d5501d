"""Start and stop the servers under test (Cairn, stock MLflow, the trivial endpoint).

Every server runs in its own process group on 127.0.0.1 with a fresh data directory (and,
for PostgreSQL, a fresh database that is dropped afterwards); :func:`serving` guarantees the
whole group is killed when the block ends, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from regbench import auth
from regbench.workload import Api

PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PYTHONUNBUFFERED": "1",
    # MLflow at its best: no background job runner (huey consumers) competing for the 2 cores.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


PROGRAMS = {"cairn-mlflow-api": "cairn"}  # contender label -> server program, where they differ


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI timeout) unwind like Ctrl-C does: through every
    ``finally`` and ``with`` block, so servers are stopped, databases dropped and scratch
    folders removed. Python's default for SIGTERM ends the process on the spot, leaving
    servers (in sessions of their own) running and databases behind. Call it in ``main``."""
    signal.signal(signal.SIGTERM, _raise_exit)


class ServerError(RuntimeError):
    """A server did not come up; the message names its log file."""


@dataclass(frozen=True)
class Paths:
    """Where the interpreters and tools live."""

    repo: Path
    cairn: Path
    mlflow: Path
    python: Path
    trivial: Path


def default_paths(repo: Path) -> Paths:
    bench = repo / "benchmarks"
    return Paths(
        repo=repo,
        cairn=repo / ".venv" / "bin" / "cairn",
        mlflow=bench / ".venv-mlflow" / "bin" / "mlflow",
        python=Path(sys.executable),
        trivial=bench / "regbench" / "trivial_server.py",
    )


@dataclass(frozen=True)
class ServerSpec:
    """What to start: ``target`` is cairn | cairn-mlflow-api | mlflow | trivial.

    ``cairn-mlflow-api`` is the same Cairn server process as ``cairn`` (same command, backend
    and workers); only the API the harness drives it through differs.
    """

    target: str
    backend: str  # sqlite | postgresql
    workers: int

    @property
    def program(self) -> str:
        """Which server program runs: cairn | mlflow | trivial."""
        return PROGRAMS.get(self.target, self.target)


@dataclass
class Running:
    """A started server: its port, process and log."""

    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    database: str | None = None

    @property
    def auth(self) -> str | None:
        """The ``Authorization`` value every request to this server carries (None: none).

        Cairn servers are started with the benchmark's bootstrap admin token; stock MLflow
        and the trivial endpoint have no authentication.
        """
        return auth.AUTHORIZATION if self.spec.program == "cairn" else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    if port == 8080:  # never used by the benchmark
        return free_port()
    return port


def _pg_exec(statement: sql.Composed) -> None:
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


def postgres_version() -> str:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            row = conn.execute("show server_version").fetchone()
    except psycopg.Error:
        return "not reachable"
    return str(row[0]) if row else "?"


def create_database(name: str) -> None:
    drop_database(name)
    _pg_exec(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    _pg_exec(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# A benchmark's PostgreSQL databases are named bench_<what>_<pid of the run that made them>.
_RUN_DATABASE = re.compile(r"bench_[a-z0-9_]+_([0-9]{1,7})")


def database_name(what: str) -> str:
    """The name of a new database of this run: ``bench_<what>_<pid>`` (see
    :func:`sweep_stale_databases`)."""
    return f"bench_{what}_{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_databases(names: Iterable[str], alive: Callable[[int], bool] = pid_alive) -> list[str]:
    """The benchmark databases among ``names`` whose run is gone."""
    return [
        name
        for name in names
        if (m := _RUN_DATABASE.fullmatch(name)) is not None and not alive(int(m.group(1)))
    ]


def sweep_stale_databases() -> list[str]:
    """Drop the databases left by benchmark runs that were killed with SIGKILL (no clean-up
    ran): those named ``bench_<what>_<pid>`` whose process no longer exists. A live run's
    are never touched, nor one that someone is connected to (the drop is not forced).
    Returns the names dropped; nothing when PostgreSQL is not reachable."""
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            names = [str(row[0]) for row in conn.execute("SELECT datname FROM pg_database")]
            dropped = []
            for name in stale_databases(names):
                try:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                except psycopg.errors.ObjectInUse:
                    continue
                dropped.append(name)
    except psycopg.OperationalError:
        return []
    return dropped


@contextlib.contextmanager
def backends_of(database: str | None) -> Iterator[Callable[[], list[int]]]:
    """A function that lists the PostgreSQL backends serving ``database`` (and its own),
    over one connection kept open meanwhile: processes that work for the benchmark, not
    other load (``transfer_procs.foreign_load``'s ``also_mine``). None: no database, none."""
    if database is None:
        yield list
        return
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as conn:

        def pids() -> list[int]:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s OR pid = pg_backend_pid()",
                (database,),
            ).fetchall()
            return [int(row[0]) for row in rows]

        yield pids


def analyze(run: Running) -> None:
    """Collect the planner's statistics of the server's PostgreSQL database, as autovacuum
    does on a live server (this machine's PostgreSQL runs with ``autovacuum = off``, so
    without this a table filled a moment ago is planned as if it were empty)."""
    if run.database:
        with psycopg.connect(_pg_uri(run.database), autocommit=True, connect_timeout=10) as c:
            c.execute("ANALYZE")


def _pg_uri(database: str, driver: str = "") -> str:
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://postgres@127.0.0.1:5432/{database}"


def _cairn_command(
    paths: Paths, spec: ServerSpec, port: int, workdir: Path, db: str | None
) -> list[str]:
    cmd = [str(paths.cairn), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(workdir / "cairn-data"), "--workers", str(spec.workers)]
    if db:
        cmd += ["--backend-uri", _pg_uri(db)]
    return cmd


def _mlflow_command(
    paths: Paths, spec: ServerSpec, port: int, workdir: Path, db: str | None
) -> list[str]:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; MLflow's driver is psycopg2.
    store = _pg_uri(db, "psycopg2") if db else f"sqlite:///{workdir / 'mlflow.db'}"
    cmd = [str(paths.mlflow), "server", "--backend-store-uri", store]
    cmd += ["--artifacts-destination", str(workdir / "mlartifacts")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(spec.workers)]
    # MLflow at its best: no per-request access log line (Cairn is run with its defaults).
    cmd += ["--uvicorn-opts", "--no-access-log"]
    return cmd


def _trivial_command(paths: Paths, spec: ServerSpec, port: int) -> list[str]:
    return [str(paths.python), str(paths.trivial), str(port), str(spec.workers)]


def _ready_path(target: str) -> str:
    return {"cairn": "/ready", "mlflow": "/health", "trivial": "/"}[target]


def _wait_ready(run: Running, timeout_s: float) -> None:
    url = f"http://127.0.0.1:{run.port}{_ready_path(run.spec.program)}"
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if run.proc.poll() is not None:
            raise ServerError(f"{run.spec.target} exited with {run.proc.returncode}; see {run.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise ServerError(f"{run.spec.target} not ready after {timeout_s:.0f} s; see {run.log}")


def warm_up(run: Running, api: Api, rounds: int = 4) -> None:
    """A few requests on fresh connections so every worker process has opened its store.

    Raises ServerError when the server refused them all as unauthenticated or forbidden
    (401/403: the harness's credentials are not accepted), so such a run is not measured;
    other failures (a slow worker, a timeout) are left to the phases, which count them.
    """
    probe = api.probe()
    headers = {"Authorization": run.auth} if run.auth else {}
    url = f"http://127.0.0.1:{run.port}{probe.path}"
    statuses: list[int] = []
    for _ in range(rounds * max(1, run.spec.workers)):
        with contextlib.suppress(httpx.HTTPError):
            statuses.append(
                httpx.request(probe.method, url, headers=headers, timeout=30.0).status_code
            )
    if probe.expect not in statuses and set(statuses) & set(auth.DENIED_STATUSES):
        got = ", ".join(map(str, statuses)) or "nothing"
        raise ServerError(
            f"{run.spec.target}: warm-up {probe.method} {probe.path} answered {got}, "
            f"not {probe.expect}; see {run.log}"
        )


def _server_env(spec: ServerSpec) -> dict[str, str]:
    env = {**os.environ, **QUIET_ENV}
    if spec.program == "cairn":
        env.update(auth.server_env())
    return env


def _start(paths: Paths, spec: ServerSpec, workdir: Path) -> Running:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    slug = spec.target.replace("-", "_")
    db = database_name(slug) if spec.backend == "postgresql" else None
    if db and spec.program != "trivial":
        create_database(db)
    else:
        db = None
    builders = {
        "cairn": lambda: _cairn_command(paths, spec, port, workdir, db),
        "mlflow": lambda: _mlflow_command(paths, spec, port, workdir, db),
        "trivial": lambda: _trivial_command(paths, spec, port),
    }
    log = workdir / f"{spec.target}.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                builders[spec.program](),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_server_env(spec),
                start_new_session=True,
            )
    except OSError:
        if db:
            drop_database(db)
        raise
    return Running(spec=spec, port=port, proc=proc, log=log, database=db)


def stop(run: Running) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers, drop its database."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, sig)
        try:
            run.proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group, if any
        os.killpg(run.proc.pid, signal.SIGKILL)
    if run.database:
        drop_database(run.database)


@contextlib.contextmanager
def serving(
    paths: Paths, spec: ServerSpec, workdir: Path, ready_timeout_s: float = 120.0
) -> Iterator[Running]:
    """Start a fresh server, wait until it answers, yield it, always stop it."""
    run = _start(paths, spec, workdir)
    try:
        _wait_ready(run, ready_timeout_s)
        yield run
    finally:
        stop(run)
