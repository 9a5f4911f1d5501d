"""Pulls from an object store: straight from the bucket through presigned links, against
the same bytes streamed through the Cairn server, on S3 (moto) and Azure (Azurite).

    .venv/bin/python benchmarks/direct_pull.py [--mib 256] [--reps 3] [--no-write]
                                               [--stores s3,azure,azure-capped]

Not part of ``make bench`` (the issue's transfer benchmark runs on local disk). For each
store it starts its emulator on 127.0.0.1 (moto's server from ``moto[server]``; Azurite,
installed in tests/emulators by ``make test``) and one ``cairn server --workers 1`` whose
artifacts live there, pushes one file of random bytes with the SDK, then pulls it with
the SDK into a fresh cache, alternating three ways, ``--reps`` times each:

* ``direct, ranges at once``: the SDK as shipped, ``POST …/urls`` and then presigned
  GETs from the bucket, 8 MiB ranges four at a time;
* ``direct, one stream``: the same link read by one GET (``CAIRN_LINK_STREAMS=1``; the
  SDK before session 27);
* ``through the server``: the SDK without links, ``GET …/files/{path}``, the server
  reading the bucket and hashing as it streams.

It reports the median wall time, MB/s, and the CPU seconds the Cairn server and the
emulator used. Both emulators keep objects in memory on loopback, so the wall times are
not a real bucket's, whose one stream seldom passes ~100 MB/s (what ranges at once are
for). moto answers a range by reading the whole object (an 8 MiB range of a 256 MiB
object costs about a fifth of the whole GET), so on moto ranges at once cost many times
more; Azurite serves a range in proportion to its size. ``azure-capped`` puts Azurite
behind ``regbench/throttle.py``, a relay that lets each connection download at most
``CAPPED_MB_S``: a model of a remote bucket's one-stream limit, not a measurement of
one. The server's CPU is the point of the third way: with links, the bytes no longer
pass through it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import boto3
from azure.storage.blob import BlobServiceClient
from regbench.auth import BENCH_TOKEN, server_env
from regbench.provenance import commit_label, machine
from regbench.report import splice
from regbench.servers import exit_on_sigterm
from transfer_procs import RUNNING, Server, free_port, process_tree, start_server, stop_all

from cairn.client.http import HttpClient

T = TypeVar("T")
BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BEGIN = "<!-- direct-pull:begin (written by benchmarks/direct_pull.py) -->"
END = "<!-- direct-pull:end -->"
BUCKET = "cairn-bench"
AZURITE = BENCH_DIR.parent / "tests" / "emulators" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"  # the emulator's one account and its published key
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
CAPPED_MB_S = 25  # azure-capped: each connection's download rate through the relay
STORES = {
    "s3": "S3 (moto)",
    "azure": "Azure (Azurite)",
    "azure-capped": f"Azure (Azurite), {CAPPED_MB_S} MB/s per connection",
}
MODES = ["direct, ranges at once", "direct, one stream", "through the server"]
Results = dict[str, list[tuple[float, float, float]]]  # mode → (s, Cairn CPU, emulator CPU)


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


def start_bucket(work: Path, store: str) -> tuple[Server, str, dict[str, str]]:
    """The store's emulator, the artifacts URI in it and the environment that reaches it."""
    port = free_port()
    if store == "s3":
        moto = start_server(
            "moto",
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            port=port,
            health_path="/moto-api/",
            log_path=work / "moto.log",
        )
        boto3.client("s3", endpoint_url=moto.base_url, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.base_url,
            "AWS_ALLOW_HTTP": "true",
        }
        return moto, f"s3://{BUCKET}/cairn", env
    if not AZURITE.exists():
        raise SystemExit(f"Azurite is not installed ({AZURITE}): run make test first")
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    cmd += ["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"]
    azurite = start_server(
        "azurite",
        cmd,
        port=port,
        health_path=f"/{AZURITE_ACCOUNT}?comp=list",  # 403: up, and asking for a key
        log_path=work / "azurite.log",
        healthy=lambda status: status in (200, 403),
    )
    BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={azurite.base_url}/{AZURITE_ACCOUNT};"
    ).create_container(BUCKET)
    endpoint = azurite.base_url
    if store == "azure-capped":  # Cairn and its links reach Azurite through the relay
        relay_port = free_port()
        relay = [sys.executable, str(BENCH_DIR / "regbench" / "throttle.py")]
        relay += [str(relay_port), str(port), str(CAPPED_MB_S)]
        endpoint = start_server(
            "throttle",
            relay,
            port=relay_port,
            health_path=f"/{AZURITE_ACCOUNT}?comp=list",
            log_path=work / "throttle.log",
            healthy=lambda status: status in (200, 403),
        ).base_url
    env = {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": endpoint}
    return azurite, f"az://{BUCKET}/cairn", env


def start(work: Path, store: str = "s3") -> tuple[Server, Server]:
    """The store's emulator and a Cairn server keeping its artifacts there."""
    bucket, uri, env = start_bucket(work, store)
    port = free_port()
    cmd = [str(BIN / "cairn"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(work / "data"), "--artifacts-uri", uri]
    cairn = start_server(
        "cairn",
        cmd,
        port=port,
        health_path="/ready",
        log_path=work / "cairn.log",
        env={**server_env(), **env},
    )
    return bucket, cairn


def per_store(stores: str, measure: Callable[[Path, Server, Server], T]) -> dict[str, T]:
    """``measure(work, bucket, cairn)`` for each store of the comma-separated ``stores``,
    each with its emulator and Cairn server started in a fresh folder and stopped after."""
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    results: dict[str, T] = {}
    for store in stores.split(","):
        with tempfile.TemporaryDirectory(prefix=f"cairn-bench-{store}-") as tmp:
            work = Path(tmp)
            try:
                results[store] = measure(work, *start(work, store))
            finally:
                stop_all()
    assert not RUNNING
    return results


def main() -> None:
    exit_on_sigterm()  # servers stopped, databases dropped on `kill`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256, help="size of the file pulled")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--stores", default=",".join(STORES), help="comma-separated; all by default")
    p.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    a = p.parse_args()
    results = per_store(a.stores, lambda *servers: measure(*servers, a.mib, a.reps))
    text = report(results, a.mib, "".join(f" {x}" for x in sys.argv[1:]))
    print(text)
    if not a.no_write:
        splice(BENCH_DIR / "RESULTS.md", text, BEGIN, END)


def measure(work: Path, bucket: Server, cairn: Server, mib: int, reps: int) -> Results:
    src = work / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(mib << 20))
    sdk = HttpClient(cairn.base_url, token=BENCH_TOKEN)
    linked = sdk._direct_urls
    results: Results = {mode: [] for mode in MODES}
    try:
        sdk.create_model("bench")
        sdk.push(src, name="bench")
        for rep in range(reps):
            for mode in results:
                direct = mode.startswith("direct")
                sdk._direct_urls = linked if direct else lambda *_, **__: {}  # type: ignore[method-assign]
                os.environ["CAIRN_LINK_STREAMS"] = "4" if "ranges" in mode else "1"
                out, cache = work / f"out-{mode}-{rep}", work / f"cache-{mode}-{rep}"
                before = cpu_seconds(cairn), cpu_seconds(bucket)
                t0 = time.perf_counter()
                sdk.pull("models:/bench/1", out, cache_dir=cache)
                seconds = time.perf_counter() - t0
                results[mode].append(
                    (seconds, cpu_seconds(cairn) - before[0], cpu_seconds(bucket) - before[1])
                )
                assert (out / "weights.bin").stat().st_size == mib << 20
    finally:
        os.environ.pop("CAIRN_LINK_STREAMS", None)
        sdk.close()
    return results


def report(results: dict[str, Results], mib: int, args: str) -> str:
    lines = [
        "## direct_pull: pulls from S3 (moto) and Azure (Azurite), straight from the bucket"
        " or through the server",
        "",
        f"- Command: `.venv/bin/python benchmarks/direct_pull.py{args}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one file of {mib} MiB,"
        " SDK pull into a fresh cache each time, modes alternated; medians.",
        f"- Cairn commit {commit_label(BENCH_DIR.parent)}; machine: {machine(BENCH_DIR)}",
        "- The buckets are emulators on 127.0.0.1 (objects in their memory), not S3 or Azure:"
        " the wall times are not a real bucket's, whose one stream seldom passes ~100 MB/s"
        " (what ranges at once are for). moto reads the whole object to answer any range, so"
        " there ranges at once cost many times more; Azurite serves a range in proportion to"
        " its size. The capped rows put Azurite behind a relay that lets each connection"
        f" download at most {CAPPED_MB_S} MB/s (benchmarks/regbench/throttle.py): a model of"
        " a remote bucket's one-stream limit, not a measurement of one. What carries over is"
        " the Cairn server's CPU: with links the bytes do not pass through it.",
        "",
        "| store | mode | runs | s | MB/s | Cairn server CPU s | emulator CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    mb = (mib << 20) / 1e6
    for store, by_mode in results.items():
        for mode, runs in by_mode.items():
            s, cairn_cpu, bucket_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
            lines.append(
                f"| {STORES[store]} | {mode} | {len(runs)} | {s:.2f} | {mb / s:.0f} |"
                f" {cairn_cpu:.2f} | {bucket_cpu:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
