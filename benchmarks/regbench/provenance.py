"""What a benchmark section records about where it ran: the code's commit and tools' versions.

Every section of ``benchmarks/RESULTS.md`` names the exact command, the date, the machine
and the commit it measured (``-dirty`` when a file other than the results differs from
it: ``make bench`` writes RESULTS.md section by section, so earlier sections do not make
later ones dirty).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

RESULTS = "benchmarks/RESULTS.md"


def first_line(cmd: list[str], *, must_succeed: bool = True) -> str | None:
    """The first line a command printed (stdout, else stderr), or None if it could not run
    (or, with ``must_succeed``, exited with an error)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if must_succeed and done.returncode != 0:
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def commit_label(repo: Path) -> str:
    """``repo``'s short commit, ``-dirty`` when anything but the results has changed."""
    commit = first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    if not commit:
        return "unknown (not a git checkout)"
    changed = first_line(
        ["git", "-C", str(repo), "status", "--porcelain", "--", ".", f":!{RESULTS}"]
    )
    return commit if changed == "" else f"{commit}-dirty"


def version_of(program: Path | str) -> str:
    """``program --version``'s first line (wrk prints it and exits 1), or why there is none."""
    return first_line([str(program), "--version"], must_succeed=False) or f"{program} missing"


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _disk(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=source,fstype,size", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()[-1]
        source, fstype, size = out.split()
        dev = Path(source).name
        rotational = Path(f"/sys/block/{dev}/queue/rotational")
        kind = ""
        if rotational.exists():
            kind = ", rotational=1 (virtio reports 1 whatever backs it)"
            if rotational.read_text().strip() == "0":
                kind = ", non-rotational"
        return f"{source} ({fstype}, {size}{kind})"
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return "?"


def machine(workdir: Path) -> str:
    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kib) / 1024 / 1024:.0f} GiB" if mem_kib.isdigit() else "?"
    return (
        f"{os.cpu_count()} CPUs ({_first('/proc/cpuinfo', 'model name')}), {mem} RAM, "
        f"disk {_disk(workdir)}, Linux {platform.release()}, Python {platform.python_version()}"
    )
