"""Authentication cost: what checking a bearer token adds to every Cairn request.

    .venv/bin/python benchmarks/auth_cost.py [--quick] [--requests N] [--rounds R]
                                             [--backends sqlite,postgresql] [--engine wrk|python]
                                             [--wait-quiet S] [--no-write]

Authentication cannot be switched off in Cairn, so the cost is measured as a difference on
one server process (``cairn server --workers 1``, fresh SQLite file or PostgreSQL database,
started with the benchmarks' bootstrap admin token, ``regbench/auth.py``), one keep-alive
connection, one request after the other (wrk by default):

- ``GET /health``: a public route: HTTP, routing, middleware and a small JSON answer, no
  authentication;
- ``GET /api/v1/whoami`` as the admin and as ``reader`` (a service account with a READ
  grant on ``bench-*`` and, through a group, on ``risk.*``): the same plus authentication
  (SHA-256 of the token, token + user row, the user's groups and grants, in one read
  transaction) and a small JSON answer;
- ``GET /api/v1/models/bench-0/aliases/champion`` as the admin and as ``reader``: a point
  read, authenticated, then authorized against the caller's grants.

Each round runs every endpoint once (``--requests`` requests each, the order rotating from
round to round, after an unmeasured warm-up of every endpoint). Per endpoint and round:
client latency (closed-loop cycle time, p50 and mean) and server CPU per request (user +
system time of the server's process tree from /proc, over the good answers). The figures
are medians over the rounds other load did not disturb (all rounds if it disturbed each);
"authentication" is at most the cheaper of ``whoami (admin) - /health`` and ``whoami
(reader) - /health`` of the same round (whoami also lists the caller's grants: see
``verdict``). Every answer's status is checked: a 401/403 (or any
other unexpected status) is an error and makes the row invalid. Results: stdout and,
unless ``--no-write``, the ``auth_cost`` section of ``benchmarks/RESULTS.md``. Part of
``make bench`` (run.sh).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regbench import auth, servers
from regbench.load import Outcome, percentile_ms, run_phase, wrk_available
from regbench.provenance import commit_label, machine
from regbench.report import splice
from regbench.workload import CairnApi, Phase, Req
from transfer_procs import (
    DISTURBED_CPUS,
    add_wait_quiet,
    foreign_load,
    tree_cpu_s,
    wait_quiet,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BEGIN = "<!-- auth_cost:begin (written by benchmarks/auth_cost.py) -->"
END = "<!-- auth_cost:end -->"
MODEL = "bench-0"
ALIAS_PATH = f"/api/v1/models/{MODEL}/aliases/champion"
LARGE_COST_MS = 1.0  # above this per request, authentication is worth optimising


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    path: str
    who: str | None  # "admin" | "reader" | None (no Authorization header)


ENDPOINTS = (
    Endpoint("health", "`GET /health` (public, no authentication)", "/health", None),
    Endpoint("whoami-admin", "`GET /api/v1/whoami`, admin token", "/api/v1/whoami", "admin"),
    Endpoint("whoami-reader", "`GET /api/v1/whoami`, reader token", "/api/v1/whoami", "reader"),
    Endpoint("alias-admin", "`GET …/aliases/champion`, admin token", ALIAS_PATH, "admin"),
    Endpoint("alias-reader", "`GET …/aliases/champion`, reader token", ALIAS_PATH, "reader"),
)


@dataclass
class Sample:
    """One endpoint in one round."""

    outcome: Outcome
    cpu_s: float
    other_cpus: float

    @property
    def p50_ms(self) -> float:
        return percentile_ms(self.outcome.latencies_us, 50)

    @property
    def mean_ms(self) -> float:
        lat = self.outcome.latencies_us
        return statistics.fmean(lat) / 1000 if lat else float("nan")

    @property
    def cpu_us(self) -> float:
        good = self.outcome.good
        return self.cpu_s / good * 1e6 if good else float("nan")

    @property
    def disturbed(self) -> bool:
        return self.other_cpus > DISTURBED_CPUS


def _quiet(samples: list[Sample]) -> list[Sample]:
    """The undisturbed samples, or all of them when every one was disturbed."""
    return [s for s in samples if not s.disturbed] or samples


@dataclass
class BackendRun:
    backend: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    note: str = ""


@dataclass
class Options:
    requests: int
    rounds: int
    backends: list[str]
    engine: str
    wait_quiet_s: float
    write: bool
    command: str


def log(message: str) -> None:
    print(f"[auth_cost {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 requests x 2 rounds, a smoke run")
    p.add_argument("--requests", type=int, help="requests per endpoint and round (default 500)")
    p.add_argument("--rounds", type=int, help="rounds (default 3)")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    p.add_argument("--engine", choices=["wrk", "python"], default="wrk")
    add_wait_quiet(p, 30.0)
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    a = p.parse_args(argv)
    return Options(
        requests=a.requests or (200 if a.quick else 500),
        rounds=max(1, a.rounds or (2 if a.quick else 3)),
        backends=[b.strip() for b in a.backends.split(",") if b.strip()],
        engine=a.engine if a.engine != "wrk" or wrk_available() else "python",
        wait_quiet_s=a.wait_quiet,
        write=not a.no_write,
        command=shlex.join([".venv/bin/python", "benchmarks/auth_cost.py", *argv]),
    )


# --- set-up ----------------------------------------------------------------------------


def _send(client: httpx.Client, req: Req) -> httpx.Response:
    response = client.request(
        req.method,
        req.path,
        content=req.body or None,
        headers={"Content-Type": "application/json"} if req.body else {},
    )
    if response.status_code != req.expect:
        raise RuntimeError(
            f"set-up {req.method} {req.path} answered {response.status_code}, not {req.expect}: "
            f"{response.text[:300]}"
        )
    return response


def _json_req(method: str, path: str, body: str, expect: int) -> Req:
    return Req(method, path, body.encode(), expect)


def set_up(port: int) -> dict[str, str]:
    """A model with an alias, a reader account with grants; the Authorization per caller."""
    api = CairnApi()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers=auth.headers(), timeout=30.0
    ) as c:
        _send(c, api.create_model(MODEL, "risk"))
        _send(c, api.create_version(MODEL, "candidate", 0))
        _send(c, api.set_alias(MODEL, "champion", 1))
        _send(c, _json_req("POST", "/api/v1/users", '{"name":"reader","service":true}', 201))
        _send(c, _json_req("POST", "/api/v1/groups", '{"name":"readers"}', 201))
        _send(c, Req("PUT", "/api/v1/groups/readers/members/reader", b"", 204))
        grant = '{"subject":"%s","role":"READ","pattern":"%s"}'
        _send(c, _json_req("PUT", "/api/v1/grants", grant % ("user:reader", "bench-*"), 200))
        _send(c, _json_req("PUT", "/api/v1/grants", grant % ("group:readers", "risk.*"), 200))
        body = '{"name":"auth-cost","scope":"read","expires_days":1,"user":"reader"}'
        token = _send(c, _json_req("POST", "/api/v1/tokens", body, 201)).json()["token"]
    return {"admin": auth.AUTHORIZATION, "reader": f"Bearer {token}"}


# --- measurement -------------------------------------------------------------------------


def measure(
    run: servers.Running,
    ep: Endpoint,
    creds: dict[str, str],
    opts: Options,
    workdir: Path,
    ours: Callable[[], Iterable[int]] = list,
) -> Sample:
    """One round of ``ep``; ``ours``: the server's PostgreSQL backends (not other load)."""
    phase = Phase(ep.key, 1, (Req("GET", ep.path, b"", 200),) * opts.requests)
    before = tree_cpu_s(run.proc.pid)
    with foreign_load(ours) as other:
        outcome = run_phase(
            phase,
            run.port,
            engine=opts.engine,
            close=False,
            cap_s=60.0,
            workdir=workdir,
            auth=creds[ep.who] if ep.who else None,
        )
    return Sample(outcome, tree_cpu_s(run.proc.pid) - before, other.cpus)


def run_backend(paths: servers.Paths, backend: str, opts: Options, workdir: Path) -> BackendRun:
    result = BackendRun(backend)
    spec = servers.ServerSpec("cairn", backend, 1)
    with (
        servers.serving(paths, spec, workdir / backend) as run,
        servers.backends_of(run.database) as ours,
    ):
        creds = set_up(run.port)
        for ep in ENDPOINTS:  # warm-up: every code path, every prepared statement once
            warm = Phase(ep.key, 1, (Req("GET", ep.path, b"", 200),) * 100)
            out = run_phase(
                warm,
                run.port,
                engine=opts.engine,
                close=False,
                cap_s=30.0,
                workdir=workdir / "load",
                auth=creds[ep.who] if ep.who else None,
            )
            if out.errors:
                raise RuntimeError(
                    f"{backend}: warm-up of {ep.key} had {out.errors} errors "
                    f"({out.denied} of them 401/403); see {run.log}"
                )
        for rnd in range(opts.rounds):
            shift = rnd % len(ENDPOINTS)
            for ep in ENDPOINTS[shift:] + ENDPOINTS[:shift]:
                sample = measure(run, ep, creds, opts, workdir / "load", ours)
                result.samples.setdefault(ep.key, []).append(sample)
                o = sample.outcome
                log(
                    f"{backend:10} round {rnd + 1} {ep.key:14} p50 {sample.p50_ms:6.3f} ms  "
                    f"mean {sample.mean_ms:6.3f} ms  server CPU {sample.cpu_us:6.0f} µs/req  "
                    f"errors {o.errors}  other load {sample.other_cpus:.2f} CPUs"
                )
    return result


# --- report ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    real = [v for v in values if v == v]  # drop NaN
    return statistics.median(real) if real else float("nan")


def _cell(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _delta(run: BackendRun, key: str, metric: str) -> float:
    """Median over rounds of (endpoint - /health) in the same round, over the rounds where
    neither was disturbed when there are any."""
    pairs = list(zip(run.samples.get(key, []), run.samples.get("health", []), strict=False))
    quiet = [(a, b) for a, b in pairs if not (a.disturbed or b.disturbed)] or pairs
    return _median([getattr(a, metric) - getattr(b, metric) for a, b in quiet])


def table(run: BackendRun) -> str:
    lines = [
        "| Request | p50 ms | mean ms | server CPU µs/req | Δ p50 vs /health ms "
        "| Δ CPU vs /health µs | errors (401/403) | disturbed rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ep in ENDPOINTS:
        samples = run.samples.get(ep.key, [])
        if not samples:
            continue
        errors = sum(s.outcome.errors for s in samples)
        denied = sum(s.outcome.denied for s in samples)
        disturbed = sum(s.disturbed for s in samples)
        quiet = _quiet(samples)
        base = ep.key == "health"
        lines.append(
            f"| {ep.label} | {_cell(_median([s.p50_ms for s in quiet]))} "
            f"| {_cell(_median([s.mean_ms for s in quiet]))} "
            f"| {_cell(_median([s.cpu_us for s in quiet]), 0)} "
            f"| {'-' if base else _cell(_delta(run, ep.key, 'p50_ms'))} "
            f"| {'-' if base else _cell(_delta(run, ep.key, 'cpu_us'), 0)} "
            f"| {errors} ({denied}) | {disturbed} of {len(samples)} |"
        )
    return "\n".join(lines)


def verdict(run: BackendRun) -> str:
    """An upper bound: whoami also reads the caller's grants and their models' names (an
    administrator who created many models holds as many creator grants), so the cheaper
    of the two whoami rows minus /health is the most that authentication can cost."""
    key = min(("whoami-admin", "whoami-reader"), key=lambda k: _delta(run, k, "mean_ms"))
    cost_ms = _delta(run, key, "mean_ms")
    cpu_us = _delta(run, key, "cpu_us")
    errors = sum(s.outcome.errors for samples in run.samples.values() for s in samples)
    if errors:
        return f"**{run.backend}: {errors} requests failed; the figures are not valid.**"
    size = "large" if cost_ms > LARGE_COST_MS else "small"
    who = key.removeprefix("whoami-")
    return (
        f"{run.backend}: authentication costs at most **{cost_ms:.2f} ms** of latency and "
        f"**{cpu_us:.0f} µs** of server CPU per request (whoami as {who}, the cheaper of the "
        "two, minus /health, median over rounds; whoami also lists the caller's grants): "
        f"{size} against the {LARGE_COST_MS:.0f} ms per request threshold."
    )


def render(opts: Options, runs: list[BackendRun], started: str, took_s: float) -> str:
    parts = [
        "## auth_cost: what authentication costs per Cairn request",
        "",
        f"Run {started}, took {took_s:.0f} s. Command: `{opts.command}`. Cairn commit "
        f"{commit_label(REPO)}. Machine: {machine(BENCH_DIR)}; load average at the end "
        f"{_loadavg()}.",
        "",
        "Authentication cannot be turned off, so it is measured as a difference on one "
        "server process (`cairn server --workers 1`, fresh database) answering one "
        f"keep-alive connection, {opts.requests} requests per endpoint and round, "
        f"{opts.rounds} rounds with the order rotating, {opts.engine} as the client: "
        "`GET /health` is public (no authentication); `GET /api/v1/whoami` adds "
        "authentication (token SHA-256, token and user row, groups and grants in one read "
        "transaction) and a small JSON answer; the alias read adds a point read that is "
        "authorized against the caller's grants. `reader` is a service account with a READ "
        "grant on `bench-*` and, through a group, on `risk.*`. Latency: the client's cycle "
        "time per request. Server CPU: user + system time of the server's processes over the "
        "requests answered with 200. Medians over the rounds that were not disturbed (over "
        "all of them only when every one was); Δ: difference to `/health` in the same round. "
        f"A round is *disturbed* when other processes used more than {DISTURBED_CPUS:g} CPUs "
        "meanwhile. Every answer's status is checked; a 401/403 "
        "counts as an error.",
        "",
    ]
    for run in runs:
        parts += [f"### {run.backend}", ""]
        if run.note:
            parts += [run.note, ""]
            continue
        parts += [table(run), "", verdict(run), ""]
    return "\n".join(parts)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str]) -> int:
    servers.exit_on_sigterm()  # the server and its PostgreSQL database are cleaned up
    opts = parse_args(argv)
    paths = servers.default_paths(REPO)
    if not paths.cairn.exists():
        sys.exit(f"missing {paths.cairn} (bash benchmarks/run.sh installs it)")
    if dropped := servers.sweep_stale_databases():
        log(f"dropped databases of killed benchmark runs: {', '.join(dropped)}")
    busy = wait_quiet(opts.wait_quiet_s, log)
    began = time.monotonic()
    started = dt.datetime.now().astimezone()
    workdir = BENCH_DIR / ".work" / f"auth_cost-{started:%Y%m%d-%H%M%S}"
    runs: list[BackendRun] = []
    for backend in opts.backends:
        if backend == "postgresql" and servers.postgres_version() == "not reachable":
            runs.append(BackendRun(backend, note="PostgreSQL not reachable; skipped."))
            continue
        log(f"{backend}: {opts.rounds} rounds x {len(ENDPOINTS)} endpoints x {opts.requests}")
        runs.append(run_backend(paths, backend, opts, workdir))
    text = render(opts, runs, f"{started:%Y-%m-%d %H:%M %Z}", time.monotonic() - began)
    if busy:
        text += f"\nBusy other processes at the start: {', '.join(busy)}.\n"
    print(text)
    if opts.write:
        splice(BENCH_DIR / "RESULTS.md", text, BEGIN, END)
        log("wrote its section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
