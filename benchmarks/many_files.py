"""Push and pull of versions made of many small files, through a fresh local server.

    .venv/bin/python benchmarks/many_files.py [--files 1000,3000] [--size 10000]

Not part of ``make bench``: an attribution tool beside ``transfer.py`` (which moves a few
large files). Each count gets a fresh ``cairn server --workers 1`` (SQLite, local blobs)
and a new model; ``cairn.Client.push`` sends a folder of that many random files of
``--size`` bytes (the SDK's digest cache emptied first, as on a first push), then
``pull`` downloads the version into an empty cache and folder. Every file is a blob, so
this measures the per-file path: one upload request, its fsyncs and its transactions.
The time per file should not grow with the number of files; if it does, some step costs
in proportion to the version's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from regbench import auth
from transfer_contenders import start_cairn


def _make_tree(root: Path, count: int, size: int) -> None:
    for i in range(count):
        folder = root / f"d{i % 30:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(os.urandom(size))


def _measure(work: Path, count: int, size: int) -> tuple[float, float]:
    import cairn

    src = work / "src"
    _make_tree(src, count, size)
    server = start_cairn(work, f"many-files-{count}")
    try:
        os.environ["CAIRN_CACHE_DIR"] = str(work / "push-cache")
        client = cairn.Client(server.base_url, token=auth.BENCH_TOKEN)
        client.create_model("many")
        os.sync()
        t0 = time.perf_counter()
        version = client.push(src, name="many")
        push_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.pull(f"models:/many/{version.version}", work / "out", cache_dir=work / "cache")
        pull_s = time.perf_counter() - t0
        client.close()
    finally:
        server.stop()
    return push_s, pull_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="1000,3000", help="comma-separated file counts")
    p.add_argument("--size", type=int, default=10_000, help="bytes per file")
    a = p.parse_args()
    print("| files | push s | push ms per file | pull s | pull ms per file |")
    print("|---:|---:|---:|---:|---:|")
    for count in (int(c) for c in a.files.split(",")):
        work = Path(tempfile.mkdtemp(prefix="cairn-many-files-"))
        try:
            push_s, pull_s = _measure(work, count, a.size)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"| {count:,} | {push_s:.1f} | {push_s / count * 1e3:.1f} | {pull_s:.1f} "
            f"| {pull_s / count * 1e3:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
