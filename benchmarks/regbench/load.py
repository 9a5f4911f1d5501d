"""Load generators that replay a :class:`~regbench.workload.Phase` and time every request.

Two engines replay the same request lists:

* ``wrk`` (native, a few microseconds of client CPU per request) driven by ``replay.lua``,
  one connection per wrk thread;
* ``python``: one process per concurrent client, each with its own ``httpx.Client``.

Both are closed loops: every client sends its next request when the previous answer has
arrived. A request's latency is that client's cycle time (end of previous response to end of
this one), so in new-connection mode it includes connecting. Latencies (and so every
percentile) are those of good answers only: a wrong status or a request that got no answer
is an error, counted apart, and its time is in no percentile (nor in the next request's).

Both send ``Authorization`` when given one (Cairn's servers require it). An answer whose
status is not the request's expected one is an error, and 401/403 answers are also counted
apart (``denied``): a harness that failed to authenticate must show it, not report fast
refusals as throughput. ``ops_per_s`` counts good answers only.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

from regbench.auth import DENIED_STATUSES
from regbench.workload import Phase, Req

REPLAY_LUA = Path(__file__).with_name("replay.lua")
REQUEST_TIMEOUT_S = 30.0  # a request still unanswered after this long is given up (an error)
STOP_GRACE_S = 15.0  # for a stopped load generator to report what it measured


@dataclass
class Outcome:
    """What happened when one phase was replayed against one server."""

    phase: str
    planned: int
    sent: int = 0
    answered: int = 0
    bad_status: int = 0
    denied: int = 0  # of bad_status: 401/403, i.e. not (correctly) authenticated
    wall_s: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    sent_per_client: list[int] = field(default_factory=list)

    @property
    def good(self) -> int:
        """Answers with the expected status."""
        return self.answered - self.bad_status

    @property
    def errors(self) -> int:
        """Wrong status codes plus requests that got no answer."""
        return self.bad_status + (self.sent - self.answered)

    @property
    def truncated(self) -> bool:
        """True when the phase's time cap stopped it before all requests were sent."""
        return self.sent < self.planned

    @property
    def ops_per_s(self) -> float:
        """Good answers per second: refused or failed requests add nothing."""
        return self.good / self.wall_s if self.wall_s > 0 else 0.0

    def merge(self, other: Outcome) -> Outcome:
        return Outcome(
            phase=self.phase,
            planned=self.planned + other.planned,
            sent=self.sent + other.sent,
            answered=self.answered + other.answered,
            bad_status=self.bad_status + other.bad_status,
            denied=self.denied + other.denied,
            wall_s=self.wall_s + other.wall_s,
            latencies_us=self.latencies_us + other.latencies_us,
            sent_per_client=self.sent_per_client + other.sent_per_client,
        )


def percentile_ms(latencies_us: list[int], pct: float) -> float:
    """Nearest-rank percentile, in milliseconds: the smallest latency with at least ``pct``
    percent of the sample at or below it (rank ``ceil(pct / 100 * n)``, at least 1)."""
    if not latencies_us:
        return float("nan")
    ordered = sorted(latencies_us)
    exact = round(pct * len(ordered) / 100, 9)  # 99 * 300 / 100 is 297, not 297.00000001
    rank = max(1, min(len(ordered), math.ceil(exact)))
    return ordered[rank - 1] / 1000


@dataclass(frozen=True)
class ClientShare:
    """The slice of a phase one client replays and how it reports back."""

    start: float
    end: float
    sent: int
    answered: int
    bad_status: int
    denied: int
    latencies_us: list[int]


def _combine(phase: Phase, shares: list[ClientShare | None]) -> Outcome:
    """Merge the clients' reports; a client that never reported counts as having sent nothing
    to later phases, while its whole share is counted here as sent and unanswered."""
    outcome = Outcome(phase=phase.name, planned=len(phase.requests))
    expected = [len(s) for s in _split(phase.requests, phase.concurrency)]
    outcome.sent_per_client = [s.sent if s else 0 for s in shares]
    outcome.sent = sum(n for s, n in zip(shares, expected, strict=True) if s is None)
    reported = [s for s in shares if s is not None]
    started = [s.start for s in reported if s.answered]
    ended = [s.end for s in reported if s.answered]
    for share in reported:
        outcome.sent += share.sent
        outcome.answered += share.answered
        outcome.bad_status += share.bad_status
        outcome.denied += share.denied
        outcome.latencies_us.extend(share.latencies_us)
    outcome.wall_s = max(ended) - min(started) if started else 0.0
    return outcome


def _split(reqs: tuple[Req, ...], clients: int) -> list[tuple[Req, ...]]:
    return [reqs[k::clients] for k in range(clients)]


# ---------------------------------------------------------------- wrk engine


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def _write_lua_data(
    phase: Phase, path: Path, *, port: int, close: bool, cap_s: float, auth: str | None
) -> None:
    rows = [
        f"{{{_lua_string(r.method)}, {_lua_string(r.path)}, "
        f"{_lua_string(r.body.decode())}, {r.expect}}}"
        for r in phase.requests
    ]
    text = (
        "return {\n"
        f"  nthreads = {phase.concurrency},\n"
        f"  host = {_lua_string(f'127.0.0.1:{port}')},\n"
        f"  close = {'true' if close else 'false'},\n"
        f"  deadline = {cap_s:.3f},\n"
        + (f"  auth = {_lua_string(auth)},\n" if auth else "")
        + f"  denied = {{{', '.join(map(str, DENIED_STATUSES))}}},\n"
        f"  out = {_lua_string(str(path.with_suffix('.out')))},\n"
        "  reqs = {\n    " + ",\n    ".join(rows) + "\n  },\n}\n"
    )
    path.write_text(text)


def _read_wrk_share(path: Path) -> ClientShare:
    head, _, rest = path.read_text().partition("\n")
    start, end, sent, answered, bad, denied = head.split()
    return ClientShare(
        start=float(start),
        end=float(end),
        sent=int(sent),
        answered=int(answered),
        bad_status=int(bad),
        denied=int(denied),
        latencies_us=[int(x) for x in rest.split()],
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _wait_for_files(proc: subprocess.Popen[bytes], files: list[Path], limit_s: float) -> None:
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up and proc.poll() is None:
        if all(f.exists() for f in files):
            return
        time.sleep(0.02)


def _stop_wrk(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT: wrk stops its threads, and replay.lua's ``done`` writes the reports of the
    threads still waiting for an answer."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def run_wrk(
    phase: Phase,
    port: int,
    *,
    close: bool,
    cap_s: float,
    workdir: Path,
    auth: str | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Outcome:
    """Replay ``phase`` with wrk: one thread and one connection per concurrent client.

    wrk's ``--timeout`` only counts a slow request, it does not abort it: a thread whose
    request never gets an answer would wait for it to the end of ``-d``. So wrk runs at
    most ``cap_s + timeout_s`` (a request sent before the cap has ``timeout_s`` to be
    answered); then it is stopped, the unanswered request counts as an error and what that
    thread measured before is kept (replay.lua's ``done``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"{_slug(phase.name)}-{time.monotonic_ns()}.lua"
    _write_lua_data(phase, data, port=port, close=close, cap_s=cap_s, auth=auth)
    files = [Path(f"{data.with_suffix('.out')}.{k}") for k in range(phase.concurrency)]
    n = str(phase.concurrency)
    limit_s = math.ceil(cap_s + timeout_s)
    cmd = ["wrk", "-t", n, "-c", n, "-d", f"{limit_s}s", "--timeout", f"{math.ceil(timeout_s)}s"]
    cmd += ["-s", str(REPLAY_LUA), f"http://127.0.0.1:{port}", "--", str(data)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_for_files(proc, files, limit_s + 1)
    finally:
        _stop_wrk(proc)
    return _combine(phase, [_read_wrk_share(f) if f.exists() else None for f in files])


# ------------------------------------------------------------- python engine


@dataclass(frozen=True)
class _PyJob:
    port: int
    reqs: tuple[Req, ...]
    close: bool
    start_at: float
    cap_s: float
    auth: str | None = None
    timeout_s: float = REQUEST_TIMEOUT_S


def _py_client(job: _PyJob) -> ClientShare:
    headers = {"Connection": "close"} if job.close else {}
    if job.auth:
        headers["Authorization"] = job.auth
    latencies: list[int] = []
    sent = answered = bad = denied = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{job.port}", timeout=job.timeout_s) as client:
        while time.monotonic() < job.start_at:
            time.sleep(0.0005)
        start = prev = time.monotonic()
        for req in job.reqs:
            if prev - start > job.cap_s:
                break
            sent += 1
            status = _py_send(client, req, headers)
            now = time.monotonic()
            if status == req.expect:  # only good answers are timed, as in replay.lua
                latencies.append(round((now - prev) * 1e6))
            elif status:
                bad += 1
                denied += status in DENIED_STATUSES
            answered += status != 0  # 0: no answer (an error, but not a wrong status)
            prev = now
    return ClientShare(start, prev, sent, answered, bad, denied, latencies)


def _py_send(client: httpx.Client, req: Req, headers: dict[str, str]) -> int:
    """The answer's status; 0 when the request failed without one."""
    hdrs = {**headers, "Content-Type": "application/json"} if req.body else headers
    try:
        resp = client.request(req.method, req.path, content=req.body or None, headers=hdrs)
    except httpx.HTTPError:
        return 0
    return resp.status_code


def _client_main(job: _PyJob, conn: Connection) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the harness's clean-up handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when clients stop
    conn.send(_py_client(job))
    conn.close()


def _collect(conn: Connection, deadline: float) -> ClientShare | None:
    try:
        if conn.poll(max(0.0, deadline - time.monotonic())):
            share: ClientShare = conn.recv()
            return share
    except (EOFError, OSError):
        pass
    return None


def run_python(
    phase: Phase,
    port: int,
    *,
    close: bool,
    cap_s: float,
    auth: str | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Outcome:
    """Replay ``phase`` with one forked process (and httpx client) per concurrent client;
    a request unanswered after ``timeout_s`` is an error, and a client that has not reported
    ``cap_s + timeout_s`` (plus a grace) after the start is stopped."""
    ctx = multiprocessing.get_context("fork")
    start_at = time.monotonic() + 0.3 + 0.02 * phase.concurrency
    clients = []
    for share in _split(phase.requests, phase.concurrency):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_client_main,
            args=(_PyJob(port, share, close, start_at, cap_s, auth, timeout_s), send),
        )
        proc.start()
        send.close()
        clients.append((proc, recv))
    deadline = start_at + cap_s + timeout_s + STOP_GRACE_S
    try:
        shares = [_collect(recv, deadline) for _, recv in clients]
    finally:
        for proc, recv in clients:
            recv.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return _combine(phase, shares)


def run_phase(
    phase: Phase,
    port: int,
    *,
    engine: str,
    close: bool,
    cap_s: float,
    workdir: Path,
    auth: str | None = None,
) -> Outcome:
    """Replay ``phase``; ``auth``: the ``Authorization`` header value every request carries."""
    if not phase.requests:  # nothing to aim at: an earlier phase created nothing
        return Outcome(phase=phase.name, planned=0)
    if engine == "wrk":
        return run_wrk(phase, port, close=close, cap_s=cap_s, workdir=workdir, auth=auth)
    return run_python(phase, port, close=close, cap_s=cap_s, auth=auth)
