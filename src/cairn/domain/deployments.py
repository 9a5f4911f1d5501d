"""Deployments (where a version runs) and monitoring feedback (what it measured there).

Pure rules, no I/O. A deployment is a named target (``fraud-api-prod``: the rules of a
model name) with an environment label, an optional URL (stored, never fetched) and the
version of one model it serves now. Every change of what it serves is an event of its
history; an event is in force from its ``at`` until the next one (``until``). Feedback
points carry a timestamp and are linked to the version that was in force then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cairn.domain import names
from cairn.domain.codec import format_time, parse_time
from cairn.errors import InvalidParameter

MAX_ENVIRONMENT_LENGTH = 64
MAX_URL_LENGTH = 2048
MAX_REASON_LENGTH = 1000
MAX_POINTS = 1000  # feedback points in one batch
MAX_LABELS = 20  # labels of one point
MAX_LABEL_KEY_LENGTH = 64
MAX_LABEL_VALUE_LENGTH = 256
_ENVIRONMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_deployment_name(name: object) -> str:
    """A deployment name follows the rules of a model name (``fraud-api-prod``)."""
    try:
        return names.validate_model_name(name)
    except InvalidParameter as exc:
        raise InvalidParameter(exc.message.replace("model name", "deployment name")) from None


def validate_environment(environment: object) -> str:
    if not isinstance(environment, str) or not _ENVIRONMENT_RE.fullmatch(environment):
        raise InvalidParameter(
            f"environment {environment!r} is not valid; use letters, digits, '.', '_' and '-' "
            "(e.g. prod, staging, eu-west.canary), starting with a letter or digit"
        )
    if len(environment) > MAX_ENVIRONMENT_LENGTH:
        raise InvalidParameter(
            f"environment is {len(environment)} characters long; the limit is "
            f"{MAX_ENVIRONMENT_LENGTH}"
        )
    return environment


def validate_url(url: object) -> str | None:
    """An http(s) URL without credentials, or None. It is stored as text, never fetched."""
    if url is None:
        return None
    text = names.validate_text("url", url, MAX_URL_LENGTH, allow_newlines=False)
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(f"url {text!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter("url must not carry a user name or password")
    return text


def validate_reason(reason: object) -> str:
    return names.validate_text("reason", reason, MAX_REASON_LENGTH)


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    environment: str
    url: str | None
    model: str  # the model it serves versions of
    version: int | None  # None: retired
    alias: str | None  # the alias the version was given through, if any
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One change of what a deployment serves: in force from ``at`` until ``until``
    (None: still in force). ``to_version`` None: the deployment was retired."""

    deployment: str
    environment: str
    model: str
    from_version: int | None
    to_version: int | None
    alias: str | None
    actor: str | None
    reason: str
    at: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class FeedbackPoint:
    """One observation: ``key`` measured ``value`` at ``at``. Read back, it also names
    the deployment and the version that deployment served at ``at``."""

    key: str
    value: float
    at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    deployment: str | None = None
    model: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    deployment: str
    model: str
    accepted: int
    versions: Mapping[int, int]  # version → points linked to it
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class FeedbackSummary:
    """What the points of one key say about one version."""

    key: str
    count: int
    min: float
    max: float
    mean: float
    last: float
    last_at: datetime


def clean_points(points: Sequence[FeedbackPoint | Mapping[str, Any]]) -> list[FeedbackPoint]:
    """The batch, checked: 1 to ``MAX_POINTS`` points, finite values, bounded keys and
    labels, times with a zone (a time without one is UTC)."""
    if isinstance(points, str | bytes) or not isinstance(points, Sequence):
        raise InvalidParameter("points must be a list of {key, value, timestamp[, labels]}")
    if not 1 <= len(points) <= MAX_POINTS:
        raise InvalidParameter(
            f"a feedback batch holds 1 to {MAX_POINTS} points; got {len(points)}"
        )
    return [_clean_point(i, p) for i, p in enumerate(points)]


def _clean_point(index: int, point: FeedbackPoint | Mapping[str, Any]) -> FeedbackPoint:
    where = f"point {index}"
    if isinstance(point, Mapping):
        extra = set(point) - {"key", "value", "timestamp", "labels"}
        if extra or not {"key", "value", "timestamp"} <= set(point):
            raise InvalidParameter(
                f"{where} must have key, value, timestamp and optionally labels; got "
                f"{sorted(point)}"
            )
        at = point["timestamp"]
        if isinstance(at, str):
            try:
                at = parse_time(at)
            except ValueError:
                raise InvalidParameter(f"{where}: timestamp {at!r} is not RFC 3339") from None
        point = FeedbackPoint(point["key"], point["value"], at, point.get("labels") or {})
    names.validate_key(f"{where} metric", point.key)
    value = point.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"{where} ({point.key!r}): value {value!r} is not a number")
    if not math.isfinite(value):
        raise InvalidParameter(f"{where} ({point.key!r}): value {value!r} is not finite")
    if not isinstance(point.at, datetime):
        raise InvalidParameter(f"{where} ({point.key!r}): timestamp must be a time")
    at = point.at if point.at.tzinfo is not None else point.at.replace(tzinfo=UTC)
    return FeedbackPoint(point.key, float(value), at, _clean_labels(where, point.labels))


def _clean_labels(where: str, labels: object) -> dict[str, str]:
    if not isinstance(labels, Mapping):
        raise InvalidParameter(f"{where}: labels must be an object of strings")
    if len(labels) > MAX_LABELS:
        raise InvalidParameter(f"{where}: {len(labels)} labels; the limit is {MAX_LABELS}")
    cleaned = {}
    for key, value in labels.items():
        names.validate_key(f"{where} label", key)
        if len(key) > MAX_LABEL_KEY_LENGTH:
            raise InvalidParameter(
                f"{where}: label key {key[:20]!r}… is longer than {MAX_LABEL_KEY_LENGTH}"
            )
        label = f"{where} label {key!r}"
        cleaned[key] = names.validate_text(
            label, value, MAX_LABEL_VALUE_LENGTH, allow_newlines=False
        )
    return dict(sorted(cleaned.items()))


# -- JSON (the API's shapes; the HTTP client and the CLI's --json use the same) ----------


def deployment_to_json(d: Deployment) -> dict[str, Any]:
    return {
        "name": d.name,
        "environment": d.environment,
        "url": d.url,
        "model": d.model,
        "version": d.version,
        "alias": d.alias,
        "created_at": format_time(d.created_at),
        "updated_at": format_time(d.updated_at),
        "created_by": d.created_by,
        "retired_at": format_time(d.retired_at),
    }


def deployment_from_json(d: Mapping[str, Any]) -> Deployment:
    return Deployment(
        name=d["name"],
        environment=d["environment"],
        url=d.get("url"),
        model=d["model"],
        version=d.get("version"),
        alias=d.get("alias"),
        created_at=_time(d["created_at"]),
        updated_at=_time(d["updated_at"]),
        created_by=d.get("created_by"),
        retired_at=parse_time(d.get("retired_at")),
    )


def event_to_json(e: DeploymentEvent) -> dict[str, Any]:
    return {
        "deployment": e.deployment,
        "environment": e.environment,
        "model": e.model,
        "from_version": e.from_version,
        "to_version": e.to_version,
        "alias": e.alias,
        "actor": e.actor,
        "reason": e.reason,
        "at": format_time(e.at),
        "until": format_time(e.until),
    }


def event_from_json(d: Mapping[str, Any]) -> DeploymentEvent:
    return DeploymentEvent(
        deployment=d["deployment"],
        environment=d["environment"],
        model=d["model"],
        from_version=d.get("from_version"),
        to_version=d.get("to_version"),
        alias=d.get("alias"),
        actor=d.get("actor"),
        reason=d.get("reason", ""),
        at=_time(d["at"]),
        until=parse_time(d.get("until")),
    )


def point_to_json(p: FeedbackPoint) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": p.key,
        "value": p.value,
        "timestamp": format_time(p.at),
        "labels": dict(p.labels),
    }
    if p.deployment is not None:
        body.update(deployment=p.deployment, model=p.model, version=p.version)
    return body


def point_from_json(d: Mapping[str, Any]) -> FeedbackPoint:
    return FeedbackPoint(
        key=d["key"],
        value=float(d["value"]),
        at=_time(d["timestamp"]),
        labels=dict(d.get("labels") or {}),
        deployment=d.get("deployment"),
        model=d.get("model"),
        version=d.get("version"),
    )


def receipt_to_json(r: FeedbackReceipt) -> dict[str, Any]:
    return {
        "deployment": r.deployment,
        "model": r.model,
        "accepted": r.accepted,
        "versions": {str(v): n for v, n in sorted(r.versions.items())},
        "replayed": r.replayed,
    }


def receipt_from_json(d: Mapping[str, Any]) -> FeedbackReceipt:
    return FeedbackReceipt(
        deployment=d["deployment"],
        model=d["model"],
        accepted=int(d["accepted"]),
        versions={int(v): int(n) for v, n in d["versions"].items()},
        replayed=bool(d.get("replayed", False)),
    )


def summary_to_json(s: FeedbackSummary) -> dict[str, Any]:
    return {
        "key": s.key,
        "count": s.count,
        "min": s.min,
        "max": s.max,
        "mean": s.mean,
        "last": s.last,
        "last_at": format_time(s.last_at),
    }


def summary_from_json(d: Mapping[str, Any]) -> FeedbackSummary:
    return FeedbackSummary(
        key=d["key"],
        count=int(d["count"]),
        min=float(d["min"]),
        max=float(d["max"]),
        mean=float(d["mean"]),
        last=float(d["last"]),
        last_at=_time(d["last_at"]),
    )


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed
