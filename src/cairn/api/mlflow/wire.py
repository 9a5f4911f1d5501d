"""Cairn's domain values as MLflow's proto-JSON.

What MLflow's server sends: snake_case names, versions as strings, timestamps as integer
epoch milliseconds, enums by name, empty repeated fields left out, ``description`` and
``run_link`` always present (``""`` when empty), ``run_id`` only when set.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.domain.models import ModelVersion, RegisteredModel, VersionStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

STATUS = {
    VersionStatus.READY: "READY",
    VersionStatus.PENDING: "PENDING_REGISTRATION",
    VersionStatus.FAILED: "FAILED_REGISTRATION",
}


def millis(value: datetime) -> int:
    """Integer milliseconds since the Unix epoch (floored, exact: no float rounding)."""
    return (value.astimezone(UTC) - _EPOCH) // _MS


def _tags(tags: Any) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def version_json(v: ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": millis(v.created_at),
        "last_updated_timestamp": millis(v.updated_at),
        "current_stage": v.stage.value,
        "description": v.description,
    }
    if v.source is not None:
        out["source"] = v.source
    if v.run_id is not None:
        out["run_id"] = v.run_id
    out["status"] = STATUS[v.status]
    if v.status_message:
        out["status_message"] = v.status_message
    if v.tags:
        out["tags"] = _tags(v.tags)
    out["run_link"] = v.run_link or ""
    if v.aliases:
        out["aliases"] = list(v.aliases)
    return out


def model_json(m: RegisteredModel, latest: Sequence[ModelVersion] = ()) -> dict[str, Any]:
    """A registered model; ``latest`` is its newest READY version per stage."""
    out: dict[str, Any] = {
        "name": m.name,
        "creation_timestamp": millis(m.created_at),
        "last_updated_timestamp": millis(m.updated_at),
        "description": m.description,
    }
    if latest:
        out["latest_versions"] = [version_json(v) for v in latest]
    if m.tags:
        out["tags"] = _tags(m.tags)
    if m.aliases:
        out["aliases"] = [
            {"alias": alias, "version": str(version)} for alias, version in m.aliases.items()
        ]
    return out
