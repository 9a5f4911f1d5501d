"""registry_ops.py's own logic, without servers: what a run that went wrong reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import registry_ops as ro
from regbench import servers
from regbench.report import Results


def _opts(*args: str) -> ro.Options:
    return ro.parse_args(["--no-write", *args])


def test_a_server_that_never_ran_is_a_missed_target() -> None:
    opts = _opts("--backends", "sqlite", "--workers", "1", "--modes", "keepalive")
    results = Results()
    results.failures.append("cairn sqlite, 1 worker(s), keep-alive: not ready after 120 s")
    text, misses = ro.render(opts, results, [], {}, "now", 1.0)
    assert misses == ["did not run: cairn sqlite, 1 worker(s), keep-alive: not ready after 120 s"]
    assert "- none" not in text.split("### Targets missed", 1)[1]


def test_the_stall_probe_uses_wrk_only_when_it_is_the_chosen_engine() -> None:
    assert ro.probe_engines(_opts("--engine", "python")) == ["python"]
    assert ro.probe_engines(_opts("--engine", "wrk")) == ["wrk", "python"]


def test_a_config_that_crashes_is_reported_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = _opts("--backends", "sqlite", "--workers", "1,2", "--modes", "keepalive")
    ran: list[int] = []

    def run_config(*args: Any) -> None:
        cfg: ro.Config = args[1]
        ran.append(cfg.workers)
        if cfg.workers == 1:
            raise OSError("disk full")

    monkeypatch.setattr(ro, "run_config", run_config)
    results = Results()
    paths = servers.default_paths(tmp_path)
    ro.run_all(paths, opts, results, tmp_path, ro.Clock(60.0))
    assert ran == [1, 2]
    assert results.failures == ["sqlite workers=1 keep-alive round 1: OSError: disk full"]


def test_an_interrupted_run_keeps_what_it_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or SIGTERM after some configurations ran: RESULTS.md stays as it was (half a
    run must not replace a whole one), but the figures measured are saved, not lost."""
    monkeypatch.setattr(ro, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(ro.servers, "exit_on_sigterm", lambda: None)  # pytest's SIGTERM
    monkeypatch.setattr(ro, "check_prerequisites", lambda paths, opts: None)
    monkeypatch.setattr(ro, "measure_ceiling", lambda *args: None)

    def run_all(paths: Any, opts: Any, results: Results, workdir: Path, clock: Any) -> None:
        results.notes.append("sqlite workers=1 measured")
        raise KeyboardInterrupt

    monkeypatch.setattr(ro, "run_all", run_all)
    with pytest.raises(KeyboardInterrupt):
        ro.main(["--no-write", "--backends", "sqlite", "--quiet-wait", "0"])
    (saved,) = tmp_path.glob(".work/registry_ops-*/results-interrupted.json")
    assert "sqlite workers=1 measured" in json.loads(saved.read_text())["notes"]
