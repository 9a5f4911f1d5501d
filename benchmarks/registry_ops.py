"""Registry-operations benchmark: Cairn against a stock ``mlflow server`` on the same machine.

For each backend (SQLite, then PostgreSQL), each server worker count and each connection mode
(keep-alive, new connection per request) three fresh servers get the same workload: Cairn
driven through its native ``/api/v1``, a stock MLflow server, and a second Cairn server
("cairn-mlflow-api") driven with exactly MLflow's requests through Cairn's MLflow-compatible
``/api/2.0/mlflow`` endpoints. The workload: create models; create versions from 1 and from
8 clients; set aliases; get by alias from 1 and 8 clients; filtered version and model
searches. Every phase is replayed by a closed-loop load generator (wrk by default) that is
also pointed at a trivial in-memory endpoint to show its own ceiling. Results go to stdout
and to ``benchmarks/RESULTS.md``.

Entry point: ``make bench`` (= ``bash benchmarks/run.sh``, which prepares the environments).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from regbench import auth, servers
from regbench.load import Outcome, percentile_ms, run_phase, wrk_available
from regbench.provenance import commit_label, first_line, version_of
from regbench.report import Key, Results, ceiling_table, splice, tables
from regbench.workload import (
    FULL,
    QUICK,
    Api,
    CairnApi,
    Counts,
    MlflowApi,
    Phase,
    PhaseSpec,
    State,
    as_ceiling,
    phase_specs,
    planned_phases,
    sent_effects,
    slices,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FIRST_GUESS_S = {"config": 90.0, "probe": 45.0}  # run-time estimates before one has run
MODES = {"keepalive": "keep-alive", "newconn": "new connection"}
CAIRN_MLFLOW = "cairn-mlflow-api"  # a Cairn server driven with MLflow's requests
TARGETS = ["cairn", "mlflow", CAIRN_MLFLOW]
APIS: dict[str, Api] = {"cairn": CairnApi(), "mlflow": MlflowApi(), CAIRN_MLFLOW: MlflowApi()}
CAIRN_TARGETS = ("cairn", CAIRN_MLFLOW)
DRAIN_LIMIT_S = 10.0  # longest wait for a server to go idle before the next one's turn
SLICES = 4  # turns per phase: each server runs a quarter of its requests per turn


@dataclass
class Options:
    counts: Counts
    backends: list[str]
    workers: list[int]
    targets: list[str]
    modes: list[str]
    engine: str
    rounds: int
    phase_cap_s: float
    budget_s: float
    stall_workers: list[int]
    quiet_wait_s: float
    results_path: Path | None
    command: str


@dataclass
class Clock:
    """Wall-clock budget: a run is skipped when it would likely end past the budget."""

    budget_s: float
    started: float = field(default_factory=time.monotonic)
    longest: dict[str, float] = field(default_factory=dict)
    quiet_left_s: float = 0.0

    def allows(self, target: str) -> bool:
        elapsed = time.monotonic() - self.started
        return elapsed + self.longest.get(target, FIRST_GUESS_S.get(target, 60.0)) <= self.budget_s

    def record(self, target: str, seconds: float) -> None:
        self.longest[target] = max(seconds, self.longest.get(target, 0.0))


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    p.add_argument("--workers", default="1,2", help="server worker processes, e.g. 1,2")
    p.add_argument("--only", choices=TARGETS, help="run one server only")
    p.add_argument("--modes", default="keepalive,newconn", help="keepalive,newconn")
    p.add_argument("--engine", choices=["wrk", "python"], default="wrk", help="load generator")
    p.add_argument("--rounds", type=int, default=1, help="server alternations per config")
    p.add_argument("--phase-cap", type=float, default=4.0, help="max seconds per phase")
    p.add_argument("--budget", type=float, default=17.5 * 60.0, help="skip runs past this (s)")
    p.add_argument("--stall-probe-workers", default="4", help="'' to skip the probe")
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="total time (s) the runs may wait for other CPU load to pass (<= 10 s each)",
    )
    a = p.parse_args(argv)
    return Options(
        counts=QUICK if a.quick else FULL,
        backends=_csv(a.backends),
        workers=[int(w) for w in _csv(a.workers)],
        targets=[a.only] if a.only else list(TARGETS),
        modes=[MODES[m] for m in _csv(a.modes)],
        engine=a.engine,
        rounds=max(1, a.rounds),
        phase_cap_s=a.phase_cap,
        budget_s=a.budget,
        stall_workers=[int(w) for w in _csv(a.stall_probe_workers)],
        quiet_wait_s=a.quiet_wait,
        results_path=None if a.no_write else BENCH_DIR / "RESULTS.md",
        command=os.environ.get("BENCH_COMMAND")
        or shlex.join([".venv/bin/python", "benchmarks/registry_ops.py", *argv]),
    )


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _describe(outcome: Outcome) -> str:
    lat = outcome.latencies_us
    capped = f" CAPPED {outcome.sent}/{outcome.planned}" if outcome.truncated else ""
    denied = f" (401/403: {outcome.denied})" if outcome.denied else ""
    return (
        f"{outcome.ops_per_s:8.0f} ops/s  p50 {percentile_ms(lat, 50):7.2f} ms  "
        f"p99 {percentile_ms(lat, 99):7.2f} ms  errors {outcome.errors}{denied}{capped}"
    )


def _denied_note(target: str, where: str, outcome: Outcome) -> str:
    return (
        f"{target} {where} {outcome.phase}: {outcome.denied} answers were 401/403 (the harness "
        "was not authenticated or not authorized); they count as errors, not as ops."
    )


@dataclass
class Contender:
    """A running server under test and what the harness has created on it so far."""

    run: servers.Running
    api: Api
    state: State = field(default_factory=State)

    @property
    def target(self) -> str:
        return self.run.spec.target


def run_spec(
    spec: PhaseSpec,
    order: list[Contender],
    opts: Options,
    cfg: Config,
    results: Results,
    workdir: Path,
) -> list[tuple[Contender, Outcome]]:
    """Build one phase per server from what earlier phases created there and run them in
    ``SLICES`` turns: each server's first part, in ``order``, then each one's second part,
    and so on, so that a slow spell of this shared machine falls on every server alike
    instead of on whichever had its turn then. Each part gets its share of the phase's
    time cap; a server whose part hit it goes on with its next part (what a capped part
    did not send is left out, and later phases are built from what was sent)."""
    parts = {
        who.target: slices(*spec.make(who.api, opts.counts, who.state), SLICES) for who in order
    }
    done: dict[str, Outcome] = {}
    for k in range(SLICES):
        for who in order:
            if k >= len(parts[who.target]):
                continue
            phase, effects = parts[who.target][k]
            outcome = run_phase(
                phase,
                who.run.port,
                engine=opts.engine,
                close=cfg.mode != "keep-alive",
                cap_s=opts.phase_cap_s / SLICES,
                workdir=workdir,
                auth=who.run.auth,
            )
            who.state.apply(sent_effects(phase, effects, outcome.sent_per_client))
            done[who.target] = done[who.target].merge(outcome) if who.target in done else outcome
            if outcome.truncated:  # what the server accepted may still be running
                _drain(who, cfg, spec.name, results)
    for who in order:
        if who.target not in done:  # nothing to aim at: an earlier phase created nothing
            done[who.target] = Outcome(phase=spec.name, planned=0)
        log(f"  {who.target:16} {spec.name:28} {_describe(done[who.target])}")
    return [(who, done[who.target]) for who in order]


def measure_ceiling(paths: servers.Paths, opts: Options, results: Results, workdir: Path) -> None:
    """Same request lists against the trivial endpoint, for wrk and for the httpx client
    (with the same Authorization header the Cairn requests carry: the same bytes)."""
    phases = [as_ceiling(p) for p in planned_phases(CairnApi(), opts.counts)]
    spec = servers.ServerSpec("trivial", "none", 2)
    with servers.serving(paths, spec, workdir / "ceiling") as run:
        for engine in sorted({opts.engine, "python"}):
            for mode in opts.modes:
                for phase in phases:
                    outcome = run_phase(
                        phase,
                        run.port,
                        engine=engine,
                        close=mode != "keep-alive",
                        cap_s=opts.phase_cap_s,
                        workdir=workdir / "ceiling",
                        auth=auth.AUTHORIZATION,
                    )
                    results.ceiling[(engine, mode, phase.name)] = outcome
                sample = phases[-3].name  # get by alias, 8 clients
                shown = _describe(results.ceiling[(engine, mode, sample)])
                log(f"ceiling {engine:6} {mode:15} {sample}: {shown}")


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def busy_share(interval_s: float = 1.0) -> float:
    """Share of all CPUs busy over ``interval_s`` (nothing of ours runs while we sample)."""
    total0, idle0 = _cpu_times()
    time.sleep(interval_s)
    total1, idle1 = _cpu_times()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(limit_s: float, threshold: float = 0.15, interval_s: float = 1.0) -> float:
    """Wait (bounded) until the machine is nearly idle; return the last busy share seen."""
    give_up = time.monotonic() + limit_s
    busy = busy_share(interval_s)
    while busy > threshold and time.monotonic() < give_up:
        busy = busy_share(interval_s)
    return busy


@dataclass(frozen=True)
class Config:
    """One set of fresh servers: backend, worker count, connection mode and round."""

    backend: str
    workers: int
    mode: str
    round: int

    @property
    def label(self) -> str:
        return f"{self.backend} workers={self.workers} {self.mode} round {self.round + 1}"

    @property
    def slug(self) -> str:
        return f"{self.backend}-w{self.workers}-{self.mode.replace(' ', '')}-r{self.round}"

    def key(self, phase: str) -> Key:
        return Key(self.backend, self.workers, self.mode, phase)


def plan(opts: Options) -> list[Config]:
    """Backends, then worker counts, then connection modes, then rounds."""
    combos = itertools.product(opts.backends, opts.workers, opts.modes, range(opts.rounds))
    return [Config(b, w, m, r) for b, w, m, r in combos]


def _settle(cfg: Config, results: Results, clock: Clock) -> None:
    """Give other load on the machine a bounded chance to pass; note it if it does not."""
    waited = time.monotonic()
    busy = wait_quiet(min(10.0, clock.quiet_left_s))
    clock.quiet_left_s -= time.monotonic() - waited
    if busy > 0.15:
        results.notes.append(f"{cfg.label} started with {busy:.0%} of CPU busy elsewhere.")
    log(f"RUN  {cfg.label} (other CPU load {busy:.0%})")


def _start_all(
    stack: contextlib.ExitStack, paths: servers.Paths, cfg: Config, opts: Options, workdir: Path
) -> tuple[list[Contender], list[str]]:
    contenders, failures = [], []
    for target in opts.targets:
        spec = servers.ServerSpec(target, cfg.backend, cfg.workers)
        try:
            run = stack.enter_context(servers.serving(paths, spec, workdir / target))
            servers.warm_up(run, APIS[target])
        except servers.ServerError as exc:
            failures.append(f"{target} {cfg.label}: {exc}")
            continue
        contenders.append(Contender(run, APIS[target]))
    return contenders, failures


def _drain(who: Contender, cfg: Config, phase: str, results: Results) -> None:
    """Before the next server's turn, let this one finish what it still has in hand: a
    capped phase stops the load generator, not the requests the server has accepted (a
    stock MLflow model search on PostgreSQL takes up to a second each, and requests a
    timed-out client gave up on still run), which would otherwise run beside the next
    server's phase and bill it for them."""
    busy = wait_quiet(DRAIN_LIMIT_S, interval_s=0.25)
    if busy > 0.15:
        results.notes.append(
            f"{cfg.label}: after {who.target}'s {phase!r} the machine stayed {busy:.0%} busy "
            f"for {DRAIN_LIMIT_S:.0f} s; the next server's turn started anyway."
        )


def _quiet_after_start(cfg: Config, results: Results) -> None:
    """Before the first phase, let the servers just started settle: a server answers its
    health check before it has finished starting (MLflow's launcher, background threads,
    first imports), and that work would otherwise run beside the first server's turn."""
    busy = wait_quiet(DRAIN_LIMIT_S, interval_s=0.25)
    if busy > 0.15:
        results.notes.append(
            f"{cfg.label}: the servers kept the machine {busy:.0%} busy for "
            f"{DRAIN_LIMIT_S:.0f} s after they started; the first phase started anyway."
        )


def run_config(
    paths: servers.Paths, cfg: Config, opts: Options, results: Results, workdir: Path, clock: Clock
) -> None:
    """All servers up side by side; every phase runs on each in turn (the order rotates
    from phase to phase), so load from elsewhere on the machine hits them alike."""
    if not clock.allows("config"):
        results.notes.append(f"Skipped (time budget): {cfg.label}.")
        log(f"SKIP {cfg.label} (time budget)")
        return
    _settle(cfg, results, clock)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        contenders, failures = _start_all(stack, paths, cfg, opts, workdir / cfg.slug)
        results.failures.extend(failures)
        _quiet_after_start(cfg, results)
        for i, spec in enumerate(phase_specs()):
            for who in contenders:  # untimed: what autovacuum would have done by now
                servers.analyze(who.run)
            turn = i % max(1, len(contenders))
            order = contenders[turn:] + contenders[:turn]
            for who, outcome in run_spec(spec, order, opts, cfg, results, workdir / "load"):
                results.add(who.target, cfg.key(outcome.phase), outcome)
                if outcome.denied:
                    results.notes.append(_denied_note(who.target, cfg.label, outcome))
        for who in contenders:
            if who.run.proc.poll() is not None:
                results.notes.append(f"{who.target} {cfg.label} died; see {who.run.log}")
    clock.record("config", time.monotonic() - began)


def run_all(
    paths: servers.Paths, opts: Options, results: Results, workdir: Path, clock: Clock
) -> None:
    """Every configuration in turn. One that fails (a database error, a full disk, a tool
    missing) is reported as a missed target, and the others still run: a crash must not
    cost the runs already measured."""
    for cfg in plan(opts):
        try:
            run_config(paths, cfg, opts, results, workdir, clock)
        except Exception as exc:
            results.failures.append(f"{cfg.label}: {type(exc).__name__}: {exc}")
            log(f"FAIL {cfg.label}:\n{traceback.format_exc()}")


def probe_engines(opts: Options) -> list[str]:
    """The stall probe's clients: the chosen engine, and the Python client beside it."""
    return list(dict.fromkeys([opts.engine, "python"]))


@dataclass
class ProbeRow:
    target: str
    workers: int
    engine: str
    outcome: Outcome


def stall_probe(
    paths: servers.Paths,
    opts: Options,
    workdir: Path,
    clock: Clock,
    notes: list[str],
    failures: list[str],
) -> list[ProbeRow]:
    """Sequential keep-alive alias reads at other worker counts (MLflow's default is 4)."""
    rows: list[ProbeRow] = []
    small = Counts(models=4, versions=8, aliases=8, reads=200, searches=4)
    for workers in opts.stall_workers:
        for target in opts.targets:
            if not clock.allows("probe"):
                log(f"SKIP stall probe {target} workers={workers} (time budget)")
                continue
            began = time.monotonic()
            api = APIS[target]
            setup = planned_phases(api, small)
            spec = servers.ServerSpec(target, "sqlite", workers)
            try:
                rows += _probe_one(paths, spec, api, setup, opts, workdir, notes)
            except Exception as exc:  # the runs measured so far are still reported
                failures.append(f"stall probe {target} workers={workers}: {exc}")
                log(f"FAIL stall probe {target} workers={workers}:\n{traceback.format_exc()}")
            clock.record("probe", time.monotonic() - began)
    return rows


def _probe_one(
    paths: servers.Paths,
    spec: servers.ServerSpec,
    api: Api,
    setup: list[Phase],
    opts: Options,
    workdir: Path,
    notes: list[str],
) -> list[ProbeRow]:
    rows: list[ProbeRow] = []
    where = f"stall probe workers={spec.workers}"
    with servers.serving(paths, spec, workdir / f"probe-w{spec.workers}-{spec.target}") as run:
        servers.warm_up(run, api)
        for phase in (setup[0], setup[1], setup[3]):
            done = run_phase(
                phase,
                run.port,
                engine="python",
                close=False,
                cap_s=opts.phase_cap_s,
                workdir=workdir,
                auth=run.auth,
            )
            if done.denied:
                notes.append(_denied_note(spec.target, where, done))
        for engine in probe_engines(opts):
            out = run_phase(
                setup[4],
                run.port,
                engine=engine,
                close=False,
                cap_s=opts.phase_cap_s,
                workdir=workdir / "load",
                auth=run.auth,
            )
            log(f"probe {spec.target:16} workers={spec.workers} {engine:6} {_describe(out)}")
            rows.append(ProbeRow(spec.target, spec.workers, engine, out))
            if out.denied:
                notes.append(_denied_note(spec.target, where, out))
    return rows


def _probe_table(rows: list[ProbeRow]) -> str:
    lines = [
        "| Server | Workers | Client | ops/s | p50 ms | p99 ms | Errors |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat = r.outcome.latencies_us
        lines.append(
            f"| {r.target} | {r.workers} | {r.engine} | {r.outcome.ops_per_s:,.0f} | "
            f"{percentile_ms(lat, 50):.2f} | {percentile_ms(lat, 99):.2f} | {r.outcome.errors} |"
        )
    return "\n".join(lines)


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def machine_facts(paths: servers.Paths) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "CPU": f"{os.cpu_count()} x {cpu} (nproc {first_line(['nproc'])})",
        "Memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "Kernel": platform.release(),
        "Python": platform.python_version(),
        "MLflow": version_of(paths.mlflow),
        "Cairn": commit_label(REPO),
        "wrk": version_of("wrk"),
        "PostgreSQL": servers.postgres_version(),
    }


METHOD = """\
Method. Each configuration starts three fresh servers side by side on 127.0.0.1 (fresh
SQLite files, or freshly created PostgreSQL databases that are dropped afterwards), with the
same number of worker processes: a Cairn driven through its native API, a stock MLflow, and a
second Cairn (same command, backend and workers) driven through its MLflow-compatible API with
exactly the requests the MLflow server gets ("Cairn (MLflow API)"). A few warm-up requests on
new connections let every worker open its store, and the harness waits (up to 10 s) until
the servers' start-up work has died down. The phases then run in order, each one on every
server in four turns: each server sends the first quarter of its requests, then each one
the second quarter, and so on, the servers' order rotating from phase to phase (Cairn,
MLflow, Cairn (MLflow API); then MLflow, Cairn (MLflow API), Cairn; ...), so that a slow
spell of this shared machine falls on all alike; the idle servers use no CPU meanwhile.
Each turn gets a quarter of the phase's time cap; a turn that hit it stops the load
generator, not the requests the server has already accepted, so the harness then waits
(up to 10 s) until the machine is idle again before the next turn (it is noted when it
did not settle). Before every phase each PostgreSQL database is `ANALYZE`d, untimed: this
machine's PostgreSQL runs with `autovacuum = off`, and without fresh statistics its
planner treats tables filled seconds ago as empty (a live server's autovacuum analyzes a
table once a tenth of it has changed); stock MLflow's database gets the same.
Each phase is replayed by closed-loop clients: a client sends its next request
when the previous answer is in. "N clients" means N concurrent connections; the other phases
use one. Versions are spread round-robin over the models. Aliases are `champion` -> v1 and
`challenger` -> v2 of each model; reads cycle over the aliases set. The version search is
`name = '<model>' AND tags.kind = '<kind>'` (MLflow's version search cannot filter on
metrics, so versions carry tags only, the same on both sides); the model search is
`name LIKE 'bench-<d>%' AND tags.team = '<team>'`, max_results 100 on both. Cairn is called
on `/api/v1`, MLflow and Cairn (MLflow API) on `/api/2.0/mlflow` with byte-identical request
lists; bodies carry the same names, tags, source (`s3://...`) and run id.
Latency is the client's cycle time per request (in new-connection
mode it includes connecting); ops/s is answers with the expected status over the phase's wall
time; errors are answers with an unexpected status (401/403 among them are also named in the
notes) plus requests that got no answer. Planned counts are
the issue's; a phase still running at its time cap stops there ("capped: sent/planned") and
its rate is measured over what it did; the next phases are then built only from objects that
exist, so a slow server works on a smaller data set (which can only flatter it; a capped
Cairn phase is therefore listed as a missed target). MLflow runs
with `--uvicorn-opts --no-access-log` and `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` (no
background job runner), i.e. at its fastest; Cairn with its defaults. Every ratio, and the
10x verdict, is taken against MLflow at its best: for each backend, connection mode and
phase, its fastest run with at most the row's worker count ("vs 1 w" in a cell names
MLflow's worker count when it is not the row's). With two workers stock MLflow waits ~50
ms on every keep-alive request, and a ratio against that alone would measure its stall.
The load generator is
wrk (one thread and one connection per client, driven by `regbench/replay.lua`); the harness
ceiling is the same request list sent by the same client setup to a trivial in-memory HTTP
endpoint (`regbench/trivial_server.py`, 2 processes). A Cairn figure above half that ceiling
would be partly a measure of the client, and is flagged.
Authentication: Cairn's figures (both Cairn contenders) include authentication and
authorization on every request, stock MLflow's include none. Each Cairn server starts with a
fixed bootstrap admin token (`CAIRN_BOOTSTRAP_TOKEN`, `regbench/auth.py`) and every request
to it carries `Authorization: Bearer <token>`, which the server checks (SHA-256 of the token,
token row, the user's grants) before it authorizes the call; stock MLflow runs without
authentication, its default. The ceiling requests carry the same header. What
authentication costs per request is measured apart (`auth_cost` section,
`benchmarks/auth_cost.py`)."""


def render(
    opts: Options,
    results: Results,
    probe: list[ProbeRow],
    facts: dict[str, str],
    started: str,
    took_s: float,
) -> tuple[str, list[str]]:
    body, misses = tables(results, opts.backends, opts.workers, opts.modes, opts.engine)
    misses = [f"did not run: {f}" for f in results.failures] + misses
    for row in probe:
        p50 = percentile_ms(row.outcome.latencies_us, 50)
        if row.target in CAIRN_TARGETS and (p50 > 20 or row.outcome.errors):
            misses.append(
                f"stall probe: {row.target} workers={row.workers} {row.engine} p50 {p50:.1f} ms"
            )
    parts = [
        "## registry_ops: Cairn (native and MLflow API) vs. stock MLflow",
        "",
        f"Run {started}, took {took_s / 60:.1f} min. Command: `{opts.command}`"
        + (
            " (quick counts: a smoke run, not the issue's workload)" if opts.counts is QUICK else ""
        ),
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in facts.items()) + ".",
        "",
        f"Workload per configuration: {opts.counts.models} models; {opts.counts.versions} versions "
        f"from 1 client and {opts.counts.versions} from 8; {opts.counts.aliases} aliases; "
        f"{opts.counts.reads} get-by-alias from 1 and from 8 clients; {opts.counts.searches} "
        f"filtered version searches; {opts.counts.searches} filtered model searches. Engine: "
        f"{opts.engine}. Phase cap: {opts.phase_cap_s:.0f} s. Rounds: {opts.rounds}.",
        "",
        METHOD,
        "",
        f"Targets: Cairn/MLflow >= {10:.0f}x and Cairn (MLflow API)/MLflow >= {10:.0f}x on "
        "every phase (against MLflow at its best with at most as many workers), p99 of "
        "concurrent creates <= 50 ms, zero errors, no keep-alive stall at any worker count.",
        "",
        "### Results",
        "",
        body,
        "### Harness ceiling (trivial in-memory endpoint, ops/s)",
        "",
        ceiling_table(results, opts.modes),
        "",
        "### Keep-alive stall probe (SQLite, 200 sequential get-by-alias on one connection)",
        "",
        _probe_table(probe) if probe else "(not run)",
        "",
        "### Targets missed",
        "",
        "\n".join(f"- {m}" for m in misses) if misses else "- none",
        "",
    ]
    if results.notes:
        parts += ["### Notes", "", *(f"- {n}" for n in results.notes), ""]
    return "\n".join(parts), misses


def _dump_raw(path: Path, results: Results, probe: list[ProbeRow]) -> None:
    def summary(o: Outcome) -> dict[str, object]:
        lat = o.latencies_us
        return {
            "phase": o.phase,
            "planned": o.planned,
            "sent": o.sent,
            "answered": o.answered,
            "errors": o.errors,
            "denied": o.denied,
            "wall_s": o.wall_s,
            "ops_per_s": o.ops_per_s,
            "p50_ms": percentile_ms(lat, 50),
            "p99_ms": percentile_ms(lat, 99),
        }

    data = {
        "auth": "Cairn requests carry Authorization: Bearer (regbench/auth.py); MLflow's none",
        "runs": [
            {"target": t, **k.__dict__, **summary(o)}
            for t, rows in results.by_target.items()
            for k, o in rows.items()
        ],
        "ceiling": [
            {"engine": e, "mode": m, **summary(o)} for (e, m, _), o in results.ceiling.items()
        ],
        "probe": [
            {"target": r.target, "workers": r.workers, "engine": r.engine, **summary(r.outcome)}
            for r in probe
        ],
        "notes": results.notes,
        "failures": results.failures,
    }
    path.write_text(json.dumps(data, indent=1))


def check_prerequisites(paths: servers.Paths, opts: Options) -> None:
    needed = {"cairn": paths.cairn, "mlflow": paths.mlflow, CAIRN_MLFLOW: paths.cairn}
    missing = [str(needed[t]) for t in opts.targets if not needed[t].exists()]
    if opts.engine == "wrk" and not wrk_available():
        missing.append("wrk (apt-get install wrk)")
    if missing:
        sys.exit("missing: " + ", ".join(missing) + " (bash benchmarks/run.sh installs them)")


def main(argv: list[str]) -> int:
    servers.exit_on_sigterm()  # unwinds through every ``serving`` block: servers stop
    opts = parse_args(argv)
    paths = servers.default_paths(REPO)
    check_prerequisites(paths, opts)
    if dropped := servers.sweep_stale_databases():
        log(f"dropped databases of killed benchmark runs: {', '.join(dropped)}")
    started = dt.datetime.now().astimezone()
    results_load = " ".join(_loadavg())
    workdir = BENCH_DIR / ".work" / f"registry_ops-{started:%Y%m%d-%H%M%S}"
    clock = Clock(opts.budget_s, quiet_left_s=opts.quiet_wait_s)
    results = Results()
    results.notes.append(
        f"Load average (1/5/15 min) when the run started: {results_load}. The machine is shared; "
        "anything else running on its 2 cores shows up in every server's figures."
    )
    log(f"work dir {workdir}")
    probe: list[ProbeRow] = []
    try:
        measure_ceiling(paths, opts, results, workdir)
        run_all(paths, opts, results, workdir, clock)
        probe = stall_probe(paths, opts, workdir, clock, results.notes, results.failures)
    except BaseException:  # Ctrl-C, SIGTERM: RESULTS.md keeps the last whole run, but
        saved = workdir / "results-interrupted.json"  # what this one measured is kept
        workdir.mkdir(parents=True, exist_ok=True)
        _dump_raw(saved, results, probe)
        log(f"interrupted; what was measured is in {saved}")
        raise
    took = time.monotonic() - clock.started
    text, misses = render(
        opts, results, probe, machine_facts(paths), f"{started:%Y-%m-%d %H:%M %Z}", took
    )
    _dump_raw(workdir / "results.json", results, probe)
    print(text)
    if opts.results_path is not None:
        splice(opts.results_path, text)
        log(f"wrote {opts.results_path}")
    log(f"{len(misses)} target miss(es); raw numbers in {workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
