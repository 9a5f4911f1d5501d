"""Processes for the transfer benchmark: servers in their own process groups, RSS sampling.

Every server is started with ``start_new_session`` so that stopping it kills its whole
process group (uvicorn workers, MLflow's launcher and its uvicorn child). Servers are
registered in ``RUNNING`` and ``stop_all`` ends whatever is left, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SAMPLE_SECONDS = 0.05
STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process (group) on 127.0.0.1."""

    name: str
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it after a grace period."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE_SECONDS)
        _signal_group(self.proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(STOP_GRACE_SECONDS)
        with contextlib.suppress(ValueError):
            RUNNING.remove(self)


RUNNING: list[Server] = []


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_all() -> None:
    for server in list(RUNNING):
        server.stop()


def start_server(
    name: str,
    cmd: list[str],
    *,
    port: int,
    health_path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 90.0,
    healthy: Callable[[int], bool] = lambda status: status == 200,
) -> Server:
    """Start ``cmd`` in a new session and wait until ``GET health_path`` answers a status
    ``healthy`` accepts (200)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(name, proc, f"http://127.0.0.1:{port}", log_path)
    RUNNING.append(server)
    try:
        _wait_healthy(server, health_path, timeout_s, healthy)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(
    server: Server, health_path: str, timeout_s: float, healthy: Callable[[int], bool]
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if healthy(client.get(server.base_url + health_path).status_code):
                    return
            time.sleep(0.1)
    raise TimeoutError(f"{server.name} not healthy after {timeout_s:.0f} s:\n{server.log_tail()}")


# --- /proc ---------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (via /proc/PID/task/TID/children)."""
    seen: list[int] = []
    todo = [root]
    while todo and len(seen) < 1000:
        pid = todo.pop()
        seen.append(pid)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
    return seen


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    return sum(_status_kib(pid, "VmRSS") for pid in process_tree(root))


def tree_cpu_s(root: int) -> float:
    """utime + stime of the tree's processes, in seconds."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{pid}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def reset_peak(root: int) -> None:
    """Reset VmHWM of every process in the tree (``echo 5 > /proc/PID/clear_refs``)."""
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def max_hwm_kib(root: int) -> int:
    """The largest VmHWM (kernel-tracked peak RSS) of any single process in the tree."""
    return max((_status_kib(pid, "VmHWM") for pid in process_tree(root)), default=0)


@dataclass
class RssPeak:
    """What the sampler saw: tree RSS before, the polled tree peak, the largest VmHWM,
    and the CPU time the tree used."""

    idle_kib: int = 0
    peak_kib: int = 0
    hwm_kib: int = 0
    samples: int = 0
    cpu_s: float = 0.0  # user + system CPU time the tree used meanwhile
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def peak_mb(self) -> float:
        return max(self.peak_kib, self.hwm_kib) * 1024 / 1e6

    @property
    def idle_mb(self) -> float:
        return self.idle_kib * 1024 / 1e6


@contextlib.contextmanager
def sample_rss(root: int | None) -> Iterator[RssPeak]:
    """Poll the tree's summed VmRSS every 50 ms while the block runs (no-op for None)."""
    result = RssPeak()
    if root is None:
        yield result
        return
    reset_peak(root)
    result.idle_kib = result.peak_kib = tree_rss_kib(root)
    cpu_before = tree_cpu_s(root)

    def poll() -> None:
        while not result._stop.wait(SAMPLE_SECONDS):
            result.peak_kib = max(result.peak_kib, tree_rss_kib(root))
            result.samples += 1

    thread = threading.Thread(target=poll, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        result._stop.set()
        thread.join(5.0)
        result.peak_kib = max(result.peak_kib, tree_rss_kib(root))
        result.hwm_kib = max_hwm_kib(root)
        result.cpu_s = tree_cpu_s(root) - cpu_before


# --- neighbours ------------------------------------------------------------------------


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """utime+stime (clock ticks) and command name of every process."""
    out: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{entry}/stat").read_text()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            out[int(entry)] = (int(fields[11]) + int(fields[12]), name)
    return out


def _cmdline(pid: int, limit: int = 70) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    text = " ".join(
        Path(w.decode(errors="replace")).name if i == 0 else w.decode(errors="replace")
        for i, w in enumerate(words)
        if w
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def busy_neighbours(seconds: float = 2.0, threshold: float = 0.10) -> list[str]:
    """Other processes that used more than ``threshold`` of a CPU over ``seconds``."""
    mine = set(process_tree(os.getpid()))
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (ticks, name) in after.items():
        if pid in mine or pid not in before:
            continue
        share = (ticks - before[pid][0]) / hz / seconds
        if share > threshold:
            busy.append(f"`{_cmdline(pid) or name}` ({share:.0%} CPU)")
    return busy


def add_wait_quiet(parser: argparse.ArgumentParser, default_s: float = 60.0) -> None:
    """The ``--wait-quiet S`` option of every script that calls ``wait_quiet``."""
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=default_s,
        metavar="S",
        help="first wait up to S seconds for other busy processes to finish",
    )


def wait_quiet(max_wait_s: float, log: Callable[[str], None]) -> list[str]:
    """Wait (bounded) until no other process is busy; return what was still busy."""
    deadline = time.monotonic() + max_wait_s
    busy = busy_neighbours()
    while busy and time.monotonic() < deadline:
        log(f"waiting for a quiet machine; busy: {', '.join(busy)}")
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
        busy = busy_neighbours()
    return busy


# --- other load during a measurement ---------------------------------------------------

_PF_KTHREAD = 0x00200000
DISTURBED_CPUS = 0.25  # other processes averaging more than this many CPUs: a disturbed run


def _user_ticks() -> dict[int, int]:
    """utime+stime of every user-space process (kernel threads left out: the kernel's
    writeback and network work for our own transfers runs there)."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{entry}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[6]) & _PF_KTHREAD:
                continue
            out[int(entry)] = int(fields[11]) + int(fields[12])
    return out


@dataclass
class ForeignLoad:
    """CPU that other user-space processes used while a block ran (in CPUs, averaged).

    A lower bound: a process that both starts and ends inside the block is not seen.
    """

    cpus: float = 0.0


@contextlib.contextmanager
def foreign_load(also_mine: Callable[[], Iterable[int]] = tuple) -> Iterator[ForeignLoad]:
    """Measure the other processes' CPU use while the block runs: every user-space process
    but this one's tree and ``also_mine()`` (asked before and after: e.g. the PostgreSQL
    backends serving this process's own connections)."""
    result = ForeignLoad()
    hz = os.sysconf("SC_CLK_TCK")
    mine = set(process_tree(os.getpid())) | set(also_mine())
    before, t0 = _user_ticks(), time.monotonic()
    try:
        yield result
    finally:
        elapsed = max(time.monotonic() - t0, 1e-3)
        mine |= set(process_tree(os.getpid())) | set(also_mine())
        after = _user_ticks()
        foreign = sum(ticks - before.get(pid, 0) for pid, ticks in after.items() if pid not in mine)
        result.cpus = max(0.0, foreign / hz / elapsed)
