"""Where a webhook may connect, and the one POST a delivery makes.

A webhook's host is resolved, and every address it resolves to is checked, at creation and
again before every attempt (a name that resolved to a public address when the webhook was
made may point at ``127.0.0.1`` by the time it is used: DNS rebinding). The POST then goes
to the address that was checked, never to a fresh lookup: the URL's host stays in the
``Host`` header and, for https, in the TLS server name the certificate is checked against.
Redirects are not followed and the environment's proxies are not used.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from cairn.domain.webhooks import forbidden_address, signature_header
from cairn.errors import InvalidParameter

if TYPE_CHECKING:  # httpx is loaded by the first delivery, not by every worker's start
    import httpx

Resolver = Callable[[str, int], list[str]]
MAX_ERROR = 500


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidParameter(f"webhook host {host!r} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True, slots=True)
class Destination:
    url: str  # the URL with its host replaced by the checked address
    host_header: str
    server_name: str | None  # https: the name the certificate must carry


def destination(url: str, *, allow_private: bool, resolver: Resolver) -> Destination:
    """Where a POST to ``url`` may go: its host's first address, every address checked.

    Raises ``InvalidParameter`` naming the address when one is loopback, private,
    link-local, multicast, reserved or unspecified and ``allow_private`` is off."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise InvalidParameter(f"webhook host {host!r} resolves to no address")
    if not allow_private:
        for address in addresses:
            why = forbidden_address(address)
            if why is not None:
                raise InvalidParameter(
                    f"webhook host {host!r} is refused: {why}; set "
                    "CAIRN_WEBHOOK_ALLOW_PRIVATE=true to allow internal receivers"
                )
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Destination(target, host_header, host if parts.scheme == "https" else None)


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None


def post(
    client: httpx.Client,
    dest: Destination,
    *,
    secret: str,
    event: str,
    delivery_id: str,
    body: bytes,
    now_s: Callable[[], float] = time.time,
) -> Attempt:
    """One signed POST; 2xx is success, anything else (or no answer) a failed attempt.
    The answer's body is not read."""
    import httpx

    timestamp = int(now_s())
    headers = {
        "Host": dest.host_header,
        "Content-Type": "application/json",
        "User-Agent": "Cairn-Webhooks",
        "Cairn-Event": event,
        "Cairn-Delivery": delivery_id,
        "Cairn-Signature": signature_header(secret, timestamp, body),
    }
    extensions = {} if dest.server_name is None else {"sni_hostname": dest.server_name}
    try:
        request = client.build_request(
            "POST", dest.url, content=body, headers=headers, extensions=extensions
        )
        response = client.send(request, stream=True, follow_redirects=False)
        response.close()
    except httpx.HTTPError as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR] or "no answer")
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code, None)
    return Attempt(False, response.status_code, f"HTTP {response.status_code}")
