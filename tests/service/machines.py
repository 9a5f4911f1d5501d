"""What the model-based tests share: how a rule checks an outcome, and how a machine runs.

The suite runs a fixed set of sequences (``derandomize``), so that a red run means a
change broke something; ``CAIRN_MACHINE_EXAMPLES=N`` runs N random ones instead, for a
longer search.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from cairn.errors import CairnError

EXPLORE = os.environ.get("CAIRN_MACHINE_EXAMPLES")


def expect(error: type[CairnError] | None, call: Callable[[], object]) -> object:
    """Run ``call``; it must raise ``error`` (exactly that class), or succeed if None."""
    if error is None:
        return call()
    with pytest.raises(CairnError) as caught:
        call()
    assert type(caught.value) is error, caught.value
    return None


def run_machine(machine: Callable[[], RuleBasedStateMachine], *, examples: int, steps: int) -> None:
    """Run ``examples`` sequences of up to ``steps`` rules (``CAIRN_MACHINE_EXAMPLES``:
    that many random ones instead)."""
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(EXPLORE or examples),
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=EXPLORE is None,  # the suite: the same sequences every run
            suppress_health_check=list(HealthCheck),
        ),
    )
