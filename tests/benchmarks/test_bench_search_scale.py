"""search_scale notices other load during a read's runs (as the other benchmarks do),
measures it again, marks a figure every attempt of which was disturbed, and records its
command quoted for a shell."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator

import pytest
import search_scale as ss
from transfer_procs import DISTURBED_CPUS, ForeignLoad

BUSY = DISTURBED_CPUS + 1.0


def _loads(monkeypatch: pytest.MonkeyPatch, cpus: list[float]) -> None:
    """Make each measurement see the next of ``cpus`` as other processes' load."""
    queue = iter(cpus)

    @contextlib.contextmanager
    def fake(also_mine: object = None) -> Iterator[ForeignLoad]:
        load = ForeignLoad()
        yield load
        load.cpus = next(queue)

    monkeypatch.setattr(ss, "foreign_load", fake)


def test_a_disturbed_read_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    _loads(monkeypatch, [BUSY, 0.0])
    t = ss.timed(lambda: None, 3)
    assert (t.attempts, t.other_cpus, t.disturbed) == (2, 0.0, False)


def test_a_read_disturbed_every_time_keeps_the_least_disturbed_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _loads(monkeypatch, [BUSY + 1, BUSY, BUSY + 2])
    t = ss.timed(lambda: None, 3)
    assert (t.attempts, t.other_cpus, t.disturbed) == (ss.ATTEMPTS, BUSY, True)


def test_the_report_marks_disturbed_figures() -> None:
    read = "get a version (big, the middle one)"
    results = {
        "sqlite": {
            (100, read): ss.Timing(1.0, 0.0),
            (1000, read): ss.Timing(1.5, BUSY, ss.ATTEMPTS),
        }
    }
    text = ss.report(results, [100, 1000], "cmd", ["`stress` (90% CPU)"])
    assert f"| {read} | 1.00 | 1.50* | 1.5x |" in text
    assert "disturbed: 1 of 2" in text
    assert "Busy other processes at the start: `stress` (90% CPU)" in text


def test_the_recorded_command_is_quoted_for_a_shell() -> None:
    argv = ["--backends", "sqlite", "--sizes", "1000,2000", "--runs", "3 ; echo"]
    command = ss.command_line(argv)
    assert shlex.split(command)[2:] == argv


def test_registry_ops_records_its_own_arguments_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    import registry_ops

    monkeypatch.delenv("BENCH_COMMAND", raising=False)
    argv = ["--quick", "--no-write", "--budget", "60"]
    command = registry_ops.parse_args(argv).command
    assert shlex.split(command) == [".venv/bin/python", "benchmarks/registry_ops.py", *argv]
