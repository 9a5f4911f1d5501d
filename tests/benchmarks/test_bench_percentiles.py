"""Latency percentiles of the registry benchmark (``regbench.load.percentile_ms``)."""

from __future__ import annotations

import math

import pytest
from regbench.load import percentile_ms


def _us(*ms: int) -> list[int]:
    return [m * 1000 for m in ms]


@pytest.mark.parametrize(
    ("n", "pct", "rank"),
    [
        # nearest rank: the smallest value with at least pct% of the sample at or below it
        (100, 99, 99),
        (300, 99, 297),
        (2000, 99, 1980),
        (6, 50, 3),
        (2, 50, 1),
        (4, 50, 2),
        (5, 50, 3),
        (1, 99, 1),
        (7, 99, 7),
        (10, 100, 10),
        (10, 0, 1),
    ],
)
def test_percentile_is_the_nearest_rank(n: int, pct: float, rank: int) -> None:
    shuffled = list(reversed(range(1, n + 1)))  # value k has rank k once sorted
    assert percentile_ms(_us(*shuffled), pct) == rank


def test_p99_of_a_hundred_answers_is_not_the_slowest() -> None:
    lat = _us(*([1] * 99), 500)  # one stray 500 ms answer in a hundred
    assert percentile_ms(lat, 99) == 1
    assert percentile_ms(lat, 100) == 500


def test_no_latencies_give_nan() -> None:
    assert math.isnan(percentile_ms([], 50))
