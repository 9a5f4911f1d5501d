"""auth_cost.py's medians: rounds disturbed by other load stay out of them."""

from __future__ import annotations

import auth_cost as ac
from regbench.load import Outcome


def _sample(ms: float, other_cpus: float = 0.0) -> ac.Sample:
    n = 100
    outcome = Outcome(
        phase="p", planned=n, sent=n, answered=n, wall_s=1.0, latencies_us=[round(ms * 1000)] * n
    )
    return ac.Sample(outcome, cpu_s=ms * n / 1000, other_cpus=other_cpus)


def _run() -> ac.BackendRun:
    run = ac.BackendRun("sqlite")
    busy = ac.DISTURBED_CPUS + 1.0
    # rounds 2 and 3 ran while something else used the machine: all in them took 10x longer
    run.samples["health"] = [_sample(0.20), _sample(2.0, busy), _sample(2.0, busy)]
    run.samples["whoami-admin"] = [_sample(0.50), _sample(5.0, busy), _sample(5.0, busy)]
    run.samples["whoami-reader"] = [_sample(0.60), _sample(6.0, busy), _sample(6.0, busy)]
    return run


def test_the_cost_of_authentication_leaves_disturbed_rounds_out() -> None:
    run = _run()
    assert round(ac._delta(run, "whoami-admin", "mean_ms"), 3) == 0.3  # not 3.0
    assert "**0.30 ms**" in ac.verdict(run)


def test_the_table_medians_leave_disturbed_rounds_out() -> None:
    rows = {line.split("|")[1].strip(): line for line in ac.table(_run()).splitlines()[2:]}
    health = [c.strip() for c in rows[ac.ENDPOINTS[0].label].strip("|").split("|")]
    assert health[1] == "0.200"  # p50 of the quiet round, not the median of 0.2, 2.0, 2.0
    assert health[-1] == "2 of 3"


def test_a_run_disturbed_throughout_still_reports_its_medians() -> None:
    run = _run()
    busy = ac.DISTURBED_CPUS + 1.0
    run.samples = {k: [_sample(s.mean_ms, busy) for s in v] for k, v in run.samples.items()}
    assert round(ac._delta(run, "whoami-admin", "mean_ms"), 3) == 3.0  # all there is
