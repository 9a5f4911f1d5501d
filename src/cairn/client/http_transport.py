"""The SDK's HTTP transport: one API call, retried on transient failures, its answer
decoded or its error raised as Cairn's. Imports only ``errors``, the value and name rules
of ``domain``, httpx and how its connections move bytes (``connections``)."""

from __future__ import annotations

import contextlib
import json as jsonlib
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from cairn.client.connections import transport
from cairn.domain.codec import require_int
from cairn.domain.names import validate_alias, validate_key, validate_model_name
from cairn.domain.uris import parse_version_number
from cairn.errors import CairnError, InvalidParameter, Unavailable, error_from_response

# Cairn's answers worth another try: 503 (busy, read-only: with Retry-After), 429 (an
# address locked out after failed authentications: with Retry-After), and a proxy's 502/504
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# an object store's answers worth another try (S3 asks for them on SlowDown, InternalError)
STORE_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
# Methods whose second sending does what the first did (RFC 9110 §9.2.2)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures that show the request never reached the server: any call may be sent again
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
NOT_RUN_STATUSES = frozenset({429})  # refused before anything ran (the limiter)
# The longest one call waits between its attempts, in all. A server that asks for more
# (``Retry-After``: a read-only database's 10 s, a lockout's minute) is not waited for:
# the call fails at once with the server's error, which says when to try again.
RETRY_BUDGET_S = 30.0
_DELTA_SECONDS = re.compile(r"[0-9]+")


def retry_after(response: httpx.Response) -> float | None:
    """How long ``response`` asks the client to wait before trying again: its
    ``Retry-After`` (RFC 9110 §10.2.3) in seconds, whole seconds or an HTTP-date (0 when
    the date is past); None when it has none, or none that reads as either."""
    value = response.headers.get("retry-after", "").strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, said to be of unknown origin
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def seg(value: object, *, slashes: bool = False) -> str:
    """``value`` as exactly one path segment. A URL's dot-segments are removed before it
    is sent (``/models/m/tags/..`` is ``/models/m``), so ``.`` and ``..`` are sent
    percent-encoded, which the server reads back as themselves; an empty value makes no
    segment at all (``/models/`` is the list), so it is refused here, as the service
    refuses every empty name, alias, key and version. A ``/`` reaches the server's router
    as a separator whatever its encoding (``DELETE /models/m%2Ftags%2Fx`` is ``DELETE
    /models/m/tags/x``, another resource), so it is refused, except with ``slashes``: for
    the last segment of a route that takes it (a tag key)."""
    text = quote(str(value), safe="")
    if not text:
        raise InvalidParameter(
            "an empty name, alias, key or version was given; it must not be empty"
        )
    if "/" in str(value) and not slashes:
        raise InvalidParameter(
            f"{str(value)!r} contains '/', which no name, alias, version or id may contain"
        )
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return text


def whole(kind: str, value: object) -> int | None:
    """``value`` for a query's integer (None: not sent). A query carries text, so the
    server would take ``"2"`` (or ``2.0``) for 2 where the local client refuses it: the
    type is checked here, as the service checks it."""
    return None if value is None else require_int(kind, value)


def model_seg(name: object) -> str:
    """A model name as its path segment, checked first as the service checks it (so the
    error is the one a local client raises, and a ``/`` never reaches the URL)."""
    return seg(validate_model_name(name))


def version_seg(version: object) -> str:
    """A version number (an int or its decimal string) as its path segment, checked
    first as the service checks it: ``0``, ``-1``, ``''`` or ``None`` is refused here in
    the local client's words, not the server's (to whom every value is a string)."""
    return seg(parse_version_number(version))


def tag_seg(key: object) -> str:
    """A tag key as the last segment of its route (which takes a ``/``), checked first as
    the service checks it."""
    return seg(validate_key("tag", key), slashes=True)


def alias_seg(alias: object) -> str:
    """An alias as its path segment, checked first as the service checks it."""
    return seg(validate_alias(alias))


class HttpTransport:
    """The connection to one Cairn server (``uri``), with the caller's token."""

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        http_client: httpx.Client | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.uri = uri.rstrip("/")
        headers = {"User-Agent": "cairn-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if http_client is not None:
            self._http = http_client
            self._http.headers.update(headers)
            self._owns_http = False
        else:
            self._http = httpx.Client(
                base_url=self.uri, headers=headers, timeout=timeout, transport=transport()
            )
            self._owns_http = True
        self._timeout = timeout
        self._object_store: httpx.Client | None = None  # for presigned links, made on use
        self._object_store_guard = threading.Lock()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._object_store is not None:
            self._object_store.close()

    def _bucket(self) -> httpx.Client:
        """The client for presigned object-store links: none of this server's headers
        (its token above all) go with them. No time limit on sending: a part of 64 MiB
        goes out in one write, which takes a minute at 1 MB/s."""
        with self._object_store_guard:
            if self._object_store is None:
                timeout = httpx.Timeout(self._timeout, write=None)
                self._object_store = httpx.Client(timeout=timeout, transport=transport())
            return self._object_store

    # -- transport ---------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        idempotent: bool | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        """One API call, retried on transient failures; ``content`` makes a fresh body.

        A call is sent again only when that cannot do twice what it asks: after a failure
        that shows it never ran (no connection opened, a 429), or when it is ``idempotent``:
        by default GET, HEAD, OPTIONS, PUT and DELETE, and a create with its
        ``Idempotency-Key``. Any other (a rename, a new token, a promotion request) may have
        been applied when a 503, a proxy's 502/504 or a lost connection answers it, and is
        not sent again; ``idempotent=True`` for a POST or PATCH that does the same done
        twice. ``timeout``: this call's, instead of the client's.
        """
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or "Idempotency-Key" in (headers or {})
        url = "/api/v1" + path
        query = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
        encoded: bytes | None = None  # the JSON body, encoded once for every attempt
        if json is not None:  # here, as httpx would, so that a value it cannot carry is Cairn's
            try:
                encoded = jsonlib.dumps(
                    json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                ).encode()
            except ValueError as exc:  # NaN or infinity, which the service refuses too
                raise InvalidParameter(
                    f"the request holds a value JSON cannot carry: {exc}"
                ) from None
            headers = {**(headers or {}), "Content-Type": "application/json"}
        delay = 0.1  # the backoff, when the server names no wait
        waited = 0.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._http.request(
                    method,
                    url,
                    params=query,
                    headers=headers,
                    content=encoded if content is None else content(),
                    # as the request's extension, which every httpx client honours (a
                    # ``timeout=`` argument is refused by Starlette's TestClient)
                    extensions=None if timeout is None else {"timeout": timeout.as_dict()},
                )
            except httpx.TransportError as exc:
                again = idempotent or isinstance(exc, NOT_SENT)
                if not again or attempt == MAX_ATTEMPTS or waited + delay > RETRY_BUDGET_S:
                    raise Unavailable(f"cannot reach Cairn at {self.uri}: {exc}") from exc
                wait = delay
            else:
                status = response.status_code
                again = idempotent or status in NOT_RUN_STATUSES
                if status not in RETRY_STATUSES or not again or attempt == MAX_ATTEMPTS:
                    return self._decode(response)
                asked = retry_after(response)
                wait = delay if asked is None else asked
                if waited + wait > RETRY_BUDGET_S:
                    self._decode(response, gave_up=asked)
            time.sleep(wait)
            waited += wait
            delay = min(delay * 2, 2.0)
        raise Unavailable(f"cannot reach Cairn at {self.uri}")  # pragma: no cover

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """For a request made outside ``_request`` (a download): a connection that fails,
        or breaks while the bytes come, is ``Unavailable`` as it is there, not httpx's
        own exception."""
        try:
            yield
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach Cairn at {self.uri}: {exc}") from exc

    @staticmethod
    def _decode(response: httpx.Response, *, gave_up: float | None = None) -> Any:
        """The answer's body, or its error raised as Cairn's, carrying the wait the server
        asked for (``retry_after``). ``gave_up``: that wait, which the client would not
        make (more than its budget); the message then says so."""
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        if isinstance(body, dict) and "message" in body:
            message = str(body["message"])
            if gave_up is not None:
                message += (
                    f" (the server asks to wait {math.ceil(gave_up)} s before trying again, "
                    f"longer than this client waits: {RETRY_BUDGET_S:g} s)"
                )
            error = error_from_response(response.status_code, body.get("error_code"), message)
        else:
            error = CairnError(f"HTTP {response.status_code} from server: {response.text[:200]}")
        if (asked := retry_after(response)) is not None:
            error.retry_after = math.ceil(asked)
        raise error

    @staticmethod
    def _key(idempotency_key: str | None) -> dict[str, str]:
        return {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
