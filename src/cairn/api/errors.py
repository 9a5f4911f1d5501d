"""The one place where errors become HTTP responses: ``{"error_code", "message"}``."""

from __future__ import annotations

import dataclasses
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from cairn.api.deps import ANONYMOUS
from cairn.api.responses import FastJSONResponse
from cairn.domain.access import Actor
from cairn.errors import CairnError

log = logging.getLogger("cairn.api")

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_HTTP_CODES = {
    404: "ENDPOINT_NOT_FOUND",
    405: "ENDPOINT_NOT_FOUND",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
}


# Every 503 carries a Retry-After (RFC 9110 §10.2.3), so that a client or a proxy knows the
# failure is temporary and when to come back: an ``Unavailable`` names its own wait, and a
# 503 built here without one gets that same default.
RETRY_AFTER_S = 1


def error_response(
    status: int, error_code: str, message: str, *, retry_after: int | None = None
) -> JSONResponse:
    """The one error body, with ``Retry-After`` when given and on every 503."""
    body = {"error_code": error_code, "message": message}
    response = FastJSONResponse(body, status_code=status)
    if retry_after is None and status == 503:
        retry_after = RETRY_AFTER_S
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def cairn_error_response(exc: CairnError, status: int | None = None) -> JSONResponse:
    """The answer to a Cairn error: its status (or ``status``), body and headers."""
    status = exc.http_status if status is None else status
    response = error_response(status, exc.error_code, exc.message, retry_after=exc.retry_after)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cairn"'
    return response


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"unknown field '{where}'")
        elif kind == "missing":
            parts.append(f"missing value for required parameter '{where}'")
        elif kind == "json_invalid":
            parts.append("the request body is not valid JSON")
        else:
            parts.append(f"'{where}': {error.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


async def _record_denial(request: Request, exc: CairnError) -> None:
    """Append a refused attempt to the audit log; a failure to do so is logged, never
    raised, so the caller still gets the original error."""
    actor: Actor = getattr(request.state, "actor", None) or ANONYMOUS
    if actor.request_id is None or actor.client is None:
        actor = dataclasses.replace(
            actor,
            request_id=actor.request_id
            or getattr(request.state, "request_id", None)
            or request.headers.get("x-request-id"),
            client=actor.client or (request.client.host if request.client else None),
        )
    try:
        await run_in_threadpool(request.app.state.service.record_denial, actor, exc.denial)
    except Exception:
        log.exception("could not record a denied %r in the audit log", exc.denial)


def _allowed_methods(request: Request) -> str:
    """Every method the request's path answers (RFC 9110 asks a 405's ``Allow`` for them
    all; Starlette names only those of the first route that matched the path, and FastAPI
    makes a route per method). Found by matching the path again under each method."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (no route, a method the route does not take) in Cairn's shape."""
    code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
    message = str(exc.detail) if exc.detail else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    response = error_response(exc.status_code, code, message)
    response.headers.update(exc.headers or {})
    allowed = _allowed_methods(request) if exc.status_code == 405 else ""
    if allowed:
        response.headers["Allow"] = allowed
    return response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CairnError)
    async def _cairn(request: Request, exc: CairnError) -> JSONResponse:
        if exc.denial is not None:
            await _record_denial(request, exc)
        return cairn_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "INVALID_PARAMETER_VALUE", _describe_validation(exc))

    app.add_exception_handler(StarletteHTTPException, http_error_response)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "INTERNAL_ERROR", f"internal error: {type(exc).__name__}")
