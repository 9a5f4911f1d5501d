"""Pushes to an object store through presigned parts: four parts at once (the SDK as
shipped) against one part at a time (the SDK before session 27).

    .venv/bin/python benchmarks/direct_push.py [--mib 256] [--reps 3] [--no-write]
                                               [--stores s3,azure,azure-capped]

Not part of ``make bench``. For each store (``--stores``: s3, azure, azure-capped, as
in ``direct_pull.py``) it starts the same emulator and ``cairn server --workers 1`` as
``direct_pull.py``, then pushes a file of fresh random bytes (a new model each time, so
nothing is deduplicated) with the SDK, alternating the two ways ``--reps`` times. The
server's parts are 64 MiB, so the default file is four parts. Reported: the median wall
time of the whole push (hashing, create, parts, the server's verification at
``complete``) and of the parts alone, and the CPU seconds of the Cairn server and the
emulator. The emulators keep objects in memory on loopback: they are not S3 or Azure,
whose one-stream rate (~100 MB/s) is what several parts at once are for; the capped
store's relay slows only what comes out of the bucket (the server reading the parts
back at ``complete``), not what goes in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from direct_pull import STORES, cpu_seconds, per_store
from regbench.auth import BENCH_TOKEN
from regbench.provenance import commit_label, machine
from regbench.report import splice
from regbench.servers import exit_on_sigterm
from transfer_procs import Server

from cairn.client import direct_parts
from cairn.client import http as http_module
from cairn.client.http import HttpClient

BENCH_DIR = Path(__file__).resolve().parent
BEGIN = "<!-- direct-push:begin (written by benchmarks/direct_push.py) -->"
END = "<!-- direct-push:end -->"
MODES = {"4 parts at once": 4, "1 part at a time": 1}
Row = tuple[float, float, float, float]  # push s, parts s, Cairn CPU s, emulator CPU s


def main() -> None:
    exit_on_sigterm()  # servers stopped, databases dropped on `kill`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256, help="size of the file pushed")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--stores", default=",".join(STORES), help="as in direct_pull.py")
    p.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    a = p.parse_args()
    results = per_store(a.stores, lambda *servers: measure(*servers, a.mib, a.reps))
    text = report(results, a.mib, "".join(f" {x}" for x in sys.argv[1:]))
    print(text)
    if not a.no_write:
        splice(BENCH_DIR / "RESULTS.md", text, BEGIN, END)


def _timed_parts(spent: list[float]) -> Callable[..., None]:
    real = direct_parts.send_parts

    def send_parts(*args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        try:
            real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    return send_parts


def measure(work: Path, bucket: Server, cairn: Server, mib: int, reps: int) -> dict[str, list[Row]]:
    sdk = HttpClient(cairn.base_url, token=BENCH_TOKEN)
    spent: list[float] = []
    http_module.send_parts = _timed_parts(spent)  # type: ignore[attr-defined]
    results: dict[str, list[Row]] = {mode: [] for mode in MODES}
    try:
        for rep in range(reps):
            for mode, workers in MODES.items():
                name = f"bench-{rep}-{workers}"
                src = work / name
                src.mkdir()
                (src / "weights.bin").write_bytes(os.urandom(mib << 20))
                sdk.create_model(name)
                direct_parts.PART_WORKERS = workers
                spent.clear()
                before = cpu_seconds(cairn), cpu_seconds(bucket)
                t0 = time.perf_counter()
                version = sdk.push(src, name=name)
                seconds = time.perf_counter() - t0
                assert version.status.value == "READY" and len(spent) == 1, (version, spent)
                results[mode].append(
                    (
                        seconds,
                        spent[0],
                        cpu_seconds(cairn) - before[0],
                        cpu_seconds(bucket) - before[1],
                    )
                )
                (src / "weights.bin").unlink()
    finally:
        sdk.close()
    return results


def report(results: dict[str, dict[str, list[Row]]], mib: int, args: str) -> str:
    mb = (mib << 20) / 1e6
    lines = [
        "## direct_push: pushes to object stores through presigned parts, several at once or not",
        "",
        f"- Command: `.venv/bin/python benchmarks/direct_push.py{args}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one file of {mib} MiB"
        " of fresh random bytes per push, presigned parts of 64 MiB, modes alternated; medians.",
        f"- Cairn commit {commit_label(BENCH_DIR.parent)}; machine: {machine(BENCH_DIR)}",
        "- push: the SDK's whole push (hashing, create, parts, the server's verification at"
        " complete); parts: sending the parts alone. The buckets are emulators on 127.0.0.1"
        " (objects in memory), not a cloud's, whose one-stream rate is what several parts at"
        " once are for. The capped store's relay slows only what comes out of the bucket (the"
        " server reading the parts back at complete), so it models complete, not the parts.",
        "",
        "| store | mode | runs | push s | push MB/s | parts s | parts MB/s | Cairn CPU s"
        " | emulator CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store, by_mode in results.items():
        for mode, runs in by_mode.items():
            medians = (statistics.median(r[i] for r in runs) for i in range(4))
            push, parts, cairn_cpu, bucket_cpu = medians
            lines.append(
                f"| {STORES[store]} | {mode} | {len(runs)} | {push:.2f} | {mb / push:.0f} |"
                f" {parts:.2f} | {mb / parts:.0f} | {cairn_cpu:.2f} | {bucket_cpu:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
