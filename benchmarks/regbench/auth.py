"""The credentials every benchmark uses to talk to the Cairn servers it starts.

Each Cairn server the benchmarks start is a throwaway on 127.0.0.1 with an empty database,
so it creates its ``admin`` user on first start; ``CAIRN_BOOTSTRAP_TOKEN`` makes that
user's token this fixed constant (any printable string of 32+ characters without spaces is
accepted), and every Cairn client path of the benchmarks (wrk's replay, the Python sender,
raw httpx and curl transfers, the SDK) sends it as ``Authorization: Bearer``. Stock MLflow
runs without authentication (its default), so no header goes to it.
"""

from __future__ import annotations

BENCH_TOKEN = "regbench-throwaway-admin-token-0123456789abcdef"  # a throwaway local server's
AUTHORIZATION = f"Bearer {BENCH_TOKEN}"
DENIED_STATUSES = (401, 403)  # answers meaning "the harness did not (correctly) authenticate"


def server_env() -> dict[str, str]:
    """Environment for a Cairn server the benchmarks start: its admin's token is ours."""
    return {"CAIRN_BOOTSTRAP_TOKEN": BENCH_TOKEN}


def headers() -> dict[str, str]:
    """Request headers for a Cairn client path (httpx)."""
    return {"Authorization": AUTHORIZATION}
