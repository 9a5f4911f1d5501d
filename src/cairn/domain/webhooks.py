"""Webhooks: what they are, which events they carry, how a delivery is signed and checked.

Pure rules, no I/O. A webhook sends the audited changes to the models of its scope (``*``,
a prefix such as ``risk.*``, or one model's name, as grants name them) whose action is in
its event filter, as signed JSON POSTs. The receiver checks ``Cairn-Signature`` with
``verify_signature`` (or the ten lines in docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cairn.domain.access import Actor, Role, pattern_key
from cairn.domain.codec import format_time
from cairn.errors import InvalidParameter

# The audit actions a webhook can carry: changes to a model that a reader of the model
# could see. Grants, tokens, users and instance upkeep are not sent anywhere. The trigger
# that queues deliveries holds this list too (``DELIVERABLE`` in migration 0017): a new
# event needs a migration that re-creates the trigger with it. Webhooks whose filter is
# ``*`` or a family then get it with no change of theirs.
EVENTS: tuple[str, ...] = (
    "model.create",
    "model.update",
    "model.rename",
    "model.delete",
    "model.restore",
    "model.tag.set",
    "model.tag.delete",
    "version.create",
    "version.update",
    "version.finalize",  # the version became READY
    "version.expire",  # a PENDING upload timed out: FAILED
    "version.stage",
    "version.tag.set",
    "version.tag.delete",
    "version.delete",
    "version.restore",
    "version.purge",
    "alias.set",
    "alias.delete",
    "promotion.request",
    "promotion.approve",
    "promotion.reject",
    "promotion.cancel",
    "promotion.apply",
    "signature.add",
    "scan.rerun",
    "scan.policy",
    "artifact.quarantine_override",
    "retention.policy",
    "import.model",
    "import.version",
    "lineage.record",  # inputs recorded for a version (with it, later, or from OpenLineage)
    "lineage.remove",
    "lineage.openlineage",
    "deployment.set",  # what a deployment serves (docs/deployments.md)
    "deployment.retire",
)
# A family is ``a.*`` or ``a.b.*``: the trigger looks for the two (no event has more dots).
MAX_FAMILY_DOTS = 2
PING = "ping"  # the test event ``ping`` sends; never from the audit log
STATUSES = ("pending", "succeeded", "failed")
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
# How a sealed secret starts in the database (``service/keyring.py``: ``v1:<key id>:...``);
# a stored secret without it was written in the clear, before secrets were sealed.
SEALED_PREFIX = "v1:"
SIGNATURE_TOLERANCE_S = 300
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_URL = 2048
_MIN_SECRET = 16
_MAX_SECRET = 256


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    name: str
    url: str
    events: tuple[str, ...]
    scope: str  # as given: '*', 'risk.*' or a model name
    scope_key: str  # over name keys: '*' is '', a prefix 'risk.' or an exact key
    scope_exact: bool
    active: bool
    created_at: datetime
    created_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str  # Cairn-Delivery: the same on every retry of this delivery
    webhook: str
    event: str
    status: str
    attempts: int
    payload: Any
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    redelivery_of: str | None = None


@dataclass(frozen=True, slots=True)
class SecretsReport:
    """What re-encrypting the webhooks' signing secrets did."""

    webhooks: int  # every webhook's secret was opened (and so checked)
    encrypted: int  # were in the clear (written before secrets were sealed): now sealed
    reencrypted: int  # were sealed with another key: now sealed with the current one
    unchanged: int  # already sealed with the current key
    key: str  # the id of the current key (the first of CAIRN_SECRET_KEYS or the key file)


def secret_context(webhook_id: int, name: str) -> str:
    """The row a webhook's sealed secret is bound to (its associated data): a sealed value
    copied to another webhook's row does not open there."""
    return f"webhook:{webhook_id}:{name}"


def secret_label(name: str) -> str:
    """How messages name a webhook's secret."""
    return f"the signing secret of webhook {name!r}"


def secrets_report_to_json(r: SecretsReport) -> dict[str, Any]:
    return {
        "webhooks": r.webhooks,
        "encrypted": r.encrypted,
        "reencrypted": r.reencrypted,
        "unchanged": r.unchanged,
        "key": r.key,
    }


def validate_webhook_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidParameter(
            f"webhook name {name!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def clean_events(events: object) -> tuple[str, ...]:
    """An event filter, checked and kept as it was given, sorted: ``*`` (every event,
    those a later Cairn adds too), families (``alias.*``, ``version.tag.*``: every event
    whose name starts so, now and later) or event names. An event a family or ``*``
    already selects is dropped; each must select at least one event of ``EVENTS``. The
    trigger on ``audit_events`` (migration 0017) matches them in SQL."""
    chosen = filter_items(events, _carried)
    if not chosen:
        raise InvalidParameter("events must name at least one event (or '*')")
    return chosen


def _carried(item: str) -> None:
    """Refuse a filter item that selects no event a webhook carries."""
    if item.endswith(".*"):
        if item.count(".") > MAX_FAMILY_DOTS or not any(selects((item,), e) for e in EVENTS):
            raise InvalidParameter(f"event family {item!r} matches no event; see EVENTS")
    elif item not in EVENTS:
        raise InvalidParameter(
            f"event {item!r} is not one a webhook can carry; use '*', a family such as "
            "'alias.*', or one of: " + ", ".join(EVENTS)
        )


def filter_items(events: object, check: Callable[[str], None]) -> tuple[str, ...]:
    """The items of an event filter (one, or a list), each but ``*`` passed to ``check``
    (which raises), sorted, without what a family already selects; ``("*",)`` when ``*``
    is among them. The webhook filter's (``clean_events``) and the audit tail's."""
    given = [events] if isinstance(events, str) else events
    if not isinstance(given, Iterable) or isinstance(given, Mapping):
        raise InvalidParameter("events must be a list of event names such as 'alias.set'")
    chosen: set[str] = set()
    for item in given:
        if not isinstance(item, str) or not item:
            raise InvalidParameter("events must be a list of event names such as 'alias.set'")
        if item != "*":
            check(item)
        chosen.add(item)
    if "*" in chosen:
        return ("*",)
    families = [f for f in chosen if f.endswith(".*")]
    return tuple(sorted(e for e in chosen if e in families or not selects(families, e)))


def selects(patterns: Iterable[str], event: str) -> bool:
    """Whether a filter (``clean_events``) selects ``event``: as the trigger decides."""
    return any(
        p == "*" or p == event or (p.endswith(".*") and event.startswith(p[:-1])) for p in patterns
    )


def events_column(events: tuple[str, ...]) -> str:
    """How the database stores a filter: ``,a,b,`` (the trigger looks for ``,action,``)."""
    return "," + ",".join(events) + ","


def events_from_column(text: str) -> tuple[str, ...]:
    return tuple(e for e in text.split(",") if e)


def clean_scope(scope: object) -> tuple[str, str, bool]:
    """``(scope as given, scope key, exact)``: ``*`` → ``('*', '', False)``, ``risk.*`` →
    ``('risk.*', 'risk.', False)``, ``Risk.Fraud`` → ``('Risk.Fraud', 'risk.fraud', True)``."""
    key = pattern_key(scope)
    assert isinstance(scope, str)
    if key == "*":
        return scope, "", False
    if key.endswith("*"):
        return scope, key[:-1], False
    return scope, key, True


def may_manage_scope(actor: Actor, scope_key: str, exact: bool, model_id: int | None) -> bool:
    """Whether ``actor`` MANAGEs every model the scope covers: the instance ADMIN for
    ``*``; a pattern grant covering the whole prefix; for one model, MANAGE on it."""
    if actor.admin:
        return True
    if exact:
        return actor.allows(Role.MANAGE, model_id, scope_key)
    if not scope_key:  # '*': the whole registry
        return False
    if min(Role.MANAGE, actor.scope.cap) < Role.MANAGE:
        return False
    for grant in actor.grants:
        if grant.model_id is not None or grant.pattern is None or grant.role < Role.MANAGE:
            continue
        if grant.pattern.endswith("*") and scope_key.startswith(grant.pattern[:-1]):
            return True
    return False


def clean_url(url: object) -> str:
    """An ``http(s)://host[:port]/path`` URL without credentials or fragment."""
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        raise InvalidParameter(f"url must be an http(s) URL of at most {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameter(f"url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParameter(f"url {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise InvalidParameter(f"url {url!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter("url must not carry a user name or password")
    if parts.fragment:
        raise InvalidParameter("url must not carry a fragment ('#...')")
    if port == 0:
        raise InvalidParameter("url's port must be between 1 and 65535")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidParameter("url must not contain spaces or control characters")
    return url


def forbidden_address(address: str) -> str | None:
    """Why a webhook may not connect to ``address`` unless private addresses are allowed
    (None: it is a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{address} is a {kind} address"
    if not ip.is_global:  # shared (100.64/10), documentation, benchmarking ranges...
        return f"{address} is not a globally reachable address"
    return None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def clean_secret(secret: object) -> str:
    if (
        not isinstance(secret, str)
        or not _MIN_SECRET <= len(secret) <= _MAX_SECRET
        or not secret.isprintable()
        or secret.strip() != secret
    ):
        raise InvalidParameter(
            f"secret must be {_MIN_SECRET} to {_MAX_SECRET} printable characters; "
            "leave it out and Cairn makes one"
        )
    return secret


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, as Stripe signs."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> bool:
    """Whether ``header`` (``Cairn-Signature``) signs ``body`` with ``secret``, made no
    more than ``tolerance_s`` seconds from ``now`` (unix seconds) either way."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature_header(secret, timestamp, body).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def event_payload(event: Mapping[str, Any], webhook: str) -> dict[str, Any]:
    """What a delivery of an audit event carries: only what a reader of the model sees
    (no client address, no request id)."""
    return {
        "event": event["action"],
        "event_id": event["seq"],
        "at": format_time(event["at"]),
        "actor": event["actor"],
        "model": event["model"],
        "version": event["version"],
        "target": event["target"],
        "before": event["before"],
        "after": event["after"],
        "webhook": webhook,
    }


def ping_payload(webhook: str, actor: str, at: datetime) -> dict[str, Any]:
    return {
        "event": PING,
        "event_id": None,
        "at": format_time(at),
        "actor": actor,
        "model": None,
        "version": None,
        "target": None,
        "before": None,
        "after": None,
        "webhook": webhook,
    }


def webhook_to_json(w: Webhook) -> dict[str, Any]:
    return {
        "name": w.name,
        "url": w.url,
        "events": list(w.events),
        "scope": w.scope,
        "active": w.active,
        "created_at": format_time(w.created_at),
        "created_by": w.created_by,
        "updated_at": format_time(w.updated_at),
    }


def delivery_to_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook": d.webhook,
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": format_time(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": format_time(d.created_at),
        "delivered_at": format_time(d.delivered_at),
        "redelivery_of": d.redelivery_of,
        "payload": d.payload,
    }
