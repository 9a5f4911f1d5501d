"""The common case of a request, without FastAPI's per-request machinery.

FastAPI prepares each request generically: it walks the route's dependency tree, builds
and merges value and error dicts for every parameter, checks the body's media type and
decodes it through a model field. On this 2-core machine that is about 100 µs of a point
read's 350 µs of server CPU. ``LeanRoute`` (FastAPI's documented ``route_class`` hook)
compiles each route's endpoint signature once into a plan and runs it directly:

- a dependency that takes only the ``Request`` (``Service``, ``Caller``) is awaited with it;
- path, query and header parameters are validated by a pydantic ``TypeAdapter`` of the
  very annotation FastAPI validates them with (``Query``/``Header`` constraints included),
  defaults taken from the signature as FastAPI takes them;
- a JSON body is decoded and validated by the parameter's model.

The plan only ever takes the common case. Whenever it would have to answer anything but
the endpoint's own result (a missing or invalid parameter, a body that is absent, not
JSON or not the model), it declines and the request goes the usual way, FastAPI's
handler, with the same ``Request`` (its body already read is kept): errors are worded
in one place, ``api/errors.py``. Authentication runs first, as it does the usual way
(its failures are errors of their own, raised, not declined). A route whose endpoint
takes anything else (``Request``, cookies, forms, files, a dependency with parameters or
a ``yield``), returns something other than a ``Response``, or does not take the caller,
is always served the usual way. The route's own dependencies run first, when they too
take the request alone.

Dependencies given to ``include_router`` are not seen by a route's handler with FastAPI
0.165 (older releases copy them into the route); the app includes these routers with
authentication only, which the plan runs itself since it serves only endpoints that take
the caller (``app.py``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from enum import Enum
from functools import cached_property
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi import APIRouter, Request, params
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cairn.api.auth import authenticate
from cairn.api.middleware import is_json_media_type

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class Decline(Exception):
    """The request needs something the plan does not do: it goes the usual way."""


@dataclass(frozen=True, slots=True)
class _Dependency:
    name: str  # the endpoint's parameter; "" for a dependency of the route itself
    call: Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    where: str  # "path", "query" or "header"
    key: str  # its name there
    adapter: TypeAdapter[Any]
    required: bool
    default: Any
    many: bool  # a list: every occurrence in the query string


@dataclass(frozen=True, slots=True)
class _Body:
    name: str
    model: type[BaseModel]


@dataclass(frozen=True, slots=True)
class Plan:
    endpoint: Callable[..., Any]
    is_async: bool
    dependencies: tuple[_Dependency, ...]
    params: tuple[_Param, ...]
    body: _Body | None

    async def arguments(self, request: Request) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for dependency in self.dependencies:
            value = await dependency.call(request)
            if dependency.name:
                values[dependency.name] = value
        for param in self.params:
            values[param.name] = _value(param, request)
        if self.body is not None:
            values[self.body.name] = await _body(self.body, request)
        return values

    async def run(self, values: dict[str, Any]) -> Response:
        if self.is_async:
            response = await self.endpoint(**values)
        else:
            response = await run_in_threadpool(self.endpoint, **values)
        if not isinstance(response, Response):  # the plan checked the annotation
            raise TypeError(f"{self.endpoint.__qualname__} returned {type(response).__name__}")
        return response


def _value(param: _Param, request: Request) -> Any:
    if param.where == "path":
        raw: Any = request.path_params.get(param.key)
    elif param.where == "header":
        raw = request.headers.get(param.key)
    elif param.many:
        raw = request.query_params.getlist(param.key) or None
    else:
        raw = request.query_params.get(param.key)
    if raw is None:
        if param.required:
            raise Decline
        return param.default
    try:
        return param.adapter.validate_python(raw)
    except ValidationError:
        raise Decline from None


async def _body(body: _Body, request: Request) -> BaseModel:
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise Decline
    raw = await request.body()  # kept on the request should the usual way need it
    if not raw:
        raise Decline
    try:
        return body.model.model_validate(json.loads(raw))
    # JSONDecodeError is a ValueError; a body nested deeper than the decoder recurses
    # raises RecursionError, which FastAPI's usual way answers with a 400
    except (ValueError, RecursionError, ValidationError):
        raise Decline from None


class LeanRoute(APIRoute):
    """An ``APIRoute`` whose requests take the endpoint's plan when it has one."""

    enabled = True  # False: every request goes the usual way (tests compare the two)

    @cached_property
    def plan(self) -> Plan | None:
        return plan_for(self)

    def get_route_handler(self) -> Handler:
        usual = super().get_route_handler()
        plan = self.plan
        if plan is None:
            return usual

        async def handler(request: Request) -> Response:
            if not LeanRoute.enabled:
                return await usual(request)
            try:
                values = await plan.arguments(request)
            except Decline:
                return await usual(request)
            return await plan.run(values)

        return handler


def lean_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes are ``LeanRoute``s."""
    return APIRouter(route_class=LeanRoute, **kwargs)


def plan_for(route: APIRoute) -> Plan | None:
    """The plan of ``route``'s endpoint, or None when it must always go the usual way."""
    endpoint = route.endpoint
    if not _returns_response(endpoint):
        return None
    hints = get_type_hints(endpoint, include_extras=True)
    path_names = set(route.param_convertors)
    dependencies: list[_Dependency] = []
    for given in route.dependencies:  # the route's own, run for their effect, first
        call = _request_only(given.dependency)
        if call is None:
            return None
        dependencies.append(_Dependency("", call))
    found: list[_Param] = []
    body: _Body | None = None
    for name, parameter in inspect.signature(endpoint).parameters.items():
        annotation = hints.get(name, parameter.annotation)
        base, info = _split(annotation)
        if isinstance(info, params.Depends):
            call = _request_only(info.dependency)
            if call is None:
                return None
            dependencies.append(_Dependency(name, call))
        elif isinstance(base, type) and issubclass(base, BaseModel) and info is None:
            if body is not None:
                return None  # several bodies embed: FastAPI's business
            body = _Body(name, base)
        else:
            param = _param(name, parameter, annotation, info, path_names)
            if param is None:
                return None
            found.append(param)
    if not any(d.call is authenticate for d in dependencies):
        return None
    # authentication first, as the usual way runs the routers' own dependency first
    dependencies.sort(key=lambda d: d.call is not authenticate)
    return Plan(
        endpoint=endpoint,
        is_async=inspect.iscoroutinefunction(endpoint),
        dependencies=tuple(dependencies),
        params=tuple(found),
        body=body,
    )


def _param(
    name: str, parameter: inspect.Parameter, annotation: Any, info: Any, path_names: set[str]
) -> _Param | None:
    if isinstance(parameter.default, params.Param):
        return None  # declared the old way (``x: int = Query(3)``): FastAPI's business
    base, _ = _split(annotation)
    if name in path_names and (info is None or isinstance(info, params.Path)):
        where, key = "path", name
    elif isinstance(info, params.Header):
        where, key = "header", (info.alias or name.replace("_", "-")).lower()
    elif isinstance(info, params.Query) or (info is None and _scalar_or_list(base)):
        where, key = "query", (info.alias if info is not None and info.alias else name)
    else:
        return None
    required = parameter.default is inspect.Parameter.empty
    return _Param(
        name=name,
        where=where,
        key=key,
        adapter=TypeAdapter(annotation),  # its Annotated metadata holds the constraints
        required=required,
        default=None if required else parameter.default,
        many=_is_list(base),
    )


def _split(annotation: Any) -> tuple[Any, Any]:
    """(type, FastAPI's ``params`` object or None) of a possibly ``Annotated`` hint."""
    if get_origin(annotation) is not Annotated:
        return annotation, None
    base, *extras = get_args(annotation)
    found = [e for e in extras if isinstance(e, params.Depends | params.Param | params.Body)]
    return base, (found[-1] if found else None)


def _request_only(dependency: Any) -> Callable[[Request], Awaitable[Any]] | None:
    """``dependency`` if it is a plain coroutine function of the request alone."""
    if not inspect.iscoroutinefunction(dependency):
        return None
    hints = get_type_hints(dependency)
    names = list(inspect.signature(dependency).parameters)
    if len(names) != 1 or hints.get(names[0]) is not Request:
        return None
    return dependency  # type: ignore[no-any-return]


_SCALARS = (str, int, float, bool, date, Enum)  # datetime is a date


def _scalar_or_list(annotation: Any) -> bool:
    """Types FastAPI reads from the query string without being told: scalars, dates,
    enums, their lists and optionals."""
    for arg in _members(annotation):
        if arg is type(None):
            continue
        if get_origin(arg) is list:
            (item,) = get_args(arg) or (str,)
            if not _scalar_or_list(item) or _is_list(item):
                return False
            continue
        if not (isinstance(arg, type) and issubclass(arg, _SCALARS)):
            return False
    return True


def _is_list(annotation: Any) -> bool:
    return any(get_origin(arg) is list for arg in _members(annotation))


def _members(annotation: Any) -> tuple[Any, ...]:
    base, _ = _split(annotation)
    args = get_args(base)
    return args if args and get_origin(base) is not list else (base,)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    returned = get_type_hints(endpoint).get("return")
    return isinstance(returned, type) and issubclass(returned, Response)
