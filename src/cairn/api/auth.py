"""Authentication: the one dependency every route but an explicit allow-list goes through.

A caller proves who they are with ``Authorization: Bearer <token>`` (an API token; the
MLflow client sends ``MLFLOW_TRACKING_TOKEN`` this way), ``Authorization: Basic`` whose
password is a token (MLflow's ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), or the UI's
session cookie, whose unsafe requests must carry the session's CSRF token in
``X-CSRF-Token``. Tokens in query strings are refused. Failed attempts (those refused
unread too: a query-string token, a malformed header) are audited and limited per client
address (tokens) and per address and account (logins): 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import Depends, Request

from cairn.api import docs_page
from cairn.api.offload import brief
from cairn.domain import tokens
from cairn.domain.access import Actor
from cairn.errors import RateLimited, Unauthenticated
from cairn.service.registry import RegistryService

SESSION_COOKIE = tokens.SESSION_COOKIE
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "auth", "session"})
# routes that answer without authentication: liveness, readiness, logging in, the API schema
# and the page that shows it with its files
PUBLIC_PATHS = frozenset(
    {"/health", "/ready", "/api/v1/login", "/api/v1/openapi.json", *docs_page.PATHS}
)


class RateLimiter:
    """Failed authentications per key in a sliding window; past the limit, refuse for a while.

    In-process: each server worker counts its own failures (documented in docs/security.md).
    """

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                seen = self._prune(key, now)
                if seen is not None and len(seen) >= self.limit:
                    wait = max(1, int(seen[0] + self.window_s - now) + 1)
                    error = RateLimited(f"too many failed authentications; try again in {wait} s")
                    error.retry_after = wait
                    raise error

    @contextmanager
    def guard(self, *keys: str, denial: Mapping[str, Any]) -> Iterator[None]:
        """Refuse (429) if ``keys`` failed too often; count an Unauthenticated raised inside
        against them and re-raise it carrying its own denial, else ``denial`` (what the
        audit log records)."""
        self.check(*keys)
        try:
            yield
        except Unauthenticated as exc:
            self.fail(*keys)
            raise Unauthenticated(exc.message, denial=exc.denial or denial) from None

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
                for key in list(self._failures)[:50_000]:
                    del self._failures[key]

    def _prune(self, key: str, now: float) -> deque[float] | None:
        seen = self._failures.get(key)
        if seen is None:
            return None
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if not seen:
            del self._failures[key]
            return None
        return seen


def _query_secret(request: Request) -> str | None:
    """A credential sent in the query string (refused: URLs end up in logs), or None."""
    for key, value in request.query_params.multi_items():
        if key.lower() in QUERY_TOKEN_NAMES:
            return value
    return None


def _denial(secret: str | None) -> dict[str, Any]:
    """What the audit log records of a failed authentication: of the secret, only a Cairn
    token's first characters (public: listings show them); any other secret may be a
    password sent in a token's place, and none of it is recorded."""
    shown = tokens.display_prefix(secret) if secret and secret.startswith(tokens.PREFIX) else None
    return {"action": "authenticate", "target": shown}


def _credentials(request: Request, query_secret: str | None) -> tuple[str, str] | None:
    """(kind, secret) from the request: ``api`` for bearer/basic, ``session`` for the cookie;
    None if it carries none. Credentials sent where or as none are read (``query_secret``,
    found in the query string; a malformed header) are refused: ``Unauthenticated``."""
    if query_secret is not None:
        raise Unauthenticated(
            "credentials in the query string are refused (they end up in logs); "
            "send Authorization: Bearer <token>"
        )
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return "api", value
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("malformed Basic credentials") from None
            return "api", decoded.partition(":")[2]
        if scheme.lower() in ("bearer", "basic"):
            raise Unauthenticated(
                f"the Authorization header says {scheme} but has no credentials; "
                "send Authorization: Bearer <token>"
            )
        raise Unauthenticated("unsupported Authorization scheme; use Bearer <token>")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return "session", cookie
    return None


async def authenticate(request: Request) -> Actor:
    """Who is calling; raises Unauthenticated (401) or RateLimited (429)."""
    cached: Actor | None = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    service: RegistryService = request.app.state.service
    limiter: RateLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    request_id = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
    request.state.request_id = request_id
    # per source only: token prefixes are not secret (listings, the audit log), so counting
    # per prefix would let anyone lock a real token out by guessing against its prefix
    source = f"ip:{client}"
    # credentials refused unread (in the query string, malformed) are failed attempts too:
    # counted against the source and audited like a wrong token, so probing is throttled
    # and shows in the log
    query_secret = _query_secret(request)
    # what the audit log records if the attempt fails: updated once the secret is read
    denial = _denial(query_secret)
    csrf = None if request.method in SAFE_METHODS else request.headers.get(CSRF_HEADER, "")
    with limiter.guard(source, denial=denial):
        found = _credentials(request, query_secret)
        if found is not None:
            kind, secret = found
            denial.update(_denial(secret))

            def check() -> Actor:
                if kind == "session":
                    return service.authenticate_session(
                        secret, csrf, request_id=request_id, client=client
                    )
                return service.authenticate(secret, request_id=request_id, client=client)

            actor = await brief(service, check)
    if found is None:  # no credentials at all: not an attempt, so not counted
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    request.state.actor = actor
    return actor


AUTHENTICATED = [Depends(authenticate)]
