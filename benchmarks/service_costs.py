"""What Cairn's own code costs per registry operation, without HTTP: the service called
in-process, one call after the other.

    .venv/bin/python benchmarks/service_costs.py [--backend sqlite|postgresql] [--calls N]

Not part of ``make bench``: an attribution tool beside ``registry_ops.py`` (which measures
the same operations over HTTP against MLflow). It builds the service as the server does
(``build_service``, a fresh SQLite file or a fresh PostgreSQL database on 127.0.0.1:5432),
creates a model with a version and an alias, then times each operation: mean wall time
per call over ``--calls`` calls after a warm-up. To compare two commits, run it with
``PYTHONPATH=<other checkout>/src`` (the service API it calls is the same since 0.1).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from regbench.servers import database_name, exit_on_sigterm, sweep_stale_databases

from cairn.app import ensure_admin
from cairn.domain.models import VersionSpec
from cairn.service.factory import build_service
from cairn.service.registry import RegistryService
from cairn.settings import Settings

TOKEN = "service-costs-throwaway-admin-token-0123456789"
PG = "postgresql://postgres@127.0.0.1:5432/"


@contextmanager
def scratch_settings(backend: str, prefix: str) -> Iterator[Settings]:
    """Settings of a fresh registry: a temporary data folder, removed afterwards, and on
    PostgreSQL a new database on 127.0.0.1:5432, dropped afterwards (named after this
    process, so that a later run drops it if this one is killed before it can). The
    bootstrap admin's token is TOKEN."""
    database = (
        database_name(f"{prefix}_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    )
    if database:
        sweep_stale_databases()
        with psycopg.connect(PG + "postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {database}")
    os.environ["CAIRN_BOOTSTRAP_TOKEN"] = TOKEN
    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        yield Settings(data_dir=data_dir, backend_uri=PG + database if database else None)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if database:
            with psycopg.connect(PG + "postgres", autocommit=True) as c:
                c.execute(f"DROP DATABASE {database} WITH (FORCE)")


def main() -> None:
    exit_on_sigterm()  # servers stopped, databases dropped on `kill`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--calls", type=int, default=1000)
    a = p.parse_args()
    with scratch_settings(a.backend, "service_costs") as settings:
        service = build_service(settings)
        try:
            ensure_admin(service, settings)
            run(service, a.calls)
        finally:
            service.db.dispose()


def run(svc: RegistryService, calls: int) -> None:
    actor = svc.authenticate(TOKEN)
    svc.create_model(actor, "bench-0", tags={"team": "risk"})
    spec = VersionSpec(source="s3://bucket/model", tags={"kind": "candidate"})
    svc.create_version(actor, "bench-0", spec)
    svc.set_alias(actor, "bench-0", "champion", 1)
    names = (f"m-{i}" for i in itertools.count())
    versions = itertools.cycle(range(1, 11))
    operations: list[tuple[str, Callable[[], object], int]] = [
        ("authenticate a token", lambda: svc.authenticate(TOKEN), calls),
        (
            "create a model",
            lambda: svc.create_model(actor, next(names), tags={"team": "risk"}),
            calls // 2,
        ),
        ("create a version", lambda: svc.create_version(actor, "bench-0", spec), calls),
        (
            "move an alias",
            lambda: svc.set_alias(actor, "bench-0", "champion", next(versions)),
            calls,
        ),
        ("get by alias", lambda: svc.resolve(actor, "models:/bench-0@champion"), calls),
        ("get a version", lambda: svc.get_version(actor, "bench-0", 1), calls),
        (
            "search versions (one model, a tag; 100 of them)",
            lambda: svc.search_versions(
                actor, "name = 'bench-0' AND tags.kind = 'candidate'", max_results=100
            ),
            max(1, calls // 10),
        ),
        (
            "search models (name prefix, a tag)",
            lambda: svc.search_models(
                actor, "name LIKE 'bench-%' AND tags.team = 'risk'", max_results=100
            ),
            calls,
        ),
    ]
    print(f"| operation | µs per call ({os.environ.get('PYTHONPATH') or 'this checkout'}) |")
    print("|---|---:|")
    for label, fn, n in operations:
        for _ in range(min(50, n)):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        print(f"| {label} | {(time.perf_counter() - start) / n * 1e6:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
