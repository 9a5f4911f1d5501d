"""The serving app: ``/ping``, ``/version`` and ``/invocations`` over the model now held.

``ModelHolder`` keeps one immutable ``Served`` at a time; a request takes it once, so a
swap (one reference assignment) never changes the model under a request in flight.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cairn.domain.codec import format_time
from cairn.errors import CairnError, InvalidParameter, PayloadTooLarge, Unavailable
from cairn.serving.loaders import Predictor
from cairn.serving.protocol import parse_invocation

MAX_BODY = 10 * 1024 * 1024  # bytes of one /invocations body


@dataclass(frozen=True, slots=True)
class Served:
    model: str
    version: int
    alias: str | None
    predictor: Predictor
    loaded_at: datetime

    def describe(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "uri": f"models:/{self.model}/{self.version}",
            "file": self.predictor.path,
            "format": self.predictor.kind,
            "loaded_at": format_time(self.loaded_at),
        }


class ModelHolder:
    def __init__(self) -> None:
        self._served: Served | None = None
        self._lock = threading.Lock()  # one swap at a time; readers take no lock

    @property
    def current(self) -> Served | None:
        return self._served

    def swap(self, served: Served) -> Served | None:
        with self._lock:
            old, self._served = self._served, served
        return old


def _error(exc: CairnError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite(value: Any) -> Any:
    """Predictions as JSON can carry them: NaN and infinities (which JSON lacks) as null."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def create_serving_app(holder: ModelHolder, *, max_body: int = MAX_BODY) -> FastAPI:
    app = FastAPI(title="cairn serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(CairnError)
    async def on_error(_request: Request, exc: CairnError) -> JSONResponse:
        return _error(exc)

    @app.get("/ping")
    def ping() -> JSONResponse:
        if holder.current is None:
            return _error(Unavailable("no model loaded yet"))
        return JSONResponse({"status": "ok"})

    @app.get("/version")
    def version() -> JSONResponse:
        served = holder.current
        if served is None:
            return _error(Unavailable("no model loaded yet"))
        return JSONResponse(served.describe())

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        served = holder.current  # taken once: a swap now does not touch this request
        if served is None:
            raise Unavailable("no model loaded yet")
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if kind != "application/json":
            raise InvalidParameter(f"send application/json, not {kind!r}")
        raw = await _read_body(request, max_body)
        try:
            body = json.loads(raw, parse_constant=_no_constant)
        except ValueError as exc:
            raise InvalidParameter(f"the body is not JSON: {exc}") from None
        columns, rows = parse_invocation(body)
        # the model's work runs in a worker thread, not on the event loop
        predictions = await asyncio.to_thread(served.predictor.predict, columns, rows)
        return JSONResponse({"predictions": _finite(predictions)})

    return app
