"""Where Cairn's transfer time goes: the same 1 GiB push and pull through patched servers.

    .venv/bin/python benchmarks/transfer_attribution.py [--quick] [--reps N] [--no-write]

Not part of ``make bench``. Each variant runs Cairn's own server code with one change
monkeypatched in at start-up (nothing under ``src/`` is edited), so the difference to the
unpatched server is the cost of the layer that was changed:

- ``baseline``: Cairn as it is;
- ``unjoined-upload``: the upload bridge (``cairn.api.streaming.run_with_body``) replaced
  by one that hands the body's ~64 KiB chunks to the worker thread as they came, in lists
  of ~1 MiB, instead of joining them into one ``bytes`` first (one copy fewer, but sixteen
  times as many hash updates, each releasing and re-taking the GIL);
- ``prefetch-download``: Starlette's ``iterate_in_threadpool`` replaced by one that reads
  (and hashes) the next chunk in a thread while the current one is being sent;
- ``rehash-downloads``: the local store's memo of verified files disabled, so every
  whole-file download is hashed again (what Cairn did before the memo);
- ``no-download-verify``: ``ArtifactsService._verified`` a pass-through and the memo
  claiming every file intact: no hashing of downloads at all;
- ``unjoined+rehash``: both of the first.

The loopback-HTTP reference of ``transfer.py`` runs alongside; curl is the client. Push
rates exclude the client's hashing (“upload only”). Results: stdout, and unless
``--no-write`` a block of ``benchmarks/RESULTS.md`` right after transfer.py's section.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transfer_contenders as tc
import transfer_data as td
import transfer_report as tr
from regbench import auth
from regbench.provenance import commit_label, machine
from regbench.report import splice
from regbench.servers import exit_on_sigterm
from transfer_procs import (
    add_wait_quiet,
    foreign_load,
    free_port,
    sample_rss,
    start_server,
    stop_all,
    wait_quiet,
)

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "transfer-attribution"
BEGIN = "<!-- transfer-attribution:begin (written by benchmarks/transfer_attribution.py) -->"
END = "<!-- transfer-attribution:end -->"
VARIANTS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "unjoined-upload": ("pipe",),
    "prefetch-download": ("prefetch",),
    "rehash-downloads": ("rehash",),
    "no-download-verify": ("noverify",),
    "unjoined+rehash": ("pipe", "rehash"),
}
BATCH = 1 << 20
DEPTH = 4
T = TypeVar("T")


# --- the patches (run inside the server process) -------------------------------------


async def _pipelined_run_with_body(request: Any, fn: Callable[[Iterator[bytes]], T]) -> T:
    import anyio
    import anyio.from_thread
    import anyio.to_thread

    send, receive = anyio.create_memory_object_stream[list[bytes]](max_buffer_size=DEPTH)

    async def produce() -> None:
        async with send:
            parts: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                parts.append(chunk)
                size += len(chunk)
                if size >= BATCH:
                    await send.send(parts)
                    parts, size = [], 0
            if parts:
                await send.send(parts)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                yield from anyio.from_thread.run(receive.receive)
            except anyio.EndOfStream:
                return

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        try:
            result = await anyio.to_thread.run_sync(lambda: fn(chunks()))
        finally:
            receive.close()
    return result


async def _prefetching(iterable: Iterable[T]) -> AsyncIterator[T]:
    import anyio.to_thread

    iterator = iter(iterable)
    done = object()

    def advance() -> object:
        return next(iterator, done)

    pending = asyncio.ensure_future(anyio.to_thread.run_sync(advance))
    while (item := await pending) is not done:
        pending = asyncio.ensure_future(anyio.to_thread.run_sync(advance))
        yield item  # type: ignore[misc]


def _apply(patches: set[str]) -> None:
    if "pipe" in patches:
        import cairn.api.v1.artifacts as artifacts

        artifacts.__dict__["run_with_body"] = _pipelined_run_with_body
    if "prefetch" in patches:
        import starlette.responses as responses

        responses.__dict__["iterate_in_threadpool"] = _prefetching
    if "noverify" in patches:
        from cairn.service.artifacts import ArtifactsService
        from cairn.store.blobs.localio import VerifiedFiles

        ArtifactsService._verified = lambda self, chunks, digest: chunks  # type: ignore[method-assign]
        VerifiedFiles.intact = lambda self, digest, st: True  # type: ignore[method-assign]
    if "rehash" in patches:
        from cairn.store.blobs.localio import VerifiedFiles

        VerifiedFiles.intact = lambda self, digest, st: False  # type: ignore[method-assign]


def serve(port: int, data_dir: Path, patches: set[str]) -> None:
    """What ``cairn server --workers 1`` does, with ``patches`` applied first."""
    import uvicorn

    from cairn.app import create_app
    from cairn.service.factory import build_service
    from cairn.settings import Settings

    _apply(patches)
    settings = Settings(host="127.0.0.1", port=port, data_dir=data_dir)
    build_service(settings).db.dispose()
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )


# --- the harness ---------------------------------------------------------------------


class PatchedCairn(tc.CairnRaw):
    def __init__(self, name: str, patches: tuple[str, ...], hash_threads: int) -> None:
        super().__init__("curl", hash_threads)
        self.key = self.label = name
        self.patches = patches

    def start(self, workdir: Path) -> None:
        tc.Contender.start(self, workdir)
        port = free_port()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
        cmd += [str(workdir / "data"), ",".join(self.patches)]
        self.server = start_server(
            self.key,
            cmd,
            port=port,
            health_path="/health",
            log_path=workdir / "server.log",
            env=auth.server_env(),  # create_app bootstraps admin with the benchmarks' token
        )


@dataclass
class Result:
    name: str
    push_mbps: list[float]
    pull_mbps: list[float]
    push_cpu: list[float]
    pull_cpu: list[float]
    disturbed: int = 0


def one_round(k: tc.Contender, ds: td.Dataset, result: Result, workdir: Path) -> None:
    k.start(workdir)
    try:
        with foreign_load() as other, sample_rss(k.rss_root) as push_rss:
            push = k.push(ds)
        with foreign_load() as other2, sample_rss(k.rss_root) as pull_rss:
            pull = k.pull(ds, workdir / "pulled")
    finally:
        k.stop()
        tc.remove_tree(workdir)
    os.sync()
    result.push_mbps.append(ds.total / (push.seconds - push.hash_s) / 1e6)
    result.pull_mbps.append(ds.total / pull.seconds / 1e6)
    result.push_cpu.append(push_rss.cpu_s)
    result.pull_cpu.append(pull_rss.cpu_s)
    result.disturbed += max(other.cpus, other2.cpus) > tr.DISTURBED_CPUS
    print(
        f"[attribution] {k.key:20} upload {result.push_mbps[-1]:5.0f} MB/s "
        f"(server CPU {push_rss.cpu_s:.2f} s), pull {result.pull_mbps[-1]:5.0f} MB/s "
        f"(server CPU {pull_rss.cpu_s:.2f} s)",
        file=sys.stderr,
        flush=True,
    )


def table(results: list[Result], ds: td.Dataset) -> str:
    ref = results[0]
    ref_push, ref_pull = statistics.median(ref.push_mbps), statistics.median(ref.pull_mbps)
    lines = [
        f"| server ({ds.label}, curl) | upload MB/s | x loopback | server CPU s "
        "| pull MB/s | x loopback | server CPU s | disturbed runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        push, pull = statistics.median(r.push_mbps), statistics.median(r.pull_mbps)
        lines.append(
            f"| {r.name} | {push:.0f} | {push / ref_push:.2f}x "
            f"| {statistics.median(r.push_cpu):.2f} | {pull:.0f} | {pull / ref_pull:.2f}x "
            f"| {statistics.median(r.pull_cpu):.2f} | {r.disturbed} of {len(r.push_mbps)} |"
        )
    return "\n".join(lines)


def splice_after_transfer(path: Path, section: str) -> None:
    """Replace this block, or put it right after transfer.py's block (or at the end)."""
    splice(path, section, BEGIN, END, after=tr.END)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve(int(argv[1]), Path(argv[2]), set(filter(None, argv[3].split(","))))
        return 0
    exit_on_sigterm()  # servers stopped on `kill`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    add_wait_quiet(p)
    a = p.parse_args(argv)
    busy = wait_quiet(a.wait_quiet, lambda m: print(f"[attribution] {m}", file=sys.stderr))
    shape = (td.QUICK_SHAPES if a.quick else td.FULL_SHAPES)[0]
    ds = td.ensure(shape, BENCH_DIR / ".work" / "transfer" / "data")
    contenders: list[tc.Contender] = [tc.Reference("stdlib", "curl")]
    contenders += [PatchedCairn(n, v, os.cpu_count() or 1) for n, v in VARIANTS.items()]
    results = [Result(k.key, [], [], [], []) for k in contenders]
    try:
        for rep in range(a.reps):
            shift = rep % len(contenders)
            for i in list(range(shift, len(contenders))) + list(range(shift)):
                one_round(contenders[i], ds, results[i], WORK / f"{rep}-{i}")
    finally:
        stop_all()
    command = shlex.join([".venv/bin/python", "benchmarks/transfer_attribution.py", *argv])
    section = "\n".join(
        [
            "### Attribution (benchmarks/transfer_attribution.py)",
            "",
            f"`{command}`: Cairn's server with one layer changed at a time (monkeypatched "
            "at start-up; see the script's docstring), median of "
            f"{a.reps}; push = upload only (the client's hashing left out).",
            "",
            f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Cairn commit "
            f"{commit_label(BENCH_DIR.parent)}; machine: {machine(BENCH_DIR)}.",
            "",
            table(results, ds),
            "",
            *([f"Busy other processes at the start: {', '.join(busy)}.", ""] if busy else []),
        ]
    )
    print(section)
    if not a.no_write:
        splice_after_transfer(BENCH_DIR / "RESULTS.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
