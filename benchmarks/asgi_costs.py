"""What Cairn's web layer costs per request, without a network: the ASGI app called
in-process, one request after the other.

    .venv/bin/python benchmarks/asgi_costs.py [--calls N] [--backend sqlite|postgresql]

Not part of ``make bench``: an attribution tool beside ``service_costs.py`` (the service
alone) and ``registry_ops.py`` (the whole server over HTTP, against MLflow). It builds the
app as a server worker does (``create_app``, a fresh SQLite file or PostgreSQL database),
seeds a model with a version and an alias, then sends each request straight to the app's
ASGI callable (no socket, no HTTP parser) and reports the mean wall time per request over
``--calls`` calls after a warm-up. The difference from ``service_costs.py`` is what the
middleware, routing, parameter checks, authentication and JSON cost. To compare two
commits, run it with ``PYTHONPATH=<other checkout>/src``; alternate the runs, this
machine drifts by tens of percent within minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from typing import Any

from service_costs import TOKEN, scratch_settings

from cairn.app import create_app

AUTH = (b"authorization", f"Bearer {TOKEN}".encode())
JSON = (b"content-type", b"application/json")
VERSION_SEARCH = "name = 'm1' AND tags.kind = 'candidate'"
MODEL_SEARCH = "name LIKE 'm%' AND tags.team = 'risk'"


def _query(**fields: object) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


# (label, method, path, query, body); creates last, so that reads see one data set
REQUESTS: list[tuple[str, str, str, bytes, dict[str, Any] | None]] = [
    ("GET /health", "GET", "/health", b"", None),
    ("get by alias", "GET", "/api/v1/models/m1/aliases/champion", b"", None),
    (
        "get by alias (MLflow API)",
        "GET",
        "/api/2.0/mlflow/registered-models/alias",
        _query(name="m1", alias="champion"),
        None,
    ),
    (
        "search versions",
        "GET",
        "/api/v1/search/versions",
        _query(filter=VERSION_SEARCH, max_results=100),
        None,
    ),
    ("search models", "GET", "/api/v1/models", _query(filter=MODEL_SEARCH, max_results=100), None),
    (
        "search models (MLflow API)",
        "GET",
        "/api/2.0/mlflow/registered-models/search",
        _query(filter=MODEL_SEARCH, max_results=100),
        None,
    ),
    (
        "move an alias",
        "PUT",
        "/api/v1/models/m1/aliases/champion",
        b"",
        {"version": 1},
    ),
    (
        "create a version",
        "POST",
        "/api/v1/models/m1/versions",
        b"",
        {"source": "s3://bucket/model", "tags": {"kind": "candidate"}},
    ),
    (
        "create a version (MLflow API)",
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        b"",
        {"name": "m1", "source": "s3://bucket/model", "tags": [{"key": "kind", "value": "x"}]},
    ),
]


class Caller:
    """Sends requests to an ASGI app in-process and checks they succeed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(self, method: str, path: str, query: bytes, body: bytes) -> int:
        headers = [(b"host", b"127.0.0.1:8080"), AUTH]
        if body:
            headers += [JSON, (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


async def run(app: Any, calls: int, only: str | None) -> None:
    caller = Caller(app)
    seed = [
        ("POST", "/api/v1/models", {"name": "m1", "tags": {"team": "risk"}}),
        (
            "POST",
            "/api/v1/models/m1/versions",
            {"source": "s3://b/m", "tags": {"kind": "candidate"}},
        ),
        ("PUT", "/api/v1/models/m1/aliases/champion", {"version": 1}),
    ]
    for method, path, payload in seed:
        status = await caller.call(method, path, b"", json.dumps(payload).encode())
        assert status in (200, 201), (path, status)
    print(f"| request | µs per call ({os.environ.get('PYTHONPATH') or 'this checkout'}) |")
    print("|---|---:|")
    for label, method, path, query, payload in REQUESTS:
        if only is not None and only != label:
            continue
        body = json.dumps(payload).encode() if payload is not None else b""
        for _ in range(min(50, calls)):
            status = await caller.call(method, path, query, body)
            assert status in (200, 201), (label, status)
        start = time.perf_counter()
        for _ in range(calls):
            await caller.call(method, path, query, body)
        print(f"| {label} | {(time.perf_counter() - start) / calls * 1e6:,.0f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--only", choices=[r[0] for r in REQUESTS], help="one request only")
    a = p.parse_args()
    with scratch_settings(a.backend, "asgi_costs") as settings:
        app = create_app(settings)
        gc.collect()
        gc.freeze()  # as the server's lifespan does
        try:
            asyncio.run(run(app, a.calls, a.only))
        finally:
            app.state.service.db.dispose()


if __name__ == "__main__":
    main()
