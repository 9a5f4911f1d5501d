"""Pulls from an S3 store: straight from the bucket through presigned links, against the
same bytes streamed through the Cairn server.

    .venv/bin/python benchmarks/direct_pull.py [--mib 256] [--reps 3] [--no-write]

Not part of ``make bench`` (the issue's transfer benchmark runs on local disk). It starts
a moto server (``moto[server]``, real HTTP on 127.0.0.1) as the bucket and one
``cairn server --workers 1`` whose artifacts live there, pushes one file of random bytes
with the SDK, then pulls it with the SDK into a fresh cache, alternating two ways, ``--reps``
times each: ``direct`` (the SDK as shipped: ``POST …/urls``, then a presigned GET from the
bucket) and ``through the server`` (the SDK without links: ``GET …/files/{path}``, the server
reading the bucket and hashing as it streams). It reports the median wall time, MB/s, and
the CPU seconds the Cairn server and the moto server used. moto keeps the objects in memory
on loopback, so the wall times are not a real bucket's; the server's CPU is the point: with
links, the bytes no longer pass through it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
from regbench.auth import BENCH_TOKEN, server_env
from regbench.report import splice
from transfer_procs import RUNNING, Server, free_port, process_tree, start_server, stop_all

from cairn.client.http import HttpClient

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BEGIN = "<!-- direct-pull:begin (written by benchmarks/direct_pull.py) -->"
END = "<!-- direct-pull:end -->"
BUCKET = "cairn-bench"


def cpu_seconds(server: Server) -> float:
    """User + system CPU seconds of the server's process tree so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(server.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def start(work: Path) -> tuple[Server, Server]:
    port = free_port()
    moto = start_server(
        "moto",
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        port=port,
        health_path="/moto-api/",
        log_path=work / "moto.log",
    )
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.base_url,
        "AWS_ALLOW_HTTP": "true",
    }
    boto3.client("s3", endpoint_url=moto.base_url, region_name="us-east-1").create_bucket(
        Bucket=BUCKET
    )
    port = free_port()
    cmd = [str(BIN / "cairn"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(work / "data"), "--artifacts-uri", f"s3://{BUCKET}/cairn"]
    cairn = start_server(
        "cairn",
        cmd,
        port=port,
        health_path="/ready",
        log_path=work / "cairn.log",
        env={**server_env(), **aws},
    )
    return moto, cairn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256, help="size of the file pulled")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    a = p.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with tempfile.TemporaryDirectory(prefix="cairn-direct-pull-") as tmp:
        work = Path(tmp)
        try:
            moto, cairn = start(work)
            results = measure(work, moto, cairn, a.mib, a.reps)
        finally:
            stop_all()
    assert not RUNNING
    text = report(results, a.mib, "".join(f" {x}" for x in sys.argv[1:]))
    print(text)
    if not a.no_write:
        splice(BENCH_DIR / "RESULTS.md", text, BEGIN, END)


def measure(
    work: Path, moto: Server, cairn: Server, mib: int, reps: int
) -> dict[str, list[tuple[float, float, float]]]:
    src = work / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(mib << 20))
    sdk = HttpClient(cairn.base_url, token=BENCH_TOKEN)
    linked = sdk._direct_urls
    results: dict[str, list[tuple[float, float, float]]] = {"direct": [], "through the server": []}
    try:
        sdk.create_model("bench")
        sdk.push(src, name="bench")
        for rep in range(reps):
            for mode in results:
                sdk._direct_urls = linked if mode == "direct" else lambda *_: {}  # type: ignore[method-assign]
                out, cache = work / f"out-{mode}-{rep}", work / f"cache-{mode}-{rep}"
                before = cpu_seconds(cairn), cpu_seconds(moto)
                t0 = time.perf_counter()
                sdk.pull("models:/bench/1", out, cache_dir=cache)
                seconds = time.perf_counter() - t0
                results[mode].append(
                    (seconds, cpu_seconds(cairn) - before[0], cpu_seconds(moto) - before[1])
                )
                assert (out / "weights.bin").stat().st_size == mib << 20
    finally:
        sdk.close()
    return results


def report(results: dict[str, list[tuple[float, float, float]]], mib: int, args: str) -> str:
    lines = [
        "## direct_pull: pulls from S3 (moto) straight from the bucket vs through the server",
        "",
        f"- Command: `.venv/bin/python benchmarks/direct_pull.py{args}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one file of {mib} MiB,"
        " SDK pull into a fresh cache each time, modes alternated; medians.",
        "- The bucket is a moto server on 127.0.0.1 (objects in its memory, no network between"
        " it and the client), not S3: the wall times are not a real bucket's. What carries over"
        " is the Cairn server's CPU: with links the bytes do not pass through it.",
        "",
        "| mode | runs | s | MB/s | Cairn server CPU s | moto CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, runs in results.items():
        s, cairn_cpu, moto_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        mb = (mib << 20) / 1e6
        lines.append(
            f"| {mode} | {len(runs)} | {s:.2f} | {mb / s:.0f} | {cairn_cpu:.2f} | {moto_cpu:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
