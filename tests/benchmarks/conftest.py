"""Tests of the benchmark harness's own helpers (``benchmarks/``): percentiles, ratio and
target tables, RESULTS.md's generated sections. Fast and pure: no server, no MLflow.

The harness's modules import each other as top-level modules (``regbench``,
``transfer_report``, ...), the way its scripts run them, so ``benchmarks/`` goes on the
path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
