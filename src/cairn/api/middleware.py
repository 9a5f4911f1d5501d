"""ASGI middleware: the HTTP hardening every request goes through.

From the outside in (``install_hardening`` adds them)::

    SecurityHeaders   security headers on every response (errors, 404, 405, 413, 500 too);
                      ``Cache-Control: no-store`` on API and JSON responses
    AllowedHosts      Host header allow-list against DNS rebinding (400 otherwise)
    CORSMiddleware    only when ``cors_origins`` is set: those exact origins, no credentials
    BodyLimit         413 for bodies over the JSON limit, before reading them when declared
    NoNulInUrl        400 for a NUL (%00) in the path or query string
    JsonOnly          415 for a body that is not JSON on a JSON route

Every refusal is the one error body, ``{"error_code", "message"}``, built by
``cairn.api.errors.error_response``.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.api.errors import cairn_error_response, error_response
from cairn.errors import CairnError, InvalidParameter, PayloadTooLarge, UnsupportedMediaType

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# JSON is data, never a document: nothing in it may load, run or be framed.
JSON_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
API_PREFIXES = ("/api/", "/ajax-api/")
JSON_PREFIXES = (
    "/api/v1/",
    "/api/2.0/mlflow/",
    "/ajax-api/2.0/mlflow/",
    "/api/3.0/mlflow/",
    "/ajax-api/3.0/mlflow/",
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Probes (load balancers, orchestrators) address these by IP; they reveal nothing.
HOST_CHECK_EXEMPT = frozenset({"/health", "/ready"})
CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Upload-Offset", "Range"]
CORS_EXPOSED = ["ETag", "Content-Range", "Content-Disposition", "Repr-Digest", "Accept-Ranges"]


def install_hardening(
    app: Starlette,
    *,
    max_request_bytes: int,
    allowed_hosts: Iterable[str],
    cors_origins: Iterable[str] = (),
) -> None:
    """Add the stack drawn in the module docstring (``add_middleware`` wraps, so the
    innermost goes first)."""
    app.add_middleware(JsonOnly)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(BodyLimit, limit=max_request_bytes, streamed=is_upload_path)
    origins = list(cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(AllowedHosts, rules=HostRules(allowed_hosts))  # raises on a bad entry
    app.add_middleware(SecurityHeaders)


class _TooLarge(Exception):
    pass


async def _refuse(error: CairnError, scope: Scope, receive: Receive, send: Send) -> None:
    await cairn_error_response(error)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


# -- which routes take what ------------------------------------------------------------

_UPLOAD_PATH = re.compile(r"/api/v1/(models/[^/]+/versions/[^/]+/blobs/[^/]+|uploads/[^/]+)")
_BATCH_PATH = re.compile(r"/api/v1/models/[^/]+/versions/[^/]+/blobs")


def is_upload_path(path: str) -> bool:
    """Routes that stream file bytes: bounded by the file limits, not the JSON limit."""
    return _UPLOAD_PATH.fullmatch(path) is not None


def is_json_path(path: str) -> bool:
    """Routes whose request bodies are JSON: the native and MLflow-compatible APIs, except
    the upload routes (octet-stream) and the batch upload (framed blobs, bounded by the
    request limit like JSON). The read-only ``mlflow-artifacts`` routes are not among
    them: a write there answers its own 405 whatever the body is."""
    return (
        path.startswith(JSON_PREFIXES)
        and not is_upload_path(path)
        and _BATCH_PATH.fullmatch(path) is None
    )


def is_json_media_type(value: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters allowed."""
    media = value.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


# -- 413 -------------------------------------------------------------------------------


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before reading them when declared.

    Paths for which ``streamed(path)`` is true are exempt: they stream to the blob store,
    which enforces the declared size itself. A body without a declared length (chunked) is
    counted as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int, streamed: Callable[[str], bool]) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streamed(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _refuse(self._error(), scope, receive, send)
            return
        seen = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not started:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own answer to a body it could not read (FastAPI: a 400)
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _refuse(self._error(), scope, receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.limit} bytes")


# -- 415 -------------------------------------------------------------------------------


class JsonOnly:
    """A request with a body on a JSON route must say ``Content-Type: application/json``.

    Besides clear errors, this closes the door to cross-site "simple" requests: a browser
    sends ``text/plain``, form or multipart bodies to any origin without a preflight, but
    never a JSON content type.
    """

    def __init__(self, app: ASGIApp, applies: Callable[[str], bool] = is_json_path) -> None:
        self.app = app
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in BODY_METHODS
            and self.applies(scope.get("path", ""))
            and self._has_body(scope)
        ):
            raw = _header(scope, b"content-type")
            content_type = raw.decode("latin-1") if raw is not None else ""
            if not is_json_media_type(content_type):
                await _refuse(self._error(scope, content_type), scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _has_body(scope: Scope) -> bool:
        if _header(scope, b"transfer-encoding") is not None:
            return True
        declared = _header(scope, b"content-length")
        return declared is not None and declared.strip() not in (b"", b"0")

    @staticmethod
    def _error(scope: Scope, content_type: str) -> UnsupportedMediaType:
        got = f"Content-Type {content_type[:100]!r}" if content_type else "no Content-Type"
        return UnsupportedMediaType(
            f"{scope.get('method')} {scope.get('path')} takes a JSON body, sent with "
            f"Content-Type: application/json; the request had {got}"
        )


# -- NUL in the URL -----------------------------------------------------------------


class NoNulInUrl:
    """400 for a NUL (``%00``) in the path or the query string.

    No Cairn identifier, path, filter or token may hold one, and PostgreSQL cannot even
    compare text with it; refusing it here keeps every lookup from meeting it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
        ):
            error = InvalidParameter(
                "the request URL contains a NUL character (%00); no name, path, filter or "
                "token may hold one"
            )
            await _refuse(error, scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- Host allow-list -------------------------------------------------------------------

_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def parse_host(value: str) -> str | None:
    """The host of a Host header (or an allow-list entry), lower-cased, without port,
    brackets or a trailing dot; ``None`` when it is not a host name or an IP address."""
    value = value.strip().lower()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        value = inside
    elif value.count(":") == 1:
        value, _, port = value.partition(":")
        if not re.fullmatch(r"\d{1,5}", port):
            return None
    if ":" in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return None
    value = value.removesuffix(".")
    return value if value and len(value) <= 253 and _NAME.fullmatch(value) else None


class HostRules:
    """An allow-list of hosts: names, IP addresses, ``*.domain`` suffix patterns, or ``*``
    for any. Raises ``ValueError`` for an entry that is none of these."""

    def __init__(self, hosts: Iterable[str]) -> None:
        entries = [h.strip() for h in hosts if h.strip()]
        self.any = "*" in entries
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for entry in entries:
            if entry == "*":
                continue
            if entry.startswith("*."):
                suffix = parse_host(entry[2:])
                if suffix is None:
                    raise ValueError(f"allowed host pattern {entry!r} is not *.<domain>")
                self.suffixes.append("." + suffix)
                continue
            host = parse_host(entry)
            if host is None:
                raise ValueError(f"allowed host {entry!r} is not a host name or IP address")
            self.exact.add(host)

    def allows(self, header: str) -> bool:
        if self.any:
            return True
        host = parse_host(header)
        if host is None:
            return False
        return host in self.exact or any(host.endswith(s) for s in self.suffixes)


class AllowedHosts:
    """Answer only requests whose Host header names this server (DNS rebinding defence).

    A page on ``evil.example`` whose name is re-pointed at 127.0.0.1 reaches a loopback
    Cairn with ``Host: evil.example``; refusing unknown hosts keeps it out. Paths in
    ``exempt`` (health probes) are answered whatever their Host.
    """

    def __init__(
        self, app: ASGIApp, rules: HostRules, exempt: Iterable[str] = HOST_CHECK_EXEMPT
    ) -> None:
        self.app = app
        self.rules = rules
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and not self.rules.any
            and scope.get("path", "") not in self.exempt
        ):
            raw = _header(scope, b"host")
            header = raw.decode("latin-1") if raw is not None else ""
            if not self.rules.allows(header):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                shown = f"Host {header[:100]!r}" if header else "no Host header"
                error = InvalidParameter(
                    f"this server does not answer to {shown}; the host names it serves are "
                    "set by CAIRN_ALLOWED_HOSTS (see docs/security.md)"
                )
                await _refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- response headers ------------------------------------------------------------------


class SecurityHeaders:
    """Security headers on every response, and ``no-store`` + a closed CSP on JSON and API
    responses that set no caching of their own (downloads do).

    Being inside Starlette's outermost error middleware, it also answers an unexpected
    exception itself (through the app's own 500 handler), so a 500 carries the headers too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith(API_PREFIXES)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                content_type = next(
                    (bytes(v) for k, v in headers if bytes(k).lower() == b"content-type"), b""
                )
                if api or is_json_media_type(content_type.decode("latin-1")):
                    headers += [(k, v) for k, v in JSON_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if not started:
                await self._internal_error(exc, scope, receive, send_with_headers)
            raise  # the server logs it; the error middleware sees the response has started

    @staticmethod
    async def _internal_error(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with the app's own 500 handler (the one error body), else a plain 500."""
        handler = getattr(scope.get("app"), "exception_handlers", {}).get(Exception)
        if handler is not None and inspect.iscoroutinefunction(handler):
            response = await handler(Request(scope), exc)
        else:
            response = error_response(
                500, "INTERNAL_ERROR", f"internal error: {type(exc).__name__}"
            )
        await response(scope, receive, send)
