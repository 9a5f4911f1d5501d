"""Request plumbing for the UI: who is signed in, what a form may post, and the headers,
redirects and error pages every UI answer goes through (``UiRoute``).

A session is the API's login session (``service.login``): its secret in the HttpOnly,
SameSite=Strict ``cairn_session`` cookie, and, for the UI's forms, its CSRF token in a
second cookie of the same kind that pages copy into their forms. An unsafe request must
carry that token in its form (the service checks it against the session) and, when the
browser names an ``Origin`` or ``Referer``, come from this site.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from cairn.domain import tokens
from cairn.domain.access import Actor
from cairn.errors import CairnError, InvalidParameter, NotFound, PermissionDenied, Unauthenticated
from cairn.service.registry import RegistryService
from cairn.ui.render import render

log = logging.getLogger("cairn.ui")

SESSION_COOKIE = tokens.SESSION_COOKIE
CSRF_COOKIE = "cairn_csrf"
CSRF_FIELD = "csrf_token"
HOME = "/models"
SIGN_IN = "/login"
ANONYMOUS = Actor("anonymous")
MAX_FORM_BYTES = 16 << 10
# Pages are documents of this site only: no script, no frames, no foreign anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
UI_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Limiter(Protocol):
    """What the UI needs of ``app.state.limiter`` (the API's rate limiter)."""

    def guard(self, *keys: str, denial: Mapping[str, Any]) -> AbstractContextManager[None]: ...


class SignInRequired(Exception):
    """No valid session: the answer is a redirect to the sign-in page."""

    def __init__(self, *, forget: bool = False) -> None:
        super().__init__("sign in required")
        self.forget = forget  # the cookies name a session that is gone: clear them


def service_of(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.service
    return service


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def request_id_of(request: Request) -> str:
    found: str | None = getattr(request.state, "request_id", None)
    if found is None:
        found = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        request.state.request_id = found
    return found


def authenticate(request: Request, csrf: str | None = None) -> Actor:
    """The signed-in caller, or SignInRequired; ``csrf`` (unsafe requests) is checked by
    the service against the session. Failures count against the source, as the API's do."""
    cached: Actor | None = getattr(request.state, "actor", None)
    if cached is not None and csrf is None:
        return cached
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInRequired
    service = service_of(request)
    limiter: Limiter = request.app.state.limiter
    client = client_of(request)
    request_id = request_id_of(request)
    try:
        with limiter.guard(f"ip:{client}", denial={"action": "authenticate", "target": None}):
            actor = service.authenticate_session(secret, csrf, request_id=request_id, client=client)
    except Unauthenticated as exc:
        record_denial(request, exc)
        raise SignInRequired(forget=True) from None
    request.state.actor = actor
    return actor


def signed_in(request: Request) -> Actor:
    """The dependency of every page but sign-in's (run in the thread pool)."""
    return authenticate(request)


def record_denial(request: Request, exc: CairnError) -> None:
    """Append a refused attempt to the audit log, as the API does; never raises."""
    if exc.denial is None:
        return
    actor: Actor = getattr(request.state, "actor", None) or ANONYMOUS
    actor = dataclasses.replace(
        actor,
        request_id=actor.request_id or request_id_of(request),
        client=actor.client or client_of(request),
    )
    try:
        service_of(request).record_denial(actor, exc.denial)
    except Exception:
        log.exception("could not record a denied %r in the audit log", exc.denial)


# -- forms -----------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body: each field's first value."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await request.body()
    if not body:
        return {}
    if media != "application/x-www-form-urlencoded":
        raise InvalidParameter("expected a form (application/x-www-form-urlencoded)")
    if len(body) > MAX_FORM_BYTES:
        raise InvalidParameter("the form is too large")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidParameter("the form is not UTF-8") from None
    fields = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    return {key: values[0] for key, values in fields.items()}


def check_origin(request: Request) -> None:
    """Refuse a post another site made: its ``Origin`` (or, without one, ``Referer``), when
    the browser sends one, must be this site (the host the request was sent to)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return  # not a browser, or one that names no source: the CSRF token decides
    parts = urlsplit(source)
    host = request.headers.get("host", "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.netloc.lower() != host:
        # on record as a CSRF refusal is, by anonymous; of the other site only its origin
        # (a Referer's path and query are that site's, and may hold anything)
        where = f"{parts.scheme}://{parts.netloc}" if parts.scheme else source
        raise PermissionDenied(
            "this form was posted from another site; open the page on this server and try again",
            denial={
                "action": "authenticate",
                "reason": "a form posted from another site",
                "origin": where[:256],
            },
        )


async def form_caller(request: Request) -> tuple[Actor, dict[str, str]]:
    """The signed-in caller of an unsafe form post, and the form: same-site, with the
    session's CSRF token."""
    check_origin(request)
    form = await read_form(request)
    csrf = form.get(CSRF_FIELD, "")
    if not request.cookies.get(SESSION_COOKIE):
        raise SignInRequired
    try:
        actor = await run_in_threadpool(authenticate, request, csrf)
    except PermissionDenied as exc:  # the service's words name the API's header
        raise PermissionDenied(
            "this form's CSRF token is missing or wrong (an old page, or another site "
            "posted it); reload the page and try again",
            denial=exc.denial,  # on record as the API's CSRF refusals are
        ) from None
    return actor, form


async def sign_out_caller(request: Request) -> Actor:
    """The caller of a sign-out post: ``form_caller``'s, or, for a session opened by the
    API's login (``POST /api/v1/login``), whose CSRF token went to that caller and never
    into this site's cookie, so its pages cannot copy it into the form: a post whose
    ``Origin`` is this site. Every current browser names the origin of a form post, and
    the session cookie (SameSite=Strict) never comes with another site's post anyway."""
    if request.cookies.get(CSRF_COOKIE) or not request.cookies.get(SESSION_COOKIE):
        actor, _form = await form_caller(request)
        return actor
    if not request.headers.get("origin"):
        raise PermissionDenied(
            "this session was opened by the API's login, so its sign-out must come from a "
            "browser that names the page's origin; sign out with POST /api/v1/logout, or "
            "sign in on this page to have a sign-out form of its own"
        )
    check_origin(request)
    await read_form(request)  # the same limits on the body as every form's
    return await run_in_threadpool(authenticate, request)


# -- where to go -----------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """A path on this site to go to after signing in: ``value`` if it is one, else home.
    Never another site (``//host``, ``/\\host``, a scheme), never a control character."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value


def sign_in_redirect(request: Request, *, forget: bool) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = request.method in ("GET", "HEAD")  # a form post cannot be repeated by a redirect
    target = f"{SIGN_IN}?{urlencode({'next': here})}" if back else SIGN_IN
    response = RedirectResponse(target, status_code=303)
    if forget:
        forget_session(response)
    return response


def set_session(request: Request, response: Response, session: Mapping[str, Any]) -> None:
    """The cookies of a new session: the same flags as the API login's."""
    for name, value in ((SESSION_COOKIE, session["session"]), (CSRF_COOKIE, session["csrf_token"])):
        response.set_cookie(
            name,
            value,
            max_age=int(session["expires_in"]),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )


def end_replaced_session(request: Request) -> None:
    """Revoke the session whose cookie a new sign-in replaces (another user on a shared
    browser, say), so it does not stay valid with nobody left to sign it out. A cookie
    that is no session (stale, forged) is left alone; never raises."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return
    service = service_of(request)
    client, request_id = client_of(request), request_id_of(request)
    try:
        actor = service.authenticate_session(secret, None, request_id=request_id, client=client)
        service.logout(actor, secret)
    except Unauthenticated:
        return
    except CairnError:
        log.exception("could not end the session a sign-in replaced")


def forget_session(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")


# -- every answer ----------------------------------------------------------------------


def show(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``template`` with ``context``, the signed-in caller (if any) and, for the
    sign-out form, the session's CSRF token."""
    viewer: Actor | None = getattr(request.state, "actor", None)
    csrf = request.cookies.get(CSRF_COOKIE, "") if viewer is not None else ""
    html = render(template, {**context, "viewer": viewer, "csrf_token": csrf})
    return HTMLResponse(html, status_code=status)


ERROR_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    429: "Too many attempts",
}


def error_page(request: Request, exc: CairnError) -> Response:
    """A Cairn error as a page: its status, its code, its message (escaped like all text)."""
    status = exc.http_status
    title = ERROR_TITLES.get(status, "Something went wrong" if status >= 500 else "Refused")
    response = show(request, "error.html", status, title=title, error=exc)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def wants_page(request: Request) -> bool:
    """A browser asking for a page outside the APIs (which answer JSON whoever asks)."""
    path = request.url.path
    api = path.startswith(("/api/", "/ajax-api/")) or path in ("/health", "/ready")
    return not api and "text/html" in request.headers.get("accept", "")


def not_found_page(request: Request) -> Response:
    """The page for an address the server does not know."""
    response = error_page(request, NotFound("there is no page at this address"))
    response.headers.update(UI_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


class UiRoute(APIRoute):
    """A UI route: a Cairn error becomes an HTML error page (its status, its message), a
    missing session a redirect to sign in, and every answer carries ``UI_HEADERS`` and,
    unless it set its own caching, ``Cache-Control: no-store``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = sign_in_redirect(request, forget=exc.forget)
            except CairnError as exc:
                await run_in_threadpool(record_denial, request, exc)
                response = await run_in_threadpool(error_page, request, exc)
            response.headers.update(UI_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return run
