"""A benchmark run killed with SIGKILL runs no clean-up: its PostgreSQL databases
(``bench_<what>_<pid>``) stay behind. The next run drops those whose process is gone, and
never a live run's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from regbench import servers


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # gone (and reaped); reused within this test only by a rare accident


def test_stale_databases_are_those_of_runs_that_are_gone() -> None:
    alive = {100, 200}
    names = [
        "bench_cairn_100",  # a live run's
        "bench_cairn_mlflow_api_300",  # a killed run's
        "bench_search_scale_1a2b3c4d_400",  # a killed run's scratch database
        "postgres",
        "cairn_test_gw0_300",  # not a benchmark's
        "bench_cairn",  # no pid
    ]
    stale = servers.stale_databases(names, alive=lambda pid: pid in alive)
    assert stale == ["bench_cairn_mlflow_api_300", "bench_search_scale_1a2b3c4d_400"]


def _databases() -> set[str]:
    with psycopg.connect(servers.PG_DSN, autocommit=True, connect_timeout=5) as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database")}


@pytest.fixture
def leftovers() -> Iterator[tuple[str, str]]:
    if servers.postgres_version() == "not reachable":
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import os

    dead, live = f"bench_sweeptest_{_dead_pid()}", f"bench_sweeptest_{os.getpid()}"
    for name in (dead, live):
        servers.create_database(name)
    yield dead, live
    for name in (dead, live):
        servers.drop_database(name)


def test_sweep_drops_a_killed_runs_database_and_keeps_a_live_ones(
    leftovers: tuple[str, str],
) -> None:
    dead, live = leftovers
    dropped = servers.sweep_stale_databases()
    assert dead in dropped and live not in dropped
    names = _databases()
    assert dead not in names and live in names


def test_the_backends_serving_a_database_are_known(leftovers: tuple[str, str]) -> None:
    """They work for the run (auth_cost's server, search_scale's reads): not other load."""
    _, live = leftovers
    with (
        psycopg.connect(servers.PG_DSN.rsplit("/", 1)[0] + f"/{live}") as client,
        servers.backends_of(live) as ours,
    ):
        assert client.info.backend_pid in ours()
    with servers.backends_of(None) as none:
        assert list(none()) == []
