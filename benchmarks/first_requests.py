"""What the first call of each kind costs in a fresh process, against the second call,
with and without compiling the stores' statements ahead (``Database.compile_statements``,
which a server worker runs before its first request).

    .venv/bin/python benchmarks/first_requests.py [--backend sqlite|postgresql]

Not part of ``make bench``: an attribution tool beside ``service_costs.py``. Each variant
runs in a new Python process (statements are compiled once per process), builds the
service as the server does on a fresh SQLite file or PostgreSQL database, then times each
operation twice in a row, in the order of the table (each first call is the process's
first of its kind). It prints one table: medians over three processes per variant of the
first call's milliseconds, and of the second call's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

TAGS = {"team": "risk"}
RUNS = 3  # processes per variant; the table gives medians
OPERATIONS = (
    "create a model",
    "create a version",
    "move an alias",
    "get by alias",
    "get a version",
    "search versions",
)


def measure(backend: str, ahead: bool) -> dict[str, tuple[float, float]]:
    """In this process: first and second call of each operation, in ms."""
    from service_costs import TOKEN, scratch_settings

    from cairn.app import ensure_admin
    from cairn.domain.models import VersionSpec
    from cairn.service.factory import build_service

    with scratch_settings(backend, "first_requests") as settings:
        svc = build_service(settings)
        try:
            ensure_admin(svc, settings)
            if ahead:
                svc.db.compile_statements()
            actor = svc.authenticate(TOKEN)
            spec = VersionSpec(source="s3://bucket/model", tags={"kind": "candidate"})
            models = iter(("bench-0", "bench-1"))
            numbers = iter((1, 2))
            # in this order, each run twice: the first call of each is the process's first
            calls: dict[str, Callable[[], object]] = {
                "create a model": lambda: svc.create_model(actor, next(models), tags=TAGS),
                "create a version": lambda: svc.create_version(actor, "bench-0", spec),
                "move an alias": lambda: svc.set_alias(actor, "bench-0", "champion", next(numbers)),
                "get by alias": lambda: svc.resolve(actor, "models:/bench-0@champion"),
                "get a version": lambda: svc.get_version(actor, "bench-0", 1),
                "search versions": lambda: svc.search_versions(
                    actor, "name = 'bench-0' AND tags.kind = 'candidate'", max_results=100
                ),
            }
            found = {}
            for label in OPERATIONS:
                times = []
                for _ in range(2):
                    start = time.perf_counter()
                    calls[label]()
                    times.append((time.perf_counter() - start) * 1e3)
                found[label] = (times[0], times[1])
            return found
        finally:
            svc.db.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--child", choices=["ahead", "lazy"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(measure(a.backend, a.child == "ahead")))
        return
    runs: dict[str, list[dict[str, list[float]]]] = {"lazy": [], "ahead": []}
    for _ in range(RUNS):
        for variant, found in runs.items():
            out = subprocess.run(
                [sys.executable, __file__, "--backend", a.backend, "--child", variant],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            found.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"| operation ({a.backend}) | first, compiled on use | first, compiled ahead "
        "| second call |"
    )
    print("|---|---:|---:|---:|")
    for label in OPERATIONS:
        lazy = statistics.median(r[label][0] for r in runs["lazy"])
        ahead = statistics.median(r[label][0] for r in runs["ahead"])
        second = statistics.median(r[label][1] for v in runs.values() for r in v)
        print(f"| {label} | {lazy:.1f} ms | {ahead:.1f} ms | {second:.1f} ms |")


if __name__ == "__main__":
    main()
