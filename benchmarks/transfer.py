"""Transfer benchmark: push and pull of model files through Cairn against three references.

    .venv/bin/python benchmarks/transfer.py [--quick] [--reps N] [--only KEY,…]
                                            [--wait-quiet S] [--no-write]

Data: one 1 GiB file and a 20 x 50 MB model (``--quick``: 256 MiB and 5 x 50 MB) of
random bytes, generated once under ``benchmarks/.work/transfer/data`` and hot in the page
cache for every contender. Contenders, alternated within each repetition (the starting
contender rotates), all on 127.0.0.1:

- ``cp``: copy on the same disk, then fsync of the copies;
- ``http-ref/curl``: the loopback-HTTP reference, a stdlib ``http.server`` that streams a
  PUT to disk with Cairn's fsync recipe and answers GET with ``sendfile``; curl client;
- ``http-ref/httpx``: the same server, Python httpx client (the Python client's cost);
- ``asgi-ref/curl``: a bare ASGI app on uvicorn, Cairn's server stack without Cairn;
- ``cairn-raw/curl``, ``cairn-raw/httpx``: Cairn's artifact API by hand (hash the files,
  create the version, PUT the missing blobs; GET the files);
- ``cairn-sdk``: ``cairn.Client.push``/``pull``, when the SDK has them;
- ``mlflow/curl``: ``mlflow server --serve-artifacts``, PUT/GET on
  ``/api/2.0/mlflow-artifacts/artifacts/…``.

Reported: median seconds and MB/s (10^6 bytes/s) per cell, ratios to the loopback-HTTP
reference and to MLflow, the serving process's RSS (idle → peak, polled every 50 ms plus
the kernel's VmHWM), and an unchanged re-push (bytes on the wire, time against sha256 of
the files). The Markdown goes to stdout and, unless ``--no-write``, to its section of
``benchmarks/RESULTS.md``; raw samples to ``benchmarks/.work/transfer/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transfer_contenders as tc
import transfer_data as td
import transfer_report as tr
from regbench.provenance import commit_label, machine, version_of
from transfer_procs import (
    add_wait_quiet,
    busy_neighbours,
    foreign_load,
    sample_rss,
    stop_all,
    wait_quiet,
)
from transfer_proxy import CountingProxy

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "transfer"
ORDER = [
    "cp",
    "http-ref/curl",
    "http-ref/httpx",
    "asgi-ref/curl",
    "cairn-sdk",
    "cairn-raw/curl",
    "cairn-raw/httpx",
    "mlflow/curl",
]


@dataclass
class Options:
    shapes: tuple[td.Shape, ...]
    reps: int
    only: list[str]
    hash_threads: int
    budget_s: float
    repush_reps: int
    write: bool
    keep: bool
    wait_quiet_s: float
    command: str


@dataclass
class Run:
    """Everything one invocation measured."""

    started: float = field(default_factory=time.monotonic)
    samples: list[tr.Sample] = field(default_factory=list)
    repushes: list[tr.Repush] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def log(message: str) -> None:
    print(f"[transfer] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="256 MiB and 5 x 50 MB, 1 repetition")
    p.add_argument("--reps", type=int, help="repetitions per cell (default 3; --quick: 1)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(ORDER)}")
    p.add_argument("--hash-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--budget-s", type=float, default=540.0, help="stop starting rounds after")
    p.add_argument("--repush-reps", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument("--keep", action="store_true", help="keep the servers' storage")
    add_wait_quiet(p)
    a = p.parse_args(argv)
    only = [k for k in a.only.split(",") if k]
    unknown = sorted(set(only) - set(ORDER))
    if unknown:
        p.error(f"unknown contender(s) {unknown}; choose from {ORDER}")
    if a.repush_reps < 1:
        p.error("--repush-reps must be at least 1 (the report takes their median)")
    return Options(
        shapes=td.QUICK_SHAPES if a.quick else td.FULL_SHAPES,
        reps=a.reps or (1 if a.quick else 3),
        only=only,
        hash_threads=a.hash_threads,
        budget_s=a.budget_s,
        repush_reps=a.repush_reps,
        write=not a.no_write,
        keep=a.keep,
        wait_quiet_s=a.wait_quiet,
        command=os.environ.get("BENCH_COMMAND")
        or shlex.join([".venv/bin/python", "benchmarks/transfer.py", *argv]),
    )


def build_contenders(opts: Options, run: Run) -> list[tc.Contender]:
    every: list[tc.Contender] = [
        tc.Copy(),
        tc.Reference("stdlib", "curl"),
        tc.Reference("stdlib", "httpx"),
        tc.Reference("asgi", "curl"),
        tc.CairnRaw("curl", opts.hash_threads),
        tc.CairnRaw("httpx", opts.hash_threads),
        tc.Mlflow(),
    ]
    if tc.sdk_available():
        every.append(tc.CairnSdk())
    else:
        run.notes.append(
            "The SDK has no `Client.push`/`pull` in this checkout yet: Cairn is measured "
            "through its raw HTTP API only."
        )
    if (not opts.only or "mlflow/curl" in opts.only) and not tc.MLFLOW_BIN.exists():
        raise SystemExit(
            f"{tc.MLFLOW_BIN} is missing: python3 -m venv benchmarks/.venv-mlflow && "
            "benchmarks/.venv-mlflow/bin/pip install 'mlflow>=3.17,<4'"
        )
    chosen = [k for k in every if not opts.only or k.key in opts.only]
    if any(k.key.endswith("/curl") for k in chosen) and shutil.which("curl") is None:
        raise SystemExit("curl is not installed (apt-get install curl; run.sh installs it)")
    return sorted(chosen, key=lambda k: ORDER.index(k.key))


def _slug(key: str) -> str:
    return key.replace("/", "_")


def measure(
    k: tc.Contender, ds: td.Dataset, rep: int, direction: str, out: Path, run: Run
) -> tr.Sample:
    settle()
    with foreign_load() as other, sample_rss(k.rss_root) as rss:
        timing = k.push(ds) if direction == "push" else k.pull(ds, out)
    has_rss = k.rss_root is not None
    run.samples.append(
        tr.Sample(
            contender=k.key,
            label=k.label,
            dataset=ds.key,
            direction=direction,
            rep=rep,
            seconds=timing.seconds,
            nbytes=ds.total,
            hash_s=timing.hash_s,
            rss_idle_mb=rss.idle_mb if has_rss else None,
            rss_peak_mb=rss.peak_mb if has_rss else None,
            server_cpu_s=rss.cpu_s if has_rss else None,
            foreign_cpus=other.cpus,
            note=timing.note,
        )
    )
    log(
        f"rep {rep} {ds.key:6} {direction} {k.key:16} {timing.seconds:7.2f} s "
        f"{ds.total / timing.seconds / 1e6:7.0f} MB/s"
        + (
            f"  RSS {rss.idle_mb:.0f} → {rss.peak_mb:.0f} MB, server CPU {rss.cpu_s:.2f} s"
            if has_rss
            else ""
        )
        + (
            f"  [disturbed: other processes used {other.cpus:.2f} CPUs]"
            if run.samples[-1].disturbed
            else ""
        )
    )
    return run.samples[-1]


def run_round(
    k: tc.Contender, ds: td.Dataset, rep: int, run_dir: Path, run: Run, opts: Options
) -> None:
    """Push then pull ``ds`` with ``k``; fresh server and storage if the contender needs it.

    The pulled files are then checked against the source's sha256 digests, outside the
    timed region: a round that delivered other bytes is a failed round (reported, in no
    median), never a fast one."""
    if k.fresh_per_round:
        k.start(run_dir / f"{_slug(k.key)}-{ds.key}-{rep}")
    elif k.server is None:
        k.start(run_dir / _slug(k.key))
    out = run_dir / "pulled"
    tc.remove_tree(out)
    settle()
    try:
        pushed = measure(k, ds, rep, "push", out, run)
        pulled = measure(k, ds, rep, "pull", out, run)
        if problems := td.content_mismatches(ds, out, opts.hash_threads):
            pushed.error = pulled.error = "pulled files differ from the source: " + "; ".join(
                problems
            )
            log(f"rep {rep} {ds.key:6} {k.key}: FAILED, {pulled.error}")
    finally:
        tc.remove_tree(out)
        if k.fresh_per_round:
            k.stop()
            if not opts.keep:
                tc.remove_tree(k.workdir)


def settle() -> None:
    """Flush the last round's deletions (ext4 with ``discard``) before the next clock starts."""
    os.sync()


def run_matrix(
    contenders: list[tc.Contender], datasets: list[td.Dataset], opts: Options, run: Run
) -> None:
    run_dir = WORK / "rounds"
    tc.remove_tree(run_dir)
    for rep in range(opts.reps):
        for index, ds in enumerate(datasets):
            shift = (rep + index) % len(contenders)
            for k in contenders[shift:] + contenders[:shift]:
                if rep > 0 and run.elapsed() > opts.budget_s:
                    run.notes.append(
                        f"Time budget ({opts.budget_s:.0f} s) reached: repetition {rep + 1} "
                        f"of {ds.label} skipped {k.label}."
                    )
                    continue
                run_round(k, ds, rep, run_dir, run, opts)
    retry_disturbed(contenders, datasets, opts, run, run_dir)
    for k in contenders:
        k.stop()
    if not opts.keep:
        tc.remove_tree(run_dir)


def retry_disturbed(
    contenders: list[tc.Contender],
    datasets: list[td.Dataset],
    opts: Options,
    run: Run,
    run_dir: Path,
) -> None:
    """Repeat rounds that other load disturbed, while the budget lasts (at most 2 each)."""
    for extra in range(2):
        for ds in datasets:
            for k in contenders:
                if tr.clean_count(run.samples, k.key, ds.key) >= opts.reps:
                    continue
                if run.elapsed() > opts.budget_s:
                    run.notes.append("No time left to repeat every disturbed round.")
                    return
                log(f"repeating a disturbed round: {k.key} on {ds.key}")
                run_round(k, ds, opts.reps + extra, run_dir, run, opts)


def measure_repush(
    k: tc.CairnRaw | tc.CairnSdk, ds: td.Dataset, opts: Options, run: Run
) -> tr.Repush:
    """Push ``ds`` once, then re-push it unchanged through a byte-counting relay."""
    workdir = WORK / f"repush-{_slug(k.key)}"
    tc.remove_tree(workdir)
    k.start(workdir)
    result = tr.Repush(k.key, ds.total, threads=opts.hash_threads)
    if isinstance(k, tc.CairnSdk):
        k.reuse_digests = True  # the first push remembers the digests; the re-pushes use them
    try:
        k.push(ds)
        assert k.server is not None
        port = int(k.server.base_url.rsplit(":", 1)[1])
        with CountingProxy(port) as proxy:
            k.url_override = proxy.url
            for _ in range(opts.repush_reps):
                settle()
                with foreign_load() as other:
                    t0 = time.perf_counter()
                    td.sha256_files(ds.files, opts.hash_threads)
                    result.hash_seconds.append(time.perf_counter() - t0)
                    proxy.reset()
                    result.seconds.append(k.push(ds).seconds)
                    result.sent_bytes.append(proxy.sent)
                result.disturbed += other.cpus > tr.DISTURBED_CPUS
    finally:
        k.url_override = None
        k.stop()
        tc.remove_tree(workdir)
    log(f"re-push {k.key}: {result.sent_bytes} B, {result.seconds} s vs hash {result.hash_seconds}")
    return result


def render(opts: Options, run: Run, datasets: list[td.Dataset], load: tuple[str, str]) -> str:
    rows = tr.summarize(run.samples)
    pairs = [(ds.key, ds.label) for ds in datasets]
    failed = tr.failures(run.samples)
    verdicts = tr.verdicts(rows, pairs, run.repushes, failed)
    missed = [v for v in verdicts if not v.ok]
    parts = [
        "## transfer (benchmarks/transfer.py)",
        "",
        f"- Command: `{opts.command}`",
        f"- Date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}; "
        f"took {run.elapsed():.0f} s",
        f"- Machine: {machine(WORK)}",
        f"- Code: Cairn commit {commit_label(BENCH_DIR.parent)}; {version_of(tc.MLFLOW_BIN)}",
        f"- Load average (1/5/15 min) at start: {load[0]}; at end: {load[1]}",
        f"- Data: {', '.join(ds.label for ds in datasets)} of random bytes, hot in the page "
        "cache for every contender (each was read just before the run).",
        "- Durability: every contender's writes are fsync'ed before its clock stops. Cairn "
        "and the HTTP references fsync on the server (temp file, fsync, rename, fsync dir); "
        "for `cp`, MLflow (which does not fsync) and every pull the harness fsyncs the "
        "written files inside the timed region. `sync` runs before every timed transfer.",
        "- Correctness: after every pull, outside the timed region, the harness compares the "
        "sha256 of each pulled file with the source's; a round that delivered other bytes "
        "is a failed round, listed below and left out of every figure.",
        "- Clients: curl (C) sends one file per request on one keep-alive connection, "
        "`Content-Length` set, no `Expect: 100-continue`; httpx streams 1 MiB chunks. "
        f"Cairn raw pushes hash the files first ({opts.hash_threads} threads) and that "
        "time is included (shown separately as “w/o hashing”).",
        "- Servers: Cairn `cairn server --workers 1` (SQLite + local blobs), a fresh one per "
        "round; MLflow 3 `mlflow server --serve-artifacts --workers 1 --uvicorn-opts "
        "--no-access-log` (SQLite, job runner off); RSS is the serving process's (MLflow: "
        "its uvicorn process, not the launcher). "
        "Idle → peak: VmRSS before the transfer → max of 50 ms polls and VmHWM. Server CPU: "
        "user + system seconds the serving process(es) used during the transfer (less "
        "sensitive to other load than the wall-clock rates).",
        "- Authentication: Cairn's figures include authentication and authorization on every "
        "request (on by default: each Cairn server starts with a fixed bootstrap admin token, "
        "`benchmarks/regbench/auth.py`, and every Cairn request, raw or SDK, sends "
        "`Authorization: Bearer`); MLflow's and the references' include none (MLflow runs "
        "without authentication, its default). Its per-request cost is in the `auth_cost` "
        "section.",
        "",
        f"### Results ({opts.reps} run(s) per cell, median; MB = 10^6 bytes)",
        "",
        "A run is *disturbed* when other processes on the machine used more than "
        f"{tr.DISTURBED_CPUS:g} CPUs on average meanwhile (user-space processes outside "
        "this harness's process tree, from /proc/PID/stat); disturbed rounds are repeated "
        "while the time budget lasts and the medians use only undisturbed runs where there "
        "are any. A ratio target whose reference (loopback HTTP, MLflow) has only disturbed "
        "runs while Cairn has undisturbed ones is not judged met.",
        "",
        tr.results_table(rows, pairs, ORDER),
        "",
        *([*tr.failure_lines(failed), ""] if failed else []),
        "### Re-push of an unchanged model",
        "",
        *(tr.repush_lines(run.repushes) or ["- not measured"]),
        "",
        "### Targets",
        "",
        tr.verdict_table(verdicts),
        "",
        f"{len(missed)} of {len(verdicts)} target checks missed.",
        "",
    ]
    if run.notes:
        parts += ["### Notes", "", *(f"- {n}" for n in dict.fromkeys(run.notes)), ""]
    return "\n".join(parts)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    busy = wait_quiet(opts.wait_quiet_s, log)
    run = Run()
    load_start = _loadavg()
    if busy:
        run.notes.append(
            "Other processes were busy when the run started, so absolute rates are low and "
            f"noisy (ratios within a repetition suffer less): {', '.join(busy)}."
        )
    contenders = build_contenders(opts, run)  # first: a missing tool stops it here
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"load average {load_start}; preparing data under {WORK / 'data'}")
    datasets = [td.ensure(shape, WORK / "data") for shape in opts.shapes]
    try:
        run_matrix(contenders, datasets, opts, run)
        many = datasets[-1]
        raw = tc.CairnRaw("httpx", opts.hash_threads)
        if not opts.only or raw.key in opts.only:
            run.repushes.append(measure_repush(raw, many, opts, run))
        if tc.sdk_available() and (not opts.only or "cairn-sdk" in opts.only):
            run.repushes.append(measure_repush(tc.CairnSdk(), many, opts, run))
    finally:
        stop_all()
    if busy_after := busy_neighbours():
        run.notes.append(f"Busy other processes at the end of the run: {', '.join(busy_after)}.")
    markdown = render(opts, run, datasets, (load_start, _loadavg()))
    print(markdown)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw_path = WORK / f"samples-{stamp}.json"
    raw_path.write_text(
        json.dumps(
            {
                "samples": [asdict(s) for s in run.samples],
                "repushes": [asdict(r) for r in run.repushes],
                "notes": run.notes,
            },
            indent=1,
        )
    )
    log(f"raw samples in {raw_path}")
    if opts.write:
        tr.splice(BENCH_DIR / "RESULTS.md", markdown)
        log("wrote its section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
    stop_all()
    sys.exit(130)
