"""The UI's routes: sign in and out, models, a model, a version, an alias's history, and
the version search (the deployment pages are in ``deployment_pages``). Each reads through
the service's use cases as the signed-in caller."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from cairn.domain.access import Actor
from cairn.domain.deployments import FeedbackSummary
from cairn.domain.lineage import LineageGraph, LineageInput
from cairn.domain.models import AliasEvent, ModelVersion, Page, RegisteredModel, Stage
from cairn.errors import InvalidParameter, NotFound, RateLimited, Unauthenticated
from cairn.ui.web import (
    HOME,
    SESSION_COOKIE,
    SIGN_IN,
    Limiter,
    SignInRequired,
    UiRoute,
    authenticate,
    check_origin,
    client_of,
    end_replaced_session,
    forget_session,
    read_form,
    record_denial,
    request_id_of,
    safe_next,
    service_of,
    set_session,
    show,
    sign_out_caller,
    signed_in,
)

Handler = TypeVar("Handler", bound=Callable[..., Any])
router = APIRouter(route_class=UiRoute, include_in_schema=False)


def page_route(path: str) -> Callable[[Handler], Handler]:
    """A GET route that answers HEAD too (browsers and link checkers send it; the server
    sends the headers only), as Starlette's own routes do and FastAPI's do not."""
    return router.api_route(path, methods=["GET", "HEAD"])


Viewer = Annotated[Actor, Depends(signed_in)]
PAGE_SIZE = 50
MAX_USER = 128  # as the API login takes them
MAX_PASSWORD = 1024
WRONG_CREDENTIALS = "wrong user name or password"  # as service.login says it
MODEL_ORDERS = (
    ("name ASC", "name, A to Z"),
    ("name DESC", "name, Z to A"),
    ("updated_at DESC", "recently updated"),
    ("created_at DESC", "recently created"),
)
VERSION_ORDERS = (
    ("", "model, newest version first"),
    ("created_at DESC", "recently created"),
    ("updated_at DESC", "recently updated"),
)


def _arg(request: Request, key: str) -> str:
    return request.query_params.get(key, "").strip()


# -- no session needed -------------------------------------------------------------------


@page_route("/")
def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


STATIC = {"cairn.css": "text/css", "cairn.svg": "image/svg+xml"}  # file → media type


@functools.cache
def _static(file: str) -> bytes:
    return (resources.files("cairn.ui") / "static" / file).read_bytes()


@page_route("/static/{file}")
def static(file: str) -> Response:
    """The stylesheet and the icon: the only files a page loads, all from this server."""
    media_type = STATIC.get(file)
    if media_type is None:
        raise NotFound(f"no static file {file!r}")
    headers = {"Cache-Control": "public, max-age=3600"}
    return Response(_static(file), media_type=media_type, headers=headers)


@page_route(SIGN_IN)
def sign_in_form(request: Request) -> Response:
    """The form; already signed in, where the user was going instead (a bookmark, the
    back button). A dead session gets the form, its cookies cleared."""
    target = safe_next(_arg(request, "next"))
    if request.cookies.get(SESSION_COOKIE):
        try:
            authenticate(request)
        except SignInRequired:
            response = show(request, "login.html", next=target, user="", error=None)
            forget_session(response)
            return response
        return RedirectResponse(target, status_code=303)
    return show(request, "login.html", next=target, user="", error=None)


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    """Check the password (service.login), set the session's cookies, go where the user was
    going. Exempt from the session's CSRF token (there is no session yet) but not from
    the origin check: another site cannot sign a browser in to an account of its choosing."""
    check_origin(request)
    form = await read_form(request)
    user, password = form.get("user", "").strip(), form.get("password", "")
    target = safe_next(form.get("next"))

    def refused(status: int, message: str) -> Response:
        return show(request, "login.html", status, next=target, user=user, error=message)

    # Wrong credentials are the form again with the message, a 200: a 401 must carry a
    # WWW-Authenticate challenge (RFC 9110, 15.5.2), and a sign-in form has none to offer.
    if not user or not password:
        return refused(400, "enter your user name and password")
    if len(user) > MAX_USER or len(password) > MAX_PASSWORD:
        return refused(200, WRONG_CREDENTIALS)  # no account has them: as any wrong ones
    limiter: Limiter = request.app.state.limiter
    client = client_of(request)
    keys = (f"ip:{client}", f"user:{user.casefold()}")
    service = service_of(request)

    def login() -> dict[str, object]:
        with limiter.guard(*keys, denial={"action": "login"}):
            return service.login(user, password, request_id=request_id_of(request), client=client)

    try:
        session = await run_in_threadpool(login)
    except Unauthenticated as exc:
        await run_in_threadpool(record_denial, request, exc)
        return refused(200, exc.message)
    except RateLimited as exc:
        response = refused(429, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    await run_in_threadpool(end_replaced_session, request)
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, session)
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    """End the session (revoked in the database, not only forgotten by the browser)."""
    actor = await sign_out_caller(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(service_of(request).logout, actor, secret)
    response = RedirectResponse(SIGN_IN, status_code=303)
    forget_session(response)
    return response


# -- pages -------------------------------------------------------------------------------


def _search_page(
    request: Request,
    template: str,
    orders: tuple[tuple[str, str], ...],
    search: Callable[[str | None, list[str] | None, str | None], Page[Any]],
) -> Response:
    """A filtered, ordered, paged list: ``search(filter, order_by, page_token)`` reads it;
    a filter, order or page token the service refuses is shown on the page (400)."""
    query, order, token = _arg(request, "filter"), _arg(request, "order"), _arg(request, "page")
    page: Page[Any] = Page([])
    error, status = None, 200
    try:
        page = search(query or None, [order] if order else None, token or None)
    except InvalidParameter as exc:
        error, status = exc.message, 400
    return show(
        request,
        template,
        status,
        page=page,
        filter=query,
        order=order,
        orders=orders,
        error=error,
        paged=bool(token),
    )


@page_route("/models")
def models(request: Request, actor: Viewer) -> Response:
    service = service_of(request)

    def search(query: str | None, order_by: list[str] | None, token: str | None) -> Page[Any]:
        return service.search_models(
            actor, query, order_by=order_by, max_results=PAGE_SIZE, page_token=token
        )

    return _search_page(request, "models.html", MODEL_ORDERS, search)


@page_route("/models/{name}")
def model(request: Request, name: str, actor: Viewer) -> Response:
    service = service_of(request)
    token = _arg(request, "page")

    def read() -> tuple[RegisteredModel, Page[ModelVersion], list[ModelVersion]]:
        found = service.get_model(actor, name)
        versions = service.list_versions(
            actor, name, max_results=PAGE_SIZE, page_token=token or None, files=False
        )
        staged = service.latest_versions_by_stage(actor, [name], files=False)
        return found, versions, next(iter(staged.values()), [])

    found, versions, staged = service.read_together(read)
    return show(
        request,
        "model.html",
        model=found,
        versions=versions,
        staged=[v for v in staged if v.stage is not Stage.NONE],
        paged=bool(token),
    )


@page_route("/models/{name}/versions/{version}")
def version(request: Request, name: str, version: str, actor: Viewer) -> Response:
    service = service_of(request)

    def read() -> tuple[ModelVersion, list[LineageInput], LineageGraph, list[FeedbackSummary]]:
        found = service.get_version(actor, name, version)
        inputs = service.list_inputs(actor, name, found.version)
        graph = service.lineage_graph(actor, name, found.version, direction="downstream", depth=1)
        return found, inputs, graph, service.feedback_summary(actor, name, found.version)

    found, inputs, graph, monitoring = service.read_together(read)
    return show(
        request,
        "version.html",
        version=found,
        inputs=inputs,
        derived=derived_versions(graph),
        served=[n.attrs for n in graph.nodes if n.id.startswith("deployment:")],
        monitoring=monitoring,
    )


def derived_versions(graph: LineageGraph) -> list[tuple[str, int, str]]:
    """(name, version, relation) of the versions derived straight from the graph's root."""
    nodes = {n.id: n for n in graph.nodes}
    return [
        (
            str(nodes[e.target].attrs["name"]),
            int(nodes[e.target].attrs["version"]),
            str(e.attrs.get("relation")),
        )
        for e in graph.edges
        if e.source == graph.root and e.kind == "model_version"
    ]


@page_route("/models/{name}/aliases/{alias}")
def alias(request: Request, name: str, alias: str, actor: Viewer) -> Response:
    service = service_of(request)

    def read() -> tuple[RegisteredModel, list[AliasEvent]]:
        history = service.alias_history(actor, name, alias)
        return service.get_model(actor, name), history

    found, history = service.read_together(read)
    return show(
        request,
        "alias.html",
        model=found,
        alias=alias,
        current=found.aliases.get(alias),
        history=history,
    )


@page_route("/versions")
def search_versions(request: Request, actor: Viewer) -> Response:
    service = service_of(request)

    def search(query: str | None, order_by: list[str] | None, token: str | None) -> Page[Any]:
        return service.search_versions(
            actor, query, order_by=order_by, max_results=PAGE_SIZE, page_token=token, files=False
        )

    return _search_page(request, "versions.html", VERSION_ORDERS, search)
