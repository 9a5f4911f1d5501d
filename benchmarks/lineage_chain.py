"""Recording a long chain of fine-tunes: what each new link's parent costs as the chain grows.

    .venv/bin/python benchmarks/lineage_chain.py [--links 3000] [--backend sqlite|postgresql]
        [--every 500]

Not part of ``make bench``: an attribution tool for the lineage cycle check. Recording a
parent must refuse a cycle, so it asks whether the new child is already an ancestor of
the parent: the whole ancestry of the parent, however deep. This builds one model with
``--links`` versions through the service, in-process (``build_service``: a fresh SQLite
file, or a fresh PostgreSQL database on 127.0.0.1:5432), each version recorded as a
fine-tune of the one before, and prints the time so far every ``--every`` links and the
mean time of the last ``--every`` links' ``record_inputs`` calls. A cycle check that
walked the ancestry a generation per query made the n-th link cost n queries (1,000 links
took 92.6 s on SQLite here); one recursive query keeps each link a single statement.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from cairn.domain.access import SYSTEM
from cairn.domain.lineage import InputKind, LineageInput
from cairn.service.factory import build_service
from cairn.service.registry import RegistryService
from cairn.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=3000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--every", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cairn-chain-"))
    database = None
    options: dict[str, object] = {"data_dir": folder}
    if args.backend == "postgresql":
        database = f"cairn_chain_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG + "postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        options["backend_uri"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    try:
        run(build_service(Settings(**options)), args.links, args.every, args.backend)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if database is not None:
            with psycopg.connect(PG + "postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run(svc: RegistryService, links: int, every: int, backend: str) -> None:
    svc.create_model(SYSTEM, "chain")
    svc.create_version(SYSTEM, "chain")
    began = time.perf_counter()
    recording = 0.0
    print(f"{backend}: {links} links, a fine-tune each of the one before")
    print("links | s so far | ms per record_inputs (last batch)")
    for n in range(2, links + 1):
        svc.create_version(SYSTEM, "chain")
        parent = LineageInput(
            InputKind.MODEL_VERSION, f"models:/chain/{n - 1}", relation="fine-tune"
        )
        start = time.perf_counter()
        svc.record_inputs(SYSTEM, "chain", n, [parent])
        recording += time.perf_counter() - start
        if n % every == 0 or n == links:
            batch = every if n % every == 0 else n % every
            print(f"{n} | {time.perf_counter() - began:.1f} | {recording / batch * 1000:.2f}")
            recording = 0.0


if __name__ == "__main__":
    main()
