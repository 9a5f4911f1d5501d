"""Requests for a ``LeanRoute`` with a plan, served without Starlette's routing.

FastAPI (0.165) finds a request's route by asking every route of every included router in
turn, each time saving and restoring keys of the request's scope, and does it twice (to
pick the router, then inside it); the route it finds then runs inside two exception
wrappers and two exit stacks. For a point read that was some 40% of the server's CPU
beyond the work itself. ``FastLane`` is the innermost middleware: it matches the path
against the plan routes' own compiled patterns (in the order FastAPI tries them, a literal
prefix checked before each pattern), runs the plan (``api/lean.py``) and sends its answer.

Anything else goes the usual way, untouched: a path no plan route matches first, a route
without a plan, a request whose plan declines (the body it read is handed on), a
``root_path``. Errors raised by a plan meet the app's own exception handlers, looked up as
Starlette looks them up; an error with none (a bug) propagates to the outer middleware
that answers 500, as it would the usual way.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.api.lean import Decline, LeanRoute, Plan


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str  # as declared, prefix included: /api/v1/models/{name}
    literal: str  # the path up to its first parameter
    pattern: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    methods: frozenset[str]
    route: APIRoute
    plan: Plan | None


def entries(routers: Sequence[tuple[str, APIRouter]]) -> list[_Entry]:
    """Every route of ``routers`` (prefix, router), in the order FastAPI matches them."""
    found = []
    for prefix, router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{prefix}: the fast lane indexes APIRoutes only, not {route!r}")
            path = prefix + route.path
            pattern, _, convertors = compile_path(path)
            found.append(
                _Entry(
                    path=path,
                    literal=path.partition("{")[0],
                    pattern=pattern,
                    convertors=convertors,
                    methods=frozenset(route.methods or ()),
                    route=route,
                    plan=route.plan if isinstance(route, LeanRoute) else None,
                )
            )
    return found


class FastLane:
    def __init__(self, app: ASGIApp, *, routers: Sequence[tuple[str, APIRouter]]) -> None:
        self.app = app
        self.entries = entries(routers)
        self.prefixes = tuple({prefix for prefix, _ in routers})  # a quick "none of ours"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and LeanRoute.enabled and not scope.get("root_path"):
            found = self._find(scope["path"], scope["method"])
        if found is None:
            await self.app(scope, receive, send)
            return
        entry, path_params = found
        assert entry.plan is not None
        scope["path_params"] = path_params
        scope["endpoint"] = entry.route.endpoint
        scope["route"] = entry.route
        request = Request(scope, receive, send)
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            try:
                values = await entry.plan.arguments(request)
            except Decline:  # the usual way, which answers its own errors
                await self.app(scope, _replaying(request, receive), sending)
                return
            response = await entry.plan.run(values)
            await response(scope, receive, sending)  # a stream may fail before its start
        except Exception as exc:
            if started:
                raise  # too late for another answer: the outer middleware logs it
            await (await _handled(request, exc))(scope, receive, send)

    def _find(self, path: str, method: str) -> tuple[_Entry, dict[str, Any]] | None:
        """The first route that matches (path and method) if it has a plan."""
        if not path.startswith(self.prefixes):
            return None
        for entry in self.entries:
            if not path.startswith(entry.literal) or method not in entry.methods:
                continue
            match = entry.pattern.match(path)
            if match is None:
                continue
            if entry.plan is None:
                return None
            params = {k: entry.convertors[k].convert(v) for k, v in match.groupdict().items()}
            return entry, params
        return None


async def _handled(request: Request, exc: Exception) -> Response:
    """The app's handler's answer to ``exc``; ``exc`` itself when there is none but the
    catch-all, which the outer middleware runs (as Starlette's does)."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind is Exception:
            break
        handler = handlers.get(kind)
        if handler is not None:
            if inspect.iscoroutinefunction(handler):
                answer: Response = await handler(request, exc)
            else:
                answer = await run_in_threadpool(handler, request, exc)
            return answer
    raise exc


def _replaying(request: Request, receive: Receive) -> Receive:
    """``receive`` for the usual way: the body the plan already read, then ``receive``."""
    body: bytes | None = getattr(request, "_body", None)
    if body is None:
        return receive
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
